//! Two hosts of one robot app on one sandbox, sharing one store (`jitnode-store`, registered
//! as the process store the way `jitnode run` does): every redelivery of a message, on
//! whichever connection the sandbox picks, ends in one answer. Its own test binary, since
//! the process store is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_host::{loader_fn, App, ElementRuntime, FnRuntime, Registry};
use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_store::{Claim, ClaimState, Store, StoreOptions, StoreUrl};
use jitnode_test_kit::robot::{robot_config, wait_for, AppDir};
use serde_json::json;

const APP: &str = "dingreplica";

/// One host: its own app directory (own data/ and in-memory dedupe), the shared sandbox.
async fn host(sb: &Sandbox, calls: Arc<AtomicUsize>) -> (App, AppDir) {
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
    let (app, _) = App::open(dir.path(), false, registry).expect("app opens");
    let report = app.start().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    (app, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_across_two_hosts_give_one_answer() {
    let store_dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::parse(
        "sqlite:shared.sqlite3",
        "JITNODE_STORE_URL",
        store_dir.path(),
    )
    .unwrap();
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    jitnode_store::set_process_store(store.clone());

    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, _da) = host(&sb, calls.clone()).await;
    let (b, _db) = host(&sb, calls.clone()).await;
    assert!(
        sb.wait_for_connections(APP, 2, Duration::from_secs(10))
            .await,
        "both hosts connect"
    );

    let posted = sb
        .post_message(&PostMessage::text(APP, "Answer me once"))
        .unwrap();
    // Redeliveries while answering and after: each lands on either connection.
    let mut id = posted.message_id.clone();
    for _ in 0..4 {
        id = sb.redeliver_now(&id).unwrap();
    }
    wait_for(&sb, "final card", Duration::from_secs(10), |t| {
        t.entries.iter().any(|e| e.kind == "card.send")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..4 {
        id = sb.redeliver_now(&id).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    let t = sb.transcript();
    assert_eq!(
        t.entries.iter().filter(|e| e.kind == "card.send").count(),
        1,
        "one card"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the agent ran once");
    // The claim is recorded answered in the shared store; a third host would not answer.
    assert_eq!(
        store
            .claim(&posted.msg_id, "host-c", jitnode_store::DEFAULT_LEASE)
            .await
            .unwrap(),
        Claim::Duplicate {
            host: jitnode_store::host_id().to_string(),
            state: ClaimState::Answered
        }
    );
    a.stop(Duration::from_secs(5)).await;
    b.stop(Duration::from_secs(5)).await;
    sb.shutdown().await;
}
