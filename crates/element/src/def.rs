//! One element's definition: the parsed `e.json`.

use std::fmt;

use serde_json::{Map, Value};

use crate::problem::ProblemKind;

/// When the host starts an element. Absent (`None` where it is used) means "on demand":
/// the element is loaded at its first lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoadTime {
    /// Started with the app, after initialisation.
    AfterAppInit,
    /// Started before request handling (interceptors); this phase runs first.
    BeforeHandleRequest,
}

impl LoadTime {
    /// The allowed `backendLoadTime` values, as quoted in error messages.
    pub const ALLOWED: &'static str =
        "\"afterAppInit\", \"beforeHandleRequest\", or no backendLoadTime at all (on demand)";

    /// The e.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadTime::AfterAppInit => "afterAppInit",
            LoadTime::BeforeHandleRequest => "beforeHandleRequest",
        }
    }

    /// Parses the e.json spelling (exact, case-sensitive as JitAI writes it).
    pub fn parse(s: &str) -> Option<LoadTime> {
        match s {
            "afterAppInit" => Some(LoadTime::AfterAppInit),
            "beforeHandleRequest" => Some(LoadTime::BeforeHandleRequest),
            _ => None,
        }
    }
}

impl fmt::Display for LoadTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed e.json. Known keys are typed; ALL keys (known and unknown) are kept in `raw`
/// so a Type can read its own keys (`db`, `inputArgs`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Full name of this element's Type; `""` for a Meta.
    pub type_name: String,
    pub title: Option<String>,
    /// e.g. `"builtin:dingTalkStream"`, `"."`, `"./backend"`. An empty string counts as unset.
    pub backend_bundle_entry: Option<String>,
    pub backend_load_time: Option<LoadTime>,
    pub function_list: Option<Value>,
    pub raw: Map<String, Value>,
}

impl Definition {
    /// True when `type` is `""`.
    pub fn is_meta(&self) -> bool {
        self.type_name.is_empty()
    }

    /// Builds a definition from an e.json object, collecting every field problem.
    pub fn from_raw(raw: Map<String, Value>) -> Result<Definition, Vec<ProblemKind>> {
        let mut problems = Vec::new();
        let type_name = match raw.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                problems.push(ProblemKind::FieldType {
                    field: "type".into(),
                    expected: "a string (\"\" for a Meta)",
                    found: json_kind(other),
                });
                String::new()
            }
            None => {
                problems.push(ProblemKind::TypeFieldMissing);
                String::new()
            }
        };
        let title = optional_string(&raw, "title", &mut problems);
        let backend_bundle_entry =
            optional_string(&raw, "backendBundleEntry", &mut problems).filter(|s| !s.is_empty());
        let backend_load_time = match raw.get("backendLoadTime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match LoadTime::parse(s) {
                Some(t) => Some(t),
                None => {
                    problems.push(ProblemKind::BadLoadTime {
                        value: format!("\"{s}\""),
                    });
                    None
                }
            },
            Some(other) => {
                problems.push(ProblemKind::BadLoadTime {
                    value: short_json(other),
                });
                None
            }
        };
        let function_list = raw.get("functionList").cloned();
        if problems.is_empty() {
            Ok(Definition {
                type_name,
                title,
                backend_bundle_entry,
                backend_load_time,
                function_list,
                raw,
            })
        } else {
            Err(problems)
        }
    }

    /// Parses the bytes of an e.json: UTF-8, JSON (with line:column), object, fields.
    pub fn parse(bytes: &[u8]) -> Result<Definition, Vec<ProblemKind>> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            vec![ProblemKind::NotUtf8 {
                byte_offset: e.valid_up_to(),
            }]
        })?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| vec![ProblemKind::from_json_error(&e)])?;
        match value {
            Value::Object(map) => Definition::from_raw(map),
            other => Err(vec![ProblemKind::NotObject {
                found: json_kind(&other),
            }]),
        }
    }
}

fn optional_string(
    raw: &Map<String, Value>,
    field: &str,
    problems: &mut Vec<ProblemKind>,
) -> Option<String> {
    match raw.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(ProblemKind::FieldType {
                field: field.into(),
                expected: "a string",
                found: json_kind(other),
            });
            None
        }
    }
}

/// The JSON kind of a value, for messages ("an array", "a number", ...); public so that
/// crates checking JSON against declarations word it the same way.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// e.json values are not secret, but keep messages one line and short.
fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}...")
    } else {
        s
    }
}
