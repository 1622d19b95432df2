//! `jitnode sandbox`: play DingTalk's side on loopback. Owned by the sandbox work; the
//! arguments and body here are filled in there.

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Runs the sandbox until Ctrl-C.
pub async fn run(args: SandboxArgs) -> Result<(), String> {
    let _ = args;
    Err("the sandbox is not built yet".to_string())
}
