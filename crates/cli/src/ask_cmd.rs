//! The offline demo's conversation: `run --sandbox` (the in-process sandbox and its state
//! file), `jitnode ask` (a question through the sandbox's control API, the card shown live)
//! and `jitnode click` (a button of the last card).
//!
//! The state file `<app>/data/sandbox.json` holds the control URL and the demo app's
//! clientId (no secret); `<app>/data/last-card.json` remembers the last card for `click`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jitnode_dingtalk_wire::{CallKind, CardKind};
use jitnode_host::App;
use jitnode_robot::callback::{Action, FeedbackKind};
use jitnode_robot::cards::view::CardView;
use jitnode_robot::config::DEFAULT_STREAMING_KEY;
use jitnode_sandbox::{
    CardState, Click, ControlClient, PostMessage, Sandbox, SandboxConfig, Transcript,
};
use serde::{Deserialize, Serialize};

/// The variable the demo's config.json reads for `openApiEndpoint`.
pub const ENDPOINT_VAR: &str = "DINGTALK_OPENAPI_ENDPOINT";
const STATE_FILE: &str = "sandbox.json";
const LAST_CARD_FILE: &str = "last-card.json";
/// Longest wait for a card to finish.
const ANSWER_WAIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    control_url: String,
    client_id: String,
    pid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastCard {
    card_id: String,
    client_id: String,
    kind: CardKind,
    record: Option<String>,
}

fn data_dir(app: &Path) -> PathBuf {
    app.join(jitnode_robot::loader::DATA_DIR)
}

// ------------------------------------------------------------------ run --sandbox

/// The sandbox of `jitnode run --sandbox`: started before the app opens (so the robot's
/// config renders with its URL), its state file removed when this is dropped.
pub struct DemoSandbox {
    sandbox: Option<Sandbox>,
    state_file: PathBuf,
}

impl DemoSandbox {
    /// Starts the sandbox on a free loopback port; [`DemoSandbox::env_overrides`] points
    /// the demo's `openApiEndpoint` at it.
    pub async fn start(app_dir: &Path) -> Result<DemoSandbox, String> {
        let sb = Sandbox::start(SandboxConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(DemoSandbox {
            sandbox: Some(sb),
            state_file: data_dir(app_dir).join(STATE_FILE),
        })
    }

    /// What to set over the app's environment when opening it ([`ENDPOINT_VAR`] = the
    /// sandbox's URL), so `{{DINGTALK_OPENAPI_ENDPOINT}}` renders to the sandbox; passed to
    /// `App::open_with` rather than set in the process environment, which tokio's worker
    /// threads may be reading.
    pub fn env_overrides(&self) -> BTreeMap<String, String> {
        self.sandbox
            .iter()
            .map(|sb| (ENDPOINT_VAR.to_string(), sb.base_url()))
            .collect()
    }

    /// Registers the demo app's credentials (from the app's rendered environment), writes
    /// the state file and prints how to talk to the robot.
    pub fn attach(&self, app: &App) -> Result<(), String> {
        let Some(sb) = &self.sandbox else {
            return Ok(());
        };
        let env = app.env();
        let (Some(id), Some(secret)) = (
            env.get("DINGTALK_CLIENT_ID"),
            env.get("DINGTALK_CLIENT_SECRET"),
        ) else {
            return Err(
                "--sandbox: DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET must be set \
                        (in the environment or the app's .env) to register the robot"
                    .into(),
            );
        };
        sb.register_app(id, secret);
        let state = State {
            control_url: sb.base_url(),
            client_id: id.to_string(),
            pid: std::process::id(),
        };
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&state).expect("plain strings serialize");
        std::fs::write(&self.state_file, text)
            .map_err(|e| format!("cannot write {}: {e}", self.state_file.display()))?;
        println!(
            "DingTalk sandbox running at {} (clientId {id})",
            sb.base_url()
        );
        println!("Talk to the robot from this directory, in another terminal:");
        println!("  jitnode ask \"How do I reset my password?\"");
        println!("  jitnode click helpful      (or very_helpful, unhelpful, very_unhelpful, regenerate, continue)");
        println!("  jitnode feedback           (--format csv|json to export)");
        println!("Ctrl-C stops.");
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

impl Drop for DemoSandbox {
    fn drop(&mut self) {
        // Only our own state file: another run may have replaced it.
        if let Ok(text) = std::fs::read_to_string(&self.state_file) {
            if serde_json::from_str::<State>(&text).is_ok_and(|s| s.pid == std::process::id()) {
                let _ = std::fs::remove_file(&self.state_file);
            }
        }
        // The server task ends with the runtime; nothing to await here.
        drop(self.sandbox.take());
    }
}

// ------------------------------------------------------------------ control API

/// The sandbox of a running `run --sandbox`, found through its state file.
struct Demo {
    ctl: ControlClient,
    client_id: String,
}

impl Demo {
    fn find(app: &Path) -> Result<Demo, String> {
        let path = data_dir(app).join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            format!(
                "no running sandbox found ({} is missing): start `jitnode run --sandbox` in the app directory first",
                path.display()
            )
        })?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a sandbox state file: {e}", path.display()))?;
        Ok(Demo {
            ctl: ControlClient::new(&state.control_url),
            client_id: state.client_id,
        })
    }

    async fn transcript(&self) -> Result<Transcript, String> {
        self.ctl.transcript().await.map_err(|e| self.explain(e))
    }

    fn explain(&self, e: jitnode_sandbox::ControlError) -> String {
        match e {
            jitnode_sandbox::ControlError::Unreachable { .. } => {
                format!("{e}: is `jitnode run --sandbox` still running?")
            }
            other => other.to_string(),
        }
    }
}

// ------------------------------------------------------------------ showing cards

/// What a card in the sandbox shows, read by the robot's card view.
fn view(card: &CardState) -> CardView {
    // Standard cards carry their whole JSON; template cards their variables.
    match &card.card_data {
        Some(data) => CardView::standard(data),
        None => CardView::template(&card.card_param_map, &card.streams, DEFAULT_STREAMING_KEY),
    }
}

fn button_name(a: &Action) -> &'static str {
    match a {
        Action::Feedback { kind, .. } => kind.as_str(),
        Action::Regenerate { .. } => "regenerate",
        Action::ContinueChat { .. } => "continue",
    }
}

/// Shows the card the robot starts after `since` (live), or its webhook replies; returns
/// when the card is done. `watch_card` follows a known card instead of waiting for a new one.
async fn follow(
    ctl: &Demo,
    app: &Path,
    since: u64,
    watch_card: Option<String>,
) -> Result<(), String> {
    let live = std::io::stdout().is_terminal();
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    let mut card_id = watch_card;
    let mut shown = String::new();
    let mut replies_shown = 0usize;
    loop {
        let t = ctl.transcript().await?;
        let replies: Vec<_> = t
            .entries
            .iter()
            .filter(|e| e.seq > since && e.call_kind() == Some(CallKind::Webhook))
            .filter(|e| e.error.is_none())
            .filter(|e| e.client_id == ctl.client_id)
            .collect();
        for r in replies.iter().skip(replies_shown) {
            println!("[reply] {}", r.text.as_deref().unwrap_or(""));
        }
        replies_shown = replies.len();
        if card_id.is_none() {
            card_id = t
                .entries
                .iter()
                .filter(|e| e.seq > since && e.client_id == ctl.client_id)
                .find(|e| {
                    matches!(
                        e.call_kind(),
                        Some(CallKind::CardSend | CallKind::CardCreateAndDeliver)
                    )
                })
                .and_then(|e| e.card_id.clone());
        }
        let card = card_id.as_ref().and_then(|id| t.cards.get(id));
        if let Some(card) = card {
            let shown_card = view(card);
            let text = shown_card.text.clone();
            if text != shown {
                if live && !shown.is_empty() {
                    // Redraw in place: up over the previous text, clear to the end.
                    let lines = shown.lines().count().max(1);
                    print!("\x1b[{lines}F\x1b[J");
                }
                println!("{text}");
                let _ = std::io::stdout().flush();
                shown = text;
            }
            if shown_card.is_done() {
                let buttons = &shown_card.buttons;
                if !buttons.is_empty() {
                    let names: Vec<_> = buttons.iter().map(button_name).collect();
                    println!("[buttons] {}   (jitnode click <button>)", names.join(" | "));
                }
                let last = LastCard {
                    card_id: card.id.clone(),
                    client_id: ctl.client_id.clone(),
                    kind: card.card_kind().unwrap_or(CardKind::Advanced),
                    record: shown_card.record().map(str::to_string),
                };
                let path = data_dir(app).join(LAST_CARD_FILE);
                let text = serde_json::to_string_pretty(&last).expect("plain strings serialize");
                std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                return Ok(());
            }
        } else if replies_shown > 0 && since_settled(&t, since) {
            // A text-only reply (non-text message, fallback): nothing more to follow.
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no finished answer within 180 s; is the agent running?".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the robot sent only webhook replies after `since` (no card started).
fn since_settled(t: &Transcript, since: u64) -> bool {
    !t.entries.iter().any(|e| e.seq > since && e.is_card())
}

// ------------------------------------------------------------------ commands

/// `jitnode ask "question"`.
pub async fn ask(app: &Path, question: &str, group: bool) -> Result<(), String> {
    let ctl = Demo::find(app)?;
    let since = ctl.transcript().await?.last_seq();
    let mut message = PostMessage::text(&ctl.client_id, question);
    if group {
        message = message.in_group("cidSandboxGroup");
    }
    let posted = ctl
        .ctl
        .post_message(&message)
        .await
        .map_err(|e| ctl.explain(e))?;
    if !posted.delivered {
        return Err("the sandbox did not deliver the message (is the robot connected?)".into());
    }
    println!("> {question}");
    follow(&ctl, app, since, None).await
}

/// `jitnode click <button>` on the last card.
pub async fn click(app: &Path, button: &str) -> Result<(), String> {
    let ctl = Demo::find(app)?;
    let path = data_dir(app).join(LAST_CARD_FILE);
    let last: LastCard = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            "no card to click yet: ask a question first (`jitnode ask \"...\"`)".to_string()
        })?;
    let record = last
        .record
        .clone()
        .ok_or_else(|| "the last card has no buttons".to_string())?;
    let action = match button {
        "regenerate" => Action::Regenerate { record },
        "continue" | "continue_chat" => Action::ContinueChat { record },
        other => match FeedbackKind::parse(other) {
            Some(kind) => Action::Feedback { kind, record },
            None => {
                return Err(format!(
                    "unknown button {other:?}: one of very_helpful, helpful, unhelpful, very_unhelpful, regenerate, continue"
                ))
            }
        },
    };
    let since = ctl.transcript().await?.last_seq();
    let mut c = Click {
        client_id: last.client_id.clone(),
        out_track_id: last.card_id.clone(),
        ..Click::default()
    };
    if last.kind == CardKind::Standard {
        c.value = Some(action.to_value_string());
    } else {
        c.params = action.to_params();
    }
    let ack = ctl.ctl.click(&c).await.map_err(|e| ctl.explain(e))?;
    if ack.code != Some(200) {
        return Err(format!(
            "the robot refused the click: {} {}",
            ack.code.map(|c| c.to_string()).unwrap_or_default(),
            ack.message.unwrap_or_default()
        ));
    }
    println!("[clicked] {button}");
    match action {
        Action::Feedback { .. } => follow(&ctl, app, since, Some(last.card_id)).await,
        Action::Regenerate { .. } => follow(&ctl, app, since, None).await,
        Action::ContinueChat { .. } => {
            // The invitation is a webhook reply (or a small card); show what arrives.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let t = ctl.transcript().await?;
                let new: Vec<_> = t
                    .entries
                    .iter()
                    .filter(|e| e.seq > since && e.client_id == ctl.client_id)
                    .collect();
                if let Some(r) = new
                    .iter()
                    .find(|e| e.call_kind() == Some(CallKind::Webhook))
                {
                    println!("[reply] {}", r.text.as_deref().unwrap_or(""));
                    return Ok(());
                }
                if let Some(card) = new
                    .iter()
                    .find_map(|e| e.card_id.as_ref().and_then(|id| t.cards.get(id)))
                {
                    println!("{}", view(card).text);
                    return Ok(());
                }
                if tokio::time::Instant::now() > deadline {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitnode_robot::cards::StandardCards;
    use jitnode_robot::config::Lang;
    use serde_json::{json, Value};

    fn card_text(card: &CardState) -> String {
        view(card).text
    }

    fn card_done(card: &CardState) -> bool {
        view(card).is_done()
    }

    fn card_buttons(card: &CardState) -> Vec<Action> {
        view(card).buttons
    }

    fn standard(card: Value) -> CardState {
        serde_json::from_value(json!({
            "id": "c1", "clientId": "app", "kind": "standard", "templateId": "StandardCard",
            "conversationId": null, "cardData": card, "cardParamMap": {}, "streams": {},
            "flowStatus": null, "finalized": false, "failed": false, "updates": 0
        }))
        .unwrap()
    }

    fn advanced(params: Value, content: &str) -> CardState {
        let status = params["flowStatus"].clone();
        serde_json::from_value(json!({
            "id": "t1", "clientId": "app", "kind": "advanced", "templateId": "x.schema",
            "conversationId": null, "cardData": null, "cardParamMap": params,
            "streams": {"content": content}, "flowStatus": status,
            "finalized": false, "failed": false, "updates": 0
        }))
        .unwrap()
    }

    #[test]
    fn standard_cards_are_read_as_text_buttons_and_state() {
        let cards = StandardCards::new("c1", Lang::En);
        let thinking = standard(cards.thinking("Why?"));
        assert!(card_text(&thinking).contains("Analysing"));
        assert!(!card_done(&thinking));

        let done = standard(cards.final_answer("Why?", "Because.", "rec1"));
        assert_eq!(card_text(&done), "Because.");
        assert!(card_done(&done));
        let names: Vec<_> = card_buttons(&done).iter().map(button_name).collect();
        assert_eq!(
            names,
            ["very_helpful", "helpful", "unhelpful", "very_unhelpful"]
        );
        assert_eq!(card_buttons(&done)[0].record(), "rec1");

        let failed = standard(cards.failed("Why?", "Bec", "Sorry."));
        assert!(card_done(&failed));
        assert!(card_buttons(&failed).is_empty());
        assert!(card_text(&failed).contains("Sorry."));

        let thanks = standard(cards.thanks("Why?", Some("Because."), "rec1"));
        let names: Vec<_> = card_buttons(&thanks).iter().map(button_name).collect();
        assert_eq!(names, ["regenerate", "continue"]);
    }

    #[test]
    fn template_cards_are_read_from_params_and_streams() {
        let streaming = advanced(json!({"flowStatus": "2", "stage": "thinking"}), "Be");
        assert_eq!(card_text(&streaming), "Be");
        assert!(!card_done(&streaming));
        let answered = advanced(
            json!({"flowStatus": "3", "stage": "answered", "record": "r9", "notice": ""}),
            "Because.",
        );
        assert!(card_done(&answered));
        assert_eq!(card_buttons(&answered).len(), 4);
        let failed = advanced(
            json!({"flowStatus": "5", "stage": "failed", "notice": "Sorry."}),
            "Bec",
        );
        assert!(card_done(&failed));
        assert_eq!(card_text(&failed), "Bec\n---\nSorry.");
    }
}
