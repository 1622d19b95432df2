//! Function signatures: what an element offers, and checking call arguments against them.
//!
//! JitAI declares an element's functions in e.json's `functionList`:
//! `[{"name": "run", "title": "...", "args": [{"name": "message", "dataType": "Stext"}]}]`.
//! We read `name`, `title` and `args` (each `name`, optional `dataType`, optional
//! `required`); other keys are kept by the Type and ignored here.

use std::fmt;

use jitnode_element::{json_kind as kind, AppTree, Element};
use serde_json::{Map, Value};

/// One argument of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgSpec {
    pub name: String,
    /// JitAI data type (`Stext`, `Numeric`, `JitDict`, ...) or a JSON kind (`string`,
    /// `number`, `object`, ...). Unknown or absent: any value.
    pub data_type: Option<String>,
    /// Only arguments marked `"required": true` must be present.
    pub required: bool,
}

/// One function an element offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: String,
    pub title: Option<String>,
    /// `None`: any JSON is accepted. `Some`: the arguments must be an object whose keys
    /// are among these (null counts as `{}`).
    pub args: Option<Vec<ArgSpec>>,
}

impl FunctionSpec {
    /// A function accepting any JSON arguments.
    pub fn any_args(name: &str) -> FunctionSpec {
        FunctionSpec {
            name: name.to_string(),
            title: None,
            args: None,
        }
    }

    /// A function taking named arguments (an object).
    pub fn with_args(name: &str, args: Vec<ArgSpec>) -> FunctionSpec {
        FunctionSpec {
            name: name.to_string(),
            title: None,
            args: Some(args),
        }
    }

    /// Checks `args` against this spec; the error says what is wrong and what is expected.
    pub fn check_args(&self, args: &Value) -> Result<(), String> {
        let Some(specs) = &self.args else {
            return Ok(());
        };
        let empty = Map::new();
        let obj = match args {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                return Err(format!(
                    "arguments must be a JSON object, got {}; expected {self}",
                    kind(other)
                ))
            }
        };
        for key in obj.keys() {
            if !specs.iter().any(|a| &a.name == key) {
                return Err(format!("unknown argument \"{key}\"; expected {self}"));
            }
        }
        for spec in specs {
            match obj.get(&spec.name) {
                None | Some(Value::Null) if spec.required => {
                    return Err(format!(
                        "missing required argument \"{}\"; expected {self}",
                        spec.name
                    ))
                }
                None | Some(Value::Null) => {}
                Some(v) => {
                    if let Some(want) = spec.data_type.as_deref().and_then(expected_kind) {
                        if kind(v) != want {
                            return Err(format!(
                                "argument \"{}\" must be {want}, got {}; expected {self}",
                                spec.name,
                                kind(v)
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `name(a: Stext, b?)`, for error messages and `--help`-style listings.
impl fmt::Display for FunctionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        match &self.args {
            None => f.write_str("any JSON")?,
            Some(args) => {
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&a.name)?;
                    if !a.required {
                        f.write_str("?")?;
                    }
                    if let Some(t) = &a.data_type {
                        write!(f, ": {t}")?;
                    }
                }
            }
        }
        f.write_str(")")
    }
}

/// The JSON kind a declared data type needs; `None` for types we do not check.
fn expected_kind(data_type: &str) -> Option<&'static str> {
    match data_type {
        "Stext" | "Ltext" | "Text" | "RichText" | "Phone" | "Email" | "string" => Some("a string"),
        "Numeric" | "Integer" | "Money" | "Percent" | "Serial" | "number" | "integer" => {
            Some("a number")
        }
        "JitDict" | "object" => Some("an object"),
        "JitList" | "array" => Some("an array"),
        "Boolean" | "boolean" => Some("a boolean"),
        _ => None,
    }
}

/// Parses one `functionList` value. Entries that are not objects with a string `name` are
/// skipped: `check` reports the e.json shape; the runtime only needs what is usable.
pub fn parse_function_list(list: &Value) -> Vec<FunctionSpec> {
    let Some(items) = list.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let obj = item.as_object()?;
            let name = obj.get("name")?.as_str()?.to_string();
            let title = obj.get("title").and_then(Value::as_str).map(str::to_string);
            let args = obj.get("args").and_then(Value::as_array).map(|args| {
                args.iter()
                    .filter_map(|a| {
                        let a = a.as_object()?;
                        Some(ArgSpec {
                            name: a.get("name")?.as_str()?.to_string(),
                            data_type: a
                                .get("dataType")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            required: a.get("required").and_then(Value::as_bool).unwrap_or(false),
                        })
                    })
                    .collect()
            });
            Some(FunctionSpec { name, title, args })
        })
        .collect()
}

/// The `functionList` that applies to `element`: its own, else the nearest one up its
/// chain (a Type declares the functions its instances offer).
pub fn declared_functions(tree: &AppTree, element: &Element) -> Vec<FunctionSpec> {
    element
        .chain
        .iter()
        .filter_map(|n| tree.get(n))
        .find_map(|e| e.def.function_list.as_ref())
        .map(parse_function_list)
        .unwrap_or_default()
}

/// The runtime's functions, with argument shapes taken from the declaration when one
/// exists for the same name.
pub fn merge(offered: Vec<FunctionSpec>, declared: &[FunctionSpec]) -> Vec<FunctionSpec> {
    let mut out: Vec<FunctionSpec> = offered
        .into_iter()
        .map(|o| match declared.iter().find(|d| d.name == o.name) {
            Some(d) => FunctionSpec {
                name: o.name,
                title: d.title.clone().or(o.title),
                args: d.args.clone().or(o.args),
            },
            None => o,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> FunctionSpec {
        parse_function_list(&json!([
            {"name": "run", "title": "Run", "args": [
                {"name": "message", "dataType": "Stext", "required": true},
                {"name": "limit", "dataType": "Integer"},
                {"name": "extra", "dataType": "SomethingNew"}
            ]},
            {"title": "no name, skipped"},
            "not an object"
        ]))
        .remove(0)
    }

    #[test]
    fn parses_jitai_function_list() {
        let s = spec();
        assert_eq!(s.name, "run");
        assert_eq!(s.title.as_deref(), Some("Run"));
        assert_eq!(
            s.to_string(),
            "run(message: Stext, limit?: Integer, extra?: SomethingNew)"
        );
        let all = parse_function_list(&json!([{"name": "a"}, {"x": 1}, 3]));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].args, None);
    }

    #[test]
    fn checks_argument_shapes() {
        let s = spec();
        assert!(s.check_args(&json!({"message": "hi"})).is_ok());
        assert!(s
            .check_args(&json!({"message": "hi", "limit": 3, "extra": [1]}))
            .is_ok());
        let e = s.check_args(&json!({"limit": 3})).unwrap_err();
        assert!(e.contains("missing required argument \"message\""), "{e}");
        let e = s.check_args(&json!({"message": 1})).unwrap_err();
        assert!(
            e.contains("\"message\" must be a string, got a number"),
            "{e}"
        );
        let e = s
            .check_args(&json!({"message": "x", "nope": 1}))
            .unwrap_err();
        assert!(e.contains("unknown argument \"nope\""), "{e}");
        assert!(e.contains("expected run(message: Stext"), "{e}");
        let e = s.check_args(&json!([1])).unwrap_err();
        assert!(e.contains("must be a JSON object, got an array"), "{e}");
        assert!(FunctionSpec::any_args("x").check_args(&json!([1])).is_ok());
    }

    #[test]
    fn merge_prefers_declared_shapes() {
        let declared = vec![spec()];
        let merged = merge(
            vec![FunctionSpec::any_args("run"), FunctionSpec::any_args("aaa")],
            &declared,
        );
        assert_eq!(merged[0].name, "aaa");
        assert_eq!(merged[1], spec());
    }
}
