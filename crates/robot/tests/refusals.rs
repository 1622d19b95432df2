//! Each refusal a real DingTalk account gives, played by the sandbox with DingTalk's own
//! bodies (`Sandbox::refuse`), met by a robot instance on the real wire: the user still gets
//! the answer (as markdown when the card is refused), and the robot says once, in its
//! `status` and log, what was refused, which config field is involved and the fix.

use std::time::Duration;

use jitnode_host::App;
use jitnode_sandbox::{Permission, PostMessage, Refusal, RefusalFault, Sandbox, SandboxConfig};
use jitnode_test_kit::robot::{robot_config, start_app, status, wait_connected, wait_for, AppDir};
use serde_json::{json, Value};

mod common;
use common::agent_registry;

const APP: &str = "dingrefused";
const ANSWER: &str = "Open the VPN app and sign in.";

struct Robot {
    sb: Sandbox,
    app: App,
    _dir: AppDir,
}

/// A robot `imRobots.bot` with `extra` config, answering [`ANSWER`] in two chunks.
async fn robot(extra: Value) -> Robot {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = AppDir::new();
    dir.test_agent("twoChunks");
    dir.robot_family();
    dir.robot("bot", &robot_config(&sb, APP, "dingrefused-secret", &extra));
    let registry = agent_registry("twoChunks", |_args, chunks| async move {
        for c in ["Open the VPN app ", "and sign in."] {
            tokio::time::sleep(Duration::from_millis(60)).await;
            chunks.send(json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": c}}));
        }
        Ok(json!({"answer": ANSWER, "sources": []}))
    });
    let app = start_app(&dir, registry).await;
    Robot { sb, app, _dir: dir }
}

/// A connected robot with `extra` config that meets `fault` on its first question: the
/// answer still arrives (as markdown), and the robot's refusal of `kind` is there.
async fn refused(extra: Value, fault: RefusalFault, kind: &str) -> (Robot, Value) {
    let r = robot(extra).await.connected().await;
    r.sb.refuse(fault).unwrap();
    r.ask_expecting_markdown("How do I connect?").await;
    let seen = r.refusal(kind).await;
    (r, seen)
}

/// A connected robot on AI cards whose every later call meets `refusal`.
async fn connected_refusing(refusal: Refusal) -> Robot {
    let r = robot(json!({"card": {"mode": "ai"}}))
        .await
        .connected()
        .await;
    r.sb.refuse(RefusalFault::new(refusal)).unwrap();
    r
}

impl Robot {
    async fn connected(self) -> Robot {
        wait_connected(&self.sb, APP, 1).await;
        self
    }

    async fn status(&self) -> Value {
        status(&self.app, "imRobots.bot").await
    }

    /// The robot's refusals (`status.refusals`) once one of `kind` is there.
    async fn refusal(&self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.status().await;
            let found = status["refusals"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["refusal"]["kind"] == kind)
                .cloned();
            if let Some(r) = found {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} refusal: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks, and waits for the answer to arrive as a markdown message.
    async fn ask_expecting_markdown(&self, question: &str) {
        let before = self.sb.transcript().replies().len();
        self.sb
            .post_message(&PostMessage::text(APP, question))
            .unwrap();
        let t = wait_for(
            &self.sb,
            "the markdown answer",
            Duration::from_secs(15),
            |t| t.replies().len() > before,
        )
        .await;
        let reply = t.replies().pop().unwrap();
        assert!(reply.contains(ANSWER), "{reply}");
    }

    async fn stop(self) {
        self.app.stop(Duration::from_secs(5)).await;
        self.sb.shutdown().await;
    }
}

/// The public AI card with quick updates.
fn ai_mode() -> Value {
    json!({"card": {"mode": "ai", "minIntervalMs": 50}})
}

fn message(r: &Value) -> String {
    r["message"].as_str().unwrap().to_string()
}

/// The sentence names the element, its config file, the field and the fix.
fn assert_explains(r: &Value, field: &str, fix: &str) {
    let m = message(r);
    assert!(m.starts_with("imRobots.bot: "), "{m}");
    assert!(m.contains("elements/imRobots/bot/config.json"), "{m}");
    assert!(m.contains(field), "{field} in {m}");
    assert!(m.contains("Fix:") && m.contains(fix), "{fix} in {m}");
    assert!(!m.contains("dingrefused-secret"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_streaming_permission_answers_as_markdown_and_says_so_once() {
    let (r, seen) = refused(
        ai_mode(),
        RefusalFault::missing(Permission::CardStreamingWrite),
        "permissionDenied",
    )
    .await;
    assert_explains(&seen, "card.mode \"ai\"", "grant Card.Streaming.Write");
    assert_eq!(
        seen["refusal"]["permissions"],
        json!(["Card.Streaming.Write"])
    );
    // No retry fixes a missing permission: one streaming call for the answer, not a loop.
    let streamed =
        r.sb.transcript()
            .entries
            .iter()
            .filter(|e| e.kind == "card.streaming")
            .count();
    assert_eq!(streamed, 1);

    // A second question is refused the same way: counted, not said again.
    r.ask_expecting_markdown("And the printer?").await;
    let status = r.status().await;
    let refusals = status["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{status}");
    assert_eq!(refusals[0]["count"], 2);
    assert_eq!(refusals[0]["message"], seen["message"]);
    r.stop().await;
}

/// Each case: the robot's config, the refusal played, its kind, and what the sentence must
/// name (the config field, then the fix).
type Case = (
    Value,
    RefusalFault,
    &'static str,
    &'static str,
    &'static str,
);

/// Runs each case on a robot of its own: answered as markdown, explained once.
async fn each_refusal_is_explained(cases: Vec<Case>) -> Vec<Value> {
    let mut seen = Vec::new();
    for (extra, fault, kind, field, fix) in cases {
        let (r, refusal) = refused(extra, fault, kind).await;
        assert_explains(&refusal, field, fix);
        r.stop().await;
        seen.push(refusal);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_card_write_and_robot_send_permissions_name_themselves() {
    each_refusal_is_explained(vec![
        (
            ai_mode(),
            RefusalFault::missing(Permission::CardInstanceWrite),
            "permissionDenied",
            "DINGTALK_CARD_MODE",
            "grant Card.Instance.Write",
        ),
        (
            json!({"card": {"mode": "standard", "minIntervalMs": 50}}),
            RefusalFault::missing(Permission::RobotSendMessage),
            "permissionDenied",
            "card.mode \"standard\"",
            "grant qyapi_robot_sendmsg",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_template_and_an_unpublished_robot_answer_as_markdown() {
    let seen = each_refusal_is_explained(vec![
        (
            json!({"card": {"mode": "template", "templateId": "mine.schema", "minIntervalMs": 50}}),
            RefusalFault::new(Refusal::TemplateUnpublished),
            "templateUnpublished",
            "card.templateId",
            "DINGTALK_CARD_MODE=ai",
        ),
        (
            ai_mode(),
            RefusalFault::new(Refusal::RobotNotFound),
            "robotNotFound",
            "robotCode",
            "publish the robot",
        ),
    ])
    .await;
    assert!(message(&seen[0]).contains("mine.schema"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_backs_off_and_the_card_still_ends_with_the_answer() {
    let r = robot(json!({"card": {"mode": "ai", "minIntervalMs": 50}, "fallbackAfterFailures": 4}))
        .await
        .connected()
        .await;
    // Two 429s: backed off (1 s, 2 s), then the card takes the answer.
    r.sb.refuse(
        RefusalFault::new(Refusal::RateLimited)
            .with_status(429)
            .times(2),
    )
    .unwrap();
    r.sb.post_message(&PostMessage::text(APP, "How do I connect?"))
        .unwrap();
    let t = wait_for(&r.sb, "the finished card", Duration::from_secs(20), |t| {
        t.cards.values().any(|c| c.finalized)
    })
    .await;
    let limited: Vec<_> = t.entries.iter().filter(|e| e.status == 429).collect();
    assert_eq!(limited.len(), 2, "{:#?}", t.entries);
    let after = t
        .entries
        .iter()
        .find(|e| e.seq > limited[1].seq && e.kind.starts_with("card."))
        .expect("a card call after the limit");
    // The next call came a backoff later, not at the 50 ms interval (seen in order only:
    // the transcript has no times; the throttle's own tests measure the waits).
    assert!(after.error.is_none(), "{after:?}");
    assert!(
        t.replies().is_empty(),
        "no markdown needed: {:?}",
        t.replies()
    );
    let seen = r.refusal("rateLimited").await;
    assert_explains(&seen, "card.minIntervalMs", "raise card.minIntervalMs");

    // A limit that does not lift: after fallbackAfterFailures the answer goes as markdown.
    r.sb.refuse(RefusalFault::new(Refusal::RateLimited))
        .unwrap();
    r.ask_expecting_markdown("And the printer?").await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_webhook_is_explained() {
    let r = connected_refusing(Refusal::SessionExpired).await;
    // A picture gets a polite text reply, which only the session webhook carries.
    r.sb.post_message(&PostMessage {
        msgtype: "picture".into(),
        ..PostMessage::text(APP, "")
    })
    .unwrap();
    let seen = r.refusal("sessionExpired").await;
    assert_explains(&seen, "Config: none", "next message");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_explained_with_the_fix_and_not_retried_fast() {
    // Connected first: a connect under way while the fault is set would still succeed, and
    // its link would not be among those dropped below.
    let r = connected_refusing(Refusal::AuthFailed).await;
    // Refused from the next open on (the robot connected before the fault: drop its link).
    for c in r.sb.connections_of(APP) {
        r.sb.drop_connection(&c.connection_id).unwrap();
    }
    let seen = r.refusal("authFailed").await;
    assert_explains(&seen, "DINGTALK_CLIENT_SECRET", "publish an app version");
    let status = r.status().await;
    let s = status["status"].as_str().unwrap();
    // Waiting the long credentials backoff (minutes), not a fast retry loop.
    assert!(s.starts_with("AuthFailed") && s.contains("300s"), "{s}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.sb.connections_of(APP).len(), 0);
    assert_eq!(r.refusal("authFailed").await["count"], 1);
    r.stop().await;
}
