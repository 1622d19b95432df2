//! Benchmark of the robot through the sandbox on loopback (run by `bench/robot.sh`).
//!
//! The robot runs with its default card settings: DingTalk's public AI card, created at once
//! and streamed into.
//!
//! - thinking card latency: message pushed -> the sandbox has the thinking-card request
//!   (the sandbox wakes the bench on each new transcript entry; nothing is polled or
//!   copied), over sequential questions;
//! - card API calls for one long streamed answer (400 chunks over ~8 s, default throttle);
//! - answers per second: concurrent questions answered by an instant agent (a stand-in for
//!   the offline agent; it streams its text in 20 chunks with no delay).
//!
//! The last line is `key=value` pairs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jitnode_dingtalk_wire::{CallKind, FlowStatus};
use jitnode_host::{loader_fn, App, ElementRuntime, FnRuntime, Registry};
use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig, Transcript, TranscriptEntry};
use jitnode_test_kit::robot::{start_app, wait_connected, AppDir};
use serde_json::json;

/// Chunk delay of the agent in microseconds, changeable between phases.
static DELAY_US: AtomicU64 = AtomicU64::new(0);
static CHUNKS: AtomicU64 = AtomicU64::new(20);

/// The bench app in `dir`: a robot with the default card settings (DingTalk's public AI
/// card, streamed), asking the bench agent.
async fn start(sb: &Sandbox, dir: &AppDir) -> App {
    dir.test_agent("benchAgent");
    dir.robot_family();
    sb.register_app("benchapp", "benchsecret");
    let config = json!({
        "clientId": "benchapp", "clientSecret": "benchsecret", "agent": "aiagents.customerService",
        "openApiEndpoint": sb.base_url(), "oapiEndpoint": sb.base_url(), "language": "en"
    });
    dir.robot("bot", &config);

    let mut registry = Registry::with_builtins();
    registry.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    registry.register(
        "benchAgent",
        loader_fn(|_cx| async {
            let rt = FnRuntime::new().function("run", |_args, chunks| async move {
                let n = CHUNKS.load(Ordering::SeqCst);
                let delay = Duration::from_micros(DELAY_US.load(Ordering::SeqCst));
                let mut answer = String::new();
                for i in 0..n {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let piece = format!("word{i} ");
                    answer.push_str(&piece);
                    chunks
                        .send(json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": piece}}));
                }
                Ok(json!({"answer": answer, "sources": []}))
            });
            Ok(Box::new(rt) as Box<dyn ElementRuntime>)
        }),
    );
    let app = start_app(dir, registry).await;
    wait_connected(sb, "benchapp", 1).await;
    app
}

/// The thinking card: the AI card's creation (the default card mode).
fn is_thinking(e: &TranscriptEntry) -> bool {
    e.kind == CallKind::CardCreateAndDeliver.as_str()
}

fn sends(t: &Transcript) -> usize {
    t.entries.iter().filter(|e| is_thinking(e)).count()
}

/// The call that finishes an answer: the AI card's variables set to "finished".
fn is_final(e: &TranscriptEntry) -> bool {
    e.kind == CallKind::CardInstancesUpdate.as_str()
        && e.body
            .pointer("/cardData/cardParamMap/flowStatus")
            .and_then(serde_json::Value::as_str)
            == Some(FlowStatus::Finished.as_str())
}

/// Waits for the answers of the next `n` questions after `mark`, one final card call each.
async fn wait_final(sb: &Sandbox, mark: u64, n: usize, timeout: Duration) {
    let mut seq = mark;
    for i in 0..n {
        let e = sb
            .wait_for_entry(seq, timeout, is_final)
            .await
            .unwrap_or_else(|| panic!("answer {i} of {n} did not finish"));
        seq = e.seq;
    }
}

fn finished_cards(t: &Transcript) -> usize {
    let finished = Some(FlowStatus::Finished.as_str());
    t.cards
        .values()
        .filter(|c| c.flow_status.as_deref() == finished)
        .count()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let questions: usize = std::env::var("BENCH_QUESTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let concurrent: usize = std::env::var("BENCH_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // Questions start this far apart (or when the last thinking card is in, if later). Each
    // answer lasts the 300 ms card interval, so at 10 ms about 30 are open, below the 64
    // handler slots; posting back to back would measure queueing for a slot instead.
    let interval_ms: u64 = std::env::var("BENCH_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = AppDir::new();
    let app = start(&sb, &dir).await;

    // 1. Thinking card latency, one question at a time.
    let mut lat = Vec::with_capacity(questions);
    let mut pace = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    for i in 0..questions {
        pace.tick().await;
        let mark = sb.last_seq();
        let t0 = Instant::now();
        sb.post_message(&PostMessage::text("benchapp", &format!("question {i}")))
            .expect("post");
        sb.wait_for_entry(mark, Duration::from_secs(10), is_thinking)
            .await
            .expect("a thinking card within 10 s");
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // Let those answers finish before the next phase.
    sb.wait_for_transcript(Duration::from_secs(60), |t| finished_cards(t) >= questions)
        .await
        .expect("the sequential answers finish");
    assert_eq!(sends(&sb.transcript()), questions, "one thinking card each");
    lat.sort_by(f64::total_cmp);
    let p50 = percentile(&lat, 0.5);
    let p99 = percentile(&lat, 0.99);
    println!(
        "thinking card: {questions} questions {interval_ms} ms apart, p50 {p50:.2} ms, p99 {p99:.2} ms"
    );

    // 2. Card calls of one long streamed answer (400 chunks, 20 ms apart).
    CHUNKS.store(400, Ordering::SeqCst);
    DELAY_US.store(20_000, Ordering::SeqCst);
    let mark = sb.last_seq();
    sb.post_message(&PostMessage::text("benchapp", "long one"))
        .expect("post");
    wait_final(&sb, mark, 1, Duration::from_secs(60)).await;
    let t = sb.transcript();
    let long_calls = t
        .entries
        .iter()
        .filter(|e| e.seq > mark && e.kind.starts_with("card."))
        .count();
    println!("long answer: 400 chunks over ~8 s -> {long_calls} card API calls");

    // 3. Answers per second, `concurrent` questions at once, instant agent.
    CHUNKS.store(20, Ordering::SeqCst);
    DELAY_US.store(0, Ordering::SeqCst);
    let before_done = finished_cards(&sb.transcript());
    let mark = sb.last_seq();
    let t0 = Instant::now();
    for i in 0..concurrent {
        // Different senders: one conversation each.
        let m = PostMessage::text("benchapp", &format!("burst {i}"))
            .from(Some(&format!("user{i:04}")), "bench");
        sb.post_message(&m).expect("post");
    }
    wait_final(&sb, mark, concurrent, Duration::from_secs(120)).await;
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        finished_cards(&sb.transcript()),
        before_done + concurrent,
        "each burst question has its own finished card"
    );
    let per_s = concurrent as f64 / secs;
    println!("burst: {concurrent} answers in {secs:.2} s");

    app.stop(Duration::from_secs(5)).await;
    let problems = sb.problems();
    if !problems.is_empty() {
        eprintln!("sandbox problems: {problems:?}");
    }
    sb.shutdown().await;
    println!(
        "thinking_card_p50_ms={p50:.2} thinking_card_p99_ms={p99:.2} card_calls_long_answer={long_calls} answers_per_s={per_s:.1}"
    );
}
