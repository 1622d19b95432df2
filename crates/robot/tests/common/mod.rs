//! Shared by the robot test binaries: the registry with a robot and a scripted agent, the
//! harness of one app on one sandbox, and one host of the replicated robot app.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_host::{loader_fn, App, ChunkSink, ElementRuntime, FnRuntime, FunctionError, Registry};
use jitnode_robot::config::Lang;
use jitnode_robot::records::RecordsAt;
use jitnode_robot::texts::Texts;
use jitnode_sandbox::{CardState, PostMessage, Posted, Sandbox, Transcript};
use jitnode_test_kit::robot::{robot_config, start_app, wait_connected, wait_for, AppDir};
use serde_json::{json, Value};

pub const APP: &str = "dingreplica";

pub fn texts() -> &'static Texts {
    Texts::for_lang(Lang::En)
}

/// A card's data as text (empty for a card without any).
pub fn card_text(card: &CardState) -> String {
    card.card_data
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_default()
}

/// How many calls of `kind` the transcript holds.
pub fn count_of(t: &Transcript, kind: &str) -> usize {
    t.entries.iter().filter(|e| e.kind == kind).count()
}

/// Card buttons call back over Stream only on advanced (template) cards: standard cards
/// would call an HTTP callback URL, and the sandbox refuses to pretend otherwise.
pub fn template_mode() -> Value {
    json!({"card": {"mode": "template", "templateId": "helpdesk.schema", "minIntervalMs": 50}})
}

/// The builtins and the robot's loader.
pub fn robot_registry() -> Registry {
    let mut registry = Registry::with_builtins();
    registry.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    registry
}

/// [`robot_registry`] and a loader `name` whose elements answer `run` with `run`.
pub fn agent_registry<F, Fut>(name: &str, run: F) -> Registry
where
    F: Fn(Value, ChunkSink) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
{
    let mut registry = robot_registry();
    registry.register(
        name,
        loader_fn(move |_cx| {
            let run = run.clone();
            async move {
                let rt = FnRuntime::new().function("run", run);
                Ok(Box::new(rt) as Box<dyn ElementRuntime>)
            }
        }),
    );
    registry
}

/// A started app on its own sandbox; `agent` is what the test reads of the agent's side.
pub struct Harness<T> {
    pub sb: Sandbox,
    pub app: App,
    pub dir: AppDir,
    pub agent: T,
    /// How long [`Harness::wait_for`] waits before failing.
    pub wait: Duration,
}

impl<T> Harness<T> {
    /// Starts `registry` on `dir` and waits until each of `client_ids` has connected.
    pub async fn start(
        sb: Sandbox,
        dir: AppDir,
        registry: Registry,
        client_ids: &[&str],
        agent: T,
        wait: Duration,
    ) -> Harness<T> {
        let app = start_app(&dir, registry).await;
        for client_id in client_ids {
            wait_connected(&sb, client_id, 1).await;
        }
        Harness {
            sb,
            app,
            dir,
            agent,
            wait,
        }
    }

    /// The app's records, as its robots store them (no process store in these tests).
    pub async fn records(&self) -> RecordsAt {
        RecordsAt::open_in(&self.dir.data_dir()).await.unwrap()
    }

    /// Every stored answer, oldest first.
    pub async fn answers(&self) -> Vec<jitnode_store::StoredAnswer> {
        self.records().await.list_answers(None).await.unwrap()
    }

    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Transcript) -> bool) -> Transcript {
        wait_for(&self.sb, what, self.wait, cond).await
    }

    /// Stops the app, checking the sandbox saw no protocol problem.
    pub async fn stop(self) {
        self.app.stop(Duration::from_secs(5)).await;
        assert!(self.sb.problems().is_empty(), "{:?}", self.sb.problems());
        self.sb.shutdown().await;
    }
}

/// Posts `text` to [`APP`] as a one-to-one user and asserts no ACK comes `within` (`why`
/// says what an ACK would mean).
pub async fn post_unacked(sb: &Sandbox, text: &str, within: Duration, why: &str) -> Posted {
    let posted = sb.post_message(&PostMessage::text(APP, text)).unwrap();
    assert!(
        sb.wait_for_ack(&posted.message_id, within).await.is_none(),
        "{why}"
    );
    posted
}

/// One host: its own app directory (own data/ and in-memory dedupe), the shared sandbox.
pub async fn host(sb: &Sandbox, calls: Arc<AtomicUsize>) -> (App, AppDir) {
    let dir = AppDir::new();
    dir.test_agent("countingAgent");
    dir.robot_family();
    dir.robot(
        "bot",
        &robot_config(sb, APP, "dingreplica-secret", &json!({})),
    );
    let registry = agent_registry("countingAgent", move |_args, chunks| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            chunks.send(json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": "Once."}}));
            Ok(json!({"answer": "Once.", "sources": []}))
        }
    });
    let app = start_app(&dir, registry).await;
    (app, dir)
}
