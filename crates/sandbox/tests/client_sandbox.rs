//! The Stream client against the real sandbox gateway: the sandbox checks every ACK's shape
//! and the connection it came on, so `problems()` staying empty is part of each test.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jitnode_dingtalk_wire::api::CreateAndDeliver;
use jitnode_dingtalk_wire::{CardCallback, CardTarget, ParamMap};
use jitnode_sandbox::{Click, PostMessage, Sandbox, SandboxConfig};
use jitnode_stream::{Client, ClientConfig, ReplyError, Status};
use jitnode_test_kit::robot::wait_connected;
use jitnode_test_kit::stream::{client_config, wait_until, Recorder, WAIT};
use serde_json::{json, Value};

const APP: &str = "dingsandboxapp";
const SECRET: &str = "sandbox-secret-0001";

/// An echo robot: it replies to each message and counts the handlings per msgId.
fn echoing() -> Recorder {
    Recorder {
        reply: true,
        card_answer: Some(status_answer),
        ..Recorder::default()
    }
}

/// [`echoing`], each handling waiting between half of `ms` and `ms` first, so a test can act
/// while the handler waits.
fn slow_echoing(ms: u64) -> Recorder {
    Recorder {
        delay_ms: ms / 2..ms + 1,
        ..echoing()
    }
}

/// A click's answer: the card's `status` becomes the clicked action.
fn status_answer(cb: &CardCallback) -> Value {
    let action = cb.param("action").unwrap_or("none").to_string();
    json!({
        "cardUpdateOptions": {"updateCardDataByKey": true},
        "cardData": {"cardParamMap": {"status": action}},
    })
}

async fn sandbox() -> Sandbox {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox binds 127.0.0.1:0");
    sb.register_app(APP, SECRET);
    sb
}

fn config(sb: &Sandbox) -> ClientConfig {
    client_config(APP, SECRET, &sb.base_url())
}

async fn connected(sb: &Sandbox, n: usize) {
    wait_connected(sb, APP, n).await;
}

/// A sandbox and a client of `robot`, its config changed by `tune`, connected to it.
async fn started(
    robot: Recorder,
    tune: impl FnOnce(&mut ClientConfig),
) -> (Sandbox, Arc<Recorder>, Client) {
    let sb = sandbox().await;
    let robot = Arc::new(robot);
    let mut cfg = config(&sb);
    tune(&mut cfg);
    let client = Client::start(cfg, robot.clone());
    connected(&sb, 1).await;
    (sb, robot, client)
}

/// Posts `n` texts `<prefix><i>` to [`APP`].
fn post_texts(sb: &Sandbox, prefix: &str, n: usize) {
    for i in 0..n {
        sb.post_message(&PostMessage::text(APP, &format!("{prefix}{i}")))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reply_reaches_the_transcript_with_valid_acks() {
    let (sb, echo, client) = started(echoing(), |_| {}).await;
    let posted = sb
        .post_message(&PostMessage::text(APP, "hello there").in_group("cidGroup1"))
        .unwrap();
    let ack = sb
        .wait_for_ack(&posted.message_id, WAIT)
        .await
        .expect("ACK");
    assert!(ack.valid(), "{:?}", ack.problems);
    assert_eq!(ack.code, Some(200));
    wait_until("reply", || echo.count(&posted.msg_id) == 1).await;
    assert_eq!(sb.transcript().replies(), vec!["echo: hello there"]);
    let entry = &sb.transcript().entries[0];
    assert_eq!(entry.body["at"]["atUserIds"], json!(["user001"]));
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_waits_wake_on_new_entries_after_the_mark() {
    let (sb, _echo, client) = started(echoing(), |_| {}).await;
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
    let (sb, echo, client) = started(slow_echoing(2000), |c| c.max_concurrent_handlers = 4).await;
    post_texts(&sb, "q", 50);
    wait_until("handlers busy", || echo.busy.load(Ordering::SeqCst) > 0).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.ping_now(&conn);
    wait_until("ping echoed", || {
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
    let (sb, echo, client) = started(slow_echoing(30), |c| c.max_concurrent_handlers = 64).await;
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
    wait_until("1000 handled", || echo.total() == 1000).await;
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
    let (sb, echo, client) = started(echoing(), |_| {}).await;
    post_texts(&sb, "a", 20);
    wait_until("first 20", || echo.total() == 20).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.drop_connection(&conn).unwrap();
    wait_until("new connection", || {
        sb.connections_of(APP)
            .iter()
            .any(|c| c.connection_id != conn && c.accepting)
    })
    .await;
    post_texts(&sb, "b", 20);
    wait_until("all 40", || echo.total() == 40).await;
    assert_eq!(client.stats().connections, 2);
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_handled_once() {
    let (sb, echo, client) = started(slow_echoing(200), |_| {}).await;
    let p = sb.post_message(&PostMessage::text(APP, "once")).unwrap();
    // While being handled, and after.
    let again = sb.redeliver_now(&p.message_id).unwrap();
    assert_ne!(again, p.message_id);
    wait_until("handled", || echo.count(&p.msg_id) == 1).await;
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
    let client = Client::start(cfg, Arc::new(echoing()));
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
    let (sb, echo, client) = started(slow_echoing(400), |_| {}).await;
    sb.post_message(&PostMessage::text(APP, "late")).unwrap();
    let p2 = sb.post_message(&PostMessage::text(APP, "later")).unwrap();
    // Both handlers are still in their 200+ ms wait.
    sb.expire_webhooks();
    wait_until("two failures", || client.stats().failed == 2).await;
    let errs = echo.reply_errors.lock().unwrap().clone();
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
    let client = Client::start(config(&sb), Arc::new(echoing()));
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
