//! Hybrid retrieval against a stand-in OpenAI-compatible `/v1/embeddings` server on
//! loopback. The stand-in computes real, deterministic vectors (hashed character trigrams),
//! so a question that shares letters but no whole word with a passage is found only when
//! the vectors are used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jitnode_agent::{not_covered, vector_cache_path, Agent, CancellationToken, Lang};
use serde_json::{json, Value};

const DIM: usize = 256;

/// Hashed character trigrams of the lowercased text (FNV-1a per trigram).
fn trigram_vector(text: &str) -> Vec<f64> {
    let chars: Vec<char> = format!("  {}  ", text.to_lowercase()).chars().collect();
    let mut v = vec![0.0; DIM];
    for w in chars.windows(3) {
        let mut h: u32 = 0x811c9dc5;
        for c in w {
            h ^= *c as u32;
            h = h.wrapping_mul(0x01000193);
        }
        v[h as usize % DIM] += 1.0;
    }
    v
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Fail,
    /// Passages are embedded at once; a single input (a question) is answered late.
    SlowQueries,
}

struct StandIn {
    base_url: String,
    inputs: Arc<AtomicUsize>,
}

async fn embeddings(
    State((mode, inputs)): State<(Mode, Arc<AtomicUsize>)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    if mode == Mode::Fail {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let texts: Vec<String> = match &body["input"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => return Err(StatusCode::BAD_REQUEST),
    };
    if mode == Mode::SlowQueries && texts.len() == 1 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    inputs.fetch_add(texts.len(), Ordering::SeqCst);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": trigram_vector(t)}))
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": body["model"]}),
    ))
}

async fn stand_in(mode: Mode) -> StandIn {
    let inputs = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state((mode, inputs.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    StandIn {
        base_url: format!("http://{addr}/v1"),
        inputs,
    }
}

fn write_knowledge(dir: &std::path::Path, install_text: &str) {
    let k = dir.join("knowledge");
    std::fs::create_dir_all(&k).expect("knowledge dir");
    std::fs::write(
        k.join("reload.md"),
        "# Hot reloading\n\nElements are reloaded automatically when their files change.",
    )
    .expect("write");
    std::fs::write(k.join("install.md"), install_text).expect("write");
    std::fs::write(
        k.join("cards.md"),
        "# Interactive cards\n\nAnswers stream into a card with feedback buttons.",
    )
    .expect("write");
}

fn config(base_url: &str, query_timeout_ms: u64) -> Value {
    json!({
        "retrieval": {"threshold": 0.3},
        "embedding": {"baseUrl": base_url, "model": "trigram", "minSimilarity": 0.3,
                      "queryTimeoutMs": query_timeout_ms, "timeoutSecs": 10},
        "offline": {"chunkDelayMs": 0}
    })
}

/// An agent over the knowledge (install: "Build the binary with cargo."), embedding at a
/// stand-in in `mode`; the folder is returned so that it outlives the agent.
async fn cargo_agent(mode: Mode, query_timeout_ms: u64) -> (tempfile::TempDir, Agent) {
    let s = stand_in(mode).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_knowledge(dir.path(), "# Install\n\nBuild the binary with cargo.");
    let agent = Agent::load(dir.path(), &config(&s.base_url, query_timeout_ms)).expect("loads");
    (dir, agent)
}

/// A question with no whole word of the reload page, but most of its letters.
const FUSED: &str = "hotreloadingautomatic";

async fn ask(agent: &Agent, q: &str) -> jitnode_agent::Answer {
    let (tx, _rx) = tokio::sync::mpsc::channel(1024);
    agent
        .run(q, "", tx, CancellationToken::new())
        .await
        .expect("offline run succeeds")
}

#[tokio::test]
async fn vectors_find_what_words_miss_and_the_cache_spares_requests() {
    let s = stand_in(Mode::Normal).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_knowledge(dir.path(), "# Install\n\nBuild the binary with cargo.");
    let cache = vector_cache_path(&dir.path().join("data"), "aiagents.test");
    let load = || {
        Agent::load(dir.path(), &config(&s.base_url, 5000))
            .expect("loads")
            .with_vector_cache(cache.clone())
    };

    let agent = load();
    // Lexical alone: nothing.
    assert!(agent.retrieve(FUSED).is_empty());
    assert_eq!(ask(&agent, FUSED).await.answer, not_covered(Lang::En));
    assert_eq!(agent.index_vectors().await.expect("embeds"), 3);
    assert!(agent.hybrid_ready());
    let a = ask(&agent, FUSED).await;
    assert_eq!(a.sources[0].file, "reload.md", "{a:?}");

    // A second load embeds nothing new: every passage is in the cache.
    let before = s.inputs.load(Ordering::SeqCst);
    let again = load();
    assert_eq!(again.index_vectors().await.expect("cached"), 0);
    assert_eq!(s.inputs.load(Ordering::SeqCst), before);
    assert_eq!(ask(&again, FUSED).await.sources[0].file, "reload.md");

    // One changed page: only its passage is sent.
    write_knowledge(
        dir.path(),
        "# Install\n\nBuild the binary with cargo build --release.",
    );
    let changed = load();
    assert_eq!(changed.index_vectors().await.expect("re-embeds"), 1);
}

#[tokio::test]
async fn a_failing_endpoint_leaves_lexical_answers() {
    let (_dir, agent) = cargo_agent(Mode::Fail, 5000).await;
    let e = agent.index_vectors().await.expect_err("HTTP 500");
    assert!(e.to_string().contains("500"), "{e}");
    assert!(!agent.hybrid_ready());
    let a = ask(&agent, "how do I build the binary").await;
    assert_eq!(a.sources[0].file, "install.md");
}

#[tokio::test]
async fn a_slow_question_embedding_falls_back_to_lexical() {
    let (_dir, agent) = cargo_agent(Mode::SlowQueries, 100).await;
    agent.index_vectors().await.expect("passages embed at once");
    let started = std::time::Instant::now();
    let a = ask(&agent, "how do I build the binary").await;
    assert_eq!(a.sources[0].file, "install.md");
    // The answer did not wait for the 5 s embedding.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(ask(&agent, FUSED).await.answer, not_covered(Lang::En));
}
