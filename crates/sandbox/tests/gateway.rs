//! Open connection, tickets, WebSocket push, ACK recording and validation, pings.

mod common;

use std::time::Duration;

use common::*;
use jitnode_dingtalk_wire::frame::{Ack, FrameType};
use jitnode_sandbox::{PingMode, PostMessage, SandboxConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn bad_credentials_get_401_auth_failed() {
    let sb = sandbox(quiet()).await;
    let (status, v) = open(&sb.base_url(), APP, "wrong", &["/v1.0/im/bot/messages/get"]).await;
    assert_eq!(status, 401);
    assert_eq!(v["code"], "authFailed");
    let (status, v) = open(
        &sb.base_url(),
        "nobody",
        SECRET,
        &["/v1.0/im/bot/messages/get"],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["code"], "authFailed");
    let (status, _) = open(&sb.base_url(), APP, SECRET, &[]).await;
    assert_eq!(status, 400, "subscriptions are required");
    sb.shutdown().await;
}

#[tokio::test]
async fn ticket_is_single_use() {
    let sb = sandbox(quiet()).await;
    let (endpoint, ticket) = open_ticket(&sb).await;
    assert!(endpoint.starts_with("ws://127.0.0.1:") && endpoint.ends_with("/connect"));
    let _ws = connect_with(&endpoint, &ticket)
        .await
        .expect("first use works");
    match connect_with(&endpoint, &ticket).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("second use must be refused with HTTP 4xx, got {other:?}"),
    }
    match connect_with(&endpoint, "made-up").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert!(r.status().is_client_error())
        }
        other => panic!("unknown ticket must be refused, got {other:?}"),
    }
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn ticket_expires_after_90_seconds() {
    let sb = sandbox(quiet()).await;
    let (endpoint, ticket) = open_ticket(&sb).await;
    let (endpoint2, ticket2) = open_ticket(&sb).await;
    tokio::time::advance(Duration::from_secs(89)).await;
    assert!(
        connect_with(&endpoint2, &ticket2).await.is_ok(),
        "still valid at 89 s"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    match connect_with(&endpoint, &ticket).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expired ticket must be refused, got {other:?}"),
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn posted_message_is_pushed_and_ack_recorded() {
    let (sb, mut ws) = linked(quiet()).await;
    let posted = sb
        .post_message(
            &PostMessage::text(APP, "hello")
                .in_group("cidG1")
                .from(Some("staff9"), "Ann"),
        )
        .unwrap();
    let f = next_non_ping(&mut ws).await.expect("frame pushed");
    assert_eq!(f.kind, FrameType::Callback);
    assert_eq!(f.topic(), "/v1.0/im/bot/messages/get");
    assert_eq!(f.message_id(), posted.message_id);
    assert_eq!(f.header("appId"), Some(APP));
    assert!(f.header("time").is_some() && f.header("connectionId").is_some());
    let d = f.data_json().unwrap();
    assert_eq!(d["msgId"], posted.msg_id.as_str());
    assert_eq!(
        d["text"]["content"], " hello",
        "group text keeps the @ space"
    );
    assert_eq!(d["conversationType"], "2");
    assert_eq!(d["conversationId"], "cidG1");
    assert_eq!(d["senderStaffId"], "staff9");
    assert_eq!(d["robotCode"], APP);
    assert_eq!(d["isInAtList"], true);
    assert!(d["sessionWebhook"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/robot/sendBySession?session=", sb.base_url())));
    assert!(d["sessionWebhookExpiredTime"].as_u64().unwrap() > d["createAt"].as_u64().unwrap());
    ack_ok(&mut ws, &f).await;
    let ack = acked(&sb, &posted.message_id).await;
    assert!(ack.valid(), "{:?}", ack.problems);
    assert_eq!(ack.code, Some(200));
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    sb.shutdown().await;
}

#[tokio::test]
async fn external_one_to_one_sender_has_no_staff_id() {
    let (sb, mut ws) = linked(quiet()).await;
    sb.post_message(&PostMessage::text(APP, "hi").from(None, "Guest"))
        .unwrap();
    let d = next_non_ping(&mut ws).await.unwrap().data_json().unwrap();
    assert_eq!(d["conversationType"], "1");
    assert_eq!(d["text"]["content"], "hi");
    assert!(d.get("senderStaffId").is_none());
    assert!(d.get("conversationTitle").is_none());
    // A group message that does not @ the robot is not delivered.
    let mut m = PostMessage::text(APP, "chatter").in_group("cidG");
    m.at_robot = false;
    assert!(!sb.post_message(&m).unwrap().delivered);
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_acks_are_noted() {
    let (sb, mut ws) = linked(quiet()).await;
    let p1 = sb.post_message(&PostMessage::text(APP, "one")).unwrap();
    let f1 = next_non_ping(&mut ws).await.unwrap();
    // data not double-encoded, and no `response`.
    send(&mut ws, &json!({"code": 200, "headers": {"messageId": f1.message_id(), "contentType": "application/json"}, "message": "OK", "data": {"response": null}}).to_string()).await;
    let a = acked(&sb, &p1.message_id).await;
    assert!(!a.valid());
    assert!(
        a.problems.iter().any(|p| p.contains("JSON-encoded string")),
        "{:?}",
        a.problems
    );

    let p2 = sb.post_message(&PostMessage::text(APP, "two")).unwrap();
    let f2 = next_non_ping(&mut ws).await.unwrap();
    send(
        &mut ws,
        &Ack::new(200, f2.message_id(), "OK", &json!({"nope": 1})).to_text(),
    )
    .await;
    let a = acked(&sb, &p2.message_id).await;
    assert!(
        a.problems.iter().any(|p| p.contains("no `response`")),
        "{:?}",
        a.problems
    );
    // A second ACK for the same frame, and one for an id never pushed.
    ack_ok(&mut ws, &f2).await;
    send(
        &mut ws,
        &Ack::callback("never-pushed", Value::Null).to_text(),
    )
    .await;
    send(&mut ws, "not json").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sb.acks().len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let problems = sb.problems().join("\n");
    assert!(problems.contains("second ACK"), "{problems}");
    assert!(problems.contains("never pushed"), "{problems}");
    assert!(problems.contains("not JSON"), "{problems}");
    sb.shutdown().await;
}

#[tokio::test]
async fn ack_on_another_connection_is_a_problem() {
    let (sb, mut a, mut b) = two_linked(quiet()).await;
    let p = sb.post_message(&PostMessage::text(APP, "x")).unwrap();
    // Whichever got it, answer on the other one.
    let conns = sb.connections_of(APP);
    let got_a = conns
        .iter()
        .find(|c| c.pushed == 1)
        .map(|c| c.connection_id.clone())
        == p.connection_id;
    let _ = got_a;
    let (from, to) = if tokio::time::timeout(Duration::from_millis(300), next_non_ping(&mut a))
        .await
        .ok()
        .flatten()
        .is_some()
    {
        ("a", &mut b)
    } else {
        let _ = next_non_ping(&mut b).await.unwrap();
        ("b", &mut a)
    };
    send(to, &Ack::callback(&p.message_id, Value::Null).to_text()).await;
    let ack = acked(&sb, &p.message_id).await;
    assert!(
        ack.problems.iter().any(|x| x.contains("was pushed on")),
        "from {from}: {:?}",
        ack.problems
    );
    sb.shutdown().await;
}

/// Config with pings every 30 s.
fn pings_every_30s() -> SandboxConfig {
    SandboxConfig {
        ping_interval: Duration::from_secs(30),
        ..SandboxConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn pings_carry_opaque_and_echo_is_checked() {
    let sb = sandbox(pings_every_30s()).await;
    let mut ws = connect(&sb).await;

    let ping = next_frame(&mut ws).await.expect("a ping comes");

    assert_eq!(ping.kind, FrameType::System);
    assert_eq!(ping.topic(), "ping");
    assert!(ping.data_json().unwrap()["opaque"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    send(&mut ws, &Ack::pong(&ping).to_text()).await;
    // The second ping gets a wrong echo.
    let ping2 = next_frame(&mut ws).await.expect("another ping");
    send(
        &mut ws,
        &Ack::new(200, ping2.message_id(), "OK", &json!({"opaque": "other"})).to_text(),
    )
    .await;
    let _ = next_frame(&mut ws).await.expect("third ping");
    let pings = sb.pings();
    assert_eq!(pings[0].echoed, Some(true), "{pings:?}");
    assert_eq!(pings[1].echoed, Some(false), "{pings:?}");
    assert!(sb
        .problems()
        .iter()
        .any(|p| p.contains("ping echo differs")));
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pings_can_be_withheld_and_delayed() {
    let sb = sandbox(pings_every_30s()).await;
    sb.set_ping_mode(PingMode::Withhold);
    let mut ws = connect(&sb).await;
    assert!(
        sb.wait_for_connections(APP, 1, Duration::from_secs(1))
            .await
    );
    let got = tokio::time::timeout(Duration::from_secs(100), next_frame(&mut ws)).await;
    assert!(got.is_err(), "no ping while withheld");
    assert!(sb.pings().is_empty());
    sb.set_ping_mode(PingMode::Delay { ms: 20_000 });
    let start = tokio::time::Instant::now();
    let ping = next_frame(&mut ws).await.expect("delayed ping comes");
    assert_eq!(ping.topic(), "ping");
    // Next due tick (<= 30 s) plus the 20 s delay.
    assert_elapsed(start, Duration::from_secs(20));
    sb.shutdown().await;
}

#[tokio::test]
async fn events_carry_event_headers_and_need_a_status_ack() {
    let sb = sandbox(quiet()).await;
    let (_, v) = open_with(
        &sb.base_url(),
        &json!({"clientId": APP, "clientSecret": SECRET,
            "subscriptions": [{"type": "EVENT", "topic": "*"}]}),
    )
    .await;
    let mut ws = connect_with(
        v["endpoint"].as_str().unwrap(),
        v["ticket"].as_str().unwrap(),
    )
    .await
    .unwrap();
    wait_linked(&sb, 1).await;
    // Not subscribed to robot messages: nothing to push them on.
    assert!(sb.post_message(&PostMessage::text(APP, "x")).is_err());
    let (id, _) = sb
        .push_event(APP, "chat_update_title", &json!({"title": "t"}))
        .unwrap();
    let f = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(f.kind, FrameType::Event);
    assert_eq!(f.header("eventType"), Some("chat_update_title"));
    for h in [
        "eventId",
        "eventCorpId",
        "eventBornTime",
        "eventUnifiedAppId",
    ] {
        assert!(f.header(h).is_some(), "{h}");
    }
    // A CALLBACK-shaped ACK is wrong for an EVENT.
    ack_ok(&mut ws, &f).await;
    let a = acked(&sb, &id).await;
    assert!(
        a.problems.iter().any(|p| p.contains("SUCCESS or LATER")),
        "{:?}",
        a.problems
    );
    let (id2, _) = sb.push_event(APP, "x", &json!({})).unwrap();
    let f = next_non_ping(&mut ws).await.unwrap();
    send(&mut ws, &Ack::event(f.message_id(), true, "ok").to_text()).await;
    assert!(acked(&sb, &id2).await.valid());
    sb.shutdown().await;
}

#[tokio::test]
async fn raw_frames_are_sent_verbatim_and_their_acks_expected() {
    let (sb, mut ws) = linked(quiet()).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    let bad = r#"{"specVersion":"1.0","type":"CALLBACK","headers":{"messageId":"raw1","topic":"/v1.0/im/bot/messages/get"},"data":"not json"}"#;
    sb.send_raw(&conn, bad).unwrap();
    let got = loop {
        match futures_util::StreamExt::next(&mut ws)
            .await
            .unwrap()
            .unwrap()
        {
            tokio_tungstenite::tungstenite::Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    };
    assert_eq!(got, bad);
    send(
        &mut ws,
        &Ack::error(400, "raw1", "data is not JSON").to_text(),
    )
    .await;
    let a = acked(&sb, "raw1").await;
    assert_eq!(a.code, Some(400));
    assert!(
        a.valid(),
        "an error ACK for a raw frame is expected: {:?}",
        a.problems
    );
    assert!(sb.send_raw("nope", "x").is_err());
    sb.shutdown().await;
}

#[tokio::test]
async fn open_without_accept_json_answers_xml() {
    let sb = sandbox(quiet()).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1.0/gateway/connections/open", sb.base_url()))
        .json(&json!({"clientId": APP, "clientSecret": SECRET,
            "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err());
    sb.shutdown().await;
}
