mod common;

use common::{copy_tree, fixture};
use jitnode_element::{load_tree, walk, LoadTime, ProblemKind};

#[test]
fn good_tree_names_chains_and_loaders() {
    let tree = load_tree(&fixture("good/elements")).expect("good fixture has no problems");
    let names: Vec<&str> = tree.elements.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "aiagents.Meta",
            "aiagents.ReActType",
            "aiagents.SpecialType",
            "aiagents.ragTest",
            "corps.meta",
            "corps.models.CorpMember",
            "data.plain",
            "data.thing",
            "imRobots.dingTalkDemo",
            "imRobots.dingTalkStreamType",
            "imRobots.dingTalkStreamType.Editor",
            "imRobots.meta",
        ]
    );
    let demo = tree.get("imRobots.dingTalkDemo").unwrap();
    assert_eq!(
        demo.chain,
        [
            "imRobots.dingTalkDemo",
            "imRobots.dingTalkStreamType",
            "imRobots.meta"
        ]
    );
    assert_eq!(demo.def.backend_load_time, Some(LoadTime::AfterAppInit));
    assert_eq!(demo.name(), "dingTalkDemo");
    assert_eq!(demo.meta(), "imRobots.meta");
    assert!(!demo.is_meta());
    assert!(tree.get("imRobots.meta").unwrap().is_meta());
    assert_eq!(
        tree.get("aiagents.ragTest").unwrap().chain,
        [
            "aiagents.ragTest",
            "aiagents.SpecialType",
            "aiagents.ReActType",
            "aiagents.Meta"
        ]
    );
    assert_eq!(
        tree.get("aiagents.ragTest").unwrap().def.backend_load_time,
        Some(LoadTime::BeforeHandleRequest)
    );

    // Nearest loader up the chain, never the element itself.
    assert_eq!(
        tree.loader_of("imRobots.dingTalkDemo").unwrap().full_name,
        "imRobots.dingTalkStreamType"
    );
    assert_eq!(
        tree.loader_of("aiagents.ragTest").unwrap().full_name,
        "aiagents.ReActType"
    );
    assert!(tree.loader_of("imRobots.dingTalkStreamType").is_none());
    assert!(tree.loader_of("data.thing").is_none());
    assert!(tree.loader_of("no.such").is_none());

    // Unknown keys are kept for the Type.
    let ty = tree.get("imRobots.dingTalkStreamType").unwrap();
    assert_eq!(ty.def.raw["db"], "default");
    assert_eq!(ty.def.raw["inputArgs"][0]["name"], "clientId");
    assert_eq!(
        ty.def.backend_bundle_entry.as_deref(),
        Some("builtin:dingTalkStream")
    );
    let member = tree.get("corps.models.CorpMember").unwrap();
    assert_eq!(member.def.function_list.as_ref().unwrap()[0]["name"], "get");
    assert_eq!(member.def.title.as_deref(), Some("Member"));
}

#[test]
fn children_by_type_groups_what_children_of_finds() {
    let tree = load_tree(&fixture("good/elements")).expect("good fixture has no problems");
    let by_type = tree.children_by_type();
    let grouped: usize = by_type.values().map(Vec::len).sum();
    assert_eq!(grouped, tree.len() - tree.metas().count());
    for el in tree.elements.values() {
        let want: Vec<&str> = tree
            .children_of(&el.full_name)
            .map(|c| c.full_name.as_str())
            .collect();
        let got: Vec<&str> = by_type
            .get(el.full_name.as_str())
            .into_iter()
            .flatten()
            .map(|c| c.full_name.as_str())
            .collect();
        assert_eq!(got, want, "children of {}", el.full_name);
    }
}

#[test]
fn walk_assigns_files_to_their_element() {
    let (found, problems) = walk(&fixture("good/elements"));
    assert!(problems.is_empty(), "{problems:?}");
    let ty = found
        .iter()
        .find(|f| f.full_name == "imRobots.dingTalkStreamType")
        .unwrap();
    // frontend/ and backend/ belong to the element (their e.json files create no names);
    // the nested Editor element's files do not.
    assert_eq!(
        ty.files,
        [
            "backend/handler.txt",
            "backend/nested/e.json",
            "e.json",
            "frontend/e.json",
            "frontend/index.js"
        ]
    );
    assert_eq!(ty.rel_dir, "imRobots/dingTalkStreamType");
    let demo = found
        .iter()
        .find(|f| f.full_name == "imRobots.dingTalkDemo")
        .unwrap();
    // Hidden files (.env) never belong to an element.
    assert_eq!(demo.files, ["config.json", "docs/readme.md", "e.json"]);
}

#[test]
fn hidden_dist_and_target_folders_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    copy_tree(&fixture("good/elements"), &root);
    for skipped in [
        "dist/x",
        "target/y",
        ".git/z",
        "imRobots/dingTalkDemo/target/w",
    ] {
        let d = root.join(skipped);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("e.json"), r#"{"type": ""}"#).unwrap();
    }
    let tree = load_tree(&root).unwrap();
    assert_eq!(tree.len(), 12);
    assert!(tree.get("dist.x").is_none());
    assert!(tree.get("target.y").is_none());
    assert!(tree.get("imRobots.dingTalkDemo.target.w").is_none());
}

#[test]
fn bad_tree_reports_every_problem_with_its_file() {
    let root = fixture("bad/elements");
    let problems = load_tree(&root).expect_err("bad fixture must fail");
    let text = problems.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let line_for = |needle: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no problem line containing {needle:?} in:\n{text}"))
    };

    // Invalid JSON with line:column.
    let l = line_for("a/meta/e.json:3:3: a.meta: invalid JSON");
    assert!(l.contains("expected `,` or `}`"), "{l}");
    assert!(line_for("a/notObject/e.json: a.notObject:")
        .contains("must be a JSON object, found an array"));
    assert!(line_for("a/typeNumber/e.json: a.typeNumber:").contains("\"type\" must be a string"));
    assert!(line_for("a/noType/e.json: a.noType:").contains("has no \"type\""));
    let l = line_for("a/loadTime/e.json: a.loadTime:");
    assert!(
        l.contains("backendLoadTime \"atStartup\" is not allowed"),
        "{l}"
    );
    assert!(
        l.contains(
            "\"afterAppInit\", \"beforeHandleRequest\", or no backendLoadTime at all (on demand)"
        ),
        "{l}"
    );
    assert!(
        line_for("a/orphan/e.json: a.orphan:").contains("type \"a.ghostType\" names no element")
    );
    assert!(line_for("a/orphanChild/e.json: a.orphanChild:")
        .contains("type chain a.orphanChild -> a.orphan -> a.ghostType is broken: \"a.ghostType\" names no element"));
    assert!(line_for("a/dependsOnBroken/e.json: a.dependsOnBroken:")
        .contains("type \"a.meta\" is an element whose e.json has problems"));
    assert!(line_for("a/c1/e.json: a.c1:").contains("type cycle: a.c1 -> a.c2 -> a.c1"));
    assert!(line_for("a/intoCycle/e.json: a.intoCycle:")
        .contains("leads into a type cycle through \"a.c2\""));
    assert!(line_for("a/self/e.json: a.self:").contains("type cycle: a.self -> a.self"));
    assert!(line_for("a/bad name/e.json:")
        .contains("folder name \"bad name\" cannot be part of a fullName"));
    assert!(line_for("a/bad name/e.json:").contains("[A-Za-z_][A-Za-z0-9_-]*"));
    assert!(line_for("a/1x/e.json:").contains("folder name \"1x\""));
    assert!(line_for("a/dot.ted/e.json:").contains("folder name \"dot.ted\""));
    assert!(line_for("a/latin/e.json: a.latin:").contains("not valid UTF-8"));
    assert!(line_for("a/namespaceType/e.json: a.namespaceType:")
        .contains("type \"a\" names no element"));
    assert!(line_for("a/entryNumber/e.json: a.entryNumber:")
        .contains("\"backendBundleEntry\" must be a string, found a number"));

    // Each cycle once; nothing else.
    assert_eq!(text.matches("type cycle: a.c1").count(), 1, "{text}");
    assert_eq!(problems.len(), 17, "{text}");
    // Every problem names a file under the fixture.
    assert!(problems.iter().all(|p| p.file.starts_with(&root)));
    let json = problems
        .iter()
        .find(|p| matches!(p.kind, ProblemKind::InvalidJson { .. }))
        .unwrap();
    assert_eq!(json.kind.position(), Some((3, 3)));
}

#[test]
fn root_with_e_json_and_missing_root_are_problems() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("e.json"), r#"{"type": ""}"#).unwrap();
    let p = load_tree(tmp.path()).unwrap_err();
    assert!(
        p.to_string()
            .contains("the element root itself holds an e.json"),
        "{p}"
    );

    let p = load_tree(&tmp.path().join("nope")).unwrap_err();
    assert!(
        p.to_string()
            .contains("nope: cannot read: the element root cannot be read"),
        "{p}"
    );
}

#[test]
fn read_file_is_path_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    copy_tree(&fixture("good/elements"), &root);
    // Inside the element root (so the walk accepts it) but outside the element's folder.
    std::fs::write(root.join("imRobots/outside.txt"), "secret").unwrap();
    let demo_dir = root.join("imRobots/dingTalkDemo");
    std::os::unix::fs::symlink(
        root.join("imRobots/outside.txt"),
        demo_dir.join("escape.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(demo_dir.join("docs/readme.md"), demo_dir.join("inside.md"))
        .unwrap();
    let tree = load_tree(&root).unwrap();
    let demo = tree.get("imRobots.dingTalkDemo").unwrap();

    assert_eq!(demo.read_file("docs/readme.md").unwrap(), b"# demo\n");
    assert_eq!(demo.read_file("./docs/readme.md").unwrap(), b"# demo\n");
    assert_eq!(demo.read_file("inside.md").unwrap(), b"# demo\n");
    // The checked real path, not the joined one (which is the link itself).
    assert_eq!(
        demo.file_path("inside.md").unwrap(),
        demo_dir.join("docs/readme.md").canonicalize().unwrap()
    );
    for (rel, why) in [
        ("../dingTalkStreamType/e.json", "\"..\" is not allowed"),
        ("docs/../../x", "\"..\" is not allowed"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("", "empty path"),
        ("escape.txt", "leaves the element folder through a symlink"),
    ] {
        let e = demo.read_file(rel).unwrap_err().to_string();
        assert!(e.contains("imRobots.dingTalkDemo"), "{e}");
        assert!(e.contains(why), "{rel}: {e}");
    }
    let e = demo.read_file("missing.json").unwrap_err();
    assert!(e.is_not_found());
    assert!(e
        .to_string()
        .contains("element imRobots.dingTalkDemo: cannot read file \"missing.json\""));
}

#[test]
fn symlinks_to_files_outside_the_element_root_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    copy_tree(&fixture("good/elements"), &root);
    let secret = tmp.path().join("credentials");
    std::fs::write(&secret, "aws_secret_access_key = x").unwrap();
    std::fs::write(tmp.path().join(".env"), "X=1").unwrap();
    let demo_dir = root.join("imRobots/dingTalkDemo");
    std::os::unix::fs::symlink(&secret, demo_dir.join("docs/x.md")).unwrap();
    // A link to the app's own .env (next to elements/) is outside the root as well.
    std::os::unix::fs::symlink(tmp.path().join(".env"), demo_dir.join("env.txt")).unwrap();
    // A link to a file elsewhere inside the root is fine.
    std::os::unix::fs::symlink(root.join("data/thing/e.json"), demo_dir.join("shared.json"))
        .unwrap();

    let problems = load_tree(&root).unwrap_err();
    let mut links: Vec<_> = problems.0.iter().map(|p| p.file.clone()).collect();
    links.sort();
    assert_eq!(
        links,
        [demo_dir.join("docs/x.md"), demo_dir.join("env.txt")]
    );
    for p in &problems.0 {
        assert_eq!(p.element.as_deref(), Some("imRobots.dingTalkDemo"));
        let text = p.to_string();
        assert!(text.contains("symlink refused"), "{text}");
        assert!(text.contains("lies outside the element root"), "{text}");
        // The content is never read into the message.
        assert!(!text.contains("aws_secret_access_key"), "{text}");
    }
    let (found, _) = jitnode_element::walk(&root);
    let demo = found
        .iter()
        .find(|f| f.full_name == "imRobots.dingTalkDemo")
        .unwrap();
    assert!(!demo
        .files
        .iter()
        .any(|f| f == "docs/x.md" || f == "env.txt"));
    assert!(demo.files.iter().any(|f| f == "shared.json"));

    // An element whose e.json itself links outside: still reported, not silently dropped.
    std::fs::remove_file(demo_dir.join("docs/x.md")).unwrap();
    std::fs::remove_file(demo_dir.join("env.txt")).unwrap();
    let outside_ejson = tmp.path().join("e.json");
    std::fs::write(&outside_ejson, r#"{"type": ""}"#).unwrap();
    std::fs::create_dir_all(root.join("ns/leak")).unwrap();
    std::os::unix::fs::symlink(&outside_ejson, root.join("ns/leak/e.json")).unwrap();
    let (found, problems) = jitnode_element::walk(&root);
    assert!(found.iter().all(|f| f.full_name != "ns.leak"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, root.join("ns/leak/e.json"));
}

#[test]
fn non_utf8_names_are_reported_and_symlinked_folders_not_followed() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    copy_tree(&fixture("good/elements"), &root);
    let bad = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir_all(bad.join("x")).unwrap();
    std::fs::write(bad.join("x/e.json"), r#"{"type": ""}"#).unwrap();
    // A symlink to a folder holding an element: not followed, so no duplicate names.
    std::os::unix::fs::symlink(root.join("data"), root.join("dataLink")).unwrap();

    let problems = load_tree(&root).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    let p = &problems.0[0];
    assert_eq!(p.kind, ProblemKind::NameNotUtf8);
    assert!(p.to_string().contains("name is not valid UTF-8"), "{p}");
    assert_eq!(p.file, bad);

    std::fs::remove_dir_all(&bad).unwrap();
    let tree = load_tree(&root).unwrap();
    assert_eq!(tree.len(), 12);
    assert!(tree.get("dataLink.thing").is_none());
}

#[test]
fn only_bundle_folders_directly_in_an_element_are_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    for (dir, ty) in [
        ("ns/meta", ""),
        ("ns/meta/backend/inner", "ns.meta"),
        ("ns/frontend", "ns.meta"),
        ("ns/meta/sub/backend", "ns.meta"),
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(
            root.join(dir).join("e.json"),
            format!(r#"{{"type": "{ty}"}}"#),
        )
        .unwrap();
    }
    let tree = load_tree(&root).unwrap();
    let names: Vec<&str> = tree.elements.keys().map(String::as_str).collect();
    // `frontend` in a namespace folder and `backend` below a plain subfolder are ordinary
    // names; `backend/` directly inside ns.meta belongs to it.
    assert_eq!(names, ["ns.frontend", "ns.meta", "ns.meta.sub.backend"]);
}
