//! Shared by the replicas test binaries: one host of the replicated robot app.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_host::{loader_fn, App, ElementRuntime, FnRuntime, Registry};
use jitnode_sandbox::Sandbox;
use jitnode_test_kit::robot::{robot_config, start_app, AppDir};
use serde_json::json;

pub const APP: &str = "dingreplica";

/// One host: its own app directory (own data/ and in-memory dedupe), the shared sandbox.
pub async fn host(sb: &Sandbox, calls: Arc<AtomicUsize>) -> (App, AppDir) {
    let dir = AppDir::new();
    dir.test_agent("countingAgent");
    dir.robot_family();
    dir.robot(
        "bot",
        &robot_config(sb, APP, "dingreplica-secret", &json!({})),
    );
    let mut registry = Registry::with_builtins();
    registry.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    registry.register(
        "countingAgent",
        loader_fn(move |_cx| {
            let calls = calls.clone();
            async move {
                let rt = FnRuntime::new().function("run", move |_args, chunks| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        chunks.send(
                            json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": "Once."}}),
                        );
                        Ok(json!({"answer": "Once.", "sources": []}))
                    }
                });
                Ok(Box::new(rt) as Box<dyn ElementRuntime>)
            }
        }),
    );
    let app = start_app(&dir, registry).await;
    (app, dir)
}
