//! Fault injection: disconnect, dropped links, redelivery, random spread over connections.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use jitnode_sandbox::{PostMessage, SandboxError};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(start_paused = true)]
async fn disconnect_stops_delivery_then_closes_after_grace() {
    let (sb, mut ws) = linked(quiet()).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.send_disconnect(&conn).unwrap();
    let f = next_frame(&mut ws).await.unwrap();
    assert_eq!(f.topic(), "disconnect");
    assert!(f.data_json().unwrap()["reason"].is_string());
    assert!(!sb.connections_of(APP)[0].accepting);
    // Nothing is pushed on a connection told to go.
    assert!(matches!(
        sb.post_message(&PostMessage::text(APP, "x")),
        Err(SandboxError::NoConnection { .. })
    ));
    let start = tokio::time::Instant::now();
    // Then a close frame about 10 s later.
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(c))) => break c,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert!(closed.is_some());
    assert_elapsed(start, Duration::from_secs(9));
    sb.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_has_no_close_frame() {
    let (sb, mut ws) = linked(quiet()).await;
    let conn = sb.connections_of(APP)[0].connection_id.clone();
    sb.drop_connection(&conn).unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(_))) => panic!("a dropped link sends no close frame"),
            Some(Ok(_)) => continue,
            // Reset / EOF without closing handshake, as when a link dies.
            Some(Err(_)) | None => break,
        }
    }
    assert!(sb.connections_of(APP).is_empty());
    assert!(sb.drop_connection(&conn).is_err());
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn redelivery_after_n_seconds_keeps_msg_id() {
    let (sb, mut ws) = linked(quiet()).await;
    let p = sb
        .post_message(&PostMessage::text(APP, "slow question"))
        .unwrap();
    let first = next_non_ping(&mut ws).await.unwrap();
    sb.redeliver(&p.message_id, Duration::from_secs(30))
        .unwrap();
    let start = tokio::time::Instant::now();
    let again = next_non_ping(&mut ws).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert_ne!(again.message_id(), first.message_id());
    assert_eq!(
        again.data_json().unwrap()["msgId"],
        first.data_json().unwrap()["msgId"]
    );
    // Both ACKed: each is a distinct frame, no problem. Real time from here, so the
    // wait below is not auto-advanced past the ACK still in flight on the socket.
    tokio::time::resume();
    ack_ok(&mut ws, &first).await;
    ack_ok(&mut ws, &again).await;
    assert!(sb
        .wait_for_ack(again.message_id(), Duration::from_secs(5))
        .await
        .is_some());
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    assert!(matches!(
        sb.redeliver("unknown", Duration::ZERO),
        Err(SandboxError::UnknownMessage(_))
    ));
    sb.shutdown().await;
}

#[tokio::test]
async fn pushes_spread_randomly_over_connections() {
    let (sb, mut a, mut b) = two_linked(quiet()).await;
    let n = 200;
    for i in 0..n {
        sb.post_message(&PostMessage::text(APP, &format!("m{i}")))
            .unwrap();
    }
    let counts: Vec<u64> = sb.connections_of(APP).iter().map(|c| c.pushed).collect();
    assert_eq!(counts.iter().sum::<u64>(), n);
    // Binomial(200, 0.5): below 60 on either side is vanishingly unlikely if random.
    assert!(counts.iter().all(|&c| c >= 60), "{counts:?}");
    // And each socket really got its share.
    let mut got = 0;
    for ws in [&mut a, &mut b] {
        while let Ok(Some(f)) =
            tokio::time::timeout(Duration::from_millis(300), next_non_ping(ws)).await
        {
            ack_ok(ws, &f).await;
            got += 1;
        }
    }
    assert_eq!(got, n);
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn late_ack_causes_redelivery_when_enabled() {
    let (sb, mut ws) = linked(redelivering(Duration::from_secs(20))).await;
    let acked = sb.post_message(&PostMessage::text(APP, "fast")).unwrap();
    let slow = sb.post_message(&PostMessage::text(APP, "slow")).unwrap();
    let f1 = next_non_ping(&mut ws).await.unwrap();
    let f2 = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(f1.message_id(), acked.message_id);
    assert_eq!(f2.message_id(), slow.message_id);
    ack_ok(&mut ws, &f1).await;
    // Only the un-ACKed one comes again, with the same msgId.
    let again = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(again.data_json().unwrap()["msgId"], slow.msg_id.as_str());
    assert_ne!(again.message_id(), slow.message_id);
    ack_ok(&mut ws, &again).await;
    tokio::time::resume();
    assert!(sb
        .wait_for_ack(again.message_id(), Duration::from_secs(5))
        .await
        .is_some());
    let robot_acks = sb.acks().iter().filter(|a| a.topic != "ping").count();
    assert_eq!(robot_acks, 2);
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unacked_push_lost_with_its_link_is_redelivered_once_the_app_reconnects() {
    let (sb, mut ws) = linked(redelivering(Duration::from_secs(5))).await;
    let p = sb.post_message(&PostMessage::text(APP, "lost")).unwrap();
    let f = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(f.message_id(), p.message_id);
    // The link dies before the ACK; the app stays away past the first redelivery try.
    sb.drop_connection(p.connection_id.as_deref().unwrap())
        .unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(sb.connections_of(APP).is_empty());
    let mut ws = connect(&sb).await;
    let again = tokio::time::timeout(Duration::from_secs(30), next_non_ping(&mut ws))
        .await
        .expect("the message comes again on the new connection")
        .unwrap();
    assert_eq!(again.data_json().unwrap()["msgId"], p.msg_id.as_str());
    assert_ne!(again.message_id(), p.message_id);
    ack_ok(&mut ws, &again).await;
    assert!(sb.problems().is_empty(), "{:?}", sb.problems());
    sb.shutdown().await;
}
