//! A bare WebSocket client speaking the wire protocol by hand, so the sandbox is tested
//! without depending on jitnode-stream's client.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jitnode_dingtalk_wire::frame::{Ack, Frame};
use jitnode_sandbox::{AckRecord, Sandbox, SandboxConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const APP: &str = "dingtestapp";
pub const SECRET: &str = "test-secret";

pub async fn sandbox(config: SandboxConfig) -> Sandbox {
    let sb = Sandbox::start(config)
        .await
        .expect("sandbox starts on loopback");
    sb.register_app(APP, SECRET);
    sb
}

/// Asserts that at least `least` passed (on tokio's clock) since `start`.
pub fn assert_elapsed(start: tokio::time::Instant, least: Duration) {
    assert!(start.elapsed() >= least, "{:?}", start.elapsed());
}

/// Config with pings far apart, so a paused clock does not fill the socket with them.
pub fn quiet() -> SandboxConfig {
    SandboxConfig {
        ping_interval: Duration::from_secs(3600),
        ..SandboxConfig::default()
    }
}

pub async fn open(base: &str, id: &str, secret: &str, topics: &[&str]) -> (u16, Value) {
    let subs: Vec<Value> = topics
        .iter()
        .map(|t| json!({"type": "CALLBACK", "topic": t}))
        .collect();
    open_with(
        base,
        &json!({"clientId": id, "clientSecret": secret, "subscriptions": subs, "ua": "test/1"}),
    )
    .await
}

/// Opens a connection with the request `body` as given; its status and JSON answer (null
/// when it is not JSON).
pub async fn open_with(base: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1.0/gateway/connections/open"))
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .expect("open request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// POSTs `body` as JSON to `url` and reads the answer, which must be JSON.
pub async fn post_json(url: &str, body: &Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST request")
        .json()
        .await
        .expect("a JSON answer")
}

/// GETs `url` and reads the answer, which must be JSON.
pub async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET request")
        .json()
        .await
        .expect("a JSON answer")
}

pub async fn open_ticket(sb: &Sandbox) -> (String, String) {
    let (status, v) = open(
        &sb.base_url(),
        APP,
        SECRET,
        &["/v1.0/im/bot/messages/get", "/v1.0/card/instances/callback"],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    (
        v["endpoint"].as_str().unwrap().to_string(),
        v["ticket"].as_str().unwrap().to_string(),
    )
}

pub async fn connect_with(
    endpoint: &str,
    ticket: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{endpoint}?ticket={ticket}");
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
}

/// Waits until the sandbox counts `n` connections of [`APP`].
pub async fn wait_linked(sb: &Sandbox, n: usize) {
    assert!(
        sb.wait_for_connections(APP, n, Duration::from_secs(5))
            .await,
        "{n} connection(s) of {APP} expected"
    );
}

/// A sandbox with `config` and one connection of [`APP`], open and counted by it.
pub async fn linked(config: SandboxConfig) -> (Sandbox, Ws) {
    let sb = sandbox(config).await;
    let ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    (sb, ws)
}

/// A sandbox with `config` and two connections of [`APP`], open and counted by it.
pub async fn two_linked(config: SandboxConfig) -> (Sandbox, Ws, Ws) {
    let sb = sandbox(config).await;
    let a = connect(&sb).await;
    let b = connect(&sb).await;
    wait_linked(&sb, 2).await;
    (sb, a, b)
}

/// The ACK of `message_id`, once the sandbox has it (within 5 s).
pub async fn acked(sb: &Sandbox, message_id: &str) -> AckRecord {
    sb.wait_for_ack(message_id, Duration::from_secs(5))
        .await
        .expect("an ACK recorded")
}

/// [`quiet`], with pushes not ACKed within `after` delivered again.
pub fn redelivering(after: Duration) -> SandboxConfig {
    SandboxConfig {
        redeliver_unacked_after: Some(after),
        ..quiet()
    }
}

pub async fn connect(sb: &Sandbox) -> Ws {
    let (endpoint, ticket) = open_ticket(sb).await;
    connect_with(&endpoint, &ticket)
        .await
        .expect("websocket connects")
}

/// Next TEXT frame (skipping WebSocket control frames); None when closed.
pub async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => {
                return Some(Frame::parse(t.as_str()).expect("sandbox frames parse"))
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Next frame that is not a ping (pings are answered on the way).
pub async fn next_non_ping(ws: &mut Ws) -> Option<Frame> {
    loop {
        let f = next_frame(ws).await?;
        if f.topic() == "ping" {
            send(ws, &Ack::pong(&f).to_text()).await;
            continue;
        }
        return Some(f);
    }
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.to_string().into()))
        .await
        .expect("send on websocket");
}

pub async fn ack_ok(ws: &mut Ws, frame: &Frame) {
    send(
        ws,
        &Ack::callback(frame.message_id(), Value::Null).to_text(),
    )
    .await;
}
