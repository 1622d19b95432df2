//! The Stream client against a scripted gateway on loopback.
//!
//! The gateway here is deliberately small and test-driven (each test pushes exact frames and
//! reads the exact ACKs), so that every client behaviour of issue 3 can be provoked
//! precisely: ping while handlers are busy, disconnect with 1,000 messages in flight, abrupt
//! drops, redelivery, bad credentials, stop during backoff or handshake, each malformed frame
//! kind, token refresh and webhook errors. Real time with short settings is used because
//! the paused clock would jump while the runtime waits on real sockets.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use jitnode_dingtalk_wire::frame::{Frame, FrameType, TOPIC_CARD_CALLBACK, TOPIC_ROBOT};
use jitnode_dingtalk_wire::CardCallback;
use jitnode_stream::{Client, ClientConfig, Handler, ReplyError, Status};
use jitnode_test_kit::stream::{client_config, wait_until, Recorder, WAIT};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout;

const ID: &str = "dingtestapp";
const SECRET: &str = "very-secret-value-42";

#[derive(Clone, Copy, PartialEq)]
enum OpenMode {
    Ok,
    ServerError,
    Hang,
}

enum Out {
    Msg(WsMessage),
    /// Drop the socket without a close frame.
    Drop,
}

struct ServerConn {
    ticket: String,
    to_client: mpsc::UnboundedSender<Out>,
    from_client: mpsc::UnboundedReceiver<Value>,
}

impl ServerConn {
    fn push(&self, frame: &Frame) {
        let _ = self
            .to_client
            .send(Out::Msg(WsMessage::Text(frame.to_text().into())));
    }

    fn push_raw(&self, text: &str) {
        let _ = self
            .to_client
            .send(Out::Msg(WsMessage::Text(text.to_string().into())));
    }

    /// Pushes a robot message `<prefix><i>` (msgId `msg<i>`, text `text`) for each `i`.
    fn push_robots(&self, base: &str, prefix: &str, ids: std::ops::Range<usize>, text: &str) {
        for i in ids {
            self.push(&robot_frame(
                base,
                &format!("{prefix}{i}"),
                &format!("msg{i}"),
                text,
            ));
        }
    }

    fn drop_abruptly(&self) {
        let _ = self.to_client.send(Out::Drop);
    }

    async fn ack(&mut self) -> Value {
        timeout(WAIT, self.from_client.recv())
            .await
            .expect("an ACK in time")
            .expect("connection still open")
    }

    /// ACKs until the one for `message_id` (others are returned too, in order).
    async fn ack_for(&mut self, message_id: &str) -> Value {
        loop {
            let a = self.ack().await;
            if a["headers"]["messageId"] == message_id {
                return a;
            }
        }
    }
}

struct Gw {
    base: Mutex<String>,
    open_mode: Mutex<OpenMode>,
    opens: AtomicUsize,
    tickets: Mutex<HashSet<String>>,
    reject_handshakes: AtomicUsize,
    conns: mpsc::UnboundedSender<ServerConn>,
    tokens_issued: AtomicUsize,
    token_expire: AtomicI64,
    revoked: Mutex<HashSet<String>>,
    webhook_errcode: AtomicI64,
    webhook_bodies: Mutex<Vec<Value>>,
    card_calls: Mutex<Vec<(String, Value)>>,
}

struct Harness {
    gw: Arc<Gw>,
    base: String,
    conns: mpsc::UnboundedReceiver<ServerConn>,
}

impl Harness {
    async fn start() -> Harness {
        let (tx, conns) = mpsc::unbounded_channel();
        let gw = Arc::new(Gw {
            base: Mutex::new(String::new()),
            open_mode: Mutex::new(OpenMode::Ok),
            opens: AtomicUsize::new(0),
            tickets: Mutex::new(HashSet::new()),
            reject_handshakes: AtomicUsize::new(0),
            conns: tx,
            tokens_issued: AtomicUsize::new(0),
            token_expire: AtomicI64::new(7200),
            revoked: Mutex::new(HashSet::new()),
            webhook_errcode: AtomicI64::new(0),
            webhook_bodies: Mutex::new(Vec::new()),
            card_calls: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1.0/gateway/connections/open", post(open))
            .route("/connect", any(connect))
            .route("/v1.0/oauth2/accessToken", post(token))
            .route("/webhook/{session}", post(webhook))
            .route("/v1.0/card/streaming", any(card_call))
            .route("/v1.0/card/instances", any(card_call))
            .with_state(gw.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *gw.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Harness { gw, base, conns }
    }

    fn config(&self) -> ClientConfig {
        let mut c = client_config(ID, SECRET, &self.base);
        c.http_timeout = Duration::from_secs(5);
        c
    }

    async fn next_conn(&mut self) -> ServerConn {
        timeout(WAIT, self.conns.recv())
            .await
            .expect("a client connection in time")
            .expect("gateway alive")
    }

    /// Starts a client of `config` and `handler`, and takes its first connection.
    async fn start_client(
        &mut self,
        config: ClientConfig,
        handler: Arc<dyn Handler>,
    ) -> (Client, ServerConn) {
        let client = Client::start(config, handler);
        (client, self.next_conn().await)
    }

    /// Starts a client of [`Harness::config`] changed by `tune`, handled by a [`recorder`]
    /// changed by `rec`; takes its first connection.
    async fn start_tuned(
        &mut self,
        rec: impl FnOnce(&mut Recorder),
        tune: impl FnOnce(&mut ClientConfig),
    ) -> (Client, Arc<Recorder>, ServerConn) {
        let mut handler = recorder();
        rec(&mut handler);
        let handler = Arc::new(handler);
        let mut config = self.config();
        tune(&mut config);
        let (client, conn) = self.start_client(config, handler.clone()).await;
        (client, handler, conn)
    }

    fn set_open(&self, mode: OpenMode) {
        *self.gw.open_mode.lock().unwrap() = mode;
    }
}

async fn open(State(gw): State<Arc<Gw>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    gw.opens.fetch_add(1, Ordering::SeqCst);
    let mode = *gw.open_mode.lock().unwrap();
    match mode {
        OpenMode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        OpenMode::ServerError => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"code": "x", "message": "down"})),
            )
                .into_response()
        }
        OpenMode::Ok => {}
    }
    assert_eq!(headers.get("accept").unwrap(), "application/json");
    if body["clientId"] != ID || body["clientSecret"] != SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"requestid": "r1", "code": "authFailed", "message": "auth failed"})),
        )
            .into_response();
    }
    let subs = body["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(subs
        .iter()
        .any(|s| s["topic"] == TOPIC_ROBOT && s["type"] == "CALLBACK"));
    let ticket = format!("tk {}", uuid::Uuid::new_v4());
    gw.tickets.lock().unwrap().insert(ticket.clone());
    let base = gw.base.lock().unwrap().replace("http://", "ws://");
    Json(json!({"endpoint": format!("{base}/connect"), "ticket": ticket})).into_response()
}

async fn connect(
    State(gw): State<Arc<Gw>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    // Single use: a ticket is consumed by its first handshake.
    if !gw.tickets.lock().unwrap().remove(&ticket) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if gw
        .reject_handshakes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    ws.on_upgrade(move |socket| serve_ws(gw, ticket, socket))
}

async fn serve_ws(gw: Arc<Gw>, ticket: String, socket: WebSocket) {
    let (to_client, mut out_rx) = mpsc::unbounded_channel();
    let (in_tx, from_client) = mpsc::unbounded_channel();
    let _ = gw.conns.send(ServerConn {
        ticket,
        to_client,
        from_client,
    });
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Out::Msg(m)) => if sink.send(m).await.is_err() { return },
                Some(Out::Drop) | None => return,
            },
            inc = stream.next() => match inc {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("ACKs are JSON");
                    let _ = in_tx.send(v);
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

async fn token(State(gw): State<Arc<Gw>>, Json(body): Json<Value>) -> Response {
    if body["appKey"] != ID || body["appSecret"] != SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "invalidClient"})),
        )
            .into_response();
    }
    // Slow enough that concurrent callers overlap with this one refresh.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let n = gw.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"accessToken": format!("token-{n}"), "expireIn": gw.token_expire.load(Ordering::SeqCst)}))
        .into_response()
}

async fn card_call(
    State(gw): State<Arc<Gw>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if token.is_empty() || gw.revoked.lock().unwrap().contains(&token) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"requestid": "r2", "code": "InvalidAuthentication", "message": "token"})),
        )
            .into_response();
    }
    if body["key"] == "forbidden" {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"requestid": "r3", "code": "Forbidden.AccessDenied.QpsLimit", "message": "qps"})),
        )
            .into_response();
    }
    gw.card_calls.lock().unwrap().push((token, body));
    Json(json!({"success": true})).into_response()
}

async fn webhook(
    State(gw): State<Arc<Gw>>,
    Path(_s): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    gw.webhook_bodies.lock().unwrap().push(body);
    let code = gw.webhook_errcode.load(Ordering::SeqCst);
    if code == 0 {
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    } else {
        Json(json!({"errcode": code, "errmsg": "session expired"}))
    }
}

/// The scripted gateway's robot: a [`Recorder`] that fails the first attempt of msgIds
/// starting with "fail" and answers a click with the clicked action.
fn recorder() -> Recorder {
    Recorder {
        fail_first: true,
        card_answer: Some(clicked),
        ..Recorder::default()
    }
}

fn clicked(cb: &CardCallback) -> Value {
    json!({"cardData": {"cardParamMap": {"clicked": cb.param("action").unwrap_or("")}}})
}

fn robot_frame(base: &str, message_id: &str, msg_id: &str, text: &str) -> Frame {
    Frame::new(
        FrameType::Callback,
        TOPIC_ROBOT,
        message_id,
        &json!({
            "msgId": msg_id, "msgtype": "text", "text": {"content": format!(" {text}")},
            "conversationId": "cid1", "conversationType": "2", "senderId": "s1",
            "senderStaffId": "staff1", "senderNick": "Ann", "isInAtList": true,
            "sessionWebhook": format!("{base}/webhook/sess-{msg_id}"),
            "sessionWebhookExpiredTime": 1774086394522u64, "createAt": 1774080994334u64,
        }),
    )
}

fn ping_frame(id: &str, opaque: &str) -> Frame {
    Frame::new(FrameType::System, "ping", id, &json!({"opaque": opaque}))
}

async fn wait_status(client: &Client, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    let mut rx = client.status();
    let s = timeout(WAIT, rx.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for status {what}; now {:?}",
                client.status().borrow()
            )
        })
        .expect("status sender alive")
        .clone();
    s
}

fn data_of(ack: &Value) -> Value {
    serde_json::from_str(ack["data"].as_str().expect("ACK data is a string"))
        .expect("ACK data is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_echoed_while_handlers_are_busy() {
    let mut h = Harness::start().await;
    let gate = Arc::new(Notify::new());
    let with_gate = |r: &mut Recorder| r.gate = Some(gate.clone());
    let (client, rec, mut conn) = h
        .start_tuned(with_gate, |c| c.max_concurrent_handlers = 2)
        .await;
    conn.push_robots(&h.base, "m", 0..20, "hi");
    // Every message is ACKed although no handler has finished.
    for i in 0..20 {
        let a = conn.ack_for(&format!("m{i}")).await;
        assert_eq!(a["code"], 200);
        assert_eq!(data_of(&a), json!({"response": null}));
    }
    wait_until("two busy handlers", || {
        rec.started.load(Ordering::SeqCst) == 2
    })
    .await;
    conn.push(&ping_frame("p1", "opaque-xyz"));
    let pong = conn.ack_for("p1").await;
    assert_eq!(pong["code"], 200);
    assert_eq!(data_of(&pong), json!({"opaque": "opaque-xyz"}));
    assert_eq!(rec.total(), 0, "handlers are still blocked");
    // Release everyone: the bound lets the rest through.
    for _ in 0..40 {
        gate.notify_waiters();
        tokio::time::sleep(Duration::from_millis(5)).await;
        if rec.total() == 20 {
            break;
        }
    }
    wait_until("all handled", || {
        gate.notify_waiters();
        rec.total() == 20
    })
    .await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_1000_in_flight_handles_each_exactly_once() {
    let mut h = Harness::start().await;
    let (client, rec, mut old) = h
        .start_tuned(|r| r.delay_ms = 0..20, |c| c.max_concurrent_handlers = 32)
        .await;
    old.push_robots(&h.base, "a", 0..600, "q");
    old.push(&Frame::new(
        FrameType::System,
        "disconnect",
        "d1",
        &json!({"reason": "persistent connection is timeout"}),
    ));
    // Make-before-break: the new connection opens while the old one is still up.
    let mut new = h.next_conn().await;
    assert_ne!(new.ticket, old.ticket, "a fresh ticket per connection");
    new.push_robots(&h.base, "b", 600..1000, "q");
    // The gateway redelivers part of the old connection's messages on the new one.
    new.push_robots(&h.base, "r", 0..100, "q");
    // Every frame of the old connection is ACKed on the old connection.
    let mut old_acks = HashSet::new();
    while old_acks.len() < 600 {
        let a = old.ack().await;
        assert_eq!(a["code"], 200);
        old_acks.insert(a["headers"]["messageId"].as_str().unwrap().to_string());
    }
    assert!((0..600).all(|i| old_acks.contains(&format!("a{i}"))));
    let mut new_acks = HashSet::new();
    while new_acks.len() < 500 {
        let a = new.ack().await;
        let id = a["headers"]["messageId"].as_str().unwrap().to_string();
        assert!(
            !id.starts_with('a'),
            "an old frame's ACK went to the new connection"
        );
        new_acks.insert(id);
    }
    wait_until("1000 handled", || rec.total() == 1000).await;
    // stop() awaits every queued and running handler, so nothing can be handled later.
    client.stop().await;
    for i in 0..1000 {
        assert_eq!(rec.count(&format!("msg{i}")), 1, "msg{i}");
    }
    assert_eq!(client.stats().duplicates, 100);
    old.drop_abruptly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_reconnects_and_resumes() {
    let mut h = Harness::start().await;
    let rec = Arc::new(recorder());
    let (client, mut c1) = h.start_client(h.config(), rec.clone()).await;
    c1.push_robots(&h.base, "a", 0..50, "q");
    for i in 0..50 {
        c1.ack_for(&format!("a{i}")).await;
    }
    c1.drop_abruptly();
    let backoff = wait_status(&client, "backoff after the drop", |s| {
        matches!(s, Status::Backoff { .. })
    })
    .await;
    if let Status::Backoff { delay, .. } = backoff {
        assert!(delay >= Duration::from_millis(50), "{delay:?}");
    }
    let mut c2 = h.next_conn().await;
    assert_ne!(c1.ticket, c2.ticket);
    // Redelivery of a few old ones plus new messages.
    c2.push_robots(&h.base, "b", 40..100, "q");
    for i in 40..100 {
        assert_eq!(c2.ack_for(&format!("b{i}")).await["code"], 200);
    }
    wait_until("100 handled", || rec.total() == 100).await;
    assert!((0..100).all(|i| rec.count(&format!("msg{i}")) == 1));
    assert_eq!(client.stats().connections, 2);
    assert_eq!(h.gw.opens.load(Ordering::SeqCst), 2);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_handled_once_and_failures_retry() {
    let mut h = Harness::start().await;
    let gate = Arc::new(Notify::new());
    let rec = Arc::new(Recorder {
        gate: Some(gate.clone()),
        ..recorder()
    });
    let (client, mut c) = h.start_client(h.config(), rec.clone()).await;
    c.push(&robot_frame(&h.base, "x1", "same", "q"));
    c.ack_for("x1").await;
    wait_until("handler started", || {
        rec.started.load(Ordering::SeqCst) == 1
    })
    .await;
    // Redelivered while the first is still being handled (new messageId, same msgId).
    c.push(&robot_frame(&h.base, "x2", "same", "q"));
    assert_eq!(c.ack_for("x2").await["code"], 200);
    wait_until("done", || {
        gate.notify_waiters();
        rec.total() == 1
    })
    .await;
    // And after it was handled.
    c.push(&robot_frame(&h.base, "x3", "same", "q"));
    assert_eq!(c.ack_for("x3").await["code"], 200);
    // A failing handler: the redelivery is handled again.
    c.push(&robot_frame(&h.base, "f1", "fail-1", "q"));
    c.ack_for("f1").await;
    wait_until("failure recorded", || {
        gate.notify_waiters();
        client.stats().failed == 1
    })
    .await;
    c.push(&robot_frame(&h.base, "f2", "fail-1", "q"));
    c.ack_for("f2").await;
    wait_until("retry handled", || {
        gate.notify_waiters();
        rec.count("fail-1") == 1
    })
    .await;
    // stop() awaits every handler, so the counts below are final.
    let release = async {
        loop {
            gate.notify_waiters();
            tokio::task::yield_now().await;
        }
    };
    tokio::select! {
        _ = client.stop() => {}
        _ = release => unreachable!("the release loop never ends"),
    }
    assert_eq!(rec.count("same"), 1);
    assert_eq!(rec.attempts.lock().unwrap()["same"], 1);
    assert_eq!(rec.attempts.lock().unwrap()["fail-1"], 2);
    assert_eq!(client.stats().duplicates, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_reported_with_a_long_backoff() {
    let h = Harness::start().await;
    let mut cfg = h.config();
    cfg.client_secret = "wrong-secret-123".into();
    cfg.backoff.auth_failed = Duration::from_secs(600);
    let client = Client::start(cfg, Arc::new(recorder()));
    let s = wait_status(&client, "auth failed", |s| {
        matches!(s, Status::AuthFailed { .. })
    })
    .await;
    let Status::AuthFailed {
        client_id,
        delay,
        error,
    } = s
    else {
        unreachable!()
    };
    assert_eq!(client_id, ID);
    assert_eq!(delay, Duration::from_secs(600));
    assert!(
        error.contains(ID) && error.contains("authFailed"),
        "{error}"
    );
    assert!(!error.contains("wrong-secret-123"));
    assert!(!format!("{client:?}").contains("wrong-secret-123"));
    // Stop is prompt during that long wait; the next attempt was 600 s away, so once the
    // client has stopped there was exactly one open.
    timeout(Duration::from_secs(2), client.stop())
        .await
        .expect("prompt stop");
    assert_eq!(*client.status().borrow(), Status::Stopped);
    assert_eq!(h.gw.opens.load(Ordering::SeqCst), 1, "no hammering");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_prompt_during_backoff_and_handshake() {
    let h = Harness::start().await;
    h.set_open(OpenMode::ServerError);
    let mut cfg = h.config();
    cfg.backoff.base = Duration::from_secs(30);
    cfg.backoff.max = Duration::from_secs(60);
    let client = Client::start(cfg.clone(), Arc::new(recorder()));
    let s = wait_status(&client, "backoff", |s| matches!(s, Status::Backoff { .. })).await;
    assert!(matches!(s, Status::Backoff { attempt: 0, .. }), "{s:?}");
    timeout(Duration::from_secs(2), client.stop())
        .await
        .expect("prompt stop in backoff");
    assert_eq!(h.gw.opens.load(Ordering::SeqCst), 1);

    h.set_open(OpenMode::Hang);
    let client = Client::start(cfg, Arc::new(recorder()));
    wait_until("open request pending", || {
        h.gw.opens.load(Ordering::SeqCst) == 2
    })
    .await;
    timeout(Duration::from_secs(2), client.stop())
        .await
        .expect("prompt stop in handshake");
    assert_eq!(*client.status().borrow(), Status::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_grows_and_resets_after_a_healthy_connection() {
    let mut h = Harness::start().await;
    h.set_open(OpenMode::ServerError);
    let client = Client::start(h.config(), Arc::new(recorder()));
    let s = wait_status(&client, "third attempt", |s| {
        matches!(s, Status::Backoff { attempt: 2, .. })
    })
    .await;
    if let Status::Backoff { delay, .. } = s {
        assert!(delay >= Duration::from_millis(200), "50ms * 2^2: {delay:?}");
    }
    h.set_open(OpenMode::Ok);
    let mut c = h.next_conn().await;
    c.push(&ping_frame("p", "o"));
    c.ack_for("p").await;
    c.drop_abruptly();
    let s = wait_status(&client, "backoff after healthy", |s| {
        matches!(s, Status::Backoff { .. })
    })
    .await;
    assert!(
        matches!(s, Status::Backoff { attempt: 0, .. }),
        "reset: {s:?}"
    );
    h.next_conn().await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_handshake_gets_a_new_ticket() {
    let mut h = Harness::start().await;
    h.gw.reject_handshakes.store(1, Ordering::SeqCst);
    let (client, c) = h.start_client(h.config(), Arc::new(recorder())).await;
    assert_eq!(h.gw.opens.load(Ordering::SeqCst), 2);
    assert!(
        c.ticket.starts_with("tk "),
        "ticket with a space arrives decoded"
    );
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_link_is_detected_and_replaced() {
    let mut h = Harness::start().await;
    let mut cfg = h.config();
    cfg.keepalive.idle_timeout = Duration::from_millis(300);
    // WebSocket PINGs are answered (axum does it), yet no frame comes: still a zombie.
    cfg.keepalive.ping_interval = Duration::from_millis(50);
    cfg.keepalive.pong_timeout = Duration::from_secs(5);
    let (client, _zombie) = h.start_client(cfg, Arc::new(recorder())).await;
    // The server keeps the socket open but pushes nothing: the watchdog gives up on it.
    let _next = h.next_conn().await;
    wait_status(&client, "second connection", |s| {
        matches!(s, Status::Connected { connection: 2.. })
    })
    .await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_acks_and_keep_the_connection() {
    let mut h = Harness::start().await;
    let rec = Arc::new(recorder());
    let mut cfg = h.config();
    cfg.max_frame_bytes = 64 * 1024;
    let (client, mut c) = h.start_client(cfg, rec.clone()).await;

    // Not JSON and no headers at all: nothing to ACK, logged only.
    c.push_raw("this is not json");
    c.push_raw(r#"{"type":"CALLBACK","data":"{}"}"#);
    c.push_raw(r#"{"type":"CALLBACK","headers":"nope"}"#);
    // Unknown type.
    c.push_raw(r#"{"specVersion":"1.0","type":"WHATEVER","headers":{"messageId":"u1","topic":"x"},"data":"{}"}"#);
    assert_eq!(c.ack_for("u1").await["code"], 400);
    // data not JSON.
    let mut f = robot_frame(&h.base, "d1", "dm", "q");
    f.data = "{broken".into();
    c.push(&f);
    let a = c.ack_for("d1").await;
    assert_eq!(a["code"], 400);
    assert!(a["message"].as_str().unwrap().contains("not JSON"), "{a}");
    // Oversized.
    let big = robot_frame(&h.base, "big1", "bigmsg", &"x".repeat(100 * 1024));
    c.push(&big);
    let a = c.ack_for("big1").await;
    assert_eq!(a["code"], 400);
    assert!(a["message"].as_str().unwrap().contains("exceeds"), "{a}");
    // The size is judged before the frame is: an oversized frame that would not even parse
    // (unknown type, data not a string) is refused for its size, with its message id.
    let odd = format!(
        r#"{{"type":"WHATEVER","data":{{"pad":"{}"}},"headers":{{"messageId":"big2"}}}}"#,
        "y".repeat(100 * 1024)
    );
    c.push_raw(&odd);
    let a = c.ack_for("big2").await;
    assert_eq!(a["code"], 400);
    assert!(a["message"].as_str().unwrap().contains("exceeds"), "{a}");
    // Card callback with invalid content / missing content.
    let cb = |id: &str, content: Option<&str>| {
        let mut d = json!({"outTrackId": "t1", "type": "actionCallback", "extension": "{}"});
        if let Some(c) = content {
            d["content"] = json!(c);
        }
        Frame::new(FrameType::Callback, TOPIC_CARD_CALLBACK, id, &d)
    };
    c.push(&cb("c1", Some("{oops")));
    let a = c.ack_for("c1").await;
    assert_eq!(a["code"], 400);
    assert!(a["message"].as_str().unwrap().contains("content"), "{a}");
    c.push(&cb("c2", None));
    assert_eq!(c.ack_for("c2").await["code"], 400);
    // A valid callback: the ACK carries the handler's card update.
    c.push(&cb(
        "c3",
        Some(r#"{"cardPrivateData":{"actionIds":["a"],"params":{"action":"like"}}}"#),
    ));
    let a = c.ack_for("c3").await;
    assert_eq!(a["code"], 200);
    assert_eq!(
        data_of(&a),
        json!({"response": {"cardData": {"cardParamMap": {"clicked": "like"}}}})
    );
    // Unknown callback topic: 404.
    c.push(&Frame::new(
        FrameType::Callback,
        "/v1.0/unknown/topic",
        "t404",
        &json!({}),
    ));
    assert_eq!(c.ack_for("t404").await["code"], 404);
    // Unknown SYSTEM topic: ignored; binary frame: ignored.
    c.push(&Frame::new(
        FrameType::System,
        "KEEPALIVE",
        "k1",
        &json!({}),
    ));
    let _ = c
        .to_client
        .send(Out::Msg(WsMessage::Binary(vec![1, 2, 3].into())));

    // Still the same connection, still working.
    c.push(&robot_frame(&h.base, "ok1", "okmsg", "q"));
    assert_eq!(c.ack_for("ok1").await["code"], 200);
    c.push(&ping_frame("p9", "still-here"));
    assert_eq!(
        data_of(&c.ack_for("p9").await),
        json!({"opaque": "still-here"})
    );
    wait_until("valid message handled", || rec.count("okmsg") == 1).await;
    assert_eq!(client.stats().connections, 1);
    assert!(client.stats().malformed >= 8, "{:?}", client.stats());
    assert_eq!(rec.count("dm") + rec.count("bigmsg"), 0);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_single_flight_and_refreshed_on_401() {
    let h = Harness::start().await;
    let client = Client::start(h.config(), Arc::new(recorder()));
    let api = client.replier().openapi.clone();
    let calls = (0..10).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            api.stream_card("card", "content", &format!("t{i}"), false, false)
                .await
        })
    });
    for c in calls {
        c.await.unwrap().expect("card call");
    }
    assert_eq!(
        h.gw.tokens_issued.load(Ordering::SeqCst),
        1,
        "one refresh for ten callers"
    );
    // DingTalk revokes the token early: the next call refreshes once and succeeds.
    h.gw.revoked.lock().unwrap().insert("token-1".into());
    let mut params = jitnode_dingtalk_wire::ParamMap::new();
    params.insert("flowStatus".into(), "3".into());
    api.update_card("card", params)
        .await
        .expect("retried with a new token");
    assert_eq!(h.gw.tokens_issued.load(Ordering::SeqCst), 2);
    let calls = h.gw.card_calls.lock().unwrap().clone();
    assert_eq!(calls.last().unwrap().0, "token-2");
    assert_eq!(
        calls.last().unwrap().1["cardData"]["cardParamMap"]["flowStatus"],
        "3"
    );
    // A 403 keeps its status for fallback logic.
    let e = api
        .stream_card("card", "forbidden", "x", false, false)
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e}");
    assert!(!e.to_string().contains("token-"), "{e}");
    client.stop().await;
}

// Current-thread: moving the clock by hand needs it; the gateway shares the runtime.
#[tokio::test]
async fn short_lived_token_is_refreshed_before_expiry() {
    let h = Harness::start().await;
    h.gw.token_expire.store(1, Ordering::SeqCst);
    let client = Client::start(h.config(), Arc::new(recorder()));
    let api = client.replier().openapi.clone();
    api.stream_card("c", "k", "a", false, false).await.unwrap();
    api.stream_card("c", "k", "b", false, false).await.unwrap();
    assert_eq!(h.gw.tokens_issued.load(Ordering::SeqCst), 1);
    // Just short of half a 1 s life the token is still used...
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(300)).await;
    tokio::time::resume();
    api.stream_card("c", "k", "b2", false, false).await.unwrap();
    assert_eq!(h.gw.tokens_issued.load(Ordering::SeqCst), 1);
    // ...and past it, refreshed early, before it would be refused. The clock is moved
    // rather than slept on, and only while no socket is awaited.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(300)).await;
    tokio::time::resume();
    api.stream_card("c", "k", "c", true, false).await.unwrap();
    assert_eq!(h.gw.tokens_issued.load(Ordering::SeqCst), 2);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_replies_and_errcode_300001() {
    let mut h = Harness::start().await;
    let rec = Arc::new(Recorder {
        reply: true,
        ..recorder()
    });
    let (client, c) = h.start_client(h.config(), rec.clone()).await;
    c.push(&robot_frame(&h.base, "w1", "wm1", "hello"));
    wait_until("reply sent", || rec.count("wm1") == 1).await;
    let body = h.gw.webhook_bodies.lock().unwrap()[0].clone();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["content"], "echo: hello");
    assert_eq!(
        body["at"]["atUserIds"],
        json!(["staff1"]),
        "group replies @ the sender"
    );

    h.gw.webhook_errcode.store(300001, Ordering::SeqCst);
    c.push(&robot_frame(&h.base, "w2", "wm2", "again"));
    wait_until("failure", || client.stats().failed == 1).await;
    let errs = rec.reply_errors.lock().unwrap().clone();
    assert!(errs[0].contains("300001"), "{errs:?}");
    let e = client
        .replier()
        .webhook
        .send_text(&format!("{}/webhook/s", h.base), "x", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplyError::SessionExpired { .. }), "{e}");
    // Another host than the configured one is refused without a request.
    let before = h.gw.webhook_bodies.lock().unwrap().len();
    let e = client
        .replier()
        .webhook
        .send_markdown("http://localhost:1/webhook/s", "t", "x", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplyError::HostNotAllowed { .. }), "{e}");
    assert_eq!(h.gw.webhook_bodies.lock().unwrap().len(), before);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_acked_with_status_and_deduplicated() {
    let mut h = Harness::start().await;
    let (client, mut c) = h.start_client(h.config(), Arc::new(recorder())).await;
    let event = |mid: &str, data: &str| {
        let mut f = Frame::new(FrameType::Event, "chat_update_title", mid, &json!({}));
        f.headers.insert("eventId".into(), "ev-1".into());
        f.headers
            .insert("eventType".into(), "chat_update_title".into());
        f.data = data.into();
        f
    };
    c.push(&event("e1", r#"{"Title":"t"}"#));
    let a = c.ack_for("e1").await;
    assert_eq!(a["code"], 200);
    assert_eq!(data_of(&a)["status"], "SUCCESS");
    // Same eventId again (EVENTs may be duplicated even when ACKed).
    c.push(&event("e2", r#"{"Title":"t"}"#));
    assert_eq!(data_of(&c.ack_for("e2").await)["status"], "SUCCESS");
    assert_eq!(client.stats().duplicates, 1);
    c.push(&event("e3", "not json"));
    assert_eq!(c.ack_for("e3").await["code"], 400);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_card_handler_is_acked_empty_after_the_timeout() {
    let mut h = Harness::start().await;
    let slow_cards = |r: &mut Recorder| r.card_delay_ms = 800;
    let short_timeout = |c: &mut ClientConfig| c.callback_timeout = Duration::from_millis(100);
    let (client, rec, mut c) = h.start_tuned(slow_cards, short_timeout).await;
    let content = r#"{"cardPrivateData":{"actionIds":["a"],"params":{"action":"like"}}}"#;
    c.push(&Frame::new(
        FrameType::Callback,
        TOPIC_CARD_CALLBACK,
        "slow1",
        &json!({"outTrackId": "t1", "type": "actionCallback", "content": content}),
    ));
    let a = c.ack_for("slow1").await;
    assert_eq!(a["code"], 200);
    assert_eq!(data_of(&a), json!({"response": null}));
    assert_eq!(
        rec.cards_done.load(Ordering::SeqCst),
        0,
        "ACKed before the handler ended"
    );
    // The handler still runs to its end.
    wait_until("card handler done", || {
        rec.cards_done.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(client.stats().handled, 1);
    client.stop().await;
}

/// A robot whose runs each wait for a permit of [`Recorder::release`], after seeing the
/// client's shutdown first if `wait_for_shutdown`.
fn holding(wait_for_shutdown: bool) -> Arc<Recorder> {
    Arc::new(Recorder {
        wait_for_shutdown,
        hold: Some(tokio::sync::Semaphore::new(0)),
        ..Recorder::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_slots_and_a_full_queue_pause_reading() {
    let mut h = Harness::start().await;
    let held = holding(false);
    let mut cfg = h.config();
    cfg.max_concurrent_handlers = 2;
    cfg.max_waiting_handlers = 3;
    let (client, mut c) = h.start_client(cfg, held.clone()).await;
    c.push_robots(&h.base, "m", 0..20, "q");
    c.push(&ping_frame("p1", "after-the-burst"));
    // 2 running, 1 taken by the dispatcher for the next free slot, 3 queued, 1 held by the
    // reader: it reads nothing more, so frame 8 onwards stays in the socket.
    wait_until("reading paused after 7 frames", || {
        let s = client.stats();
        s.reading_paused >= 1 && s.frames == 7 && held.started.load(Ordering::SeqCst) == 2
    })
    .await;
    for i in 0..7 {
        let a = c.ack().await;
        assert_eq!(a["headers"]["messageId"], format!("m{i}"), "{a}");
        assert_eq!(a["code"], 200);
    }
    assert_eq!(client.stats().frames, 7, "the reader stays paused");
    assert!(
        c.from_client.try_recv().is_err(),
        "no ACK beyond the 7 read"
    );
    // Free the handlers: reading resumes, the ping behind the burst is answered, and every
    // message runs once with never more than 2 at a time.
    held.release(20);
    let pong = c.ack_for("p1").await;
    assert_eq!(data_of(&pong), json!({"opaque": "after-the-burst"}));
    wait_until("all 20 handled", || held.total() == 20).await;
    assert_eq!(held.peak.load(Ordering::SeqCst), 2);
    let s = client.stats();
    assert_eq!((s.handled, s.frames, s.duplicates), (20, 21, 0));
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_awaits_running_handlers_up_to_its_deadline() {
    let mut h = Harness::start().await;
    let held = holding(true);
    let (client, c) = h.start_client(h.config(), held.clone()).await;
    c.push(&robot_frame(&h.base, "s1", "stop-msg", "q"));
    wait_until("the handler running", || {
        held.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let stop = client.stop();
    tokio::pin!(stop);
    let mut status = client.status();
    // The connections are closed (Stopped) while the handler, which has seen the shutdown,
    // still waits for its release: stop must not have returned.
    tokio::select! {
        _ = &mut stop => panic!("stop returned while a handler was still running"),
        s = timeout(WAIT, status.wait_for(|s| *s == Status::Stopped)) => {
            s.expect("Stopped in time").expect("status sender alive");
        }
    }
    assert_eq!(held.total(), 0);
    held.release(1);
    timeout(WAIT, stop)
        .await
        .expect("stop returns once the handler has");
    assert_eq!(held.total(), 1, "awaited, not abandoned");
    assert_eq!(client.stats().handled, 1);

    // A handler that never returns holds stop only for stop_timeout.
    let stuck = holding(true);
    let mut cfg = h.config();
    cfg.stop_timeout = Duration::from_millis(200);
    let (client, c) = h.start_client(cfg, stuck.clone()).await;
    c.push(&robot_frame(&h.base, "s2", "stuck-msg", "q"));
    wait_until("the stuck handler running", || {
        stuck.started.load(Ordering::SeqCst) == 1
    })
    .await;
    timeout(WAIT, client.stop())
        .await
        .expect("stop gives up on a stuck handler after its deadline");
    assert_eq!(stuck.total(), 0);
}
