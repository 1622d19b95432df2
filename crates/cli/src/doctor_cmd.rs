//! `jitnode doctor [APP]`: before going live, a checklist per robot instance — its config
//! resolves, its OpenAPI endpoint answers, its credentials get an access token and open a
//! Stream connection, and what could not be checked (card permissions have no dry run).
//! Each failed line prints its fix; any failure makes the exit code 1.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use jitnode_element::{AppTree, Element, Env};
use jitnode_robot::config::{CardMode, RobotConfig};
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
    let file = format!("elements/{}/config.json", el.full_name.replace('.', "/"));
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
    let fix_credentials = "Fix: set DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET (clientId / clientSecret) to the app's Client ID and Client Secret from the developer console";
    match OpenApi::new(http.clone(), &client).access_token().await {
        Ok(_) => lines.push(Line::pass("credentials get an access token", "")),
        Err(e) => lines.push(Line::fail(
            "credentials get an access token",
            format!("{e}. {fix_credentials}"),
        )),
    }
    match jitnode_stream::client::open_connection(&http, &client).await {
        Ok(_) => lines.push(Line::pass("credentials open a Stream connection", "")),
        Err(e @ ConnectError::AuthFailed { .. }) => lines.push(Line::fail(
            "credentials open a Stream connection",
            format!("{e}. {fix_credentials}"),
        )),
        Err(e) => lines.push(Line::fail(
            "credentials open a Stream connection",
            format!("{e}. Fix: add the robot to the app in Stream mode and publish the robot and the app"),
        )),
    }
    let cards = match config.card.mode {
        CardMode::Standard => "card mode standard: cards carry no buttons; not checked further".to_string(),
        mode => format!(
            "card mode {}: not checked (DingTalk has no dry run for card writes); the first answer shows a 403 naming a missing Card.Instance.Write or Card.Streaming.Write",
            mode.as_str()
        ),
    };
    lines.push(Line::pass("card permissions", cards));
    lines
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
    use jitnode_sandbox::{Sandbox, SandboxConfig};
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
                "card permissions"
            ]
        );
        assert!(lines[4].detail.contains("not checked"), "{lines:?}");
        sb.shutdown().await;
    }

    #[tokio::test]
    async fn bad_credentials_fail_with_the_fix_and_no_secret() {
        let sb = sandbox_with_app().await;
        let lines = lines_for(robot(&sb, "wrong-secret")).await;
        let failed: Vec<&Line> = lines.iter().filter(|l| !l.ok).collect();
        assert_eq!(failed.len(), 2, "{lines:?}");
        for l in failed {
            assert!(l.detail.contains("DINGTALK_CLIENT_SECRET"), "{l:?}");
            assert!(!l.detail.contains("wrong-secret"), "{l:?}");
        }
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
