//! The console over real HTTP, on a copy of the demo app with the robot talking to the
//! in-repo sandbox: the guards (token, Host, Origin), /readyz, and /metrics moving when a
//! question is answered.

use std::collections::BTreeMap;
use std::time::Duration;

use jitnode_console::{Console, ConsoleOptions, RobotRef, SandboxLink};
use jitnode_host::{App, Registry};
use jitnode_sandbox::{ControlClient, Sandbox, SandboxConfig};
use serde_json::{json, Value};

/// The demo's sandbox credentials (its .env).
const CLIENT_ID: &str = "sandbox-client-id";
const SECRET: &str = "sandbox-client-secret";
const ROBOT: &str = "imRobots.dingTalkDemo";

fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    r.register(jitnode_agent::LOADER_NAME, jitnode_agent::loader());
    r
}

/// The demo app opened with its robot pointed at `endpoint`.
fn open_demo(dir: &std::path::Path, endpoint: &str) -> App {
    let overrides = BTreeMap::from([(
        "DINGTALK_OPENAPI_ENDPOINT".to_string(),
        endpoint.to_string(),
    )]);
    App::open_with(dir, false, registry(), overrides)
        .expect("the demo app opens")
        .0
}

fn link(sb: &Sandbox) -> SandboxLink {
    link_with(sb, None)
}

fn link_with(sb: &Sandbox, local: Option<std::sync::Arc<Sandbox>>) -> SandboxLink {
    SandboxLink {
        control: ControlClient::new(&sb.base_url()),
        robots: std::sync::Arc::new(|| {
            vec![RobotRef {
                full_name: ROBOT.into(),
                client_id: CLIENT_ID.into(),
            }]
        }),
        local,
    }
}

fn options(dir: &std::path::Path) -> ConsoleOptions {
    let mut o = ConsoleOptions::new(dir);
    o.agent_entry = format!("builtin:{}", jitnode_agent::LOADER_NAME);
    o
}

/// The console of `app` on loopback, with `tweak` applied to its options.
async fn serve(
    app: &App,
    dir: &std::path::Path,
    link: Option<SandboxLink>,
    tweak: impl FnOnce(&mut ConsoleOptions),
) -> Console {
    let mut o = options(dir);
    tweak(&mut o);
    Console::start(o, app.clone(), link).await.unwrap()
}

/// A copy of the demo app, its robot pointed where nothing listens, and its console
/// (options `tweak`ed, no sandbox).
async fn unlinked(tweak: impl FnOnce(&mut ConsoleOptions)) -> (tempfile::TempDir, App, Console) {
    let app_dir = jitnode_test_kit::demo::demo_app();
    let app = open_demo(app_dir.path(), "http://127.0.0.1:9");
    let console = serve(&app, app_dir.path(), None, tweak).await;
    (app_dir, app, console)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `name{labels}` -> value, from the Prometheus text format; panics on a malformed line.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(
            name.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
            "bad metric name in {line:?}"
        );
        out.insert(name.to_string(), value);
    }
    out
}

async fn scrape(base: &str) -> BTreeMap<String, f64> {
    let r = http().get(format!("{base}metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse_metrics(&r.text().await.unwrap())
}

/// Scrapes until `cond` holds on the metrics; panics with them after a minute.
async fn until_metrics(
    base: &str,
    what: &str,
    cond: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    eventually(
        Duration::from_secs(60),
        &format!("never {what}"),
        || async {
            let m = scrape(base).await;
            if cond(&m) {
                Ok(m)
            } else {
                Err(format!("{m:?}"))
            }
        },
    )
    .await
}

/// A JSON POST, as the console's page sends it.
async fn post_json(url: impl reqwest::IntoUrl, body: &Value) -> reqwest::Response {
    http().post(url).json(body).send().await.unwrap()
}

/// The status of a GET of `url`.
async fn get_status(url: impl reqwest::IntoUrl) -> reqwest::StatusCode {
    status(http().get(url)).await
}

/// The status `request` gets.
async fn status(request: reqwest::RequestBuilder) -> reqwest::StatusCode {
    request.send().await.unwrap().status()
}

/// A JSON POST that must succeed; its body.
async fn post_ok(url: impl reqwest::IntoUrl, body: &Value) -> String {
    let r = post_json(url, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// Polls `probe` every 50 ms until it gives `Ok`; after `within`, panics with `what` and
/// the last `Err`.
async fn eventually<T, Fut>(within: Duration, what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(tokio::time::Instant::now() < deadline, "{what}: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo app, started with its robot connected to `sb`.
async fn connected_demo(dir: &std::path::Path, sb: &Sandbox) -> App {
    sb.register_app(CLIENT_ID, SECRET);
    let app = open_demo(dir, &sb.base_url());
    app.start().await;
    assert!(
        sb.wait_for_connections(CLIENT_ID, 1, Duration::from_secs(10))
            .await
    );
    app
}

/// Asserts the console's state lists some gateway `what` (connections, acks).
async fn assert_gateway_has(base: &str, what: &str) {
    let s = state(base).await;
    assert!(
        s["gateway"][what].as_array().is_some_and(|a| !a.is_empty()),
        "{s}"
    );
}

/// The body of a GET of `url`.
async fn get_text(url: impl reqwest::IntoUrl) -> String {
    http().get(url).send().await.unwrap().text().await.unwrap()
}

async fn state(base: &str) -> Value {
    serde_json::from_str(&get_text(format!("{base}api/state")).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_ready_only_after_the_robot_connects() {
    let app_dir = jitnode_test_kit::demo::demo_app();
    // The gateway's port, not listening yet: the robot cannot connect until it does.
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gateway.local_addr().unwrap();
    drop(gateway);
    let app = open_demo(app_dir.path(), &format!("http://{addr}"));
    let console = serve(&app, app_dir.path(), None, |_| {}).await;
    let base = console.url();
    let c = http();

    // Before the elements start: not ready, and the robot is named.
    let r = c.get(format!("{base}readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["elements"][ROBOT]["state"], "notStarted", "{body}");
    assert_eq!(get_status(format!("{base}healthz")).await, 200);

    app.start().await;
    // Started, but the robot has no gateway to connect to.
    let r = c.get(format!("{base}readyz")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert_ne!(body["elements"][ROBOT]["state"], "ready", "{body}");

    let sb = Sandbox::start(SandboxConfig {
        bind: addr,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.register_app(CLIENT_ID, SECRET);
    // Ready exactly when the robot is connected (it retries within its backoff).
    eventually(Duration::from_secs(20), "never ready", || async {
        let r = c.get(format!("{base}readyz")).send().await.unwrap();
        let connected = !sb.connections_of(CLIENT_ID).is_empty();
        if r.status() != 200 {
            return Err(r.text().await.unwrap());
        }
        assert!(connected, "ready before the robot connected");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["elements"][ROBOT]["state"], "ready", "{body}");
        Ok(())
    })
    .await;
    app.stop(Duration::from_secs(5)).await;
    console.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_a_question_is_answered_through_the_console() {
    let app_dir = jitnode_test_kit::demo::demo_app();
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let app = connected_demo(app_dir.path(), &sb).await;
    let console = serve(&app, app_dir.path(), Some(link(&sb)), |_| {}).await;
    let base = console.url();
    let before = scrape(&base).await;
    for name in [
        "jitnode_messages_received_total",
        "jitnode_messages_acked_total",
        "jitnode_messages_answered_total",
        "jitnode_messages_failed_total",
        "jitnode_dedupe_hits_total",
        "jitnode_stream_reconnects_total",
        "jitnode_reloads_total",
        "jitnode_answer_latency_seconds_count",
        "jitnode_llm_latency_seconds_count",
        "jitnode_answer_latency_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(before.contains_key(name), "{name} missing from /metrics");
    }

    post_ok(
        format!("{base}api/chat"),
        &json!({"text": "How do I reset my password?"}),
    )
    .await;
    // The console's own view: the card ends done, with buttons.
    let card = eventually(Duration::from_secs(60), "no finished card", || async {
        let s = state(&base).await;
        let card = s["chat"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|m| m.get("card").cloned());
        card.filter(|c| c["progress"] == "done")
            .ok_or_else(|| s.to_string())
    })
    .await;
    assert!(
        card["text"].as_str().unwrap().contains("password"),
        "{card}"
    );
    assert!(card["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"] == "helpful"));

    let after = scrape(&base).await;
    let grew = |name: &str| after[name] - before.get(name).copied().unwrap_or(0.0);
    for name in [
        "jitnode_messages_received_total",
        "jitnode_messages_acked_total",
        "jitnode_messages_answered_total",
        "jitnode_answer_latency_seconds_count",
        "jitnode_llm_latency_seconds_count",
        "jitnode_card_api_calls_total{code=\"200\"}",
    ] {
        assert!(
            grew(name) >= 1.0,
            "{name} did not move: {before:?} -> {after:?}"
        );
    }
    assert!(after["jitnode_answer_latency_seconds_sum"] > 0.0);

    // The click on "helpful" lands in the feedback export.
    post_ok(
        format!("{base}api/click"),
        &json!({"cardId": card["id"], "button": "helpful"}),
    )
    .await;
    // The knowledge pane: the agent asked directly, with the passages it retrieved.
    let k: Value = serde_json::from_str(
        &post_ok(
            format!("{base}api/knowledge"),
            &json!({"agent": "aiagents.customerService", "question": "How do I reset my password?"}),
        )
        .await,
    )
    .unwrap();
    let passages = k["passages"].as_array().expect("passages");
    assert!(!passages.is_empty(), "{k}");
    assert!(
        passages[0]["relevance"].as_f64().is_some_and(|s| s > 0.0),
        "{k}"
    );
    assert!(passages.iter().any(|p| p["file"] == "faq.csv"), "{k}");
    let csv = get_text(format!("{base}api/feedback.csv")).await;
    assert!(csv.lines().count() >= 2 && csv.contains("helpful"), "{csv}");

    // In a group: the message @-mentions the robot, and its card goes to that group.
    post_ok(
        format!("{base}api/chat"),
        &json!({"text": "What is jitnode?", "group": true}),
    )
    .await;
    let t = jitnode_test_kit::robot::wait_for(
        &sb,
        "a card in the group",
        Duration::from_secs(60),
        |t| {
            t.cards.values().any(|c| {
                c.conversation_id
                    .as_deref()
                    .is_some_and(|id| id.ends_with("cidConsoleGroup"))
            })
        },
    )
    .await;
    assert!(t.cards.len() >= 2);
    let s = state(&base).await;
    assert!(
        s["chat"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["who"] == "user" && m["group"] == true),
        "{s}"
    );

    app.stop(Duration::from_secs(5)).await;
    console.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_with_a_token_refuses_requests_without_it_and_from_other_sites() {
    // Loopback only in tests: the same guard as beyond loopback, demanded explicitly.
    let (_app_dir, _app, console) = unlinked(|o| o.require_token = true).await;
    let token = console.token().expect("a token").to_string();
    let base = console.url();
    let c = http();
    let get = |path: &str| c.get(format!("{base}{path}"));
    let state_with_token = || get("api/state").bearer_auth(&token);
    let chat_with_token = || c.post(format!("{base}api/chat")).bearer_auth(&token);

    assert_eq!(status(get("api/state")).await, 401);
    assert_eq!(status(get("")).await, 401);
    assert_eq!(status(get("metrics")).await, 401);
    assert_eq!(status(get("api/state").bearer_auth("wrong")).await, 401);
    // Liveness carries nothing and probes may not hold the token.
    assert_eq!(status(get("healthz")).await, 200);
    assert_eq!(status(state_with_token()).await, 200);
    // The login URL sets the cookie; the cookie alone then works.
    let r = c.get(console.login_url()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(status(get("api/state").header("cookie", &pair)).await, 200);
    assert_eq!(status(get("login?token=nope")).await, 401);

    // Another site's page, even holding the cookie, is refused; the console's own is not.
    let foreign = state_with_token().header("origin", "http://evil.example");
    assert_eq!(status(foreign).await, 403);
    let own = format!("http://{}", console.addr());
    assert_eq!(status(state_with_token().header("origin", &own)).await, 200);
    // DNS rebinding: a name that is not this machine's.
    assert_eq!(
        status(state_with_token().header("host", "evil.example")).await,
        403
    );
    // A form post (no JSON) never reaches a handler.
    let form = chat_with_token()
        .header("content-type", "application/x-www-form-urlencoded")
        .body("text=hi");
    assert_eq!(status(form).await, 415);
    // Without the sandbox the console is read-only.
    assert_eq!(
        status(chat_with_token().json(&json!({"text": "hi"}))).await,
        403
    );
    console.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_console_needs_no_token_and_shows_the_tree_with_secrets_masked() {
    let (_app_dir, _app, console) = unlinked(|_| {}).await;
    assert!(console.token().is_none());
    let s = state(&console.url()).await;
    let names: Vec<&str> = s["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fullName"].as_str().unwrap())
        .collect();
    let meta = names.iter().position(|n| *n == "imRobots.meta").unwrap();
    let ty = names
        .iter()
        .position(|n| *n == "imRobots.dingTalkStreamType")
        .unwrap();
    let inst = names.iter().position(|n| *n == ROBOT).unwrap();
    assert!(
        meta < ty && ty < inst,
        "Meta > Type > instance order: {names:?}"
    );
    let robot = &s["elements"][inst];
    assert_eq!(robot["kind"], "instance");
    assert_eq!(robot["loadTime"], "afterAppInit");
    assert_eq!(robot["state"], "not started", "{robot}");
    assert_eq!(robot["config"]["clientSecret"], "••••");
    assert_eq!(robot["config"]["clientId"], "{{DINGTALK_CLIENT_ID}}");
    assert!(!s.to_string().contains(SECRET));
    assert_eq!(s["readOnly"], true);
    console.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_buttons_cut_the_connection_and_fail_a_card_call() {
    let app_dir = jitnode_test_kit::demo::demo_app();
    let sb = std::sync::Arc::new(Sandbox::start(SandboxConfig::default()).await.unwrap());
    let app = connected_demo(app_dir.path(), &sb).await;
    let first = sb.connections_of(CLIENT_ID)[0].connection_id.clone();
    let console = serve(
        &app,
        app_dir.path(),
        Some(link_with(&sb, Some(sb.clone()))),
        |_| {},
    )
    .await;
    let base = console.url();
    let fault = |kind: &'static str| {
        let url = format!("{base}api/fault");
        async move { post_json(url, &json!({"kind": kind})).await }
    };
    let before = scrape(&base).await;

    // Drop: the robot opens a new connection, counted as a reconnect.
    assert_eq!(fault("drop").await.status(), 200);
    eventually(Duration::from_secs(20), "no new connection", || async {
        let now = sb.connections_of(CLIENT_ID);
        if now.iter().any(|c| c.connection_id != first) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    assert_gateway_has(&base, "connections").await;

    // Card 403: the next card call fails, and /metrics counts it by code.
    assert_eq!(fault("card403").await.status(), 200);
    post_ok(
        format!("{base}api/chat"),
        &json!({"text": "How do I reset my password?"}),
    )
    .await;
    let code403 = "jitnode_card_api_calls_total{code=\"403\"}";
    let count = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let reconnects = "jitnode_stream_reconnects_total";
    until_metrics(&base, "a 403 and a reconnect counted", |m| {
        count(m, code403) > count(&before, code403)
            && count(m, reconnects) > count(&before, reconnects)
    })
    .await;
    // An ACKed message shows in the Wire pane's frames; redelivering it is a dedupe hit.
    assert_gateway_has(&base, "acks").await;
    assert_eq!(fault("redeliver").await.status(), 200);
    let hits = "jitnode_dedupe_hits_total";
    until_metrics(&base, "a dedupe hit", |m| {
        count(m, hits) > count(&before, hits)
    })
    .await;
    app.stop(Duration::from_secs(5)).await;
    console.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_only_serves_the_probes_and_metrics_but_no_console() {
    let (_app_dir, _app, console) = unlinked(|o| o.operators_only = true).await;
    let base = console.url();
    assert_eq!(get_status(format!("{base}healthz")).await, 200);
    assert_eq!(get_status(format!("{base}readyz")).await, 503);
    assert!(scrape(&base).await.contains_key("jitnode_reloads_total"));
    assert_eq!(get_status(&base).await, 404);
    assert_eq!(get_status(format!("{base}api/state")).await, 404);
    console.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_shows_as_an_event_and_in_the_metrics() {
    let app_dir = jitnode_test_kit::demo::demo_app();
    let app = open_demo(app_dir.path(), "http://127.0.0.1:9");
    app.start().await;
    let console = serve(&app, app_dir.path(), None, |_| {}).await;
    let base = console.url();
    let before = scrape(&base).await;
    let e_json = app_dir.path().join("elements/demo/hello/e.json");
    let text = std::fs::read_to_string(&e_json).unwrap();
    std::fs::write(&e_json, text.replace("Hello echo", "Hello echo, edited")).unwrap();
    let mut reloader = jitnode_host::Reloader::new(app_dir.path(), app.clone());
    let report = reloader.reload_from_disk().await;
    assert!(
        report.restarted.contains(&"demo.hello".to_string()),
        "{report:?}"
    );

    eventually(Duration::from_secs(10), "no reload event", || async {
        let events = state(&base).await["events"].to_string();
        if events.contains("demo.hello reloaded") {
            Ok(())
        } else {
            Err(events)
        }
    })
    .await;
    let reloads = "jitnode_reloads_total";
    until_metrics(&base, "a reload counted", |m| m[reloads] > before[reloads]).await;
    app.stop(Duration::from_secs(5)).await;
    console.shutdown().await;
}
