//! `jitnode sandbox`: play DingTalk's side on loopback until Ctrl-C.

use jitnode_sandbox::{Sandbox, SandboxConfig};

/// Default port, fixed so the demo's openApiEndpoint can name it.
pub const DEFAULT_PORT: u16 = 8917;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// App to register (the robot's clientId / AppKey). Default: $DINGTALK_CLIENT_ID, else
    /// the demo's `sandbox-client-id`.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Its secret; never printed. Default: $DINGTALK_CLIENT_SECRET, else the demo's
    /// `sandbox-client-secret`.
    #[arg(long)]
    pub client_secret: Option<String>,
    /// Seconds between SYSTEM pings on each connection.
    #[arg(long, default_value_t = 30)]
    pub ping_secs: u64,
}

/// Runs the sandbox until Ctrl-C (or SIGTERM).
pub async fn run(args: SandboxArgs) -> Result<(), String> {
    let config = SandboxConfig {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        ping_interval: std::time::Duration::from_secs(args.ping_secs.max(1)),
        ..SandboxConfig::default()
    };
    // The demo's .env values are the fallback, so `jitnode run --sandbox` and this agree.
    let client_id = args
        .client_id
        .or_else(|| std::env::var("DINGTALK_CLIENT_ID").ok())
        .unwrap_or_else(|| "sandbox-client-id".into());
    let client_secret = args
        .client_secret
        .or_else(|| std::env::var("DINGTALK_CLIENT_SECRET").ok())
        .unwrap_or_else(|| "sandbox-client-secret".into());
    let sb = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    sb.register_app(&client_id, &client_secret);
    let base = sb.base_url();
    let id = &client_id;
    println!("DingTalk sandbox listening on {base}");
    println!("  app registered: clientId {id}");
    println!("  point the robot at it: DINGTALK_OPENAPI_ENDPOINT={base} (openApiEndpoint)");
    println!("  post a message:");
    println!(
        "    curl -s {base}/control/messages -H 'content-type: application/json' \\\n      -d '{{\"clientId\":\"{id}\",\"text\":\"hello\"}}'"
    );
    println!(
        "    (group with @: add \"group\":true,\"conversationId\":\"cidG1\"; other kinds: \"msgtype\":\"audio\")"
    );
    println!("  read what the robot sent: curl -s {base}/control/transcript");
    println!("  ACKs / problems: curl -s {base}/control/acks ; curl -s {base}/control/problems");
    println!(
        "  faults: POST {base}/control/faults/{{disconnect,drop,pings,redeliver,cards,expire-webhooks}}"
    );
    println!("Ctrl-C stops.");
    wait_for_stop().await?;
    sb.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot listen for Ctrl-C: {e}")),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_stop() -> Result<(), String> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))
}
