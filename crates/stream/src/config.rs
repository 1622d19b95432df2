//! Client settings: credentials, base URLs, subscriptions, keepalive, backoff and limits.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use jitnode_dingtalk_wire::frame::{TOPIC_CARD_CALLBACK, TOPIC_ROBOT};

/// Default OpenAPI base (connections, tokens, cards).
pub const DEFAULT_OPENAPI: &str = "https://api.dingtalk.com";
/// Default legacy base (session webhooks live on this host).
pub const DEFAULT_OAPI: &str = "https://oapi.dingtalk.com";

/// A string that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

/// One entry of `subscriptions` in the open-connection request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
}

impl Subscription {
    pub fn callback(topic: &str) -> Subscription {
        Subscription {
            kind: "CALLBACK".into(),
            topic: topic.into(),
        }
    }

    /// All events (`{"type": "EVENT", "topic": "*"}`).
    pub fn all_events() -> Subscription {
        Subscription {
            kind: "EVENT".into(),
            topic: "*".into(),
        }
    }
}

/// Reconnect delays: `min(base * 2^attempt + U(0, jitter), max)`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    pub base: Duration,
    pub max: Duration,
    pub jitter: Duration,
    /// Wait after the gateway rejected the credentials; they will not fix themselves soon.
    pub auth_failed: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: Duration::from_secs(1),
            auth_failed: Duration::from_secs(300),
        }
    }
}

impl BackoffConfig {
    /// The delay before attempt number `attempt` (0-based), with `jitter_fraction` in [0, 1)
    /// picking the point in the jitter range. Pure, so the math is testable.
    pub fn delay(&self, attempt: u32, jitter_fraction: f64) -> Duration {
        // 2^attempt overflows quickly; anything past 2^20 is above any sane cap anyway.
        let factor = 1u64 << attempt.min(20);
        let exp = self.base.saturating_mul(factor.min(u32::MAX as u64) as u32);
        let jitter = self.jitter.mul_f64(jitter_fraction.clamp(0.0, 1.0));
        exp.saturating_add(jitter).min(self.max)
    }

    /// [`Self::delay`] with random jitter.
    pub fn delay_random(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

/// Liveness settings of one WebSocket connection.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepaliveConfig {
    /// WebSocket PING interval.
    pub ping_interval: Duration,
    /// No PONG this long after a PING: the link is dead.
    pub pong_timeout: Duration,
    /// No frame from the gateway this long (our PINGs' PONGs do not count): the link is
    /// dead (zombie connection). The gateway sends SYSTEM `ping`s, so a live link has some.
    pub idle_timeout: Duration,
    /// How long a connection that got `disconnect` may stay open to finish its ACKs.
    pub drain_timeout: Duration,
    /// Open-connection request plus WebSocket handshake.
    pub connect_timeout: Duration,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            drain_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// Everything the client needs. Build with [`ClientConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// `openApiEndpoint`, without a trailing slash.
    pub openapi_endpoint: String,
    /// Legacy `oapi` endpoint, without a trailing slash.
    pub oapi_endpoint: String,
    /// Origins session webhooks may point at, each `scheme://host[:port]` with scheme,
    /// host and port all pinned (no port: the scheme's default; a bare `host[:port]`
    /// means https). Default: the oapi endpoint's origin.
    pub webhook_origins: Vec<String>,
    pub subscriptions: Vec<Subscription>,
    /// `ua` of the open-connection request.
    pub user_agent: String,
    pub keepalive: KeepaliveConfig,
    pub backoff: BackoffConfig,
    /// Handlers running at once; further messages wait for a slot (their ACK does not).
    pub max_concurrent_handlers: usize,
    /// Messages read and waiting for a handler slot. When this many wait, the client stops
    /// reading its connection (TCP pushes back on the gateway) until a slot frees, so a
    /// burst costs bounded memory. Gateway pings queued behind them wait too.
    pub max_waiting_handlers: usize,
    /// How long [`crate::Client::stop`] waits for running handlers (which see their
    /// shutdown token cancelled) before it returns and leaves them to finish alone.
    pub stop_timeout: Duration,
    /// How long a handled message id is remembered, at least, to drop redeliveries (ids go
    /// in whole generations, so one may stay up to twice this).
    pub dedupe_window: Duration,
    /// Card callbacks are ACKed with the handler's answer; past this the ACK goes out empty.
    pub callback_timeout: Duration,
    /// Frames larger than this are refused with an error ACK.
    pub max_frame_bytes: usize,
    /// Timeout of every HTTP request (open connection, token, webhook, cards).
    pub http_timeout: Duration,
}

impl ClientConfig {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> ClientConfig {
        ClientConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            openapi_endpoint: DEFAULT_OPENAPI.into(),
            oapi_endpoint: DEFAULT_OAPI.into(),
            webhook_origins: Vec::new(),
            subscriptions: vec![
                Subscription::callback(TOPIC_ROBOT),
                Subscription::callback(TOPIC_CARD_CALLBACK),
            ],
            user_agent: format!("jitnode-stream/{}", env!("CARGO_PKG_VERSION")),
            keepalive: KeepaliveConfig::default(),
            backoff: BackoffConfig::default(),
            max_concurrent_handlers: 64,
            max_waiting_handlers: 1024,
            stop_timeout: Duration::from_secs(10),
            dedupe_window: Duration::from_secs(10 * 60),
            callback_timeout: Duration::from_secs(3),
            max_frame_bytes: 1024 * 1024,
            http_timeout: Duration::from_secs(15),
        }
    }

    /// Points both base URLs at one server (the sandbox) and allows its origin for webhooks.
    pub fn with_base_url(mut self, base: &str) -> ClientConfig {
        let base = base.trim_end_matches('/').to_string();
        self.openapi_endpoint = base.clone();
        self.oapi_endpoint = base;
        self.webhook_origins.clear();
        self
    }

    /// The webhook origins in effect: the configured ones, else the oapi endpoint's.
    pub fn effective_webhook_origins(&self) -> Vec<String> {
        if !self.webhook_origins.is_empty() {
            return self.webhook_origins.clone();
        }
        origin_of(&self.oapi_endpoint).into_iter().collect()
    }
}

/// `scheme://host:port` of an http(s) URL (the port made explicit), for
/// [`ClientConfig::webhook_origins`].
pub fn origin_of(base: &str) -> Option<String> {
    let u = url::Url::parse(base).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug() {
        let c = ClientConfig::new("dingabc", "s3cr3t-value");
        let s = format!("{c:?}");
        assert!(s.contains("dingabc"));
        assert!(!s.contains("s3cr3t-value"), "{s}");
        assert_eq!(c.client_secret.to_string(), "***");
    }

    #[test]
    fn backoff_doubles_adds_jitter_and_caps() {
        let b = BackoffConfig::default();
        assert_eq!(b.delay(0, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(8500));
        assert_eq!(b.delay(6, 0.0), Duration::from_secs(60));
        assert_eq!(b.delay(500, 0.99), Duration::from_secs(60));
        for attempt in 0..5 {
            let d = b.delay_random(attempt);
            let lo = Duration::from_secs(1 << attempt);
            assert!(d >= lo && d <= lo + Duration::from_secs(1), "{d:?}");
        }
    }

    #[test]
    fn webhook_origins_default_to_oapi_origin() {
        let c = ClientConfig::new("a", "b");
        assert_eq!(
            c.effective_webhook_origins(),
            vec!["https://oapi.dingtalk.com:443"]
        );
        let c = c.with_base_url("http://127.0.0.1:4567/");
        assert_eq!(c.openapi_endpoint, "http://127.0.0.1:4567");
        assert_eq!(c.effective_webhook_origins(), vec!["http://127.0.0.1:4567"]);
        assert_eq!(origin_of("ws://x"), None);
        assert_eq!(origin_of("nope"), None);
    }
}
