//! The README's "Going live" quotes, for each refusal, the exact sentence the host prints
//! for the demo robot (`imRobots.dingTalkDemo`, defaults, `clientId` `<Client ID>`); this
//! keeps those quotes true.

use jitnode_dingtalk_wire::{Permission, Refusal};
use jitnode_robot::config::RobotConfig;
use jitnode_robot::refusal::explain;
use serde_json::json;

/// Each refusal with the step it is quoted for.
fn quoted() -> Vec<(Refusal, &'static str)> {
    let denied = |p| Refusal::PermissionDenied {
        permissions: vec![p],
    };
    vec![
        (Refusal::AuthFailed, "opening the Stream connection"),
        (denied(Permission::CardInstanceWrite), "the thinking card"),
        (
            denied(Permission::CardStreamingWrite),
            "the answer card's updates",
        ),
        (denied(Permission::RobotSendMessage), "the thinking card"),
        (Refusal::TemplateUnpublished, "the thinking card"),
        (Refusal::RobotNotFound, "the thinking card"),
        (Refusal::RateLimited, "the answer card's updates"),
        (Refusal::SessionExpired, "the session webhook reply"),
    ]
}

fn sentence(refusal: &Refusal, during: &str) -> String {
    let mode = match refusal {
        Refusal::PermissionDenied { permissions }
            if permissions == &[Permission::RobotSendMessage] =>
        {
            json!({"mode": "standard"})
        }
        Refusal::TemplateUnpublished => json!({"mode": "template", "templateId": "<template id>"}),
        _ => json!({}),
    };
    let config = RobotConfig::from_value(&json!({"clientId": "<Client ID>",
        "clientSecret": "x", "agent": "aiagents.customerService", "card": mode}))
    .unwrap();
    explain(refusal, "imRobots.dingTalkDemo", &config, during)
}

#[test]
fn the_readme_quotes_each_refusal_as_the_host_prints_it() {
    let path = format!("{}/../../README.md", env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(&path).unwrap();
    // Quotes may wrap: compare with runs of whitespace as one space.
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = flat(&readme);
    let mut missing = Vec::new();
    for (r, during) in quoted() {
        let s = sentence(&r, during);
        if !readme.contains(&flat(&s)) {
            missing.push(s);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md lacks:\n{}",
        missing.join("\n")
    );
}
