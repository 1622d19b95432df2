//! `jitnode store status` end to end: the setting's sources (flag, .env, default), the
//! import of today's records file, and errors that name the setting without the password.

use std::process::Command;

use jitnode_test_kit::postgres::PgCluster;

fn status(app: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jitnode"))
        .env_remove("JITNODE_STORE_URL")
        .args(["store", "status", "--app"])
        .arg(app)
        .args(extra)
        .output()
        .expect("jitnode runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `n` answers into an old-format `data/robot-records.sqlite3` (the robot's own
/// database before the store: its schema at user_version 1).
fn old_records(app: &std::path::Path, n: usize) {
    let data = app.join("data");
    std::fs::create_dir_all(&data).expect("data folder");
    let c = rusqlite::Connection::open(data.join(jitnode_store::LEGACY_RECORDS_FILE))
        .expect("old records file");
    c.execute_batch(&format!(
        "{} PRAGMA user_version = 1;",
        jitnode_store::RECORDS_TABLES
    ))
    .expect("old schema");
    for i in 0..n {
        c.execute(
            "INSERT INTO answers VALUES (?1, ?2, 'demo.robot', 'c', '1', 'u', 'u', 'U', 'q', 'a',
                 NULL, 1)",
            [format!("r{i}"), format!("m{i}")],
        )
        .expect("answer stored");
    }
}

#[test]
fn default_sqlite_store_imports_the_old_records_file() {
    let app = tempfile::tempdir().unwrap();
    old_records(app.path(), 3);
    let (ok, out, err) = status(app.path(), &[]);
    assert!(ok, "{err}");
    assert!(out.contains("backend         sqlite"), "{out}");
    assert!(out.contains("data/jitnode.sqlite3"), "{out}");
    assert!(out.contains("answers         3"), "{out}");
    // Again: migrations and the import are idempotent.
    let (ok, out, _) = status(app.path(), &[]);
    assert!(ok && out.contains("answers         3"), "{out}");
}

#[test]
fn env_file_selects_postgres_and_flag_overrides_it() {
    let pg = PgCluster::start();
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join(".env"),
        format!("JITNODE_STORE_URL={}\n", pg.url()),
    )
    .unwrap();
    let (ok, out, err) = status(app.path(), &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("backend         postgres")
            && out.contains(&format!(
                "schema version  {}",
                jitnode_store::latest_schema_version()
            )),
        "{out}"
    );
    let (ok, out, _) = status(app.path(), &["--store", "sqlite:other.sqlite3"]);
    assert!(
        ok && out.contains("backend         sqlite") && out.contains("other.sqlite3"),
        "{out}"
    );
}

/// `jitnode feedback` reads the configured store (here PostgreSQL): feedback written there
/// by any host, on answers imported from the old file, and a rating clicked twice is one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_reads_the_configured_store() {
    use jitnode_robot::callback::FeedbackKind;
    use jitnode_robot::records::RecordsAt;
    let pg = PgCluster::start();
    let app = tempfile::tempdir().unwrap();
    old_records(app.path(), 2);
    std::fs::write(
        app.path().join(".env"),
        format!("JITNODE_STORE_URL={}\n", pg.url()),
    )
    .unwrap();
    // Opening it the way `jitnode run` does imports the old answers.
    let (ok, out, err) = status(app.path(), &[]);
    assert!(ok && out.contains("answers         2"), "{err}{out}");
    let url = jitnode_store::StoreUrl::parse(&pg.url(), "test", app.path()).unwrap();
    let store = jitnode_store::Store::open(&url, &jitnode_store::StoreOptions::default())
        .await
        .unwrap();
    let records = RecordsAt::new(store);
    for kind in [FeedbackKind::Helpful, FeedbackKind::Unhelpful] {
        records
            .record_feedback("r1", "rater", kind, 5)
            .await
            .unwrap();
    }
    assert!(records
        .record_feedback("nope", "rater", FeedbackKind::Helpful, 5)
        .await
        .is_err());
    let out = Command::new(env!("CARGO_BIN_EXE_jitnode"))
        .env_remove("JITNODE_STORE_URL")
        .args(["feedback", "--format", "json", "--app"])
        .arg(app.path())
        .output()
        .expect("jitnode runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{stdout}");
    assert!(stdout.contains("\"unhelpful\""), "{stdout}");
    assert!(stdout.contains("r1"), "{stdout}");
}

#[test]
fn bad_or_unreachable_store_is_one_error_naming_the_setting() {
    let app = tempfile::tempdir().unwrap();
    let (ok, _, err) = status(app.path(), &["--store", "postgres//me:hunter2@x/db"]);
    assert!(
        !ok && err.contains("--store") && !err.contains("hunter2"),
        "{err}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        app.path().join(".env"),
        format!("JITNODE_STORE_URL=postgres://me:hunter2@127.0.0.1:{port}/db\n"),
    )
    .unwrap();
    let (ok, _, err) = status(app.path(), &[]);
    assert!(!ok, "unreachable store fails");
    assert!(
        err.contains("JITNODE_STORE_URL") && err.contains("cannot reach"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.lines().count(), 1, "one error: {err}");
}
