//! The typed control client against a real sandbox on loopback: registering, posting,
//! clicking and reading the transcript over HTTP, with typed refusals.

use std::sync::Arc;
use std::time::Duration;

use jitnode_dingtalk_wire::CallKind;
use jitnode_sandbox::{Click, ControlClient, ControlError, PostMessage, Sandbox, SandboxConfig};
use jitnode_stream::{Client, ClientConfig};
use jitnode_test_kit::stream::Recorder;
use serde_json::json;

const APP: &str = "dingcontrolapp";
const SECRET: &str = "control-secret-0001";
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_posted_through_the_control_client_is_answered() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let ctl = ControlClient::new(&format!("{}/", sb.base_url()));
    assert_eq!(ctl.base_url(), sb.base_url());
    // Before registering, the app is unknown: a refusal with the sandbox's status.
    let e = ctl
        .post_message(&PostMessage::text(APP, "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ControlError::Refused { path: "/control/messages", status, .. } if status >= 400),
        "{e}"
    );
    ctl.register_app(APP, SECRET).await.unwrap();
    assert_eq!(ctl.transcript().await.unwrap().last_seq(), 0);

    let config = ClientConfig::new(APP, SECRET).with_base_url(&sb.base_url());
    // An echo robot; no card of this test reaches it.
    let echo = Recorder {
        reply: true,
        ..Recorder::default()
    };
    let client = Client::start(config, Arc::new(echo));
    assert!(sb.wait_for_connections(APP, 1, WAIT).await);
    let posted = ctl
        .post_message(&PostMessage::text(APP, "ping me"))
        .await
        .unwrap();
    assert!(posted.delivered);
    let ack = sb.wait_for_ack(&posted.message_id, WAIT).await.unwrap();
    assert!(ack.valid(), "{:?}", ack.problems);
    // The reply follows the ACK; read it back over HTTP.
    let deadline = tokio::time::Instant::now() + WAIT;
    let t = loop {
        let t = ctl.transcript().await.unwrap();
        if !t.replies().is_empty() {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reply in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(t.replies(), ["echo: ping me"]);
    assert_eq!(t.entries[0].call_kind(), Some(CallKind::Webhook));
    assert!(!t.entries[0].is_card());
    assert!(t.last_seq() >= 1);

    // A click on a card that does not exist is refused, typed.
    let e = ctl
        .click(&Click {
            client_id: APP.into(),
            out_track_id: "no-such-card".into(),
            params: json!({"action": "x"}).as_object().unwrap().clone(),
            ..Click::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ControlError::Refused {
                path: "/control/click",
                ..
            }
        ),
        "{e}"
    );
    client.stop().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn a_control_token_is_sent_and_never_shown() {
    let sb = Sandbox::start(SandboxConfig {
        control_token: Some("tok-999".into()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let without = ControlClient::new(&sb.base_url());
    match without.transcript().await.unwrap_err() {
        ControlError::Refused { status, .. } => assert_eq!(status, 401),
        other => panic!("{other}"),
    }
    let with = ControlClient::new(&sb.base_url()).with_token("tok-999".into());
    assert!(with.transcript().await.unwrap().entries.is_empty());
    assert!(!format!("{with:?}").contains("tok-999"));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_sandbox_that_is_gone_is_unreachable() {
    // Bind and drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctl = ControlClient::new(&format!("http://127.0.0.1:{port}"));
    let e = ctl.transcript().await.unwrap_err();
    assert!(matches!(e, ControlError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}
