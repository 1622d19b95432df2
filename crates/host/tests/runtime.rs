//! The host runtime against real element trees (written to a temp dir and resolved by
//! jitnode-element), with test-only loaders that record what happens.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_element::{load_tree, AppTree, Env};
use jitnode_host::{
    loader_fn, App, BoxError, CallError, ChunkSink, ElementRuntime, FnRuntime, LoadError,
    LookupError, Registry,
};
use serde_json::{json, Value};

mod common;
use common::register_logged;

fn write(root: &Path, rel: &str, file: &str, text: &str) {
    let dir = root.join(rel);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

fn el(root: &Path, rel: &str, ejson: Value) {
    write(root, rel, "e.json", &ejson.to_string());
}

/// [`el`] for each folder of the object `elements`, with its value as e.json.
fn els(root: &Path, elements: Value) {
    for (rel, ejson) in elements.as_object().expect("folder -> e.json") {
        el(root, rel, ejson.clone());
    }
}

fn tree(root: &Path) -> AppTree {
    load_tree(root).unwrap_or_else(|p| panic!("fixture has problems:\n{p}"))
}

/// What the probe loader saw, shared with the test.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
    loads: Mutex<HashMap<String, usize>>,
}

impl Log {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    fn loads(&self, name: &str) -> usize {
        self.loads.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// `builtin:probe`: behaviour chosen by the instance's own e.json keys:
/// `loadMs` (sleep while loading), `needs` (look these up while loading), `readiness`
/// (report `"ready"`, stay `"pending"`, or not ready for the reason given), `fail` (error
/// message), `panic` (panic), `hangOnStop` (stop never finishes), `callNeeds` (a function
/// `poke` that looks these up at call time).
fn probe_registry(log: &Arc<Log>) -> Registry {
    let mut reg = Registry::new();
    register_logged(&mut reg, "probe", log, |cx, log: Arc<Log>| async move {
        let name = cx.full_name().to_string();
        let raw = cx.definition().raw.clone();
        *log.loads.lock().unwrap().entry(name.clone()).or_default() += 1;
        log.push(format!("start {name}"));
        if let Some(ms) = raw.get("loadMs").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        for need in raw
            .get("needs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let need = need.as_str().unwrap();
            cx.app().lookup(need).await?;
        }
        if let Some(state) = raw.get("readiness").and_then(Value::as_str) {
            let reporter = cx.readiness("connecting");
            match state {
                "ready" => reporter.ready(),
                "pending" => {}
                reason => reporter.not_ready(reason),
            }
        }
        if let Some(msg) = raw.get("fail").and_then(Value::as_str) {
            return Err(BoxError::from(msg.to_string()));
        }
        if raw.get("panic").is_some() {
            panic!("probe loader told to panic");
        }
        log.push(format!("done {name}"));
        let hang = raw.get("hangOnStop").is_some();
        let stop_log = Arc::clone(&log);
        let stop_name = name.clone();
        let app = cx.app().clone();
        let call_needs: Vec<String> = raw
            .get("callNeeds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let config = cx.config().cloned();
        let rt = FnRuntime::new()
            .function("config", move |_, _| {
                let config = config.clone();
                async move { Ok(config.unwrap_or(Value::Null)) }
            })
            .function("poke", move |_, _| {
                let app = app.clone();
                let call_needs = call_needs.clone();
                async move {
                    for n in &call_needs {
                        app.lookup(n)
                            .await
                            .map_err(|e| jitnode_host::FunctionError::failed(e.to_string()))?;
                    }
                    Ok(json!(call_needs.len()))
                }
            })
            .on_stop(move || {
                let log = Arc::clone(&stop_log);
                let name = stop_name.clone();
                async move {
                    log.push(format!("stop {name}"));
                    if hang {
                        std::future::pending::<()>().await;
                    }
                }
            });
        Ok(Box::new(rt) as Box<dyn ElementRuntime>)
    });
    reg
}

/// A Meta `t.meta`, a Type `t.probeType` (builtin:probe) and a data-only Type `t.dataType`.
fn family(root: &Path) {
    els(
        root,
        json!({
            "t/meta": {"type": "", "title": "test meta"},
            "t/probeType": {"type": "t.meta", "backendBundleEntry": "builtin:probe"},
            "t/dataType": {"type": "t.meta"}
        }),
    );
}

/// A fresh element root holding [`family`].
fn family_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    dir
}

/// `base` with the keys of the object `extra` added (or replaced).
fn merged(mut base: Value, extra: Value) -> Value {
    base.as_object_mut()
        .expect("base is an object")
        .extend(extra.as_object().expect("extra is an object").clone());
    base
}

fn probe(root: &Path, name: &str, extra: Value) {
    el(
        root,
        &format!("t/{name}"),
        merged(json!({"type": "t.probeType"}), extra),
    );
}

/// [`probe`] for each name of the object `probes`, with its value as the extra keys.
fn probes(root: &Path, probes: Value) {
    for (name, extra) in probes.as_object().expect("name -> extra keys") {
        probe(root, name, extra.clone());
    }
}

/// An app over `root` (empty environment) whose probe loader writes to a fresh [`Log`].
fn logged_app(root: &Path) -> (Arc<Log>, App) {
    let log = Arc::new(Log::default());
    let app = App::new(
        tree(root),
        Env::from_map(HashMap::new()),
        probe_registry(&log),
    );
    (log, app)
}

/// A [`family_dir`] holding `probes` (see [`probes`]), with a [`logged_app`] over it.
fn probe_app(probes: Value) -> (tempfile::TempDir, Arc<Log>, App) {
    let dir = family_dir();
    self::probes(dir.path(), probes);
    let (log, app) = logged_app(dir.path());
    (dir, log, app)
}

/// A call (chunks discarded) that must succeed.
async fn call_ok(app: &App, element: &str, function: &str, args: Value) -> Value {
    app.call(element, function, args, ChunkSink::discard())
        .await
        .unwrap()
}

/// A call (chunks discarded) that must fail.
async fn call_err(app: &App, element: &str, function: &str, args: Value) -> CallError {
    app.call(element, function, args, ChunkSink::discard())
        .await
        .unwrap_err()
}

fn index_of(events: &[String], e: &str) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("no event {e:?} in {events:?}"))
}

#[tokio::test(start_paused = true)]
async fn phases_run_in_order_and_concurrently_within_a_phase() {
    let (_dir, log, app) = probe_app(json!({
        "b1": {"backendLoadTime": "beforeHandleRequest", "loadMs": 30},
        "b2": {"backendLoadTime": "beforeHandleRequest", "loadMs": 10},
        "a1": {"backendLoadTime": "afterAppInit", "loadMs": 5},
        "a2": {"backendLoadTime": "afterAppInit"},
        "lazy": {}
    }));

    let report = app.start().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.started, ["t.b1", "t.b2", "t.a1", "t.a2"]);
    let ev = log.events();
    // Both beforeHandleRequest loads begin before either finishes: concurrent.
    assert!(index_of(&ev, "start t.b1") < index_of(&ev, "done t.b2"));
    assert!(index_of(&ev, "start t.b2") < index_of(&ev, "done t.b1"));
    // No afterAppInit load begins until the whole first phase is done.
    let last_b = index_of(&ev, "done t.b1").max(index_of(&ev, "done t.b2"));
    assert!(last_b < index_of(&ev, "start t.a1"), "{ev:?}");
    assert!(last_b < index_of(&ev, "start t.a2"), "{ev:?}");
    // On-demand elements are not started.
    assert_eq!(log.loads("t.lazy"), 0);
    assert_eq!(app.running().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failing_element_is_reported_and_the_others_keep_running() {
    let dir = family_dir();
    let root = dir.path();
    els(
        root,
        json!({
            "t/robotType": {"type": "t.meta", "backendBundleEntry": "builtin:dingTalkStream"},
            "t/robot": {"type": "t.robotType", "backendLoadTime": "afterAppInit"},
            "t/pluginType": {"type": "t.meta", "backendBundleEntry": "./backend"},
            "t/plugin": {"type": "t.pluginType", "backendLoadTime": "afterAppInit"}
        }),
    );
    probes(
        root,
        json!({
            "bad": {"backendLoadTime": "beforeHandleRequest", "fail": "cannot reach the moon"},
            "boom": {"backendLoadTime": "beforeHandleRequest", "panic": true},
            "good1": {"backendLoadTime": "beforeHandleRequest"},
            "good2": {"backendLoadTime": "afterAppInit"}
        }),
    );
    let (log, app) = logged_app(root);

    let report = app.start().await;
    assert_eq!(report.started, ["t.good1", "t.good2"]);
    let failed: HashMap<&str, String> = report
        .failed
        .iter()
        .map(|(n, e)| (n.as_str(), e.to_string()))
        .collect();
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert_eq!(
        failed["t.bad"],
        "t.bad: loader builtin:probe failed: cannot reach the moon"
    );
    assert_eq!(failed["t.boom"], "t.boom: loader builtin:probe panicked");
    assert!(
        failed["t.robot"].contains("loader builtin:dingTalkStream is not available in this build"),
        "{}",
        failed["t.robot"]
    );
    assert!(failed["t.robot"].contains("declared by t.robotType"));
    assert!(failed["t.robot"].contains("available: builtin:probe"));
    assert!(
        failed["t.plugin"].contains("\"./backend\" of t.pluginType has no loader in this build")
    );

    // The good ones run and answer calls.
    let v = call_ok(&app, "t.good2", "poke", json!(null)).await;
    assert_eq!(v, json!(0));
    // A failed load is remembered, not retried at every lookup.
    let again = app.lookup("t.bad").await.unwrap_err();
    assert!(matches!(again, LookupError::Load(LoadError::Failed { .. })));
    assert_eq!(log.loads("t.bad"), 1);
}

/// Started is not ready: an element that reports itself not ready, or that failed to
/// start, makes the app not ready, named with the reason; one that reports nothing and
/// started counts as ready; stopping an element forgets what it reported.
#[tokio::test(start_paused = true)]
async fn readiness_tells_started_elements_from_working_ones() {
    use jitnode_host::Check;
    let dir = family_dir();
    let root = dir.path();
    let at_start = |extra: Value| merged(json!({"backendLoadTime": "afterAppInit"}), extra);
    probe(root, "up", at_start(json!({"readiness": "ready"})));
    probe(
        root,
        "down",
        at_start(json!({"readiness": "refused: bad credentials"})),
    );
    probe(root, "silent", at_start(json!({})));
    probe(
        root,
        "bad",
        at_start(json!({"readiness": "ready", "fail": "no config"})),
    );
    let (_log, app) = logged_app(root);
    let report = app.start().await;
    assert_eq!(report.started, ["t.down", "t.silent", "t.up"]);

    let ready = app.readiness().report();
    assert!(ready.is_settled() && !ready.is_ready(), "{ready:?}");
    let checks: Vec<(&str, &Check)> = ready.checks.iter().map(|(n, c)| (n.as_str(), c)).collect();
    assert_eq!(
        checks,
        [
            (
                "t.bad",
                &Check::NotReady {
                    reason: "t.bad: loader builtin:probe failed: no config".into()
                }
            ),
            (
                "t.down",
                &Check::NotReady {
                    reason: "refused: bad credentials".into()
                }
            ),
            ("t.up", &Check::Ready),
        ]
    );
    assert_eq!(
        ready.to_json()["elements"]["t.down"],
        json!({"state": "notReady", "reason": "refused: bad credentials"})
    );

    app.stop(Duration::from_secs(1)).await;
    let after = app.readiness().report();
    assert!(
        after.get("t.up").is_none() && after.get("t.down").is_none(),
        "{after:?}"
    );
}

/// Fifty concurrent first lookups of a `t.slow` that loads for `load_ms`.
async fn fifty_lookups_load_once(load_ms: u64) {
    let (_dir, log, app) = probe_app(json!({"slow": {"loadMs": load_ms}}));
    let app = Arc::new(app);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let app = Arc::clone(&app);
        set.spawn(async move {
            app.lookup("t.slow")
                .await
                .map(|l| l.full_name().to_string())
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), "t.slow");
        ok += 1;
    }
    assert_eq!(ok, 50);
    assert_eq!(log.loads("t.slow"), 1);
    assert_eq!(app.running(), ["t.slow"]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_first_lookups_load_once() {
    fifty_lookups_load_once(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_lookups_load_once_across_threads() {
    fifty_lookups_load_once(20).await;
}

#[tokio::test(start_paused = true)]
async fn lookups_load_what_they_need_and_stop_dependents_first() {
    let (_dir, log, app) = probe_app(json!({
        "base": {},
        "mid": {"needs": ["t.base"]},
        "top": {"backendLoadTime": "afterAppInit", "needs": ["t.mid", "t.base"]},
        "alone": {"backendLoadTime": "afterAppInit"},
        // Looks up t.base only when called, after loading.
        "caller": {"callNeeds": ["t.base"]},
        "later": {}
    }));

    let report = app.start().await;
    assert_eq!(report.started, ["t.alone", "t.top"]);
    // top's lookups loaded mid and base on demand.
    assert_eq!(log.loads("t.mid"), 1);
    assert_eq!(log.loads("t.base"), 1);
    call_ok(&app, "t.caller", "poke", json!({})).await;

    let deps = app.dependencies();
    assert_eq!(
        deps["t.top"],
        HashSet::from(["t.mid".to_string(), "t.base".to_string()])
            .into_iter()
            .collect()
    );
    assert_eq!(deps["t.mid"], ["t.base".to_string()].into_iter().collect());
    assert_eq!(
        deps["t.caller"],
        ["t.base".to_string()].into_iter().collect()
    );

    let stop = app.stop(Duration::from_secs(5)).await;
    assert_eq!(
        stop.waves,
        vec![
            vec![
                "t.alone".to_string(),
                "t.caller".to_string(),
                "t.top".to_string()
            ],
            vec!["t.mid".to_string()],
            vec!["t.base".to_string()],
        ]
    );
    assert!(stop.timed_out.is_empty());
    let stops: Vec<String> = log
        .events()
        .into_iter()
        .filter(|e| e.starts_with("stop "))
        .collect();
    assert_eq!(stops.len(), 5);
    assert!(index_of(&stops, "stop t.top") < index_of(&stops, "stop t.mid"));
    assert!(index_of(&stops, "stop t.mid") < index_of(&stops, "stop t.base"));
    assert!(index_of(&stops, "stop t.caller") < index_of(&stops, "stop t.base"));
    assert!(app.running().is_empty());
    // After stop, nothing new loads.
    let e = app.lookup("t.later").await.unwrap_err();
    assert!(
        matches!(e, LookupError::Load(LoadError::Stopping { .. })),
        "{e}"
    );
    assert_eq!(log.loads("t.later"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_hangs_is_abandoned_at_its_deadline() {
    let (_dir, _log, app) = probe_app(json!({
        "stuck": {"backendLoadTime": "afterAppInit", "hangOnStop": true},
        "user": {"backendLoadTime": "afterAppInit", "needs": ["t.stuck"]},
        "fine": {"backendLoadTime": "afterAppInit"}
    }));
    app.start().await;
    let started = tokio::time::Instant::now();
    let stop = app.stop(Duration::from_secs(2)).await;
    assert_eq!(stop.timed_out, ["t.stuck"]);
    assert_eq!(stop.order(), ["t.fine", "t.user", "t.stuck"]);
    // One deadline, not more: the hanging element was abandoned at 2 s.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn elements_looking_each_other_up_while_loading_fail_instead_of_hanging() {
    let (_dir, _log, app) = probe_app(json!({
        "ping": {"needs": ["t.pong"]},
        "pong": {"needs": ["t.ping"]},
        "narcissus": {"needs": ["t.narcissus"]}
    }));
    for (name, why, cycle) in [
        (
            "t.ping",
            "a lookup cycle must not hang",
            "t.pong -> t.ping -> t.pong",
        ),
        (
            "t.narcissus",
            "a self lookup must not hang",
            "t.narcissus -> t.narcissus",
        ),
    ] {
        let e = tokio::time::timeout(Duration::from_secs(60), app.lookup(name))
            .await
            .expect(why)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("lookup cycle while loading: {cycle}")),
            "{e}"
        );
    }
}

fn echo_app(root: &Path, env: HashMap<String, String>) -> App {
    els(
        root,
        json!({
            "demo/meta": {"type": ""},
            "demo/echoType": { "type": "demo.meta", "backendBundleEntry": "builtin:echo", "functionList": [ {"name": "echo", "title": "Return the arguments"}, {"name": "stream", "args": [{"name": "text", "dataType": "Stext", "required": true}]} ] },
            "demo/hello": {"type": "demo.echoType"},
            "demo/data": {"type": "demo.meta"},
            "demo/loud": {"type": "demo.echoType"}
        }),
    );
    write(
        root,
        "demo/loud",
        "config.json",
        r#"{"prefix": "{{PREFIX}}"}"#,
    );
    App::new(tree(root), Env::from_map(env), Registry::with_builtins())
}

#[tokio::test]
async fn echo_returns_args_and_streams_chunks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([("PREFIX".to_string(), "!".to_string())]);
    let app = echo_app(dir.path(), env);
    let v = call_ok(&app, "demo.hello", "echo", json!({"x": 1})).await;
    assert_eq!(v, json!({"x": 1}));

    let (sink, mut rx) = ChunkSink::channel();
    let v = app
        .call(
            "demo.loud",
            "stream",
            json!({"text": "one two  three"}),
            sink,
        )
        .await
        .unwrap();
    assert_eq!(v, json!("one two  three"));
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    assert_eq!(chunks, [json!("!one"), json!("!two"), json!("!three")]);

    let hello = app.lookup("demo.hello").await.unwrap();
    let names: Vec<String> = hello.functions().iter().map(|f| f.to_string()).collect();
    assert_eq!(names, ["echo(any JSON)", "stream(text: Stext)"]);
    assert_eq!(
        hello.functions()[0].title.as_deref(),
        Some("Return the arguments")
    );
}

#[tokio::test]
async fn unknown_names_and_bad_arguments_say_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let app = echo_app(dir.path(), HashMap::new());

    let e = call_err(&app, "demo.helo", "echo", json!({})).await;
    assert_eq!(
        e.to_string(),
        "no element named \"demo.helo\" (did you mean \"demo.hello\"?); elements with a loader: demo.hello, demo.loud"
    );
    let e = call_err(&app, "demo.hello", "ech", json!({})).await;
    assert_eq!(
        e.to_string(),
        "demo.hello has no function \"ech\" (did you mean \"echo\"?); it offers: echo(any JSON), stream(text: Stext)"
    );
    let e = call_err(&app, "demo.hello", "stream", json!({"txt": "a"})).await;
    assert!(matches!(e, CallError::BadArgs { .. }));
    assert_eq!(
        e.to_string(),
        "demo.hello.stream: unknown argument \"txt\"; expected stream(text: Stext)"
    );
    let e = call_err(&app, "demo.hello", "stream", json!("a")).await;
    assert!(
        e.to_string()
            .contains("arguments must be a JSON object, got a string"),
        "{e}"
    );
    let e = call_err(&app, "demo.data", "echo", json!({})).await;
    assert_eq!(
        e.to_string(),
        "demo.data is a data-only element (no loader in its chain demo.data -> demo.meta); it offers no functions"
    );
    // Data-only elements can still be looked up for their definition and files.
    let data = app.lookup("demo.data").await.unwrap();
    assert!(data.is_data_only());
    assert!(data.functions().is_empty());
}

#[tokio::test]
async fn loaders_get_rendered_config_and_missing_variables_fail_that_element_only() {
    let dir = family_dir();
    let root = dir.path();
    probe(root, "withSecret", json!({}));
    write(
        root,
        "t/withSecret",
        "config.json",
        r#"{"secret": "{{SECRET}}", "mode": "{{MODE:-safe}}"}"#,
    );
    probe(root, "missing", json!({"backendLoadTime": "afterAppInit"}));
    write(
        root,
        "t/missing",
        "config.json",
        r#"{"token": "{{NOT_SET_ANYWHERE}}"}"#,
    );
    let log = Arc::new(Log::default());
    let secret = "s3cr\"et\\\nvalue";
    let env = Env::from_map(HashMap::from([("SECRET".to_string(), secret.to_string())]));
    let app = App::new(tree(root), env, probe_registry(&log));

    let v = call_ok(&app, "t.withSecret", "config", json!(null)).await;
    assert_eq!(v, json!({"secret": secret, "mode": "safe"}));
    let loaded = app.lookup("t.withSecret").await.unwrap();
    let debug = format!("{loaded:?}");
    assert!(!debug.contains("s3cr"), "{debug}");

    let report = app.start().await;
    assert_eq!(report.failed.len(), 1);
    let msg = report.failed[0].1.to_string();
    assert_eq!(report.failed[0].0, "t.missing");
    assert!(msg.contains("t.missing"), "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
    assert!(msg.contains("NOT_SET_ANYWHERE"), "{msg}");
    assert_eq!(log.loads("t.missing"), 0);
}

#[tokio::test]
async fn definitions_are_available_without_loading() {
    let dir = family_dir();
    probe(dir.path(), "x", json!({"custom": {"kept": true}}));
    let (log, app) = logged_app(dir.path());
    let def = app.handle().definition("t.x").unwrap();
    assert_eq!(def.def.raw["custom"], json!({"kept": true}));
    assert_eq!(def.chain, ["t.x", "t.probeType", "t.meta"]);
    assert!(app.handle().definition("t.nope").is_none());
    assert_eq!(log.loads("t.x"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_element_finishing_its_load_after_stop_began_is_stopped_too() {
    let dir = family_dir();
    probe(dir.path(), "slowpoke", json!({"loadMs": 100}));
    let (log, app) = logged_app(dir.path());
    let app = Arc::new(app);
    let pending = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.lookup("t.slowpoke").await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(log.events(), ["start t.slowpoke"]);
    let stop = app.stop(Duration::from_secs(5)).await;
    assert!(stop.order().is_empty());
    let e = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(e, LookupError::Load(LoadError::Stopping { .. })),
        "{e}"
    );
    assert_eq!(
        log.events(),
        ["start t.slowpoke", "done t.slowpoke", "stop t.slowpoke"]
    );
    assert!(app.running().is_empty());
}

#[tokio::test]
async fn loaders_read_their_own_files_and_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    els(
        root,
        json!({
            "f/meta": {"type": ""},
            "f/fileType": {"type": "f.meta", "backendBundleEntry": "builtin:files"},
            "f/doc": {"type": "f.fileType"}
        }),
    );
    write(root, "f/doc", "prompt.md", "be kind");
    write(root, "f", "outside.txt", "not yours");
    let mut reg = Registry::new();
    reg.register(
        "files",
        loader_fn(|cx| async move {
            let mine = String::from_utf8(cx.file("prompt.md")?)?;
            let escape = cx
                .file("../outside.txt")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            let absolute = cx
                .file("/etc/hostname")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            let report = json!({"mine": mine, "escape": escape, "absolute": absolute});
            let rt = FnRuntime::new().function("report", move |_, _| {
                let report = report.clone();
                async move { Ok(report) }
            });
            Ok(Box::new(rt) as Box<dyn ElementRuntime>)
        }),
    );
    let app = App::new(tree(root), Env::from_map(HashMap::new()), reg);
    let r = call_ok(&app, "f.doc", "report", json!(null)).await;
    assert_eq!(r["mine"], "be kind");
    let escape = r["escape"].as_str().unwrap();
    assert!(
        escape.contains("f.doc") && escape.contains("../outside.txt"),
        "{escape}"
    );
    let absolute = r["absolute"].as_str().unwrap();
    assert!(absolute.contains("/etc/hostname"), "{absolute}");
}

#[tokio::test]
async fn open_builds_dist_and_can_run_from_dist_alone() {
    let dir = tempfile::tempdir().unwrap();
    let app_dir = dir.path();
    let root = app_dir.join("elements");
    el(&root, "demo/meta", json!({"type": ""}));
    el(
        &root,
        "demo/echoType",
        json!({"type": "demo.meta", "backendBundleEntry": "builtin:echo"}),
    );
    el(&root, "demo/hello", json!({"type": "demo.echoType"}));
    write(
        &root,
        "demo/hello",
        "config.json",
        r#"{"prefix": "{{OPEN_TEST_PREFIX}}"}"#,
    );
    std::fs::write(app_dir.join(".env"), "OPEN_TEST_PREFIX=>\n").unwrap();

    let (app, report) = App::open(app_dir, false, Registry::with_builtins()).unwrap();
    let report = report.expect("a build report when opening from sources");
    assert!(report.full);
    assert_eq!(report.rebuilt.len(), 3);
    let hello = app.lookup("demo.hello").await.unwrap();
    assert!(hello.element().dir.starts_with(app_dir.join("dist")));
    assert_eq!(hello.config(), Some(&json!({"prefix": ">"})));
    drop(app);

    std::fs::remove_dir_all(&root).unwrap();
    let (app, report) = App::open(app_dir, true, Registry::with_builtins()).unwrap();
    assert!(report.is_none());
    let (sink, mut rx) = ChunkSink::channel();
    let v = app
        .call("demo.hello", "stream", json!({"text": "hi"}), sink)
        .await
        .unwrap();
    assert_eq!(v, json!("hi"));
    assert_eq!(rx.try_recv().unwrap(), json!(">hi"));
}
