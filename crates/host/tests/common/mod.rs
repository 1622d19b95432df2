//! Helpers shared by the host's integration tests.

use std::future::Future;
use std::sync::Arc;

use jitnode_host::{loader_fn, BoxError, ElementRuntime, LoadContext, Registry};

/// `registry` with `builtin:<name>` registered: a recording loader that gets its own
/// handle on the test's `log` with each load.
pub fn register_logged<L, F, Fut>(registry: &mut Registry, name: &str, log: &Arc<L>, load: F)
where
    L: Send + Sync + 'static,
    F: Fn(LoadContext, Arc<L>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Box<dyn ElementRuntime>, BoxError>> + Send + 'static,
{
    let log = Arc::clone(log);
    registry.register(name, loader_fn(move |cx| load(cx, Arc::clone(&log))));
}
