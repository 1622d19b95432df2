//! `jitnode doctor [APP]`: before going live, a checklist per robot instance — its config
//! resolves, its OpenAPI endpoint answers, its credentials get an access token and open a
//! Stream connection, and each card permission its card mode needs works (a dry run: the
//! update of a card that does not exist, which DingTalk refuses for a missing permission,
//! an unpublished robot or a rate limit before it looks for the card). What has no dry run
//! (a custom template's publication) is said, not checked. A failed line is the robot's own
//! sentence for that refusal ([`jitnode_robot::refusal::explain`]), with its fix; any
//! failure makes the exit code 1.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use jitnode_dingtalk_wire::api;
use jitnode_dingtalk_wire::{Permission, Refusal};
use jitnode_element::{AppTree, Element, Env};
use jitnode_robot::config::{CardMode, RobotConfig};
use jitnode_robot::refusal::{config_file, explain};
use jitnode_stream::{ConnectError, OpenApi};

use crate::ask_cmd::robot_instances;

/// One checklist line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ok: bool,
    pub what: String,
    /// What went wrong and how to fix it (failures), or a note.
    pub detail: String,
}

impl Line {
    fn pass(what: &str, detail: impl Into<String>) -> Line {
        Line {
            ok: true,
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn fail(what: &str, detail: impl Into<String>) -> Line {
        Line {
            ok: false,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The checklist of one robot instance.
pub async fn check_robot(el: &Element, env: &Env) -> Vec<Line> {
    let mut lines = Vec::new();
    let file = config_file(&el.full_name);
    let config = match jitnode_element::render_config(el, env) {
        Ok(Some(v)) => RobotConfig::from_value(&v).map_err(|e| e.to_string()),
        Ok(None) => Err("has no config.json".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let config = match config {
        Ok(c) => {
            lines.push(Line::pass("config resolves", file.clone()));
            c
        }
        Err(e) => {
            lines.push(Line::fail(
                "config resolves",
                format!("{file}: {e}. Fix: correct that field in {file}, or set the variable in .env or the environment"),
            ));
            return lines;
        }
    };
    let http = match reqwest::Client::builder().timeout(HTTP_TIMEOUT).build() {
        Ok(h) => h,
        Err(e) => {
            lines.push(Line::fail(
                "endpoint answers",
                format!("no HTTP client: {e}"),
            ));
            return lines;
        }
    };
    // Any HTTP answer (even 404) means the endpoint is there.
    match http.get(&config.open_api_endpoint).send().await {
        Ok(_) => lines.push(Line::pass(
            "endpoint answers",
            config.open_api_endpoint.clone(),
        )),
        Err(e) => {
            lines.push(Line::fail(
                "endpoint answers",
                format!(
                    "{} does not answer ({}). Fix: check openApiEndpoint in {file} and the network",
                    config.open_api_endpoint,
                    e.without_url()
                ),
            ));
            return lines;
        }
    }
    let client = jitnode_robot::loader::client_config(&config);
    let robot = el.full_name.as_str();
    let fix_credentials = "Fix: set DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET (clientId / clientSecret) to the app's Client ID and Client Secret from the developer console";
    let api = OpenApi::new(http.clone(), &client);
    let token_ok = match api.access_token().await {
        Ok(_) => {
            lines.push(Line::pass("credentials get an access token", ""));
            true
        }
        Err(e) => {
            let detail = match e.refusal() {
                Some(r) => explain(&r, robot, &config, "the access token"),
                None => format!("{e}. {fix_credentials}"),
            };
            lines.push(Line::fail("credentials get an access token", detail));
            false
        }
    };
    match jitnode_stream::client::open_connection(&http, &client).await {
        Ok(_) => lines.push(Line::pass("credentials open a Stream connection", "")),
        Err(ConnectError::AuthFailed { .. }) => lines.push(Line::fail(
            "credentials open a Stream connection",
            explain(
                &Refusal::AuthFailed,
                robot,
                &config,
                "opening the Stream connection",
            ),
        )),
        Err(e) => lines.push(Line::fail(
            "credentials open a Stream connection",
            format!("{e}. Fix: add the robot to the app in Stream mode and publish the robot and the app"),
        )),
    }
    if !token_ok {
        lines.push(Line::fail(
            "card permissions",
            "not checked: they need an access token (see above)",
        ));
        return lines;
    }
    for &probe in probes(config.card.mode) {
        lines.push(dry_run(&api, probe, robot, &config).await);
    }
    lines.push(Line::pass("card template", template_note(&config)));
    lines
}

/// A card call that changes nothing: an update of a card that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Instances,
    Streaming,
    Standard,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Instances => api::PATH_CARD_INSTANCES,
            Probe::Streaming => api::PATH_CARD_STREAMING,
            Probe::Standard => api::PATH_STANDARD_UPDATE,
        }
    }
}

/// The card APIs a card mode calls, each checked by a dry run.
fn probes(mode: CardMode) -> &'static [Probe] {
    match mode {
        CardMode::Ai | CardMode::Template => &[Probe::Instances, Probe::Streaming],
        CardMode::Standard => &[Probe::Standard],
    }
}

/// Runs one dry run. DingTalk checks the permission (and its rate limit) before the card
/// id, so a call refused only for its unknown card proves the permission.
async fn dry_run(api: &OpenApi, probe: Probe, robot: &str, config: &RobotConfig) -> Line {
    let permission = Permission::for_path(probe.path())
        .map(|p| p.to_string())
        .unwrap_or_default();
    let what = format!("permission {permission} (dry run of PUT {})", probe.path());
    let card = format!("jitnode-doctor-{}", uuid_like());
    let result = match probe {
        Probe::Instances => api.update_card(&card, Default::default()).await,
        Probe::Streaming => {
            api.stream_card(&card, api::ai_card::KEY_CONTENT, "", false, false)
                .await
        }
        Probe::Standard => {
            api.update_standard_card(&card, &serde_json::json!({"contents": []}))
                .await
        }
    };
    match result {
        Ok(_) => Line::pass(&what, "granted"),
        Err(e) => match e.refusal() {
            Some(r) => Line::fail(&what, explain(&r, robot, config, &format!("doctor's dry run of PUT {}", probe.path()))),
            // Past the permission check, refused only for the card that does not exist.
            None if matches!(e.status(), Some(400 | 404)) => {
                Line::pass(&what, "granted (only the dry run's made-up card was refused)")
            }
            None => Line::fail(
                &what,
                format!("could not check: {e}. Fix: run jitnode doctor again; if it persists, check openApiEndpoint"),
            ),
        },
    }
}

/// A unique suffix for the dry run's card id (time and process, no RNG needed).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{}", std::process::id())
}

/// What doctor can say about the card template, which has no dry run.
fn template_note(config: &RobotConfig) -> String {
    match config.card.mode {
        CardMode::Ai => "DingTalk's public AI card template (always published)".into(),
        CardMode::Template => format!(
            "{}: not checked (publication has no dry run); an unpublished template shows on the first answer as param.templateUnpublished, with its fix in the log and the robot's status",
            config.card.template_id.as_deref().unwrap_or("(none)")
        ),
        CardMode::Standard => "card mode standard: no template; cards carry no buttons".into(),
    }
}

/// Runs the checklist for every robot instance of the app and prints it.
pub async fn doctor(app: &Path) -> Result<ExitCode, String> {
    let env = Env::load(app).map_err(|e| e.to_string())?;
    let tree: AppTree =
        jitnode_element::load_tree(&app.join("elements")).map_err(|p| p.to_string())?;
    let robots: Vec<&Element> = robot_instances(&tree).collect();
    if robots.is_empty() {
        println!("no robot instance in {}", app.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for el in robots {
        println!("{}", el.full_name);
        for line in check_robot(el, &env).await {
            failed |= !line.ok;
            let mark = if line.ok { "ok  " } else { "FAIL" };
            if line.detail.is_empty() {
                println!("  [{mark}] {}", line.what);
            } else {
                println!("  [{mark}] {}: {}", line.what, line.detail);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitnode_sandbox::{RefusalFault, Sandbox, SandboxConfig};
    use serde_json::json;

    /// An app with one robot instance `imRobots.bot` whose config is `config`.
    fn app_with_robot(config: &serde_json::Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |rel: &str, text: &str| {
            let p = dir.path().join("elements").join(rel);
            std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        write("imRobots/meta/e.json", r#"{"type": "", "title": "robots"}"#);
        write(
            "imRobots/dingTalkStreamType/e.json",
            r#"{"type": "imRobots.meta", "title": "robot", "backendBundleEntry": "builtin:dingTalkStream"}"#,
        );
        write(
            "imRobots/bot/e.json",
            r#"{"type": "imRobots.dingTalkStreamType", "title": "bot", "backendLoadTime": "afterAppInit"}"#,
        );
        write("imRobots/bot/config.json", &config.to_string());
        dir
    }

    async fn lines_for(config: serde_json::Value) -> Vec<Line> {
        let dir = app_with_robot(&config);
        let tree = jitnode_element::load_tree(&dir.path().join("elements")).expect("tree loads");
        let env = Env::from_map(Default::default());
        let el = robot_instances(&tree).next().expect("one robot");
        check_robot(el, &env).await
    }

    /// A sandbox that knows app `dingapp` with secret `right-secret`.
    async fn sandbox_with_app() -> Sandbox {
        let sb = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox");
        sb.register_app("dingapp", "right-secret");
        sb
    }

    fn robot(sb: &Sandbox, secret: &str) -> serde_json::Value {
        json!({"clientId": "dingapp", "clientSecret": secret, "agent": "aiagents.cs",
               "openApiEndpoint": sb.base_url(), "oapiEndpoint": sb.base_url(),
               "card": {"mode": "ai"}})
    }

    #[tokio::test]
    async fn healthy_robot_passes_every_line() {
        let sb = sandbox_with_app().await;
        let lines = lines_for(robot(&sb, "right-secret")).await;
        assert!(lines.iter().all(|l| l.ok), "{lines:?}");
        let names: Vec<&str> = lines.iter().map(|l| l.what.as_str()).collect();
        assert_eq!(
            names,
            [
                "config resolves",
                "endpoint answers",
                "credentials get an access token",
                "credentials open a Stream connection",
                "permission Card.Instance.Write (dry run of PUT /v1.0/card/instances)",
                "permission Card.Streaming.Write (dry run of PUT /v1.0/card/streaming)",
                "card template"
            ]
        );
        assert!(lines[4].detail.starts_with("granted"), "{lines:?}");
        assert!(lines[6].detail.contains("public AI card"), "{lines:?}");
        // The dry runs created nothing.
        assert!(sb.transcript().cards.is_empty());
        sb.shutdown().await;
    }

    /// The lines that failed.
    fn failing(lines: &[Line]) -> Vec<&Line> {
        lines.iter().filter(|l| !l.ok).collect()
    }

    /// Doctor's lines for the right credentials once the sandbox refuses with `fault`.
    async fn lines_refused(sb: &Sandbox, fault: RefusalFault) -> Vec<Line> {
        sb.refuse(fault).unwrap();
        lines_for(robot(sb, "right-secret")).await
    }

    /// Asserts that `n` of `lines` fail, the first of them naming `fix`.
    #[track_caller]
    fn assert_fails_first_with(lines: &[Line], n: usize, fix: &str) {
        let failed = failing(lines);
        assert_eq!(failed.len(), n, "{lines:?}");
        assert!(failed[0].detail.contains(fix), "{lines:?}");
    }

    #[tokio::test]
    async fn bad_credentials_fail_with_the_fix_and_no_secret() {
        let sb = sandbox_with_app().await;
        let lines = lines_for(robot(&sb, "wrong-secret")).await;
        let failed = failing(&lines);
        // Token, connection, and the permissions that could not be checked without a token.
        assert_eq!(failed.len(), 3, "{lines:?}");
        for l in &failed[..2] {
            assert!(l.detail.contains("DINGTALK_CLIENT_SECRET"), "{l:?}");
            assert!(!l.detail.contains("wrong-secret"), "{l:?}");
        }
        // Right credentials of an app DingTalk refuses (an unpublished one): the same.
        let lines = lines_refused(&sb, RefusalFault::new(Refusal::AuthFailed)).await;
        assert_fails_first_with(&lines, 3, "publish an app version");
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn each_missing_permission_fails_its_line_naming_it() {
        let sb = sandbox_with_app().await;
        for (permission, mode) in [
            (Permission::CardInstanceWrite, "ai"),
            (Permission::CardStreamingWrite, "ai"),
            (Permission::CardStreamingWrite, "template"),
            (Permission::RobotSendMessage, "standard"),
        ] {
            sb.clear_refusals();
            sb.refuse(RefusalFault::missing(permission.clone()))
                .unwrap();
            let mut config = robot(&sb, "right-secret");
            config["card"] = json!({"mode": mode, "templateId": "mine.schema"});
            let lines = lines_for(config).await;
            let failed = failing(&lines);
            assert_eq!(failed.len(), 1, "{permission} {mode}: {lines:?}");
            assert!(failed[0].what.contains(permission.as_str()), "{failed:?}");
            let want = format!("Fix: grant {permission}");
            assert!(failed[0].detail.contains(&want), "{failed:?}");
            assert!(failed[0]
                .detail
                .contains("elements/imRobots/bot/config.json"));
        }
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn an_unpublished_robot_and_a_rate_limit_fail_with_their_fix() {
        let sb = sandbox_with_app().await;
        let lines = lines_refused(&sb, RefusalFault::new(Refusal::RobotNotFound)).await;
        let failed = failing(&lines);
        assert_eq!(failed.len(), 2, "{lines:?}");
        assert!(
            failed.iter().all(|l| l.detail.contains("robotCode")),
            "{lines:?}"
        );
        sb.clear_refusals();

        let rate_limited = RefusalFault::new(Refusal::RateLimited).with_status(429);
        let lines = lines_refused(&sb, rate_limited).await;
        assert_fails_first_with(&lines, 2, "Fix: raise card.minIntervalMs");
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn what_has_no_dry_run_is_said_not_checked() {
        let sb = sandbox_with_app().await;
        // An unpublished template is only seen on a real delivery: doctor says so.
        sb.refuse(RefusalFault::new(Refusal::TemplateUnpublished))
            .unwrap();
        let mut config = robot(&sb, "right-secret");
        config["card"] = json!({"mode": "template", "templateId": "mine.schema"});
        let lines = lines_for(config).await;
        assert!(lines.iter().all(|l| l.ok), "{lines:?}");
        let template = lines.last().unwrap();
        assert_eq!(template.what, "card template");
        assert!(
            template.detail.contains("mine.schema: not checked"),
            "{template:?}"
        );
        assert!(
            template.detail.contains("param.templateUnpublished"),
            "{template:?}"
        );
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn unreachable_endpoint_and_bad_config_fail_with_their_fix() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let lines = lines_for(json!({"clientId": "a", "clientSecret": "b", "agent": "x.y",
                                     "openApiEndpoint": url, "oapiEndpoint": url}))
        .await;
        assert!(lines[0].ok);
        assert!(
            !lines[1].ok && lines[1].detail.contains("openApiEndpoint"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 2);

        let lines = lines_for(json!({"clientId": "a", "agent": "x.y"})).await;
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].ok);
        assert!(lines[0].detail.contains("clientSecret"), "{lines:?}");
        assert!(lines[0].detail.contains("Fix:"), "{lines:?}");
    }
}
