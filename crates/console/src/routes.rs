//! The console's HTTP routes.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jitnode_dingtalk_wire::CardKind;
use jitnode_sandbox::PostMessage;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::snapshot::{self, Events, PostedItem};
use crate::{action_named, card_view, click_of, ConsoleOptions, SandboxLink};

pub struct Inner {
    pub app: jitnode_host::App,
    pub sandbox: Option<SandboxLink>,
    pub options: ConsoleOptions,
    pub token: Option<String>,
    pub posted: Mutex<Vec<PostedItem>>,
    pub events: Mutex<Events>,
}

#[derive(Clone)]
pub struct Shared(Arc<Inner>);

impl Shared {
    pub fn new(inner: Inner) -> Shared {
        Shared(Arc::new(inner))
    }
}

impl std::ops::Deref for Shared {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

pub fn router(state: Shared) -> Router {
    let operators = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    let router = match state.options.operators_only {
        true => operators,
        false => operators.merge(console_routes()),
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::check,
        ))
        .with_state(state)
}

fn console_routes() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/state", get(state_json))
        .route("/api/events", get(events))
        .route("/api/chat", post(chat))
        .route("/api/click", post(click))
        .route("/api/knowledge", post(knowledge))
        .route("/api/fault", post(fault))
        .route("/api/feedback.json", get(feedback_json))
        .route("/api/feedback.csv", get(feedback_csv))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page runs only its own script: no inline code, nothing from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

/// 200 when every checked element is ready (afterAppInit elements running, robots
/// connected), 503 otherwise; the body says which is not and why.
async fn readyz(State(s): State<Shared>) -> Response {
    let body = snapshot::readiness(&s);
    let status = match body["ready"].as_bool() {
        Some(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(body)).into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        jitnode_metrics::global().render(),
    )
        .into_response()
}

async fn state_json(State(s): State<Shared>) -> Json<Value> {
    Json(snapshot::snapshot(&s).await)
}

/// A new snapshot whenever anything in it changes.
async fn events(
    State(s): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((s, String::new()), |(s, last)| async move {
        loop {
            let text = snapshot::snapshot(&s).await.to_string();
            if text != last {
                let event = Event::default().event("state").data(text.clone());
                return Some((Ok(event), (s, text)));
            }
            tokio::time::sleep(snapshot::POLL).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The answer to a write without the sandbox.
fn read_only() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "the console is read-only: start `jitnode run --sandbox` to talk to the robot",
    )
}

#[derive(Deserialize)]
struct ChatBody {
    text: String,
    #[serde(default)]
    group: bool,
    robot: Option<String>,
}

/// The robot named `name`, or the first the sandbox serves.
fn pick_robot(sb: &SandboxLink, name: Option<&str>) -> Option<crate::RobotRef> {
    let robots = (sb.robots)();
    match name {
        Some(name) => robots.into_iter().find(|r| r.full_name == name),
        None => robots.into_iter().next(),
    }
}

/// The conversation the console's group messages go to.
const GROUP_ID: &str = "cidConsoleGroup";

async fn chat(State(s): State<Shared>, Json(body): Json<ChatBody>) -> Response {
    let Some(sb) = s.sandbox.as_ref() else {
        return read_only();
    };
    let Some(robot) = pick_robot(sb, body.robot.as_deref()) else {
        return error(StatusCode::NOT_FOUND, "the sandbox serves no such robot");
    };
    if body.text.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "the message is empty");
    }
    let after_seq = match sb.control.transcript().await {
        Ok(t) => t.last_seq(),
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let mut message = PostMessage::text(&robot.client_id, &body.text);
    if body.group {
        message = message.in_group(GROUP_ID);
    }
    s.posted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(PostedItem {
            after_seq,
            robot: robot.full_name.clone(),
            text: body.text.clone(),
            group: body.group,
            at_ms: jitnode_robot::records::now_ms(),
        });
    match sb.control.post_message(&message).await {
        Ok(p) => Json(json!({"messageId": p.message_id, "delivered": p.delivered})).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClickBody {
    card_id: String,
    button: String,
}

async fn click(State(s): State<Shared>, Json(body): Json<ClickBody>) -> Response {
    let Some(sb) = s.sandbox.as_ref() else {
        return read_only();
    };
    let t = match sb.control.transcript().await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let Some(card) = t.cards.get(&body.card_id) else {
        return error(StatusCode::NOT_FOUND, "no such card");
    };
    let Some(record) = card_view(card).record().map(str::to_string) else {
        return error(StatusCode::CONFLICT, "the card has no buttons");
    };
    let action = match action_named(&body.button, record) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let kind = card.card_kind().unwrap_or(CardKind::Advanced);
    let ai = jitnode_robot::cards::is_ai_card(&card.template_id);
    let c = click_of(&card.client_id, &card.id, kind, ai, &action);
    match sb.control.click(&c).await {
        Ok(ack) => Json(json!({"code": ack.code, "message": ack.message})).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[derive(Deserialize)]
struct FaultBody {
    /// `disconnect`, `drop`, `redeliver` or `card403`.
    kind: String,
    robot: Option<String>,
}

/// The sandbox's faults, on the robot's connections: the gateway asks it to reconnect, the
/// connection is cut, the last message comes again, the next card call answers 403.
async fn fault(State(s): State<Shared>, Json(body): Json<FaultBody>) -> Response {
    let Some(sb) = s.sandbox.as_ref() else {
        return read_only();
    };
    let Some(local) = sb.local.as_deref() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "faults need the sandbox in this process",
        );
    };
    let Some(robot) = pick_robot(sb, body.robot.as_deref()) else {
        return error(StatusCode::NOT_FOUND, "the sandbox serves no such robot");
    };
    let conns = local.connections_of(&robot.client_id);
    let result = match body.kind.as_str() {
        "disconnect" => conns
            .iter()
            .try_for_each(|c| local.send_disconnect(&c.connection_id)),
        "drop" => conns
            .iter()
            .try_for_each(|c| local.drop_connection(&c.connection_id)),
        "redeliver" => {
            let last = local
                .acks()
                .into_iter()
                .rev()
                .find(|a| a.topic == jitnode_dingtalk_wire::frame::TOPIC_ROBOT);
            match last {
                Some(a) => local.redeliver_now(&a.message_id).map(drop),
                None => return error(StatusCode::CONFLICT, "no message to redeliver yet"),
            }
        }
        "card403" => {
            local.fail_card_calls(403, Some(1));
            Ok(())
        }
        other => return error(StatusCode::BAD_REQUEST, format!("unknown fault {other:?}")),
    };
    match result {
        Ok(()) => Json(json!({"ok": true, "connections": conns.len()})).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

#[derive(Deserialize)]
struct KnowledgeBody {
    agent: String,
    question: String,
}

/// Asks the agent directly; its chunks hold the passages it retrieved with their scores.
async fn knowledge(State(s): State<Shared>, Json(body): Json<KnowledgeBody>) -> Response {
    if s.sandbox.is_none() {
        return read_only();
    }
    let (sink, mut rx) = jitnode_host::ChunkSink::channel();
    let args = json!({"question": body.question, "chatId": ""});
    let result = s.app.call(&body.agent, "run", args, sink).await;
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    // The retrieval step's chunk (`{"type", "data": {"toolName", "result"}}`) names them.
    let passages = chunks
        .iter()
        .find_map(|c| c["data"]["result"]["passages"].as_array().cloned())
        .unwrap_or_default();
    match result {
        Ok(v) => Json(json!({"result": v, "passages": passages, "chunks": chunks})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn feedback_json(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"feedback.json\"",
        )],
        Json(snapshot::feedback(&s).await),
    )
        .into_response()
}

async fn feedback_csv(State(s): State<Shared>) -> Response {
    let rows = snapshot::feedback_rows(&s).await;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"feedback.csv\"",
            ),
        ],
        jitnode_robot::records::feedback_csv(&rows),
    )
        .into_response()
}
