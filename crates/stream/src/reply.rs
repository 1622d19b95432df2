//! The HTTP side of answering: session webhooks, the access token, standard and advanced
//! cards, AI card streaming. Every request has a timeout; every failure is a typed
//! [`ReplyError`] that keeps the HTTP status (a 403 on card calls means "rate limited, fall
//! back to a plain reply"). Tokens and webhook URLs never reach logs or errors.

use std::sync::Arc;
use std::time::Duration;

use jitnode_dingtalk_wire::api::{
    self, AccessTokenRequest, AccessTokenResponse, ApiError, At, CardInstanceUpdate, CardStreaming,
    CardTarget, Method, StandardCardSend, StandardCardUpdate, WebhookMessage, WebhookResponse,
    ERRCODE_SESSION_EXPIRED, HEADER_ACCESS_TOKEN, PATH_ACCESS_TOKEN, PATH_CARD_INSTANCES,
    PATH_CARD_STREAMING, PATH_CREATE_AND_DELIVER, PATH_STANDARD_SEND, PATH_STANDARD_UPDATE,
};
use jitnode_dingtalk_wire::{redacted_url, Refusal};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::{ClientConfig, Secret};

/// Refresh the token this long before DingTalk says it expires.
const TOKEN_EARLY_REFRESH: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// An OpenAPI error body `{"requestid", "code", "message"}` (or just a status).
    #[error("{method} {path} answered HTTP {status}: {code} {message} (requestid {request_id})")]
    Api {
        method: &'static str,
        path: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
        /// What the answer means, when it is one of the refusals real accounts give
        /// (boxed: errors stay small).
        refusal: Option<Box<Refusal>>,
    },
    #[error("{what} failed: {reason}")]
    Transport { what: String, reason: String },
    #[error("{what} answered something unexpected: {reason}")]
    InvalidResponse { what: String, reason: String },
    #[error("the session webhook has expired (errcode 300001): {errmsg}")]
    SessionExpired { errmsg: String },
    #[error("the session webhook answered errcode {errcode}: {errmsg}")]
    Webhook { errcode: i64, errmsg: String },
    #[error(
        "refusing to post to session webhook origin {origin}: not one of the allowed origins {allowed:?}"
    )]
    HostNotAllowed {
        /// `scheme://host:port` of the refused URL (never its path or query, which hold
        /// the session key).
        origin: String,
        allowed: Vec<String>,
    },
    #[error("access token for clientId {client_id} refused: HTTP {status} {code} {message}")]
    Token {
        client_id: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl ReplyError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReplyError::Api { status, .. } | ReplyError::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The refusal this error is, when DingTalk gave one of the known ones
    /// ([`jitnode_dingtalk_wire::refusal`]): bad credentials, a missing permission, an
    /// unpublished template or robot, a rate limit, an expired session webhook.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ReplyError::Api { refusal, .. } => refusal.as_deref().cloned(),
            ReplyError::Token {
                status,
                code,
                message,
                ..
            } => Refusal::of_api(
                *status,
                &ApiError {
                    code: code.clone(),
                    message: message.clone(),
                    ..ApiError::default()
                },
                PATH_ACCESS_TOKEN,
            )
            // A token refused with a 401 or 403 and no known code: the credentials.
            .or((matches!(status, 401 | 403)).then_some(Refusal::AuthFailed)),
            ReplyError::SessionExpired { .. } => Some(Refusal::SessionExpired),
            ReplyError::Webhook { errcode, .. } => Refusal::of_errcode(*errcode),
            _ => None,
        }
    }

    /// HTTP 403: DingTalk's answer to too many card updates.
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }
}

fn transport(what: &str, e: reqwest::Error) -> ReplyError {
    // reqwest errors can include the URL (with a session key); drop it.
    ReplyError::Transport {
        what: what.to_string(),
        reason: e.without_url().to_string(),
    }
}

/// Builds the shared HTTP client with the configured timeout. It follows no redirects: a
/// 3xx from an allowed webhook origin must not lead a post (and its body) anywhere else,
/// and DingTalk's APIs answer directly.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Only fails when the TLS backend cannot initialise, which is a broken install.
        .expect("HTTP client builds")
}

/// One allowed webhook origin: scheme, host and port all pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// `https://host[:port]` or `http://host[:port]` (a path is ignored); a bare `host` or
    /// `host:port` means https. `None` for anything else.
    fn parse(entry: &str) -> Option<Origin> {
        let full = if entry.contains("://") {
            entry.to_string()
        } else {
            format!("https://{entry}")
        };
        let url = url::Url::parse(&full).ok()?;
        Origin::of(&url)
    }

    fn of(url: &url::Url) -> Option<Origin> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Posts to session webhooks, only on allowed origins (scheme, host and port).
#[derive(Clone)]
pub struct SessionWebhook {
    http: reqwest::Client,
    allowed: Arc<Vec<Origin>>,
}

impl std::fmt::Debug for SessionWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWebhook")
            .field("allowed", &self.allowed_strings())
            .finish()
    }
}

impl SessionWebhook {
    /// `allowed_origins`: see [`crate::ClientConfig::webhook_origins`]; entries that are
    /// not http(s) origins allow nothing.
    pub fn new(http: reqwest::Client, allowed_origins: Vec<String>) -> SessionWebhook {
        SessionWebhook {
            http,
            allowed: Arc::new(
                allowed_origins
                    .iter()
                    .filter_map(|o| Origin::parse(o))
                    .collect(),
            ),
        }
    }

    fn allowed_strings(&self) -> Vec<String> {
        self.allowed.iter().map(Origin::to_string).collect()
    }

    /// Refuses anything but a URL whose scheme, host and port match an allowed origin
    /// exactly (a URL without a port means the scheme's default port).
    pub fn check_url(&self, webhook: &str) -> Result<url::Url, ReplyError> {
        let refuse = |origin: String| ReplyError::HostNotAllowed {
            origin,
            allowed: self.allowed_strings(),
        };
        let url = url::Url::parse(webhook).map_err(|_| refuse("<not a URL>".into()))?;
        let Some(origin) = Origin::of(&url) else {
            return Err(refuse(format!("<a {} URL>", url.scheme())));
        };
        if self.allowed.contains(&origin) {
            Ok(url)
        } else {
            Err(refuse(origin.to_string()))
        }
    }

    pub async fn send_text(
        &self,
        webhook: &str,
        content: &str,
        at: Option<&At>,
    ) -> Result<(), ReplyError> {
        self.send(webhook, &WebhookMessage::text(content, at.cloned()))
            .await
    }

    pub async fn send_markdown(
        &self,
        webhook: &str,
        title: &str,
        text: &str,
        at: Option<&At>,
    ) -> Result<(), ReplyError> {
        self.send(webhook, &WebhookMessage::markdown(title, text, at.cloned()))
            .await
    }

    /// Posts any body; success only when the answer says `errcode` 0.
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        webhook: &str,
        body: &B,
    ) -> Result<(), ReplyError> {
        let url = self.check_url(webhook)?;
        let what = "session webhook";
        let resp = self
            .http
            .post(url)
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        let status = resp.status().as_u16();
        // Bytes, not text: no UTF-8 pass and copy before the JSON reader's own check.
        let body = resp.bytes().await.map_err(|e| transport(what, e))?;
        let answer: WebhookResponse =
            serde_json::from_slice(&body).map_err(|_| ReplyError::InvalidResponse {
                what: what.into(),
                reason: format!("HTTP {status}, body is not JSON"),
            })?;
        let errmsg = answer.errmsg;
        match answer.errcode {
            Some(0) if status < 400 => Ok(()),
            Some(ERRCODE_SESSION_EXPIRED) => Err(ReplyError::SessionExpired { errmsg }),
            Some(errcode) => Err(ReplyError::Webhook { errcode, errmsg }),
            None => Err(ReplyError::InvalidResponse {
                what: what.into(),
                reason: format!("HTTP {status} without errcode"),
            }),
        }
    }
}

#[derive(Clone)]
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// OpenAPI calls with a cached access token (per app), refreshed early, one refresh at a
/// time, and once more when a call answers 401.
#[derive(Clone)]
pub struct OpenApi {
    http: reqwest::Client,
    base: Arc<str>,
    client_id: Arc<str>,
    client_secret: Secret,
    token: Arc<Mutex<Option<Token>>>,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi")
            .field("base", &redacted_url(&self.base))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OpenApi {
    pub fn new(http: reqwest::Client, config: &ClientConfig) -> OpenApi {
        OpenApi {
            http,
            base: config.openapi_endpoint.trim_end_matches('/').into(),
            client_id: config.client_id.as_str().into(),
            client_secret: config.client_secret.clone(),
            token: Arc::new(Mutex::new(None)),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A valid access token, fetched when missing or due for refresh. Callers that race
    /// wait on the one refresh in flight (the lock is held across it).
    pub async fn access_token(&self) -> Result<Secret, ReplyError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *guard = Some(fresh);
        Ok(value)
    }

    /// Drops `stale` if it is still the cached token, so the next call refreshes it once.
    async fn invalidate(&self, stale: &Secret) {
        let mut guard = self.token.lock().await;
        if guard.as_ref().is_some_and(|t| &t.value == stale) {
            *guard = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, ReplyError> {
        let what = "access token request";
        let resp = self
            .http
            .post(format!("{}{PATH_ACCESS_TOKEN}", self.base))
            .header("Accept", "application/json")
            .json(&AccessTokenRequest {
                app_key: self.client_id.to_string(),
                app_secret: self.client_secret.expose().to_string(),
            })
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| transport(what, e))?;
        if status >= 400 {
            let e: ApiError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(ReplyError::Token {
                client_id: self.client_id.to_string(),
                status,
                code: e.code,
                message: e.message,
            });
        }
        let AccessTokenResponse {
            access_token: token,
            expire_in,
        } = serde_json::from_slice(&body)
            .ok()
            .filter(|t: &AccessTokenResponse| !t.access_token.is_empty() && t.expire_in > 0)
            .ok_or_else(|| ReplyError::InvalidResponse {
                what: what.into(),
                reason: "no accessToken or expireIn".into(),
            })?;
        let life = Duration::from_secs(expire_in);
        // Short-lived tokens (tests) refresh at half life rather than never being valid.
        let early = TOKEN_EARLY_REFRESH.min(life / 2);
        tracing::debug!(client_id = %self.client_id, expire_in, "access token refreshed");
        Ok(Token {
            value: Secret::new(token),
            refresh_at: Instant::now() + life - early,
        })
    }

    /// One OpenAPI call under the base URL, with the token; refreshes it once on a 401.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Value, ReplyError> {
        let token = self.access_token().await?;
        match self.call_with(method, path, body, &token).await {
            Err(ReplyError::Api { status: 401, .. }) => {
                self.invalidate(&token).await;
                let token = self.access_token().await?;
                self.call_with(method, path, body, &token).await
            }
            other => other,
        }
    }

    async fn call_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        token: &Secret,
    ) -> Result<Value, ReplyError> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
        };
        let what = format!("{} {path}", method.as_str());
        let resp = req
            .header("Accept", "application/json")
            .header(HEADER_ACCESS_TOKEN, token.expose())
            .json(body)
            .send()
            .await
            .inspect_err(|_| jitnode_metrics::global().card_calls.inc(0))
            .map_err(|e| transport(&what, e))?;
        let status = resp.status().as_u16();
        jitnode_metrics::global().card_calls.inc(status);
        let text = resp.text().await.map_err(|e| transport(&what, e))?;
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if status >= 400 {
            let e: ApiError = serde_json::from_value(v).unwrap_or_default();
            let refusal = Refusal::of_api(status, &e, path).map(Box::new);
            return Err(ReplyError::Api {
                refusal,
                method: method.as_str(),
                path: path.to_string(),
                status,
                code: e.code,
                message: e.message,
                request_id: e.requestid,
            });
        }
        Ok(v)
    }

    /// `POST /v1.0/im/v1.0/robot/interactiveCards/send` with a ready body.
    pub async fn standard_card_send(&self, body: &StandardCardSend) -> Result<Value, ReplyError> {
        self.call(Method::Post, PATH_STANDARD_SEND, body).await
    }

    /// Sends a standard card to a group (`open_conversation_id`) or one user
    /// (`single_chat_user_id`, a staffId).
    pub async fn send_standard_card(
        &self,
        card_biz_id: &str,
        card: &Value,
        target: CardTarget<'_>,
    ) -> Result<Value, ReplyError> {
        let body = StandardCardSend::new(&self.client_id, card_biz_id, card, target, None);
        self.standard_card_send(&body).await
    }

    /// `PUT /v1.0/im/robots/interactiveCards`: replaces the whole card.
    pub async fn update_standard_card(
        &self,
        card_biz_id: &str,
        card: &Value,
    ) -> Result<Value, ReplyError> {
        let body = StandardCardUpdate::new(card_biz_id, card);
        self.call(Method::Put, PATH_STANDARD_UPDATE, &body).await
    }

    /// `POST /v1.0/card/instances/createAndDeliver` with a ready body.
    pub async fn create_and_deliver(
        &self,
        body: &api::CreateAndDeliver,
    ) -> Result<Value, ReplyError> {
        self.call(Method::Post, PATH_CREATE_AND_DELIVER, body).await
    }

    /// `PUT /v1.0/card/instances`: updates the given variables of a template card.
    pub async fn update_card(
        &self,
        out_track_id: &str,
        params: api::ParamMap,
    ) -> Result<Value, ReplyError> {
        let body = CardInstanceUpdate::by_key(out_track_id, params);
        self.call(Method::Put, PATH_CARD_INSTANCES, &body).await
    }

    /// `PUT /v1.0/card/streaming`: the full text so far of an AI card variable.
    pub async fn stream_card(
        &self,
        out_track_id: &str,
        key: &str,
        content: &str,
        finalize: bool,
        error: bool,
    ) -> Result<Value, ReplyError> {
        let body = CardStreaming {
            out_track_id: out_track_id.into(),
            guid: uuid::Uuid::new_v4().to_string(),
            key: key.into(),
            content: content.into(),
            is_full: true,
            is_finalize: finalize,
            is_error: error,
        };
        self.call(Method::Put, PATH_CARD_STREAMING, &body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_origins_pin_scheme_host_and_port() {
        let w = SessionWebhook::new(
            reqwest::Client::new(),
            vec![
                "oapi.dingtalk.com".into(),
                "http://127.0.0.1:8080".into(),
                "ftp://nope".into(),
            ],
        );
        for good in [
            "https://oapi.dingtalk.com/robot/sendBySession?session=x",
            "https://OAPI.dingtalk.com:443/robot/sendBySession",
            "http://127.0.0.1:8080/s",
        ] {
            assert!(w.check_url(good).is_ok(), "{good}");
        }
        for bad in [
            // A bare host means https on 443: not http, not another port.
            "http://oapi.dingtalk.com/robot/sendBySession?session=x",
            "https://oapi.dingtalk.com:8443/robot/sendBySession",
            // An http origin with a port: not https, not another port, not the default.
            "https://127.0.0.1:8080/s",
            "http://127.0.0.1:9090/s",
            "http://127.0.0.1/s",
            "https://evil.example/robot",
            "https://oapi.dingtalk.com.evil.example/",
            "ftp://nope/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            let e = w.check_url(bad).unwrap_err();
            assert!(matches!(e, ReplyError::HostNotAllowed { .. }), "{bad}");
            // The refusal never repeats the session key.
            assert!(!e.to_string().contains("session="), "{e}");
        }
        let e = w
            .check_url("http://oapi.dingtalk.com/robot/sendBySession?session=x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://oapi.dingtalk.com:80"), "{e}");
        assert!(e.contains("https://oapi.dingtalk.com:443"), "{e}");
        assert!(!e.contains("ftp"), "{e}");
    }

    /// A one-shot HTTP server on loopback answering every request with `response`;
    /// reports each request line it read.
    async fn serve(
        response: &'static str,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let _ = tx.send(head.lines().next().unwrap_or_default().to_string());
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (addr, rx)
    }

    /// rustls is set up (its crypto provider chosen) for both HTTPS and WSS: a TLS
    /// handshake with a peer that is not speaking TLS fails as an error, never a panic.
    #[tokio::test]
    async fn tls_clients_build_and_fail_cleanly_against_a_non_tls_peer() {
        let (addr, _seen) = serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let e = http_client(Duration::from_secs(5))
            .post(format!("https://{addr}/v1.0/oauth2/accessToken"))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_connect() || e.is_request(), "{e}");
        let r = tokio_tungstenite::connect_async(format!("wss://{addr}/connect")).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn a_redirect_from_an_allowed_origin_is_not_followed() {
        let (elsewhere, mut elsewhere_seen) = serve(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"errcode\":0}",
        )
        .await;
        let redirect: &'static str = Box::leak(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let (allowed, mut allowed_seen) = serve(redirect).await;
        let w = SessionWebhook::new(
            http_client(Duration::from_secs(5)),
            vec![format!("http://{allowed}")],
        );
        let e = w
            .send_text(
                &format!("http://{allowed}/robot/send?session=k"),
                "hi",
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, ReplyError::InvalidResponse { .. }),
            "a 307 is an unexpected answer, not followed: {e}"
        );
        assert!(allowed_seen
            .recv()
            .await
            .unwrap()
            .starts_with("POST /robot/send"));
        // The client is done with the request; the other server saw nothing.
        assert!(elsewhere_seen.try_recv().is_err());
    }

    #[test]
    fn openapi_debug_hides_secret() {
        let c = ClientConfig::new("dingid", "topsecret");
        let api = OpenApi::new(reqwest::Client::new(), &c);
        let s = format!("{api:?}");
        assert!(s.contains("dingid") && !s.contains("topsecret"), "{s}");
    }

    #[test]
    fn forbidden_is_distinguishable() {
        let e = ReplyError::Api {
            method: "PUT",
            path: PATH_CARD_STREAMING.into(),
            status: 403,
            code: "Forbidden.AccessDenied.QpsLimit".into(),
            message: "qps".into(),
            request_id: "r".into(),
            refusal: Some(Box::new(Refusal::RateLimited)),
        };
        assert!(e.is_forbidden());
        assert_eq!(e.status(), Some(403));
        assert!(e.to_string().contains("403"));
    }
}
