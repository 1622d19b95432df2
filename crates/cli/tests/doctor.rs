//! `jitnode doctor` as a user runs it: the real binary against a sandbox on loopback,
//! healthy (exit 0) and refused (exit 1, each failed line with its fix).

use std::process::{Command, Output};

use jitnode_sandbox::{Permission, Refusal, RefusalFault, Sandbox, SandboxConfig};
use jitnode_test_kit::robot::{robot_config, AppDir};
use serde_json::json;

/// `jitnode doctor <app>`, run off the async runtime so the sandbox keeps serving.
async fn doctor(app: &AppDir) -> Output {
    let dir = app.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_jitnode"))
            .arg("doctor")
            .arg(&dir)
            .env_remove("DINGTALK_CLIENT_ID")
            .env_remove("DINGTALK_CLIENT_SECRET")
            .output()
            .expect("jitnode runs")
    })
    .await
    .expect("doctor finished")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_exits_0_when_healthy_and_1_with_the_fix_when_refused() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let app = AppDir::new();
    app.robot_family();
    app.robot(
        "bot",
        &robot_config(
            &sb,
            "dingdoctor",
            "doctor-secret",
            &json!({"card": {"mode": "ai"}}),
        ),
    );

    let healthy = doctor(&app).await;
    let out = stdout(&healthy);
    assert_eq!(healthy.status.code(), Some(0), "{out}");
    assert!(out.contains("imRobots.bot"), "{out}");
    assert!(!out.contains("[FAIL]"), "{out}");
    assert!(
        out.contains("[ok  ] permission Card.Streaming.Write"),
        "{out}"
    );

    for (fault, needle) in [
        (
            RefusalFault::missing(Permission::CardStreamingWrite),
            "Fix: grant Card.Streaming.Write",
        ),
        (
            RefusalFault::missing(Permission::CardInstanceWrite),
            "Fix: grant Card.Instance.Write",
        ),
        (
            RefusalFault::new(Refusal::RobotNotFound),
            "Fix: add the robot capability",
        ),
        (
            RefusalFault::new(Refusal::RateLimited),
            "Fix: raise card.minIntervalMs",
        ),
        (
            RefusalFault::new(Refusal::AuthFailed),
            "Fix: copy Client ID and Client Secret",
        ),
    ] {
        sb.clear_refusals();
        sb.refuse(fault.clone()).unwrap();
        let refused = doctor(&app).await;
        let out = stdout(&refused);
        assert_eq!(refused.status.code(), Some(1), "{fault:?}: {out}");
        // Every failed line carries its fix.
        let failed: Vec<&str> = out.lines().filter(|l| l.contains("[FAIL]")).collect();
        assert!(!failed.is_empty(), "{out}");
        for line in &failed {
            assert!(
                line.contains("Fix:") || line.contains("not checked"),
                "{line}"
            );
        }
        assert!(out.contains(needle), "{fault:?}: {out}");
        assert!(!out.contains("doctor-secret"), "{out}");
    }
    sb.shutdown().await;
}
