//! The HTTP side: DingTalk's OpenAPI (api and oapi paths on one host), the WebSocket
//! gateway, and the control API under `/control`.

// Handlers return a ready `Response` as the error of their helpers; it is built once, on
// the error path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};
use futures_util::SinkExt;
use jitnode_dingtalk_wire::api::{
    ai_card, PATH_CARD_INSTANCES, PATH_CARD_STREAMING, PATH_CREATE_AND_DELIVER, PATH_STANDARD_SEND,
    PATH_STANDARD_UPDATE,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::refuse;
use crate::state::{apply_param_map, push_entry, string_map, Out, Shared};
use crate::types::*;

/// Frames written after the first before one flush on a gateway connection.
const WRITE_BATCH: usize = 64;

/// Longest `timeoutMs` of `GET /control/wait-ack` (10 minutes).
pub const MAX_WAIT_MS: u64 = 600_000;
/// Largest `afterSecs` of `POST /control/faults/redeliver` (one hour).
pub const MAX_REDELIVERY_SECS: f64 = 3600.0;

pub(crate) fn router(shared: Shared) -> Router {
    let control = Router::new()
        .route("/control/apps", post(ctl_register))
        .route("/control/messages", post(ctl_post))
        .route("/control/click", post(ctl_click))
        .route("/control/transcript", get(ctl_transcript))
        .route("/control/acks", get(ctl_acks))
        .route("/control/wait-ack", get(ctl_wait_ack))
        .route("/control/pings", get(ctl_pings))
        .route("/control/problems", get(ctl_problems))
        .route("/control/connections", get(ctl_connections))
        .route("/control/faults/disconnect", post(ctl_disconnect))
        .route("/control/faults/drop", post(ctl_drop))
        .route("/control/faults/pings", post(ctl_ping_mode))
        .route("/control/faults/redeliver", post(ctl_redeliver))
        .route(
            "/control/faults/cards",
            post(ctl_card_fault).delete(ctl_card_fault_clear),
        )
        .route(
            "/control/faults/refusals",
            post(ctl_refuse).delete(ctl_refusals_clear),
        )
        .route("/control/faults/expire-webhooks", post(ctl_expire_webhooks))
        .route("/control/faults/expire-tokens", post(ctl_expire_tokens))
        .route("/control/faults/raw", post(ctl_raw))
        .route("/control/events", post(ctl_event))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            control_guard,
        ));
    let mut api = Router::new()
        .route("/v1.0/gateway/connections/open", post(open_connection))
        .route("/connect", get(connect))
        .route("/v1.0/oauth2/accessToken", post(access_token))
        .route("/robot/sendBySession", post(session_webhook));
    for op in CardOp::ALL {
        api = api.route(op.path(), op.route());
    }
    api.merge(control).fallback(not_found).with_state(shared)
}

/// Runs before every control handler; see the crate docs for the rules.
async fn control_guard(AxState(sh): AxState<Shared>, req: Request, next: Next) -> Response {
    match check_control(
        sh.config().control_token.as_ref(),
        req.method(),
        req.headers(),
    ) {
        Ok(()) => next.run(req).await,
        Err((status, why)) => (status, Json(json!({"error": why}))).into_response(),
    }
}

fn check_control(
    token: Option<&jitnode_stream::Secret>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, &'static str)> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match token {
        Some(token) => {
            let given = header(header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !same_secret(given.as_bytes(), token.expose().as_bytes()) {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "the control API needs Authorization: Bearer <control token>",
                ));
            }
        }
        None => {
            if !header(header::HOST).is_some_and(is_loopback_host) {
                return Err((
                    StatusCode::FORBIDDEN,
                    "the control API answers only Host localhost, 127.x.x.x or [::1]",
                ));
            }
            if let Some(origin) = header(header::ORIGIN) {
                let host = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                if !host.is_some_and(is_loopback_host) {
                    return Err((
                        StatusCode::FORBIDDEN,
                        "the control API answers no Origin but a loopback one",
                    ));
                }
            }
        }
    }
    // A page may send a "simple" cross-site POST (form or text/plain) without asking
    // first; a JSON content type it may not.
    if method == Method::POST {
        let json = header(header::CONTENT_TYPE).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "control POSTs need Content-Type: application/json",
            ));
        }
    }
    Ok(())
}

/// `host[:port]` naming this machine's loopback (`localhost`, `127.x.x.x`, `[::1]`).
fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return false,
            None => host_port,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares without stopping at the first difference (the token is a secret).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// DingTalk's OpenAPI error body.
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "requestid": uuid::Uuid::new_v4().to_string(),
            "code": code,
            "message": message,
        })),
    )
        .into_response()
}

async fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such API in the sandbox",
    )
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            api_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "body is not a JSON object",
            )
        })
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------- gateway

/// The id of a connection-open or access-token request whose credentials fields (`names`:
/// id, secret) are both there, that no refusal played for `call` hits, and that the
/// sandbox knows; else DingTalk's answer. A refusal is checked before the credentials, as
/// a real account refuses right credentials of an unpublished app.
fn credentials<'a>(
    sh: &Shared,
    v: &'a Value,
    (id_field, secret_field): (&str, &str),
    call: refuse::Call<'_>,
) -> Result<&'a str, Response> {
    let (Some(id), Some(secret)) = (str_field(v, id_field), str_field(v, secret_field)) else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter",
            &format!("{id_field} and {secret_field} are required"),
        ));
    };
    if let Some(r) = refuse::take(&mut sh.lock(), call) {
        return Err(r.into_response());
    }
    if !sh.check_credentials(id, secret) {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "authFailed",
            &format!("{id_field} or {secret_field} is wrong"),
        ));
    }
    Ok(id)
}

async fn open_connection(
    AxState(sh): AxState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = match credentials(
        &sh,
        &v,
        ("clientId", "clientSecret"),
        refuse::Call::OpenConnection,
    ) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut topics = Vec::new();
    for s in v
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let kind = s.get("type").and_then(Value::as_str);
        let topic = s.get("topic").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, Some("CALLBACK" | "EVENT" | "SYSTEM")) || topic.is_empty() {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalidParameter",
                "each subscription needs type CALLBACK/EVENT/SYSTEM and a topic",
            );
        }
        topics.push(topic.to_string());
    }
    if topics.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter",
            "subscriptions must not be empty",
        );
    }
    let ticket = sh.issue_ticket(id, topics);
    let endpoint = format!("ws://{}/connect", sh.0.addr);
    // Like the real endpoint, answer XML to a client that did not ask for JSON.
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if !wants_json {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OpenConnectionResponse>\
             <endpoint>{endpoint}</endpoint><ticket>{ticket}</ticket></OpenConnectionResponse>"
        );
        return ([(axum::http::header::CONTENT_TYPE, "application/xml")], xml).into_response();
    }
    Json(json!({
        "endpoint": endpoint,
        "ticket": ticket,
    }))
    .into_response()
}

async fn connect(
    AxState(sh): AxState<Shared>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(ticket) = q.get("ticket") else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter",
            "ticket missing",
        );
    };
    let (client_id, topics) = match sh.take_ticket(ticket) {
        Ok(x) => x,
        Err(why) => return api_error(StatusCode::UNAUTHORIZED, "invalidTicket", why),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| serve_socket(sh, client_id, topics, socket))
}

async fn serve_socket(sh: Shared, client_id: String, topics: Vec<String>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = sh.add_conn(client_id, topics, tx.clone());
    tracing::debug!(%conn_id, "stream connection opened");
    let interval = sh.config().ping_interval;
    let mut next_ping = Instant::now() + interval;
    // What ends the connection, once the frames queued before it are written.
    let mut end: Option<Option<Out>> = None;
    while end.is_none() {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(t)) => {
                    // Frames queued meanwhile go out with this one in a single flush: a burst
                    // of pushes costs one write, not one each (bounded, so ACKs still get read).
                    let mut ok = socket.feed(Message::Text(t.into())).await.is_ok();
                    for _ in 0..WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(Out::Text(t)) => ok = ok && socket.feed(Message::Text(t.into())).await.is_ok(),
                            Ok(other) => {
                                end = Some(Some(other));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !ok || socket.flush().await.is_err() {
                        end = Some(None);
                    }
                }
                other => end = Some(other),
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => sh.record_ack(&conn_id, t.as_str()),
                Some(Ok(Message::Binary(_))) => {
                    sh.lock().problems.push(format!("{conn_id}: binary frame from client"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => end = Some(None),
            },
            _ = tokio::time::sleep_until(next_ping) => {
                next_ping = Instant::now() + interval;
                // Copy the mode out first: send_ping takes the lock again.
                let mode = sh.lock().ping_mode;
                match mode {
                    PingMode::Normal => sh.send_ping(&conn_id),
                    PingMode::Withhold => {}
                    PingMode::Delay { ms } => {
                        let sh2 = sh.clone();
                        let id = conn_id.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            sh2.send_ping(&id);
                        });
                    }
                }
            }
        }
    }
    if let Some(Some(Out::Close(reason))) = end {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: reason.into(),
            })))
            .await;
    }
    // Dropping the socket without a close frame is what a dropped link looks like.
    sh.remove_conn(&conn_id);
    tracing::debug!(%conn_id, "stream connection closed");
}

// ---------------------------------------------------------------- openapi

async fn access_token(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let key = match credentials(&sh, &v, ("appKey", "appSecret"), refuse::Call::AccessToken) {
        Ok(key) => key,
        Err(r) => return r,
    };
    let token = format!("sbtok{}", uuid::Uuid::new_v4().simple());
    let ttl = sh.config().token_ttl;
    sh.lock().tokens.insert(
        token.clone(),
        crate::state::Token {
            client_id: key.to_string(),
            expires: Instant::now() + ttl,
        },
    );
    Json(json!({"accessToken": token, "expireIn": ttl.as_secs()})).into_response()
}

fn token_client(sh: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let tok = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let st = sh.lock();
    match st.tokens.get(tok) {
        Some(t) if Instant::now() < t.expires => Ok(t.client_id.clone()),
        Some(_) => Err(api_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthentication",
            "access token expired",
        )),
        None => Err(api_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthentication",
            "missing or unknown x-acs-dingtalk-access-token",
        )),
    }
}

async fn session_webhook(
    AxState(sh): AxState<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let session = q.get("session").cloned().unwrap_or_default();
    let body_v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = sh.lock();
    let (client_id, conversation_id, expired) = match st.sessions.get(&session) {
        Some(s) => (
            s.client_id.clone(),
            Some(s.conversation_id.clone()),
            Instant::now() >= s.expires,
        ),
        None => (String::new(), None, true),
    };
    let msgtype = body_v
        .get("msgtype")
        .and_then(Value::as_str)
        .map(str::to_string);
    let text = match msgtype.as_deref() {
        Some("text") => body_v.pointer("/text/content").and_then(Value::as_str),
        Some("markdown") => {
            if body_v
                .pointer("/markdown/title")
                .and_then(Value::as_str)
                .is_some()
            {
                body_v.pointer("/markdown/text").and_then(Value::as_str)
            } else {
                None
            }
        }
        _ => None,
    }
    .map(str::to_string);
    let refused = if expired {
        None
    } else {
        refuse::take(&mut st, refuse::Call::SessionWebhook)
    };
    let (errcode, errmsg) = if expired || refused.is_some() {
        (300001, "session 不存在")
    } else if body_v.is_null() {
        (40035, "body is not JSON")
    } else if text.is_none() {
        (
            40035,
            "msgtype must be text (text.content) or markdown (markdown.title, markdown.text)",
        )
    } else {
        (0, "ok")
    };
    let entry = TranscriptEntry {
        seq: 0,
        client_id,
        kind: "webhook".into(),
        conversation_id,
        card_id: None,
        msgtype,
        text,
        body: body_v,
        status: 200,
        error: (errcode != 0).then(|| errcode.to_string()),
    };
    push_entry(&mut st, entry);
    if errcode == 0 {
        st.replies += 1;
    }
    drop(st);
    sh.0.reply_notify.notify_waiters();
    // DingTalk answers 200 even for errors; the errcode says what happened.
    Json(json!({"errcode": errcode, "errmsg": errmsg})).into_response()
}

#[derive(Clone, Copy)]
enum CardOp {
    StdSend,
    StdUpdate,
    Create,
    Update,
    Stream,
}

impl CardOp {
    /// Every card call, each served on its own path.
    const ALL: [CardOp; 5] = [
        CardOp::StdSend,
        CardOp::StdUpdate,
        CardOp::Create,
        CardOp::Update,
        CardOp::Stream,
    ];

    /// The handler of this call on its path: DingTalk creates cards with POST and changes
    /// them with PUT.
    fn route(self) -> MethodRouter<Shared> {
        let call = move |s, h, b| card_call(s, h, b, self);
        match self {
            CardOp::StdSend | CardOp::Create => post(call),
            CardOp::StdUpdate | CardOp::Update | CardOp::Stream => put(call),
        }
    }

    fn path(self) -> &'static str {
        match self {
            CardOp::StdSend => PATH_STANDARD_SEND,
            CardOp::StdUpdate => PATH_STANDARD_UPDATE,
            CardOp::Create => PATH_CREATE_AND_DELIVER,
            CardOp::Update => PATH_CARD_INSTANCES,
            CardOp::Stream => PATH_CARD_STREAMING,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            CardOp::StdSend => "card.send",
            CardOp::StdUpdate => "card.update",
            CardOp::Create => "card.createAndDeliver",
            CardOp::Update => "card.instances.update",
            CardOp::Stream => "card.streaming",
        }
    }
}

async fn card_call(
    AxState(sh): AxState<Shared>,
    headers: HeaderMap,
    body: Bytes,
    op: CardOp,
) -> Response {
    let client_id = match token_client(&sh, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body_v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let card_id = body_v
        .get("cardBizId")
        .or_else(|| body_v.get("outTrackId"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut st = sh.lock();
    // Injected faults first: a refused or rate-limited API does not look at the body.
    let refused = refuse::take(
        &mut st,
        refuse::Call::Card {
            path: op.path(),
            body: &body_v,
        },
    );
    let fault = match st.card_fault {
        _ if refused.is_some() => None,
        Some(f) => {
            match f.count {
                Some(1) => st.card_fault = None,
                Some(n) => {
                    st.card_fault = Some(CardFault {
                        count: Some(n - 1),
                        ..f
                    })
                }
                None => {}
            }
            Some(f.status)
        }
        None => None,
    };
    let result: Result<Value, (StatusCode, String, String)> = match fault {
        Some(403) => Err((
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi".into(),
            "QPS limit exceeded (sandbox fault)".into(),
        )),
        Some(s) => Err((
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "ServiceUnavailable".into(),
            "the service is unavailable (sandbox fault)".into(),
        )),
        // A refused call changes nothing.
        None if refused.is_some() => Ok(Value::Null),
        None => apply_card(&mut st, op, &client_id, &body_v)
            .map_err(|(code, msg)| (StatusCode::BAD_REQUEST, code.to_string(), msg)),
    };
    let conversation_id = card_id
        .as_ref()
        .and_then(|id| st.cards.get(id))
        .and_then(|c| c.conversation_id.clone());
    let (status, error, resp) = match (refused, result) {
        (Some(r), _) => (r.status, Some(r.code.clone()), r.into_response()),
        (None, Ok(r)) => (StatusCode::OK, None, Json(r).into_response()),
        (None, Err((status, code, msg))) => {
            (status, Some(code.clone()), api_error(status, &code, &msg))
        }
    };
    let entry = TranscriptEntry {
        seq: 0,
        client_id,
        kind: op.kind().into(),
        conversation_id,
        card_id,
        msgtype: None,
        text: None,
        body: body_v,
        status: status.as_u16(),
        error,
    };
    push_entry(&mut st, entry);
    resp
}

type CardErr = (&'static str, String);

fn need<'a>(v: &'a Value, name: &str) -> Result<&'a str, CardErr> {
    str_field(v, name).ok_or_else(|| ("invalidParameter", format!("{name} is required")))
}

/// The public AI card template has three variables; a real account ignores others, so the
/// sandbox refuses them to make the mistake visible. `sys_full_json_obj` must decode.
fn check_ai_card_params(map: &BTreeMap<String, String>) -> Result<(), CardErr> {
    if let Some(k) = map
        .keys()
        .find(|k| !ai_card::VARIABLES.contains(&k.as_str()))
    {
        return Err((
            "invalidParameter.cardParamMap",
            format!(
                "the AI card template has no variable {k:?} (it has {})",
                ai_card::VARIABLES.join(", ")
            ),
        ));
    }
    if let Some(sys) = map.get(ai_card::KEY_SYS) {
        if ai_card::SysObject::from_param(sys).is_none() {
            return Err((
                "invalidParameter.cardParamMap",
                format!(
                    "{} is not a JSON object of msgTitle and msgButtons",
                    ai_card::KEY_SYS
                ),
            ));
        }
    }
    Ok(())
}

/// A standard card's `cardData`: a JSON document in a string.
fn parse_card_data(data: &str) -> Result<Value, CardErr> {
    serde_json::from_str(data).map_err(|e| {
        (
            "invalidParameter.cardData",
            format!("cardData is not JSON: {e}"),
        )
    })
}

/// An advanced card's `cardData.cardParamMap`, each value a string.
fn param_map(v: &Value) -> Result<BTreeMap<String, String>, CardErr> {
    let map = v.pointer("/cardData/cardParamMap").ok_or_else(|| {
        (
            "invalidParameter",
            "cardData.cardParamMap is required".to_string(),
        )
    })?;
    string_map(map).map_err(|e| ("invalidParameter.cardParamMap", e))
}

/// The card `id` of `kind` made by `client_id`; else the error of the body's field that
/// names a card of that kind (cardBizId for a standard card, outTrackId for an advanced one).
fn own_card<'a>(
    st: &'a mut crate::state::State,
    kind: &str,
    id: &str,
    client_id: &str,
) -> Result<&'a mut CardState, CardErr> {
    let code = if kind == "standard" {
        "invalidParameter.cardBizId"
    } else {
        "invalidParameter.outTrackId"
    };
    st.cards
        .get_mut(id)
        .filter(|c| c.kind == kind && c.client_id == client_id)
        .ok_or_else(|| (code, format!("no card {id:?}")))
}

fn apply_card(
    st: &mut crate::state::State,
    op: CardOp,
    client_id: &str,
    v: &Value,
) -> Result<Value, CardErr> {
    if !v.is_object() {
        return Err(("invalidParameter", "body is not a JSON object".into()));
    }
    match op {
        CardOp::StdSend => {
            let tpl = need(v, "cardTemplateId")?;
            let robot = need(v, "robotCode")?;
            let biz = need(v, "cardBizId")?;
            let data = need(v, "cardData")?;
            if robot != client_id {
                return Err((
                    "invalidParameter.robotCode",
                    format!("robotCode {robot:?} is not the app of this access token"),
                ));
            }
            let card = parse_card_data(data)?;
            let conversation = match (
                str_field(v, "openConversationId"),
                str_field(v, "singleChatReceiver"),
            ) {
                (Some(c), None) => c.to_string(),
                (None, Some(r)) => {
                    let r: Value = serde_json::from_str(r).map_err(|_| {
                        (
                            "invalidParameter.singleChatReceiver",
                            "singleChatReceiver is not a JSON string".to_string(),
                        )
                    })?;
                    let user = r.get("userId").and_then(Value::as_str).ok_or_else(|| {
                        (
                            "invalidParameter.singleChatReceiver",
                            "singleChatReceiver has no userId".to_string(),
                        )
                    })?;
                    format!("IM_ROBOT.{user}")
                }
                _ => {
                    return Err((
                        "invalidParameter",
                        "exactly one of openConversationId and singleChatReceiver is required"
                            .into(),
                    ))
                }
            };
            if st.cards.contains_key(biz) {
                return Err((
                    "invalidParameter.cardBizId",
                    format!("cardBizId {biz:?} already used"),
                ));
            }
            st.cards.insert(
                biz.to_string(),
                CardState {
                    id: biz.to_string(),
                    client_id: client_id.to_string(),
                    kind: "standard".into(),
                    template_id: tpl.to_string(),
                    conversation_id: Some(conversation),
                    card_data: Some(card),
                    card_param_map: Default::default(),
                    streams: Default::default(),
                    callback_type: None,
                    flow_status: None,
                    finalized: false,
                    failed: false,
                    updates: 0,
                },
            );
            Ok(json!({"processQueryKey": format!("pqk{}", uuid::Uuid::new_v4().simple())}))
        }
        CardOp::StdUpdate => {
            let biz = need(v, "cardBizId")?;
            let data = need(v, "cardData")?;
            let card = parse_card_data(data)?;
            let c = own_card(st, "standard", biz, client_id)?;
            c.card_data = Some(card);
            c.updates += 1;
            Ok(json!({"success": true}))
        }
        CardOp::Create => {
            let tpl = need(v, "cardTemplateId")?;
            let track = need(v, "outTrackId")?;
            let map = param_map(v)?;
            if tpl == ai_card::TEMPLATE_ID {
                check_ai_card_params(&map)?;
            }
            let space = need(v, "openSpaceId")?;
            let conversation = if let Some(cid) = space.strip_prefix("dtv1.card//IM_GROUP.") {
                let robot = v
                    .pointer("/imGroupOpenDeliverModel/robotCode")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        (
                            "invalidParameter",
                            "imGroupOpenDeliverModel.robotCode is required for IM_GROUP"
                                .to_string(),
                        )
                    })?;
                if robot != client_id {
                    return Err((
                        "invalidParameter.robotCode",
                        format!("robotCode {robot:?} is not this app"),
                    ));
                }
                format!("IM_GROUP.{cid}")
            } else if let Some(user) = space.strip_prefix("dtv1.card//IM_ROBOT.") {
                if v.get("imRobotOpenDeliverModel").is_none() {
                    return Err((
                        "invalidParameter",
                        "imRobotOpenDeliverModel is required for IM_ROBOT".into(),
                    ));
                }
                format!("IM_ROBOT.{user}")
            } else {
                return Err((
                    "invalidParameter.openSpaceId",
                    format!("openSpaceId {space:?} is not dtv1.card//IM_GROUP.<cid> or dtv1.card//IM_ROBOT.<userId>"),
                ));
            };
            if st.cards.contains_key(track) {
                return Err((
                    "invalidParameter.outTrackId",
                    format!("outTrackId {track:?} already used"),
                ));
            }
            let flow_status = map.get("flowStatus").cloned();
            st.cards.insert(
                track.to_string(),
                CardState {
                    id: track.to_string(),
                    client_id: client_id.to_string(),
                    kind: "advanced".into(),
                    template_id: tpl.to_string(),
                    conversation_id: Some(conversation),
                    card_data: None,
                    card_param_map: map,
                    streams: Default::default(),
                    callback_type: str_field(v, "callbackType").map(str::to_string),
                    flow_status,
                    finalized: false,
                    failed: false,
                    updates: 0,
                },
            );
            Ok(json!({"success": true, "result": {"outTrackId": track,
                "deliverResults": [{"spaceType": space.split('.').nth(1).unwrap_or(""), "spaceId": space, "success": true}]}}))
        }
        CardOp::Update => {
            let track = need(v, "outTrackId")?;
            let map = param_map(v)?;
            let by_key = v
                .pointer("/cardUpdateOptions/updateCardDataByKey")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let c = own_card(st, "advanced", track, client_id)?;
            if c.template_id == ai_card::TEMPLATE_ID {
                check_ai_card_params(&map)?;
            }
            apply_param_map(c, map, by_key);
            Ok(json!({"success": true, "result": true}))
        }
        CardOp::Stream => {
            let track = need(v, "outTrackId")?;
            need(v, "guid")?;
            let key = need(v, "key")?;
            let content = v
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| ("invalidParameter", "content is required".to_string()))?;
            let flag = |n: &str| -> Result<bool, CardErr> {
                match v.get(n) {
                    None => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(("invalidParameter", format!("{n} must be a boolean"))),
                }
            };
            let is_full = flag("isFull")?;
            let finalize = flag("isFinalize")?;
            let error = flag("isError")?;
            let c = own_card(st, "advanced", track, client_id)?;
            if c.template_id == ai_card::TEMPLATE_ID && key != ai_card::KEY_CONTENT {
                return Err((
                    "invalidParameter.key",
                    format!(
                        "the AI card template streams into {:?} only, not {key:?}",
                        ai_card::KEY_CONTENT
                    ),
                ));
            }
            let s = c.streams.entry(key.to_string()).or_default();
            if is_full {
                *s = content.to_string();
            } else {
                s.push_str(content);
            }
            c.finalized |= finalize;
            c.failed |= error;
            c.updates += 1;
            Ok(json!({"success": true, "result": true}))
        }
    }
}

// ---------------------------------------------------------------- control

fn ctl_err(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

fn ctl_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(ctl_err)
}

async fn ctl_register(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let v: Value = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match (str_field(&v, "clientId"), str_field(&v, "clientSecret")) {
        (Some(id), Some(secret)) => {
            sh.register_app(id, secret);
            Json(json!({"ok": true})).into_response()
        }
        _ => ctl_err("clientId and clientSecret are required"),
    }
}

async fn ctl_post(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let m: PostMessage = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match sh.post_message(&m) {
        Ok(p) => Json(p).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_click(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let c: Click = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match sh.click(&c).await {
        Ok(a) => Json(a).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_transcript(AxState(sh): AxState<Shared>) -> Response {
    Json(crate::transcript_of(&sh)).into_response()
}

async fn ctl_acks(AxState(sh): AxState<Shared>) -> Response {
    Json(sh.lock().acks.to_vec()).into_response()
}

async fn ctl_pings(AxState(sh): AxState<Shared>) -> Response {
    Json(sh.lock().pings.to_vec()).into_response()
}

async fn ctl_problems(AxState(sh): AxState<Shared>) -> Response {
    Json(sh.lock().problems.to_vec()).into_response()
}

async fn ctl_connections(AxState(sh): AxState<Shared>) -> Response {
    Json(sh.connections()).into_response()
}

async fn ctl_wait_ack(
    AxState(sh): AxState<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = q.get("messageId").cloned().unwrap_or_default();
    let ms = match q.get("timeoutMs").map(|s| s.parse::<u64>()) {
        None => 5000,
        Some(Ok(ms)) if ms <= MAX_WAIT_MS => ms,
        Some(_) => {
            return ctl_err(format!(
                "timeoutMs must be a whole number of milliseconds up to {MAX_WAIT_MS}"
            ))
        }
    };
    match sh.wait_for_ack(&id, Duration::from_millis(ms)).await {
        Some(a) => Json(a).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no ACK for {id} within {ms} ms")})),
        )
            .into_response(),
    }
}

/// Connection named in the body, or else every connection of `clientId`.
fn target_conns(sh: &Shared, v: &Value) -> Vec<String> {
    if let Some(id) = str_field(v, "connectionId") {
        return vec![id.to_string()];
    }
    let client = str_field(v, "clientId");
    sh.connections()
        .into_iter()
        .filter(|c| client.is_none_or(|id| c.client_id == id))
        .map(|c| c.connection_id)
        .collect()
}

async fn ctl_disconnect(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    on_target_conns(&sh, &body, Shared::send_disconnect)
}

async fn ctl_drop(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    on_target_conns(&sh, &body, Shared::drop_connection)
}

/// Applies a connection fault to the connections a control request names (all of them, or
/// those of its `clientId`), and answers with their ids.
fn on_target_conns(
    sh: &Shared,
    body: &Bytes,
    fault: impl Fn(&Shared, &str) -> Result<(), crate::SandboxError>,
) -> Response {
    let v: Value = ctl_json(body).unwrap_or(json!({}));
    let ids = target_conns(sh, &v);
    for id in &ids {
        if let Err(e) = fault(sh, id) {
            return ctl_err(e);
        }
    }
    Json(json!({"connections": ids})).into_response()
}

async fn ctl_ping_mode(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    match ctl_json::<PingMode>(&body) {
        Ok(m) => {
            sh.lock().ping_mode = m;
            Json(json!({"ok": true})).into_response()
        }
        Err(r) => r,
    }
}

async fn ctl_redeliver(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let v: Value = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = str_field(&v, "messageId") else {
        return ctl_err("messageId is required");
    };
    let secs = match v.get("afterSecs") {
        None => 0.0,
        Some(n) => match n.as_f64() {
            Some(s) if (0.0..=MAX_REDELIVERY_SECS).contains(&s) => s,
            _ => {
                return ctl_err(format!(
                    "afterSecs must be a number of seconds from 0 to {MAX_REDELIVERY_SECS}"
                ))
            }
        },
    };
    match crate::schedule_redelivery(&sh, id, Duration::from_secs_f64(secs)) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_card_fault(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    match ctl_json::<CardFault>(&body) {
        Ok(f) if f.status == 403 || (500..600).contains(&f.status) => {
            sh.lock().card_fault = Some(f);
            Json(json!({"ok": true})).into_response()
        }
        Ok(_) => ctl_err("status must be 403 or 5xx"),
        Err(r) => r,
    }
}

async fn ctl_card_fault_clear(AxState(sh): AxState<Shared>) -> Response {
    sh.lock().card_fault = None;
    Json(json!({"ok": true})).into_response()
}

async fn ctl_refuse(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let fault = match ctl_json::<RefusalFault>(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(why) = refuse::check(&fault) {
        return ctl_err(why);
    }
    sh.lock().refusals.push(fault);
    Json(json!({"ok": true})).into_response()
}

async fn ctl_refusals_clear(AxState(sh): AxState<Shared>) -> Response {
    sh.lock().refusals.clear();
    Json(json!({"ok": true})).into_response()
}

async fn ctl_expire_webhooks(AxState(sh): AxState<Shared>) -> Response {
    crate::expire_sessions(&sh);
    Json(json!({"ok": true})).into_response()
}

async fn ctl_expire_tokens(AxState(sh): AxState<Shared>) -> Response {
    let now = Instant::now();
    for t in sh.lock().tokens.values_mut() {
        t.expires = now;
    }
    Json(json!({"ok": true})).into_response()
}

async fn ctl_raw(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let v: Value = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(text) = v.get("text").and_then(Value::as_str) else {
        return ctl_err("text is required");
    };
    let ids = target_conns(&sh, &v);
    for id in &ids {
        if let Err(e) = sh.send_raw(id, text) {
            return ctl_err(e);
        }
    }
    Json(json!({"connections": ids})).into_response()
}

async fn ctl_event(AxState(sh): AxState<Shared>, body: Bytes) -> Response {
    let v: Value = match ctl_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Some(client), Some(kind)) = (str_field(&v, "clientId"), str_field(&v, "eventType")) else {
        return ctl_err("clientId and eventType are required");
    };
    let data = v.get("data").cloned().unwrap_or(json!({}));
    match sh.push_event(client, kind, &data) {
        Ok((message_id, conn)) => {
            Json(json!({"messageId": message_id, "connectionId": conn})).into_response()
        }
        Err(e) => ctl_err(e),
    }
}
