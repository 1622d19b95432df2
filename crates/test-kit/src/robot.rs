//! The robot's test harness pieces: an app directory with the DingTalk robot family and
//! robot instances pointed at a sandbox, waits on the sandbox's transcript, and the robot's
//! own `status`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jitnode_host::{App, ChunkSink, Registry};
use jitnode_sandbox::{Sandbox, Transcript};
use serde_json::{json, Value};

/// A temporary app directory, written element by element. Removed when dropped.
pub struct AppDir {
    dir: tempfile::TempDir,
}

impl Default for AppDir {
    fn default() -> Self {
        AppDir::new()
    }
}

impl AppDir {
    pub fn new() -> AppDir {
        AppDir {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The app directory (holding `elements/`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<app>/data`, where the robot keeps its records.
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Writes `text` to `<app>/elements/<rel>`, creating folders.
    pub fn write(&self, rel: &str, text: &str) {
        write(&self.path().join("elements").join(rel), text);
    }

    /// A Meta `<family>.meta` titled `title`.
    pub fn meta(&self, family: &str, title: &str) {
        self.write(
            &format!("{family}/meta/e.json"),
            &json!({"type": "", "title": title}).to_string(),
        );
    }

    /// The agent the robots call, `aiagents.customerService`, of a Type
    /// `aiagents.testAgentType` whose backend is the registered loader `entry`.
    pub fn test_agent(&self, entry: &str) {
        self.meta("aiagents", "agents");
        self.write(
            "aiagents/testAgentType/e.json",
            &json!({"type": "aiagents.meta", "title": "test agent", "backendBundleEntry": format!("builtin:{entry}")})
                .to_string(),
        );
        self.write(
            "aiagents/customerService/e.json",
            r#"{"type": "aiagents.testAgentType", "title": "cs"}"#,
        );
    }

    /// The robot family: `imRobots.meta` and `imRobots.dingTalkStreamType`
    /// (`builtin:dingTalkStream`).
    pub fn robot_family(&self) {
        self.meta("imRobots", "robots");
        self.write(
            "imRobots/dingTalkStreamType/e.json",
            r#"{"type": "imRobots.meta", "title": "robot", "backendBundleEntry": "builtin:dingTalkStream"}"#,
        );
    }

    /// A robot instance `imRobots.<name>`, started with the app, with `config`.
    pub fn robot(&self, name: &str, config: &Value) {
        self.write(
            &format!("imRobots/{name}/e.json"),
            r#"{"type": "imRobots.dingTalkStreamType", "title": "bot", "backendLoadTime": "afterAppInit"}"#,
        );
        self.write(&format!("imRobots/{name}/config.json"), &config.to_string());
    }
}

/// Writes a file, creating its folders.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a file path has a parent"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The config of a robot talking to `sb` as `client_id` (registered there with `secret`),
/// asking `aiagents.customerService`, in English, with quick card updates in standard card
/// mode (what these tests were written for; a new robot's default is `ai`); `extra`'s
/// fields replace the defaults.
pub fn robot_config(sb: &Sandbox, client_id: &str, secret: &str, extra: &Value) -> Value {
    sb.register_app(client_id, secret);
    let mut config = json!({
        "clientId": client_id, "clientSecret": secret,
        "agent": "aiagents.customerService", "openApiEndpoint": sb.base_url(),
        "oapiEndpoint": sb.base_url(), "language": "en",
        "card": {"mode": "standard", "minIntervalMs": 50}
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    config
}

/// Waits until `cond` holds for the sandbox's transcript, looking once now and once per
/// new transcript entry (every card or reply call makes one; nothing is polled); panics
/// with the transcript after `timeout`.
pub async fn wait_for(
    sb: &Sandbox,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&Transcript) -> bool,
) -> Transcript {
    match sb.wait_for_transcript(timeout, cond).await {
        Ok(t) => t,
        Err(t) => panic!("timed out waiting for {what}; transcript: {:#?}", t.entries),
    }
}

/// Waits (woken by each new transcript entry) for a call of `kind` whose body mentions
/// `containing`, e.g. the partial card update of a held answer; panics after `timeout`.
pub async fn wait_for_call(sb: &Sandbox, kind: &str, containing: &str, timeout: Duration) {
    let found = sb
        .wait_for_entry(0, timeout, |e| {
            e.kind == kind && e.body.to_string().contains(containing)
        })
        .await;
    assert!(
        found.is_some(),
        "timed out waiting for a {kind} call with {containing:?}; transcript: {:#?}",
        sb.transcript().entries
    );
}

/// Opens the app in `dir` with `registry` (the loaders the test needs, the robot's among
/// them) and starts it; asserts that every element started.
pub async fn start_app(dir: &AppDir, registry: Registry) -> App {
    let (app, _) = App::open(dir.path(), false, registry).expect("the app opens");
    let report = app.start().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    app
}

/// Waits (woken by the sandbox, not polled) until `client_id` has `n` connections open;
/// panics after ten seconds.
pub async fn wait_connected(sb: &Sandbox, client_id: &str, n: usize) {
    assert!(
        sb.wait_for_connections(client_id, n, Duration::from_secs(10))
            .await,
        "{client_id}: {n} connection(s) expected"
    );
}

/// The `status` of robot instance `robot` (a fullName) in `app`.
pub async fn status(app: &App, robot: &str) -> Value {
    status_with(app, robot, json!({})).await
}

/// The `status` of `robot` once it answers nothing any more: it waits (woken by the robot's
/// last running answer, nothing is polled) up to `timeout`, and asserts that it is idle. A
/// card can be on the wire a moment before its answer task ends (it still closes the card
/// on the store), so a test that saw the final card and checks the robot uses this.
pub async fn idle_status(app: &App, robot: &str, timeout: Duration) -> Value {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let status = status_with(app, robot, json!({"idleWithinMs": ms})).await;
    assert_eq!(status["answering"], 0, "{robot} still answering: {status}");
    status
}

async fn status_with(app: &App, robot: &str, args: Value) -> Value {
    app.call(robot, "status", args, ChunkSink::discard())
        .await
        .unwrap_or_else(|e| panic!("{robot} status: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitnode_sandbox::SandboxConfig;

    #[tokio::test]
    async fn the_app_dir_holds_the_robot_family_and_instances() {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let app = AppDir::new();
        app.robot_family();
        let config = robot_config(&sb, "dingkit", "kit-secret", &json!({"language": "zh"}));
        assert_eq!(config["language"], "zh");
        assert_eq!(config["openApiEndpoint"], sb.base_url());
        app.robot("bot", &config);
        let tree = jitnode_element::load_tree(&app.path().join("elements")).unwrap();
        let bot = tree.get("imRobots.bot").expect("the instance resolves");
        assert_eq!(bot.def.type_name, "imRobots.dingTalkStreamType");
        let written: Value = serde_json::from_str(
            &std::fs::read_to_string(app.path().join("elements/imRobots/bot/config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(written, config);
        // Registered: posting to it no longer says the app is unknown.
        let e = sb
            .post_message(&jitnode_sandbox::PostMessage::text("dingkit", "hi"))
            .unwrap_err();
        assert!(
            matches!(e, jitnode_sandbox::SandboxError::NoConnection { .. }),
            "{e}"
        );
        let t = wait_for(&sb, "an empty transcript", Duration::from_secs(1), |t| {
            t.entries.is_empty()
        })
        .await;
        assert_eq!(t.last_seq(), 0);
        sb.shutdown().await;
    }
}
