//! The built `jitnode` binary end to end, on copies of the demo app and on bad fixtures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn jitnode() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jitnode"));
    // The demo's variables must come from the app's .env, not from whoever runs the tests.
    c.env_remove("DINGTALK_CLIENT_ID")
        .env_remove("DINGTALK_CLIENT_SECRET")
        .env_remove("DINGTALK_CARD_MODE")
        .env_remove("DINGTALK_CARD_TEMPLATE_ID")
        .env_remove("LLM_BASE_URL")
        .env_remove("RUST_LOG")
        // Nothing in a test may reach the real DingTalk: without --sandbox the demo robot
        // talks to a loopback port where nothing listens (`run --sandbox` overrides this).
        .env("DINGTALK_OPENAPI_ENDPOINT", "http://127.0.0.1:9")
        // Native plugins compile their dependencies once for all tests.
        .env("JITNODE_NATIVE_TARGET_DIR", native_target());
    c
}

fn native_target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-native")
}

use jitnode_test_kit::demo::{copy_dir, demo_app};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("the jitnode binary runs");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

/// Runs `cmd`, expecting success; returns its stdout.
fn succeeds(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

/// `jitnode build` of `app`, expecting success; returns the stdout.
fn build(app: &Path) -> String {
    succeeds(jitnode().arg("build").arg(app))
}

/// A fresh copy of the demo app after `jitnode build`, and what the build printed.
fn built_demo() -> (tempfile::TempDir, String) {
    let app = demo_app();
    let stdout = build(app.path());
    (app, stdout)
}

/// [`run_in`], expecting success; returns the stdout.
fn succeeds_in(app: &Path, args: &[&str]) -> String {
    succeeds(jitnode().current_dir(app).args(args))
}

/// [`call_in`], expecting success; returns the stdout.
fn call_ok(app: &Path, element: &str, function: &str, args: &str) -> String {
    succeeds_in(app, &["call", element, function, args])
}

/// [`call_ok`] in a fresh copy of the demo app.
fn call_in_demo(element: &str, function: &str, args: &str) -> String {
    let app = demo_app();
    call_ok(app.path(), element, function, args)
}

/// `jitnode ask --robot robot question` in the app directory `app`.
fn ask_robot(app: &Path, robot: &str, question: &str) -> (Output, String, String) {
    run_in(app, &["ask", "--robot", robot, question])
}

/// Runs `jitnode` with `args` in the app directory `app`.
fn run_in(app: &Path, args: &[&str]) -> (Output, String, String) {
    run(jitnode().current_dir(app).args(args))
}

/// Runs `cmd`, expecting exit code 1 and `want` in its stderr; returns the stderr.
fn fails_with(cmd: &mut Command, want: &str) -> String {
    let (out, _, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(want), "{stderr}");
    stderr
}

#[test]
fn call_demo_hello_echo_prints_the_result() {
    let app = demo_app();
    let stdout = succeeds(jitnode().args(["call", "--app"]).arg(app.path()).args([
        "demo.hello",
        "echo",
        r#"{"x":1}"#,
    ]));
    assert_eq!(stdout, "{\"x\":1}\n");
}

#[test]
fn call_streams_chunks_before_the_result() {
    let stdout = call_in_demo("demo.hello", "stream", r#"{"text":"good morning world"}"#);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            r#""good""#,
            r#""morning""#,
            r#""world""#,
            r#""good morning world""#
        ]
    );
}

/// The built-in agent through `jitnode call`: chunks stream as JSON lines (retrieval
/// events, then answer text), and the last line is the result with its sources.
#[test]
fn call_the_agent_streams_and_returns_an_answer_with_sources() {
    let stdout = call_in_demo(
        "aiagents.customerService",
        "run",
        r#"{"question": "如何安装 jitnode？", "chatId": "t1"}"#,
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert!(lines.len() > 2, "{stdout}");
    let (result, chunks) = lines.split_last().unwrap();
    assert_eq!(chunks[0]["type"], "TOOL_CALL_START", "{stdout}");
    let text: String = chunks
        .iter()
        .filter_map(jitnode_robot::answer_text)
        .collect();
    assert_eq!(text, result["answer"].as_str().unwrap());
    assert!(result["sources"][0]["file"]
        .as_str()
        .unwrap()
        .starts_with("install"));
}

#[test]
fn call_errors_list_what_exists() {
    let app = demo_app();
    let call = |args: &[&str]| {
        let mut c = jitnode();
        c.current_dir(app.path()).arg("call").args(args);
        c
    };
    fails_with(
        &mut call(&["demo.hello", "shout"]),
        "demo.hello has no function \"shout\"; it offers: echo(any JSON), stream(text: Stext)",
    );
    fails_with(
        &mut call(&["demo.nobody", "echo"]),
        "no element named \"demo.nobody\"; elements with a loader: aiagents.customerService, demo.hello, demo.keywordReply, imRobots.dingTalkDemo",
    );
    fails_with(
        &mut call(&["demo.hello", "stream", r#"{"text": 3}"#]),
        "argument \"text\" must be a string, got a number",
    );
    fails_with(
        &mut call(&["aiagents.customerService", "run", r#"{"chatId": "c1"}"#]),
        "missing required argument \"question\"; expected run(question: Stext, chatId?: Stext)",
    );
    fails_with(
        &mut call(&["demo.hello", "echo", "{not json"]),
        "the arguments are not valid JSON",
    );
}

#[test]
fn check_passes_on_the_demo_app() {
    let app = demo_app();
    let stdout = succeeds(jitnode().arg("check").arg(app.path()));
    assert!(stdout.contains("ok: 11 elements, no problems"), "{stdout}");
}

#[test]
fn check_without_the_env_file_names_the_missing_variables() {
    let app = demo_app();
    std::fs::remove_file(app.path().join(".env")).unwrap();
    let (out, stdout, _) = run(jitnode().arg("check").arg(app.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("DINGTALK_CLIENT_ID"), "{stdout}");
    assert!(stdout.contains("DINGTALK_CLIENT_SECRET"), "{stdout}");
    assert!(stdout.contains("config.json"), "{stdout}");
}

#[test]
fn check_reports_every_problem_of_a_bad_app_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("elements");
    let write = |rel: &str, file: &str, body: &str| {
        std::fs::create_dir_all(root.join(rel)).unwrap();
        std::fs::write(root.join(rel).join(file), body).unwrap();
    };
    write("x/meta", "e.json", r#"{"type": ""}"#);
    write("x/broken", "e.json", "{\"type\": \"x.meta\",\n  oops}");
    write("x/orphan", "e.json", r#"{"type": "x.missingType"}"#);
    write(
        "x/when",
        "e.json",
        r#"{"type": "x.meta", "backendLoadTime": "atNoon"}"#,
    );
    let (out, stdout, _) = run(jitnode().arg("check").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("broken"), "{stdout}");
    assert!(stdout.contains("x.missingType"), "{stdout}");
    assert!(stdout.contains("atNoon"), "{stdout}");
    assert!(stdout.contains("3 problems"), "{stdout}");
}

#[test]
fn tree_shows_families_with_load_time_and_loader() {
    let app = demo_app();
    let stdout = succeeds(jitnode().arg("tree").arg(app.path()));
    assert!(stdout.contains("imRobots.meta [Meta]"), "{stdout}");
    assert!(
        stdout.contains(
            "    imRobots.dingTalkDemo [instance] afterAppInit, loaded by imRobots.dingTalkStreamType (builtin:dingTalkStream)"
        ),
        "{stdout}"
    );
}

#[test]
fn build_reports_rebuilt_then_reused() {
    let (app, stdout) = built_demo();
    assert!(
        stdout.starts_with("dist/ fully rebuilt: 11 elements, 11 rebuilt, 0 reused"),
        "{stdout}"
    );
    std::fs::write(
        app.path().join("elements/demo/hello/e.json"),
        r#"{"type": "demo.echoType", "title": "changed"}"#,
    )
    .unwrap();
    let stdout = build(app.path());
    assert!(stdout.contains("1 rebuilt, 10 reused"), "{stdout}");
    assert!(stdout.contains("rebuilt: demo.hello\n"), "{stdout}");
}

/// Starts `jitnode run`, waits until it says it is running, sends `signal`, and returns its
/// exit status and everything it logged.
fn run_until_signal(args: &[&str], app: &Path, signal: &str) -> (std::process::ExitStatus, String) {
    let mut host = Running::start(jitnode().arg("run").arg(app).args(args));
    host.wait_for("run coming up", is_summary);
    host.stop_with(signal)
}

/// The README's main job: `run --sandbox` starts the sandbox in-process, the demo robot
/// connects to it, and `ask` from the app directory gets a streamed, knowledge-based answer
/// in a card with feedback buttons; `click` stores the rating. Then SIGTERM stops it all.
#[test]
fn run_sandbox_answers_a_question_and_a_click_is_stored() {
    let app = demo_app();
    let mut host = Running::start(
        jitnode()
            .arg("run")
            .arg("--sandbox")
            .current_dir(app.path()),
    );
    host.wait_for("run coming up", is_summary);
    assert!(
        host.log.contains("loaded element=imRobots.dingTalkDemo"),
        "{}",
        host.log
    );

    let (out, stdout, stderr) = run_in(app.path(), &["ask", "How do I install jitnode-rs?"]);
    let (clicked, click_out, click_err) = run_in(app.path(), &["click", "helpful"]);
    let (fb, feedback, fb_err) = run_in(app.path(), &["feedback", "--format", "json"]);
    let (status, log) = host.stop();

    assert!(out.status.success(), "ask failed: {stderr}\n{log}");
    assert!(stdout.contains("install.en.md"), "{stdout}");
    assert!(
        stdout.contains("very_helpful | helpful | unhelpful | very_unhelpful"),
        "{stdout}"
    );
    assert!(
        clicked.status.success(),
        "click failed: {click_err}\n{click_out}"
    );
    assert!(fb.status.success(), "{fb_err}");
    assert!(feedback.contains("\"helpful\""), "{feedback}");
    assert!(
        feedback.contains("How do I install jitnode-rs?"),
        "{feedback}"
    );
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(
        log.contains("stopped element=imRobots.dingTalkDemo"),
        "{log}"
    );
    // The sandbox credentials come from .env; the secret never reaches the log.
    assert!(!log.contains("sandbox-client-secret"), "{log}");
}

/// Standard card mode: the log says once why its cards have no buttons and what to switch to.
#[test]
fn standard_card_mode_says_once_why_cards_have_no_buttons() {
    let app = demo_app();
    let env = app.path().join(".env");
    let mut text = std::fs::read_to_string(&env).unwrap();
    text.push_str("DINGTALK_CARD_MODE=standard\n");
    std::fs::write(&env, text).unwrap();
    let (status, log) = run_until_signal(&["--sandbox"], app.path(), "-TERM");
    assert!(status.success(), "{log}");
    assert_eq!(
        log.matches(jitnode_robot::reply::STANDARD_MODE_NOTE)
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn run_from_dist_needs_no_sources_and_stops_on_sigint() {
    let (app, _) = built_demo();
    std::fs::remove_dir_all(app.path().join("elements")).unwrap();
    let (status, log) = run_until_signal(&["--from-dist"], app.path(), "-INT");
    assert!(status.success(), "{log}");
    assert!(log.contains("loaded element=demo.hello"), "{log}");
    assert!(log.contains("SIGINT received"), "{log}");
    assert!(log.contains("stopped element=demo.hello"), "{log}");
}

/// PATH without any folder holding a `cargo`, for commands that must not build.
fn path_without_cargo() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("cargo").exists())
        .collect();
    std::env::join_paths(kept).unwrap()
}

/// `jitnode` as on a server without cargo: none on PATH, and no `$CARGO` either.
fn jitnode_without_cargo() -> Command {
    let mut c = jitnode();
    c.env("PATH", path_without_cargo()).env_remove("CARGO");
    c
}

/// The issue's three steps: `jitnode build` in a clone, copy only dist/ and .env to an
/// empty folder, `jitnode call` there, with no cargo to be found. Then the same folder
/// with a tampered library, and without the record, fails with one clear error each.
#[test]
fn a_deployed_dist_runs_its_native_type_without_cargo_or_sources() {
    let (app, stdout) = built_demo();
    assert!(
        stdout.contains("native demo.keywordReplyType: built dist/native/demo.keywordReplyType/libkeyword_reply-"),
        "{stdout}"
    );

    let server = tempfile::tempdir().unwrap();
    copy_dir(&app.path().join("dist"), &server.path().join("dist"));
    std::fs::copy(app.path().join(".env"), server.path().join(".env")).unwrap();
    let call = || {
        let mut c = jitnode_without_cargo();
        c.current_dir(server.path()).args([
            "call",
            "--app",
            ".",
            "demo.keywordReply",
            "reply",
            r#"{"question":"refund"}"#,
        ]);
        c
    };
    let stdout = succeeds(&mut call());
    let reply: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(reply["trigger"], "refund", "{stdout}");
    assert!(reply["answer"]
        .as_str()
        .unwrap()
        .starts_with("Refunds are accepted"));

    // `call --from-dist` where the sources are: no cargo needed either.
    let stdout = succeeds(jitnode_without_cargo().current_dir(app.path()).args([
        "call",
        "--from-dist",
        "demo.keywordReply",
        "reply",
        r#"{"question":"refund"}"#,
    ]));
    assert!(stdout.contains("\"trigger\":\"refund\""), "{stdout}");

    let native = server.path().join("dist/native/demo.keywordReplyType");
    let library = std::fs::read_dir(&native)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .unwrap();
    let mut bytes = std::fs::read(&library).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&library, &bytes).unwrap();
    let stderr = fails_with(
        &mut call(),
        "demo.keywordReply: loader native:./plugin failed: demo.keywordReplyType: the library recorded in ",
    );
    assert!(stderr.contains("does not match the record"), "{stderr}");

    std::fs::remove_file(native.join("library.json")).unwrap();
    let stderr = fails_with(
        &mut call(),
        "demo.keywordReplyType: dist/ holds no built library for this native Type",
    );
    assert!(
        stderr.contains("run `jitnode build` where the element sources are"),
        "{stderr}"
    );
}

/// Library copies in the app's dist/native/demo.keywordReplyType.
fn library_copies(app: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(app.join("dist/native/demo.keywordReplyType"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(std::env::consts::DLL_SUFFIX))
        .collect();
    v.sort();
    v
}

/// Two rebuilds of the plugin while this process (a running host) has the first copy
/// loaded: the copy it holds and the newest stay, the one in between (whose builder has
/// exited) is removed. A build with nothing changed runs no cargo.
#[test]
fn plugin_rebuilds_remove_copies_no_record_or_running_host_uses() {
    let (app, _) = built_demo();
    let first = library_copies(app.path());
    assert_eq!(first.len(), 1, "{first:?}");

    // This test process plays a running host: it loads the first copy from dist/.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tree = jitnode_dist::load(app.path()).unwrap();
    let holder =
        jitnode_native::NativeLoader::new(jitnode_native::NativeOptions::for_dist(app.path()));
    let held = rt
        .block_on(holder.plugin_for(tree.get("demo.keywordReplyType").unwrap()))
        .expect("the first copy loads");
    assert!(held.path().ends_with(&first[0]));

    let lib_rs = app
        .path()
        .join("elements/demo/keywordReplyType/plugin/src/lib.rs");
    let code = std::fs::read_to_string(&lib_rs).unwrap();
    let mut copies = vec![first[0].clone()];
    for n in 1..=2 {
        // New code, not just a comment: the library's bytes (and so its name) change.
        std::fs::write(
            &lib_rs,
            format!("{code}\n#[no_mangle]\npub extern \"C\" fn jitnode_test_marker() -> u32 {{ {n} }}\n"),
        )
        .unwrap();
        let stdout = build(app.path());
        assert!(
            stdout.contains("native demo.keywordReplyType: built "),
            "{stdout}"
        );
        let now = library_copies(app.path());
        let newest = now
            .iter()
            .find(|c| !copies.contains(c))
            .expect("a new copy")
            .clone();
        copies.push(newest);
        if n == 2 {
            assert!(stdout.contains(", removed 1 unused copy"), "{stdout}");
        }
    }
    let mut live = vec![copies[0].clone(), copies[2].clone()];
    live.sort();
    assert_eq!(library_copies(app.path()), live, "all built: {copies:?}");

    let stdout = build(app.path());
    assert!(
        stdout.contains("native demo.keywordReplyType: up to date: "),
        "{stdout}"
    );
    assert_eq!(library_copies(app.path()), live);
}

/// The demo knowledge base's own steps for adding an agent: a folder with an e.json and a
/// knowledge/ folder, no config.json. The schema's defaults make it work, and `check` says
/// so before anything runs.
#[test]
fn an_agent_with_only_a_knowledge_folder_answers() {
    let app = demo_app();
    let helper = app.path().join("elements/aiagents/salesHelper");
    std::fs::create_dir_all(helper.join("knowledge")).unwrap();
    std::fs::write(helper.join("e.json"), r#"{"type": "aiagents.ragType"}"#).unwrap();
    std::fs::write(
        helper.join("knowledge/prices.md"),
        "# Prices\n\nThe team plan costs 30 euros a month, billed yearly.\n",
    )
    .unwrap();
    succeeds(jitnode().arg("check").arg(app.path()));
    let stdout = call_ok(
        app.path(),
        "aiagents.salesHelper",
        "run",
        r#"{"question": "how much is the team plan?"}"#,
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a result line")).unwrap();
    assert_eq!(result["sources"][0]["file"], "prices.md", "{stdout}");
    assert!(
        result["answer"].as_str().unwrap().contains("30 euros"),
        "{stdout}"
    );
}

// ------------------------------------------------------------------ several robots

/// A `jitnode run` in the background whose log lines the test reads as they come.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: String,
}

/// The longest a readiness signal may take before the test fails (it is a bound on
/// failure, never waited out when things work).
const SIGNAL_WAIT: Duration = Duration::from_secs(120);

impl Running {
    fn start(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            log: String::new(),
        }
    }

    /// Waits for the first log line (after those already read) that `pick` accepts.
    fn wait_for(&mut self, what: &str, pick: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + SIGNAL_WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if pick(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line for {what}:\n{}", self.log),
            }
        }
    }

    /// SIGTERM, then everything it logged until it exited.
    fn stop(self) -> (std::process::ExitStatus, String) {
        self.stop_with("-TERM")
    }

    /// `signal` (as `kill` takes it), then everything it logged until it exited.
    fn stop_with(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv() {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status, self.log)
    }
}

/// Adds robot instance `imRobots.<name>` to the app: a copy of the demo robot reading
/// `<VAR>_CLIENT_ID` / `<VAR>_CLIENT_SECRET`, both set in the app's .env.
fn add_robot(app: &Path, name: &str, var: &str, client_id: &str) {
    let mut env = std::fs::read_to_string(app.join(".env")).unwrap();
    env.push_str(&format!(
        "\n{var}_CLIENT_ID={client_id}\n{var}_CLIENT_SECRET={client_id}-secret\n"
    ));
    std::fs::write(app.join(".env"), env).unwrap();
    let demo = app.join("elements/imRobots/dingTalkDemo");
    let dir = app.join("elements/imRobots").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(demo.join("config.json"))
        .unwrap()
        .replace("DINGTALK_CLIENT_", &format!("{var}_CLIENT_"));
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::copy(demo.join("e.json"), dir.join("e.json")).unwrap();
}

/// The sandbox state file of a running `run --sandbox`.
fn sandbox_state(app: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(app.join("data/sandbox.json")).unwrap();
    assert!(!text.contains("secret"), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// (fullName, clientId) of each robot the state file lists.
fn robots_listed(state: &serde_json::Value) -> Vec<(&str, &str)> {
    state["robots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["fullName"].as_str().unwrap(),
                r["clientId"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The cards the robots sent, read through the sandbox's control API: (clientId,
/// conversation) of each.
fn cards_sent(state: &serde_json::Value) -> Vec<(String, Option<String>)> {
    let url = state["controlUrl"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt
        .block_on(jitnode_sandbox::ControlClient::new(&url).transcript())
        .unwrap();
    t.cards
        .values()
        .map(|c| (c.client_id.clone(), c.conversation_id.clone()))
        .collect()
}

/// A card of `client_id`'s robot in its one-to-one chat with user001, as [`cards_sent`]
/// lists it.
fn to_user001(client_id: &str) -> (String, Option<String>) {
    (client_id.to_string(), Some("IM_ROBOT.user001".to_string()))
}

fn is_summary(line: &str) -> bool {
    line.contains("is running")
}

/// Two robot instances under `run --sandbox`: both are registered and listed (no secret),
/// each answers its own question in its own one-to-one chat, `ask` without `--robot` says
/// which robots there are, and `click --robot` presses the right robot's card.
#[test]
fn run_sandbox_serves_every_robot_of_the_app() {
    let app = demo_app();
    add_robot(app.path(), "dingTalkSecond", "SECOND", "second-id");
    let mut host = Running::start(jitnode().args(["run", "--sandbox"]).current_dir(app.path()));
    let summary = host.wait_for("the run summary", is_summary);
    assert!(summary.contains("not_ready=0"), "{}", host.log);

    let state = sandbox_state(app.path());
    assert_eq!(
        robots_listed(&state),
        [
            ("imRobots.dingTalkDemo", "sandbox-client-id"),
            ("imRobots.dingTalkSecond", "second-id"),
        ]
    );
    let (unpicked, _, unpicked_err) = run_in(app.path(), &["ask", "How do I install jitnode-rs?"]);
    let (first, first_out, first_err) = ask_robot(
        app.path(),
        "imRobots.dingTalkDemo",
        "How do I install jitnode-rs?",
    );
    let (second, second_out, second_err) = ask_robot(
        app.path(),
        "imRobots.dingTalkSecond",
        "How does hot reload work?",
    );
    let (clicked, click_out, click_err) = run_in(
        app.path(),
        &["click", "--robot", "imRobots.dingTalkSecond", "helpful"],
    );
    let mut cards = cards_sent(&state);
    let (fb, feedback, fb_err) = run_in(app.path(), &["feedback", "--format", "json"]);
    let (status, log) = host.stop();

    assert!(!unpicked.status.success());
    assert!(
        unpicked_err.contains("imRobots.dingTalkDemo")
            && unpicked_err.contains("imRobots.dingTalkSecond")
            && unpicked_err.contains("--robot"),
        "{unpicked_err}"
    );
    assert!(first.status.success(), "{first_err}\n{log}");
    assert!(first_out.contains("install.en.md"), "{first_out}");
    assert!(second.status.success(), "{second_err}\n{log}");
    assert!(second_out.contains("reload.en.md"), "{second_out}");
    assert!(!second_out.contains("install.en.md"), "{second_out}");
    assert!(clicked.status.success(), "{click_err}\n{click_out}");
    // One card per robot, each from that robot's app into the user's chat with it.
    cards.sort();
    assert_eq!(
        cards,
        [to_user001("sandbox-client-id"), to_user001("second-id")]
    );
    // The click rated the second robot's answer, not the first one's.
    assert!(fb.status.success(), "{fb_err}");
    let ratings: serde_json::Value = serde_json::from_str(&feedback).unwrap();
    let rated = ratings.as_array().unwrap();
    assert_eq!(rated.len(), 1, "{feedback}");
    assert_eq!(rated[0]["robot"], "imRobots.dingTalkSecond", "{feedback}");
    assert_eq!(
        rated[0]["question"], "How does hot reload work?",
        "{feedback}"
    );
    assert_eq!(rated[0]["rating"], "helpful", "{feedback}");
    // The user's one-to-one chat with the second robot, not the one with the first.
    assert_eq!(
        rated[0]["conversationId"], "cidp2puser001.second-id==",
        "{feedback}"
    );
    assert!(status.success(), "{log}");
    assert!(!log.contains("second-id-secret"), "{log}");
}

/// A robot added while `run --sandbox --watch` runs is registered with the sandbox before
/// it connects, listed in the state file, and answers, without a restart.
#[test]
fn run_sandbox_watch_registers_a_robot_added_while_running() {
    let app = demo_app();
    let mut host = Running::start(
        jitnode()
            .args(["run", "--sandbox", "--watch"])
            .current_dir(app.path()),
    );
    host.wait_for("the run summary", is_summary);
    host.wait_for("the watcher", |l| l.contains("watching"));
    add_robot(app.path(), "dingTalkThird", "THIRD", "third-id");
    host.wait_for("the third robot ready", |l| {
        l.contains("element=imRobots.dingTalkThird")
            && l.contains(" ready")
            && !l.contains("not ready")
    });
    let state = sandbox_state(app.path());
    assert_eq!(
        robots_listed(&state),
        [
            ("imRobots.dingTalkDemo", "sandbox-client-id"),
            ("imRobots.dingTalkThird", "third-id"),
        ]
    );
    let (third, third_out, third_err) = ask_robot(
        app.path(),
        "imRobots.dingTalkThird",
        "How do I install jitnode-rs?",
    );
    let cards = cards_sent(&state);
    let (status, log) = host.stop();
    assert!(third.status.success(), "{third_err}\n{log}");
    assert!(third_out.contains("install.en.md"), "{third_out}");
    assert_eq!(cards, [to_user001("third-id")]);
    assert!(log.contains("sandbox: robot registered"), "{log}");
    // Registered before it connected: never refused on the way.
    assert!(!log.contains("refused the credentials"), "{log}");
    assert!(status.success(), "{log}");
}

/// A robot whose credentials the gateway refuses has started, but the run summary counts
/// it as not ready and names it with the reason (the gateway here is a sandbox that knows
/// the demo's clientId with another secret).
#[test]
fn run_names_a_robot_whose_credentials_are_refused() {
    let app = demo_app();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sb = rt
        .block_on(jitnode_sandbox::Sandbox::start(
            jitnode_sandbox::SandboxConfig::default(),
        ))
        .unwrap();
    sb.register_app("sandbox-client-id", "not-the-demo-secret");
    let mut host = Running::start(
        jitnode()
            .arg("run")
            .arg(app.path())
            .env("DINGTALK_OPENAPI_ENDPOINT", sb.base_url()),
    );
    let summary = host.wait_for("the run summary", is_summary);
    let (status, log) = host.stop();
    assert!(summary.contains("failed=0"), "{log}");
    assert!(summary.contains("not_ready=1"), "{log}");
    assert!(
        summary.contains("not ready: imRobots.dingTalkDemo"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("element=imRobots.dingTalkDemo")
            && l.contains("not ready: bad credentials: DingTalk refused the credentials of clientId sandbox-client-id")),
        "{log}"
    );
    assert!(!log.contains("sandbox-client-secret"), "{log}");
    assert!(status.success(), "{log}");
    rt.block_on(sb.shutdown());
}

// ------------------------------------------------------------------ the console in Chromium

/// Waits for the element `selector` names, then clicks it.
async fn click_on(b: &jitnode_test_kit::webdriver::Browser, selector: &str, wait: Duration) {
    let element = b.wait_for(selector, wait).await.unwrap();
    b.click(&element).await.unwrap();
}

/// The console of `run --sandbox` in a real headless Chromium: the tree, a question whose
/// card streams, a click on "helpful" and its feedback row. Saves screenshots under
/// target/.
#[test]
fn the_console_in_chromium_chats_with_the_robot_and_records_feedback() {
    use jitnode_test_kit::webdriver::Browser;

    let app = demo_app();
    let mut running = Running::start(jitnode().current_dir(app.path()).args([
        "run",
        "--sandbox",
        "--console",
        "127.0.0.1:0",
    ]));
    let line = running.wait_for("the console's URL", |l| l.contains("console serving"));
    let url = line
        .split("url=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("url= in the log line")
        .to_string();
    running.wait_for("the app running", |l| l.contains("is running"));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let texts = rt.block_on(async {
        let b = Browser::start(1280, 900)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let wait = Duration::from_secs(60);
        b.goto(&url).await.unwrap();
        // 1. The tree shows the robot instance.
        let row = b
            .wait_for(r#"tr[data-name="imRobots.dingTalkDemo"]"#, wait)
            .await
            .unwrap();
        let text = b.text(&row).await.unwrap();
        assert!(
            text.contains("imRobots.dingTalkDemo") && text.contains("running"),
            "{text}"
        );
        b.click(&row).await.unwrap();
        b.wait_for("#config", wait).await.unwrap();
        b.screenshot(&shots.join("console-elements.png"))
            .await
            .unwrap();

        // 2. Ask a question as a DingTalk user.
        click_on(&b, r#"nav button[data-pane="chat"]"#, wait).await;
        let q = b.wait_for("#question", wait).await.unwrap();
        b.type_into(&q, "How do I reset my password?")
            .await
            .unwrap();
        click_on(&b, "#send", wait).await;

        // 3. The card streams, then ends with its buttons.
        b.wait_for(
            r#".card[data-progress="done"] button[data-button="helpful"]"#,
            wait,
        )
        .await
        .unwrap();
        let seen = b
            .execute("return Object.values(window.jitnodeCardTexts)[0] || [];")
            .await
            .unwrap();
        let card = b.text_of(".card").await.unwrap();
        assert!(card.contains("password"), "{card}");
        b.screenshot(&shots.join("console.png")).await.unwrap();

        // 4. Click "helpful"; 5. the feedback row appears.
        click_on(&b, r#"button[data-button="helpful"]"#, wait).await;
        click_on(&b, r#"nav button[data-pane="feedback"]"#, wait).await;
        let row = b.wait_for("tr.feedback-row", wait).await.unwrap();
        let text = b.text(&row).await.unwrap();
        assert!(
            text.contains("helpful") && text.contains("How do I reset my password?"),
            "{text}"
        );
        b.screenshot(&shots.join("console-feedback.png"))
            .await
            .unwrap();

        // The Wire pane: the question's frame, ACKed by the robot, and the fault buttons.
        click_on(&b, r#"nav button[data-pane="wire"]"#, wait).await;
        b.wait_for("#acks tr:nth-child(2)", wait).await.unwrap();
        let acks = b.text_of("#acks").await.unwrap();
        assert!(
            acks.contains("/v1.0/im/bot/messages/get") && acks.contains("200"),
            "{acks}"
        );
        b.wait_for(r#"#faults button[data-fault="drop"]"#, wait)
            .await
            .unwrap();
        b.screenshot(&shots.join("console-wire.png")).await.unwrap();
        b.close().await;
        seen
    });
    let texts: Vec<String> = texts
        .as_array()
        .expect("the page's list of card texts")
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_string())
        .collect();
    let (last, before) = texts.split_last().expect("the card was seen");
    let mut distinct: Vec<&String> = before.iter().filter(|t| *t != last).collect();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "the card did not stream: texts seen {texts:#?}"
    );
    let (status, log) = running.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("sandbox-client-secret"), "{log}");
}
