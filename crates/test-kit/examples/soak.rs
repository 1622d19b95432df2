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
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_sandbox::{
    PostMessage, Sandbox, SandboxConfig, SandboxError, TranscriptEntry, DEFAULT_MAX_RECORDS,
};
use tokio::sync::Notify;
use tokio::time::Instant;

const APP: &str = "soak-app";
const SECRET: &str = "soak-secret";
/// Staff id prefix of the soak's users; the number after it is the message's index.
const USER: &str = "soak-";

/// Questions the demo's knowledge base answers, asked in turn.
const QUESTIONS: [&str; 6] = [
    "How do I reset my password?",
    "What are your opening hours?",
    "How can I get a refund for my order?",
    "Where can I download an invoice?",
    "How do I change my delivery address?",
    "我的订单什么时候发货？",
];

/// A small deterministic generator (xorshift64*), so a seed replays the same faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 10_000.0 < pct
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The message index a card's or webhook's conversation id names.
fn index_of(conversation: &str) -> Option<usize> {
    let rest = &conversation[conversation.find(USER)? + USER.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What came back for one message.
#[derive(Default, Clone, Copy)]
struct Outcome {
    /// Cards that reached "finished" plus markdown replies.
    answers: u32,
    /// Failed cards and text notices: the user saw something, not necessarily the answer.
    notices: u32,
}

/// Follows the transcript: per message what came back, and how many are done.
struct Tally {
    outcomes: Mutex<Vec<Outcome>>,
    done: AtomicU64,
    card_errors: AtomicU64,
    changed: Notify,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            outcomes: Mutex::new(vec![Outcome::default(); n]),
            done: AtomicU64::new(0),
            card_errors: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Outcome>> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, e: &TranscriptEntry) {
        if e.status != 200 || e.error.is_some() {
            if e.is_card() {
                self.card_errors.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(i) = e.conversation_id.as_deref().and_then(index_of) else {
            return;
        };
        let (answer, notice) = match e.kind.as_str() {
            "webhook" if e.msgtype.as_deref() == Some("markdown") => (true, false),
            "webhook" => (false, true),
            "card.instances.update" => {
                match e
                    .body
                    .pointer("/cardData/cardParamMap/flowStatus")
                    .and_then(|v| v.as_str())
                {
                    Some("3") => (true, false),
                    Some("5") => (false, true),
                    _ => return,
                }
            }
            _ => return,
        };
        let mut all = self.lock();
        let Some(o) = all.get_mut(i) else { return };
        let was_done = o.answers + o.notices > 0;
        o.answers += u32::from(answer);
        o.notices += u32::from(notice);
        if !was_done {
            self.done.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` messages are done; false after `timeout` without progress.
    async fn wait_done(&self, n: u64, timeout: Duration) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done() >= n {
                return true;
            }
            if tokio::time::timeout(timeout, notified).await.is_err() {
                return self.done() >= n;
            }
        }
    }
}

/// Reads every new transcript entry into the tally, woken by each change.
async fn follow(sb: Arc<Sandbox>, tally: Arc<Tally>, stop: Arc<Notify>) {
    let mut seen = 0u64;
    loop {
        let fresh = sb.entries_after(seen);
        if let Some(last) = fresh.last() {
            // Entries that fell out of the ring before being read would go unseen.
            if last.seq - seen > fresh.len() as u64 {
                eprintln!(
                    "soak: {} transcript entries dropped before being read",
                    last.seq - seen - fresh.len() as u64
                );
            }
            seen = last.seq;
        }
        for e in &fresh {
            tally.read(e);
        }
        tokio::select! {
            _ = sb.wait_for_entry(seen, Duration::from_secs(1), |_| true) => {}
            _ = stop.notified() => return,
        }
    }
}

/// Posts a message, waiting for a connection while the robot reconnects (DingTalk holds
/// pushes for a client that is away).
async fn post(sb: &Sandbox, m: &PostMessage) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match sb.post_message(m) {
            Ok(p) => return Ok(p.message_id),
            Err(SandboxError::NoConnection { .. }) if Instant::now() < deadline => {
                sb.wait_for_connections(APP, 1, Duration::from_secs(60))
                    .await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

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
async fn fault_clock(sb: Arc<Sandbox>, faults: Arc<Faults>, seed: u64, stop: Arc<Notify>) {
    let disconnect_every = Duration::from_secs(env_u64("SOAK_DISCONNECT_SECS", 10).max(1));
    let burst_every = Duration::from_secs(env_u64("SOAK_BURST_SECS", 15).max(1));
    let burst_calls = env_u64("SOAK_BURST_CALLS", 20) as u32;
    let drop_pct = env_f64("SOAK_DROP_PCT", 1.0);
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
            _ = stop.notified() => return,
        }
    }
}

/// Pushes `message_id`'s message again after `delay`, waiting for a connection if needed.
fn redeliver_later(sb: Arc<Sandbox>, message_id: String, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for _ in 0..60 {
            match sb.redeliver_now(&message_id) {
                Err(SandboxError::NoConnection { .. }) => {
                    sb.wait_for_connections(APP, 1, Duration::from_secs(1))
                        .await;
                }
                Ok(_) | Err(_) => return,
            }
        }
    });
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
        messages: env_u64("SOAK_MESSAGES", 100_000),
        warmup: 0,
        window: 200,
        seed: env_u64("SOAK_SEED", 14),
        cmd: Vec::new(),
    };
    let warmup_pct = env_f64("SOAK_WARMUP_PCT", 10.0).clamp(0.0, 100.0);
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
    let redeliver_pct = env_f64("SOAK_REDELIVER_PCT", 5.0);
    let malformed_pct = env_f64("SOAK_MALFORMED_PCT", 1.0);
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
    let mut child = Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .env("DINGTALK_OPENAPI_ENDPOINT", sb.base_url())
        .env("DINGTALK_CLIENT_ID", APP)
        .env("DINGTALK_CLIENT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("SOAK_VERBOSE").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()?;
    let pid = child.id();
    let tally = Arc::new(Tally::new(n));
    let faults = Arc::new(Faults::default());
    let stop_follow = Arc::new(Notify::new());
    let stop_faults = Arc::new(Notify::new());
    let follower = tokio::spawn(follow(sb.clone(), tally.clone(), stop_follow.clone()));

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
            let user = format!("{USER}{i}");
            let m = PostMessage::text(APP, q).from(Some(&user), &user);
            let message_id = post(&sb, &m).await?;
            if i >= faults_from {
                if rng.chance(redeliver_pct) {
                    faults.redeliveries.fetch_add(1, Ordering::Relaxed);
                    let delay = Duration::from_millis(rng.below(3000));
                    redeliver_later(sb.clone(), message_id, delay);
                }
                if rng.chance(malformed_pct) {
                    if let Some(c) = sb.connections_of(APP).iter().find(|c| c.accepting) {
                        let text = malformed_frame(rng.next(), i);
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
        stop_faults.notify_waiters();
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
    stop_follow.notify_waiters();
    let _ = follower.await;
    let (rss_start, rss_warm, rss_end, secs, posted) = result?;

    let mut outcomes = tally.lock().clone();
    outcomes.truncate(posted as usize);
    let answered_once = outcomes.iter().filter(|o| o.answers == 1).count();
    let duplicates = outcomes.iter().filter(|o| o.answers > 1).count();
    let lost = outcomes.iter().filter(|o| o.answers == 0).count();
    let only_notice = outcomes
        .iter()
        .filter(|o| o.answers == 0 && o.notices > 0)
        .count();
    // Finished ("3") or failed ("5"); anything else still spins in the user's chat.
    let stuck = sb.cards_where(|c| {
        c.client_id == APP && !matches!(c.flow_status.as_deref(), Some("3" | "5"))
    });
    for c in stuck.iter().take(5) {
        eprintln!(
            "soak: stuck card {} of {:?}: flowStatus {:?}, {} updates",
            c.id, c.conversation_id, c.flow_status, c.updates
        );
    }
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
