//! Retrieval quality and "not covered" answers against the demo knowledge base.

use std::path::PathBuf;

use jitnode_agent::{not_covered, Agent, CancellationToken, Chunk, Lang};
use serde_json::{json, Value};

fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../elements/aiagents/customerService")
}

fn demo_config() -> Value {
    // The demo's config.json with templates rendered as the host would with no LLM variables.
    let text = std::fs::read_to_string(demo_dir().join("config.json")).expect("demo config");
    let mut v: Value = serde_json::from_str(&text.replace("{{LLM_BASE_URL:-}}", ""))
        .expect("the demo config is JSON once rendered");
    v["offline"] = json!({"chunkDelayMs": 0});
    v
}

fn question_set(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/eval")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("eval set readable"))
        .expect("eval set is valid JSON (checked in)")
}

/// (rank-1 hit rate on covered questions, refusal rate on off-topic ones, misses).
fn score(agent: &Agent, set: &Value) -> (f64, f64, Vec<String>) {
    let covered = set["covered"].as_array().expect("covered is an array");
    let mut misses = Vec::new();
    for q in covered {
        let (text, want) = (q["q"].as_str().unwrap(), q["file"].as_str().unwrap());
        let hits = agent.retrieve(text);
        let got = hits
            .first()
            .map(|h| agent.knowledge().passage(h.passage).file.as_str());
        if got != Some(want) {
            misses.push(format!("{text:?}: want {want}, got {got:?}"));
        }
    }
    let off = set["off_topic"].as_array().expect("off_topic is an array");
    let refused = off
        .iter()
        .filter(|q| agent.retrieve(q.as_str().unwrap()).is_empty())
        .count();
    (
        1.0 - misses.len() as f64 / covered.len() as f64,
        refused as f64 / off.len() as f64,
        misses,
    )
}

/// Floors a little under the figures measured when the retrieval was last tuned (tune
/// 0.841 / 0.956; held-out 0.933 / 0.917, scored but never listed; see tests/eval/README.md),
/// so a change that makes answers worse fails here; bench/agent.sh prints the figures.
#[test]
fn retrieval_quality_on_both_halves() {
    let agent = Agent::load(&demo_dir(), &demo_config()).expect("demo agent loads");
    let tune = question_set("tune.json");
    let zh = tune["covered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["q"].as_str().unwrap().chars().any(|c| c > '\u{2e80}'))
        .count();
    assert!(zh >= 60, "the tune half needs questions in both languages");
    let (top1, refused, misses) = score(&agent, &tune);
    println!("tune: top-1 {top1:.3}, off-topic refused {refused:.3}");
    assert!(top1 >= 0.82, "tune top-1 {top1:.3}: {misses:#?}");
    assert!(refused >= 0.94, "tune off-topic refused {refused:.3}");
    // The held-out half: figures only, no question is printed.
    let (top1, refused, _) = score(&agent, &question_set("heldout.json"));
    println!("held-out: top-1 {top1:.3}, off-topic refused {refused:.3}");
    assert!(top1 >= 0.92, "held-out top-1 fell to {top1:.3}");
    assert!(
        refused >= 0.9,
        "held-out off-topic refusal fell to {refused:.3}"
    );
}

#[test]
fn readme_examples_are_covered() {
    let agent = Agent::load(&demo_dir(), &demo_config()).expect("demo agent loads");
    for (q, want) in [
        ("How do I reset my password?", "faq.csv"),
        ("如何安装？", "install.zh.md"),
        ("How do I install jitnode-rs?", "install.en.md"),
    ] {
        let hits = agent.retrieve(q);
        let got = hits
            .first()
            .map(|h| agent.knowledge().passage(h.passage).file.as_str());
        assert_eq!(got, Some(want), "{q}");
    }
    assert!(
        agent.knowledge().problems().is_empty(),
        "{:?}",
        agent.knowledge().problems()
    );
}

#[tokio::test(start_paused = true)]
async fn a_follow_up_uses_the_previous_question() {
    let agent = Agent::load(&demo_dir(), &demo_config()).expect("demo agent loads");
    let (first, _) = ask_in(&agent, "How do I deploy the app on a server?", "c1").await;
    assert_eq!(first.sources[0].file, "dist.en.md");
    let (follow, _) = ask_in(&agent, "and the secret?", "c1").await;
    assert_eq!(
        follow.sources.first().map(|s| s.file.as_str()),
        Some("dist.en.md")
    );
    // Without the conversation the same words lead elsewhere, or nowhere.
    let alone = agent.retrieve_in_chat("and the secret?", "other");
    let alone = alone
        .first()
        .map(|h| agent.knowledge().passage(h.passage).file.as_str());
    assert!(alone != Some("dist.en.md"), "{alone:?}");
}

#[test]
fn knowledge_problems_name_file_and_line_and_the_rest_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = dir.path().join("knowledge");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::write(k.join("good.md"), "# Refunds\n\nAsk within 7 days.").unwrap();
    std::fs::write(
        k.join("faq.csv"),
        "question,answer\nWhere is my parcel?,Open Orders.\nBroken row,\n",
    )
    .unwrap();
    std::fs::write(k.join("bad.json"), "[{\"question\": \"Q\",\n\"answer\": ]").unwrap();
    std::fs::write(k.join("latin1.txt"), [0xff, 0xfe, 0x41]).unwrap();
    std::fs::write(
        k.join("help.html"),
        "<h1>Shipping</h1><p>Parcels leave within <b>2 days</b>.</p>",
    )
    .unwrap();
    let agent = Agent::load(dir.path(), &json!({})).expect("loads despite the problems");
    let problems: Vec<String> = agent
        .knowledge()
        .problems()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.starts_with("faq.csv:3: ")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("bad.json:2: ")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("latin1.txt: ")),
        "{problems:?}"
    );
    let file = |q: &str| {
        agent
            .retrieve(q)
            .first()
            .map(|h| agent.knowledge().passage(h.passage).file.clone())
    };
    assert_eq!(file("where is my parcel").as_deref(), Some("faq.csv"));
    assert_eq!(
        file("when do parcels leave for shipping").as_deref(),
        Some("help.html")
    );
}

async fn ask_in(agent: &Agent, q: &str, chat: &str) -> (jitnode_agent::Answer, Vec<Chunk>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let answer = agent
        .run(q, chat, tx, CancellationToken::new())
        .await
        .expect("offline run succeeds");
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    (answer, chunks)
}

async fn ask(agent: &Agent, q: &str) -> (jitnode_agent::Answer, Vec<Chunk>) {
    ask_in(agent, q, "").await
}

#[tokio::test(start_paused = true)]
async fn not_covered_answer_in_both_languages() {
    let agent = Agent::load(&demo_dir(), &demo_config()).unwrap();
    for (q, lang) in [
        ("How do I bake sourdough bread?", Lang::En),
        ("红烧肉应该怎么做才好吃？", Lang::Zh),
    ] {
        let (a, chunks) = ask(&agent, q).await;
        assert_eq!(a.answer, not_covered(lang), "{q}");
        assert!(a.sources.is_empty());
        let text: String = chunks.iter().filter_map(Chunk::answer_text).collect();
        assert_eq!(text, a.answer);
    }
    assert!(not_covered(Lang::Zh).contains("知识库"));
    assert!(not_covered(Lang::En).contains("does not cover"));
}

#[tokio::test(start_paused = true)]
async fn offline_answer_streams_passage_with_sources_at_a_pace() {
    let cfg = json!({"knowledge": "knowledge", "offline": {"chunkChars": 10, "chunkDelayMs": 100}});
    let agent = Agent::load(&demo_dir(), &cfg).unwrap();
    let start = tokio::time::Instant::now();
    let (a, chunks) = ask(&agent, "怎么开启热重载？").await;
    let elapsed = start.elapsed();
    assert_eq!(a.sources[0].file, "reload.zh.md");
    assert!(a.answer.contains("jitnode run --watch"), "{}", a.answer);
    assert!(a.answer.contains("reload.zh.md"));
    // Tool events first, then text chunks that add up to the answer.
    assert_eq!(chunks[0].to_json()["type"], "TOOL_CALL_START");
    assert_eq!(chunks[1].to_json()["type"], "TOOL_CALL_END");
    assert_eq!(
        chunks[1].to_json()["data"]["result"]["passages"][0]["file"],
        "reload.zh.md"
    );
    let texts: Vec<&str> = chunks.iter().filter_map(Chunk::answer_text).collect();
    assert!(texts.len() > 5);
    assert_eq!(texts.concat(), a.answer);
    // One pause between consecutive text chunks (virtual time).
    assert_eq!(
        elapsed,
        std::time::Duration::from_millis(100) * (texts.len() as u32 - 1)
    );
}

#[test]
fn load_errors_name_the_problem() {
    let e = Agent::load(&demo_dir(), &json!({"knowledge": "nope"})).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = Agent::load(&demo_dir(), &json!({"memory": {"maxChats": 0}})).unwrap_err();
    assert!(e.to_string().contains("memory.maxChats"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn run_json_is_the_element_function() {
    let agent = Agent::load(&demo_dir(), &demo_config()).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let out = agent
        .run_json(
            &json!({"question": "Where do I put the DingTalk client secret?", "chatId": "u1"}),
            |c| seen.lock().unwrap().push(c),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out["sources"][0]["file"], "dingtalk.en.md");
    let seen = seen.into_inner().unwrap();
    let text: String = seen
        .iter()
        .filter(|c| c["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|c| c["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, out["answer"].as_str().unwrap());
    assert_eq!(agent.memory().recall("u1").len(), 1);
    let e = agent
        .run_json(&json!({"chatId": "u1"}), |_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("question"), "{e}");
    let dbg = format!("{agent:?}");
    assert!(dbg.len() < 1000 && dbg.contains("passages"), "{dbg}");
}
