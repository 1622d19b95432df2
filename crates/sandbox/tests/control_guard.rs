//! The control API's guards (content type, Host/Origin, token), its bounds on waits and
//! delays, and the bounded record lists.

mod common;

use std::time::Duration;

use common::*;
use jitnode_dingtalk_wire::frame::Ack;
use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig, SandboxError, MAX_WAIT_MS};
use serde_json::{json, Value};

async fn post_raw(
    url: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut r = reqwest::Client::new().post(url).body(body.to_string());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap().status().as_u16()
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut r = reqwest::Client::new().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn control_posts_must_be_json() {
    let sb = sandbox(quiet()).await;
    let url = format!("{}/control/apps", sb.base_url());
    let body = r#"{"clientId":"x","clientSecret":"y"}"#;
    // What a cross-site form or fetch may send without asking first.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        assert_eq!(post_raw(&url, ct, &[], body).await, 415, "{ct:?}");
    }
    // Body-less faults too.
    let expire = format!("{}/control/faults/expire-tokens", sb.base_url());
    assert_eq!(post_raw(&expire, None, &[], "").await, 415);
    assert_eq!(
        post_raw(&url, Some("application/json"), &[], body).await,
        200
    );
    assert_eq!(
        post_raw(&url, Some("Application/JSON; charset=utf-8"), &[], body).await,
        200
    );
    // The OpenAPI side is not the control API and keeps DingTalk's behaviour.
    let (status, _) = open(&sb.base_url(), APP, SECRET, &["/v1.0/im/bot/messages/get"]).await;
    assert_eq!(status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn control_answers_only_loopback_hosts_and_origins() {
    let sb = sandbox(quiet()).await;
    let port = sb.addr().port();
    let url = format!("{}/control/transcript", sb.base_url());
    assert_eq!(get_with(&url, &[]).await, 200);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("127.1.2.3:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_string(),
    ] {
        assert_eq!(get_with(&url, &[("host", &host)]).await, 200, "{host}");
    }
    // DNS rebinding: the page's own name arrives as Host.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("[::2]:{port}"),
        "127.0.0.1:x".to_string(),
    ] {
        assert_eq!(get_with(&url, &[("host", &host)]).await, 403, "{host}");
    }
    let origin_ok = format!("http://localhost:{port}");
    assert_eq!(get_with(&url, &[("origin", &origin_ok)]).await, 200);
    for origin in [
        "http://evil.example",
        "null",
        "file://",
        "http://127.0.0.1.nip.io",
    ] {
        assert_eq!(get_with(&url, &[("origin", origin)]).await, 403, "{origin}");
    }
    let msgs = format!("{}/control/messages", sb.base_url());
    let body = json!({"clientId": APP, "text": "hi"}).to_string();
    assert_eq!(
        post_raw(
            &msgs,
            Some("application/json"),
            &[("origin", "http://evil.example")],
            &body
        )
        .await,
        403
    );
    assert!(sb.transcript().entries.is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_control_token_is_demanded_when_set_and_beyond_loopback() {
    let err = Sandbox::start(SandboxConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..quiet()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, SandboxError::ControlTokenRequired { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("control_token"), "{err}");

    let sb = sandbox(SandboxConfig {
        control_token: Some("tok-123".into()),
        ..quiet()
    })
    .await;
    let url = format!("{}/control/connections", sb.base_url());
    assert_eq!(get_with(&url, &[]).await, 401);
    assert_eq!(
        get_with(&url, &[("authorization", "Bearer nope")]).await,
        401
    );
    assert_eq!(get_with(&url, &[("authorization", "tok-123")]).await, 401);
    assert_eq!(
        get_with(&url, &[("authorization", "Bearer tok-123")]).await,
        200
    );
    // With the token, any name may reach it (it is what a remote client uses).
    assert_eq!(
        get_with(
            &url,
            &[
                ("authorization", "Bearer tok-123"),
                ("host", "sandbox.lan:80")
            ]
        )
        .await,
        200
    );
    // The token stays out of Debug.
    let config = SandboxConfig {
        control_token: Some("tok-123".into()),
        ..quiet()
    };
    assert!(!format!("{config:?}").contains("tok-123"));
    sb.shutdown().await;
}

#[tokio::test]
async fn huge_waits_and_delays_are_400s_not_panics() {
    let sb = sandbox(quiet()).await;
    let base = sb.base_url();
    let mut ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    let posted = sb.post_message(&PostMessage::text(APP, "x")).unwrap();
    let f = next_non_ping(&mut ws).await.unwrap();
    ack_ok(&mut ws, &f).await;

    let redeliver = format!("{base}/control/faults/redeliver");
    for after in [json!(1e300), json!(-1), json!("5"), json!(3601)] {
        let body = json!({"messageId": posted.message_id, "afterSecs": after}).to_string();
        assert_eq!(
            post_raw(&redeliver, Some("application/json"), &[], &body).await,
            400,
            "{after}"
        );
    }
    for ms in [
        u64::MAX.to_string(),
        (MAX_WAIT_MS + 1).to_string(),
        "-1".into(),
        "x".into(),
    ] {
        let url = format!(
            "{base}/control/wait-ack?messageId={}&timeoutMs={ms}",
            posted.message_id
        );
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 400, "{ms}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("timeoutMs"), "{v}");
    }
    // Still serving, and the limits themselves are fine.
    let url = format!(
        "{base}/control/wait-ack?messageId={}&timeoutMs={MAX_WAIT_MS}",
        posted.message_id
    );
    assert_eq!(get_with(&url, &[]).await, 200);
    let body = json!({"messageId": posted.message_id, "afterSecs": 0.01}).to_string();
    assert_eq!(
        post_raw(&redeliver, Some("application/json"), &[], &body).await,
        200
    );
    let again = next_non_ping(&mut ws).await.unwrap();
    assert_ne!(again.message_id(), posted.message_id);
    // The Rust API saturates instead of overflowing.
    assert!(sb
        .wait_for_ack(&posted.message_id, Duration::MAX)
        .await
        .is_some());
    assert!(sb.wait_for_replies(0, Duration::MAX).await);
    assert!(sb.wait_for_connections(APP, 1, Duration::MAX).await);
    sb.shutdown().await;
}

#[tokio::test]
async fn record_lists_keep_only_the_newest() {
    let (sb, mut ws) = linked(SandboxConfig {
        max_records: 3,
        ..quiet()
    })
    .await;
    // ACKs for ids never pushed: each is an ACK record and a problem.
    for i in 0..5 {
        send(
            &mut ws,
            &Ack::callback(&format!("ghost-{i}"), Value::Null).to_text(),
        )
        .await;
    }
    assert!(sb
        .wait_for_ack("ghost-4", Duration::from_secs(5))
        .await
        .is_some());
    let acks: Vec<String> = sb.acks().into_iter().map(|a| a.message_id).collect();
    assert_eq!(acks, ["ghost-2", "ghost-3", "ghost-4"]);
    let problems = sb.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[2].contains("ghost-4"), "{problems:?}");

    // Transcript entries: numbered over the whole run, the oldest dropped.
    let posted = sb.post_message(&PostMessage::text(APP, "x")).unwrap();
    for i in 0..5 {
        let reply = json!({"msgtype": "text", "text": {"content": format!("r{i}")}});
        let v = post_json(&posted.session_webhook, &reply).await;
        assert_eq!(v["errcode"], 0);
    }
    let t = sb.transcript();
    assert_eq!(t.replies(), ["r2", "r3", "r4"]);
    let seqs: Vec<u64> = t.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    // The HTTP view is the same bounded list.
    let acks = get_json(&format!("{}/control/acks", sb.base_url())).await;
    assert_eq!(acks.as_array().unwrap().len(), 3);
    sb.shutdown().await;
}
