mod common;

use std::path::Path;

use common::{env, fixture};
use jitnode_element::{
    load_tree, render_config, render_template, template_vars, Env, TemplateError,
};
use serde_json::{json, Value};

fn render(text: &str, e: &Env) -> Value {
    let out = render_template(text, e, "t.el", Path::new("config.json")).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON: {err}: {out}"))
}

#[test]
fn all_placeholder_forms() {
    let e = env(&[("A", "alpha"), ("B", "beta")]);
    let v = render(
        r#"{"a": "{{A}}", "b": "<<B>>", "c": "x-{{C:-fallback value}}-y", "d": "<<D:-}", "both": "{{A}}/<<B>>"}"#,
        &e,
    );
    assert_eq!(
        v,
        json!({"a": "alpha", "b": "beta", "c": "x-fallback value-y", "d": "<<D:-}", "both": "alpha/beta"})
    );
    // A set variable wins over its fallback; an empty value is a value.
    let v = render(
        r#"{"a": "{{A:-no}}", "e": "{{E:-no}}"}"#,
        &env(&[("A", "yes"), ("E", "")]),
    );
    assert_eq!(v, json!({"a": "yes", "e": ""}));
    // A fallback inside a string is JSON string text as written.
    let v = render(r#"{"p": "{{P:-C:\\dir\tx}}"}"#, &e);
    assert_eq!(v, json!({"p": "C:\\dir\tx"}));
    // Not placeholders: spaces, leading digit, unclosed.
    let v = render(r#"{"a": "{{ A }}", "b": "{{1A}}", "c": "{{A"}"#, &e);
    assert_eq!(v, json!({"a": "{{ A }}", "b": "{{1A}}", "c": "{{A"}));
}

#[test]
fn injection_attempts_stay_inside_their_string() {
    let attacks = [
        r#"", "admin": true, "x": ""#,
        "back\\slash\\",
        "\\\"",
        "line1\nline2\r\n\t",
        "}}{{B}}<<B>>",
        "\u{0}\u{1f}\u{2028}",
        "\"}], \"injected\": {\"a\": 1}, \"z\": [\"",
        "'; drop table x; --",
    ];
    for attack in attacks {
        let e = env(&[("SECRET", attack), ("B", "should-not-expand")]);
        let v = render(
            r#"{"secret": "{{SECRET}}", "wrapped": "pre <<SECRET>> post", "n": 1}"#,
            &e,
        );
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3, "keys injected by {attack:?}: {v}");
        assert_eq!(obj["secret"], attack);
        assert_eq!(obj["wrapped"], format!("pre {attack} post"));
        assert_eq!(obj["n"], 1);
    }
}

#[test]
fn placeholders_outside_strings_are_values_never_structure() {
    let text = r#"{"port": {{PORT}}, "debug": <<DEBUG>>, "ratio": {{R:-0.5}}, "name": {{NAME}}}"#;
    let v = render(
        text,
        &env(&[("PORT", "8080"), ("DEBUG", "true"), ("NAME", "bob")]),
    );
    assert_eq!(
        v,
        json!({"port": 8080, "debug": true, "ratio": 0.5, "name": "bob"})
    );

    // Structure, null and injection attempts become strings.
    for attack in [
        r#"1, "admin": true"#,
        r#"{"admin": true}"#,
        "[1,2]",
        "null",
        "8080 }",
        "\"quoted\"",
    ] {
        let v = render(
            text,
            &env(&[("PORT", attack), ("DEBUG", "x"), ("NAME", "n")]),
        );
        assert_eq!(v.as_object().unwrap().len(), 4, "{attack}: {v}");
        assert_eq!(v["port"], attack);
    }
}

#[test]
fn a_fallback_ending_in_a_backslash_does_not_shift_string_boundaries() {
    // Unset X: the fallback's backslash must not escape the closing quote, or Y (which the
    // scanner saw outside a string) would land inside one and vice versa.
    let y = r#"x"}, "admin": true, "z": {"q": ""#;
    let text =
        r#"{"a": "{{X:-\}}", "b": {{Y}}, "c": "{{X:-a\\}}", "d": "{{X:-\\\}}", "e": "<<X:-\>>"}"#;
    let v = render(text, &env(&[("Y", y)]));
    assert_eq!(
        v,
        json!({"a": "\\", "b": y, "c": "a\\", "d": "\\\\", "e": "\\"})
    );
    assert!(v.get("admin").is_none());
    // Outside a string the same fallback is a one-backslash string value.
    assert_eq!(render(r#"{"a": {{X:-\}}}"#, &env(&[])), json!({"a": "\\"}));
}

#[test]
fn placeholder_in_a_key_and_after_escaped_quotes() {
    let v = render(
        r#"{"{{K}}": "v", "q": "a \"{{V}}\" b", "s": "\\{{V}}"}"#,
        &env(&[("K", "key\"x"), ("V", "va\"l")]),
    );
    assert_eq!(
        v,
        json!({"key\"x": "v", "q": "a \"va\"l\" b", "s": "\\va\"l"})
    );
}

#[test]
fn missing_variables_name_element_file_and_variable_never_values() {
    let e = env(&[("PRESENT", "top-secret-value")]);
    let err = render_template(
        r#"{"a": "{{PRESENT}}", "b": "{{MISSING_ONE}}", "c": "<<MISSING_TWO>>", "d": "{{MISSING_ONE}}"}"#,
        &e,
        "imRobots.dingTalkDemo",
        Path::new("elements/imRobots/dingTalkDemo/config.json"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("element imRobots.dingTalkDemo"), "{msg}");
    assert!(
        msg.contains("elements/imRobots/dingTalkDemo/config.json"),
        "{msg}"
    );
    assert!(
        msg.contains("missing variables MISSING_ONE, MISSING_TWO"),
        "{msg}"
    );
    assert!(!msg.contains("top-secret-value"));
    assert!(!format!("{err:?}").contains("top-secret-value"));
    match err {
        TemplateError::Missing { names, .. } => assert_eq!(names, ["MISSING_ONE", "MISSING_TWO"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn template_vars_lists_names_and_fallbacks() {
    let vars = template_vars(
        r#"{"a": "{{A}}", "b": "<<B:-x>>", "a2": "{{A}}", "p": {{PORT:-1}}, "no": "{{ no }}"}"#,
    );
    assert_eq!(
        vars,
        [
            ("A".to_string(), false),
            ("B".to_string(), true),
            ("PORT".to_string(), true)
        ]
    );
}

#[test]
fn render_config_reads_and_parses_the_element_config() {
    let tree = load_tree(&fixture("good/elements")).unwrap();
    let demo = tree.get("imRobots.dingTalkDemo").unwrap();
    let e = env(&[
        ("DINGTALK_CLIENT_ID", "ding-id"),
        ("DINGTALK_CLIENT_SECRET", "s3cr\"et\\"),
    ]);
    let cfg = render_config(demo, &e).unwrap().unwrap();
    assert_eq!(
        cfg,
        json!({"clientId": "ding-id", "clientSecret": "s3cr\"et\\", "agent": "aiagents.ragTest", "port": 8080})
    );
    // No config.json: None.
    assert!(render_config(tree.get("imRobots.meta").unwrap(), &e)
        .unwrap()
        .is_none());
    // Missing secret: error names the element, file and variable.
    let err = render_config(demo, &env(&[("DINGTALK_CLIENT_ID", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("imRobots.dingTalkDemo"), "{err}");
    assert!(err.contains("dingTalkDemo/config.json"), "{err}");
    assert!(
        err.contains("missing variable DINGTALK_CLIENT_SECRET"),
        "{err}"
    );
}

#[test]
fn env_file_parsing_and_process_overlay() {
    let e = Env::load(&fixture("envfile")).unwrap();
    assert_eq!(e.get("A"), Some("plain"));
    assert_eq!(e.get("B"), Some("quoted \"value\" with\nnewline"));
    assert_eq!(e.get("C"), Some("single # not a comment"));
    assert_eq!(e.get("D"), Some("unquoted"));
    assert_eq!(e.get("E"), Some(""));
    assert_eq!(e.get("F"), Some("has#hash"));
    // The process environment is overlaid (PATH is always set for cargo test).
    assert!(e.get("PATH").is_some());
    // Debug shows names, never values.
    let dbg = format!("{e:?}");
    assert!(
        dbg.contains("\"B\"") && !dbg.contains("quoted") && !dbg.contains("plain"),
        "{dbg}"
    );

    // No .env at all is fine.
    let tmp = tempfile::tempdir().unwrap();
    assert!(Env::load(tmp.path()).unwrap().get("PATH").is_some());
}

#[test]
fn env_file_errors_name_file_and_line_not_value() {
    let err = Env::load(&fixture("envbad")).unwrap_err().to_string();
    assert!(err.contains("envbad/.env:3: expected KEY=VALUE"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".env"), "OK=1\nSECRET=\"hunter2\n").unwrap();
    let err = Env::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains(".env:2: unterminated double-quoted value"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));

    std::fs::write(tmp.path().join(".env"), "1BAD=x\n").unwrap();
    let err = Env::load(tmp.path()).unwrap_err().to_string();
    assert!(err.contains(".env:1: the name before '='"), "{err}");

    std::fs::write(tmp.path().join(".env"), "K='x' trailing\n").unwrap();
    let err = Env::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains(".env:1: unexpected text after the closing quote"),
        "{err}"
    );
}

#[test]
fn invalid_json_after_rendering_points_into_the_template() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("elements");
    std::fs::create_dir_all(root.join("a/m")).unwrap();
    std::fs::write(root.join("a/m/e.json"), r#"{"type": ""}"#).unwrap();
    // Line 2: the missing comma is before template column 19, whatever the value's length.
    std::fs::write(
        root.join("a/m/config.json"),
        "{\n  \"k\": \"{{LONG}}\" \"b\": 1}\n",
    )
    .unwrap();
    let tree = load_tree(&root).unwrap();
    let el = tree.get("a.m").unwrap();
    let long = "a very long secret value with \"quotes\"";
    let err = render_config(el, &env(&[("LONG", long)]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a/m/config.json:2:19: not valid JSON after rendering"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}
