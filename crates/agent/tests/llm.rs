//! The LLM path against an OpenAI-compatible stand-in server on loopback that streams SSE.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jitnode_agent::{
    not_covered, Agent, AgentError, Answer, CancellationToken, Chunk, Lang, LlmError,
    WEAK_MATCH_NOTE,
};
use jitnode_test_kit::llm::{delta_event, error_response, LlmStandIn, Request, SSE_HEAD};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How the stand-in answers a request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    /// Reasoning, the answer in pieces (one event split across writes, one multi-line), [DONE].
    Normal,
    /// Some tokens, then the connection closes without [DONE] or finish_reason.
    Truncated,
    /// Chunked encoding cut off in the middle of a chunk.
    Broken,
    /// A token, then an event that is not JSON.
    Malformed,
    /// HTTP 500 with a JSON error body.
    Status500,
    /// A token, then a pause of an hour (virtual time), then the rest.
    Slow,
    /// A token every 20 ms until the client goes away.
    Forever,
}

/// The kit's stand-in, answering per [`Script`]; `closed` reports a [`Script::Forever`]
/// stream that noticed the client went away.
struct StandIn {
    base_url: String,
    kit: LlmStandIn,
    closed: mpsc::UnboundedReceiver<()>,
}

impl StandIn {
    async fn start(script: Script) -> StandIn {
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let kit =
            LlmStandIn::start(move |sock, body| serve(sock, script, body, closed_tx.clone())).await;
        StandIn {
            base_url: kit.base_url().to_string(),
            kit,
            closed,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.kit.requests()
    }

    fn bodies(&self) -> Vec<Value> {
        self.kit.bodies()
    }
}

fn delta(content: &str) -> String {
    delta_event(json!({"content": content}))
}

/// The stand-in's answer: echoes the last user message, so tests can tell turns apart.
fn answer_for(body: &Value) -> String {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str());
    format!("Answer to: {}", last.unwrap_or("?"))
}

async fn serve(
    mut sock: TcpStream,
    script: Script,
    body: Value,
    closed: mpsc::UnboundedSender<()>,
) {
    let answer = answer_for(&body);
    let pieces: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
    match script {
        Script::Normal => {
            let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
            let reasoning = json!({"choices": [{"delta": {"reasoning_content": "Let me think."}}]});
            let _ = sock
                .write_all(format!(": keep-alive\n\ndata: {reasoning}\n\n").as_bytes())
                .await;
            for (i, p) in pieces.iter().enumerate() {
                let ev = delta(p);
                if i == 0 {
                    // One event split across two writes.
                    let (a, b) = ev.split_at(ev.len() / 2);
                    let _ = sock.write_all(a.as_bytes()).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = sock.write_all(b.as_bytes()).await;
                } else if i == 1 {
                    // One event whose JSON spans two data: lines.
                    let ev = format!(
                        "data: {{\"choices\": [{{\"delta\":\ndata: {}}}]}}\r\n\r\n",
                        json!({"content": p})
                    );
                    let _ = sock.write_all(ev.as_bytes()).await;
                } else {
                    let _ = sock.write_all(ev.as_bytes()).await;
                }
            }
            let fin = json!({"choices": [{"delta": {}, "finish_reason": "stop"}]});
            let _ = sock
                .write_all(format!("data: {fin}\n\ndata: [DONE]\n\n").as_bytes())
                .await;
        }
        Script::Truncated => {
            let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
            let _ = sock.write_all(delta(&pieces[0]).as_bytes()).await;
        }
        Script::Broken => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let _ = sock.write_all(head).await;
            let ev = delta(&pieces[0]);
            let _ = sock
                .write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())
                .await;
            // Announce 100 bytes, send 10, hang up.
            let _ = sock.write_all(b"64\r\ndata: {\"ch").await;
        }
        Script::Malformed => {
            let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
            let _ = sock.write_all(delta(&pieces[0]).as_bytes()).await;
            let _ = sock
                .write_all(b"data: {\"choices\": [{\"delta\": oops}\n\n")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Script::Status500 => {
            let resp = error_response(
                "500 Internal Server Error",
                &json!({"error": {"message": "model overloaded"}}),
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
        Script::Slow => {
            let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
            let _ = sock.write_all(delta(&pieces[0]).as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let _ = sock.write_all(delta(&pieces[1]).as_bytes()).await;
            let _ = sock.write_all(b"data: [DONE]\n\n").await;
        }
        Script::Forever => {
            let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    r = sock.read(&mut buf) => {
                        if matches!(r, Ok(0) | Err(_)) { break; }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        if sock.write_all(delta("tick ").as_bytes()).await.is_err() { break; }
                    }
                }
            }
            let _ = closed.send(());
        }
    }
}

fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../elements/aiagents/customerService")
}

fn agent(base_url: &str, extra: Value) -> Agent {
    let mut cfg = json!({
        "llm": {"baseUrl": base_url, "model": "stand-in-1", "apiKey": "sk-test-key", "temperature": 0.2, "timeoutSecs": 5},
        "retrieval": {"topK": 2},
        "memory": {"turnsPerChat": 2, "maxChats": 2}
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    Agent::load(&demo_dir(), &cfg).expect("agent loads")
}

async fn run(agent: &Agent, q: &str, chat: &str) -> (Result<Answer, AgentError>, Vec<Chunk>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let r = agent.run(q, chat, tx, CancellationToken::new()).await;
    let mut chunks = Vec::new();
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    (r, chunks)
}

const Q_RELOAD: &str = "How do I turn on hot reload?";

/// Asks `Q_RELOAD` of an agent whose LLM is a stand-in playing `script`; returns the agent
/// (for its memory), the result and the chunks.
async fn ask_scripted(script: Script) -> (Agent, Result<Answer, AgentError>, Vec<Chunk>) {
    let s = StandIn::start(script).await;
    let a = agent(&s.base_url, json!({}));
    let (r, chunks) = run(&a, Q_RELOAD, "u").await;
    (a, r, chunks)
}

/// [`ask_scripted`], expecting the run to fail with an LLM error; returns that error.
async fn ask_failing(script: Script) -> (Agent, LlmError, Vec<Chunk>) {
    match ask_scripted(script).await {
        (a, Err(AgentError::Llm(e)), chunks) => (a, e, chunks),
        (_, other, _) => panic!("expected an LLM error, got {other:?}"),
    }
}

#[tokio::test]
async fn normal_stream_gives_answer_reasoning_apart_and_prompt_with_passages() {
    let s = StandIn::start(Script::Normal).await;
    let a = agent(&s.base_url, json!({}));
    let (r, chunks) = run(&a, Q_RELOAD, "u1").await;
    let answer = r.expect("normal stream succeeds");
    assert_eq!(answer.answer, format!("Answer to: {Q_RELOAD}"));
    assert_eq!(answer.sources[0].file, "reload.en.md");
    let text: String = chunks.iter().filter_map(Chunk::answer_text).collect();
    assert_eq!(
        text, answer.answer,
        "reasoning must not leak into the answer"
    );
    assert!(chunks.contains(&Chunk::Reasoning("Let me think.".into())));
    let types: Vec<Value> = chunks.iter().map(|c| c.to_json()["type"].clone()).collect();
    assert_eq!(
        types[..2],
        [json!("TOOL_CALL_START"), json!("TOOL_CALL_END")]
    );

    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let body = &reqs[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "stand-in-1");
    assert_eq!(body["temperature"], 0.2);
    assert!(
        reqs[0].head.starts_with("post /v1/chat/completions "),
        "{}",
        reqs[0].head
    );
    assert!(reqs[0].head.contains("authorization: bearer sk-test-key"));
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("reload.en.md") && system.contains("jitnode run --watch"),
        "{system}"
    );
    // The model is told to name the files it used, in the question's language.
    assert!(system.contains("(source: reload.en.md)"), "{system}");
    assert!(system.contains("Answer in English."), "{system}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn no_api_key_sends_no_authorization_and_off_topic_skips_the_llm() {
    let s = StandIn::start(Script::Normal).await;
    let a = Agent::load(
        &demo_dir(),
        &json!({"llm": {"baseUrl": s.base_url, "model": "m", "apiKey": ""}}),
    )
    .unwrap();
    run(&a, Q_RELOAD, "").await.0.unwrap();
    assert!(!s.requests()[0].head.contains("authorization"));
    let (r, _) = run(&a, "What is the best chocolate cake recipe?", "").await;
    let r = r.unwrap();
    assert!(r.answer.contains("does not cover") && r.sources.is_empty());
    assert_eq!(
        s.requests().len(),
        1,
        "an uncovered question must not reach the LLM"
    );
}

#[tokio::test]
async fn a_weak_match_reaches_the_llm_with_a_warning_and_stays_refused_offline() {
    // Short questions match weakly: relevance between llmThreshold and threshold.
    const Q_WEAK: &str = "元素是啥";
    let s = StandIn::start(Script::Normal).await;
    let a = agent(&s.base_url, json!({}));
    let hits = a.retrieve(Q_WEAK);
    let relevance = hits.first().map(|h| h.relevance).unwrap_or(0.0);
    assert!(
        (0.35..0.55).contains(&relevance),
        "the test needs a weak match, got {relevance}"
    );
    let (r, _) = run(&a, Q_WEAK, "w1").await;
    let answer = r.expect("the LLM answers");
    assert_eq!(answer.sources[0].file, "elements.zh.md");
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1, "a weak match reaches the LLM");
    let system = reqs[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains(WEAK_MATCH_NOTE), "{system}");
    // A strong match carries no such note.
    run(&a, Q_RELOAD, "w2").await.0.unwrap();
    let system = s.requests()[1].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!system.contains(WEAK_MATCH_NOTE), "{system}");

    // Without an LLM a weak match would be quoted as it stands: it is refused instead.
    let offline = Agent::load(&demo_dir(), &json!({"offline": {"chunkDelayMs": 0}})).unwrap();
    let (r, _) = run(&offline, Q_WEAK, "w3").await;
    let r = r.unwrap();
    assert!(r.sources.is_empty(), "{:?}", r.sources);
    assert_eq!(r.answer, not_covered(Lang::Zh));
}

fn user_and_assistant(body: &Value) -> Vec<(String, String)> {
    body["messages"].as_array().unwrap()[1..]
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn memory_is_bounded_and_separated_per_chat() {
    let s = StandIn::start(Script::Normal).await;
    let a = agent(&s.base_url, json!({}));
    let qa = [
        "How do I turn on hot reload?",
        "What are the watch modes?",
        "What happens with invalid edits?",
        "How do I install jitnode?",
    ];
    for q in qa {
        run(&a, q, "chat-a").await.0.unwrap();
    }
    run(&a, "Where do I put the DingTalk client secret?", "chat-b")
        .await
        .0
        .unwrap();
    let bodies = s.bodies();
    // The fourth question of chat-a carries only the two latest turns (turnsPerChat = 2).
    let m = user_and_assistant(&bodies[3]);
    let expect: Vec<(String, String)> = vec![
        ("user".into(), qa[1].into()),
        ("assistant".into(), format!("Answer to: {}", qa[1])),
        ("user".into(), qa[2].into()),
        ("assistant".into(), format!("Answer to: {}", qa[2])),
        ("user".into(), qa[3].into()),
    ];
    assert_eq!(m, expect);
    // chat-b sees nothing of chat-a.
    assert_eq!(
        user_and_assistant(&bodies[4]),
        vec![(
            "user".into(),
            "Where do I put the DingTalk client secret?".into()
        )]
    );
    // A third chat evicts the least recently used one (chat-a) since maxChats = 2.
    run(&a, "How do I force a rebuild of dist?", "chat-c")
        .await
        .0
        .unwrap();
    assert_eq!(a.memory().chats(), 2);
    run(&a, "What are the watch modes?", "chat-a")
        .await
        .0
        .unwrap();
    assert_eq!(
        user_and_assistant(&s.bodies()[6]).len(),
        1,
        "chat-a was evicted"
    );
    // chat-a coming back evicted chat-b (least recent); chat-c kept its turn.
    run(&a, "How do I install jitnode?", "chat-c")
        .await
        .0
        .unwrap();
    assert_eq!(user_and_assistant(&s.bodies()[7]).len(), 3);
}

#[tokio::test]
async fn truncated_stream_is_an_error_and_not_remembered() {
    let (a, e, chunks) = ask_failing(Script::Truncated).await;
    assert!(matches!(e, LlmError::Incomplete { .. }), "{e:?}");
    assert!(
        chunks.iter().any(|c| c.answer_text().is_some()),
        "the partial text was streamed"
    );
    assert_eq!(a.memory().chats(), 0, "a failed answer is not remembered");
}

#[tokio::test]
async fn broken_chunked_stream_is_a_transport_error() {
    let (_, e, _) = ask_failing(Script::Broken).await;
    assert!(matches!(e, LlmError::Transport { .. }), "{e:?}");
    assert!(!AgentError::Llm(e).to_string().contains("sk-test-key"));
}

#[tokio::test]
async fn malformed_event_is_an_error() {
    let (_, e, _) = ask_failing(Script::Malformed).await;
    assert!(matches!(e, LlmError::Malformed { .. }), "{e:?}");
}

#[tokio::test]
async fn http_error_status_is_an_error_with_the_body() {
    let (_, e, chunks) = ask_failing(Script::Status500).await;
    match e {
        LlmError::Status {
            status: 500, body, ..
        } => assert!(body.contains("overloaded")),
        other => panic!("expected HTTP 500 error, got {other:?}"),
    }
    assert!(chunks.iter().all(|c| c.answer_text().is_none()));
}

#[tokio::test(start_paused = true)]
async fn slow_tokens_hit_the_timeout() {
    let s = StandIn::start(Script::Slow).await;
    let a = agent(&s.base_url, json!({}));
    let start = tokio::time::Instant::now();
    let (r, chunks) = run(&a, Q_RELOAD, "u").await;
    assert!(matches!(r, Err(AgentError::Timeout { secs: 5 })), "{r:?}");
    assert!(
        chunks.iter().any(|c| c.answer_text().is_some()),
        "first token arrived before the stall"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test]
async fn cancellation_closes_the_upstream_connection() {
    let mut s = StandIn::start(Script::Forever).await;
    let a = Arc::new(agent(
        &s.base_url,
        json!({"llm": {"baseUrl": s.base_url, "model": "m", "timeoutSecs": 600}}),
    ));
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let task = tokio::spawn({
        let (a, cancel) = (a.clone(), cancel.clone());
        async move { a.run(Q_RELOAD, "u", tx, cancel).await }
    });
    // Wait for streamed answer text, then cancel.
    loop {
        let c = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("chunks arrive")
            .expect("open");
        if c.answer_text().is_some() {
            break;
        }
    }
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returns promptly")
        .unwrap();
    assert!(matches!(r, Err(AgentError::Cancelled)), "{r:?}");
    tokio::time::timeout(Duration::from_secs(10), s.closed.recv())
        .await
        .expect("the stand-in sees the connection close")
        .expect("closed signal");
}
