//! A robot reports its Stream connection into the host's readiness: a loaded robot is not
//! a working one until the gateway accepted it. Against the sandbox on loopback.

use std::time::Duration;

use jitnode_host::{App, Check, ReadinessReport, Registry};
use jitnode_sandbox::{Sandbox, SandboxConfig};
use jitnode_test_kit::robot::{robot_config, AppDir};
use serde_json::json;

/// Bound on each wait for a readiness change (a bound on failure, not a pause).
const WAIT: Duration = Duration::from_secs(20);

async fn wait(app: &App, what: &str, cond: impl Fn(&ReadinessReport) -> bool) -> ReadinessReport {
    match tokio::time::timeout(WAIT, app.readiness().wait_until(cond)).await {
        Ok(r) => r,
        Err(_) => panic!("timed out waiting for {what}: {:?}", app.readiness()),
    }
}

fn reason(report: &ReadinessReport, name: &str) -> String {
    match report.get(name) {
        Some(Check::NotReady { reason }) => reason.clone(),
        other => panic!("{name} is {other:?}, not \"not ready\""),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_is_ready_only_while_connected_and_says_why_not() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let good = robot_config(&sb, "good-id", "good-secret", &json!({}));
    // Registered with one secret, configured with another.
    let mut refused = robot_config(&sb, "refused-id", "right-secret", &json!({}));
    refused["clientSecret"] = json!("wrong-secret");
    // Nothing listens on the discard port of loopback.
    let mut gone = robot_config(&sb, "gone-id", "gone-secret", &json!({}));
    gone["openApiEndpoint"] = json!("http://127.0.0.1:9");
    let dir = AppDir::new();
    dir.robot_family();
    for (name, config) in [("good", &good), ("refused", &refused), ("gone", &gone)] {
        dir.robot(name, config);
    }

    let mut registry = Registry::with_builtins();
    registry.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    let (app, _) = App::open(dir.path(), false, registry).unwrap();
    let started = app.start().await;
    assert!(started.failed.is_empty(), "{:?}", started.failed);
    assert_eq!(started.started.len(), 3);

    let report = wait(&app, "every robot to settle", ReadinessReport::is_settled).await;
    assert_eq!(report.get("imRobots.good"), Some(&Check::Ready));
    let refused = reason(&report, "imRobots.refused");
    assert!(
        refused.starts_with(
            "bad credentials: DingTalk refused the credentials of clientId refused-id"
        ),
        "{refused}"
    );
    assert!(!refused.contains("wrong-secret") && !refused.contains("right-secret"));
    let gone = reason(&report, "imRobots.gone");
    assert!(
        gone.starts_with("cannot connect to http://127.0.0.1:9/: open connection failed: ")
            && gone.contains("refused"),
        "{gone}"
    );
    assert!(!report.is_ready());

    // A connection that drops makes the robot not ready until it is back.
    // The robot is ready once its side of the socket is open; the gateway may list the
    // connection a moment later.
    assert!(sb.wait_for_connections("good-id", 1, WAIT).await);
    let conn = sb.connections_of("good-id")[0].connection_id.clone();
    sb.drop_connection(&conn).unwrap();
    let lost = wait(&app, "the lost connection", |r| {
        matches!(r.get("imRobots.good"), Some(Check::NotReady { .. }))
    })
    .await;
    assert!(
        reason(&lost, "imRobots.good").starts_with("connection lost"),
        "{lost:?}"
    );
    wait(&app, "the reconnection", |r| {
        r.get("imRobots.good") == Some(&Check::Ready)
    })
    .await;

    // Stopped robots are no longer counted.
    app.stop(Duration::from_secs(5)).await;
    assert!(app.readiness().report().checks.is_empty());
    sb.shutdown().await;
}
