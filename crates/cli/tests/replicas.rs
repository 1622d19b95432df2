//! Real `jitnode run` processes of the demo app on one in-process sandbox and one store: a
//! host killed with SIGKILL mid-answer leaves its card open, and the card is finalized
//! (failed, with the "could not be finished" notice) by the other host or by the host
//! itself on restart, within the lease; the question is answered exactly once and no card
//! is left spinning. On SQLite (shared file, restart) and PostgreSQL (other host).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_robot::cards::view::Progress;
use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_store::{Store, StoreOptions, StoreUrl};
use jitnode_test_kit::demo::demo_app;
use jitnode_test_kit::postgres::PgCluster;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const CLIENT_ID: &str = "sandbox-client-id";
const SECRET: &str = "sandbox-client-secret";
const LEASE_SECS: u64 = 2;
const QUESTION: &str = "How do I install jitnode-rs?";

/// One `jitnode run` of the app, its log collected.
struct Host {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Host {
    async fn start(app: &std::path::Path, sb: &Sandbox, store_url: &str) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jitnode"))
            .arg("run")
            .arg(app)
            .env("DINGTALK_OPENAPI_ENDPOINT", sb.base_url())
            .env("JITNODE_STORE_URL", store_url)
            .env("JITNODE_STORE_LEASE_SECS", LEASE_SECS.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("jitnode runs");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Host { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn sigkill(&mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        self.child.wait().await.expect("killed host reaped");
    }

    async fn sigterm(mut self) {
        jitnode_test_kit::drive::terminate(&mut self.child, Duration::from_secs(10)).await;
    }
}

/// The demo app with a slow offline answer (a few characters every 300 ms), so a host can
/// be killed while it streams.
fn slow_demo_app() -> tempfile::TempDir {
    let app = demo_app();
    let path = app
        .path()
        .join("elements/aiagents/customerService/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["offline"] = serde_json::json!({"chunkChars": 6, "chunkDelayMs": 300});
    std::fs::write(&path, config.to_string()).unwrap();
    app
}

/// Waits for one more connection of the app than `known`; returns the new one's id.
async fn wait_connection(sb: &Sandbox, known: &[String]) -> String {
    assert!(
        sb.wait_for_connections(CLIENT_ID, known.len() + 1, Duration::from_secs(60))
            .await,
        "host did not connect"
    );
    sb.connections_of(CLIENT_ID)
        .into_iter()
        .map(|c| c.connection_id)
        .find(|c| !known.contains(c))
        .expect("a new connection")
}

async fn killed_mid_answer(store_url: &str, store: &Store, other_host: bool) {
    let app = slow_demo_app();
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sb.register_app(CLIENT_ID, SECRET);
    let mut hosts = vec![Host::start(app.path(), &sb, store_url).await];
    let mut conns = vec![wait_connection(&sb, &[]).await];
    if other_host {
        hosts.push(Host::start(app.path(), &sb, store_url).await);
        conns.push(wait_connection(&sb, &conns).await);
    }
    let posted = sb
        .post_message(&PostMessage::text(CLIENT_ID, QUESTION))
        .unwrap();
    // The host the sandbox gave the question to is the one killed.
    let owner = conns
        .iter()
        .position(|c| Some(c) == posted.connection_id.as_ref())
        .expect("pushed on a known connection");
    let mut victim = hosts.remove(owner);
    let streaming = sb
        .wait_for_entry(0, Duration::from_secs(30), |e| e.kind == "card.streaming")
        .await;
    assert!(streaming.is_some(), "no streaming; log:\n{}", victim.log());
    victim.sigkill().await;
    let killed_at = Instant::now();
    let ack = sb.acks_for(&posted.message_id);
    assert!(
        ack.len() == 1 && ack[0].valid(),
        "the killed host ACKed once, after its claim: {ack:?}"
    );
    if !other_host {
        hosts.push(Host::start(app.path(), &sb, store_url).await);
    }

    // Finalized within the lease (plus a sweep interval and, on restart, start-up).
    let budget = Duration::from_secs(LEASE_SECS * 2 + if other_host { 0 } else { 20 });
    let card = loop {
        let cards = cards_of(&sb);
        match cards.first() {
            Some((id, Progress::Failed, text)) => break (id.clone(), text.clone()),
            _ if killed_at.elapsed() > budget => {
                let log = hosts.iter().map(Host::log).collect::<Vec<_>>().join("\n");
                panic!("card not finalized in {budget:?}: {cards:?}\nlog:\n{log}");
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    if other_host {
        assert!(
            killed_at.elapsed() <= Duration::from_secs(LEASE_SECS) * 2,
            "the other host took {:?}",
            killed_at.elapsed()
        );
    }
    assert!(
        card.1.contains("could not be finished"),
        "notice on the card: {}",
        card.1
    );
    // Exactly one card for the killed question, nothing spinning, no second answer.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS)).await;
    let cards = cards_of(&sb);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert!(cards.iter().all(|c| c.1 != Progress::Working), "{cards:?}");
    assert!(sb.transcript().replies().is_empty(), "no extra reply");
    let status = store.status().await.unwrap();
    assert_eq!(status.open_cards, 0, "{status:?}");
    assert_eq!(status.open_claims, 0, "{status:?}");
    for h in hosts {
        h.sigterm().await;
    }
    sb.shutdown().await;
}

/// Every card of the sandbox: id, progress and visible text.
fn cards_of(sb: &Sandbox) -> Vec<(String, Progress, String)> {
    sb.transcript()
        .cards
        .values()
        .map(|c| {
            let v = jitnode_console::card_view(c);
            (c.id.clone(), v.progress, v.text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_host_killed_mid_answer_finalizes_its_card_on_restart() {
    let app_store = tempfile::tempdir().unwrap();
    let path = app_store.path().join("shared.sqlite3");
    let url = format!("sqlite:{}", path.display());
    let store = open(&url).await;
    killed_mid_answer(&url, &store, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_host_killed_mid_answer_is_finalized_by_the_other_host() {
    let pg = PgCluster::start();
    let store = open(&pg.url()).await;
    killed_mid_answer(&pg.url(), &store, true).await;
}

async fn open(url: &str) -> Store {
    let url = StoreUrl::parse(url, "JITNODE_STORE_URL", std::path::Path::new("/")).unwrap();
    Store::open(&url, &StoreOptions::default()).await.unwrap()
}
