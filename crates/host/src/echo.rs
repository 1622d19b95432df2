//! `builtin:echo`: a tiny loader for demos and tests of the call path.
//!
//! Its elements offer `echo` (returns its arguments unchanged) and `stream` (sends the
//! words of `text` one chunk at a time, then returns the whole text). An instance's
//! config.json may set `"prefix"`, prepended to each streamed word; other fields are errors.

use std::sync::{Arc, OnceLock};

use jitnode_element::{ConfigSchema, Element};
use serde_json::{json, Value};

use crate::functions::{ArgSpec, FunctionSpec};
use crate::loader::{LoadContext, Loader};
use crate::runtime::{BoxError, BoxFuture, ElementRuntime, FnRuntime, FunctionError};

/// The `builtin:echo` loader.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoLoader;

/// The schema of an echo instance's config.json.
fn schema() -> Arc<ConfigSchema> {
    static SCHEMA: OnceLock<Arc<ConfigSchema>> = OnceLock::new();
    ConfigSchema::built_in(&SCHEMA, "echo", || {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "prefix": {
                    "type": "string",
                    "default": "",
                    "description": "Put before each streamed word."
                }
            }
        })
    })
}

impl EchoLoader {
    /// The `prefix` an instance streams with: its config's, after the schema filled in the
    /// default (absent: none).
    pub fn prefix(cx: &LoadContext) -> String {
        cx.config()
            .and_then(|c| c.get("prefix"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

impl Loader for EchoLoader {
    fn config_schema<'a>(
        &'a self,
        _type_el: &'a Element,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigSchema>>, BoxError>> {
        Box::pin(async { Ok(Some(schema())) })
    }

    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(async move {
            // The schema vouched for the shape and filled in the default.
            let prefix = EchoLoader::prefix(&cx);
            let stream_spec = FunctionSpec::with_args(
                "stream",
                vec![ArgSpec {
                    name: "text".into(),
                    data_type: Some("Stext".into()),
                    required: true,
                }],
            );
            let rt = FnRuntime::new()
                .function("echo", |args, _chunks| async move { Ok(args) })
                .function_with_spec(stream_spec, move |args, chunks| {
                    let prefix = prefix.clone();
                    async move {
                        let text = args
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| FunctionError::bad_args("\"text\" must be a string"))?;
                        for word in text.split_whitespace() {
                            chunks.send(json!(format!("{prefix}{word}")));
                            // Let the caller see each chunk before the next is made.
                            tokio::task::yield_now().await;
                        }
                        Ok(json!(text))
                    }
                });
            Ok(Box::new(rt) as Box<dyn ElementRuntime>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles_and_rejects_unknown_fields() {
        assert_eq!(schema().apply(None).unwrap(), json!({"prefix": ""}));
        let v = schema().apply(Some(&json!({"prefx": "x"}))).unwrap_err();
        assert_eq!(v[0].field, "prefx");
    }
}
