//! Hot reload against real app folders (sources, dist/, .env) with a recording loader:
//! `Reloader::reload_from_disk` directly (deterministic), and once through the real watcher.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_host::watch::{self, FileEvents};
use jitnode_host::{
    App, BoxError, ElementRuntime, FnRuntime, Registry, ReloadReport, Reloader, WatchMode,
    WatchOptions,
};
use serde_json::{json, Value};

mod common;
use common::register_logged;

/// What the `builtin:rec` loader saw: every load with its rendered config, and the runtimes
/// alive now (loaded and not yet stopped).
#[derive(Default)]
struct Log {
    loads: Mutex<Vec<(String, Value)>>,
    live: Mutex<BTreeMap<String, Vec<Value>>>,
}

impl Log {
    fn loads_of(&self, name: &str) -> Vec<Value> {
        let loads = self.loads.lock().unwrap();
        loads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .collect()
    }
    fn load_count(&self) -> usize {
        self.loads.lock().unwrap().len()
    }
    /// name -> config of each live runtime; a name running twice shows two configs.
    fn live(&self) -> BTreeMap<String, Vec<Value>> {
        self.live.lock().unwrap().clone()
    }
}

/// `builtin:rec`: records its config; config `"needs": [names]` looks those up while
/// loading, `"fail": true` makes the load fail.
fn registry(log: &Arc<Log>) -> Registry {
    let mut reg = Registry::with_builtins();
    register_logged(&mut reg, "rec", log, |cx, log: Arc<Log>| async move {
        let name = cx.full_name().to_string();
        let config = cx.config().cloned().unwrap_or(Value::Null);
        log.loads
            .lock()
            .unwrap()
            .push((name.clone(), config.clone()));
        for need in config
            .get("needs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            cx.app().lookup(need).await?;
        }
        if config.get("fail") == Some(&json!(true)) {
            return Err(BoxError::from("asked to fail"));
        }
        log.live
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_default()
            .push(config.clone());
        let on_stop = Arc::clone(&log);
        let rt = FnRuntime::new().on_stop(move || {
            let log = Arc::clone(&on_stop);
            let name = name.clone();
            let config = config.clone();
            async move {
                let mut live = log.live.lock().unwrap();
                if let Some(v) = live.get_mut(&name) {
                    if let Some(i) = v.iter().position(|c| *c == config) {
                        v.remove(i);
                    }
                    if v.is_empty() {
                        live.remove(&name);
                    }
                }
            }
        });
        Ok(Box::new(rt) as Box<dyn ElementRuntime>)
    });
    reg
}

fn write(app: &Path, rel: &str, text: &str) {
    let path = app.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `fam.meta` (loader builtin:rec) -> `fam.t1`, `fam.t2`; a separate family `other.*`.
fn base(app: &Path) {
    write(
        app,
        "elements/fam/meta/e.json",
        r#"{"type": "", "backendBundleEntry": "builtin:rec"}"#,
    );
    write(app, "elements/fam/t1/e.json", r#"{"type": "fam.meta"}"#);
    write(app, "elements/fam/t2/e.json", r#"{"type": "fam.meta"}"#);
    write(
        app,
        "elements/other/meta/e.json",
        r#"{"type": "", "backendBundleEntry": "builtin:rec"}"#,
    );
}

/// Writes `file` of the instance `fam.bot`.
fn write_bot(app: &Path, file: &str, text: &str) {
    write(app, &format!("elements/fam/bot/{file}"), text);
}

/// A fresh app folder holding [`base`].
fn base_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    dir
}

/// A [`base_app`] whose `.env` holds `dotenv`.
fn base_app_with_env(dotenv: &str) -> tempfile::TempDir {
    let dir = base_app();
    write(dir.path(), ".env", dotenv);
    dir
}

fn instance(app: &Path, rel: &str, ty: &str, eager: bool, config: &str) {
    let lt = if eager {
        r#", "backendLoadTime": "afterAppInit""#
    } else {
        ""
    };
    write(
        app,
        &format!("elements/{rel}/e.json"),
        &format!(r#"{{"type": "{ty}"{lt}}}"#),
    );
    write(app, &format!("elements/{rel}/config.json"), config);
}

/// Opens and starts the app (nothing may fail), with a fresh [`Log`] for its loader.
async fn started(app_dir: &Path) -> (Reloader, Arc<Log>) {
    let log = Arc::new(Log::default());
    let (app, _) = App::open(app_dir, false, registry(&log)).unwrap();
    let report = app.start().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let r = Reloader::new(app_dir, app).with_stop_deadline(Duration::from_secs(2));
    (r, log)
}

/// The reason a reload kept the last good version; `why` says what should be rejected.
fn rejected(report: &ReloadReport, why: &str) -> String {
    report.kept_last_good.as_ref().expect(why).to_string()
}

/// Reloads, expecting the new version accepted and `fam.bot` restarted with `config`.
async fn reload_restarts_bot(r: &mut Reloader, log: &Log, config: Value) {
    let report = r.reload_from_disk().await;
    assert!(report.kept_last_good.is_none(), "{report:?}");
    assert_eq!(report.restarted, names(&["fam.bot"]));
    assert_eq!(log.live()["fam.bot"], vec![config]);
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_config_edit_restarts_that_instance_with_the_new_config() {
    let dir = base_app();
    let app_dir = dir.path();
    instance(app_dir, "fam/bot", "fam.t1", true, r#"{"v": 1}"#);
    instance(app_dir, "fam/calm", "fam.t1", true, r#"{"v": 1}"#);
    let (mut r, log) = started(app_dir).await;

    write_bot(app_dir, "config.json", r#"{"v": 2}"#);
    let report = r.reload_from_disk().await;
    assert!(report.kept_last_good.is_none(), "{report:?}");
    assert_eq!(report.changed, names(&["fam.bot"]));
    assert_eq!(report.restarted, names(&["fam.bot"]));
    assert!(report.started.is_empty() && report.stopped.is_empty());
    assert_eq!(
        log.loads_of("fam.bot"),
        vec![json!({"v": 1}), json!({"v": 2})]
    );
    assert_eq!(log.loads_of("fam.calm").len(), 1);
    assert_eq!(log.live()["fam.bot"], vec![json!({"v": 2})]);

    // Same content written again: nothing restarts.
    write_bot(app_dir, "config.json", r#"{"v": 2}"#);
    let before = log.load_count();
    let report = r.reload_from_disk().await;
    assert!(report.is_noop(), "{report:?}");
    assert_eq!(log.load_count(), before);
}

#[tokio::test]
async fn an_edit_breaking_the_schema_keeps_the_last_good_version_until_fixed() {
    let dir = base_app();
    let app_dir = dir.path();
    write(
        app_dir,
        "elements/fam/t1/config.schema.json",
        r#"{"type": "object", "additionalProperties": false,
            "properties": {"v": {"type": "integer", "default": 0}}}"#,
    );
    instance(app_dir, "fam/bot", "fam.t1", true, r#"{"v": 1}"#);
    instance(app_dir, "fam/calm", "fam.t1", true, "{}");
    let (mut r, log) = started(app_dir).await;
    // The loader got the config with the schema's default filled in.
    assert_eq!(log.live()["fam.calm"], vec![json!({"v": 0})]);

    write_bot(app_dir, "config.json", "{\n  \"v\": \"one\"\n}");
    let report = r.reload_from_disk().await;
    let err = rejected(&report, "rejected");
    let file = app_dir.join("elements/fam/bot/config.json");
    assert!(
        err.starts_with(&format!(
            "{}:2:8: fam.bot: field `v`: expected an integer, found a string",
            file.display()
        )),
        "{err}"
    );
    assert!(report.restarted.is_empty() && report.stopped.is_empty());
    assert_eq!(log.live()["fam.bot"], vec![json!({"v": 1})]);
    assert_eq!(log.loads_of("fam.bot").len(), 1);

    write_bot(app_dir, "config.json", r#"{"v": "2"}"#);
    reload_restarts_bot(&mut r, &log, json!({"v": 2})).await;
}

#[tokio::test]
async fn a_broken_e_json_keeps_the_last_good_version_until_fixed() {
    let dir = base_app();
    let app_dir = dir.path();
    instance(app_dir, "fam/bot", "fam.t1", true, r#"{"v": 1}"#);
    let (mut r, log) = started(app_dir).await;
    let before = r.app().running_fingerprints();

    write_bot(
        app_dir,
        "e.json",
        "{\n  \"type\": \"fam.t1\",\n  \"backendLoadTime\" \"afterAppInit\"\n}",
    );
    let report = r.reload_from_disk().await;
    let err = rejected(&report, "a bad e.json is rejected");
    assert!(err.contains("fam/bot/e.json:3:21"), "{err}");
    assert_eq!(r.app().running_fingerprints(), before);
    assert_eq!(log.load_count(), 1);

    // A cycle is rejected the same way.
    write_bot(app_dir, "e.json", r#"{"type": "fam.bot"}"#);
    let report = r.reload_from_disk().await;
    let err = rejected(&report, "a cycle is rejected");
    assert!(err.contains("fam.bot"), "{err}");
    assert_eq!(r.app().running_fingerprints(), before);

    // Fixed (with a new config): recovered in the same process.
    write_bot(
        app_dir,
        "e.json",
        r#"{"type": "fam.t1", "backendLoadTime": "afterAppInit"}"#,
    );
    write_bot(app_dir, "config.json", r#"{"v": 5}"#);
    reload_restarts_bot(&mut r, &log, json!({"v": 5})).await;
}

#[tokio::test]
async fn env_edits_restart_only_elements_whose_rendered_config_changed() {
    let dir = base_app_with_env("RELOAD_T_A=1\nRELOAD_T_B=x\n");
    let app_dir = dir.path();
    instance(app_dir, "fam/a", "fam.t1", true, "{\"v\": {{RELOAD_T_A}}}");
    instance(
        app_dir,
        "fam/b",
        "fam.t1",
        true,
        "{\"v\": \"<<RELOAD_T_B>>\"}",
    );
    let (mut r, log) = started(app_dir).await;

    write(app_dir, ".env", "RELOAD_T_A=2\nRELOAD_T_B=x\n");
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.a"]), "{report:?}");
    assert_eq!(log.live()["fam.a"], vec![json!({"v": 2})]);
    assert_eq!(log.loads_of("fam.b").len(), 1);

    // A variable that disappears: rejected, with the placeholder's position.
    write(app_dir, ".env", "RELOAD_T_A=2\n");
    let report = r.reload_from_disk().await;
    let err = rejected(&report, "missing variable");
    assert!(err.contains("fam/b/config.json:1:8"), "{err}");
    assert!(err.contains("RELOAD_T_B"), "{err}");
    assert!(!err.contains("x\""), "no values in errors: {err}");
    assert_eq!(log.live()["fam.b"], vec![json!({"v": "x"})]);

    write(app_dir, ".env", "RELOAD_T_A=2\nRELOAD_T_B=y\n");
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.b"]), "{report:?}");
    assert_eq!(log.live()["fam.b"], vec![json!({"v": "y"})]);
}

#[tokio::test]
async fn env_overrides_win_over_dotenv_and_survive_a_reload() {
    let dir = base_app_with_env("RELOAD_T_URL=from-dotenv\nRELOAD_T_N=1\n");
    let app_dir = dir.path();
    instance(
        app_dir,
        "fam/a",
        "fam.t1",
        true,
        "{\"url\": \"<<RELOAD_T_URL>>\", \"n\": {{RELOAD_T_N}}}",
    );
    let log = Arc::new(Log::default());
    let overrides: BTreeMap<String, String> =
        [("RELOAD_T_URL".to_string(), "from-host".to_string())].into();
    let (app, _) = App::open_with(app_dir, false, registry(&log), overrides.clone()).unwrap();
    assert_eq!(app.env_overrides(), &overrides);
    assert!(app.start().await.failed.is_empty());
    assert_eq!(
        log.live()["fam.a"],
        vec![json!({"url": "from-host", "n": 1})]
    );
    assert_eq!(
        std::env::var("RELOAD_T_URL").ok(),
        None,
        "process env untouched"
    );

    let mut r = Reloader::new(app_dir, app).with_stop_deadline(Duration::from_secs(2));
    write(app_dir, ".env", "RELOAD_T_URL=from-dotenv\nRELOAD_T_N=2\n");
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.a"]), "{report:?}");
    assert_eq!(
        log.live()["fam.a"],
        vec![json!({"url": "from-host", "n": 2})]
    );
    r.app().stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn changing_a_type_restarts_its_instances_only() {
    let dir = base_app();
    let app_dir = dir.path();
    instance(app_dir, "fam/one", "fam.t1", true, "{}");
    instance(app_dir, "fam/two", "fam.t2", true, "{}");
    instance(app_dir, "other/x", "other.meta", true, "{}");
    let (mut r, log) = started(app_dir).await;

    write(
        app_dir,
        "elements/fam/t1/e.json",
        r#"{"type": "fam.meta", "k": 1}"#,
    );
    let report = r.reload_from_disk().await;
    assert_eq!(report.changed, names(&["fam.t1"]));
    assert_eq!(report.restarted, names(&["fam.one"]));

    // The Meta (the Type's Type) changes: the whole family restarts.
    write(
        app_dir,
        "elements/fam/meta/e.json",
        r#"{"type": "", "backendBundleEntry": "builtin:rec", "k": 1}"#,
    );
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.one", "fam.two"]));
    assert_eq!(log.loads_of("other.x").len(), 1);

    // An instance moved to another Type restarts too.
    instance(app_dir, "fam/one", "fam.t2", true, "{}");
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.one"]));
    assert_eq!(log.live().len(), 3);
}

#[tokio::test]
async fn added_and_removed_folders_start_and_stop() {
    let dir = base_app();
    let app_dir = dir.path();
    instance(app_dir, "fam/one", "fam.t1", true, "{}");
    let (mut r, log) = started(app_dir).await;

    instance(app_dir, "fam/new", "fam.t1", true, r#"{"v": 1}"#);
    instance(app_dir, "fam/lazy", "fam.t1", false, r#"{"v": 1}"#);
    let report = r.reload_from_disk().await;
    assert_eq!(report.changed, names(&["fam.lazy", "fam.new"]));
    assert_eq!(report.started, names(&["fam.new"]));
    assert!(
        !log.live().contains_key("fam.lazy"),
        "on-demand: not started"
    );

    std::fs::remove_dir_all(app_dir.join("elements/fam/one")).unwrap();
    let report = r.reload_from_disk().await;
    assert_eq!(report.stopped, names(&["fam.one"]));
    assert_eq!(
        log.live().keys().cloned().collect::<Vec<_>>(),
        names(&["fam.new"])
    );
    assert!(r.app().lookup("fam.one").await.is_err());
}

#[tokio::test]
async fn dependents_restart_with_what_they_looked_up_and_orphans_stop() {
    let dir = base_app();
    let app_dir = dir.path();
    instance(app_dir, "fam/lib", "fam.t1", false, r#"{"v": 1}"#);
    instance(
        app_dir,
        "fam/user",
        "fam.t1",
        true,
        r#"{"needs": ["fam.lib"]}"#,
    );
    let (mut r, log) = started(app_dir).await;
    assert!(log.live().contains_key("fam.lib"));

    write(app_dir, "elements/fam/lib/config.json", r#"{"v": 2}"#);
    let report = r.reload_from_disk().await;
    assert_eq!(
        report.restarted,
        names(&["fam.lib", "fam.user"]),
        "{report:?}"
    );
    assert_eq!(log.live()["fam.lib"], vec![json!({"v": 2})]);

    // The user no longer needs lib: a clean start would not load lib, so it stops.
    write(app_dir, "elements/fam/user/config.json", "{}");
    let report = r.reload_from_disk().await;
    assert_eq!(report.restarted, names(&["fam.user"]));
    assert_eq!(report.stopped, names(&["fam.lib"]));
    assert!(!log.live().contains_key("fam.lib"));
}

/// Deterministic xorshift: the same sequence on every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Copies the app's sources and .env into a fresh folder and starts it there.
async fn clean_start(app_dir: &Path) -> (App, Arc<Log>, tempfile::TempDir) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&app_dir.join("elements"), &dir.path().join("elements"));
    if app_dir.join(".env").exists() {
        std::fs::copy(app_dir.join(".env"), dir.path().join(".env")).unwrap();
    }
    let log = Arc::new(Log::default());
    let (app, _) = App::open(dir.path(), false, registry(&log)).unwrap();
    app.start().await;
    (app, log, dir)
}

#[tokio::test]
async fn any_sequence_of_edits_ends_like_a_clean_start() {
    let dir = base_app_with_env("RELOAD_SEQ_V=1\n");
    let app_dir = dir.path();
    instance(app_dir, "fam/i0", "fam.t1", true, "{}");
    let (mut r, log) = started(app_dir).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    let mut rejected = 0;
    let mut broken = std::collections::BTreeSet::new();
    let mut env_ok = true;
    for step in 0..100 {
        let mut i = rng.below(6);
        let what = rng.below(16);
        // The last steps repair everything, so the sequence ends on a valid tree.
        let what = if step >= 98 { 12 } else { what };
        let exists = app_dir.join(format!("elements/fam/i{i}")).exists();
        let mut fresh = Vec::new();
        match what {
            // add or replace an instance
            0..=5 => fresh.push(i),
            6 if exists => {
                std::fs::remove_dir_all(app_dir.join(format!("elements/fam/i{i}"))).unwrap();
                broken.remove(&i);
            }
            7 if exists => {
                write(app_dir, &format!("elements/fam/i{i}/e.json"), "{\"type\": ");
                broken.insert(i);
            }
            8 => {
                let k = rng.below(3);
                write(
                    app_dir,
                    "elements/fam/t2/e.json",
                    &format!(r#"{{"type": "fam.meta", "k": {k}}}"#),
                );
            }
            9 => {
                write(app_dir, ".env", &format!("RELOAD_SEQ_V={}\n", rng.below(3)));
                env_ok = true;
            }
            10 => {
                write(app_dir, ".env", "OTHER=1\n");
                env_ok = false;
            }
            11 if exists => {
                write(
                    app_dir,
                    &format!("elements/fam/i{i}/e.json"),
                    r#"{"type": "fam.i0x"}"#,
                );
                broken.insert(i);
            }
            12..=14 => {
                fresh.extend(broken.iter().copied());
                if !env_ok {
                    write(app_dir, ".env", "RELOAD_SEQ_V=0\n");
                    env_ok = true;
                }
            }
            _ => continue,
        }
        for n in fresh {
            i = n;
            broken.remove(&i);
            let ty = if rng.below(2) == 0 {
                "fam.t1"
            } else {
                "fam.t2"
            };
            let eager = rng.below(3) != 0;
            let mut config = json!({"v": rng.below(4)});
            if i > 0 && rng.below(2) == 0 {
                config["needs"] = json!([format!("fam.i{}", rng.below(i))]);
            }
            if rng.below(8) == 0 {
                config["fail"] = json!(true);
            }
            let text = if rng.below(4) == 0 {
                // Through a template, so .env edits matter.
                config
                    .to_string()
                    .replacen('{', "{\"env\": {{RELOAD_SEQ_V}}, ", 1)
            } else {
                config.to_string()
            };
            instance(app_dir, &format!("fam/i{i}"), ty, eager, &text);
        }
        let rel = format!("fam/i{i}");
        let report: ReloadReport = r.reload_from_disk().await;
        if report.kept_last_good.is_some() {
            rejected += 1;
            continue;
        }
        accepted += 1;
        let (clean, clean_log, _keep) = clean_start(app_dir).await;
        assert_eq!(
            r.app().running_fingerprints(),
            clean.running_fingerprints(),
            "step {step} (edit {what} on {rel}): {report:?}"
        );
        assert_eq!(
            log.live(),
            clean_log.live(),
            "step {step}: live runtimes and configs"
        );
        clean.stop(Duration::from_secs(1)).await;
    }
    assert!(
        accepted >= 40 && rejected >= 10,
        "accepted {accepted}, rejected {rejected}"
    );
    assert!(
        broken.is_empty() && env_ok,
        "the sequence ends on a valid tree"
    );
    assert!(!log.live().is_empty());
}

/// Through the real watcher: a save is noticed, debounced, and the instance runs with the
/// new config. Waits on the report channel with a timeout (no sleeps as assertions).
async fn watcher_reloads_a_config_edit(mode: WatchMode) {
    let dir = base_app();
    let app_dir = dir.path().to_path_buf();
    instance(&app_dir, "fam/bot", "fam.t1", true, r#"{"v": 1}"#);
    let (mut r, log) = started(&app_dir).await;
    let options = WatchOptions {
        mode,
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
    };
    let (report_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Started here: once `watch` returns its watches (or the poller's first scan) are in
    // place, so the edit below is seen.
    let events = FileEvents::watch(&app_dir, &options).unwrap();
    assert_eq!(
        events.kind(),
        match mode {
            WatchMode::Poll => "poll",
            _ => "native",
        }
    );
    let task = tokio::spawn(async move {
        let _ = watch::run_events(&mut r, events, &options, stop_rx, |rep| {
            let _ = report_tx.send((rep.restarted.clone(), rep.kept_last_good.is_some()));
        })
        .await
        .unwrap();
        r
    });

    // Save by rename, as many editors do.
    write(&app_dir, "elements/fam/bot/config.json.tmp~", r#"{"v": 2}"#);
    std::fs::rename(
        app_dir.join("elements/fam/bot/config.json.tmp~"),
        app_dir.join("elements/fam/bot/config.json"),
    )
    .unwrap();
    let deadline = Duration::from_secs(20);
    let wait = async {
        loop {
            // The temporary file alone may cause a first reload; wait for the saved config.
            let (_restarted, rejected) = reports.recv().await.expect("watcher alive");
            assert!(!rejected);
            if log.live().get("fam.bot") == Some(&vec![json!({"v": 2})]) {
                break;
            }
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .expect("the edit is reloaded");
    assert_eq!(log.loads_of("fam.bot").last(), Some(&json!({"v": 2})));

    // The watcher stops when asked, returning the reloader.
    stop_tx.send(()).unwrap();
    let r = tokio::time::timeout(deadline, task).await.unwrap().unwrap();
    r.app().stop(Duration::from_secs(1)).await;
    assert!(log.live().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_watcher_reloads_a_saved_config() {
    watcher_reloads_a_config_edit(WatchMode::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_polling_watcher_reloads_a_saved_config() {
    watcher_reloads_a_config_edit(WatchMode::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_ignores_dist_and_hidden_files() {
    let dir = tempfile::tempdir().unwrap();
    watcher_ignores_dist_and_hidden_files(dir.path(), dir.path()).await;
}

/// `jitnode run --watch` from inside the app watches `.`: the watcher reports absolute
/// paths, which must still be judged relative to the app (a write to `data/` is not an
/// edit, or every state file the host writes would reload it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_app_dir_is_watched_like_an_absolute_one() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    // The same folder, named relative to the working directory (no chdir: tests share it).
    let up = cwd.components().count() - 1;
    let mut relative = std::path::PathBuf::new();
    for _ in 0..up {
        relative.push("..");
    }
    relative.push(dir.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative() && relative.join(".").is_dir());
    watcher_ignores_dist_and_hidden_files(dir.path(), &relative).await;
}

async fn watcher_ignores_dist_and_hidden_files(app_dir: &Path, watched_as: &Path) {
    base(app_dir);
    let mut events = FileEvents::watch(watched_as, &WatchOptions::default()).unwrap();
    assert_eq!(events.kind(), "native");
    write(app_dir, "data/sandbox.json", "x");
    write(app_dir, "dist/junk", "x");
    write(app_dir, "elements/fam/.swap", "x");
    write(app_dir, "elements/fam/t1/target/x", "x");
    write(
        app_dir,
        "elements/fam/t1/e.json",
        r#"{"type": "fam.meta", "k": 2}"#,
    );
    let batch = tokio::time::timeout(
        Duration::from_secs(10),
        events.next_batch(Duration::from_millis(100)),
    )
    .await
    .expect("an event")
    .expect("watcher alive");
    assert!(
        batch
            .iter()
            .all(|p| p.ends_with("fam/t1/e.json") || p.ends_with("fam/t1")),
        "{batch:?}"
    );
}
