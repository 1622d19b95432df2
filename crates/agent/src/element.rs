//! The `builtin:aiagents` loader: an `aiagents.*` instance as a host element whose `run`
//! function answers one question.

use std::sync::Arc;

use jitnode_host::{
    BoxError, BoxFuture, ConfigSchema, Element, ElementRuntime, FnRuntime, FunctionError,
    LoadContext, Loader,
};
use tokio_util::sync::CancellationToken;

use crate::{Agent, AgentError};

/// Registered as `builtin:aiagents`.
pub const LOADER_NAME: &str = "aiagents";

/// The loader for `aiagents` Types: indexes the instance's knowledge at load and offers
/// `run` (`{"question", "chatId"?}` -> `{"answer", "sources"}`, streaming chunks).
pub fn loader() -> impl Loader {
    AgentLoader
}

/// See [`loader`].
struct AgentLoader;

impl Loader for AgentLoader {
    fn config_schema<'a>(
        &'a self,
        _type_el: &'a Element,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigSchema>>, BoxError>> {
        Box::pin(async { Ok(Some(crate::config::config_schema())) })
    }

    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(load(cx))
    }
}

async fn load(cx: LoadContext) -> Result<Box<dyn ElementRuntime>, BoxError> {
    // The host checked the config against the schema and filled in its defaults, so
    // an instance without a config.json gets them all.
    let config = cx
        .config()
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let dir = cx.element().dir.clone();
    let cache = crate::embed::cache_path(&cx.data_dir(), cx.full_name());
    // Indexing reads and segments every knowledge file: keep it off the async workers.
    let agent = tokio::task::spawn_blocking(move || {
        Agent::load(&dir, &config).map(|a| a.with_vector_cache(cache))
    })
    .await??;
    let agent = Arc::new(agent);
    // Embedding the knowledge may take long or fail; answers never wait for it.
    let indexing = agent.clone();
    let element = cx.full_name().to_string();
    tokio::spawn(async move {
        if let Err(e) = indexing.index_vectors().await {
            tracing::warn!(%element, "knowledge not embedded, retrieval stays lexical: {e}");
        }
    });
    // Stopping the element cancels the runs still in flight (their upstream requests
    // are dropped with them).
    let stopping = CancellationToken::new();
    let on_stop = stopping.clone();
    let runtime = FnRuntime::new()
        .function("run", move |args, sink| {
            let agent = agent.clone();
            let cancel = stopping.child_token();
            async move {
                agent
                    .run_json(&args, move |chunk| sink.send(chunk), cancel)
                    .await
                    .map_err(function_error)
            }
        })
        .on_stop(move || {
            on_stop.cancel();
            async {}
        });
    Ok(Box::new(runtime) as Box<dyn ElementRuntime>)
}

fn function_error(e: AgentError) -> FunctionError {
    match e {
        AgentError::Args { .. } => FunctionError::bad_args(e.to_string()),
        other => FunctionError::failed(other.to_string()),
    }
}
