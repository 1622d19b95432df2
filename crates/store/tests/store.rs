//! The store on both backends: a real SQLite file and a real PostgreSQL cluster (started by
//! jitnode-test-kit). Each scenario runs on both.

use std::path::Path;
use std::time::Duration;

use jitnode_store::{
    latest_schema_version, ChatTurn, Claim, ClaimState, Store, StoreError, StoreOptions, StoreUrl,
};
use jitnode_test_kit::postgres::PgCluster;

const LEASE: Duration = Duration::from_secs(60);

async fn open(url: &str, dir: &Path) -> Store {
    let url = StoreUrl::parse(url, "JITNODE_STORE_URL", dir).expect("valid url");
    Store::open(&url, &StoreOptions::default())
        .await
        .expect("store opens")
}

/// Two hosts' stores on the same backend.
async fn two_hosts(url: &str, dir: &Path) -> (Store, Store) {
    (open(url, dir).await, open(url, dir).await)
}

async fn race_exactly_one_winner(url: &str, dir: &Path) {
    let (a, b) = two_hosts(url, dir).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        for (store, host) in [(a.clone(), "host-a"), (b.clone(), "host-b")] {
            tasks.push(tokio::spawn(async move {
                (
                    i,
                    store
                        .claim(&format!("msg-{i}"), host, LEASE)
                        .await
                        .expect("claim"),
                )
            }));
        }
    }
    let mut wins = vec![0; 100];
    for t in tasks {
        let (i, c) = t.await.expect("task");
        if matches!(c, Claim::Won { .. }) {
            wins[i] += 1;
        }
    }
    assert!(
        wins.iter().all(|&w| w == 1),
        "each message claimed exactly once: {wins:?}"
    );
}

async fn redelivery_on_other_host(url: &str, dir: &Path) {
    let (a, b) = two_hosts(url, dir).await;
    assert_eq!(
        a.claim("m1", "host-a", LEASE).await.unwrap(),
        Claim::Won { takeover: false }
    );
    assert!(a
        .set_claim("m1", "host-a", ClaimState::Answered, LEASE)
        .await
        .unwrap());
    assert_eq!(
        b.claim("m1", "host-b", LEASE).await.unwrap(),
        Claim::Duplicate {
            host: "host-a".into(),
            state: ClaimState::Answered
        }
    );
    // Still in flight on A (lease alive): B must not answer either.
    assert_eq!(
        a.claim("m2", "host-a", LEASE).await.unwrap(),
        Claim::Won { takeover: false }
    );
    assert!(matches!(
        b.claim("m2", "host-b", LEASE).await.unwrap(),
        Claim::Duplicate {
            state: ClaimState::Claimed,
            ..
        }
    ));
}

/// An open card of `imRobots.bot` for message `msg_key`.
fn bot_card<'a>(card_id: &'a str, msg_key: &'a str) -> jitnode_store::OpenCard<'a> {
    jitnode_store::OpenCard {
        card_id,
        msg_key,
        robot: "imRobots.bot",
        question: "Where is my parcel?",
    }
}

async fn dead_host_lease_runs_out(url: &str, dir: &Path) {
    let (a, b) = two_hosts(url, dir).await;
    let short = Duration::from_millis(1);
    assert_eq!(
        a.claim("m", "host-a", short).await.unwrap(),
        Claim::Won { takeover: false }
    );
    let card = bot_card("card-1", "m");
    a.open_card(&card, "host-a", short).await.unwrap();
    assert!(a
        .update_card("card-1", "host-a", "thinking…", short)
        .await
        .unwrap());
    // Another robot's cards are not this sweeper's.
    a.open_card(
        &jitnode_store::OpenCard {
            card_id: "card-other",
            robot: "imRobots.other",
            ..card.clone()
        },
        "host-a",
        short,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Two sweepers: one gets the card, and its claim turns failed.
    let (s1, s2) = tokio::join!(
        a.take_stale_cards("imRobots.bot", "host-b", LEASE),
        b.take_stale_cards("imRobots.bot", "host-c", LEASE)
    );
    let mut taken = s1.unwrap();
    taken.extend(s2.unwrap());
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].dead_host, "host-a");
    assert_eq!(taken[0].last_text, "thinking…");
    assert_eq!(taken[0].question, "Where is my parcel?");
    assert_eq!(
        b.claim_of("m").await.unwrap().unwrap().1,
        ClaimState::Failed
    );
    b.close_card("card-1", true).await.unwrap();
    b.close_card("card-other", true).await.unwrap();
    assert_eq!(b.status().await.unwrap().open_cards, 0);
    // A claim without a card whose lease ran out is taken over by the redelivery's host.
    assert_eq!(
        a.claim("m3", "host-a", short).await.unwrap(),
        Claim::Won { takeover: false }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        b.claim("m3", "host-b", LEASE).await.unwrap(),
        Claim::Won { takeover: true }
    );
    assert!(
        !a.set_claim("m3", "host-a", ClaimState::Answered, LEASE)
            .await
            .unwrap(),
        "old owner lost it"
    );
    assert_eq!(
        b.claim_of("m3").await.unwrap().unwrap(),
        ("host-b".into(), ClaimState::Claimed, 2)
    );
}

async fn dead_host_unstarted_message_is_kept_for_a_sweeper(url: &str, dir: &Path) {
    let (a, b) = two_hosts(url, dir).await;
    let short = Duration::from_millis(1);
    let kept = |key: &'static str, robot: &'static str| jitnode_store::InboxMessage {
        key,
        robot,
        body: r#"{"msgId":"q","text":{"content":"hi"}}"#,
    };
    for key in ["q1", "q2", "q7"] {
        assert_eq!(
            a.claim_message(&kept(key, "imRobots.bot"), "host-a", short)
                .await
                .unwrap(),
            Claim::Won { takeover: false }
        );
    }
    // Both started answering. q2's card was recorded: the card sweeper's, not re-answered.
    // q7's host died before its card was recorded: nothing shown, re-answered.
    for key in ["q2", "q7"] {
        assert!(a
            .set_claim(key, "host-a", ClaimState::Answering, short)
            .await
            .unwrap());
    }
    a.open_card(&bot_card("card-q2", "q2"), "host-a", short)
        .await
        .unwrap();
    // Another robot's message, and a claim without its message, are not taken.
    a.claim_message(&kept("q3", "imRobots.other"), "host-a", short)
        .await
        .unwrap();
    a.claim("q4", "host-a", short).await.unwrap();
    // Still within its lease: not taken.
    a.claim_message(&kept("q5", "imRobots.bot"), "host-a", LEASE)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (s1, s2) = tokio::join!(
        a.take_stale_claims("imRobots.bot", "host-b", LEASE, 8),
        b.take_stale_claims("imRobots.bot", "host-c", LEASE, 8)
    );
    let mut taken = s1.unwrap();
    taken.extend(s2.unwrap());
    taken.sort_by(|x, y| x.msg_key.cmp(&y.msg_key));
    let keys: Vec<&str> = taken.iter().map(|c| c.msg_key.as_str()).collect();
    assert_eq!(keys, ["q1", "q7"], "{taken:?}");
    assert_eq!(
        b.claim_of("q7").await.unwrap().unwrap().1,
        ClaimState::Claimed,
        "taken to be started again"
    );
    assert_eq!(taken[0].dead_host, "host-a");
    assert!(taken[0].body.contains(r#""content":"hi""#));
    assert_eq!(
        taken[0].attempts, 2,
        "the dead host's claim, then the sweeper's"
    );
    let sweeper = if b.claim_of("q1").await.unwrap().unwrap().0 == "host-b" {
        "host-b"
    } else {
        "host-c"
    };
    // The old holder, had it only been slow, can no longer start it; the sweeper can.
    assert!(!a
        .set_claim("q1", "host-a", ClaimState::Answering, LEASE)
        .await
        .unwrap());
    assert!(b
        .set_claim("q1", sweeper, ClaimState::Answering, LEASE)
        .await
        .unwrap());
    assert!(b
        .take_stale_claims("imRobots.bot", "host-d", LEASE, 8)
        .await
        .unwrap()
        .is_empty());
    // A redelivery's takeover keeps the message it had.
    a.claim_message(&kept("q6", "imRobots.bot"), "host-a", short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        b.claim("q6", "host-b", short).await.unwrap(),
        Claim::Won { takeover: true }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = a
        .take_stale_claims("imRobots.bot", "host-e", LEASE, 8)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].msg_key.as_str(), again[0].dead_host.as_str()),
        ("q6", "host-b")
    );
}

async fn callback_and_memory(url: &str, dir: &Path) {
    let (a, b) = two_hosts(url, dir).await;
    assert!(a.first_callback("cb-1", "host-a").await.unwrap());
    assert!(
        !b.first_callback("cb-1", "host-b").await.unwrap(),
        "second delivery recorded once"
    );
    for i in 0..5 {
        let turn = ChatTurn {
            question: format!("q{i}"),
            answer: format!("a{i}"),
        };
        a.push_turn("chat", &turn, 3).await.unwrap();
    }
    b.push_turn(
        "other",
        &ChatTurn {
            question: "x".into(),
            answer: "y".into(),
        },
        3,
    )
    .await
    .unwrap();
    let qs: Vec<String> = b
        .turns("chat")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.question)
        .collect();
    assert_eq!(qs, ["q2", "q3", "q4"]);
    assert_eq!(a.turns("other").await.unwrap().len(), 1);
}

async fn concurrent_migrations(url: &str, dir: &Path) {
    let u = StoreUrl::parse(url, "JITNODE_STORE_URL", dir).unwrap();
    let opts = StoreOptions::default();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (u, o) = (u.clone(), opts.clone());
            tokio::spawn(async move { Store::open(&u, &o).await })
        })
        .collect();
    for h in handles {
        let s = h
            .await
            .expect("task")
            .expect("every host migrates without error");
        assert_eq!(
            s.status().await.unwrap().schema_version,
            latest_schema_version()
        );
        assert_eq!(
            s.migrate().await.unwrap(),
            latest_schema_version(),
            "idempotent"
        );
    }
}

/// Writes an old-format records file (the robot's own database before the store): its
/// schema at user_version 1, three answers (the third regenerated from the first) and one
/// rating.
fn write_old_records(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "{} PRAGMA user_version = 1;",
        jitnode_store::RECORDS_TABLES
    ))
    .unwrap();
    for i in 0..3i64 {
        c.execute(
            "INSERT INTO answers (record_id, message_id, robot, conversation_id,
                 conversation_type, user_id, staff_id, user_nick, question, answer,
                 regenerated_from, answered_at_ms)
             VALUES (?1, ?2, 'demo', 'c', '2', 'u', NULL, 'U', ?3, ?4, ?5, ?6)",
            rusqlite::params![
                format!("r{i}"),
                format!("m{i}"),
                format!("q{i}"),
                format!("a{i}"),
                (i == 2).then_some("r0"),
                1000 + i
            ],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO feedback (record_id, user_id, rating, rated_at_ms)
         VALUES ('r0', 'u2', 'helpful', 2000)",
        [],
    )
    .unwrap();
}

async fn legacy_import(url: &str, dir: &Path) {
    let old = dir.join(jitnode_store::LEGACY_RECORDS_FILE);
    write_old_records(&old);
    let s = open(url, dir).await;
    assert_eq!(s.import_legacy_records(&old).await.unwrap(), Some(4));
    assert_eq!(
        s.import_legacy_records(&old).await.unwrap(),
        None,
        "imported once"
    );
    let st = s.status().await.unwrap();
    assert_eq!((st.answers, st.feedback), (3, 1));
}

macro_rules! both {
    ($($name:ident),*) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                super::$name("sqlite:data/jitnode.sqlite3", dir.path()).await;
            } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let pg = super::PgCluster::start();
                super::$name(&pg.url(), dir.path()).await;
            } )*
        }
    };
}

both!(
    race_exactly_one_winner,
    redelivery_on_other_host,
    dead_host_lease_runs_out,
    dead_host_unstarted_message_is_kept_for_a_sweeper,
    callback_and_memory,
    concurrent_migrations,
    legacy_import
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_recovers_without_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = PgCluster::start();
    let s = open(&pg.url(), dir.path()).await;
    assert!(matches!(
        s.claim("before", "h", LEASE).await.unwrap(),
        Claim::Won { .. }
    ));
    pg.stop();
    let err = s
        .claim("during", "h", LEASE)
        .await
        .expect_err("store down is an error, not a panic");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    pg.run();
    assert!(matches!(
        s.claim("during", "h", LEASE).await.unwrap(),
        Claim::Won { takeover: false }
    ));
    assert!(
        matches!(
            s.claim("before", "h", LEASE).await.unwrap(),
            Claim::Duplicate { .. }
        ),
        "data kept"
    );
}

#[tokio::test]
async fn bad_and_unreachable_urls_name_the_setting_and_hide_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let e = StoreUrl::parse("mysql://u:hunter2@h/db", "JITNODE_STORE_URL", dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("JITNODE_STORE_URL") && !msg.contains("hunter2"),
        "{msg}"
    );
    // A port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let raw = format!("postgres://me:hunter2@127.0.0.1:{port}/db?password=hunter2");
    let u = StoreUrl::parse(&raw, "--store", dir.path()).unwrap();
    assert!(!format!("{u} {u:?}").contains("hunter2"));
    let opts = StoreOptions {
        setting: "--store".into(),
        timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let e: StoreError = Store::open(&u, &opts).await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(
        msg.contains("--store") && msg.contains("cannot reach") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[test]
fn the_default_store_is_the_default_file_in_the_data_folder() {
    let app = Path::new("/srv/app");
    let parsed = StoreUrl::parse(jitnode_store::DEFAULT_STORE_URL, "x", app).unwrap();
    assert_eq!(parsed, StoreUrl::default_in(&app.join("data")));
    assert_eq!(
        parsed.to_string(),
        format!("sqlite:/srv/app/data/{}", jitnode_store::DEFAULT_STORE_FILE)
    );
}
