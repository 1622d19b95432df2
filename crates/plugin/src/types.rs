//! What crosses the boundary, as Rust values: function declarations, load arguments and
//! errors, each with its JSON form (hand-written, to keep serde's derive out of plugins).

use std::fmt;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::abi::{Status, STATUS_BAD_ARGS, STATUS_FAILED};

/// One argument of a [`Function`]; same meaning as in e.json's `functionList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    /// JitAI data type (`Stext`, `Numeric`, `JitDict`, ...) or a JSON kind; `None`: any.
    pub data_type: Option<String>,
    pub required: bool,
}

/// A function a native Type offers. The JSON form is that of an e.json `functionList`
/// entry: `{"name", "title"?, "args"?: [{"name", "dataType"?, "required"?}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub title: Option<String>,
    /// `None`: any JSON is accepted; `Some`: an object with (only) these keys.
    pub args: Option<Vec<Arg>>,
}

impl Function {
    /// A function accepting any JSON arguments.
    pub fn new(name: &str) -> Function {
        Function {
            name: name.to_string(),
            title: None,
            args: None,
        }
    }

    pub fn title(mut self, title: &str) -> Function {
        self.title = Some(title.to_string());
        self
    }

    /// Adds a named argument (the function then takes an object).
    pub fn arg(mut self, name: &str, data_type: Option<&str>, required: bool) -> Function {
        self.args.get_or_insert_with(Vec::new).push(Arg {
            name: name.to_string(),
            data_type: data_type.map(str::to_string),
            required,
        });
        self
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(t) = &self.title {
            m.insert("title".into(), json!(t));
        }
        if let Some(args) = &self.args {
            let list = args
                .iter()
                .map(|a| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(a.name));
                    if let Some(d) = &a.data_type {
                        o.insert("dataType".into(), json!(d));
                    }
                    if a.required {
                        o.insert("required".into(), json!(true));
                    }
                    Value::Object(o)
                })
                .collect();
            m.insert("args".into(), Value::Array(list));
        }
        Value::Object(m)
    }

    /// Parses one declaration; the error says which field is wrong.
    pub fn from_json(v: &Value) -> Result<Function, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("a function declaration must be an object, got {v}"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("a function declaration needs a non-empty string \"name\"")?
            .to_string();
        let title = match obj.get("title") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("function \"{name}\": \"title\" must be a string")),
        };
        let args = match obj.get("args") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => {
                let mut args = Vec::with_capacity(list.len());
                for (i, a) in list.iter().enumerate() {
                    let arg_name = a.get("name").and_then(Value::as_str).ok_or_else(|| {
                        format!("function \"{name}\": args[{i}] needs a string \"name\"")
                    })?;
                    let data_type = match a.get("dataType") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => {
                            return Err(format!(
                                "function \"{name}\": args[{i}].dataType must be a string"
                            ))
                        }
                    };
                    let required = match a.get("required") {
                        None | Some(Value::Null) => false,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => {
                            return Err(format!(
                                "function \"{name}\": args[{i}].required must be a boolean"
                            ))
                        }
                    };
                    args.push(Arg {
                        name: arg_name.to_string(),
                        data_type,
                        required,
                    });
                }
                Some(args)
            }
            Some(_) => return Err(format!("function \"{name}\": \"args\" must be an array")),
        };
        Ok(Function { name, title, args })
    }
}

/// What the host hands a Type to load one element (instance).
#[derive(Clone, PartialEq)]
pub struct LoadArgs {
    /// The element being loaded, e.g. `demo.keywordReply`.
    pub full_name: String,
    /// The Type whose native library this is, e.g. `demo.keywordReplyType`.
    pub type_name: String,
    /// The element's folder (its other files can be read from here).
    pub dir: PathBuf,
    /// Its config.json with templates rendered, or `Null` when it has none. May hold
    /// secrets: never log or echo it.
    pub config: Value,
}

impl LoadArgs {
    pub fn to_json(&self) -> Value {
        json!({
            "fullName": self.full_name,
            "typeName": self.type_name,
            "dir": self.dir.to_string_lossy(),
            "config": self.config,
        })
    }

    pub fn from_json(v: Value) -> Result<LoadArgs, String> {
        let Value::Object(mut m) = v else {
            return Err("load input must be a JSON object".into());
        };
        let mut text = |key: &str| match m.remove(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(format!("load input needs a string \"{key}\"")),
        };
        let full_name = text("fullName")?;
        let type_name = text("typeName")?;
        let dir = PathBuf::from(text("dir")?);
        let config = m.remove("config").unwrap_or(Value::Null);
        Ok(LoadArgs {
            full_name,
            type_name,
            dir,
            config,
        })
    }
}

impl fmt::Debug for LoadArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadArgs")
            .field("full_name", &self.full_name)
            .field("type_name", &self.type_name)
            .field("dir", &self.dir)
            .field("config", &"<redacted>")
            .finish()
    }
}

/// Which kind of failure a [`PluginError`] is; the host maps it onto its own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The arguments (or config) do not fit what the Type needs.
    BadArgs,
    /// It ran and failed.
    Failed,
}

/// An error a native Type returns; its message reaches the caller as-is (the host adds
/// the element and function names), so it must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    kind: ErrorKind,
    message: String,
}

impl PluginError {
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }

    pub fn bad_args(message: impl Into<String>) -> PluginError {
        PluginError {
            kind: ErrorKind::BadArgs,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn status(&self) -> Status {
        match self.kind {
            ErrorKind::BadArgs => STATUS_BAD_ARGS,
            ErrorKind::Failed => STATUS_FAILED,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> PluginError {
        PluginError::failed(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> PluginError {
        PluginError::failed(message)
    }
}

/// Decoding JSON inside a Type is nearly always decoding its arguments or config, so
/// `?` on a serde_json error gives [`ErrorKind::BadArgs`].
impl From<serde_json::Error> for PluginError {
    fn from(e: serde_json::Error) -> PluginError {
        PluginError::bad_args(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_json_round_trips() {
        let f = Function::new("reply")
            .title("Answer")
            .arg("question", Some("Stext"), true)
            .arg("lang", None, false);
        let v = f.to_json();
        assert_eq!(
            v,
            json!({"name": "reply", "title": "Answer", "args": [
                {"name": "question", "dataType": "Stext", "required": true},
                {"name": "lang"}
            ]})
        );
        assert_eq!(Function::from_json(&v).unwrap(), f);
        let any = Function::new("echo");
        assert_eq!(Function::from_json(&any.to_json()).unwrap(), any);
    }

    #[test]
    fn bad_function_declarations_say_what_is_wrong() {
        let e = Function::from_json(&json!({"title": "x"})).unwrap_err();
        assert!(e.contains("\"name\""), "{e}");
        let e = Function::from_json(&json!({"name": "f", "args": [{"name": "a", "required": 1}]}))
            .unwrap_err();
        assert_eq!(e, "function \"f\": args[0].required must be a boolean");
        let e = Function::from_json(&json!({"name": "f", "args": {}})).unwrap_err();
        assert!(e.contains("must be an array"), "{e}");
    }

    #[test]
    fn load_args_round_trip_and_hide_config() {
        let a = LoadArgs {
            full_name: "demo.kw".into(),
            type_name: "demo.kwType".into(),
            dir: PathBuf::from("/app/elements/demo/kw"),
            config: json!({"token": "s3cret"}),
        };
        assert_eq!(LoadArgs::from_json(a.to_json()).unwrap(), a);
        assert!(!format!("{a:?}").contains("s3cret"));
        let e = LoadArgs::from_json(json!({"fullName": "x"})).unwrap_err();
        assert_eq!(e, "load input needs a string \"typeName\"");
    }

    #[test]
    fn errors_convert_with_the_right_kind() {
        assert_eq!(PluginError::from("boom").kind(), ErrorKind::Failed);
        let j: PluginError = serde_json::from_str::<Value>("{").unwrap_err().into();
        assert_eq!(j.kind(), ErrorKind::BadArgs);
        assert_eq!(PluginError::bad_args("x").status(), STATUS_BAD_ARGS);
    }
}
