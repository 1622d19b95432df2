//! Runs the sandbox until killed, for scripts (Python SDK test, benchmark).
//!
//! `cargo run -p jitnode-sandbox --example serve -- [--port N] [--client-id ID]
//! [--client-secret S] [--ping-secs N]`. Prints `SANDBOX_URL=http://127.0.0.1:<port>` on
//! its first line once it is listening.

use std::time::Duration;

use jitnode_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port = 0u16;
    let mut client_id = "sandbox-client-id".to_string();
    let mut secret = "sandbox-client-secret".to_string();
    let mut ping_secs = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--port" => port = val()?.parse()?,
            "--client-id" => client_id = val()?,
            "--client-secret" => secret = val()?,
            "--ping-secs" => ping_secs = val()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let sb = Sandbox::start(SandboxConfig {
        bind: ([127, 0, 0, 1], port).into(),
        ping_interval: Duration::from_secs(ping_secs.max(1)),
        ..SandboxConfig::default()
    })
    .await?;
    sb.register_app(&client_id, &secret);
    println!("SANDBOX_URL={}", sb.base_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let problems = sb.problems();
    if !problems.is_empty() {
        eprintln!("protocol problems seen:\n  {}", problems.join("\n  "));
    }
    sb.shutdown().await;
    Ok(())
}
