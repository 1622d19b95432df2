//! One host of the replicated robot app on a real PostgreSQL store (a throwaway cluster from
//! jitnode-test-kit) that is stopped and restarted mid-run: while it is down, messages are
//! left un-ACKed and DingTalk (the sandbox) redelivers them; once it is back the host
//! reconnects by itself and answers each question once. Its own test binary, since the
//! process store is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_store::{ClaimState, Store, StoreOptions, StoreUrl};
use jitnode_test_kit::postgres::PgCluster;
use jitnode_test_kit::robot::{wait_connected, wait_for};

mod common;
use common::{host, post_unacked, APP};

fn answers(sb: &Sandbox) -> usize {
    sb.transcript()
        .entries
        .iter()
        .filter(|e| e.kind == "card.send")
        .count()
}

/// Waits until the message's claim is recorded answered (the answer is complete).
async fn answered(store: &Store, msg_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Errors while the pool reconnects are retried like an absent claim.
        if let Ok(Some((_, ClaimState::Answered, _))) = store.claim_of(msg_id).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{msg_id} not answered in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() {
    let mut pg = PgCluster::start();
    let url = StoreUrl::parse(&pg.url(), "JITNODE_STORE_URL", std::path::Path::new(".")).unwrap();
    let opts = StoreOptions {
        timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &opts).await.unwrap();
    jitnode_store::set_process_store(store.clone());

    let sb = Sandbox::start(SandboxConfig {
        redeliver_unacked_after: Some(Duration::from_millis(800)),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (app, _dir) = host(&sb, calls.clone()).await;
    wait_connected(&sb, APP, 1).await;

    let before = sb
        .post_message(&PostMessage::text(APP, "Before the restart"))
        .unwrap();
    answered(&store, &before.msg_id).await;

    pg.stop();
    // Not claimable, so not ACKed: the push stays DingTalk's to redeliver.
    let during = post_unacked(
        &sb,
        "While the store is down",
        Duration::from_millis(600),
        "a message the store could not claim was ACKed",
    )
    .await;
    // Redelivered (every 800 ms) and refused again while the server is down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(answers(&sb), 1, "nothing answered without a claim");
    pg.run();

    wait_for(
        &sb,
        "the answer after the restart",
        Duration::from_secs(20),
        |_| answers(&sb) == 2,
    )
    .await;
    answered(&store, &during.msg_id).await;
    // Later redeliveries (the sandbox keeps pushing un-ACKed copies) are ACKed, not answered.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(answers(&sb), 2, "each question answered once");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the agent ran once per question"
    );
    // The answers are recorded on the shared store, where every host and
    // `jitnode feedback` read them.
    let records = jitnode_robot::records::RecordsAt::new(store.clone());
    for m in [&before, &during] {
        let row = records.answer_by_message(&m.msg_id).await.unwrap();
        assert_eq!(row.map(|r| r.answer).as_deref(), Some("Once."));
    }
    let problems = sb.problems();
    assert!(problems.is_empty(), "{problems:?}");
    app.stop(Duration::from_secs(5)).await;
    sb.shutdown().await;
}
