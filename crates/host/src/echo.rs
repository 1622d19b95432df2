//! `builtin:echo`: a tiny loader for demos and tests of the call path.
//!
//! Its elements offer `echo` (returns its arguments unchanged) and `stream` (sends the
//! words of `text` one chunk at a time, then returns the whole text). An instance's
//! config.json may set `"prefix"`, prepended to each streamed word.

use serde_json::{json, Value};

use crate::functions::{ArgSpec, FunctionSpec};
use crate::loader::{LoadContext, Loader};
use crate::runtime::{BoxError, BoxFuture, ElementRuntime, FnRuntime, FunctionError};

/// The `builtin:echo` loader.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoLoader;

impl Loader for EchoLoader {
    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(async move {
            let prefix = match cx.config().and_then(|c| c.get("prefix")) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(format!(
                        "{}: config.json \"prefix\" must be a string",
                        cx.full_name()
                    )
                    .into())
                }
            };
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
