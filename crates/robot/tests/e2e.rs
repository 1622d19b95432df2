//! End to end through the sandbox on loopback: an app with robot instances loaded by
//! `builtin:dingTalkStream` and a test agent (`builtin:testAgent`, streaming chunks with
//! configurable delays and failures), DingTalk's side played by `jitnode-sandbox`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use jitnode_host::FunctionError;
use jitnode_robot::callback::{Action, FeedbackKind};
use jitnode_robot::cards::view::{CardView, Progress};
use jitnode_robot::records::{FeedbackFilter, FeedbackRow};
use jitnode_sandbox::{CardState, Click, PostMessage, Posted, Sandbox, SandboxConfig, Transcript};
use jitnode_test_kit::robot::{idle_status, robot_config, wait_for_call, AppDir};
use serde_json::{json, Value};

mod common;
use common::{agent_registry, card_text, count_of, template_mode, texts};

/// How the test agent answers.
#[derive(Clone)]
struct AgentScript {
    chunks: Vec<&'static str>,
    delay: Duration,
    /// Fail after this many answer chunks.
    fail_after: Option<usize>,
    /// When set, the answer stops after its first chunk until the test adds a permit: the
    /// test sees the partial update (or acts "while answering") whatever the timing.
    hold: Option<Arc<Semaphore>>,
}

impl AgentScript {
    fn answer(&self) -> String {
        self.chunks.concat()
    }
}

#[derive(Clone, Default)]
struct AgentLog {
    calls: Arc<AtomicUsize>,
    args: Arc<Mutex<Vec<Value>>>,
}

fn quick() -> AgentScript {
    AgentScript {
        chunks: vec!["To connect, ", "open the VPN app ", "and sign in."],
        delay: Duration::ZERO,
        fail_after: None,
        hold: None,
    }
}

/// `chunks`, each after `delay`.
fn slow(chunks: Vec<&'static str>, delay: Duration) -> AgentScript {
    AgentScript {
        chunks,
        delay,
        ..quick()
    }
}

/// [`quick`], held after its first chunk until the returned semaphore gets a permit.
fn held() -> (AgentScript, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let script = AgentScript {
        hold: Some(gate.clone()),
        ..quick()
    };
    (script, gate)
}

type Harness = common::Harness<AgentLog>;

const APP_A: &str = "dingapp-a";
const APP_B: &str = "dingapp-b";

/// `robots`: (element name, clientId, extra config).
async fn start(script: AgentScript, robots: &[(&str, &str, Value)]) -> Harness {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = AppDir::new();
    dir.test_agent("testAgent");
    dir.robot_family();
    for (name, client_id, extra) in robots {
        let secret = format!("{client_id}-secret");
        dir.robot(name, &robot_config(&sb, client_id, &secret, extra));
    }

    let log = AgentLog::default();
    let agent_log = log.clone();
    let registry = agent_registry("testAgent", move |args, chunks| {
        let script = script.clone();
        let log = agent_log.clone();
        async move {
            log.calls.fetch_add(1, Ordering::SeqCst);
            log.args.lock().unwrap().push(args.clone());
            chunks.send(
                json!({"type": "REASONING_CONTENT", "data": {"content": "SECRET-REASONING"}}),
            );
            for (i, c) in script.chunks.iter().enumerate() {
                if script.fail_after == Some(i) {
                    return Err(FunctionError::failed("LLM connection reset"));
                }
                if i == 1 {
                    if let Some(gate) = &script.hold {
                        // Bounded so a test failing before it releases cannot hang.
                        let _ = tokio::time::timeout(Duration::from_secs(15), gate.acquire()).await;
                    }
                }
                if !script.delay.is_zero() {
                    tokio::time::sleep(script.delay).await;
                }
                chunks.send(json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": c}}));
            }
            Ok(json!({"answer": script.answer(), "sources": []}))
        }
    });
    let client_ids: Vec<&str> = robots.iter().map(|(_, client_id, _)| *client_id).collect();
    Harness::start(sb, dir, registry, &client_ids, log, Duration::from_secs(10)).await
}

impl Harness {
    /// Posts `question` to the first robot as a one-to-one user.
    fn ask(&self, question: &str) -> Posted {
        self.sb
            .post_message(&PostMessage::text(APP_A, question))
            .unwrap()
    }

    /// Every stored rating.
    async fn feedback(&self) -> Vec<FeedbackRow> {
        self.records()
            .await
            .list_feedback(&FeedbackFilter::default())
            .await
            .unwrap()
    }

    /// Clicks, expecting the robot's 200 ACK.
    async fn click_ok(&self, c: &Click) {
        let ack = self.sb.click(c).await.unwrap();
        assert_eq!(ack.code, Some(200), "{ack:?}");
    }

    /// Waits until the first (thinking) card is sent.
    async fn wait_for_thinking_card(&self) {
        self.wait_for("thinking card", |t| {
            t.entries.iter().any(|e| e.kind == "card.send")
        })
        .await;
    }

    /// Waits until some card's text contains `note`.
    async fn wait_for_card_saying(&self, what: &str, note: &str) -> Transcript {
        self.wait_for(what, |t| {
            t.cards.values().any(|c| card_text(c).contains(note))
        })
        .await
    }

    /// Clicks, expecting the robot's 400 ACK; returns its message.
    async fn click_refused(&self, c: &Click) -> String {
        let ack = self.sb.click(c).await.unwrap();
        assert_eq!(ack.code, Some(400), "{ack:?}");
        ack.message.unwrap_or_default()
    }

    /// Clicks "continue" (`c`), then waits for the robot's invitation to go on.
    async fn continue_chat(&self, c: &Click) {
        self.click_ok(c).await;
        self.wait_for("invitation", |t| {
            t.replies().iter().any(|r| r == texts().invitation)
        })
        .await;
    }
}

/// Buttons of a standard card, read by the robot's card view.
fn buttons(card: &CardState) -> Vec<Action> {
    card.card_data
        .as_ref()
        .map(|data| CardView::standard(data).buttons)
        .unwrap_or_default()
}

/// The answer came as a markdown reply instead of a card.
fn assert_markdown_answer(t: &Transcript) {
    let reply = t.entries.iter().find(|e| e.kind == "webhook").unwrap();
    assert_eq!(reply.msgtype.as_deref(), Some("markdown"));
    assert!(reply
        .text
        .as_deref()
        .unwrap()
        .contains("To connect, open the VPN app and sign in."));
}

/// Finished standard cards (they carry no buttons).
fn final_cards(t: &Transcript) -> Vec<&CardState> {
    t.cards
        .values()
        .filter(|c| {
            c.card_data
                .as_ref()
                .is_some_and(|d| CardView::standard(d).progress == Progress::Done)
        })
        .collect()
}

/// Template cards whose answer is final (their stage says so; the buttons live in the
/// template and carry the record id from the card's parameters).
/// Asks `question` as one user and waits for the answered card: (card, its record id).
async fn first_answer(h: &Harness, question: &str) -> (CardState, String) {
    h.ask(question);
    let t = h
        .wait_for("final card", |t| !answered_cards(t).is_empty())
        .await;
    let card = answered_cards(&t)[0].clone();
    let record = card.card_param_map["record"].clone();
    (card, record)
}

fn answered_cards(t: &Transcript) -> Vec<&CardState> {
    t.cards
        .values()
        .filter(|c| c.card_param_map.get("stage").map(String::as_str) == Some("answered"))
        .collect()
}

/// A click on a template card's button, its action in the private params as the
/// template's buttons send it.
fn click_params(client_id: &str, card: &str, action: &Action) -> Click {
    let params: serde_json::Map<String, Value> =
        serde_json::from_str(&action.to_value_string()).expect("an action encodes as an object");
    Click {
        client_id: client_id.into(),
        out_track_id: card.into(),
        params,
        ..Click::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_streams_into_card_then_final_with_four_buttons() {
    let (script, gate) = held();
    let h = start(script, &[("bot", APP_A, json!({}))]).await;
    let posted = h.ask("How do I connect to the VPN?");
    wait_for_call(&h.sb, "card.update", "To connect", Duration::from_secs(15)).await;
    gate.add_permits(1);
    let ack =
        h.sb.wait_for_ack(&posted.message_id, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(ack.valid() && ack.code == Some(200), "{ack:?}");
    let t = h
        .wait_for("final card", |t| !final_cards(t).is_empty())
        .await;

    let kinds: Vec<&str> = t.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[0], "card.send", "{kinds:?}");
    let send = &t.entries[0];
    let first: Value = serde_json::from_str(send.body["cardData"].as_str().unwrap()).unwrap();
    assert!(first.to_string().contains(texts().thinking));
    assert!(send.body["sendOptions"]["atUserListJson"]
        .as_str()
        .unwrap()
        .contains("user001"));
    let updates: Vec<_> = t
        .entries
        .iter()
        .filter(|e| e.kind == "card.update")
        .collect();
    assert!(
        updates.len() >= 2,
        "a streamed update and the final: {kinds:?}"
    );
    let partial = updates[0].body["cardData"].as_str().unwrap();
    assert!(
        partial.contains("To connect") && !partial.contains("Helpful"),
        "{partial}"
    );

    let card = final_cards(&t)[0];
    let text = card_text(card);
    assert!(
        text.contains("To connect, open the VPN app and sign in."),
        "{text}"
    );
    assert!(!text.contains("SECRET-REASONING"));
    // Standard mode: no dead buttons on the final card.
    assert!(buttons(card).is_empty());
    assert!(!text.contains("\"button\""), "{text}");

    let answers = h.answers().await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].question, "How do I connect to the VPN?");
    assert_eq!(answers[0].message_id, posted.msg_id);
    assert_eq!(answers[0].robot, "imRobots.bot");
    let args = h.agent.args.lock().unwrap().clone();
    assert_eq!(args[0]["question"], "How do I connect to the VPN?");
    assert_eq!(args[0]["chatId"], "user:user001");
    let status = idle_status(&h.app, "imRobots.bot", Duration::from_secs(10)).await;
    assert_eq!(status["clientId"], APP_A);
    assert!(!status.to_string().contains("secret"), "{status}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_button_has_its_effect() {
    let h = start(quick(), &[("bot", APP_A, template_mode())]).await;
    let (card, record) = first_answer(&h, "Where is the VPN guide?").await;

    // Feedback: stored, then the thank-you card with regenerate / continue.
    let helpful = Action::Feedback {
        kind: FeedbackKind::Helpful,
        record: record.clone(),
    };
    h.click_ok(&click_params(APP_A, &card.id, &helpful)).await;
    let fb = h.feedback().await;
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].rating, FeedbackKind::Helpful);
    assert_eq!(fb[0].record_id, record);
    let t = h
        .wait_for("thank-you card", |t| {
            t.cards[&card.id]
                .card_param_map
                .get("stage")
                .map(String::as_str)
                == Some("thanked")
        })
        .await;
    let thanked = &t.cards[&card.id].card_param_map;
    assert_eq!(thanked["feedback"], "helpful");
    assert_eq!(thanked["notice"], texts().thanks);
    assert_eq!(thanked["record"], record);

    // Regenerate: a new answer card, stored as regenerated from the first.
    h.click_ok(&click_params(
        APP_A,
        &card.id,
        &Action::Regenerate {
            record: record.clone(),
        },
    ))
    .await;
    // The first card keeps the thanks; the regenerated one is a new answered card.
    let t = h
        .wait_for("regenerated card", |t| {
            t.cards.len() == 2 && answered_cards(t).iter().any(|c| c.id != card.id)
        })
        .await;
    assert_eq!(t.cards.len(), 2);
    let answers = h.answers().await;
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers[1].regenerated_from.as_deref(),
        Some(record.as_str())
    );
    assert_eq!(answers[1].question, "Where is the VPN guide?");
    assert_eq!(h.agent.calls.load(Ordering::SeqCst), 2);

    // Continue: the invitation text.
    h.continue_chat(&click_params(
        APP_A,
        &card.id,
        &Action::ContinueChat { record },
    ))
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callback_data_gets_an_error_ack_with_a_clear_message() {
    let h = start(quick(), &[("bot", APP_A, template_mode())]).await;
    let (card, _) = first_answer(&h, "q?").await;
    let card = card.id;
    let mut c = click_params(APP_A, &card, &Action::Regenerate { record: "x".into() });
    c.params.insert("action".into(), json!("dance"));
    let says = h.click_refused(&c).await;
    assert!(says.contains("unknown card action"), "{says}");
    // Invalid JSON in content: refused by the client before the robot sees it.
    let c = Click {
        client_id: APP_A.into(),
        out_track_id: card.clone(),
        raw_content: Some("{not json".into()),
        ..Click::default()
    };
    h.click_refused(&c).await;
    // A record that does not exist.
    let c = click_params(
        APP_A,
        &card,
        &Action::Regenerate {
            record: "nosuchrecord".into(),
        },
    );
    let says = h.click_refused(&c).await;
    assert!(says.contains("nosuchrecord"), "{says}");
    assert_eq!(h.agent.calls.load(Ordering::SeqCst), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_while_and_after_answering_gives_one_answer() {
    let (script, gate) = held();
    let h = start(script, &[("bot", APP_A, json!({}))]).await;
    let posted = h.ask("Once?");
    // Answering: the thinking card is out and the agent is held after its first chunk.
    h.wait_for_thinking_card().await;
    let again = h.sb.redeliver_now(&posted.message_id).unwrap();
    h.sb.wait_for_ack(&again, Duration::from_secs(5))
        .await
        .expect("the redelivery is ACKed");
    gate.add_permits(10);
    h.wait_for("final card", |t| !final_cards(t).is_empty())
        .await;
    h.sb.redeliver_now(&again).unwrap();
    // Frames are handled in order, so once a later question is answered the redelivery
    // before it has been seen: had it started a run, that run would have come first.
    h.ask("And after?");
    let t = h
        .wait_for("the later question's final card", |t| {
            final_cards(t).len() == 2
        })
        .await;
    assert_eq!(
        count_of(&t, "card.send"),
        2,
        "one thinking card per question, none for the redeliveries"
    );
    assert_eq!(h.agent.calls.load(Ordering::SeqCst), 2);
    assert_eq!(h.answers().await.len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_failure_mid_stream_leaves_a_failed_card() {
    let script = AgentScript {
        fail_after: Some(2),
        ..quick()
    };
    let h = start(script, &[("bot", APP_A, json!({}))]).await;
    h.ask("Will it fail?");
    let t = h.wait_for_card_saying("failed card", texts().failed).await;
    let card = t.cards.values().next().unwrap();
    assert!(buttons(card).is_empty());
    assert!(
        card_text(card).contains("To connect"),
        "partial answer kept"
    );
    assert!(h.answers().await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_answer_is_acked_at_once_and_stop_finalizes_its_card() {
    let script = slow(vec!["Slowly ", "but surely"], Duration::from_secs(15));
    let h = start(script, &[("bot", APP_A, json!({}))]).await;
    let posted = h.ask("Slow?");
    let ack =
        h.sb.wait_for_ack(&posted.message_id, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(ack.latency_ms < 500.0, "ACK took {} ms", ack.latency_ms);
    h.wait_for_thinking_card().await;
    let started = std::time::Instant::now();
    h.app.stop(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    let t = h.sb.transcript();
    let card = t.cards.values().next().unwrap();
    assert!(
        card_text(card).contains(texts().stopped),
        "{}",
        card_text(card)
    );
    h.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_api_403_falls_back_to_a_markdown_reply() {
    let h = start(quick(), &[("bot", APP_A, json!({}))]).await;
    h.ask("Rate limited?");
    h.wait_for_thinking_card().await;
    // Three refusals in a row (the configured limit) make the robot give up the card.
    h.sb.fail_card_calls(403, Some(3));
    let t = h
        .wait_for("markdown reply", |t| {
            t.entries
                .iter()
                .any(|e| e.kind == "webhook" && e.error.is_none())
        })
        .await;
    assert_markdown_answer(&t);
    assert_eq!(t.entries.iter().filter(|e| e.status == 403).count(), 3);
    // Once the API answers again, the card is ended with a note instead of spinning.
    let t = h
        .wait_for_card_saying("card note", texts().sent_as_message)
        .await;
    assert!(buttons(t.cards.values().next().unwrap()).is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_robot_instances_answer_on_their_own_connections() {
    let h = start(
        quick(),
        &[("botA", APP_A, json!({})), ("botB", APP_B, json!({}))],
    )
    .await;
    h.ask("to A");
    h.sb.post_message(&PostMessage::text(APP_B, "to B"))
        .unwrap();
    let t = h
        .wait_for("two final cards", |t| final_cards(t).len() == 2)
        .await;
    let mut owners: Vec<_> = final_cards(&t)
        .iter()
        .map(|c| c.client_id.clone())
        .collect();
    owners.sort();
    assert_eq!(owners, vec![APP_A, APP_B]);
    let mut robots: Vec<_> = h
        .answers()
        .await
        .into_iter()
        .map(|a| (a.robot, a.question))
        .collect();
    robots.sort();
    assert_eq!(
        robots,
        vec![
            ("imRobots.botA".to_string(), "to A".to_string()),
            ("imRobots.botB".to_string(), "to B".to_string())
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_questions_are_stripped_and_answered_in_the_group() {
    let h = start(quick(), &[("bot", APP_A, json!({}))]).await;
    let posted = h
        .sb
        .post_message(&PostMessage::text(APP_A, "What is the wifi password?").in_group("cidGroup1"))
        .unwrap();
    let t = h
        .wait_for("final card", |t| !final_cards(t).is_empty())
        .await;
    let send = t.entries.iter().find(|e| e.kind == "card.send").unwrap();
    assert_eq!(send.body["openConversationId"], posted.conversation_id);
    let args = h.agent.args.lock().unwrap().clone();
    assert_eq!(args[0]["question"], "What is the wifi password?");
    assert_eq!(
        args[0]["chatId"],
        format!("group:{}:user001", posted.conversation_id)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_text_gets_a_polite_reply_and_voice_is_answered() {
    let h = start(quick(), &[("bot", APP_A, json!({}))]).await;
    let picture = PostMessage {
        msgtype: "picture".into(),
        ..PostMessage::text(APP_A, "")
    };
    h.sb.post_message(&picture).unwrap();
    h.wait_for("polite reply", |t| {
        t.replies().iter().any(|r| r == texts().no_picture)
    })
    .await;
    let voice = PostMessage {
        msgtype: "audio".into(),
        content: Some(json!({"recognition": "how do I reset my password", "duration": 3})),
        ..PostMessage::text(APP_A, "")
    };
    h.sb.post_message(&voice).unwrap();
    h.wait_for("final card", |t| !final_cards(t).is_empty())
        .await;
    let args = h.agent.args.lock().unwrap().clone();
    assert_eq!(args.len(), 1);
    assert_eq!(args[0]["question"], "how do I reset my password");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_mode_streams_and_takes_feedback_over_stream() {
    let (script, gate) = held();
    let h = start(script, &[("bot", APP_A, template_mode())]).await;
    h.ask("Template?");
    wait_for_call(
        &h.sb,
        "card.streaming",
        "To connect",
        Duration::from_secs(15),
    )
    .await;
    gate.add_permits(1);
    let t = h
        .wait_for("finished card", |t| {
            t.cards
                .values()
                .any(|c| c.flow_status.as_deref() == Some("3"))
        })
        .await;
    let kinds: Vec<&str> = t.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[0], "card.createAndDeliver", "{kinds:?}");
    assert!(count_of(&t, "card.streaming") >= 2, "{kinds:?}");
    let card = t.cards.values().next().unwrap().clone();
    assert!(card.finalized);
    assert_eq!(
        card.streams.get("content").map(String::as_str),
        Some("To connect, open the VPN app and sign in.")
    );
    let record = card.card_param_map["record"].clone();
    let mut params = serde_json::Map::new();
    params.insert("action".into(), json!("feedback"));
    params.insert("kind".into(), json!("very_unhelpful"));
    params.insert("record".into(), json!(record));
    h.click_ok(&Click {
        client_id: APP_A.into(),
        out_track_id: card.id.clone(),
        params,
        ..Click::default()
    })
    .await;
    let t = h.sb.transcript();
    assert_eq!(t.cards[&card.id].card_param_map["stage"], "thanked");
    let fb = h.feedback().await;
    assert_eq!(fb[0].rating, FeedbackKind::VeryUnhelpful);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_timeout_ends_in_a_timed_out_card() {
    let script = slow(vec!["Part one ", "never comes"], Duration::from_millis(700));
    let h = start(script, &[("bot", APP_A, json!({"answerTimeoutMs": 1000}))]).await;
    h.ask("Too slow?");
    let t = h
        .wait_for_card_saying("timed-out card", texts().timed_out)
        .await;
    let card = t.cards.values().next().unwrap();
    assert!(card_text(card).contains("Part one"), "{}", card_text(card));
    assert!(buttons(card).is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_user_without_staff_id_gets_the_answer_as_markdown() {
    let h = start(quick(), &[("bot", APP_A, json!({}))]).await;
    h.sb.post_message(&PostMessage::text(APP_A, "Guest here?").from(None, "Guest"))
        .unwrap();
    let t = h
        .wait_for("markdown answer", |t| !t.replies().is_empty())
        .await;
    assert!(
        t.cards.is_empty(),
        "no card can reach an external one-to-one user"
    );
    assert_markdown_answer(&t);
    assert_eq!(h.answers().await.len(), 1);
    h.stop().await;
}

/// Repeated "regenerate" clicks are bounded: a user gets PER_USER_PER_WINDOW new answers
/// per window, and the next click is ACKed but starts no agent run.
///
/// Each click is on the newest answer's card. A click on the first card again could land
/// in the instant between its regeneration's final card (what the test sees) and the end
/// of that regeneration (when the robot frees the card), and be refused as "already being
/// regenerated" instead of by the rate limit under test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regenerate_storm_is_rate_limited_per_user() {
    let h = start(quick(), &[("bot", APP_A, template_mode())]).await;
    let (mut card, mut record) = first_answer(&h, "Where is the VPN guide?").await;
    let mut seen = std::collections::HashSet::from([card.id.clone()]);
    let allowed = jitnode_robot::regen::PER_USER_PER_WINDOW;
    for n in 1..=allowed {
        let regenerate = Action::Regenerate {
            record: record.clone(),
        };
        h.click_ok(&click_params(APP_A, &card.id, &regenerate))
            .await;
        // Each admitted click ends in one more answer card before the next click.
        let t = h
            .wait_for("regenerated card", |t| answered_cards(t).len() == n + 1)
            .await;
        let newest = answered_cards(&t)
            .into_iter()
            .find(|c| !seen.contains(&c.id))
            .expect("the regenerated card")
            .clone();
        seen.insert(newest.id.clone());
        record = newest.card_param_map["record"].clone();
        card = newest;
        // Only the per-user rate can refuse the next click (the count of
        // regenerations started so far).
        assert_eq!(h.agent.calls.load(Ordering::SeqCst), n + 1);
    }
    let regenerate = Action::Regenerate {
        record: record.clone(),
    };
    // A refused click is still ACKed.
    h.click_ok(&click_params(APP_A, &card.id, &regenerate))
        .await;
    // Stopping waits for every regeneration a click started, so a run admitted by the last
    // click would be counted below.
    let records = h.records().await;
    let calls = h.agent.calls.clone();
    h.stop().await;
    assert_eq!(records.list_answers(None).await.unwrap().len(), allowed + 1);
    assert_eq!(calls.load(Ordering::SeqCst), allowed + 1);
}

/// The public AI card: its variables, a button per action, clicks as the template sends
/// them (`cardPrivateData.actionIds[0]`, delivered by the sandbox only for shown buttons).
fn ai_view(card: &CardState) -> CardView {
    CardView::ai(&card.card_param_map, &card.streams)
}

fn ai_mode() -> Value {
    json!({"card": {"mode": "ai", "minIntervalMs": 50}})
}

fn ai_click(card: &str, action: &Action) -> Click {
    Click {
        client_id: APP_A.into(),
        out_track_id: card.into(),
        action_ids: vec![action.to_action_id()],
        ..Click::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_card_mode_streams_and_every_button_works() {
    let h = start(quick(), &[("bot", APP_A, ai_mode())]).await;
    h.ask("Where is the VPN guide?");
    let t = h
        .wait_for("final AI card", |t| {
            t.cards.values().any(|c| ai_view(c).buttons.len() == 4)
        })
        .await;
    let card = t.cards.values().next().unwrap().clone();
    assert_eq!(
        card.template_id,
        jitnode_dingtalk_wire::api::ai_card::TEMPLATE_ID
    );
    assert_eq!(card.callback_type.as_deref(), Some("STREAM"));
    // Streamed into msgContent (the quick agent's answer comes as one chunk), then finished.
    assert_eq!(card.streams["msgContent"], quick().answer());
    assert!(card.updates >= 2, "{card:?}");
    let view = ai_view(&card);
    assert_eq!(view.text, quick().answer());
    assert!(view.is_done());
    let record = view.record().unwrap().to_string();

    // A button the card does not show is not delivered.
    let ghost = Action::Regenerate {
        record: record.clone(),
    };
    assert!(h.sb.click(&ai_click(&card.id, &ghost)).await.is_err());

    // Feedback: stored, and the card thanks.
    h.click_ok(&ai_click(
        &card.id,
        &Action::Feedback {
            kind: FeedbackKind::VeryHelpful,
            record: record.clone(),
        },
    ))
    .await;
    let fb = h.feedback().await;
    assert_eq!(fb.len(), 1);
    assert_eq!(
        (fb[0].rating, fb[0].record_id.as_str()),
        (FeedbackKind::VeryHelpful, record.as_str())
    );
    let thanked = ai_view(&h.sb.transcript().cards[&card.id]);
    assert!(thanked.text.contains(texts().thanks), "{thanked:?}");
    assert!(thanked.text.starts_with(&quick().answer()));
    assert_eq!(
        thanked.buttons,
        [
            Action::Regenerate {
                record: record.clone()
            },
            Action::ContinueChat {
                record: record.clone()
            }
        ]
    );

    // Regenerate: a second answer card, stored as regenerated from the first.
    h.click_ok(&ai_click(&card.id, &ghost)).await;
    h.wait_for("regenerated AI card", |t| {
        t.cards
            .values()
            .any(|c| c.id != card.id && ai_view(c).buttons.len() == 4)
    })
    .await;
    let answers = h.answers().await;
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers[1].regenerated_from.as_deref(),
        Some(record.as_str())
    );

    // Continue: the invitation.
    h.continue_chat(&ai_click(&card.id, &Action::ContinueChat { record }))
        .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_card_feedback_stores_each_of_the_four_levels() {
    let h = start(quick(), &[("bot", APP_A, ai_mode())]).await;
    let mut clicked: Vec<String> = Vec::new();
    for (i, kind) in FeedbackKind::ALL.into_iter().enumerate() {
        h.ask(&format!("VPN question {i}?"));
        let t = h
            .wait_for("a new final AI card", |t| {
                t.cards
                    .values()
                    .any(|c| !clicked.contains(&c.id) && ai_view(c).buttons.len() == 4)
            })
            .await;
        let card = t
            .cards
            .values()
            .find(|c| !clicked.contains(&c.id) && ai_view(c).buttons.len() == 4)
            .unwrap();
        let action = ai_view(card).buttons[i].clone();
        let record = action.record().to_string();
        assert_eq!(
            action,
            Action::Feedback {
                kind,
                record: record.clone()
            }
        );
        h.click_ok(&ai_click(&card.id, &action)).await;
        let fb = h.feedback().await;
        let stored = fb.iter().find(|f| f.record_id == record).unwrap();
        assert_eq!(stored.rating, kind);
        clicked.push(card.id.clone());
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_variables_the_ai_card_does_not_have() {
    let h = start(
        quick(),
        &[(
            "bot",
            APP_A,
            json!({"card": {"mode": "template",
            "templateId": jitnode_dingtalk_wire::api::ai_card::TEMPLATE_ID}}),
        )],
    )
    .await;
    // Custom-template variables sent to the public AI template: refused, not rendered.
    h.ask("Where is the VPN guide?");
    let t = h
        .wait_for("refused card", |t| {
            t.entries
                .iter()
                .any(|e| e.error.as_deref() == Some("invalidParameter.cardParamMap"))
                && !t.replies().is_empty()
        })
        .await;
    assert!(t.cards.is_empty());
    // The answer still reaches the user, as markdown.
    assert!(t.replies()[0].contains(&quick().answer()));
    h.app.stop(Duration::from_secs(5)).await;
    h.sb.shutdown().await;
}
