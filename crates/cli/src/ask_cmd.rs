//! The offline demo's conversation: `run --sandbox` (the in-process sandbox, every robot
//! instance's credentials registered with it, and its state file), `jitnode ask` (a
//! question through the sandbox's control API, the card shown live) and `jitnode click`
//! (a button of the last card).
//!
//! The state file `<app>/data/sandbox.json` holds the control URL and the robots the
//! sandbox serves (fullName and clientId, no secret); `<app>/data/last-card.<fullName>.json`
//! remembers the last card of each robot for `click`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_console::{button_name, card_view as view};
use jitnode_dingtalk_wire::{CallKind, CardKind};
use jitnode_element::{AppTree, Env};
use jitnode_robot::callback::Action;
use jitnode_robot::cards;
use jitnode_sandbox::{ControlClient, PostMessage, Sandbox, SandboxConfig, Transcript};
use serde::{Deserialize, Serialize};

/// The variable the demo's config.json reads for `openApiEndpoint`.
pub const ENDPOINT_VAR: &str = "DINGTALK_OPENAPI_ENDPOINT";
const STATE_FILE: &str = "sandbox.json";
/// `last-card.<fullName>.json`.
const LAST_CARD_PREFIX: &str = "last-card.";
/// Longest wait for a card to finish.
const ANSWER_WAIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    control_url: String,
    pid: u32,
    /// The robot instances pointed at this sandbox, by fullName.
    robots: Vec<RobotEntry>,
}

/// A robot the sandbox serves, as the state file lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RobotEntry {
    full_name: String,
    client_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastCard {
    card_id: String,
    client_id: String,
    kind: CardKind,
    record: Option<String>,
    /// The public AI card: its clicks carry a button id, not params.
    #[serde(default)]
    ai: bool,
}

fn data_dir(app: &Path) -> PathBuf {
    app.join(jitnode_robot::loader::DATA_DIR)
}

/// Writes `text` to `path` whole (a reader never sees half of it).
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

// ------------------------------------------------------------------ run --sandbox

/// The entry of the robot Type's loader, `builtin:dingTalkStream`.
fn robot_entry() -> String {
    format!(
        "{}{}",
        jitnode_host::BUILTIN_SCHEME,
        jitnode_robot::LOADER_NAME
    )
}

/// The robot instances of `tree`: elements whose loader is `builtin:dingTalkStream`.
pub(crate) fn robot_instances(tree: &AppTree) -> impl Iterator<Item = &jitnode_element::Element> {
    let entry = robot_entry();
    tree.elements.values().filter(move |el| {
        tree.loader_of(&el.full_name)
            .and_then(|l| l.def.backend_bundle_entry.as_deref())
            == Some(entry.as_str())
    })
}

/// A robot instance's credentials and endpoint, rendered from its config.json.
struct RobotCredentials {
    entry: RobotEntry,
    secret: String,
    endpoint: Option<String>,
}

/// Every robot instance of `tree` (an element whose loader is `builtin:dingTalkStream`)
/// whose config renders with a clientId and clientSecret. One that does not render is left
/// to fail its own start, which names the problem.
fn robots_of(tree: &AppTree, env: &Env) -> Vec<RobotCredentials> {
    robot_instances(tree)
        .filter_map(|el| {
            let config = jitnode_element::render_config(el, env).ok()??;
            let field = |k: &str| config.get(k).and_then(|v| v.as_str()).map(str::to_string);
            Some(RobotCredentials {
                entry: RobotEntry {
                    full_name: el.full_name.clone(),
                    client_id: field("clientId")?,
                },
                secret: field("clientSecret")?,
                endpoint: field("openApiEndpoint"),
            })
        })
        .collect()
}

/// The sandbox of `jitnode run --sandbox`: started before the app opens (so the robots'
/// configs render with its URL), its state file removed when the last clone is dropped.
#[derive(Clone)]
pub struct DemoSandbox {
    inner: Arc<DemoInner>,
}

struct DemoInner {
    /// Shared with the console (its Wire pane and fault buttons).
    sandbox: Arc<Sandbox>,
    state_file: PathBuf,
    /// fullName -> hash of (clientId, secret) as registered, to log only what changed.
    registered: Mutex<BTreeMap<String, u64>>,
    /// The robots served now, for the console.
    served: Mutex<Vec<RobotEntry>>,
}

impl DemoSandbox {
    /// Starts the sandbox on a free loopback port; [`DemoSandbox::env_overrides`] points
    /// the robots' `openApiEndpoint` at it.
    pub async fn start(app_dir: &Path) -> Result<DemoSandbox, String> {
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(DemoSandbox {
            inner: Arc::new(DemoInner {
                sandbox: Arc::new(sandbox),
                state_file: data_dir(app_dir).join(STATE_FILE),
                registered: Mutex::new(BTreeMap::new()),
                served: Mutex::new(Vec::new()),
            }),
        })
    }

    /// What to set over the app's environment when opening it ([`ENDPOINT_VAR`] = the
    /// sandbox's URL), so `{{DINGTALK_OPENAPI_ENDPOINT}}` renders to the sandbox; passed to
    /// `App::open_with` rather than set in the process environment, which tokio's worker
    /// threads may be reading.
    pub fn env_overrides(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(ENDPOINT_VAR.to_string(), self.inner.sandbox.base_url())])
    }

    /// Registers every robot instance's credentials (rendered from the app's environment),
    /// writes the state file and prints how to talk to the robots.
    pub fn attach(&self, app: &jitnode_host::App) -> Result<(), String> {
        let robots = self.register(&app.tree(), &app.env())?;
        if robots.is_empty() {
            return Err(format!(
                "--sandbox: no robot instance to serve (an element of a Type with \
                 \"backendBundleEntry\": \"{}\" whose config.json renders a clientId and \
                 clientSecret, pointed at openApiEndpoint {{{{{ENDPOINT_VAR}}}}})",
                robot_entry()
            ));
        }
        let base = self.inner.sandbox.base_url();
        println!("DingTalk sandbox running at {base}, serving:");
        for r in &robots {
            println!("  {} (clientId {})", r.full_name, r.client_id);
        }
        println!("Talk to the robots from this directory, in another terminal:");
        let pick = match robots.as_slice() {
            [_] => String::new(),
            [first, ..] => format!("--robot {} ", first.full_name),
            [] => unreachable!("checked above"),
        };
        println!("  jitnode ask {pick}\"How do I reset my password?\"");
        println!("  jitnode click {pick}helpful      (or very_helpful, unhelpful, very_unhelpful, regenerate, continue)");
        println!("  jitnode feedback           (--format csv|json to export)");
        println!("Ctrl-C stops.");
        let _ = std::io::stdout().flush();
        Ok(())
    }

    /// The console's way to this sandbox: its control API and the robots it serves.
    pub fn console_link(&self) -> jitnode_console::SandboxLink {
        let this = self.clone();
        jitnode_console::SandboxLink {
            control: ControlClient::new(&self.inner.sandbox.base_url()),
            local: Some(self.inner.sandbox.clone()),
            robots: Arc::new(move || {
                let served = this.inner.served.lock().unwrap_or_else(|p| p.into_inner());
                served
                    .iter()
                    .map(|r| jitnode_console::RobotRef {
                        full_name: r.full_name.clone(),
                        client_id: r.client_id.clone(),
                    })
                    .collect()
            }),
        }
    }

    /// For [`jitnode_host::Reloader::before_restart`]: registers robots added or whose
    /// credentials changed before they (re)connect, and rewrites the state file.
    pub fn on_reload(&self) -> impl FnMut(&AppTree, &Env) + Send + 'static {
        let this = self.clone();
        move |tree, env| {
            if let Err(e) = this.register(tree, env) {
                tracing::error!("sandbox: {e}");
            }
        }
    }

    /// Registers the robots of this version of the app and lists them in the state file.
    fn register(&self, tree: &AppTree, env: &Env) -> Result<Vec<RobotEntry>, String> {
        let sb = &self.inner.sandbox;
        let base = sb.base_url();
        let mut served = Vec::new();
        let mut registered = self
            .inner
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for r in robots_of(tree, env) {
            let endpoint = r
                .endpoint
                .as_deref()
                .unwrap_or(jitnode_robot::config::DEFAULT_OPEN_API_ENDPOINT);
            if endpoint.trim_end_matches('/') != base {
                tracing::warn!(
                    robot = %r.entry.full_name,
                    endpoint = %jitnode_dingtalk_wire::redacted_url(endpoint),
                    "robot does not use the sandbox (set its openApiEndpoint to {{{{{ENDPOINT_VAR}}}}}); not registered"
                );
                continue;
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&r.entry.client_id, &r.secret).hash(&mut h);
            let fingerprint = h.finish();
            if registered.get(&r.entry.full_name) != Some(&fingerprint) {
                sb.register_app(&r.entry.client_id, &r.secret);
                registered.insert(r.entry.full_name.clone(), fingerprint);
                tracing::info!(
                    robot = %r.entry.full_name,
                    client_id = %r.entry.client_id,
                    "sandbox: robot registered"
                );
            }
            served.push(r.entry);
        }
        registered.retain(|name, _| served.iter().any(|r| &r.full_name == name));
        *self.inner.served.lock().unwrap_or_else(|p| p.into_inner()) = served.clone();
        let state = State {
            control_url: base,
            pid: std::process::id(),
            robots: served.clone(),
        };
        let text = serde_json::to_string_pretty(&state).expect("plain strings serialize");
        // Unchanged, it is not rewritten: a write under the app directory is a file event.
        if std::fs::read_to_string(&self.inner.state_file)
            .ok()
            .as_deref()
            != Some(&text)
        {
            write_atomic(&self.inner.state_file, &text)?;
        }
        Ok(served)
    }
}

impl Drop for DemoInner {
    fn drop(&mut self) {
        // Only our own state file: another run may have replaced it.
        if let Ok(text) = std::fs::read_to_string(&self.state_file) {
            if serde_json::from_str::<State>(&text).is_ok_and(|s| s.pid == std::process::id()) {
                let _ = std::fs::remove_file(&self.state_file);
            }
        }
        // The server task ends with the runtime; nothing to await here.
    }
}

// ------------------------------------------------------------------ control API

/// The sandbox of a running `run --sandbox`, found through its state file, and the robot
/// to talk to.
struct Demo {
    ctl: ControlClient,
    robot: RobotEntry,
}

impl Demo {
    /// `robot`: the fullName given with `--robot`; without it, the only robot.
    fn find(app: &Path, robot: Option<&str>) -> Result<Demo, String> {
        let path = data_dir(app).join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            format!(
                "no running sandbox found ({} is missing): start `jitnode run --sandbox` in the app directory first",
                path.display()
            )
        })?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a sandbox state file: {e}", path.display()))?;
        let robot = pick_robot(&state.robots, robot)?;
        Ok(Demo {
            ctl: ControlClient::new(&state.control_url),
            robot,
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

/// The robot named `wanted`, or the only one.
fn pick_robot(robots: &[RobotEntry], wanted: Option<&str>) -> Result<RobotEntry, String> {
    let listed = || {
        robots
            .iter()
            .map(|r| format!("{} (clientId {})", r.full_name, r.client_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted, robots) {
        (Some(name), _) => robots
            .iter()
            .find(|r| r.full_name == name)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no robot {name:?} in the running sandbox; it serves: {}",
                    listed()
                )
            }),
        (None, [only]) => Ok(only.clone()),
        (None, []) => Err("the running sandbox serves no robot".into()),
        (None, _) => Err(format!(
            "the sandbox serves {} robots: {}; pick one with --robot <fullName>",
            robots.len(),
            listed()
        )),
    }
}

/// Where the last card of `robot` is remembered for `click`: one file per robot, so asking
/// two robots at once cannot lose either's card.
fn last_card_file(app: &Path, robot: &RobotEntry) -> PathBuf {
    data_dir(app).join(format!("{LAST_CARD_PREFIX}{}.json", robot.full_name))
}

// ------------------------------------------------------------------ showing cards

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
            .filter(|e| e.client_id == ctl.robot.client_id)
            .collect();
        for r in replies.iter().skip(replies_shown) {
            println!("[reply] {}", r.text.as_deref().unwrap_or(""));
        }
        replies_shown = replies.len();
        if card_id.is_none() {
            card_id = t
                .entries
                .iter()
                .filter(|e| e.seq > since && e.client_id == ctl.robot.client_id)
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
                    client_id: ctl.robot.client_id.clone(),
                    kind: card.card_kind().unwrap_or(CardKind::Advanced),
                    record: shown_card.record().map(str::to_string),
                    ai: cards::is_ai_card(&card.template_id),
                };
                let text = serde_json::to_string_pretty(&last).expect("plain strings serialize");
                write_atomic(&last_card_file(app, &ctl.robot), &text)?;
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

/// `jitnode ask [--robot <fullName>] "question"`.
pub async fn ask(
    app: &Path,
    robot: Option<&str>,
    question: &str,
    group: bool,
) -> Result<(), String> {
    let ctl = Demo::find(app, robot)?;
    let since = ctl.transcript().await?.last_seq();
    let mut message = PostMessage::text(&ctl.robot.client_id, question);
    if group {
        message = message.in_group("cidSandboxGroup");
    }
    let posted = ctl
        .ctl
        .post_message(&message)
        .await
        .map_err(|e| ctl.explain(e))?;
    if !posted.delivered {
        return Err(format!(
            "the sandbox did not deliver the message (is {} connected?)",
            ctl.robot.full_name
        ));
    }
    println!("> {question}");
    follow(&ctl, app, since, None).await
}

/// `jitnode click [--robot <fullName>] <button>` on the robot's last card.
pub async fn click(app: &Path, robot: Option<&str>, button: &str) -> Result<(), String> {
    let ctl = Demo::find(app, robot)?;
    let last: LastCard = std::fs::read_to_string(last_card_file(app, &ctl.robot))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            format!(
                "no card of {} to click yet: ask it a question first (`jitnode ask \"...\"`)",
                ctl.robot.full_name
            )
        })?;
    let record = last
        .record
        .clone()
        .ok_or_else(|| "the last card has no buttons".to_string())?;
    let action = jitnode_console::action_named(button, record)?;
    let since = ctl.transcript().await?.last_seq();
    let c = jitnode_console::click_of(&last.client_id, &last.card_id, last.kind, last.ai, &action);
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
                    .filter(|e| e.seq > since && e.client_id == ctl.robot.client_id)
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
    use jitnode_sandbox::CardState;
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

        // Standard final cards carry no (dead) buttons.
        let done = standard(cards.final_answer("Why?", "Because."));
        assert!(card_text(&done).starts_with("Because."));
        assert!(card_done(&done));
        assert!(card_buttons(&done).is_empty());

        let failed = standard(cards.failed("Why?", "Bec", "Sorry."));
        assert!(card_done(&failed));
        assert!(card_buttons(&failed).is_empty());
        assert!(card_text(&failed).contains("Sorry."));

        let thanks = standard(cards.thanks("Why?", Some("Because.")));
        assert!(card_done(&thanks));
        assert!(card_buttons(&thanks).is_empty());
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
