//! `check` validates every instance's rendered config against its Type's schema (here a
//! Type defined by files, with a config.schema.json) and reports every failure in one pass,
//! at the template's line:column, never showing a value.

use std::collections::HashMap;
use std::path::Path;

use jitnode_element::{check, Env, ProblemKind};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// An element root with the meta `fx.meta` and its Type `fx.<ty>`, whose
/// config.schema.json is `schema`.
fn app_with_type(ty: &str, schema: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write(root, "fx/meta/e.json", r#"{"type": ""}"#);
    write(root, &format!("fx/{ty}/e.json"), r#"{"type": "fx.meta"}"#);
    write(root, &format!("fx/{ty}/config.schema.json"), schema);
    d
}

const SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["name", "apiKey"],
  "properties": {
    "name": {"type": "string"},
    "apiKey": {"type": "string", "minLength": 12},
    "count": {"type": "integer", "default": 1},
    "mode": {"enum": ["fast", "slow"], "default": "fast"},
    "retrieval": {
      "type": "object",
      "default": {},
      "additionalProperties": false,
      "properties": {"topK": {"type": "integer", "minimum": 1, "default": 3}}
    }
  }
}"#;

#[test]
fn every_kind_of_config_error_is_reported_in_one_pass_with_its_position() {
    let d = app_with_type("kbType", SCHEMA);
    let root = d.path();
    // No config.json: defaults fill in the rest, but the two required fields are named
    // (at 1:1 of the config.json to write).
    write(root, "fx/bare/e.json", r#"{"type": "fx.kbType"}"#);
    write(root, "fx/good/e.json", r#"{"type": "fx.kbType"}"#);
    write(
        root,
        "fx/good/config.json",
        r#"{"name": "ok", "apiKey": "{{KEY}}", "count": "{{COUNT:-4}}"}"#,
    );
    write(root, "fx/bad/e.json", r#"{"type": "fx.kbType"}"#);
    write(
        root,
        "fx/bad/config.json",
        concat!(
            "{\n",
            "  \"name\": 7,\n",
            "  \"apiKey\": \"{{SHORT_KEY}}\",\n",
            "  \"mode\": \"medium\",\n",
            "  \"colour\": \"red\",\n",
            "  \"retrieval\": {\"topK\": \"three\"}\n",
            "}\n"
        ),
    );
    let env = Env::from_map(HashMap::from([
        ("KEY".to_string(), "k-0123456789abcdef".to_string()),
        ("SHORT_KEY".to_string(), "zz-leak".to_string()),
    ]));
    let problems = check(root, &env);
    let text = problems.to_string();
    assert!(!text.contains("zz-leak"), "a secret value leaked:\n{text}");
    let bad = root.join("fx/bad/config.json").display().to_string();
    let expect = [
        format!("{bad}:2:11: fx.bad: field `name`: expected a string, found a number"),
        format!("{bad}:3:13: fx.bad: field `apiKey` (secret, value not shown): expected at least 12 characters"),
        format!("{bad}:4:11: fx.bad: field `mode`: expected one of \"fast\", \"slow\""),
        format!("{bad}:5:3: fx.bad: field `colour`: unknown field (known fields: apiKey, count, mode, name, retrieval)"),
        format!("{bad}:6:25: fx.bad: field `retrieval.topK`: expected an integer, found a string"),
    ];
    for e in &expect {
        assert!(
            text.lines().any(|l| l.starts_with(e.as_str())),
            "missing {e}\nin:\n{text}"
        );
    }
    let bare = root.join("fx/bare/config.json").display().to_string();
    for f in ["name", "apiKey"] {
        let want = format!("{bare}:1:1: fx.bare: field `{f}`");
        assert!(text.contains(&want), "missing {want} in:\n{text}");
    }
    assert!(!text.contains("fx.good"), "{text}");
    assert_eq!(problems.len(), expect.len() + 2, "{text}");
    assert!(problems
        .iter()
        .all(|p| matches!(p.kind, ProblemKind::ConfigSchema { .. })));
}

#[test]
fn a_broken_schema_file_is_a_problem_of_its_type() {
    let d = app_with_type("t", r#"{"type": "no-such-type"}"#);
    let root = d.path();
    write(root, "fx/i/e.json", r#"{"type": "fx.t"}"#);
    let text = check(root, &Env::from_map(HashMap::new())).to_string();
    assert!(
        text.starts_with(&format!(
            "{}: fx.t: config schema: not a usable JSON Schema",
            root.join("fx/t/config.schema.json").display()
        )),
        "{text}"
    );
}
