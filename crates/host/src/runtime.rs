//! What a loaded element is at run time: a set of named JSON functions and a way to stop.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::functions::FunctionSpec;

/// A boxed, sendable future: the trait methods below return these so the traits stay
/// object-safe without an async-trait macro.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error a loader may return; the host wraps it with the element's fullName.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a running function sends its intermediate chunks (JSON values), e.g. answer text
/// as it is generated. Cheap to clone; sending never blocks and never fails (a caller that
/// does not care passes [`ChunkSink::discard`]).
#[derive(Clone)]
pub struct ChunkSink(Option<Arc<dyn Fn(Value) + Send + Sync>>);

impl ChunkSink {
    /// Calls `f` with each chunk, in the order they are sent.
    pub fn new(f: impl Fn(Value) + Send + Sync + 'static) -> ChunkSink {
        ChunkSink(Some(Arc::new(f)))
    }

    /// A sink that drops every chunk.
    pub fn discard() -> ChunkSink {
        ChunkSink(None)
    }

    /// A sink feeding an unbounded channel, for callers that consume chunks in a task.
    pub fn channel() -> (ChunkSink, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = ChunkSink::new(move |v| {
            // A dropped receiver means the caller stopped listening; chunks are optional.
            let _ = tx.send(v);
        });
        (sink, rx)
    }

    pub fn send(&self, chunk: Value) {
        if let Some(f) = &self.0 {
            f(chunk);
        }
    }
}

impl fmt::Debug for ChunkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ChunkSink"
        } else {
            "ChunkSink(discard)"
        })
    }
}

/// An error from inside an element function. The host adds the element and function names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// The arguments do not fit what the function needs.
    #[error("bad arguments: {0}")]
    BadArgs(String),
    /// The function ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl FunctionError {
    pub fn failed(msg: impl Into<String>) -> FunctionError {
        FunctionError::Failed(msg.into())
    }
    pub fn bad_args(msg: impl Into<String>) -> FunctionError {
        FunctionError::BadArgs(msg.into())
    }
}

/// A loaded, running element: what its loader returned.
///
/// `call` is only invoked with a name listed by `functions` and with arguments already
/// checked against the element's declared `functionList` (when it declares arguments).
pub trait ElementRuntime: Send + Sync + 'static {
    /// The functions this element offers. Declarations in e.json's `functionList` (on the
    /// element or up its chain) refine argument shapes for these names.
    fn functions(&self) -> Vec<FunctionSpec>;

    /// Runs one function. Chunks sent to `chunks` reach the caller while it runs.
    fn call<'a>(
        &'a self,
        function: &'a str,
        args: Value,
        chunks: ChunkSink,
    ) -> BoxFuture<'a, Result<Value, FunctionError>>;

    /// Stops whatever the element runs (connections, tasks). The host bounds this with a
    /// deadline; the default does nothing, for elements with nothing to release.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

type FnBody =
    Arc<dyn Fn(Value, ChunkSink) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync>;
type StopBody = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// An [`ElementRuntime`] assembled from closures: handy for small loaders and tests.
#[derive(Default)]
pub struct FnRuntime {
    functions: BTreeMap<String, (FunctionSpec, FnBody)>,
    on_stop: Option<StopBody>,
}

impl FnRuntime {
    pub fn new() -> FnRuntime {
        FnRuntime::default()
    }

    /// Adds a function accepting any JSON arguments.
    pub fn function<F, Fut>(self, name: &str, f: F) -> FnRuntime
    where
        F: Fn(Value, ChunkSink) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.function_with_spec(FunctionSpec::any_args(name), f)
    }

    /// Adds a function with an explicit spec (its argument shape).
    pub fn function_with_spec<F, Fut>(mut self, spec: FunctionSpec, f: F) -> FnRuntime
    where
        F: Fn(Value, ChunkSink) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        let body: FnBody = Arc::new(move |args, sink| Box::pin(f(args, sink)));
        self.functions.insert(spec.name.clone(), (spec, body));
        self
    }

    /// Runs `f` when the element is stopped.
    pub fn on_stop<F, Fut>(mut self, f: F) -> FnRuntime
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_stop = Some(Arc::new(move || Box::pin(f())));
        self
    }
}

impl ElementRuntime for FnRuntime {
    fn functions(&self) -> Vec<FunctionSpec> {
        self.functions.values().map(|(s, _)| s.clone()).collect()
    }

    fn call<'a>(
        &'a self,
        function: &'a str,
        args: Value,
        chunks: ChunkSink,
    ) -> BoxFuture<'a, Result<Value, FunctionError>> {
        match self.functions.get(function) {
            Some((_, body)) => body(args, chunks),
            None => {
                let msg = format!("no function \"{function}\"");
                Box::pin(async move { Err(FunctionError::Failed(msg)) })
            }
        }
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        match &self.on_stop {
            Some(f) => f(),
            None => Box::pin(async {}),
        }
    }
}
