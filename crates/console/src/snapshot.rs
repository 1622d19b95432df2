//! What the console shows, as one JSON snapshot: the elements with their state, the reload
//! events, the chat (cards read with the robot's card view), the robot's traffic and the
//! counters. The SSE stream sends a new snapshot whenever it changes.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jitnode_dingtalk_wire::CallKind;
use jitnode_element::{AppTree, Element};
use jitnode_host::Check;
use jitnode_robot::cards::view::Progress;
use jitnode_robot::records::{FeedbackFilter, RecordsAt};
use jitnode_sandbox::Transcript;
use serde_json::{json, Map, Value};

use crate::routes::Shared;
use crate::{button_name, card_view};

/// Reload events kept for the Elements pane.
const EVENTS_KEPT: usize = 100;
/// How often the console looks for changes (elements, cards); a card streams at most a few
/// updates a second.
pub const POLL: Duration = Duration::from_millis(120);

/// A message the console posted as the user.
#[derive(Debug, Clone)]
pub struct PostedItem {
    /// The transcript's last seq when it was posted: the robot's answer comes after it.
    pub after_seq: u64,
    pub robot: String,
    pub text: String,
    pub group: bool,
    pub at_ms: i64,
}

#[derive(Debug, Default)]
pub struct Events {
    pub list: VecDeque<Value>,
}

impl Events {
    fn push(&mut self, text: String) {
        if self.list.len() == EVENTS_KEPT {
            self.list.pop_front();
        }
        self.list
            .push_back(json!({"atMs": jitnode_robot::records::now_ms(), "text": text}));
    }
}

/// Watches what runs (a reload replaces elements) and readiness, and records each change
/// as an event.
pub fn spawn_event_watch(state: Shared) {
    // Taken now, not in the task: a change right after start must not be missed.
    let mut last = state.app.running_fingerprints();
    let mut last_ready = state.app.readiness().report();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let now = state.app.running_fingerprints();
            let ready = state.app.readiness().report();
            let mut texts = Vec::new();
            for (name, fp) in &now {
                match last.get(name) {
                    None => texts.push(format!("{name} started")),
                    Some(old) if old != fp => texts.push(format!("{name} reloaded")),
                    Some(_) => {}
                }
            }
            for name in last.keys().filter(|n| !now.contains_key(*n)) {
                texts.push(format!("{name} stopped"));
            }
            for (name, check) in &ready.checks {
                if last_ready.get(name) != Some(check) {
                    texts.push(match check {
                        Check::Ready => format!("{name} ready"),
                        Check::Pending { what } => format!("{name}: {what}"),
                        Check::NotReady { reason } => format!("{name} not ready: {reason}"),
                    });
                }
            }
            if !texts.is_empty() {
                let mut events = state.events.lock().unwrap_or_else(|p| p.into_inner());
                for t in texts {
                    events.push(t);
                }
            }
            last = now;
            last_ready = ready;
        }
    });
}

/// The readiness registry's report (robots connected, elements that failed to start),
/// with every `afterAppInit` element that is not running yet added as `notStarted`: an
/// app still starting is not ready, though nothing has reported yet.
pub fn readiness(state: &Shared) -> Value {
    let mut body = state.app.readiness().report().to_json();
    let running: std::collections::HashSet<String> = state.app.running().into_iter().collect();
    let tree = state.app.tree();
    let mut ready = body["ready"].as_bool().unwrap_or(false);
    for e in tree.elements.values() {
        let eager = e.def.backend_load_time == Some(jitnode_element::LoadTime::AfterAppInit);
        if eager
            && !e.is_meta()
            && !running.contains(&e.full_name)
            && body["elements"].get(&e.full_name).is_none()
        {
            body["elements"][&e.full_name] = json!({"state": "notStarted"});
            ready = false;
        }
    }
    body["ready"] = json!(ready);
    body
}

/// Config keys whose values are credentials, by a part of their name.
const SECRET_WORDS: [&str; 6] = [
    "secret", "token", "password", "apikey", "api_key", "webhook",
];

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w)) || k == "key"
}

/// The config with every credential replaced by `"••••"` (set) or `""` (empty).
pub fn mask(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let shown = match (is_secret_key(k), v) {
                        (true, Value::String(s)) if s.is_empty() => json!(""),
                        (true, Value::Object(_) | Value::Array(_)) => mask(v),
                        (true, _) => json!("••••"),
                        (false, _) => mask(v),
                    };
                    (k.clone(), shown)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask).collect()),
        other => other.clone(),
    }
}

/// The elements in tree order (each Meta, its Types, their instances), with depth.
pub fn elements(state: &Shared) -> Vec<Value> {
    let tree = state.app.tree();
    let running: std::collections::HashSet<String> = state.app.running().into_iter().collect();
    let ready = state.app.readiness().report();
    let children = tree.children_by_type();
    let mut out = Vec::new();
    for meta in tree.metas() {
        walk(
            &tree,
            &children,
            &meta.full_name,
            0,
            &running,
            &ready,
            &mut out,
        );
    }
    out
}

fn walk(
    tree: &AppTree,
    children: &HashMap<&str, Vec<&Element>>,
    name: &str,
    depth: usize,
    running: &std::collections::HashSet<String>,
    ready: &jitnode_host::ReadinessReport,
    out: &mut Vec<Value>,
) {
    let Some(e) = tree.get(name) else { return };
    let kind = match (e.is_meta(), children.contains_key(name)) {
        (true, _) => "Meta",
        (false, true) => "Type",
        (false, false) => "instance",
    };
    let loader = tree.loader_of(name);
    let (state, error) = match ready.get(name) {
        Some(Check::NotReady { reason }) if !running.contains(name) => {
            ("failed", Some(reason.clone()))
        }
        Some(Check::NotReady { reason }) => ("running", Some(reason.clone())),
        Some(Check::Pending { what }) => ("running", Some(what.clone())),
        _ if running.contains(name) => ("running", None),
        _ if e.is_meta() => ("host", None),
        _ if kind == "Type" => ("type", None),
        _ if loader.is_none() => ("data only", None),
        _ if e.def.backend_load_time.is_some() => ("not started", None),
        _ => ("on demand", None),
    };
    let ready_state = ready.get(name).map(Check::as_str);
    let config = e
        .read_file("config.json")
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|v| mask(&v));
    out.push(json!({
        "fullName": name,
        "kind": kind,
        "depth": depth,
        "title": e.def.title,
        "loadTime": e.def.backend_load_time.map_or("on demand", |t| t.as_str()),
        "loader": loader.map(|l| l.full_name.clone()),
        "state": state,
        "ready": ready_state,
        "error": error,
        "config": config,
    }));
    if let Some(kids) = children.get(name) {
        for k in kids {
            walk(tree, children, &k.full_name, depth + 1, running, ready, out);
        }
    }
}

/// The chat with the sandbox: the console's own messages, the robot's replies and cards.
pub fn chat_from_transcript(posted: &[PostedItem], t: &Transcript) -> Vec<Value> {
    let mut items: Vec<((u64, u8), Value)> = posted
        .iter()
        .map(|p| {
            (
                (p.after_seq, 1),
                json!({"who": "user", "text": p.text, "group": p.group, "robot": p.robot, "atMs": p.at_ms}),
            )
        })
        .collect();
    for e in &t.entries {
        match e.call_kind() {
            Some(CallKind::Webhook) if e.error.is_none() => items.push((
                (e.seq, 0),
                json!({"who": "robot", "seq": e.seq, "text": e.text, "markdown": e.msgtype.as_deref() == Some("markdown")}),
            )),
            Some(CallKind::CardSend | CallKind::CardCreateAndDeliver) => {
                let Some(card) = e.card_id.as_ref().and_then(|id| t.cards.get(id)) else {
                    continue;
                };
                let view = card_view(card);
                let buttons: Vec<Value> = view
                    .buttons
                    .iter()
                    .map(|a| json!({"name": button_name(a)}))
                    .collect();
                items.push((
                    (e.seq, 0),
                    json!({
                        "who": "robot",
                        "seq": e.seq,
                        "card": {
                            "id": card.id,
                            "kind": card.kind,
                            "text": view.text,
                            "buttons": buttons,
                            "progress": match view.progress {
                                Progress::Working => "working",
                                Progress::Done => "done",
                                Progress::Failed => "failed",
                            },
                            "flowStatus": card.flow_status,
                            "updates": card.updates,
                            "record": view.record(),
                        }
                    }),
                ));
            }
            _ => {}
        }
    }
    items.sort_by_key(|(k, _)| *k);
    items.into_iter().map(|(_, v)| v).collect()
}

/// Without the sandbox: a read-only transcript of the answers the robot stored.
pub async fn chat_from_records(state: &Shared) -> Vec<Value> {
    let Some(records) = records(state).await else {
        return Vec::new();
    };
    let mut rows = records.list_answers(Some(50)).await.unwrap_or_default();
    rows.reverse();
    rows.iter()
        .flat_map(|r| {
            [
                json!({"who": "user", "text": r.question, "robot": r.robot, "atMs": r.answered_at_ms}),
                json!({"who": "robot", "text": r.answer, "markdown": true}),
            ]
        })
        .collect()
}

/// The robot's records: on the store of this `jitnode run`, else the app's own store when
/// it has one.
pub async fn records(state: &Shared) -> Option<RecordsAt> {
    RecordsAt::for_app(&state.options.app_dir.join(jitnode_host::DATA_DIR)).await
}

/// The feedback rows (all of them, oldest first).
pub async fn feedback_rows(state: &Shared) -> Vec<jitnode_robot::records::FeedbackRow> {
    match records(state).await {
        Some(r) => r
            .list_feedback(&FeedbackFilter::default())
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The feedback rows as JSON (the same export as `jitnode feedback --format json`).
pub async fn feedback(state: &Shared) -> Value {
    jitnode_robot::records::feedback_json(&feedback_rows(state).await)
}

/// The robot's calls to DingTalk as the sandbox saw them (newest last), for the Wire pane.
pub fn wire_from_transcript(t: &Transcript) -> Vec<Value> {
    let skip = t.entries.len().saturating_sub(200);
    t.entries
        .iter()
        .skip(skip)
        .map(|e| {
            json!({
                "seq": e.seq,
                "dir": "out",
                "kind": e.kind,
                "status": e.status,
                "error": e.error,
                "cardId": e.card_id,
            })
        })
        .collect()
}

/// What the gateway saw on the robots' connections (newest last): the connections, each
/// ACK of a pushed frame (with its latency and any problem), each ping and its echo.
fn gateway(sb: &jitnode_sandbox::Sandbox) -> Value {
    let newest = |n: usize, len: usize| len.saturating_sub(n);
    let acks = sb.acks();
    let pings = sb.pings();
    json!({
        "connections": sb.connections(),
        "acks": acks[newest(100, acks.len())..].iter().map(|a| json!({
            "messageId": a.message_id, "connectionId": a.connection_id, "topic": a.topic,
            "code": a.code, "latencyMs": a.latency_ms, "problems": a.problems,
        })).collect::<Vec<_>>(),
        "pings": pings[newest(20, pings.len())..].to_vec(),
        "problems": sb.problems(),
    })
}

/// The counters of `/metrics`, for the Wire pane.
pub fn counters() -> Value {
    let m = jitnode_metrics::global();
    json!({
        "received": m.messages_received.get(),
        "acked": m.messages_acked.get(),
        "answered": m.messages_answered.get(),
        "failed": m.messages_failed.get(),
        "dedupeHits": m.dedupe_hits.get(),
        "reconnects": m.reconnects.get(),
        "reloads": m.reloads.get(),
    })
}

/// The app directory's name, as a person calls the app.
fn app_name(state: &Shared) -> String {
    let dir = &state.options.app_dir;
    let full = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    full.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| full.display().to_string())
}

/// The whole snapshot.
pub async fn snapshot(state: &Shared) -> Value {
    let transcript = match &state.sandbox {
        Some(s) => s.control.transcript().await.ok(),
        None => None,
    };
    let posted = state
        .posted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let chat = match &transcript {
        Some(t) => chat_from_transcript(&posted, t),
        None => chat_from_records(state).await,
    };
    let robots = state
        .sandbox
        .as_ref()
        .map(|s| (s.robots)())
        .unwrap_or_default();
    let tree = state.app.tree();
    let agents: Vec<&str> = tree
        .elements
        .values()
        .filter(|e| {
            !e.is_meta()
                && tree
                    .loader_of(&e.full_name)
                    .and_then(|l| l.def.backend_bundle_entry.as_deref())
                    == Some(state.options.agent_entry.as_str())
                && !tree
                    .elements
                    .values()
                    .any(|c| c.def.type_name == e.full_name)
        })
        .map(|e| e.full_name.as_str())
        .collect();
    let events: Vec<Value> = state
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .list
        .iter()
        .cloned()
        .collect();
    json!({
        "app": app_name(state),
        "sandbox": state.sandbox.is_some(),
        "readOnly": state.sandbox.is_none(),
        "readiness": readiness(state),
        "elements": elements(state),
        "events": events,
        "robots": robots,
        "agents": agents,
        "chat": chat,
        "wire": transcript.as_ref().map(wire_from_transcript).unwrap_or_default(),
        "gateway": state.sandbox.as_ref().and_then(|s| s.local.as_deref()).map(gateway),
        "counters": counters(),
        "feedback": feedback(state).await,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let v = json!({"clientId": "id", "clientSecret": "s3cr3t", "llm": {"apiKey": "k", "model": "m"},
                       "token": "", "list": [{"password": 1}]});
        let m = mask(&v);
        assert_eq!(m["clientId"], "id");
        assert_eq!(m["clientSecret"], "••••");
        assert_eq!(m["llm"]["apiKey"], "••••");
        assert_eq!(m["llm"]["model"], "m");
        assert_eq!(m["token"], "");
        assert_eq!(m["list"][0]["password"], "••••");
        assert!(!m.to_string().contains("s3cr3t"));
    }
}
