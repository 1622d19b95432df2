//! Soak driver of bench/soak.sh: starts the sandbox in this process, runs the robot command
//! given after `--` (a real `jitnode run` on a copy of the demo app) against it, and pushes
//! messages through it while injecting faults, then checks that every message got exactly
//! one answer, that no card was left open, and that the robot's memory stayed flat.
//!
//! The sandbox lives here, not in the robot's process (`run --sandbox`), so the robot's RSS
//! is the host's own and the transcript is read in process, once per entry.
//!
//! Each message comes from a user of its own (`soak-<i>`), so its card (`IM_ROBOT.soak-<i>`)
//! and its webhook replies (`cidp2psoak-<i>...`) name it. An answer is a card that reached
//! "finished", or a markdown reply (the robot's fallback when the card API keeps failing).
//!
//! Faults, from the middle of the warm-up until the last message is posted (so the
//! warm-up's RSS already includes what the fault paths first allocate: reconnects,
//! redeliveries, retries of the card API):
//! - every `SOAK_DISCONNECT_SECS` (10) the gateway sends `disconnect` on the live connections;
//! - of the connections the robot opens, `SOAK_DROP_PCT` % (1) are dropped without a close
//!   frame at a random point of their life (frames in flight are lost; the sandbox
//!   redelivers what stays unACKed); the first one after the faults start always is, so every
//!   run takes that path;
//! - `SOAK_REDELIVER_PCT` % (5) of messages are pushed again (same msgId) 0-3 s later;
//! - `SOAK_MALFORMED_PCT` % (1) of messages are followed by a malformed frame;
//! - every `SOAK_BURST_SECS` (15) the card API answers the next `SOAK_BURST_CALLS` (20)
//!   calls with a 5xx.
//!
//! `soak [--messages N] [--warmup N] [--window W] [--seed S] -- <command> [args..]`
//! (the environment variables above tune the faults). The warm-up is the first
//! `SOAK_WARMUP_PCT` % (10) of the messages, unless `--warmup` gives a count: the robot's
//! bounded caches (conversation memory, known webhooks, the allocator's arenas) fill during
//! it, so what grows after it is what the memory target is about. Prints progress on stderr,
//! then `faults: ..` and, last, `messages=.. answered_once=.. duplicates=.. lost=..
//! stuck_cards=.. rss_start_kb=.. rss_end_kb=.. rss_warm_kb=.. rss_growth_pct=..`:
//! `rss_start` once the robot is connected, before any message; `rss_warm` when the warm-up's
//! messages are all answered; `rss_growth_pct` is the end's growth over `rss_warm`. Exits 1
//! when a target is missed (lost, duplicates or stuck cards above 0, or the end RSS more
//! than 10% above the warm-up's).

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig, DEFAULT_MAX_RECORDS};
use jitnode_test_kit::drive::{
    env_num, follow, post, redeliver_later, rss_kb, stuck_cards, Rng, Stop, Tally, QUESTIONS,
};
use tokio::time::Instant;

const APP: &str = "soak-app";
const SECRET: &str = "soak-secret";
/// Staff id prefix of the soak's users; the number after it is the message's index.
const USER: &str = "soak-";

/// A malformed frame of a few kinds; those with a messageId are owed an ACK.
fn malformed_frame(kind: u64, n: u64) -> String {
    let id = format!("soak-bad-{n}");
    match kind % 5 {
        0 => "{not json".to_string(),
        1 => format!(
            r#"{{"specVersion":"1.0","type":"CALLBACK","headers":{{"topic":"/v1.0/im/bot/messages/get","messageId":"{id}","contentType":"application/json"}},"data":"not json either"}}"#
        ),
        2 => format!(
            r#"{{"specVersion":"1.0","type":"CALLBACK","headers":{{"topic":"/v1.0/im/bot/messages/get","messageId":"{id}","contentType":"application/json"}},"data":"{{\"msgtype\":\"text\"}}"}}"#
        ),
        3 => format!(
            r#"{{"specVersion":"1.0","type":"NOT_A_TYPE","headers":{{"topic":"/v1.0/im/bot/messages/get","messageId":"{id}"}},"data":"{{}}"}}"#
        ),
        _ => r#"{"specVersion":"1.0","type":"CALLBACK","headers":{},"data":42}"#.to_string(),
    }
}

#[derive(Default)]
struct Faults {
    disconnects: AtomicU64,
    drops: AtomicU64,
    redeliveries: AtomicU64,
    malformed: AtomicU64,
    bursts: AtomicU64,
}

/// Disconnects, drops and card API bursts on a clock, until `stop`.
/// The fault clock's settings, read before the run so a bad value stops it at once.
#[derive(Clone, Copy)]
struct ClockSettings {
    disconnect_every: Duration,
    burst_every: Duration,
    burst_calls: u32,
    drop_pct: f64,
}

impl ClockSettings {
    fn from_env() -> Result<ClockSettings, String> {
        Ok(ClockSettings {
            disconnect_every: Duration::from_secs(env_num("SOAK_DISCONNECT_SECS", 10u64)?.max(1)),
            burst_every: Duration::from_secs(env_num("SOAK_BURST_SECS", 15u64)?.max(1)),
            burst_calls: env_num("SOAK_BURST_CALLS", 20u32)?,
            drop_pct: env_num("SOAK_DROP_PCT", 1.0f64)?,
        })
    }
}

async fn fault_clock(
    sb: Arc<Sandbox>,
    faults: Arc<Faults>,
    seed: u64,
    settings: ClockSettings,
    stop: Arc<Stop>,
) {
    let ClockSettings {
        disconnect_every,
        burst_every,
        burst_calls,
        drop_pct,
    } = settings;
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut next_disconnect = start + disconnect_every;
    let mut next_burst = start + burst_every;
    let mut seen: HashSet<String> = HashSet::new();
    // Connection id -> when it is dropped.
    let mut doomed: Vec<(String, Instant)> = Vec::new();
    let mut dropped_one = false;
    let statuses = [500u16, 502, 503, 504];
    loop {
        let now = Instant::now();
        for c in sb.connections_of(APP) {
            if seen.insert(c.connection_id.clone()) && (!dropped_one || rng.chance(drop_pct)) {
                dropped_one = true;
                let at =
                    now + Duration::from_millis(rng.below(disconnect_every.as_millis() as u64));
                doomed.push((c.connection_id, at));
            }
        }
        doomed.retain(|(id, at)| {
            if *at > now {
                return true;
            }
            if sb.drop_connection(id).is_ok() {
                faults.drops.fetch_add(1, Ordering::Relaxed);
            }
            false
        });
        if now >= next_disconnect {
            next_disconnect = now + disconnect_every;
            for c in sb.connections_of(APP).iter().filter(|c| c.accepting) {
                if sb.send_disconnect(&c.connection_id).is_ok() {
                    faults.disconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if now >= next_burst {
            next_burst = now + burst_every;
            let status = statuses[rng.below(statuses.len() as u64) as usize];
            sb.fail_card_calls(status, Some(burst_calls.max(1)));
            faults.bursts.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.stopped() => return,
        }
    }
}

struct Args {
    messages: u64,
    warmup: u64,
    window: u64,
    seed: u64,
    cmd: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        messages: env_num("SOAK_MESSAGES", 100_000u64)?,
        warmup: 0,
        window: 200,
        seed: env_num("SOAK_SEED", 14u64)?,
        cmd: Vec::new(),
    };
    let warmup_pct = env_num("SOAK_WARMUP_PCT", 10.0f64)?.clamp(0.0, 100.0);
    a.warmup = ((a.messages as f64 * warmup_pct / 100.0) as u64).max(1);
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<u64, String> {
        v.ok_or(format!("{what} needs a number"))?
            .parse()
            .map_err(|e| format!("{what}: {e}"))
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--messages" => a.messages = num(it.next(), "--messages")?,
            "--warmup" => a.warmup = num(it.next(), "--warmup")?,
            "--window" => a.window = num(it.next(), "--window")?.max(1),
            "--seed" => a.seed = num(it.next(), "--seed")?,
            "--" => a.cmd = it.by_ref().collect(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.cmd.is_empty() {
        return Err("give the robot command after --".into());
    }
    a.warmup = a.warmup.min(a.messages);
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let n = a.messages as usize;
    let redeliver_pct = env_num("SOAK_REDELIVER_PCT", 5.0f64)?;
    let malformed_pct = env_num("SOAK_MALFORMED_PCT", 1.0f64)?;
    let clock_settings = ClockSettings::from_env()?;
    let sb = Arc::new(
        Sandbox::start(SandboxConfig {
            // DingTalk pushes an unACKed message again; frames lost with a dropped link
            // come back this way.
            redeliver_unacked_after: Some(Duration::from_secs(5)),
            // The follower reads each entry as it comes; the ring only needs slack.
            max_records: DEFAULT_MAX_RECORDS,
            ..SandboxConfig::default()
        })
        .await?,
    );
    sb.register_app(APP, SECRET);
    let mut child = jitnode_test_kit::drive::robot_command(
        &a.cmd[0],
        &a.cmd[1..],
        &sb,
        APP,
        SECRET,
        "SOAK_VERBOSE",
    )
    .spawn()?;
    let pid = child.id();
    let tally = Arc::new(Tally::new(APP, USER, n));
    let faults = Arc::new(Faults::default());
    let stop_follow = Stop::new();
    let stop_faults = Stop::new();
    let follower = tokio::spawn(follow(sb.clone(), vec![tally.clone()], stop_follow.clone()));

    let result = async {
        if !sb
            .wait_for_connections(APP, 1, Duration::from_secs(120))
            .await
        {
            return Err("the robot did not connect within 120 s".to_string());
        }
        let mut rng = Rng(a.seed.max(1));
        let rss_start = rss_kb(pid);
        let mut rss_warm = 0;
        let mut clock = None;
        let started = Instant::now();
        let mut last_report = started;
        let mut posted = a.messages;
        let faults_from = a.warmup / 2;
        for i in 0..a.messages {
            if i == faults_from {
                clock = Some(tokio::spawn(fault_clock(
                    sb.clone(),
                    faults.clone(),
                    a.seed,
                    clock_settings,
                    stop_faults.clone(),
                )));
            }
            if i == a.warmup {
                if !tally.wait_done(i, Duration::from_secs(60)).await {
                    return Err(format!("warm-up stalled at {} of {i}", tally.done()));
                }
                rss_warm = rss_kb(pid);
                eprintln!("soak: warm-up done ({i} messages), rss {rss_warm} kB");
            }
            if i >= a.window
                && !tally
                    .wait_done(i - a.window + 1, Duration::from_secs(60))
                    .await
            {
                // Lost answers shrink the window; report what came back so far.
                eprintln!(
                    "soak: stalled: {} of {i} messages done after 60 s",
                    tally.done()
                );
                posted = i;
                break;
            }
            let q = QUESTIONS[i as usize % QUESTIONS.len()];
            let user = tally.user(i);
            let m = PostMessage::text(APP, q).from(Some(&user), &user);
            let message_id = post(&sb, &m).await?.message_id;
            if i >= faults_from {
                if rng.chance(redeliver_pct) {
                    faults.redeliveries.fetch_add(1, Ordering::Relaxed);
                    let delay = Duration::from_millis(rng.below(3000));
                    redeliver_later(sb.clone(), APP, message_id, delay, None);
                }
                if rng.chance(malformed_pct) {
                    if let Some(c) = sb.connections_of(APP).iter().find(|c| c.accepting) {
                        let text = malformed_frame(rng.next_u64(), i);
                        if sb.send_raw(&c.connection_id, &text).is_ok() {
                            faults.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "soak: {i} posted, {} done, {:.0}/s, rss {} kB",
                    tally.done(),
                    tally.done() as f64 / started.elapsed().as_secs_f64(),
                    rss_kb(pid)
                );
            }
        }
        stop_faults.stop();
        if let Some(c) = clock {
            let _ = c.await;
        }
        sb.clear_card_fault();
        if !tally.wait_done(posted, Duration::from_secs(60)).await {
            eprintln!("soak: {} of {posted} done; the rest stalled", tally.done());
        }
        // Late redeliveries (up to 3 s) and unACKed ones (5 s) may still come: a duplicate
        // answer would show now.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let rss_end = rss_kb(pid);
        let secs = started.elapsed().as_secs_f64();
        Ok((rss_start, rss_warm, rss_end, secs, posted))
    }
    .await;

    let _ = Command::new("kill").arg(pid.to_string()).status();
    for _ in 0..100 {
        if child.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    stop_follow.stop();
    let _ = follower.await;
    let (rss_start, rss_warm, rss_end, secs, posted) = result?;

    let counts = tally.counts(posted as usize);
    let answered_once = counts.answered_once;
    let duplicates = counts.duplicates;
    // Here a question with only a failure notice counts as lost: the soak kills no host,
    // so nothing should end that way.
    let lost = counts.lost + counts.notice_only;
    let only_notice = counts.notice_only;
    let stuck = stuck_cards(&sb, APP);
    let problems = sb.problems();
    for p in problems.iter().take(5) {
        eprintln!("soak: sandbox problem: {p}");
    }
    println!(
        "faults: disconnects={} drops={} redeliveries={} malformed={} card_bursts={} card_errors={} failure_notices_only={} problems={} secs={:.0} msgs_per_s={:.0}",
        faults.disconnects.load(Ordering::Relaxed),
        faults.drops.load(Ordering::Relaxed),
        faults.redeliveries.load(Ordering::Relaxed),
        faults.malformed.load(Ordering::Relaxed),
        faults.bursts.load(Ordering::Relaxed),
        tally.card_errors.load(Ordering::Relaxed),
        only_notice,
        problems.len(),
        secs,
        posted as f64 / secs,
    );
    // A run shorter than its warm-up has no warm figure; its start stands in.
    let rss_warm = if rss_warm > 0 { rss_warm } else { rss_start };
    let growth_pct = if rss_warm > 0 {
        (rss_end as f64 / rss_warm as f64 - 1.0) * 100.0
    } else {
        0.0
    };
    println!(
        "messages={posted} answered_once={answered_once} duplicates={duplicates} lost={lost} stuck_cards={} rss_start_kb={rss_start} rss_end_kb={rss_end} rss_warm_kb={rss_warm} rss_growth_pct={growth_pct:.1}",
        stuck.len()
    );
    let flat = rss_end as f64 <= rss_warm as f64 * 1.10;
    if posted < a.messages || lost > 0 || duplicates > 0 || !stuck.is_empty() || !flat {
        std::process::exit(1);
    }
    Ok(())
}
