//! The Stream client against the real sandbox gateway: the sandbox checks every ACK's shape
//! and the connection it came on, so `problems()` staying empty is part of each test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_dingtalk_wire::api::CreateAndDeliver;
use jitnode_dingtalk_wire::{CardCallback, CardTarget, ParamMap, RobotMessage};
use jitnode_sandbox::{Click, PostMessage, Sandbox, SandboxConfig};
use jitnode_stream::{
    BoxFuture, Client, ClientConfig, Handler, HandlerError, Replier, ReplyContext, ReplyError,
    Status,
};
use serde_json::{json, Value};

const APP: &str = "dingsandboxapp";
const SECRET: &str = "sandbox-secret-0001";
const WAIT: Duration = Duration::from_secs(10);

/// Echo robot that counts handlings per msgId and remembers reply errors.
#[derive(Default)]
struct Echo {
    handled: Mutex<HashMap<String, usize>>,
    errors: Mutex<Vec<String>>,
    slow_ms: u64,
    busy: AtomicUsize,
}

impl Echo {
    fn total(&self) -> usize {
        self.handled.lock().unwrap().values().sum()
    }

    fn count(&self, id: &str) -> usize {
        self.handled.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl Handler for Echo {
    fn on_robot_message(
        &self,
        msg: RobotMessage,
        ctx: ReplyContext,
    ) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async move {
            self.busy.fetch_add(1, Ordering::SeqCst);
            if self.slow_ms > 0 {
                // At least half of slow_ms, so a test can act while the handler waits.
                let ms = self.slow_ms / 2 + rand::random::<u64>() % (self.slow_ms / 2 + 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let r = ctx
                .reply_text(&format!("echo: {}", msg.text().unwrap_or("?")))
                .await;
            self.busy.fetch_sub(1, Ordering::SeqCst);
            if let Err(e) = r {
                self.errors.lock().unwrap().push(e.to_string());
                return Err(e.into());
            }
            *self.handled.lock().unwrap().entry(msg.msg_id).or_default() += 1;
            Ok(())
        })
    }

    fn on_card_callback(
        &self,
        cb: CardCallback,
        _replier: Replier,
    ) -> BoxFuture<'_, Result<Value, HandlerError>> {
        Box::pin(async move {
            let action = cb.param("action").unwrap_or("none").to_string();
            Ok(json!({
                "cardUpdateOptions": {"updateCardDataByKey": true},
                "cardData": {"cardParamMap": {"status": action}},
            }))
        })
    }
}

async fn sandbox() -> Sandbox {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox binds 127.0.0.1:0");
    sb.register_app(APP, SECRET);
    sb
}

fn config(sb: &Sandbox) -> ClientConfig {
    let mut c = ClientConfig::new(APP, SECRET).with_base_url(&sb.base_url());
    c.backoff.base = Duration::from_millis(50);
    c.backoff.jitter = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(500);
    c
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connected(sb: &Sandbox, n: usize) {
    assert!(
        sb.wait_for_connections(APP, n, WAIT).await,
        "{n} connection(s) of {APP}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reply_reaches_the_transcript_with_valid_acks() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo::default());
    let client = Client::start(config(&sb), echo.clone());
    connected(&sb, 1).await;
    let posted = sb
        .post_message(&PostMessage::text(APP, "hello there").in_group("cidGroup1"))
        .unwrap();
    let ack = sb
        .wait_for_ack(&posted.message_id, WAIT)
        .await
        .expect("ACK");
    assert!(ack.valid(), "{:?}", ack.problems);
    assert_eq!(ack.code, Some(200));
    until("reply", || echo.count(&posted.msg_id) == 1).await;
    assert_eq!(sb.transcript().replies(), vec!["echo: hello there"]);
    let entry = &sb.transcript().entries[0];
    assert_eq!(entry.body["at"]["atUserIds"], json!(["user001"]));
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_waits_wake_on_new_entries_after_the_mark() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo::default());
    let client = Client::start(config(&sb), echo.clone());
    connected(&sb, 1).await;
    let mark = sb.last_seq();
    assert_eq!(mark, 0);
    for text in ["one", "two", "three"] {
        sb.post_message(&PostMessage::text(APP, text)).unwrap();
    }
    let is = |want: &'static str| {
        move |e: &jitnode_sandbox::TranscriptEntry| e.text.as_deref() == Some(want)
    };
    let two = sb
        .wait_for_entry(mark, WAIT, is("echo: two"))
        .await
        .expect("the second reply");
    assert_eq!(two.kind, "webhook");
    let t = sb
        .wait_for_transcript(WAIT, |t| t.replies().len() == 3)
        .await
        .expect("three replies");
    assert_eq!(sb.last_seq(), 3);
    assert_eq!(t.entries.last().map(|e| e.seq), Some(3));
    // Only entries after the mark count: nothing new arrives past the last one.
    let short = Duration::from_millis(100);
    assert!(sb
        .wait_for_entry(two.seq, short, is("echo: two"))
        .await
        .is_none());
    assert!(sb.wait_for_entry(3, short, |_| true).await.is_none());
    assert!(sb
        .wait_for_transcript(short, |t| t.replies().len() == 4)
        .await
        .is_err());
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_echoed_while_handlers_are_busy() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo {
        slow_ms: 2000,
        ..Default::default()
    });
    let mut cfg = config(&sb);
    cfg.max_concurrent_handlers = 4;
    let client = Client::start(cfg, echo.clone());
    connected(&sb, 1).await;
    for i in 0..50 {
        sb.post_message(&PostMessage::text(APP, &format!("q{i}")))
            .unwrap();
    }
    until("handlers busy", || echo.busy.load(Ordering::SeqCst) > 0).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.ping_now(&conn);
    until("ping echoed", || {
        sb.pings().iter().any(|p| p.echoed == Some(true))
    })
    .await;
    assert!(
        echo.total() < 50,
        "handlers still running when the ping was echoed"
    );
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_1000_messages_in_flight() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo {
        slow_ms: 30,
        ..Default::default()
    });
    let mut cfg = config(&sb);
    cfg.max_concurrent_handlers = 64;
    let client = Client::start(cfg, echo.clone());
    connected(&sb, 1).await;
    let first = sb.connections_of(APP)[0].connection_id.clone();
    let mut ids = Vec::new();
    for i in 0..1000 {
        if i == 500 {
            sb.send_disconnect(&first).unwrap();
            // The client opens the next connection at once; posts go there.
            connected(&sb, 1).await;
        }
        let p = sb
            .post_message(&PostMessage::text(APP, &format!("m{i}")))
            .unwrap();
        assert!(p.delivered);
        ids.push(p.msg_id);
    }
    until("1000 handled", || echo.total() == 1000).await;
    for id in &ids {
        assert_eq!(echo.count(id), 1, "{id}");
    }
    assert_eq!(sb.transcript().replies().len(), 1000);
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    assert_eq!(client.stats().connections, 2);
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_reconnects_and_resumes() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo::default());
    let client = Client::start(config(&sb), echo.clone());
    connected(&sb, 1).await;
    for i in 0..20 {
        sb.post_message(&PostMessage::text(APP, &format!("a{i}")))
            .unwrap();
    }
    until("first 20", || echo.total() == 20).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.drop_connection(&conn).unwrap();
    until("new connection", || {
        sb.connections_of(APP)
            .iter()
            .any(|c| c.connection_id != conn && c.accepting)
    })
    .await;
    for i in 0..20 {
        sb.post_message(&PostMessage::text(APP, &format!("b{i}")))
            .unwrap();
    }
    until("all 40", || echo.total() == 40).await;
    assert_eq!(client.stats().connections, 2);
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_handled_once() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo {
        slow_ms: 200,
        ..Default::default()
    });
    let client = Client::start(config(&sb), echo.clone());
    connected(&sb, 1).await;
    let p = sb.post_message(&PostMessage::text(APP, "once")).unwrap();
    // While being handled, and after.
    let again = sb.redeliver_now(&p.message_id).unwrap();
    assert_ne!(again, p.message_id);
    until("handled", || echo.count(&p.msg_id) == 1).await;
    let third = sb.redeliver_now(&p.message_id).unwrap();
    let ack = sb.wait_for_ack(&third, WAIT).await.expect("ACK");
    assert_eq!(ack.code, Some(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(echo.count(&p.msg_id), 1);
    assert_eq!(sb.transcript().replies(), vec!["echo: once"]);
    assert_eq!(client.stats().duplicates, 2);
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_prompt_stop() {
    let sb = sandbox().await;
    let mut cfg = config(&sb);
    cfg.client_secret = "not-the-secret".into();
    let client = Client::start(cfg, Arc::new(Echo::default()));
    let mut rx = client.status();
    let s = tokio::time::timeout(
        WAIT,
        rx.wait_for(|s| matches!(s, Status::AuthFailed { .. })),
    )
    .await
    .expect("auth failure reported")
    .unwrap()
    .clone();
    let Status::AuthFailed {
        client_id, error, ..
    } = s
    else {
        unreachable!()
    };
    assert_eq!(client_id, APP);
    assert!(error.contains(APP), "{error}");
    assert!(!error.contains("not-the-secret"), "{error}");
    tokio::time::timeout(Duration::from_secs(2), client.stop())
        .await
        .expect("stop during the auth backoff is prompt");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_webhook_is_an_error() {
    let sb = sandbox().await;
    let echo = Arc::new(Echo {
        slow_ms: 400,
        ..Default::default()
    });
    let client = Client::start(config(&sb), echo.clone());
    connected(&sb, 1).await;
    sb.post_message(&PostMessage::text(APP, "late")).unwrap();
    let p2 = sb.post_message(&PostMessage::text(APP, "later")).unwrap();
    // Both handlers are still in their 200+ ms wait.
    sb.expire_webhooks();
    until("two failures", || client.stats().failed == 2).await;
    let errs = echo.errors.lock().unwrap().clone();
    assert!(errs.iter().all(|e| e.contains("300001")), "{errs:?}");
    let e = client
        .replier()
        .webhook
        .send_text(&p2.session_webhook, "x", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplyError::SessionExpired { .. }), "{e}");
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_token_refresh_and_403() {
    let sb = sandbox().await;
    let client = Client::start(config(&sb), Arc::new(Echo::default()));
    let api = client.replier().openapi.clone();
    // Standard card to a user, then update.
    let card = json!({"contents": [{"type": "markdown", "text": "thinking", "id": "m"}]});
    api.send_standard_card("biz-1", &card, CardTarget::User("user001"))
        .await
        .expect("standard send");
    let card2 = json!({"contents": [{"type": "markdown", "text": "done", "id": "m"}]});
    api.update_standard_card("biz-1", &card2)
        .await
        .expect("standard update");
    let t = sb.transcript();
    assert_eq!(t.cards["biz-1"].card_data.as_ref().unwrap(), &card2);
    // Advanced card, then the token expires: the next call refreshes once and succeeds.
    let mut params = ParamMap::new();
    params.insert("flowStatus".into(), "1".into());
    let body = CreateAndDeliver::new(
        "tpl.schema",
        "track-1",
        APP,
        CardTarget::User("user001"),
        None,
        params,
    );
    api.create_and_deliver(&body)
        .await
        .expect("createAndDeliver");
    sb.expire_access_tokens();
    api.stream_card("track-1", "content", "partial answer", false, false)
        .await
        .expect("streaming after a token refresh");
    let mut params = ParamMap::new();
    params.insert("flowStatus".into(), "3".into());
    api.update_card("track-1", params).await.expect("update");
    let card = &sb.transcript().cards["track-1"];
    assert_eq!(card.streams["content"], "partial answer");
    assert_eq!(card.flow_status.as_deref(), Some("3"));
    // 403 keeps its status.
    sb.fail_card_calls(403, Some(1));
    let e = api
        .stream_card("track-1", "content", "more", false, false)
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e}");

    // Card clicks over Stream: the ACK carries the response; bad content gets a 400.
    connected(&sb, 1).await;
    let mut click = Click {
        client_id: APP.into(),
        out_track_id: "track-1".into(),
        action_ids: vec!["like".into()],
        ..Default::default()
    };
    click.params.insert("action".into(), json!("like"));
    let ack = sb.click(&click).await.expect("click ACK");
    assert_eq!(ack.code, Some(200));
    assert_eq!(
        ack.data["response"]["cardData"]["cardParamMap"]["status"],
        "like"
    );
    click.raw_content = Some("{not json".into());
    assert_eq!(sb.click(&click).await.unwrap().code, Some(400));
    click.raw_content = None;
    click.omit_content = true;
    assert_eq!(sb.click(&click).await.unwrap().code, Some(400));
    client.stop().await;
    sb.shutdown().await;
}
