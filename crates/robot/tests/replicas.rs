//! Two hosts of one robot app on one sandbox, sharing one store (`jitnode-store`, registered
//! as the process store the way `jitnode run` does): every redelivery of a message, on
//! whichever connection the sandbox picks, ends in one answer. Its own test binary, since
//! the process store is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_host::App;
use jitnode_sandbox::{PostMessage, Posted, Sandbox, SandboxConfig};
use jitnode_store::{Claim, ClaimState, Store, StoreOptions, StoreUrl};
use jitnode_test_kit::robot::{wait_connected, wait_for};

mod common;
use common::{host, post_unacked, APP};

/// The store of this test binary's hosts (the process store is set once per process).
async fn shared_store() -> (Store, std::path::PathBuf) {
    static STORE: tokio::sync::OnceCell<(Store, std::path::PathBuf, tempfile::TempDir)> =
        tokio::sync::OnceCell::const_new();
    let (store, path, _) = STORE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let url =
                StoreUrl::parse("sqlite:shared.sqlite3", "JITNODE_STORE_URL", dir.path()).unwrap();
            let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
            jitnode_store::set_process_store(store.clone());
            (store, dir.path().join("shared.sqlite3"), dir)
        })
        .await;
    (store.clone(), path.clone())
}

/// The tests share the process store; one at a time keeps one test's lock from another.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What each test starts from: its turn at the process store (held to the test's end), the
/// store and its file, a sandbox of its own, and the count of the agent's runs on every host
/// the test starts.
struct Setup(
    tokio::sync::MutexGuard<'static, ()>,
    Store,
    std::path::PathBuf,
    Sandbox,
    Arc<AtomicUsize>,
);

async fn setup() -> Setup {
    let one = SERIAL.lock().await;
    let (store, path) = shared_store().await;
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    Setup(one, store, path, sb, Arc::new(AtomicUsize::new(0)))
}

/// [`setup`], the app registered with the sandbox before any host of it connects.
async fn setup_with_app() -> Setup {
    let s = setup().await;
    // (The same app `host` registers.)
    s.3.register_app(APP, "dingreplica-secret");
    s
}

/// `text` in `group`, not @-mentioning the robot: pushed to no one, its `data` is what a
/// host would have got.
fn post_unpushed(sb: &Sandbox, text: &str, group: &str) -> Posted {
    let mut m = PostMessage::text(APP, text).in_group(group);
    m.at_robot = false;
    sb.post_message(&m).unwrap()
}

/// Stops the host, then the sandbox.
async fn stop(host: App, sb: Sandbox) {
    host.stop(Duration::from_secs(5)).await;
    sb.shutdown().await;
}

/// Reads `key`'s claim up to `tries` times, 20 ms apart, until `done` holds; the last read.
async fn claim_until(
    store: &Store,
    key: &str,
    tries: usize,
    done: impl Fn(&Option<(String, ClaimState, i64)>) -> bool,
) -> Option<(String, ClaimState, i64)> {
    let mut state = None;
    for _ in 0..tries {
        state = store.claim_of(key).await.unwrap();
        if done(&state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ack_follows_the_claim() {
    let Setup(_one, store, path, sb, calls) = setup().await;
    let (a, _da) = host(&sb, calls.clone()).await;
    wait_connected(&sb, APP, 1).await;

    // Another writer holds the store's write lock: the claim waits, and so must the ACK.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let posted = post_unacked(
        &sb,
        "Claim me first",
        Duration::from_millis(700),
        "ACKed before the claim could be written",
    )
    .await;
    // (Read through the blocker: the store's own connection is waiting on the lock.)
    let rows: i64 = blocker
        .query_row(
            "SELECT COUNT(*) FROM inbox WHERE msg_key = ?1",
            [&posted.msg_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "no claim yet");
    blocker.execute_batch("COMMIT").unwrap();
    let ack = sb
        .wait_for_ack(&posted.message_id, Duration::from_secs(10))
        .await
        .expect("ACK once the claim is written");
    assert!(ack.valid(), "{:?}", ack.problems);
    assert_eq!(ack.code, Some(200));
    let (owner, _, _) = store
        .claim_of(&posted.msg_id)
        .await
        .unwrap()
        .expect("the claim row exists when the ACK arrives");
    assert_eq!(owner, jitnode_store::host_id());
    wait_for(&sb, "the answer", Duration::from_secs(10), |t| {
        t.entries
            .iter()
            .any(|e| e.body.to_string().contains("Once."))
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    stop(a, sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_across_two_hosts_give_one_answer() {
    let Setup(_one, store, _, sb, calls) = setup().await;
    let (a, _da) = host(&sb, calls.clone()).await;
    let (b, _db) = host(&sb, calls.clone()).await;
    wait_connected(&sb, APP, 2).await;

    let posted = sb
        .post_message(&PostMessage::text(APP, "Answer me once"))
        .unwrap();
    // Redeliveries while answering and after, on each connection in turn: both hosts
    // see the message while the other holds its claim.
    let conns: Vec<String> = sb
        .connections_of(APP)
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    let mut ids = vec![posted.message_id.clone()];
    for c in conns.iter().chain(&conns) {
        ids.push(sb.redeliver_to(&posted.message_id, c).unwrap());
    }
    wait_for(&sb, "final card", Duration::from_secs(10), |t| {
        t.entries.iter().any(|e| e.kind == "card.send")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for c in conns.iter().chain(&conns) {
        ids.push(sb.redeliver_to(&posted.message_id, c).unwrap());
    }
    // Every delivery, on either host, is ACKed once, on its own connection.
    for id in &ids {
        let ack = sb
            .wait_for_ack(id, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("delivery {id} not ACKed"));
        assert!(ack.valid(), "{id}: {:?}", ack.problems);
        assert_eq!(ack.code, Some(200), "{id}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

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
    stop(b, sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_a_dead_host_claimed_but_never_started_is_answered_by_a_live_host() {
    let Setup(_one, store, _, sb, calls) = setup_with_app().await;
    // Three group messages that were not pushed to anyone: their `data` is what a host got.
    // A host claimed them (and so ACKed them), then died: before answering the first;
    // after marking the second answering but before its card was recorded; and after
    // recording the third's card but before sending it (DingTalk has no such card). All
    // the claims and the card's lease ran out.
    let mut keys = Vec::new();
    const GROUPS: [&str; 3] = ["cidSwept==", "cidSwept2==", "cidSwept3=="];
    for (i, group) in GROUPS.into_iter().enumerate() {
        let answering = i > 0;
        let posted = post_unpushed(&sb, "Answer me after all", group);
        assert!(!posted.delivered);
        let body = posted.data.to_string();
        assert_eq!(
            plant(&store, &posted.msg_id, &body, "host-dead").await,
            Claim::Won { takeover: false }
        );
        if answering {
            let short = Duration::from_millis(1);
            assert!(store
                .set_claim(&posted.msg_id, "host-dead", ClaimState::Answering, short)
                .await
                .unwrap());
        }
        if i == 2 {
            let card = jitnode_store::OpenCard {
                card_id: "card-never-sent",
                msg_key: &posted.msg_id,
                robot: "imRobots.bot",
                question: "Answer me after all",
            };
            let short = Duration::from_millis(1);
            store.open_card(&card, "host-dead", short).await.unwrap();
        }
        keys.push(posted.msg_id);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    // A live host's sweeper answers each at start, once.
    let (a, _da) = host(&sb, calls.clone()).await;
    wait_for(&sb, "the swept answers", Duration::from_secs(10), |t| {
        GROUPS.iter().all(|g| {
            t.entries.iter().any(|e| {
                e.conversation_id.as_deref() == Some(*g) && e.body.to_string().contains("Once.")
            })
        })
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "each answered once");
    for key in &keys {
        let (owner, _, attempts) = store.claim_of(key).await.unwrap().unwrap();
        assert_eq!(owner, jitnode_store::host_id());
        assert_eq!(attempts, 2);
        // Recorded answered once the answer is out (the claim's end follows the answer).
        let state = claim_until(&store, key, 101, |c| {
            matches!(c, Some((_, ClaimState::Answered, _)))
        })
        .await;
        assert_eq!(state.map(|c| c.1), Some(ClaimState::Answered), "{key}");
    }
    stop(a, sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swept_message_no_answer_reaches_is_kept_for_a_later_sweep_then_failed() {
    let Setup(_one, store, _, sb, calls) = setup_with_app().await;
    // Real message data with a conversation type DingTalk never sends: it reads, and
    // every attempt to answer it fails.
    let unanswerable = |text: &str| {
        let posted = post_unpushed(&sb, text, "cidSweptBad==");
        let mut data = posted.data.clone();
        data["conversationType"] = serde_json::json!("9");
        (posted.msg_id, data.to_string())
    };
    // `last`: claimed by a dead host, then taken by a sweeper that died too (2 attempts).
    let (last, body) = unanswerable("Last try");
    assert_eq!(
        plant(&store, &last, &body, "host-dead").await,
        Claim::Won { takeover: false }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = store
        .take_stale_claims(
            "imRobots.bot",
            "host-dead-sweeper",
            Duration::from_millis(1),
            8,
        )
        .await
        .unwrap();
    assert!(taken.iter().any(|c| c.msg_key == last), "{taken:?}");
    // `first`: claimed by a dead host only (1 attempt).
    let (first, body) = unanswerable("First try");
    assert_eq!(
        plant(&store, &first, &body, "host-dead").await,
        Claim::Won { takeover: false }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;

    // A live host's sweeper takes both at start; neither answer reaches anyone.
    let (a, _da) = host(&sb, calls.clone()).await;
    let state = claim_until(&store, &last, 250, |c| {
        matches!(c, Some((_, ClaimState::Failed, _)) | None)
    })
    .await;
    let me = jitnode_store::host_id().to_string();
    // Its third claim was its last: given up as failed, not deleted.
    assert_eq!(state, Some((me.clone(), ClaimState::Failed, 3)));
    // The other, swept in the same sweep and failed the same way by now, is kept for a
    // later sweep: claimed again, by this host, with its attempt counted (released, it
    // would be gone, since nothing pushes it again).
    let state = claim_until(&store, &first, 250, |c| {
        !matches!(c, Some((_, ClaimState::Answering, _)))
    })
    .await;
    assert_eq!(state, Some((me, ClaimState::Claimed, 2)));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no agent ran");
    stop(a, sb).await;
}

/// Claims `key` for `host` with its message kept, under a lease that runs out at once.
async fn plant(store: &Store, key: &str, body: &str, host: &str) -> Claim {
    let kept = jitnode_store::InboxMessage {
        key,
        robot: "imRobots.bot",
        body,
    };
    store
        .claim_message(&kept, host, Duration::from_millis(1))
        .await
        .unwrap()
}
