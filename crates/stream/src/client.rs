//! The Stream client: keeps one live connection to the gateway (plus draining ones after a
//! `disconnect`), answers frames and runs handlers.
//!
//! Tasks:
//! - the supervisor opens connections (fresh ticket each time), reconnects with backoff and
//!   opens the next connection as soon as the gateway says `disconnect` (make-before-break);
//! - per connection, a reader that never waits on a handler itself (it parses, ACKs via a
//!   channel and queues the handler run; a robot message's ACK follows the handler's
//!   accept decision, which finishes in its own task when it is not ready at once), and a writer that owns the socket sink and prefers
//!   control frames (ping replies, WebSocket pings) over ACKs;
//! - one dispatcher that takes a handler slot (semaphore permit) for each queued run before
//!   spawning it, and keeps the running handlers so `stop()` can await them.
//!
//! Backpressure: the run queue holds `max_waiting_handlers`; when it is full the reader
//! stops reading the socket until a slot frees. The ACK and control queues are bounded too.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::config::ClientConfig;
use crate::dedupe::Dedupe;
use crate::handler::{Accept, BoxFuture, Handler, HandlerError, Replier, ReplyContext};
use crate::reply::{http_client, OpenApi, SessionWebhook};
use jitnode_dingtalk_wire::frame::{
    code, Ack, Frame, FrameType, TOPIC_CARD_CALLBACK, TOPIC_DISCONNECT, TOPIC_PING, TOPIC_ROBOT,
};
use jitnode_dingtalk_wire::message::{CardCallback, Event, EventStatus, RobotMessage};

pub const PATH_OPEN_CONNECTION: &str = "/v1.0/gateway/connections/open";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One handler run waiting for its slot; it holds the permit it is given until it ends.
type Job = Box<dyn FnOnce(OwnedSemaphorePermit) -> BoxFuture<'static, ()> + Send>;

/// ACKs waiting for the writer, per connection. Past this the reader (and late callback
/// ACKs) wait for the socket.
const ACK_QUEUE: usize = 4096;
/// Ping replies and WebSocket pings waiting for the writer, per connection.
const CONTROL_QUEUE: usize = 64;

/// Why a connection could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("DingTalk refused the credentials of clientId {client_id} (HTTP {status} {code}: {message}); check clientId and clientSecret")]
    AuthFailed {
        client_id: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("open connection failed: {0}")]
    Open(String),
    #[error("WebSocket handshake rejected with HTTP {0} (ticket used or expired)")]
    HandshakeRejected(u16),
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    #[error("connecting timed out")]
    Timeout,
}

/// What the client is doing, for health checks and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Connecting {
        attempt: u32,
    },
    Connected {
        connection: u64,
    },
    /// Waiting `delay` before the next attempt, after `error`.
    Backoff {
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// The credentials were refused; waiting the long auth backoff.
    AuthFailed {
        client_id: String,
        delay: Duration,
        error: String,
    },
    Stopped,
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub frames: AtomicU64,
    pub malformed: AtomicU64,
    pub duplicates: AtomicU64,
    pub handled: AtomicU64,
    pub failed: AtomicU64,
    pub acks_lost: AtomicU64,
    /// Robot messages the handler refused (left un-ACKed for redelivery).
    pub refused: AtomicU64,
    /// Times the reader stopped reading because `max_waiting_handlers` runs were queued.
    pub reading_paused: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub connections: u64,
    pub frames: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub handled: u64,
    pub failed: u64,
    pub acks_lost: u64,
    pub refused: u64,
    pub reading_paused: u64,
}

impl Stats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections: l(&self.connections),
            frames: l(&self.frames),
            malformed: l(&self.malformed),
            duplicates: l(&self.duplicates),
            handled: l(&self.handled),
            failed: l(&self.failed),
            acks_lost: l(&self.acks_lost),
            refused: l(&self.refused),
            reading_paused: l(&self.reading_paused),
        }
    }
}

struct Shared {
    config: ClientConfig,
    handler: Arc<dyn Handler>,
    replier: Replier,
    http: reqwest::Client,
    dedupe: Mutex<Dedupe>,
    /// Robot messages whose accept decision is pending, by key: a redelivery of one is
    /// ACKed only once the first delivery is taken (it may yet be refused).
    undecided: Mutex<HashMap<String, watch::Receiver<Option<bool>>>>,
    permits: Arc<Semaphore>,
    /// Robot messages whose accept decision is waiting (see `robot_message`).
    deciding: Arc<Semaphore>,
    cancel: CancellationToken,
    stats: Arc<Stats>,
}

impl Shared {
    fn dedupe_begin(&self, key: &str) -> bool {
        // A poisoned lock only means a panic elsewhere mid-update; the map is still usable.
        let fresh = self
            .dedupe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(key);
        if !fresh {
            Stats::bump(&self.stats.duplicates);
            jitnode_metrics::global().dedupe_hits.inc();
            tracing::debug!(message = key, "duplicate delivery dropped");
        }
        fresh
    }

    /// Marks `key` as being decided; the sender says taken (true) or refused (false).
    fn undecided_begin(&self, key: &str) -> watch::Sender<Option<bool>> {
        let (tx, rx) = watch::channel(None);
        self.undecided
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), rx);
        tx
    }

    fn undecided_end(&self, key: &str, decided: watch::Sender<Option<bool>>, taken: bool) {
        self.undecided
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        decided.send_replace(Some(taken));
    }

    fn undecided_of(&self, key: &str) -> Option<watch::Receiver<Option<bool>>> {
        self.undecided
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn dedupe_finish(&self, key: &str, ok: bool) {
        self.dedupe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(key, ok);
        Stats::bump(if ok {
            &self.stats.handled
        } else {
            &self.stats.failed
        });
    }
}

/// A running client. Dropping it stops the client too (without waiting).
pub struct Client {
    shared: Arc<Shared>,
    status: watch::Receiver<Status>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The dispatcher: it ends once every connection has closed and every handler returned.
    handlers: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.shared.config.client_id)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Client {
    /// Starts connecting in the background. Must be called inside a tokio runtime.
    pub fn start(config: ClientConfig, handler: Arc<dyn Handler>) -> Client {
        let http = http_client(config.http_timeout);
        let replier = Replier {
            webhook: SessionWebhook::new(http.clone(), config.effective_webhook_origins()),
            openapi: OpenApi::new(http.clone(), &config),
        };
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(config.max_concurrent_handlers.max(1))),
            deciding: Arc::new(Semaphore::new(config.max_waiting_handlers.max(1))),
            dedupe: Mutex::new(Dedupe::new(config.dedupe_window)),
            undecided: Mutex::new(HashMap::new()),
            config,
            handler,
            replier,
            http,
            cancel: CancellationToken::new(),
            stats: Arc::new(Stats::default()),
        });
        let (status_tx, status) = watch::channel(Status::Connecting { attempt: 0 });
        let (jobs_tx, jobs_rx) = mpsc::channel(shared.config.max_waiting_handlers.max(1));
        let handlers = tokio::spawn(run_handlers(shared.permits.clone(), jobs_rx));
        let task = tokio::spawn(supervise(shared.clone(), status_tx, jobs_tx));
        Client {
            shared,
            status,
            task: tokio::sync::Mutex::new(Some(task)),
            handlers: tokio::sync::Mutex::new(Some(handlers)),
        }
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The reply APIs (webhooks, cards) with this app's credentials.
    pub fn replier(&self) -> &Replier {
        &self.shared.replier
    }

    /// Stops promptly, also during a backoff wait or a handshake: closes the connections,
    /// then waits up to `stop_timeout` for the handlers still running or queued (they see
    /// `ReplyContext::shutdown()` cancelled); their late ACKs are dropped. Handlers still
    /// running after that are left to finish on their own.
    pub async fn stop(&self) {
        self.shared.cancel.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
        if let Some(handlers) = self.handlers.lock().await.take() {
            let budget = self.shared.config.stop_timeout;
            if tokio::time::timeout(budget, handlers).await.is_err() {
                let slots = self.shared.config.max_concurrent_handlers.max(1);
                tracing::warn!(
                    client_id = %self.shared.config.client_id,
                    running = slots.saturating_sub(self.shared.permits.available_permits()),
                    "handlers still running {budget:?} after stop; not waiting longer"
                );
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// Asks the gateway for a ticket: `POST {openapi}/v1.0/gateway/connections/open`.
/// Returns `(endpoint, ticket)`, both non-empty.
pub async fn open_connection(
    http: &reqwest::Client,
    config: &ClientConfig,
) -> Result<(String, String), ConnectError> {
    let url = format!(
        "{}{PATH_OPEN_CONNECTION}",
        config.openapi_endpoint.trim_end_matches('/')
    );
    let body = json!({
        "clientId": config.client_id,
        "clientSecret": config.client_secret.expose(),
        "subscriptions": config.subscriptions,
        "ua": config.user_agent,
    });
    let resp = http
        .post(url)
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| ConnectError::Open(with_causes(&e.without_url())))?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if status == 401 || s("code") == "authFailed" {
        return Err(ConnectError::AuthFailed {
            client_id: config.client_id.clone(),
            status,
            code: s("code"),
            message: s("message"),
        });
    }
    if status >= 400 {
        return Err(ConnectError::Open(format!(
            "HTTP {status} {} {}",
            s("code"),
            s("message")
        )));
    }
    let (endpoint, ticket) = (s("endpoint"), s("ticket"));
    if endpoint.is_empty() || ticket.is_empty() {
        return Err(ConnectError::Open(format!(
            "HTTP {status} without endpoint and ticket"
        )));
    }
    Ok((endpoint, ticket))
}

/// An error with its causes (`error sending request: ... : Connection refused`): reqwest's
/// own text alone does not say why a request failed.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        // Some layers repeat their cause's text in their own.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `{endpoint}?ticket=<url-encoded>`, keeping any query the endpoint already has.
pub fn ws_url(endpoint: &str, ticket: &str) -> Result<String, ConnectError> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| ConnectError::Open(format!("endpoint is not a URL: {e}")))?;
    url.query_pairs_mut().append_pair("ticket", ticket);
    Ok(url.to_string())
}

async fn connect_once(shared: &Shared) -> Result<Ws, ConnectError> {
    let (endpoint, ticket) = open_connection(&shared.http, &shared.config).await?;
    let url = ws_url(&endpoint, &ticket)?;
    // The hard limit sits well above the soft one so an oversized frame is refused with an
    // ACK instead of killing the connection.
    let hard = shared
        .config
        .max_frame_bytes
        .saturating_mul(16)
        .max(16 << 20);
    // Frames are a few KiB; tungstenite zero-fills its whole read buffer (128 KiB by default)
    // up front, and it still grows on demand for a larger frame.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard));
    match tokio_tungstenite::connect_async_with_config(url, Some(ws_config), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            Err(ConnectError::HandshakeRejected(resp.status().as_u16()))
        }
        // The error text may quote the URL with the ticket; keep only its kind.
        Err(e) => Err(ConnectError::Handshake(redact_ticket(&e.to_string()))),
    }
}

fn redact_ticket(s: &str) -> String {
    match s.find("ticket=") {
        Some(i) => format!("{}ticket=***", &s[..i]),
        None => s.to_string(),
    }
}

enum ConnEvent {
    Disconnect(u64),
    Closed {
        id: u64,
        healthy: bool,
        reason: String,
    },
}

/// Takes a handler slot for each queued run, in order, then spawns it; ends when the queue
/// has closed (every connection gone) and the last handler has returned.
async fn run_handlers(permits: Arc<Semaphore>, mut jobs: mpsc::Receiver<Job>) {
    let mut running = JoinSet::new();
    while let Some(job) = jobs.recv().await {
        let permit = loop {
            tokio::select! {
                p = permits.clone().acquire_owned() => break p,
                // Reap finished runs meanwhile so the set holds only live ones.
                Some(_) = running.join_next() => {}
            }
        };
        // The semaphore is never closed; should it be, the run is dropped unstarted.
        let Ok(permit) = permit else { break };
        running.spawn(job(permit));
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

async fn supervise(shared: Arc<Shared>, status: watch::Sender<Status>, jobs: mpsc::Sender<Job>) {
    let cfg = &shared.config;
    let cancel = shared.cancel.clone();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<ConnEvent>();
    let mut conns = JoinSet::new();
    let mut next_id = 0u64;
    let mut current: Option<u64> = None;
    let mut attempt = 0u32;
    let mut delay = Duration::ZERO;
    let mut rejected_in_a_row = 0u32;
    let mut auth_refused = false;
    'run: loop {
        if current.is_none() {
            if !delay.is_zero() {
                tokio::select! {
                    _ = cancel.cancelled() => break 'run,
                    _ = sleep(delay) => {}
                }
            }
            status.send_replace(Status::Connecting { attempt });
            let result = tokio::select! {
                _ = cancel.cancelled() => break 'run,
                r = tokio::time::timeout(cfg.keepalive.connect_timeout, connect_once(&shared)) => {
                    r.unwrap_or(Err(ConnectError::Timeout))
                }
            };
            match result {
                Ok(ws) => {
                    next_id += 1;
                    current = Some(next_id);
                    rejected_in_a_row = 0;
                    auth_refused = false;
                    delay = Duration::ZERO;
                    Stats::bump(&shared.stats.connections);
                    if next_id > 1 {
                        jitnode_metrics::global().reconnects.inc();
                    }
                    tracing::info!(client_id = %cfg.client_id, connection = next_id, "stream connected");
                    status.send_replace(Status::Connected {
                        connection: next_id,
                    });
                    conns.spawn(run_connection(
                        shared.clone(),
                        next_id,
                        ws,
                        ev_tx.clone(),
                        jobs.clone(),
                    ));
                }
                Err(e) => {
                    let error = e.to_string();
                    match e {
                        ConnectError::AuthFailed { .. } => {
                            delay = cfg.backoff.auth_failed;
                            // Said once: the same refusal every few minutes adds nothing.
                            if auth_refused {
                                tracing::debug!(client_id = %cfg.client_id, retry_in = ?delay, "{error}");
                            } else {
                                tracing::error!(client_id = %cfg.client_id, retry_in = ?delay, "{error}");
                            }
                            auth_refused = true;
                            status.send_replace(Status::AuthFailed {
                                client_id: cfg.client_id.clone(),
                                delay,
                                error,
                            });
                        }
                        // A used or expired ticket: a new one usually works at once.
                        ConnectError::HandshakeRejected(_) if rejected_in_a_row == 0 => {
                            rejected_in_a_row += 1;
                            delay = Duration::ZERO;
                            tracing::warn!(client_id = %cfg.client_id, "{error}; retrying with a new ticket");
                        }
                        _ => {
                            delay = cfg.backoff.delay_random(attempt);
                            tracing::warn!(client_id = %cfg.client_id, attempt, retry_in = ?delay, "{error}");
                            status.send_replace(Status::Backoff {
                                attempt,
                                delay,
                                error,
                            });
                            attempt = attempt.saturating_add(1);
                        }
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break 'run,
            Some(ev) = ev_rx.recv() => match ev {
                ConnEvent::Disconnect(id) if current == Some(id) => {
                    tracing::info!(connection = id, "gateway asked to disconnect; opening the next connection now");
                    current = None;
                    attempt = 0;
                    delay = Duration::ZERO;
                }
                ConnEvent::Closed { id, healthy, reason } if current == Some(id) => {
                    current = None;
                    if healthy {
                        attempt = 0;
                    }
                    delay = cfg.backoff.delay_random(attempt);
                    tracing::warn!(connection = id, reason, retry_in = ?delay, "stream connection lost");
                    status.send_replace(Status::Backoff { attempt, delay, error: reason });
                    attempt = attempt.saturating_add(1);
                }
                _ => {}
            },
            Some(_) = conns.join_next() => {}
        }
    }
    // Connections see the cancellation and send a close frame; give them a moment.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    status.send_replace(Status::Stopped);
}

/// The send side of one connection; clones go to handler tasks so their ACKs go out on the
/// connection the frame came from.
#[derive(Clone)]
struct ConnTx {
    id: u64,
    control: mpsc::Sender<Message>,
    acks: mpsc::Sender<Message>,
    stats: Arc<Stats>,
}

impl ConnTx {
    async fn ack(&self, ack: Ack) {
        if self.acks.send(Message::text(ack.to_text())).await.is_ok() {
            jitnode_metrics::global().messages_acked.inc();
        } else {
            Stats::bump(&self.stats.acks_lost);
            tracing::warn!(
                connection = self.id,
                message_id = ack.headers.message_id,
                "ACK not sent: its connection has closed (the gateway will redeliver)"
            );
        }
    }

    async fn control(&self, msg: Message) {
        let _ = self.control.send(msg).await;
    }
}

async fn writer(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut control: mpsc::Receiver<Message>,
    mut acks: mpsc::Receiver<Message>,
) {
    loop {
        let first = tokio::select! {
            biased;
            m = control.recv() => m,
            m = acks.recv() => m,
        };
        let Some(first) = first else { break };
        let mut closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return;
        }
        // Batch whatever else is queued into one flush.
        while !closing {
            let next = match control.try_recv() {
                Ok(m) => m,
                Err(_) => match acks.try_recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            closing = matches!(next, Message::Close(_));
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn run_connection(
    shared: Arc<Shared>,
    id: u64,
    ws: Ws,
    events: mpsc::UnboundedSender<ConnEvent>,
    jobs: mpsc::Sender<Job>,
) {
    let ka = shared.config.keepalive.clone();
    let (sink, mut stream) = ws.split();
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (acks_tx, acks_rx) = mpsc::channel(ACK_QUEUE);
    let writer = tokio::spawn(writer(sink, control_rx, acks_rx));
    let tx = ConnTx {
        id,
        control: control_tx,
        acks: acks_tx,
        stats: shared.stats.clone(),
    };
    let mut ping = tokio::time::interval_at(Instant::now() + ka.ping_interval, ka.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut pong_due: Option<Instant> = None;
    // Re-armed lazily: it fires at the earliest possible deadline and re-checks.
    let watchdog = sleep_until(last_rx + ka.idle_timeout);
    tokio::pin!(watchdog);
    let mut drain_until: Option<Instant> = None;
    let drain = sleep_until(Instant::now() + Duration::from_secs(86400 * 365));
    tokio::pin!(drain);
    let mut healthy = false;
    let reason: String = loop {
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break "client stopped".into(),
            _ = &mut drain, if drain_until.is_some() => break "drained after disconnect".into(),
            msg = stream.next() => {
                let msg = match msg {
                    None => break "closed by the gateway".into(),
                    Some(Err(e)) => break format!("read failed: {e}"),
                    Some(Ok(m)) => m,
                };
                // A PONG proves TCP, not that the gateway still delivers: zombie links answer
                // pings fine. Only the gateway's own frames feed the idle watchdog.
                if !matches!(msg, Message::Pong(_)) {
                    last_rx = Instant::now();
                }
                healthy = true;
                match msg {
                    Message::Text(text) => {
                        let disconnect = dispatch(&shared, &tx, &jobs, text.as_str()).await;
                        // Time spent waiting for a handler slot is not the gateway's silence.
                        last_rx = Instant::now();
                        if disconnect && drain_until.is_none() {
                            let until = Instant::now() + ka.drain_timeout;
                            drain_until = Some(until);
                            drain.as_mut().reset(until);
                            let _ = events.send(ConnEvent::Disconnect(id));
                        }
                    }
                    Message::Pong(_) => pong_due = None,
                    Message::Close(_) => break "close frame from the gateway".into(),
                    Message::Binary(b) => {
                        Stats::bump(&shared.stats.malformed);
                        tracing::warn!(connection = id, len = b.len(), "binary frame ignored");
                    }
                    // tungstenite answers PINGs itself.
                    Message::Ping(_) | Message::Frame(_) => {}
                }
            }
            _ = ping.tick() => {
                tx.control(Message::Ping(Vec::new().into())).await;
                if pong_due.is_none() {
                    let due = Instant::now() + ka.pong_timeout;
                    pong_due = Some(due);
                    if due < watchdog.deadline() {
                        watchdog.as_mut().reset(due);
                    }
                }
            }
            _ = &mut watchdog => {
                let now = Instant::now();
                let idle_at = last_rx + ka.idle_timeout;
                if now >= idle_at {
                    break format!("no frame for {:?} (dead link)", ka.idle_timeout);
                }
                if pong_due.is_some_and(|d| now >= d) {
                    break format!("no PONG within {:?}", ka.pong_timeout);
                }
                watchdog.as_mut().reset(pong_due.map_or(idle_at, |d| d.min(idle_at)));
            }
        }
    };
    tracing::debug!(connection = id, reason, "stream connection closing");
    // The writer may be stuck on a dead socket: do not wait for room in its queue.
    let _ = tx.control.try_send(Message::Close(None));
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    let _ = events.send(ConnEvent::Closed {
        id,
        healthy,
        reason,
    });
}

/// Handles one TEXT frame: answers it or queues its handler run, waiting only when the run
/// queue is full (or the writer's queue is). Returns true for `disconnect`.
async fn dispatch(shared: &Arc<Shared>, tx: &ConnTx, jobs: &mpsc::Sender<Job>, text: &str) -> bool {
    Stats::bump(&shared.stats.frames);
    // The size is checked before parsing: building a 16 MiB frame (and its data string)
    // is what the limit is there to prevent. Only the message id is read, for the ACK.
    if text.len() > shared.config.max_frame_bytes {
        let id = Frame::message_id_of(text);
        let reason = format!(
            "frame of {} bytes exceeds the limit of {}",
            text.len(),
            shared.config.max_frame_bytes
        );
        malformed(shared, tx, id.as_deref(), &reason).await;
        return false;
    }
    let frame = match Frame::parse(text) {
        Ok(f) => f,
        Err(e) => {
            malformed(shared, tx, e.message_id.as_deref(), &e.reason).await;
            return false;
        }
    };
    let job = match frame.kind {
        FrameType::System => {
            match frame.topic() {
                TOPIC_PING => tx.control(Message::text(Ack::pong(&frame).to_text())).await,
                TOPIC_DISCONNECT => {
                    let reason = frame
                        .data_json()
                        .ok()
                        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string));
                    tracing::info!(connection = tx.id, reason, "disconnect from the gateway");
                    return true;
                }
                other => {
                    tracing::debug!(connection = tx.id, topic = other, "SYSTEM frame ignored")
                }
            }
            None
        }
        FrameType::Callback => match frame.topic() {
            TOPIC_ROBOT => robot_message(shared, tx, jobs, &frame).await,
            TOPIC_CARD_CALLBACK => card_callback(shared, tx, &frame).await,
            _ => other_callback(shared, tx, &frame).await,
        },
        FrameType::Event => event(shared, tx, &frame).await,
    };
    if let Some(job) = job {
        enqueue(shared, tx, jobs, job).await;
    }
    false
}

/// Queues a handler run; with the queue full, waits (reading nothing meanwhile) until the
/// dispatcher makes room or the client stops.
async fn enqueue(shared: &Shared, tx: &ConnTx, jobs: &mpsc::Sender<Job>, job: Job) {
    let job = match jobs.try_send(job) {
        Ok(()) => return,
        Err(mpsc::error::TrySendError::Full(job)) => job,
        // Only after the dispatcher has gone, i.e. while stopping.
        Err(mpsc::error::TrySendError::Closed(_)) => return,
    };
    Stats::bump(&shared.stats.reading_paused);
    tracing::debug!(
        connection = tx.id,
        waiting = shared.config.max_waiting_handlers,
        "every handler slot busy and the queue full; reading paused"
    );
    tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => {}
        _ = jobs.send(job) => {}
    }
}

async fn malformed(shared: &Shared, tx: &ConnTx, message_id: Option<&str>, reason: &str) {
    Stats::bump(&shared.stats.malformed);
    tracing::warn!(connection = tx.id, message_id, "malformed frame: {reason}");
    if let Some(id) = message_id.filter(|id| !id.is_empty()) {
        tx.ack(Ack::error(code::BAD_REQUEST, id, reason)).await;
    }
}

/// The decoded frame, or `None` once the frame is answered as malformed with `parsed`'s
/// error as the reason.
async fn decoded<T, E: std::fmt::Display>(
    shared: &Shared,
    tx: &ConnTx,
    frame: &Frame,
    parsed: Result<T, E>,
) -> Option<T> {
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            malformed(shared, tx, Some(frame.message_id()), &e.to_string()).await;
            None
        }
    }
}

/// Dedupe key: `data.msgId`, else `headers.messageId`.
fn key_of(frame: &Frame, data_id: Option<&str>) -> String {
    match data_id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => frame.message_id().to_string(),
    }
}

async fn robot_message(
    shared: &Arc<Shared>,
    tx: &ConnTx,
    jobs: &mpsc::Sender<Job>,
    frame: &Frame,
) -> Option<Job> {
    let msg = decoded(shared, tx, frame, RobotMessage::from_frame(frame)).await?;
    let key = key_of(frame, Some(&msg.msg_id));
    let mid = frame.message_id().to_string();
    if !shared.dedupe_begin(&key) {
        // Handled here already (or being handled): ACK so the gateway stops redelivering;
        // while the first delivery is still being decided, only once it is taken (a
        // refused one must stay redeliverable).
        match shared.undecided_of(&key) {
            None => tx.ack(Ack::callback(&mid, Value::Null)).await,
            Some(mut decided) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    // A dropped sender (the decision panicked) counts as refused.
                    let taken = matches!(decided.wait_for(Option::is_some).await, Ok(d) if *d == Some(true));
                    if taken {
                        tx.ack(Ack::callback(&mid, Value::Null)).await;
                    }
                });
            }
        }
        return None;
    }
    let decided = shared.undecided_begin(&key);
    // The ACK follows the handler's decision (e.g. a claim in a shared store). A decision
    // that is ready at once (the default) is applied here, as before any handler ran; one
    // that waits (a store round trip) finishes in its own task, so the reader keeps
    // reading and answering pings; at most `max_waiting_handlers` wait like that.
    let handler = shared.handler.clone();
    let mut decide = Box::pin(async move {
        let d = AssertUnwindSafe(handler.accept_robot_message(&msg))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Accept::Refuse("accept_robot_message panicked".into()));
        (d, msg)
    });
    if let Some((d, msg)) = (&mut decide).now_or_never() {
        return decided_robot_message(shared, tx, d, msg, key, mid, decided).await;
    }
    let slot = tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => return None,
        p = shared.deciding.clone().acquire_owned() => p.ok()?,
    };
    let (shared, tx, jobs) = (shared.clone(), tx.clone(), jobs.clone());
    tokio::spawn(async move {
        let _slot = slot;
        let (d, msg) = decide.await;
        if let Some(job) = decided_robot_message(&shared, &tx, d, msg, key, mid, decided).await {
            enqueue(&shared, &tx, &jobs, job).await;
        }
    });
    None
}

/// ACKs (or not) a robot message as decided; a taken one becomes a handler run.
async fn decided_robot_message(
    shared: &Arc<Shared>,
    tx: &ConnTx,
    decision: Accept,
    msg: RobotMessage,
    key: String,
    mid: String,
    decided: watch::Sender<Option<bool>>,
) -> Option<Job> {
    match decision {
        Accept::Take => {
            tx.ack(Ack::callback(&mid, Value::Null)).await;
            shared.undecided_end(&key, decided, true);
        }
        Accept::Skip => {
            tx.ack(Ack::callback(&mid, Value::Null)).await;
            shared.undecided_end(&key, decided, true);
            shared.dedupe_finish(&key, true);
            return None;
        }
        Accept::Refuse(reason) => {
            tracing::warn!(message = key, "left un-ACKed for redelivery: {reason}");
            Stats::bump(&shared.stats.refused);
            shared.dedupe_finish(&key, false);
            shared.undecided_end(&key, decided, false);
            return None;
        }
    }
    let ctx = ReplyContext::new(shared.replier.clone(), &msg, shared.cancel.child_token());
    let shared = shared.clone();
    Some(Box::new(move |permit| {
        Box::pin(async move {
            let _slot = permit;
            let handler = shared.handler.clone();
            let result = AssertUnwindSafe(handler.on_robot_message(msg, ctx))
                .catch_unwind()
                .await;
            let ok = log_result(&key, result);
            shared.dedupe_finish(&key, ok);
        })
    }))
}

fn log_result<T>(
    key: &str,
    result: Result<Result<T, HandlerError>, Box<dyn std::any::Any + Send>>,
) -> bool {
    match result {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(message = key, "handler failed: {e}");
            false
        }
        Err(_) => {
            tracing::error!(message = key, "handler panicked");
            false
        }
    }
}

/// The ACKs of a handler run: `duplicate` for a frame handled (or being handled) already,
/// `late` once `callback_timeout` passed, else `answer` of the handler's result.
struct Acks<M> {
    duplicate: Ack,
    late: Ack,
    answer: M,
}

/// A handler run whose result goes into the ACK, waiting at most `callback_timeout` once it
/// has its slot; past that `acks.late` is ACKed and the handler keeps running (and keeps
/// its slot; its outcome still feeds dedupe). A duplicate of `key` is ACKed with
/// `acks.duplicate` and not run again (an unpolled future does nothing).
async fn ack_after<T, F, M>(
    shared: &Arc<Shared>,
    tx: &ConnTx,
    key: String,
    fut: F,
    acks: Acks<M>,
) -> Option<Job>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, HandlerError>> + Send + 'static,
    M: FnOnce(Result<T, HandlerError>) -> Ack + Send + 'static,
{
    if !shared.dedupe_begin(&key) {
        tx.ack(acks.duplicate).await;
        return None;
    }
    let shared = shared.clone();
    let tx = tx.clone();
    Some(Box::new(move |permit| {
        Box::pin(async move {
            let _slot = permit;
            let run = AssertUnwindSafe(fut).catch_unwind();
            tokio::pin!(run);
            let in_time =
                match tokio::time::timeout(shared.config.callback_timeout, run.as_mut()).await {
                    Ok(result) => Some(result),
                    Err(_) => {
                        tracing::warn!(
                            message = key,
                            "handler slower than the callback timeout; ACKed without its answer"
                        );
                        tx.ack(acks.late).await;
                        None
                    }
                };
            let answered = in_time.is_some();
            let result = match in_time {
                Some(r) => r,
                None => run.await,
            }
            .unwrap_or_else(|_| Err(HandlerError::Failed("handler panicked".into())));
            let ok = match &result {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(message = key, "handler failed: {e}");
                    false
                }
            };
            shared.dedupe_finish(&key, ok);
            if answered {
                tx.ack((acks.answer)(result)).await;
            }
        })
    }))
}

fn error_ack(message_id: &str, e: &HandlerError) -> Ack {
    match e {
        HandlerError::NotHandled => {
            Ack::error(code::NOT_FOUND, message_id, "no handler for this topic")
        }
        HandlerError::Failed(reason) => Ack::error(code::FAILED, message_id, reason),
        HandlerError::BadRequest(reason) => Ack::error(code::BAD_REQUEST, message_id, reason),
    }
}

async fn card_callback(shared: &Arc<Shared>, tx: &ConnTx, frame: &Frame) -> Option<Job> {
    let cb = decoded(shared, tx, frame, CardCallback::from_frame(frame)).await?;
    let key = key_of(frame, None);
    let handler = shared.handler.clone();
    let replier = shared.replier.clone();
    let fut = async move { handler.on_card_callback(cb, replier).await };
    callback_after(shared, tx, frame, key, fut).await
}

async fn other_callback(shared: &Arc<Shared>, tx: &ConnTx, frame: &Frame) -> Option<Job> {
    let not_json = |e| format!("data is not JSON: {e}");
    let data = decoded(shared, tx, frame, frame.data_json().map_err(not_json)).await?;
    let key = key_of(frame, data.get("msgId").and_then(Value::as_str));
    let handler = shared.handler.clone();
    let topic = frame.topic().to_string();
    let fut = async move { handler.on_callback(&topic, data).await };
    callback_after(shared, tx, frame, key, fut).await
}

/// A CALLBACK frame whose handler's value is the ACK's `response`: a duplicate is ACKed
/// with no response and not handled again; otherwise [`ack_after`] makes the run.
async fn callback_after<F>(
    shared: &Arc<Shared>,
    tx: &ConnTx,
    frame: &Frame,
    key: String,
    fut: F,
) -> Option<Job>
where
    F: std::future::Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    let mid = frame.message_id().to_string();
    let no_response = Ack::callback(&mid, Value::Null);
    let acks = Acks {
        duplicate: no_response.clone(),
        late: no_response,
        answer: move |r| match r {
            Ok(v) => Ack::callback(&mid, v),
            Err(e) => error_ack(&mid, &e),
        },
    };
    ack_after(shared, tx, key, fut, acks).await
}

async fn event(shared: &Arc<Shared>, tx: &ConnTx, frame: &Frame) -> Option<Job> {
    let ev = decoded(shared, tx, frame, Event::from_frame(frame)).await?;
    let mid = frame.message_id().to_string();
    let key = key_of(frame, Some(&ev.event_id));
    let handler = shared.handler.clone();
    let fut = async move { handler.on_event(ev).await };
    let acks = Acks {
        duplicate: Ack::event(&mid, true, "duplicate"),
        late: Ack::event(&mid, false, "still processing"),
        answer: move |r| match r {
            Ok(EventStatus::Success) => Ack::event(&mid, true, "OK"),
            Ok(EventStatus::Later) => Ack::event(&mid, false, "later"),
            Err(e) => error_ack(&mid, &e),
        },
    };
    ack_after(shared, tx, key, fut, acks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_encodes_ticket() {
        let u = ws_url(
            "wss://wss-open-connection.dingtalk.com:443/connect",
            "a b&c=d",
        )
        .unwrap();
        assert_eq!(
            u,
            "wss://wss-open-connection.dingtalk.com/connect?ticket=a+b%26c%3Dd"
        );
        let u = ws_url("ws://127.0.0.1:5/connect?x=1", "t").unwrap();
        assert_eq!(u, "ws://127.0.0.1:5/connect?x=1&ticket=t");
        assert!(ws_url("not a url", "t").is_err());
    }

    #[test]
    fn handshake_errors_hide_ticket() {
        assert_eq!(
            redact_ticket("URL ws://h/connect?ticket=abc failed"),
            "URL ws://h/connect?ticket=***"
        );
    }
}
