mod common;

use common::{copy_tree, env, fixture};
use jitnode_element::{check, check_app, load_tree, render_tree, ProblemKind};

#[test]
fn check_reports_missing_template_variables() {
    let root = fixture("good/elements");
    let problems = check(&root, &env(&[("DINGTALK_CLIENT_ID", "id")]));
    assert_eq!(problems.len(), 1, "{problems}");
    let p = &problems.0[0];
    assert_eq!(p.element.as_deref(), Some("imRobots.dingTalkDemo"));
    assert!(p.file.ends_with("imRobots/dingTalkDemo/config.json"));
    assert_eq!(
        p.kind,
        ProblemKind::MissingVariable {
            name: "DINGTALK_CLIENT_SECRET".into()
        }
    );
    assert!(p
        .to_string()
        .contains("missing variable DINGTALK_CLIENT_SECRET"));

    let ok = check(
        &root,
        &env(&[
            ("DINGTALK_CLIENT_ID", "id"),
            ("DINGTALK_CLIENT_SECRET", "s"),
        ]),
    );
    assert!(ok.is_empty(), "{ok}");
}

#[test]
fn check_combines_tree_and_template_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    copy_tree(&fixture("bad/elements"), &root);
    std::fs::write(
        root.join("a/okMeta/config.json"),
        "{\"a\": \"{{NOT_SET_ANYWHERE_X}}\",\n \"b\": {{FINE:-1}} \"oops\"}",
    )
    .unwrap();
    std::fs::write(root.join("a/orphan/config.json"), b"{\"a\": \"\xff\"}").unwrap();
    let problems = check(&root, &env(&[]));
    let text = problems.to_string();
    // The 17 tree problems plus the template ones.
    assert_eq!(problems.len(), 17 + 3, "{text}");
    assert!(
        text.contains("a/okMeta/config.json: a.okMeta: missing variable NOT_SET_ANYWHERE_X"),
        "{text}"
    );
    assert!(
        text.contains("a/okMeta/config.json:2:19: a.okMeta: not valid JSON after rendering"),
        "{text}"
    );
    assert!(
        text.contains("a/orphan/config.json: a.orphan: file is not valid UTF-8"),
        "{text}"
    );
    assert!(text.contains("type cycle: a.c1 -> a.c2 -> a.c1"), "{text}");
}

#[test]
fn check_app_uses_dot_env_and_reports_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("good/elements"), &tmp.path().join("elements"));
    std::fs::write(
        tmp.path().join(".env"),
        "DINGTALK_CLIENT_ID=a\nDINGTALK_CLIENT_SECRET=\"b\"\n",
    )
    .unwrap();
    let problems = check_app(tmp.path());
    assert!(problems.is_empty(), "{problems}");

    std::fs::write(
        tmp.path().join(".env"),
        "DINGTALK_CLIENT_ID=a\nnot a line\n",
    )
    .unwrap();
    let problems = check_app(tmp.path());
    let text = problems.to_string();
    assert!(text.contains(".env:2:1: expected KEY=VALUE"), "{text}");
}

#[test]
fn tree_shows_families_load_times_and_loaders() {
    let tree = load_tree(&fixture("good/elements")).unwrap();
    let out = render_tree(&tree);
    let expected = "\
aiagents.Meta [Meta] on demand, loaded by the host
  aiagents.ReActType [Type] on demand, data only, provides builtin:agent
    aiagents.SpecialType [Type] on demand, loaded by aiagents.ReActType (builtin:agent)
      aiagents.ragTest [instance] beforeHandleRequest, loaded by aiagents.ReActType (builtin:agent)
corps.meta [Meta] on demand, loaded by the host
  corps.models.CorpMember [instance] on demand, data only
data.plain [Meta] on demand, loaded by the host
  data.thing [instance] on demand, data only
imRobots.meta [Meta] on demand, loaded by the host
  imRobots.dingTalkStreamType [Type] on demand, data only, provides builtin:dingTalkStream
    imRobots.dingTalkDemo [instance] afterAppInit, loaded by imRobots.dingTalkStreamType (builtin:dingTalkStream)
  imRobots.dingTalkStreamType.Editor [instance] on demand, data only
";
    assert_eq!(out, expected);
}
