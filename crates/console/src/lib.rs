//! jitnode-console: the web console that `jitnode run` serves, and the operator endpoints
//! (`/healthz`, `/readyz`, `/metrics`).
//!
//! The console shows the running app (elements as Meta > Type > instances with their state
//! and masked config, reload events), the chat with the robot as DingTalk shows it (with
//! `run --sandbox`: play a user; otherwise a read-only transcript from the robot's records),
//! the robot's traffic, the feedback table (CSV/JSON export) and a knowledge pane that asks
//! the agent directly. Its assets are plain HTML/CSS/JS embedded in the binary; live
//! updates go over Server-Sent Events.
//!
//! Security: bound beyond loopback it demands a token (printed once at start; a bearer
//! header or a cookie); the Host must be a loopback name or an IP literal and any Origin
//! must be the console's own (no CSRF, no DNS rebinding); anything that writes needs the
//! sandbox (read-only against a real account).
//!
//! It is NOT the robot, the sandbox or a card renderer of its own: cards are read with the
//! robot's [`CardView`], DingTalk's side is driven through the sandbox's [`ControlClient`].

mod guard;
mod routes;
mod snapshot;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jitnode_dingtalk_wire::CardKind;
use jitnode_robot::callback::{Action, FeedbackKind};
use jitnode_robot::cards::{self, view::CardView};
use jitnode_robot::config::DEFAULT_STREAMING_KEY;
use jitnode_sandbox::{CardState, Click, ControlClient};

pub use guard::needs_token;

/// Errors of starting the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A robot the sandbox serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotRef {
    pub full_name: String,
    pub client_id: String,
}

/// The console's way to DingTalk's side when `run --sandbox` is on.
#[derive(Clone)]
pub struct SandboxLink {
    pub control: ControlClient,
    /// The robots the sandbox serves now (they change on reload).
    pub robots: Arc<dyn Fn() -> Vec<RobotRef> + Send + Sync>,
    /// The sandbox itself when it runs in this process: the Wire pane's ACKs, pings and
    /// connections, and its fault buttons.
    pub local: Option<Arc<jitnode_sandbox::Sandbox>>,
}

/// How to serve the console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub bind: SocketAddr,
    /// Demand the token even on loopback (it is always demanded beyond loopback).
    pub require_token: bool,
    /// The app directory (its `data/` holds the robot's records).
    pub app_dir: PathBuf,
    /// The `backendBundleEntry` of agent Types, to offer their instances in the knowledge
    /// pane.
    pub agent_entry: String,
    /// Serve only `/healthz`, `/readyz` and `/metrics` (`run --no-console --metrics ADDR`).
    pub operators_only: bool,
}

impl ConsoleOptions {
    /// Loopback, a free port, no token.
    pub fn new(app_dir: impl Into<PathBuf>) -> ConsoleOptions {
        ConsoleOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            require_token: false,
            app_dir: app_dir.into(),
            agent_entry: String::new(),
            operators_only: false,
        }
    }
}

/// A running console.
pub struct Console {
    addr: SocketAddr,
    token: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

// The token is a credential: never printed by Debug.
jitnode_dingtalk_wire::debug_redacted!(Console { addr } secret { token });

impl Console {
    /// Binds and serves `app`'s console until [`Console::shutdown`].
    pub async fn start(
        options: ConsoleOptions,
        app: jitnode_host::App,
        sandbox: Option<SandboxLink>,
    ) -> Result<Console, ConsoleError> {
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .map_err(|source| ConsoleError::Bind {
                addr: options.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ConsoleError::Bind {
            addr: options.bind,
            source,
        })?;
        let token = (options.require_token || needs_token(&addr)).then(guard::new_token);
        let state = routes::Shared::new(routes::Inner {
            app,
            sandbox,
            options,
            token: token.clone(),
            posted: Mutex::new(Vec::new()),
            events: Mutex::new(snapshot::Events::default()),
        });
        snapshot::spawn_event_watch(state.clone());
        let router = routes::router(state);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("console stopped: {e}");
            }
        });
        Ok(Console {
            addr,
            token,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`: what to open (the token goes separately, or via [`Console::login_url`]).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The URL that sets the token cookie and opens the console (the URL itself without a
    /// token when none is needed). Holds the token: print it once.
    pub fn login_url(&self) -> String {
        match &self.token {
            Some(t) => format!("http://{}/login?token={t}", self.addr),
            None => self.url(),
        }
    }

    /// The token, when the console demands one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub async fn shutdown(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

/// What a card in the sandbox shows, read by the robot's card view: standard cards carry
/// their whole JSON, template cards their variables. One reader for `jitnode ask` and the
/// console.
pub fn card_view(card: &CardState) -> CardView {
    // Standard cards carry their whole JSON; template cards their variables.
    match &card.card_data {
        Some(data) => CardView::standard(data),
        None if cards::is_ai_card(&card.template_id) => {
            CardView::ai(&card.card_param_map, &card.streams)
        }
        None => CardView::template(&card.card_param_map, &card.streams, DEFAULT_STREAMING_KEY),
    }
}

/// A button's name, as `jitnode click` and the console's buttons call it.
pub fn button_name(a: &Action) -> &'static str {
    match a {
        Action::Feedback { kind, .. } => kind.as_str(),
        Action::Regenerate { .. } => "regenerate",
        Action::ContinueChat { .. } => "continue",
    }
}

/// The action of the button named `button` on the answer `record`.
pub fn action_named(button: &str, record: String) -> Result<Action, String> {
    match button {
        "regenerate" => Ok(Action::Regenerate { record }),
        "continue" | "continue_chat" => Ok(Action::ContinueChat { record }),
        other => match FeedbackKind::parse(other) {
            Some(kind) => Ok(Action::Feedback { kind, record }),
            None => Err(format!(
                "unknown button {other:?}: one of very_helpful, helpful, unhelpful, very_unhelpful, regenerate, continue"
            )),
        },
    }
}

/// The sandbox click that presses `action` on a card: a standard card's button carries a
/// value string, the public AI card's its action id, a custom template card's its params.
pub fn click_of(
    client_id: &str,
    card_id: &str,
    kind: CardKind,
    ai: bool,
    action: &Action,
) -> Click {
    let mut c = Click {
        client_id: client_id.to_string(),
        out_track_id: card_id.to_string(),
        ..Click::default()
    };
    if kind == CardKind::Standard {
        c.value = Some(action.to_value_string());
    } else if ai {
        c.action_ids = vec![action.to_action_id()];
    } else {
        c.params = action.to_params();
    }
    c
}
