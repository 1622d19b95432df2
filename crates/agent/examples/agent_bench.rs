//! Benchmark for bench/agent.sh: indexing time (demo knowledge base, generated 10 MB corpus),
//! retrieval latency, and the rank-1 hit rate on the fixed question set of the tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jitnode_agent::{Agent, KnowledgeBase};
use serde_json::Value;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Deterministic generator (64-bit LCG) so every run indexes the same corpus.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

/// ~`target` bytes of Markdown files built from the demo pages' sentences, shuffled, with
/// invented headings and nonsense words mixed in so the vocabulary grows like real text.
fn generate_corpus(demo: &[(String, String)], target: usize) -> Vec<(String, String)> {
    let mut sentences: Vec<String> = Vec::new();
    for (_, text) in demo {
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            for s in line.split_inclusive(['.', '。', '，', ',']) {
                if s.trim().chars().count() > 3 {
                    sentences.push(s.trim().to_string());
                }
            }
        }
    }
    let syll = [
        "ka", "lo", "mi", "ter", "zu", "ven", "qui", "rast", "po", "del",
    ];
    let han = [
        "数据", "服务", "节点", "配置", "模块", "网络", "存储", "任务", "日志", "接口",
    ];
    let mut rng = Lcg(42);
    let mut files = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < target {
        let mut doc = String::new();
        while doc.len() < 50_000 {
            let h = format!(
                "## {}{} {}\n\n",
                syll[rng.next() % 10],
                syll[rng.next() % 10],
                han[rng.next() % 10]
            );
            doc.push_str(&h);
            for _ in 0..(2 + rng.next() % 4) {
                for _ in 0..(3 + rng.next() % 5) {
                    doc.push_str(&sentences[rng.next() % sentences.len()]);
                    doc.push(' ');
                    let w = format!(
                        "{}{}{} ",
                        syll[rng.next() % 10],
                        syll[rng.next() % 10],
                        rng.next() % 1000
                    );
                    doc.push_str(&w);
                }
                doc.push_str("\n\n");
            }
        }
        total += doc.len();
        files.push((format!("gen/{n:04}.md"), doc));
        n += 1;
    }
    files
}

/// One question set: covered questions with their expected file, and off-topic ones.
struct QuestionSet {
    covered: Vec<(String, String)>,
    off_topic: Vec<String>,
}

fn question_set(json: &str) -> QuestionSet {
    let v: Value = serde_json::from_str(json).expect("question set is valid JSON (checked in)");
    QuestionSet {
        covered: v["covered"]
            .as_array()
            .expect("covered list")
            .iter()
            .map(|q| {
                (
                    q["q"].as_str().unwrap_or("").to_string(),
                    q["file"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        off_topic: v["off_topic"]
            .as_array()
            .expect("off_topic list")
            .iter()
            .filter_map(|q| q.as_str())
            .map(String::from)
            .collect(),
    }
}

/// Rank-1 hit rate on the covered questions and refusal rate on the off-topic ones. Misses
/// are listed only when `show` is set: the held-out half is scored, never looked at.
fn evaluate(agent: &Agent, set: &QuestionSet, show: bool) -> (f64, f64) {
    let kb = agent.knowledge();
    let mut hits = 0;
    for (q, want) in &set.covered {
        let h = agent.retrieve(q);
        let got = h.first().map(|h| kb.passage(h.passage));
        if got.map(|p| p.file.as_str()) == Some(want.as_str()) {
            hits += 1;
        } else if show {
            println!(
                "  miss: {q}  want {want}, got {:?}",
                got.map(|p| (
                    &p.file,
                    &p.heading,
                    (h[0].relevance * 100.0).round() / 100.0
                ))
            );
        }
    }
    let mut refused = 0;
    for q in &set.off_topic {
        let h = agent.retrieve(q);
        if h.is_empty() {
            refused += 1;
        } else if show {
            let p = kb.passage(h[0].passage);
            println!(
                "  answered off-topic: {q}  -> {} ({:.2})",
                p.file, h[0].relevance
            );
        }
    }
    (
        hits as f64 / set.covered.len().max(1) as f64,
        refused as f64 / set.off_topic.len().max(1) as f64,
    )
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let demo_dir = root.join("elements/aiagents/customerService");
    let tune = question_set(include_str!("../tests/eval/tune.json"));
    let heldout = question_set(include_str!("../tests/eval/heldout.json"));
    let mut all_q: Vec<String> = Vec::new();
    for set in [&tune, &heldout] {
        all_q.extend(set.covered.iter().map(|(q, _)| q.clone()));
        all_q.extend(set.off_topic.iter().cloned());
    }

    let t = Instant::now();
    jitnode_agent::tokenize("预热分词词典");
    let dict_ms = ms(t.elapsed());

    // The demo instance's own config.json, as the host renders it with no LLM variables.
    let cfg_text = std::fs::read_to_string(demo_dir.join("config.json")).expect("demo config");
    let cfg: Value = serde_json::from_str(&cfg_text.replace("{{LLM_BASE_URL:-}}", ""))
        .expect("demo config is JSON once rendered");
    let mut loads = Vec::new();
    let mut agent = None;
    for _ in 0..20 {
        let t = Instant::now();
        let a = Agent::load(&demo_dir, &cfg).expect("demo agent loads");
        loads.push(t.elapsed());
        agent = Some(a);
    }
    let agent = agent.expect("loaded at least once");
    loads.sort();
    let index_ms = ms(loads[loads.len() / 2]);
    let kb = agent.knowledge();
    println!(
        "segmenter dictionary load: {dict_ms:.1} ms (once per process)\n\
         demo KB: {} files, {} bytes, {} passages, index median {index_ms:.2} ms",
        kb.passages()
            .iter()
            .map(|p| &p.file)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        kb.bytes,
        kb.passages().len()
    );

    println!("tune half (misses listed):");
    let (tune_top1, tune_refused) = evaluate(&agent, &tune, true);
    if std::env::var_os("AGENT_BENCH_QUICK").is_some() {
        // Tuning runs score the tune half only.
        println!("tune: top-1 {tune_top1:.3}, off-topic refused {tune_refused:.3}");
        return;
    }
    let (heldout_top1, heldout_refused) = evaluate(&agent, &heldout, false);
    println!(
        "tune: {} covered, top-1 {tune_top1:.3}; {} off-topic, refused {tune_refused:.3}\n\
         held-out (not shown): {} covered, top-1 {heldout_top1:.3}; {} off-topic, refused {heldout_refused:.3}",
        tune.covered.len(),
        tune.off_topic.len(),
        heldout.covered.len(),
        heldout.off_topic.len()
    );

    if std::env::var_os("AGENT_BENCH_QUICK").is_some() {
        // Quality only, for tuning runs.
        return;
    }
    let mut lat = Vec::new();
    for _ in 0..20 {
        for q in &all_q {
            let t = Instant::now();
            std::hint::black_box(agent.retrieve(q));
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let (p50, p99) = (ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
    println!(
        "demo KB queries: {} samples, p50 {p50:.3} ms, p99 {p99:.3} ms",
        lat.len()
    );

    let demo_docs: Vec<(String, String)> = std::fs::read_dir(demo_dir.join("knowledge"))
        .expect("demo knowledge folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".md"))
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).ok()?,
            ))
        })
        .collect();
    let mut summary = String::new();
    let sizes: &[usize] = if std::env::var_os("AGENT_BENCH_100MB").is_some() {
        &[10, 100]
    } else {
        &[10]
    };
    for &mb in sizes {
        // Generated corpus, indexed in memory (no disk I/O in the figure).
        let corpus = generate_corpus(&demo_docs, mb * 1024 * 1024);
        let bytes: usize = corpus.iter().map(|(_, t)| t.len()).sum();
        let rss_before = rss_kb();
        let t = Instant::now();
        let big = KnowledgeBase::from_documents(corpus);
        let index = t.elapsed();
        let rss_after = rss_kb();
        println!(
            "generated corpus: {} bytes, {} passages, index {:.0} ms ({:.1} MB/s), RSS +{} MB",
            bytes,
            big.passages().len(),
            ms(index),
            bytes as f64 / 1e6 / index.as_secs_f64(),
            rss_after.saturating_sub(rss_before) / 1024
        );
        let mut lat_big = Vec::new();
        for _ in 0..5 {
            for q in &all_q {
                let t = Instant::now();
                std::hint::black_box(big.search(q, 3, 0.45));
                lat_big.push(t.elapsed());
            }
        }
        lat_big.sort();
        let (b50, b99) = (
            ms(percentile(&lat_big, 0.5)),
            ms(percentile(&lat_big, 0.99)),
        );
        println!(
            "{mb} MB corpus queries: {} samples, p50 {b50:.3} ms, p99 {b99:.3} ms",
            lat_big.len()
        );
        summary.push_str(&format!(
            " index_{mb}mb_ms={:.0} query_{mb}mb_p99_ms={b99:.2}",
            ms(index)
        ));
        drop(big);
    }

    println!(
        "index_ms={index_ms:.2} query_p50_ms={p50:.3}{summary} tune_offtopic_refused={tune_refused:.3} \
         tune_top1={tune_top1:.3} heldout_top1={heldout_top1:.3} offtopic_refused={heldout_refused:.3} \
         query_p99_ms={p99:.3}"
    );
}

/// Resident set size of this process in KiB (Linux; 0 elsewhere).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
