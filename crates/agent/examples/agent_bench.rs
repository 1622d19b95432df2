//! Benchmark for bench/agent.sh: indexing time (demo knowledge base, generated 10 MB corpus),
//! retrieval latency, and the rank-1 hit rate on the fixed question set of the tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jitnode_agent::{Agent, KnowledgeBase};
use serde_json::{json, Value};

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

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let demo_dir = root.join("elements/aiagents/customerService");
    let questions: Value = serde_json::from_str(include_str!("../tests/questions.json"))
        .expect("questions.json is valid (checked in)");
    let covered: Vec<(String, String)> = questions["covered"]
        .as_array()
        .expect("covered list")
        .iter()
        .map(|q| {
            (
                q["q"].as_str().unwrap_or("").to_string(),
                q["file"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut all_q: Vec<String> = covered.iter().map(|(q, _)| q.clone()).collect();
    all_q.extend(
        questions["off_topic"]
            .as_array()
            .expect("off_topic list")
            .iter()
            .filter_map(|q| q.as_str())
            .map(String::from),
    );

    let t = Instant::now();
    jitnode_agent::tokenize("预热分词词典");
    let dict_ms = ms(t.elapsed());

    // Demo KB: median of 20 loads (config, prompt, walk, read, split, index).
    let cfg = json!({"knowledge": "knowledge"});
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

    let mut hits = 0;
    for (q, want) in &covered {
        let h = agent.retrieve(q);
        if h.first().map(|h| kb.passage(h.passage).file.as_str()) == Some(want.as_str()) {
            hits += 1;
        } else {
            println!("  miss: {q}");
        }
    }
    let hit_rate = hits as f64 / covered.len() as f64;

    let mut lat = Vec::new();
    for _ in 0..50 {
        for q in &all_q {
            let t = Instant::now();
            std::hint::black_box(agent.retrieve(q));
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let (p50, p99) = (ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
    println!(
        "demo KB queries: {} samples, p50 {p50:.3} ms, p99 {p99:.3} ms; rank-1 hit rate {hits}/{}",
        lat.len(),
        covered.len()
    );

    // Generated ~10 MB corpus, indexed in memory (no disk I/O in the figure).
    let demo_docs: Vec<(String, String)> = std::fs::read_dir(demo_dir.join("knowledge"))
        .expect("demo knowledge folder")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).ok()?,
            ))
        })
        .collect();
    let corpus = generate_corpus(&demo_docs, 10 * 1024 * 1024);
    let bytes: usize = corpus.iter().map(|(_, t)| t.len()).sum();
    let t = Instant::now();
    let big = KnowledgeBase::from_documents(corpus);
    let index_10mb = t.elapsed();
    println!(
        "generated corpus: {} bytes, {} passages, index {:.0} ms ({:.1} MB/s)",
        bytes,
        big.passages().len(),
        ms(index_10mb),
        bytes as f64 / 1e6 / index_10mb.as_secs_f64()
    );
    let mut lat10 = Vec::new();
    for _ in 0..5 {
        for q in &all_q {
            let t = Instant::now();
            std::hint::black_box(big.search(q, 3, 0.45));
            lat10.push(t.elapsed());
        }
    }
    lat10.sort();
    let (b50, b99) = (ms(percentile(&lat10, 0.5)), ms(percentile(&lat10, 0.99)));
    println!(
        "10 MB corpus queries: {} samples, p50 {b50:.3} ms, p99 {b99:.3} ms",
        lat10.len()
    );

    println!(
        "index_ms={index_ms:.2} query_p50_ms={p50:.3} query_p99_ms={p99:.3} hit_rate={hit_rate:.3} \
         index_10mb_ms={:.0} query_10mb_p50_ms={b50:.2} query_10mb_p99_ms={b99:.2}",
        ms(index_10mb)
    );
}
