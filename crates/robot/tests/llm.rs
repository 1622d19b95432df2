//! End to end with the real agent: a robot instance (`builtin:dingTalkStream`) asks an
//! `aiagents` instance loaded by `jitnode_agent::loader()`, whose LLM is an OpenAI-compatible
//! stand-in on loopback that streams SSE; DingTalk's side is played by `jitnode-sandbox`.

use std::sync::Arc;
use std::time::Duration;

use jitnode_robot::cards::view::{CardView, Progress};
use jitnode_sandbox::{CardState, PostMessage, Sandbox, SandboxConfig, Transcript};
use jitnode_test_kit::llm::{delta_event, error_response, finish_events, LlmStandIn, SSE_HEAD};
use jitnode_test_kit::robot::{idle_status, robot_config, wait_for_call, AppDir};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

mod common;
use common::{card_text, count_of, robot_registry, template_mode, texts};

const APP: &str = "dingapp-llm";
const QUESTION: &str = "How do I connect to the VPN?";
/// Only in the knowledge file: its presence in the prompt shows the passage was retrieved.
const PASSAGE_MARK: &str = "Orchid-7 office profile";
/// The answer as the stand-in streams it, piece by piece.
const PIECES: [&str; 4] = [
    "To connect, ",
    "open the VPN app, ",
    "choose the Orchid-7 profile ",
    "and sign in.",
];
const REASONING: &str = "HIDDEN-REASONING-do-not-show";

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    /// Reasoning deltas mixed with the answer's pieces, finish_reason, then [DONE].
    Complete,
    /// Two content pieces, then the connection closes without [DONE] or finish_reason.
    CutOff,
    /// HTTP 500 with an OpenAI-style error body.
    ServerError,
}

/// The kit's OpenAI-compatible stand-in, answering `POST /v1/chat/completions` per
/// [`Script`]. A complete answer stops halfway until the test [`StandIn::release`]s it, so a
/// test can see the partial update land first, whatever the timing.
struct StandIn {
    base_url: String,
    kit: LlmStandIn,
    halfway: Arc<Semaphore>,
}

impl StandIn {
    async fn start(script: Script) -> StandIn {
        let halfway = Arc::new(Semaphore::new(0));
        let gate = halfway.clone();
        let kit = LlmStandIn::start(move |sock, _body| answer(sock, script, gate.clone())).await;
        StandIn {
            base_url: kit.base_url().to_string(),
            kit,
            halfway,
        }
    }

    /// Lets a complete answer go on past its first half.
    fn release(&self) {
        self.halfway.add_permits(1);
    }

    fn requests(&self) -> Vec<(String, Value)> {
        self.kit
            .requests()
            .into_iter()
            .map(|r| (r.head, r.body))
            .collect()
    }
}

async fn send(sock: &mut TcpStream, text: &str) {
    let _ = sock.write_all(text.as_bytes()).await;
    let _ = sock.flush().await;
}

async fn answer(mut sock: TcpStream, script: Script, halfway: Arc<Semaphore>) {
    match script {
        Script::Complete => {
            send(&mut sock, SSE_HEAD).await;
            send(
                &mut sock,
                &delta_event(json!({"role": "assistant", "content": ""})),
            )
            .await;
            send(
                &mut sock,
                &delta_event(json!({"reasoning_content": REASONING})),
            )
            .await;
            for (i, p) in PIECES.iter().enumerate() {
                if i == 2 {
                    // Bounded so a test that fails before releasing does not hang here.
                    let _ = tokio::time::timeout(Duration::from_secs(15), halfway.acquire()).await;
                    // Reasoning in the middle of the answer, too.
                    send(
                        &mut sock,
                        &delta_event(json!({"reasoning_content": "more hidden"})),
                    )
                    .await;
                }
                send(&mut sock, &delta_event(json!({"content": p}))).await;
            }
            send(&mut sock, &finish_events()).await;
        }
        Script::CutOff => {
            send(&mut sock, SSE_HEAD).await;
            send(
                &mut sock,
                &delta_event(json!({"reasoning_content": REASONING})),
            )
            .await;
            for p in &PIECES[..2] {
                send(&mut sock, &delta_event(json!({"content": p}))).await;
            }
            // Dropping the socket closes the connection mid-answer.
        }
        Script::ServerError => {
            let resp = error_response(
                "500 Internal Server Error",
                &json!({"error": {"message": "model overloaded", "type": "server_error"}}),
            );
            send(&mut sock, &resp).await;
        }
    }
}

type Harness = common::Harness<StandIn>;

/// An app with one real agent (LLM = the stand-in playing `script`) and one robot whose
/// config is extended by `robot_extra`.
async fn start(script: Script, robot_extra: Value) -> Harness {
    let llm = StandIn::start(script).await;
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = AppDir::new();
    dir.meta("aiagents", "agents");
    dir.write(
        "aiagents/ragType/e.json",
        &json!({"type": "aiagents.meta", "title": "rag agent",
                "backendBundleEntry": format!("builtin:{}", jitnode_agent::LOADER_NAME)})
        .to_string(),
    );
    dir.write(
        "aiagents/customerService/e.json",
        r#"{"type": "aiagents.ragType", "title": "cs"}"#,
    );
    dir.write(
        "aiagents/customerService/config.json",
        &json!({
            "systemPrompt": "Answer from the passages.",
            "llm": {"baseUrl": llm.base_url, "model": "stand-in-1", "apiKey": "sk-llm-e2e", "timeoutSecs": 20},
            "retrieval": {"topK": 2}
        })
        .to_string(),
    );
    dir.write(
        "aiagents/customerService/knowledge/vpn.en.md",
        &format!(
            "# Office IT\n\n## Connecting to the VPN\n\nTo connect to the VPN, open the VPN app, choose the \
             {PASSAGE_MARK} and sign in with your staff account.\n\n## Printers\n\nPrinters are on \
             the second floor next to the kitchen; add them from the print settings page.\n"
        ),
    );
    dir.robot_family();
    dir.robot(
        "bot",
        &robot_config(&sb, APP, "llm-e2e-secret", &robot_extra),
    );

    let mut registry = robot_registry();
    registry.register(jitnode_agent::LOADER_NAME, jitnode_agent::loader());
    Harness::start(sb, dir, registry, &[APP], llm, Duration::from_secs(15)).await
}

impl Harness {
    /// Asks [`QUESTION`] as a one-to-one user.
    fn ask(&self) {
        self.sb
            .post_message(&PostMessage::text(APP, QUESTION))
            .unwrap();
    }

    /// Asks, waits until a `kind` call shows the first half of the answer, then lets the
    /// stand-in finish it.
    async fn ask_and_release_after(&self, kind: &str) {
        self.ask();
        wait_for_call(&self.sb, kind, "open the VPN app", Duration::from_secs(15)).await;
        self.agent.release();
    }

    /// Waits until a template card reaches `want`.
    async fn wait_for_stage(&self, want: &str) -> Transcript {
        self.wait_for(&format!("{want} card"), |t| {
            t.cards.values().any(|c| stage(c) == Some(want))
        })
        .await
    }

    /// The one request the stand-in got: it is a streaming chat completion carrying the
    /// question and the retrieved passage.
    fn assert_one_streaming_request_with_question_and_passage(&self) {
        let reqs = self.agent.requests();
        assert_eq!(reqs.len(), 1, "one LLM call per question");
        let (head, body) = &reqs[0];
        assert!(head.starts_with("post /v1/chat/completions "), "{head}");
        assert!(head.contains("authorization: bearer sk-llm-e2e"), "{head}");
        assert_eq!(body["stream"], true, "{body}");
        assert_eq!(body["model"], "stand-in-1");
        let messages = body["messages"].as_array().expect("messages array");
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "user");
        assert!(
            last["content"].as_str().unwrap().contains(QUESTION),
            "{last}"
        );
        let all = body["messages"].to_string();
        assert!(
            all.contains(PASSAGE_MARK),
            "passage not in the prompt: {all}"
        );
        assert!(
            !all.contains("second floor"),
            "an irrelevant passage was sent: {all}"
        );
    }
}

/// Number of buttons on a standard card.
fn button_count(card: &CardState) -> usize {
    card.card_data
        .as_ref()
        .and_then(|d| d["contents"].as_array())
        .into_iter()
        .flatten()
        .map(|c| c["actions"].as_array().map_or(0, Vec::len))
        .sum()
}

fn stage(card: &CardState) -> Option<&str> {
    card.card_param_map.get("stage").map(String::as_str)
}

/// Everything the robot sent to DingTalk, as one string.
fn everything_sent(t: &Transcript) -> String {
    t.entries
        .iter()
        .map(|e| e.body.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Neither piece of reasoning reached DingTalk; returns everything sent.
fn assert_no_reasoning_sent(t: &Transcript) -> String {
    let sent = everything_sent(t);
    assert!(
        !sent.contains(REASONING),
        "reasoning reached DingTalk: {sent}"
    );
    assert!(!sent.contains("more hidden"), "reasoning reached DingTalk");
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_llm_answer_fills_a_standard_card_without_reasoning() {
    let h = start(Script::Complete, json!({})).await;
    let full = PIECES.concat();
    h.ask_and_release_after("card.update").await;
    let t = h
        .wait_for("final card", |t| {
            t.cards.values().any(|c| {
                c.card_data
                    .as_ref()
                    .is_some_and(|d| CardView::standard(d).progress == Progress::Done)
            })
        })
        .await;
    h.assert_one_streaming_request_with_question_and_passage();

    assert_eq!(t.cards.len(), 1);
    let card = t.cards.values().next().unwrap();
    // Standard mode: no dead buttons.
    assert_eq!(button_count(card), 0);
    let text = card_text(card);
    assert!(text.contains(&full), "full answer missing: {text}");
    assert!(!text.contains(texts().thinking), "{text}");
    assert!(!text.contains(texts().failed), "{text}");
    let sent = assert_no_reasoning_sent(&t);
    // The answer was streamed: some update showed part of it before the end.
    let partial = t.entries.iter().any(|e| {
        e.kind == "card.update"
            && e.body.to_string().contains("To connect")
            && !e.body.to_string().contains("and sign in.")
    });
    assert!(partial, "no partial update: {sent}");

    let answers = h.answers().await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].question, QUESTION);
    assert_eq!(answers[0].answer, full);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_llm_answer_fills_a_template_card_without_reasoning() {
    let h = start(Script::Complete, template_mode()).await;
    let full = PIECES.concat();
    h.ask_and_release_after("card.streaming").await;
    let t = h.wait_for_stage("answered").await;
    h.assert_one_streaming_request_with_question_and_passage();
    let card = t.cards.values().next().unwrap();
    assert_eq!(card.flow_status.as_deref(), Some("3"));
    assert_eq!(card.card_param_map["content"], full);
    assert_eq!(
        card.streams.get("content").map(String::as_str),
        Some(full.as_str())
    );
    assert!(
        count_of(&t, "card.streaming") >= 2,
        "the answer was not streamed in pieces"
    );
    assert_no_reasoning_sent(&t);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_connection_cut_mid_stream_ends_the_card_failed() {
    let h = start(Script::CutOff, template_mode()).await;
    h.ask();
    let t = h.wait_for_stage("failed").await;
    h.assert_one_streaming_request_with_question_and_passage();
    let card = t.cards.values().next().unwrap();
    assert_eq!(card.flow_status.as_deref(), Some("5"), "{card:?}");
    assert_eq!(card.card_param_map["notice"], texts().failed);
    // What had arrived is kept, and nothing more was made up.
    assert_eq!(card.card_param_map["content"], PIECES[..2].concat());
    assert!(
        !card.card_param_map.contains_key("record"),
        "a failed card has no feedback buttons: {card:?}"
    );
    assert!(
        !t.cards.values().any(|c| stage(c) == Some("answered")),
        "presented as complete"
    );
    assert!(!everything_sent(&t).contains(REASONING));
    assert!(h.answers().await.is_empty());
    // The robot is not still working on it (its task ends a moment after the card).
    idle_status(&h.app, "imRobots.bot", Duration::from_secs(10)).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_http_500_ends_the_standard_card_failed() {
    let h = start(Script::ServerError, json!({})).await;
    h.ask();
    let t = h
        .wait_for("failed card", |t| {
            t.cards
                .values()
                .any(|c| card_text(c).contains(texts().failed))
        })
        .await;
    h.assert_one_streaming_request_with_question_and_passage();
    assert_eq!(t.cards.len(), 1);
    let card = t.cards.values().next().unwrap();
    let text = card_text(card);
    assert!(!text.contains(texts().thinking), "still thinking: {text}");
    assert_eq!(
        button_count(card),
        0,
        "a failed card has no buttons: {text}"
    );
    // The upstream's own error stays in the logs, not in front of users.
    assert!(
        !text.contains("overloaded") && !text.contains("500"),
        "{text}"
    );
    assert!(h.answers().await.is_empty());
    h.stop().await;
}
