//! Load driver of bench/stream.sh: starts the sandbox in-process, spawns the echo robot
//! given after `--` (with DINGTALK_OPENAPI_ENDPOINT pointing at the sandbox), posts
//! messages with a bounded number awaiting their webhook reply, and prints one line:
//! `msgs_per_s=.. ack_p50_ms=.. ack_p99_ms=.. peak_rss_kb=.. bad_acks=.. problems=..`.
//!
//! `bench_driver [--messages N] [--window W] [--warmup N] -- <command> [args..]`

use std::process::Command;
use std::time::{Duration, Instant};

use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_test_kit::drive::peak_rss_kb;

const APP: &str = "bench-app";
const SECRET: &str = "bench-secret";

async fn run_batch(
    sb: &Sandbox,
    start_at: u64,
    n: u64,
    window: u64,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(n as usize);
    let mut posted = 0;
    while posted < n {
        let done = sb.reply_count() - start_at;
        if posted - done < window {
            let p = sb
                .post_message(&PostMessage::text(APP, &format!("msg {posted}")))
                .map_err(|e| e.to_string())?;
            ids.push(p.message_id);
            posted += 1;
        } else if !sb
            .wait_for_replies(start_at + posted - window + 1, Duration::from_secs(30))
            .await
        {
            return Err(format!("stalled: {done} of {posted} replies after 30 s"));
        }
    }
    if !sb
        .wait_for_replies(start_at + n, Duration::from_secs(60))
        .await
    {
        return Err(format!(
            "only {} of {n} replies",
            sb.reply_count() - start_at
        ));
    }
    Ok(ids)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

// One thread, leaving the other core to the robot: with two workers here the cross-core
// wakeups and socket-lock contention cost our client 15% of its throughput (2 cores).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut messages = 5000u64;
    let mut window = 100u64;
    let mut warmup = 200u64;
    let mut args = std::env::args().skip(1);
    let mut cmd: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => messages = args.next().ok_or("--messages N")?.parse()?,
            "--window" => window = args.next().ok_or("--window W")?.parse()?,
            "--warmup" => warmup = args.next().ok_or("--warmup N")?.parse()?,
            "--" => {
                cmd = args.by_ref().collect();
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if cmd.is_empty() {
        return Err("give the robot command after --".into());
    }
    let sb = Sandbox::start(SandboxConfig::default()).await?;
    sb.register_app(APP, SECRET);
    let mut child = jitnode_test_kit::drive::robot_command(
        &cmd[0],
        &cmd[1..],
        &sb,
        APP,
        SECRET,
        "BENCH_VERBOSE",
    )
    .spawn()?;
    let pid = child.id();
    let result = async {
        if !sb.wait_for_connections(APP, 1, Duration::from_secs(60)).await {
            return Err("the robot did not connect within 60 s".to_string());
        }
        run_batch(&sb, 0, warmup, window).await?;
        let t0 = Instant::now();
        let ids = run_batch(&sb, warmup, messages, window).await?;
        let secs = t0.elapsed().as_secs_f64();
        // A robot may ACK after replying; give the last ACKs a moment to land.
        if let Some(last) = ids.last() {
            sb.wait_for_ack(last, Duration::from_secs(5)).await;
        }
        let wanted: std::collections::HashSet<String> = ids.into_iter().collect();
        let acks = sb.acks();
        let mut lat: Vec<f64> = acks
            .iter()
            .filter(|a| wanted.contains(&a.message_id))
            .map(|a| a.latency_ms)
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let bad = acks.iter().filter(|a| !a.valid()).count();
        Ok(format!(
            "msgs_per_s={:.0} ack_p50_ms={:.2} ack_p99_ms={:.2} peak_rss_kb={} acks={} bad_acks={} problems={}",
            messages as f64 / secs,
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            peak_rss_kb(pid),
            lat.len(),
            bad,
            sb.problems().len()
        ))
    }
    .await;
    // SIGTERM first so the robot can stop cleanly; the peak RSS was read before.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    for _ in 0..50 {
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    sb.shutdown().await;
    match result {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
