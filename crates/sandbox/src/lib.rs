//! jitnode-sandbox: DingTalk's side of Stream mode, on loopback, for tests, benchmarks and
//! the offline demo.
//!
//! It plays the gateway faithfully rather than agreeably: credentials are checked, tickets
//! are single-use and expire after 90 s, every ACK is checked for its exact shape and for
//! the connection it came on, pings carry `opaque` data that must be echoed, session
//! webhooks expire (HTTP 200 with `errcode` 300001), card APIs demand an access token and
//! their documented fields, and the open endpoint answers XML unless asked for JSON. The
//! official Python SDK connects to it unchanged
//! (`DINGTALK_OPENAPI_ENDPOINT=<base_url>`).
//!
//! It is NOT a DingTalk client (that is `jitnode-stream`), knows nothing about elements, and
//! never talks to a real DingTalk host.
//!
//! # Serving
//! One HTTP listener (default `127.0.0.1:0`) serves, under [`Sandbox::base_url`]:
//! - the OpenAPI (`api.dingtalk.com` and `oapi.dingtalk.com` paths on the same host):
//!   `POST /v1.0/gateway/connections/open`, `POST /v1.0/oauth2/accessToken`,
//!   `POST /v1.0/im/v1.0/robot/interactiveCards/send`, `PUT /v1.0/im/robots/interactiveCards`,
//!   `POST /v1.0/card/instances/createAndDeliver`, `PUT /v1.0/card/instances`,
//!   `PUT /v1.0/card/streaming`, `POST /robot/sendBySession?session=..`;
//! - the WebSocket gateway at `ws://<addr>/connect?ticket=..`;
//! - the control API (JSON), mirroring the Rust methods below:
//!   `POST /control/apps {clientId, clientSecret}`,
//!   `POST /control/messages <PostMessage>` -> [`Posted`],
//!   `POST /control/click <Click>` -> [`AckRecord`],
//!   `GET /control/transcript` -> [`Transcript`], `GET /control/acks` -> `[AckRecord]`,
//!   `GET /control/wait-ack?messageId=..&timeoutMs=..`, `GET /control/pings`,
//!   `GET /control/problems`, `GET /control/connections`,
//!   `POST /control/faults/disconnect {connectionId? | clientId?}`,
//!   `POST /control/faults/drop {connectionId? | clientId?}`,
//!   `POST /control/faults/pings {"mode":"normal"|"withhold"} | {"mode":"delay","ms":..}`,
//!   `POST /control/faults/redeliver {messageId, afterSecs}`,
//!   `POST /control/faults/cards {status: 403|5xx, count?}`, `DELETE /control/faults/cards`,
//!   `POST /control/faults/refusals <RefusalFault>`, `DELETE /control/faults/refusals`
//!   (a refusal a real account gives, with DingTalk's body: see [`RefusalFault`]),
//!   `POST /control/faults/expire-webhooks`, `POST /control/faults/expire-tokens`,
//!   `POST /control/faults/raw {connectionId? | clientId?, text}` (verbatim frame),
//!   `POST /control/events {clientId, eventType, data}` -> `{messageId, connectionId}`.
//!
//! [`ControlClient`] makes those calls from another process, typed.
//!
//! The control API guards itself against web pages (CSRF and DNS rebinding on the fixed
//! port of `jitnode sandbox`): a POST must say `Content-Type: application/json` (415
//! otherwise); without [`SandboxConfig::control_token`], the Host and any Origin must be
//! loopback names (`localhost`, `127.x.x.x`, `[::1]`; 403 otherwise); with one, every
//! control request needs `Authorization: Bearer <token>` (401 otherwise), and binding
//! beyond loopback requires one. `timeoutMs` is at most [`MAX_WAIT_MS`] and `afterSecs`
//! a finite number from 0 to [`MAX_REDELIVERY_SECS`] (400 otherwise). The transcript,
//! ACK, ping and problem lists keep the newest [`SandboxConfig::max_records`] each.
//!
//! # Rust use
//! ```no_run
//! # async fn demo() -> Result<(), jitnode_sandbox::SandboxError> {
//! use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
//! use std::time::Duration;
//! let sb = Sandbox::start(SandboxConfig::default()).await?;
//! sb.register_app("dingapp", "secret");
//! // Point the client's openApiEndpoint at sb.base_url() and start it; then:
//! let posted = sb.post_message(&PostMessage::text("dingapp", "hello"))?;
//! let ack = sb.wait_for_ack(&posted.message_id, Duration::from_secs(5)).await;
//! assert!(ack.is_some_and(|a| a.valid()));
//! let replies = sb.transcript().replies(); // texts sent back through the session webhook
//! # let _ = replies;
//! sb.shutdown().await;
//! # Ok(()) }
//! ```
//! Time (ticket, webhook, token expiry, ping interval, redelivery delays) runs on tokio's
//! clock, so tests can use a paused clock.

mod control;
mod http;
mod refuse;
mod state;
mod types;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use control::{ControlClient, ControlError};
pub use http::{MAX_REDELIVERY_SECS, MAX_WAIT_MS};
pub use state::{deadline_after, UNACKED_REDELIVERY_ATTEMPTS};
pub use types::*;

use state::{Inner, Shared};
use tokio::time::Instant;

/// Waits until `ready` holds, looking now and again each time `notify` wakes its waiters
/// (registered before each look, so a wake-up in between is not lost). Past `deadline()`,
/// asked before each wait, it looks one last time.
pub async fn wait_notified(
    notify: &tokio::sync::Notify,
    mut deadline: impl FnMut() -> Instant,
    ready: impl Fn() -> bool,
) -> bool {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ready() {
            return true;
        }
        if tokio::time::timeout_at(deadline(), notified).await.is_err() {
            return ready();
        }
    }
}

/// Errors of the sandbox's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("sandbox: no app registered with clientId {0:?}")]
    UnknownApp(String),
    #[error("sandbox: app {client_id:?} has no open connection subscribed to {topic:?}")]
    NoConnection { client_id: String, topic: String },
    #[error("sandbox: no connection {0:?}")]
    UnknownConnection(String),
    #[error("sandbox: no card {0:?}")]
    UnknownCard(String),
    #[error("sandbox: clicks on card {id:?} do not come over Stream: {why}")]
    NotStreamCard { id: String, why: &'static str },
    #[error("sandbox: AI card {id:?} shows no request button with id {button:?}")]
    NoSuchButton { id: String, button: String },
    #[error("sandbox: no posted message with messageId {0:?}")]
    UnknownMessage(String),
    #[error("sandbox: no ACK for messageId {0:?} in time")]
    AckTimeout(String),
    #[error("sandbox: refusal fault not accepted: {0}")]
    BadFault(&'static str),
    #[error("sandbox: binding {addr} (beyond loopback) needs a control_token for the control API")]
    ControlTokenRequired { addr: std::net::SocketAddr },
}

/// A running sandbox. Dropping it does not stop the server; call [`Sandbox::shutdown`].
pub struct Sandbox {
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Sandbox {
    // App secrets live in the state; never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.shared.base_url())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Binds `config.bind` and starts serving.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let addr = config.bind;
        // Reachable from other hosts, the control API (post as any user, read every
        // reply) must not be open to them.
        if !addr.ip().is_loopback() && config.control_token.is_none() {
            return Err(SandboxError::ControlTokenRequired { addr });
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let max_records = config.max_records;
        let shared = Shared(Arc::new(Inner {
            config,
            addr: local,
            state: Mutex::new(state::State::new(max_records)),
            ack_notify: tokio::sync::Notify::new(),
            reply_notify: tokio::sync::Notify::new(),
            seq: AtomicU64::new(1),
        }));
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("sandbox server stopped: {e}");
            }
        });
        Ok(Sandbox { shared, server })
    }

    /// `http://127.0.0.1:<port>`: use it as the openApiEndpoint (and the legacy oapi one).
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.shared.0.addr
    }

    /// Registers (or re-registers) an app's credentials.
    pub fn register_app(&self, client_id: &str, client_secret: &str) {
        self.shared.register_app(client_id, client_secret);
    }

    /// Posts a user message: builds the robot message JSON and pushes it as a CALLBACK frame
    /// on one of the app's connections, chosen at random.
    pub fn post_message(&self, m: &PostMessage) -> Result<Posted, SandboxError> {
        self.shared.post_message(m)
    }

    /// Clicks a button on an advanced card created with `callbackType: "STREAM"` (others
    /// deliver clicks to an HTTP callback, never over Stream): pushes a card callback frame and waits (up to
    /// `click_timeout`) for its ACK, which is returned. A `response.cardData.cardParamMap` in
    /// the ACK updates the card.
    pub async fn click(&self, c: &Click) -> Result<AckRecord, SandboxError> {
        self.shared.click(c).await
    }

    /// Everything the robot sent, in order, and the current state of each card.
    pub fn transcript(&self) -> Transcript {
        transcript_of(&self.shared)
    }

    /// `seq` of the newest transcript entry (0 before any): a cheap mark for
    /// [`Sandbox::wait_for_entry`].
    pub fn last_seq(&self) -> u64 {
        self.shared.lock().entries.total()
    }

    /// Copies of the transcript entries numbered after `after_seq` that are still kept, in
    /// order: a reader that follows a long run (the soak) copies each entry once.
    pub fn entries_after(&self, after_seq: u64) -> Vec<TranscriptEntry> {
        self.shared
            .lock()
            .entries_after(after_seq)
            .cloned()
            .collect()
    }

    /// Copies of the cards for which `keep` holds (the transcript copies all of them).
    pub fn cards_where(&self, keep: impl Fn(&CardState) -> bool) -> Vec<CardState> {
        self.shared
            .lock()
            .cards
            .values()
            .filter(|c| keep(c))
            .cloned()
            .collect()
    }

    /// Waits for the first transcript entry numbered after `after_seq` that `matches`
    /// (looking only at the new entries, once per change; the transcript is not copied).
    /// `None` at the deadline, or when that entry has already dropped out of the records.
    pub async fn wait_for_entry(
        &self,
        after_seq: u64,
        timeout: Duration,
        matches: impl Fn(&TranscriptEntry) -> bool,
    ) -> Option<TranscriptEntry> {
        let deadline = state::deadline_after(timeout);
        let changed = self.shared.lock().entries_changed.clone();
        let mut seen = after_seq;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                if let Some(e) = st.entries_after(seen).find(|e| matches(e)) {
                    return Some(e.clone());
                }
                seen = st.entries.total();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Waits until `cond` holds for the transcript, looking once now and once per new entry
    /// (no polling). `Err` with the last transcript at the deadline.
    pub async fn wait_for_transcript(
        &self,
        timeout: Duration,
        cond: impl Fn(&Transcript) -> bool,
    ) -> Result<Transcript, Box<Transcript>> {
        let deadline = state::deadline_after(timeout);
        let changed = self.shared.lock().entries_changed.clone();
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let t = self.transcript();
            if cond(&t) {
                return Ok(t);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let t = self.transcript();
                return if cond(&t) { Ok(t) } else { Err(Box::new(t)) };
            }
        }
    }

    /// Every ACK received, in order of arrival (ping echoes included, `topic` "ping").
    pub fn acks(&self) -> Vec<AckRecord> {
        self.shared.lock().acks.to_vec()
    }

    /// ACKs for one messageId (more than one is itself a problem).
    pub fn acks_for(&self, message_id: &str) -> Vec<AckRecord> {
        self.shared
            .lock()
            .acks
            .iter()
            .filter(|a| a.message_id == message_id)
            .cloned()
            .collect()
    }

    /// Waits for the first ACK of `message_id`.
    pub async fn wait_for_ack(&self, message_id: &str, timeout: Duration) -> Option<AckRecord> {
        self.shared.wait_for_ack(message_id, timeout).await
    }

    /// Number of accepted session webhook replies so far (cheap; for load drivers).
    pub fn reply_count(&self) -> u64 {
        self.shared.lock().replies
    }

    /// Waits until at least `n` session webhook replies were accepted.
    pub async fn wait_for_replies(&self, n: u64, timeout: Duration) -> bool {
        let deadline = state::deadline_after(timeout);
        let replies = &self.shared.0.reply_notify;
        wait_notified(replies, || deadline, || self.reply_count() >= n).await
    }

    /// Pings sent and whether each was echoed.
    pub fn pings(&self) -> Vec<PingRecord> {
        self.shared.lock().pings.to_vec()
    }

    /// Protocol violations noticed (bad ACKs, ACKs on the wrong connection, unanswered
    /// pings, binary frames), as readable lines.
    pub fn problems(&self) -> Vec<String> {
        self.shared.lock().problems.to_vec()
    }

    /// Live connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// Connections of one app.
    pub fn connections_of(&self, client_id: &str) -> Vec<ConnectionInfo> {
        self.connections()
            .into_iter()
            .filter(|c| c.client_id == client_id)
            .collect()
    }

    /// Waits until the app has at least `n` accepting connections.
    pub async fn wait_for_connections(&self, client_id: &str, n: usize, timeout: Duration) -> bool {
        let deadline = state::deadline_after(timeout);
        loop {
            let live = self
                .connections_of(client_id)
                .iter()
                .filter(|c| c.accepting)
                .count();
            if live >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Pushes an EVENT frame (to connections subscribed to topic `*`) with the event
    /// headers; returns (messageId, connectionId). Its ACK must carry `status`.
    pub fn push_event(
        &self,
        client_id: &str,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<(String, String), SandboxError> {
        self.shared.push_event(client_id, event_type, data)
    }

    // ------------------------------------------------------------ faults

    /// Writes `text` verbatim on a connection: malformed frames (non-JSON, missing
    /// headers, unknown type, `data` not JSON, oversized) for client robustness tests.
    /// A `headers.messageId` inside is expected to be ACKed like any frame.
    pub fn send_raw(&self, connection_id: &str, text: &str) -> Result<(), SandboxError> {
        self.shared.send_raw(connection_id, text)
    }

    /// Sends SYSTEM `disconnect`: nothing more is pushed on the connection, which is closed
    /// `disconnect_grace` later.
    pub fn send_disconnect(&self, connection_id: &str) -> Result<(), SandboxError> {
        self.shared.send_disconnect(connection_id)
    }

    /// Drops the connection without a close frame.
    pub fn drop_connection(&self, connection_id: &str) -> Result<(), SandboxError> {
        self.shared.drop_connection(connection_id)
    }

    /// Normal, delayed or withheld pings (for all connections).
    pub fn set_ping_mode(&self, mode: PingMode) {
        self.shared.lock().ping_mode = mode;
    }

    /// Sends a ping on a connection right now.
    pub fn ping_now(&self, connection_id: &str) {
        self.shared.send_ping(connection_id);
    }

    /// Pushes a posted message again `after` from now (same data and msgId, new messageId).
    pub fn redeliver(&self, message_id: &str, after: Duration) -> Result<(), SandboxError> {
        schedule_redelivery(&self.shared, message_id, after)
    }

    /// Pushes a posted message again now; returns the new messageId.
    pub fn redeliver_now(&self, message_id: &str) -> Result<String, SandboxError> {
        self.shared.redeliver_now(message_id)
    }

    /// Pushes a message again (same `msgId`, new messageId) on the chosen connection of its
    /// app, e.g. to land a redelivery on another host. Returns the new messageId.
    pub fn redeliver_to(
        &self,
        message_id: &str,
        connection_id: &str,
    ) -> Result<String, SandboxError> {
        self.shared.redeliver_on(message_id, Some(connection_id))
    }

    /// Card endpoints answer `status` (403 or 5xx) for the next `count` calls, or until
    /// cleared when `count` is None.
    pub fn fail_card_calls(&self, status: u16, count: Option<u32>) {
        self.shared.lock().card_fault = Some(CardFault { status, count });
    }

    pub fn clear_card_fault(&self) {
        self.shared.lock().card_fault = None;
    }

    /// Adds a refusal a real account gives (see [`RefusalFault`] for which calls it hits);
    /// refusals already added stay, the first that hits a call answers it.
    pub fn refuse(&self, fault: RefusalFault) -> Result<(), SandboxError> {
        refuse::check(&fault).map_err(SandboxError::BadFault)?;
        self.shared.lock().refusals.push(fault);
        Ok(())
    }

    /// Removes every injected refusal.
    pub fn clear_refusals(&self) {
        self.shared.lock().refusals.clear();
    }

    /// Every session webhook issued so far expires now.
    pub fn expire_webhooks(&self) {
        expire_sessions(&self.shared);
    }

    /// Every access token issued so far expires now (next card call gets 401).
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for t in self.shared.lock().tokens.values_mut() {
            t.expires = now;
        }
    }

    /// Closes every connection (with a close frame) and stops serving.
    pub async fn shutdown(self) {
        for c in self.shared.lock().conns.values() {
            let _ = c.tx.send(state::Out::Close("sandbox shutting down".into()));
        }
        // Let the connection tasks write their close frames.
        tokio::task::yield_now().await;
        self.server.abort();
        let _ = self.server.await;
    }
}

pub(crate) fn transcript_of(sh: &Shared) -> Transcript {
    let st = sh.lock();
    Transcript {
        entries: st.entries.to_vec(),
        cards: st.cards.clone(),
    }
}

pub(crate) fn expire_sessions(sh: &Shared) {
    let now = Instant::now();
    for s in sh.lock().sessions.values_mut() {
        s.expires = now;
    }
}

pub(crate) fn schedule_redelivery(
    sh: &Shared,
    message_id: &str,
    after: Duration,
) -> Result<(), SandboxError> {
    if !sh.lock().posted.contains_key(message_id) {
        return Err(SandboxError::UnknownMessage(message_id.to_string()));
    }
    let sh = sh.clone();
    let id = message_id.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Err(e) = sh.redeliver_now(&id) {
            sh.lock()
                .problems
                .push(format!("redelivery of {id} failed: {e}"));
        }
    });
    Ok(())
}
