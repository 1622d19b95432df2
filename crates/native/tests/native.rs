//! Native plugins end to end: fixture crates (tests/fixtures) and the keyword example in
//! elements/demo are built with cargo, loaded through the host's App, and called.
//!
//! Fixtures are built once per test binary into one target dir shared with the keyword
//! build (same debug profile), so common dependencies compile once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use jitnode_element::{load_tree, AppTree, Env};
use jitnode_host::{App, CallError, ChunkSink, LoadError, LookupError, Registry};
use jitnode_native::{CargoOptions, NativeLoader, NativeOptions};
use serde_json::{json, Value};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("native-fixtures")
}

fn cargo() -> PathBuf {
    CargoOptions::default().cargo
}

/// Paths of the built fixture libraries, by fixture folder name.
fn fixtures() -> &'static HashMap<&'static str, PathBuf> {
    static BUILT: OnceLock<HashMap<&'static str, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built = HashMap::new();
        for name in ["abi_mismatch", "abi_v1", "panicky", "bad_json", "no_entry"] {
            let dir = manifest_dir().join("tests/fixtures").join(name);
            let out = Command::new(cargo())
                .args(["build", "--lib", "--offline", "--manifest-path"])
                .arg(dir.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", shared_target())
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "building fixture {name} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let lib = shared_target().join("debug").join(format!(
                "{}fixture_{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ));
            assert!(lib.is_file(), "{} missing", lib.display());
            built.insert(name, lib);
        }
        built
    })
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A temp app whose Type `fx.<fixture>Type` points at a copy of the prebuilt fixture
/// library, with instance `fx.<fixture>` (config.json = `config`).
struct FixtureApp {
    dir: tempfile::TempDir,
    app: App,
    loader: NativeLoader,
}

/// Cargo in debug mode, offline: the profile the fixtures are built with.
fn offline_debug() -> CargoOptions {
    CargoOptions {
        release: false,
        offline: true,
        ..CargoOptions::default()
    }
}

fn options(out_dir: PathBuf) -> NativeOptions {
    NativeOptions {
        out_dir,
        target_dir: Some(shared_target()),
        source_root: None,
        from_dist: false,
        cargo: offline_debug(),
    }
}

fn fixture_app(fixtures_used: &[(&str, Value)]) -> FixtureApp {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("elements");
    write(&root.join("fx/meta/e.json"), r#"{"type": ""}"#);
    for (name, config) in fixtures_used {
        let lib = &fixtures()[name];
        let file = lib.file_name().unwrap().to_string_lossy().into_owned();
        let ty = root.join(format!("fx/{name}Type"));
        std::fs::create_dir_all(&ty).unwrap();
        std::fs::copy(lib, ty.join(&file)).unwrap();
        write(
            &ty.join("e.json"),
            &json!({"type": "fx.meta", "backendBundleEntry": "builtin:native", "nativeEntry": format!("./{file}")})
                .to_string(),
        );
        let inst = root.join(format!("fx/{name}"));
        write(
            &inst.join("e.json"),
            &json!({"type": format!("fx.{name}Type")}).to_string(),
        );
        write(&inst.join("config.json"), &config.to_string());
    }
    let tree = load_tree(&root).expect("fixture tree is valid");
    let loader = NativeLoader::new(options(dir.path().join("dist/native")));
    let app = app_of(tree, registry_with(&loader));
    FixtureApp { dir, app, loader }
}

async fn call(app: &App, element: &str, function: &str, args: Value) -> Result<Value, CallError> {
    app.call(element, function, args, ChunkSink::discard())
        .await
}

/// [`call`] that must succeed.
async fn call_ok(app: &App, element: &str, function: &str, args: Value) -> Value {
    call(app, element, function, args).await.unwrap()
}

/// [`call`] that must fail.
async fn call_err(app: &App, element: &str, function: &str, args: Value) -> CallError {
    call(app, element, function, args).await.unwrap_err()
}

/// The keyword example's answer to `question`.
async fn ask(app: &App, question: &str) -> Value {
    let args = json!({ "question": question });
    call_ok(app, "demo.keywordReply", "reply", args).await
}

/// The built-in loaders and `loader`.
fn registry_with(loader: &NativeLoader) -> Registry {
    let mut registry = Registry::with_builtins();
    loader.register(&mut registry);
    registry
}

/// An app of `tree` with an empty environment.
fn app_of(tree: AppTree, registry: Registry) -> App {
    App::new(tree, Env::from_map(HashMap::new()), registry)
}

/// A [`fixture_app`] of `fixture` alone (config `{}`), and the error of a first call of
/// its instance's `function`, which must fail.
async fn first_call_err(fixture: &str, function: &str) -> (FixtureApp, CallError) {
    let fx = fixture_app(&[(fixture, json!({}))]);
    let err = call_err(&fx.app, &format!("fx.{fixture}"), function, json!({})).await;
    (fx, err)
}

/// Asserts that `text` starts with `prefix` and contains every one of `parts`.
fn assert_text(text: &str, prefix: &str, parts: &[&str]) {
    assert!(text.starts_with(prefix), "{text}");
    for part in parts {
        assert!(text.contains(part), "{text}");
    }
}

fn load_failure(e: CallError) -> String {
    match e {
        CallError::Lookup(LookupError::Load(LoadError::Failed { message, .. })) => message,
        other => panic!("expected a failed load, got {other:?}"),
    }
}

#[tokio::test]
async fn abi_mismatch_is_refused_after_reading_only_the_header() {
    let (fx, err) = first_call_err("abi_mismatch", "anything").await;
    let text = err.to_string();
    let want = format!(
        "the library has ABI version {} (table of 8 bytes), this host needs version {}",
        jitnode_plugin::abi::ABI_VERSION + 1,
        jitnode_plugin::abi::ABI_VERSION
    );
    assert_text(
        &text,
        "fx.abi_mismatch: loader builtin:native failed: fx.abi_mismatchType: plugin ABI mismatch in ",
        &[&want],
    );
    // The host is still usable: a second lookup reports the same remembered error.
    let again = call_err(&fx.app, "fx.abi_mismatch", "anything", json!({})).await;
    assert_eq!(again.to_string(), text);
}

#[tokio::test]
async fn a_plugin_built_before_the_schema_abi_is_refused_with_a_rebuild_hint() {
    let (fx, err) = first_call_err("abi_v1", "anything").await;
    let text = load_failure(err);
    assert!(
        text.contains("the library has ABI version 1")
            && text.contains(&format!(
                "this host needs version {}",
                jitnode_plugin::abi::ABI_VERSION
            ))
            && text.contains("rebuild it against jitnode-plugin"),
        "{text}"
    );
    assert_eq!(jitnode_plugin::abi::ABI_VERSION, 2);
    // `check` reports it as a problem of the Type, before anything runs.
    let tree = fx.app.tree();
    let (_, problems) = jitnode_host::loader_schemas(&tree, fx.app.registry()).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = problems[0].to_string();
    assert!(
        p.contains("fx.abi_v1Type: config schema: loader builtin:native could not give it"),
        "{p}"
    );
    assert!(p.contains("ABI version 1"), "{p}");
}

#[tokio::test]
async fn a_library_without_the_entry_symbol_is_named_as_such() {
    let msg = load_failure(first_call_err("no_entry", "x").await.1);
    assert_text(
        &msg,
        "fx.no_entryType: ",
        &["is not a jitnode plugin: it has no symbol jitnode_plugin_entry"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_calls_are_errors_and_the_element_keeps_working() {
    let (fx, err) = first_call_err("panicky", "boom").await;
    match &err {
        CallError::Failed {
            element,
            function,
            message,
        } => {
            assert_eq!(
                (element.as_str(), function.as_str()),
                ("fx.panicky", "boom")
            );
            assert_eq!(message, "native plugin panicked: boom number 1");
        }
        other => panic!("expected a failed call, got {other:?}"),
    }
    assert_eq!(
        call_ok(&fx.app, "fx.panicky", "count", json!({})).await,
        json!({"calls": 2})
    );
    // Several panicking calls at once, on the blocking pool, each caught.
    let boom = || call(&fx.app, "fx.panicky", "boom", json!({}));
    let (a, b, c, d) = tokio::join!(boom(), boom(), boom(), boom());
    for r in [a, b, c, d] {
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("native plugin panicked: boom number"));
    }
    assert_eq!(
        call_ok(&fx.app, "fx.panicky", "count", json!({})).await,
        json!({"calls": 7})
    );
}

#[tokio::test]
async fn a_panic_while_loading_fails_that_element_only() {
    let fx = fixture_app(&[("panicky", json!({"panicOnLoad": true}))]);
    let msg = load_failure(call_err(&fx.app, "fx.panicky", "count", json!({})).await);
    assert!(msg.starts_with("fx.panickyType: native plugin "), "{msg}");
    assert!(
        msg.ends_with("panicked in load: asked to panic while loading fx.panicky"),
        "{msg}"
    );

    // Another instance of the same Type (same library, already loaded) works.
    let root = fx.dir.path().join("elements");
    write(
        &root.join("fx/calm/e.json"),
        r#"{"type": "fx.panickyType"}"#,
    );
    let tree = load_tree(&root).unwrap();
    let mut registry = Registry::new();
    fx.loader.register(&mut registry);
    let app = app_of(tree, registry);
    assert_eq!(
        call_ok(&app, "fx.calm", "count", json!({})).await,
        json!({"calls": 1})
    );
}

#[tokio::test]
async fn invalid_json_from_a_plugin_is_an_error_naming_the_library() {
    let (fx, err) = first_call_err("bad_json", "garbage").await;
    let text = err.to_string();
    assert_text(
        &text,
        "fx.bad_json.garbage failed: native plugin ",
        &[
            "returned invalid JSON: EOF while parsing",
            "libfixture_bad_json-",
        ],
    );
    assert_eq!(
        call_ok(&fx.app, "fx.bad_json", "fine", json!({})).await,
        json!("fine")
    );
}

#[tokio::test]
async fn a_replaced_library_is_loaded_from_a_fresh_file_name() {
    let fx = fixture_app(&[("panicky", json!({}))]);
    let el = fx.app.tree().get("fx.panickyType").unwrap().clone();
    let first = fx.loader.plugin_for(&el).await.unwrap();
    let again = fx.loader.plugin_for(&el).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "unchanged source: same plugin"
    );
    assert!(first
        .path()
        .starts_with(fx.dir.path().join("dist/native/fx.panickyType")));

    // Replace the library in place by another one: a new copy is opened, the old stays.
    let in_type = el.dir.join(fixtures()["panicky"].file_name().unwrap());
    std::fs::copy(&fixtures()["bad_json"], &in_type).unwrap();
    let second = fx.loader.plugin_for(&el).await.unwrap();
    assert_ne!(first.path(), second.path());
    assert!(first.path().is_file());
    assert_eq!(second.rust_type(), "Fine");
    assert_eq!(first.rust_type(), "Panicky");
}

#[tokio::test]
async fn the_keyword_example_is_built_with_cargo_loaded_and_called() {
    let repo = manifest_dir().join("../..");
    let tree = load_tree(&repo.join("elements")).expect("the demo app is valid");
    let out = tempfile::tempdir().unwrap();
    let loader = NativeLoader::new(options(out.path().join("native")));
    let app = app_of(tree, registry_with(&loader));

    let el = app.lookup("demo.keywordReply").await.expect("loads");
    let names: Vec<_> = el.functions().iter().map(|f| f.to_string()).collect();
    assert_eq!(names, ["reply(question: Stext)"]);

    let r = ask(&app, "Can I get a REFUND please?").await;
    assert_eq!(r["matched"], json!(true));
    assert_eq!(r["trigger"], json!("refund"));
    assert!(r["answer"]
        .as_str()
        .unwrap()
        .starts_with("Refunds are accepted within 7 days"));

    let r = ask(&app, "I forgot my password").await;
    assert_eq!((&r["matched"], &r["rule"]), (&json!(true), &json!(2)));

    let r = ask(&app, "What is the meaning of life?").await;
    assert_eq!(r, json!({"matched": false, "answer": null}));

    // The host checks declared arguments before the plugin sees them.
    let err = call_err(&app, "demo.keywordReply", "reply", json!({"q": "x"})).await;
    assert!(matches!(err, CallError::BadArgs { .. }), "{err}");

    let lib = loader
        .plugin_for(app.tree().get("demo.keywordReplyType").unwrap())
        .await
        .unwrap();
    assert!(lib
        .path()
        .starts_with(out.path().join("native/demo.keywordReplyType")));
    assert_eq!(lib.rust_type(), "KeywordReply");

    // Its schema comes through the ABI, and configs are checked against it.
    let schema = lib
        .config_schema()
        .expect("the keyword Type declares a schema");
    let v = schema
        .apply(Some(&json!({"rules": [{"answer": "x"}], "extra": 1})))
        .unwrap_err();
    let fields: Vec<_> = v
        .iter()
        .map(|v| (v.field.as_str(), v.expected.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("extra", "unknown field (known fields: rules)"),
            ("rules[0]", "a rule needs \"keywords\" or \"patterns\""),
        ]
    );
}

#[tokio::test]
async fn a_build_error_is_shown_in_full_and_other_elements_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("elements");
    write(&root.join("fx/meta/e.json"), r#"{"type": ""}"#);
    write(
        &root.join("fx/brokenType/e.json"),
        r#"{"type": "fx.meta", "backendBundleEntry": "native:./plugin"}"#,
    );
    write(
        &root.join("fx/brokenType/plugin/Cargo.toml"),
        "[package]\nname = \"broken_fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n",
    );
    write(
        &root.join("fx/brokenType/plugin/src/lib.rs"),
        "pub fn f() -> u32 { not_defined_anywhere }\n",
    );
    write(
        &root.join("fx/broken/e.json"),
        r#"{"type": "fx.brokenType"}"#,
    );
    write(
        &root.join("fx/echoType/e.json"),
        r#"{"type": "fx.meta", "backendBundleEntry": "builtin:echo"}"#,
    );
    write(&root.join("fx/hello/e.json"), r#"{"type": "fx.echoType"}"#);
    let tree = load_tree(&root).unwrap();
    let loader = NativeLoader::new(options(dir.path().join("dist/native")));
    let app = app_of(tree, registry_with(&loader));

    let msg = load_failure(call_err(&app, "fx.broken", "x", json!({})).await);
    assert_text(
        &msg,
        "fx.brokenType: cargo build of ",
        &[
            "cannot find value `not_defined_anywhere` in this scope",
            "src/lib.rs:1:",
        ],
    );
    assert_eq!(
        call_ok(&app, "fx.hello", "echo", json!({"a": 1})).await,
        json!({"a": 1})
    );
}

/// `jitnode run` loads elements from their copies in dist/, one level deeper than the
/// sources: the example's crate is built from its source folder, where its relative path
/// dependency on crates/plugin resolves.
#[tokio::test]
async fn from_dist_the_keyword_example_is_built_from_its_sources() {
    let app_dir = demo_copy();

    let for_app = NativeOptions::for_app(app_dir.path());
    let loader = NativeLoader::new(NativeOptions {
        out_dir: for_app.out_dir,
        source_root: for_app.source_root,
        ..options(PathBuf::new())
    });
    let (app, _) = App::open(app_dir.path(), false, registry_with(&loader)).expect("opens");
    let ty = app.tree().get("demo.keywordReplyType").unwrap().clone();
    assert!(
        ty.dir.starts_with(app_dir.path().join("dist")),
        "{}",
        ty.dir.display()
    );

    let r = ask(&app, "营业时间是几点？").await;
    assert_eq!((&r["matched"], &r["rule"]), (&json!(true), &json!(0)));
    let lib = loader.plugin_for(&ty).await.unwrap();
    assert!(lib
        .path()
        .starts_with(app_dir.path().join("dist/native/demo.keywordReplyType")));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != "target" {
                copy_dir(&e.path(), &dest);
            }
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// An app folder holding a copy of the demo's elements/demo; its crates/ is a link to the
/// repository's, as in the repository itself (the demo app).
fn demo_copy() -> tempfile::TempDir {
    let repo = manifest_dir().join("../..").canonicalize().unwrap();
    let app_dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo.join("elements/demo"),
        &app_dir.path().join("elements/demo"),
    );
    std::os::unix::fs::symlink(repo.join("crates"), app_dir.path().join("crates")).unwrap();
    app_dir
}

/// A [`demo_copy`] with dist/ built and the keyword Type's library built into dist/native
/// and recorded. Returns the app folder and the recorded library.
async fn built_demo_app() -> (tempfile::TempDir, PathBuf) {
    let app_dir = demo_copy();
    let (tree, _) = jitnode_dist::build(app_dir.path()).expect("dist builds");
    let loader = NativeLoader::new(NativeOptions {
        target_dir: Some(shared_target()),
        ..sources_options(app_dir.path())
    });
    let built = loader
        .build(tree.get("demo.keywordReplyType").unwrap())
        .await
        .expect("the keyword plugin builds")
        .expect("it is a crate");
    assert!(built.rebuilt);
    (app_dir, built.library)
}

/// [`NativeOptions::for_app`] in debug mode, offline.
fn sources_options(app_dir: &Path) -> NativeOptions {
    NativeOptions {
        cargo: offline_debug(),
        ..NativeOptions::for_app(app_dir)
    }
}

/// `options` with a cargo that does not exist: running it would fail.
fn without_cargo(options: NativeOptions) -> NativeOptions {
    NativeOptions {
        cargo: CargoOptions {
            cargo: PathBuf::from("/nonexistent/cargo"),
            ..CargoOptions::default()
        },
        ..options
    }
}

/// [`NativeOptions::for_dist`] without cargo.
fn dist_options(app_dir: &Path) -> NativeOptions {
    without_cargo(NativeOptions::for_dist(app_dir))
}

fn open_from_dist(app_dir: &Path) -> App {
    let registry = registry_with(&NativeLoader::new(dist_options(app_dir)));
    App::open(app_dir, true, registry)
        .expect("opens from dist")
        .0
}

/// `run --from-dist`: the native instance does not start with the app; its first lookup
/// loads the library recorded in dist/, without cargo and without the sources.
#[tokio::test]
async fn from_dist_the_recorded_library_loads_on_first_lookup_without_cargo() {
    let (app_dir, library) = built_demo_app().await;
    std::fs::remove_dir_all(app_dir.path().join("elements")).unwrap();
    std::fs::remove_file(app_dir.path().join("crates")).unwrap();
    let app = open_from_dist(app_dir.path());
    let started = app.start().await;
    assert!(started.failed.is_empty(), "{:?}", started.failed);
    assert!(!app.running().contains(&"demo.keywordReply".to_string()));

    let r = ask(&app, "refund").await;
    assert_eq!(r["trigger"], json!("refund"));
    assert!(app.running().contains(&"demo.keywordReply".to_string()));
    let loader = NativeLoader::new(dist_options(app_dir.path()));
    let plugin = loader
        .plugin_for(app.tree().get("demo.keywordReplyType").unwrap())
        .await
        .unwrap();
    assert_eq!(plugin.path(), library);
}

/// From dist, a recorded library that does not fit is one error naming the Type and what
/// differs: its file changed, another target, another ABI, other sources, no record.
#[tokio::test]
async fn from_dist_a_library_that_does_not_fit_its_record_is_a_clear_error() {
    let (app_dir, library) = built_demo_app().await;
    let record = record_of(app_dir.path());
    let good_record = std::fs::read_to_string(&record).unwrap();
    let failure = || async {
        let app = open_from_dist(app_dir.path());
        load_failure(call_err(&app, "demo.keywordReply", "reply", json!({"question": "x"})).await)
    };

    // Replaced by rename, never rewritten in place: this process has the library mapped.
    let replace = |bytes: &[u8]| {
        let tmp = library.with_extension("tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &library).unwrap();
    };
    let good = std::fs::read(&library).unwrap();
    let mut tampered = good.clone();
    tampered.extend_from_slice(b"tampered");
    replace(&tampered);
    assert_text(
        &failure().await,
        "demo.keywordReplyType: the library recorded in ",
        &[
            "does not match the record (recorded hash ",
            "rebuild it with `jitnode build` where the element sources are",
        ],
    );
    replace(&good);

    let target = jitnode_native::HOST_TARGET;
    std::fs::write(
        &record,
        good_record.replace(target, "riscv64gc-unknown-none-elf"),
    )
    .unwrap();
    let m = failure().await;
    assert!(
        m.contains(&format!(
            "it was built for target riscv64gc-unknown-none-elf, this host is {target}"
        )),
        "{m}"
    );
    std::fs::write(
        &record,
        good_record.replace(&abi_field(jitnode_plugin::abi::ABI_VERSION), &abi_field(7)),
    )
    .unwrap();
    let m = failure().await;
    let want = format!(
        "it was built for plugin ABI version 7, this host needs version {}",
        jitnode_plugin::abi::ABI_VERSION
    );
    assert!(m.contains(&want), "{m}");
    std::fs::write(&record, &good_record).unwrap();

    // The crate copy in dist/ is not what the library was built from.
    let copy = app_dir
        .path()
        .join("dist/e/demo")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("keywordReplyType."))
        .unwrap();
    let lib_rs = copy.join("plugin/src/lib.rs");
    let src = std::fs::read_to_string(&lib_rs).unwrap();
    std::fs::write(&lib_rs, format!("{src}\n// edited\n")).unwrap();
    let m = failure().await;
    assert!(m.contains("it was built from other plugin sources"), "{m}");
    std::fs::write(&lib_rs, &src).unwrap();

    std::fs::remove_file(&record).unwrap();
    assert_text(
        &failure().await,
        "demo.keywordReplyType: dist/ holds no built library for this native Type",
        &["a dist-only app has no sources to build one"],
    );
}

/// With sources, an unchanged crate loads its recorded library without cargo; a record
/// for another ABI version makes it rebuild (here: try to, with a cargo that is missing).
#[tokio::test]
async fn with_sources_cargo_runs_only_when_sources_or_abi_differ() {
    let (app_dir, library) = built_demo_app().await;
    let no_cargo = || without_cargo(NativeOptions::for_app(app_dir.path()));
    let (tree, _) = jitnode_dist::ensure(app_dir.path()).unwrap();
    let ty = tree.get("demo.keywordReplyType").unwrap();
    let plugin = NativeLoader::new(no_cargo()).plugin_for(ty).await.unwrap();
    assert_eq!(plugin.path(), library);

    let record = record_of(app_dir.path());
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(
        &record,
        text.replace(&abi_field(jitnode_plugin::abi::ABI_VERSION), &abi_field(7)),
    )
    .unwrap();
    let e = NativeLoader::new(no_cargo())
        .plugin_for(ty)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("demo.keywordReplyType: cannot run cargo (/nonexistent/cargo)"),
        "{e}"
    );

    std::fs::write(&record, &text).unwrap();
    let src = app_dir
        .path()
        .join("elements/demo/keywordReplyType/plugin/src/lib.rs");
    let code = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, format!("{code}\n// edited\n")).unwrap();
    let e = NativeLoader::new(no_cargo())
        .plugin_for(ty)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot run cargo"), "{e}");
}

/// Where dist/ records the keyword Type's built library.
fn record_of(app_dir: &Path) -> PathBuf {
    app_dir.join("dist/native/demo.keywordReplyType/library.json")
}

/// The record's ABI field as the record writes it.
fn abi_field(version: u32) -> String {
    format!("\"abiVersion\": {version}")
}
