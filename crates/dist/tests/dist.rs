use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jitnode_dist::{build, ensure, load, BuildReport, DistError};
use jitnode_element::{load_tree, render_config, Env};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dst);
        } else {
            fs::copy(entry.path(), &dst).unwrap();
        }
    }
}

/// A fresh app folder holding a copy of the good fixture's elements.
fn app() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("good/elements"), &tmp.path().join("elements"));
    tmp
}

/// An [`app`] whose dist/ has been built once.
fn built_app() -> tempfile::TempDir {
    let app = app();
    build(app.path()).unwrap();
    app
}

/// Every element of the good fixture, sorted, as the element loader reads it (the list
/// itself is pinned by jitnode-element's tests/tree.rs).
fn all() -> Vec<String> {
    let tree = load_tree(&fixture("good/elements")).expect("good fixture has no problems");
    let names: Vec<String> = tree.elements.into_keys().collect();
    assert_eq!(names.len(), 12, "{names:?}");
    names
}

fn all_but(name: &str) -> Vec<String> {
    all().into_iter().filter(|n| n != name).collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn rec(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                rec(base, &e.path(), out);
            } else {
                out.push(
                    e.path()
                        .strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    rec(dir, dir, &mut out);
    out.sort();
    out
}

/// Rewrites a file keeping its size and mtime (what a stat check cannot see).
fn rewrite_keeping_stat(path: &Path, content: &[u8]) {
    let before = fs::metadata(path).unwrap();
    assert_eq!(before.len() as usize, content.len(), "same size required");
    fs::write(path, content).unwrap();
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
}

fn set_mtime(path: &Path, t: SystemTime) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn cold_build_writes_unrendered_files_and_manifest() {
    let app = app();
    fs::write(
        app.path().join(".env"),
        "DINGTALK_CLIENT_SECRET=env-file-secret-xyz\n",
    )
    .unwrap();
    let (tree, report) = build(app.path()).unwrap();
    assert!(report.full);
    assert_eq!(report.rebuilt, all());
    assert!(report.reused.is_empty() && report.removed.is_empty());
    let dist = app.path().join("dist");
    assert!(dist.join("manifest.json").is_file());

    let demo = tree.get("imRobots.dingTalkDemo").unwrap();
    assert!(demo.dir.starts_with(&dist), "{}", demo.dir.display());
    assert_eq!(
        demo.chain,
        [
            "imRobots.dingTalkDemo",
            "imRobots.dingTalkStreamType",
            "imRobots.meta"
        ]
    );
    // Own files only, hidden ones (.env) excluded, config unrendered.
    assert_eq!(
        files_under(&demo.dir),
        ["config.json", "docs/readme.md", "e.json"]
    );
    let cfg = fs::read_to_string(demo.dir.join("config.json")).unwrap();
    assert!(
        cfg.contains("\"{{DINGTALK_CLIENT_ID}}\"") && cfg.contains("<<DINGTALK_CLIENT_SECRET>>")
    );
    let ty = tree.get("imRobots.dingTalkStreamType").unwrap();
    assert_eq!(
        files_under(&ty.dir),
        [
            "backend/handler.txt",
            "backend/nested/e.json",
            "e.json",
            "frontend/e.json",
            "frontend/index.js"
        ]
    );
    // No secret anywhere in dist (neither the element's hidden .env nor the app's .env).
    for f in files_under(&dist) {
        let bytes = fs::read(dist.join(&f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("must-never-be-copied"), "{f}");
        assert!(!text.contains("env-file-secret-xyz"), "{f}");
    }
    // Manifest records elements, chains, hashes and the host version.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dist.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["hostVersion"], jitnode_dist::HOST_VERSION);
    let e = &m["elements"]["imRobots.dingTalkDemo"];
    assert_eq!(e["chain"][1], "imRobots.dingTalkStreamType");
    assert_eq!(e["src"], "imRobots/dingTalkDemo");
    assert_eq!(e["hash"].as_str().unwrap().len(), 16);
    assert_eq!(e["files"].as_array().unwrap().len(), 3);
    // No temporary folders are left beside dist.
    let leftovers: Vec<_> = fs::read_dir(app.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".dist"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unchanged_tree_starts_from_dist_without_reading_sources() {
    let app = built_app();
    let ejson = app.path().join("elements/data/thing/e.json");
    let original = fs::read(&ejson).unwrap();
    // Same size, same mtime, broken content: invisible to the stat check, so if `ensure`
    // parsed sources it would fail.
    let mut garbage = original.clone();
    garbage[0] = b'#';
    rewrite_keeping_stat(&ejson, &garbage);

    let (tree, report) = ensure(app.path()).unwrap();
    assert!(report.up_to_date(), "{report:?}");
    assert_eq!(report.reused, all());
    assert_eq!(
        tree.get("data.thing").unwrap().chain,
        ["data.thing", "data.plain"]
    );

    // `build` hashes everything, so it does see the change.
    let err = build(app.path()).unwrap_err().to_string();
    assert!(
        err.contains("data/thing/e.json:1:1: data.thing: invalid JSON"),
        "{err}"
    );
}

#[test]
fn changing_one_file_rebuilds_only_its_element() {
    let app = app();
    let (before, _) = build(app.path()).unwrap();
    let cfg = app
        .path()
        .join("elements/imRobots/dingTalkDemo/config.json");
    let text = fs::read_to_string(&cfg).unwrap().replace("8080", "9090");
    fs::write(&cfg, text).unwrap();
    // Make sure the mtime differs even on coarse clocks.
    set_mtime(&cfg, SystemTime::now() + Duration::from_secs(5));

    let (after, report) = ensure(app.path()).unwrap();
    assert_eq!(
        report,
        BuildReport {
            rebuilt: names(&["imRobots.dingTalkDemo"]),
            reused: all_but("imRobots.dingTalkDemo"),
            removed: vec![],
            full: false,
        }
    );
    let old_dir = &before.get("imRobots.dingTalkDemo").unwrap().dir;
    let new_dir = &after.get("imRobots.dingTalkDemo").unwrap().dir;
    assert_ne!(old_dir, new_dir);
    assert!(!old_dir.exists(), "the replaced copy is deleted");
    assert!(fs::read_to_string(new_dir.join("config.json"))
        .unwrap()
        .contains("9090"));
    for n in all_but("imRobots.dingTalkDemo") {
        assert_eq!(
            before.get(&n).unwrap().dir,
            after.get(&n).unwrap().dir,
            "{n}"
        );
    }
    // And now it is up to date again.
    assert!(ensure(app.path()).unwrap().1.up_to_date());
}

#[test]
fn touching_without_changing_content_rebuilds_nothing() {
    let app = built_app();
    let f = app.path().join("elements/corps/meta/e.json");
    set_mtime(&f, SystemTime::now() + Duration::from_secs(3));
    let (_, report) = ensure(app.path()).unwrap();
    assert!(report.rebuilt.is_empty() && !report.full, "{report:?}");
    assert_eq!(report.reused, all());
}

#[test]
fn racy_same_size_change_is_still_detected() {
    let app = built_app();
    // A file whose recorded mtime is not older than the build stamp is re-hashed even
    // when size and mtime look unchanged.
    let f = app.path().join("elements/data/plain/e.json");
    let future = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&f, future);
    let (_, r) = ensure(app.path()).unwrap();
    assert!(r.rebuilt.is_empty(), "{r:?}");
    let content = fs::read(&f).unwrap();
    let changed = String::from_utf8(content)
        .unwrap()
        .replace("\"type\": \"\"", "\"type\":\"\" ");
    rewrite_keeping_stat(&f, changed.as_bytes());
    set_mtime(&f, future);
    let (_, r) = ensure(app.path()).unwrap();
    assert_eq!(r.rebuilt, names(&["data.plain"]), "{r:?}");
}

#[test]
fn deleting_dist_rebuilds_everything() {
    let app = built_app();
    fs::remove_dir_all(app.path().join("dist")).unwrap();
    let (tree, report) = ensure(app.path()).unwrap();
    assert!(report.full);
    assert_eq!(report.rebuilt, all());
    assert_eq!(tree.len(), 12);
}

#[test]
fn corrupt_or_foreign_manifest_means_full_rebuild_not_a_crash() {
    let app = built_app();
    let manifest = app.path().join("dist/manifest.json");
    let good = fs::read_to_string(&manifest).unwrap();
    let corruptions = [
        "".to_string(),
        "{not json".to_string(),
        good[..good.len() / 2].to_string(),
        good.replace(jitnode_dist::HOST_VERSION, "0.0.0-other"),
        good.replace("\"dir\":\"e/", "\"dir\":\"../../"),
        "[1,2,3]".to_string(),
    ];
    for bad in corruptions {
        fs::write(&manifest, &bad).unwrap();
        let (tree, report) = ensure(app.path()).unwrap();
        assert!(report.full, "{bad:.40}");
        assert_eq!(report.rebuilt, all());
        assert_eq!(tree.len(), 12);
        // `load` refuses a corrupt manifest with a clear error instead of panicking.
        fs::write(&manifest, &bad).unwrap();
        let err = load(app.path()).unwrap_err();
        assert!(matches!(err, DistError::NoDist { .. }), "{err}");
        assert!(err.to_string().contains("no usable dist"), "{err}");
        build(app.path()).unwrap();
    }
}

#[test]
fn added_and_removed_elements() {
    let app = built_app();
    let new = app.path().join("elements/data/other");
    fs::create_dir_all(&new).unwrap();
    fs::write(new.join("e.json"), r#"{"type": "data.plain"}"#).unwrap();
    fs::remove_dir_all(app.path().join("elements/corps")).unwrap();
    let (tree, report) = ensure(app.path()).unwrap();
    assert_eq!(report.rebuilt, names(&["data.other"]));
    assert_eq!(
        report.removed,
        names(&["corps.meta", "corps.models.CorpMember"])
    );
    assert!(tree.get("corps.meta").is_none());
    assert_eq!(
        tree.get("data.other").unwrap().chain,
        ["data.other", "data.plain"]
    );
    // The removed elements' copies (and their emptied namespace folder) are gone.
    assert!(!app.path().join("dist/e/corps").exists());
    let e_json_copies = files_under(&app.path().join("dist/e"))
        .into_iter()
        .filter(|f| f.ends_with("e.json"))
        .count();
    // 11 elements, plus the two e.json files inside dingTalkStreamType's bundle folders.
    assert_eq!(e_json_copies, 13);
}

#[test]
fn type_change_updates_chains_of_reused_instances() {
    let app = built_app();
    // Re-parent data.plain under corps.meta: data.thing's files are untouched but its chain
    // changes.
    let f = app.path().join("elements/data/plain/e.json");
    fs::write(&f, r#"{"type": "corps.meta"}"#).unwrap();
    set_mtime(&f, SystemTime::now() + Duration::from_secs(5));
    let (tree, report) = ensure(app.path()).unwrap();
    assert_eq!(report.rebuilt, names(&["data.plain"]));
    assert_eq!(
        tree.get("data.thing").unwrap().chain,
        ["data.thing", "data.plain", "corps.meta"]
    );
    let loaded = load(app.path()).unwrap();
    assert_eq!(
        loaded.get("data.thing").unwrap().chain,
        tree.get("data.thing").unwrap().chain
    );
}

#[test]
fn load_runs_from_dist_alone() {
    let app = app();
    let (built, _) = build(app.path()).unwrap();
    fs::remove_dir_all(app.path().join("elements")).unwrap();

    let tree = load(app.path()).unwrap();
    assert_eq!(tree, built);
    let demo = tree.get("imRobots.dingTalkDemo").unwrap();
    assert!(demo.dir.starts_with(app.path().join("dist")));
    assert_eq!(demo.read_file("docs/readme.md").unwrap(), b"# demo\n");
    let env = Env::from_map(
        [
            ("DINGTALK_CLIENT_ID", "id"),
            ("DINGTALK_CLIENT_SECRET", "sec"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let cfg = render_config(demo, &env).unwrap().unwrap();
    assert_eq!(cfg["clientSecret"], "sec");
    assert_eq!(
        tree.loader_of("imRobots.dingTalkDemo").unwrap().full_name,
        "imRobots.dingTalkStreamType"
    );

    // The start path also runs from dist when there are no sources.
    let (tree2, report) = ensure(app.path()).unwrap();
    assert!(report.up_to_date());
    assert_eq!(tree2, built);
    // `build` needs sources.
    let err = build(app.path()).unwrap_err();
    assert!(matches!(err, DistError::NoSources { .. }), "{err}");
}

#[test]
fn load_without_dist_or_with_a_missing_element_copy_is_an_error() {
    let app = app();
    let err = load(app.path()).unwrap_err().to_string();
    assert!(err.contains("no usable dist (no manifest.json)"), "{err}");

    let (tree, _) = build(app.path()).unwrap();
    fs::remove_dir_all(&tree.get("data.thing").unwrap().dir).unwrap();
    let err = load(app.path()).unwrap_err().to_string();
    assert!(err.contains("is missing"), "{err}");
    // The start path repairs it.
    let (tree, report) = ensure(app.path()).unwrap();
    assert!(report.full);
    assert!(tree.get("data.thing").unwrap().dir.is_dir());
}

#[test]
fn source_problems_fail_the_build_and_leave_dist_untouched() {
    let app = built_app();
    let manifest = app.path().join("dist/manifest.json");
    let before = fs::read(&manifest).unwrap();
    let dirs_before = files_under(&app.path().join("dist"));

    // One bad e.json, one changed good element, one new element with a missing type.
    let cfg = app
        .path()
        .join("elements/imRobots/dingTalkDemo/docs/readme.md");
    fs::write(&cfg, "# changed\n").unwrap();
    set_mtime(&cfg, SystemTime::now() + Duration::from_secs(5));
    fs::write(app.path().join("elements/data/thing/e.json"), "{\"type\": ").unwrap();
    let n = app.path().join("elements/data/orphan");
    fs::create_dir_all(&n).unwrap();
    fs::write(n.join("e.json"), r#"{"type": "data.nothing"}"#).unwrap();

    let err = ensure(app.path()).unwrap_err();
    let DistError::Problems(p) = &err else {
        panic!("{err}")
    };
    let text = p.to_string();
    assert!(
        text.contains("data/thing/e.json:1:9: data.thing: invalid JSON"),
        "{text}"
    );
    assert!(
        text.contains("data/orphan/e.json: data.orphan: type \"data.nothing\" names no element"),
        "{text}"
    );
    assert_eq!(p.len(), 2, "{text}");
    assert_eq!(fs::read(&manifest).unwrap(), before);
    assert_eq!(files_under(&app.path().join("dist")), dirs_before);
    // The old dist still loads whole.
    assert_eq!(load(app.path()).unwrap().len(), 12);
}

#[test]
fn leftovers_of_a_crashed_build_never_load_and_are_cleaned() {
    let app = app();
    // A crash during a cold build leaves only a temporary folder (of a process that is gone:
    // the pid is above any pid_max), and no dist at all.
    let tmp = app.path().join(".dist-tmp-4194305-1");
    fs::create_dir_all(tmp.join("e/half-0000")).unwrap();
    assert!(load(app.path()).is_err());
    let (_, report) = ensure(app.path()).unwrap();
    assert!(report.full);
    assert!(!tmp.exists());

    // A crash during an incremental build leaves an unreferenced element folder; the
    // manifest still describes the old, complete dist.
    let stray = app.path().join("dist/e/data/thing.ffffffffffffffff");
    fs::create_dir_all(&stray).unwrap();
    fs::write(stray.join("e.json"), "half").unwrap();
    assert_eq!(load(app.path()).unwrap().len(), 12);
    let f = app.path().join("elements/data/thing/e.json");
    fs::write(&f, r#"{"type": "data.plain", "title": "t"}"#).unwrap();
    set_mtime(&f, SystemTime::now() + Duration::from_secs(5));
    let (_, report) = ensure(app.path()).unwrap();
    assert_eq!(report.rebuilt, names(&["data.thing"]));
    assert!(!stray.exists());
}

#[test]
fn build_on_an_unchanged_tree_rewrites_nothing() {
    let app = app();
    let (first, _) = build(app.path()).unwrap();
    let (second, report) = build(app.path()).unwrap();
    assert_eq!(
        report,
        BuildReport {
            rebuilt: vec![],
            reused: all(),
            removed: vec![],
            full: false,
        }
    );
    assert_eq!(first, second);
}

#[test]
fn a_symlink_leaving_the_element_root_fails_the_build_and_is_never_copied() {
    let app = app();
    let secret = app.path().join("credentials");
    fs::write(&secret, "aws_secret_access_key = s3cr3t").unwrap();
    let link = app.path().join("elements/imRobots/dingTalkDemo/docs/x.md");
    std::os::unix::fs::symlink(&secret, &link).unwrap();

    let err = build(app.path()).unwrap_err();
    let DistError::Problems(p) = &err else {
        panic!("{err}")
    };
    let text = p.to_string();
    assert_eq!(p.len(), 1, "{text}");
    assert!(text.contains(&link.display().to_string()), "{text}");
    assert!(text.contains("imRobots.dingTalkDemo"), "{text}");
    assert!(text.contains("lies outside the element root"), "{text}");
    assert!(!app.path().join("dist/manifest.json").exists());

    // A link to a file inside the root is copied as that file's content.
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(
        app.path()
            .join("elements/imRobots/dingTalkDemo/docs/readme.md"),
        &link,
    )
    .unwrap();
    build(app.path()).unwrap();
    let copied: Vec<String> = files_under(&app.path().join("dist"))
        .into_iter()
        .filter(|f| f.ends_with("docs/x.md"))
        .collect();
    assert_eq!(copied.len(), 1, "{copied:?}");
    let bytes = fs::read(app.path().join("dist").join(&copied[0])).unwrap();
    assert_eq!(bytes, b"# demo\n");
    for f in files_under(&app.path().join("dist")) {
        let bytes = fs::read(app.path().join("dist").join(&f)).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"), "{f}");
    }
}

/// dist/native is the native loader's: a full rebuild (here forced by another host
/// version in the manifest) keeps its libraries and records, and an incremental one never
/// touches it.
#[test]
fn full_and_incremental_builds_keep_dist_native() {
    let app = built_app();
    let lib = app
        .path()
        .join("dist/native/demo.kwType/libkw-0123456789abcdef.so");
    fs::create_dir_all(lib.parent().unwrap()).unwrap();
    fs::write(&lib, b"library bytes").unwrap();
    let manifest = app.path().join("dist/manifest.json");
    let good = fs::read_to_string(&manifest).unwrap();
    fs::write(
        &manifest,
        good.replace(jitnode_dist::HOST_VERSION, "0.0.0-other"),
    )
    .unwrap();
    let (_, report) = build(app.path()).unwrap();
    assert!(report.full);
    assert_eq!(fs::read(&lib).unwrap(), b"library bytes");

    fs::write(
        app.path().join("elements/data/plain/e.json"),
        r#"{"type": "", "title": "changed"}"#,
    )
    .unwrap();
    let (_, report) = build(app.path()).unwrap();
    assert!(!report.full && report.rebuilt == names(&["data.plain"]));
    assert_eq!(fs::read(&lib).unwrap(), b"library bytes");
}
