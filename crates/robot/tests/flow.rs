//! The building blocks composed the way the robot's loader will use them: a robot message
//! in, card calls out while the answer streams, the answer stored, a button click read back
//! and the feedback stored. No network: the "card API" records the calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_dingtalk_wire::frame::{Frame, FrameType, TOPIC_CARD_CALLBACK, TOPIC_ROBOT};
use jitnode_dingtalk_wire::Method;
use jitnode_dingtalk_wire::{CardCallback, RobotMessage};
use jitnode_robot::callback::{Action, FeedbackKind};
use jitnode_robot::cards::view::CardView;
use jitnode_robot::config::RobotConfig;
use jitnode_robot::message::Incoming;
use jitnode_robot::records::{answer_to, new_record_id, Inserted, RecordsAt};
use jitnode_robot::reply::{AnswerCard, CardCall};
use jitnode_robot::throttle::{self, Publish, ThrottleConfig};
use serde_json::{json, Value};

fn robot_config(mode: &str) -> RobotConfig {
    let mut card = json!({"mode": mode, "minIntervalMs": 300, "maxUpdates": 6});
    if mode == "template" {
        card["templateId"] = json!("helpdesk.schema");
    }
    RobotConfig::from_value(&json!({
        "clientId": "dingdemo", "clientSecret": "not-a-real-secret",
        "agent": "aiagents.helpdesk", "openApiEndpoint": "http://127.0.0.1:1",
        "card": card
    }))
    .unwrap()
}

/// The message as the Stream client hands it over, from a frame with `messageId` `hdr`.
fn message(data: &str, hdr: &str) -> RobotMessage {
    let mut f = Frame::new(FrameType::Callback, TOPIC_ROBOT, hdr, &Value::Null);
    f.data = data.to_string();
    let m = RobotMessage::from_frame(&f).unwrap();
    m.check().unwrap();
    m
}

fn group_message() -> String {
    json!({
        "msgId": "msgFLOW1", "msgtype": "text",
        "text": {"content": " @Helpdesk\u{2005}How do I connect to the VPN?"},
        "conversationId": "cidGROUP", "conversationType": "2",
        "senderId": "$:LWCP_v1:$li", "senderStaffId": "0326", "senderNick": "Li Lei",
        "sessionWebhook": "http://127.0.0.1:1/robot/sendBySession?session=s",
        "sessionWebhookExpiredTime": 1774086394522i64
    })
    .to_string()
}

/// The button values of a standard card call, read by the robot's card view.
fn button_values(call: &CardCall) -> Vec<String> {
    let card: Value = serde_json::from_str(call.body["cardData"].as_str().unwrap()).unwrap();
    CardView::standard(&card)
        .buttons
        .iter()
        .map(Action::to_value_string)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn question_to_stored_feedback_in_standard_mode() {
    let config = robot_config("standard");
    let data = tempfile::tempdir().unwrap();
    let records = RecordsAt::open_in(data.path()).await.unwrap();

    // A message arrives.
    let msg = message(&group_message(), "frame-1");
    let question = msg.question().unwrap();
    assert_eq!(question, "How do I connect to the VPN?");
    let card = AnswerCard::new(
        &config,
        jitnode_robot::cards::new_card_id(),
        &question,
        msg.reply_target(),
        msg.mention(),
    )
    .unwrap();
    let sent: Arc<Mutex<Vec<CardCall>>> = Arc::default();
    sent.lock().unwrap().push(card.thinking());

    // The answer streams in; the throttle turns it into card updates.
    let record = new_record_id();
    let (feed, rx) = throttle::feed();
    let updater = {
        let card = card.clone();
        let sent = sent.clone();
        let record = record.clone();
        move |text: String, publish: Publish| {
            let calls = match publish {
                Publish::Partial => card.partial(&text, false),
                Publish::Final => card.final_answer(&text, &record),
            };
            sent.lock().unwrap().extend(calls);
            async { Ok::<(), String>(()) }
        }
    };
    let driver = tokio::spawn(throttle::drive(
        rx,
        updater,
        ThrottleConfig::from_robot(&config),
    ));
    let chunks = [
        "Open the ",
        "VPN app, ",
        "sign in with ",
        "your staff ",
        "account.",
    ];
    for chunk in chunks {
        tokio::time::sleep(Duration::from_millis(400)).await;
        feed.append(chunk);
    }
    feed.finish();
    let report = driver.await.unwrap();
    assert!(report.final_published);
    let answer = report.text.clone();
    assert_eq!(answer, chunks.concat());

    let calls = sent.lock().unwrap().clone();
    assert_eq!(calls[0].method, Method::Post);
    assert!(calls[1..].iter().all(|c| c.method == Method::Put));
    assert!(
        calls.len() >= 3,
        "thinking, at least one partial, final: {calls:?}"
    );
    assert!(calls.len() as u32 <= 1 + config.card.max_updates);

    // The answer is stored; a redelivered message would not be stored twice.
    let new = answer_to(&msg, "imRobots.dingTalkDemo", &record, &question, &answer);
    assert_eq!(records.record_answer(&new).await.unwrap(), Inserted::New);
    let again = answer_to(&msg, "imRobots.dingTalkDemo", "other", &question, &answer);
    assert!(matches!(
        records.record_answer(&again).await.unwrap(),
        Inserted::AlreadyStored { .. }
    ));

    // The final card has no buttons: a standard card's clicks would go to an HTTP
    // callback, which the robot does not serve.
    assert!(button_values(calls.last().unwrap()).is_empty());
    let last = calls.last().unwrap().body["cardData"].as_str().unwrap();
    assert!(
        last.contains(&answer) && !last.contains("\"button\""),
        "{last}"
    );
}

#[tokio::test(start_paused = true)]
async fn template_mode_click_over_stream_is_parsed() {
    let config = robot_config("template");
    let msg = message(&group_message(), "");
    let card = AnswerCard::new(&config, "track-9", "q", msg.reply_target(), msg.mention()).unwrap();
    let final_calls = card.final_answer("answer", "rec-9");
    let params = &final_calls[1].body["cardData"]["cardParamMap"];
    // A template button sending `{"value": "${valueVeryHelpful}"}` in its params.
    let content = json!({"cardPrivateData": {"actionIds": ["vh"],
        "params": {"value": params["valueVeryHelpful"]}}})
    .to_string();
    let data = json!({"outTrackId": "track-9", "userId": "0326", "content": content});
    let click = CardCallback::from_data(data, TOPIC_CARD_CALLBACK, "cb-1").unwrap();
    assert_eq!(click.out_track_id, "track-9");
    assert_eq!(
        Action::from_callback(&click).unwrap(),
        Action::Feedback {
            kind: FeedbackKind::VeryHelpful,
            record: "rec-9".into()
        }
    );
}
