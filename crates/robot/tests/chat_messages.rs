//! The messages a real chat sends, through the sandbox on the real wire: pictures, files
//! and videos get a polite reply in the sender's language; a quoted reply in a group is
//! answered for its new text with the quote as the agent's context; the robot's own
//! mention is stripped and other people's stay; a question over `maxQuestionChars` is cut
//! and its answer says so. The message contents come from the committed wire fixtures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_dingtalk_wire::{Frame, RobotMessage};
use jitnode_host::App;
use jitnode_robot::config::Lang;
use jitnode_robot::texts::Texts;
use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_test_kit::robot::{robot_config, start_app, wait_connected, wait_for, AppDir};
use serde_json::{json, Value};

mod common;
use common::agent_registry;

const APP: &str = "dingchat";
const ANSWER: &str = "Here is how.";

/// A committed robot message fixture's decoded message.
fn fixture(name: &str) -> RobotMessage {
    let path = format!(
        "{}/../dingtalk-wire/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    RobotMessage::from_frame(&Frame::parse(&text).unwrap()).unwrap()
}

/// A text message's content, trimmed.
fn text_of(m: &RobotMessage) -> String {
    m.text.as_ref().unwrap().content.trim().to_string()
}

struct Chat {
    sb: Sandbox,
    app: App,
    questions: Arc<Mutex<Vec<String>>>,
    _dir: AppDir,
}

/// A robot (config `extra`, robot language `language`) whose agent records each question.
async fn chat(language: &str, extra: Value) -> Chat {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = AppDir::new();
    dir.test_agent("recordingAgent");
    dir.robot_family();
    let mut config = robot_config(&sb, APP, "dingchat-secret", &extra);
    config["language"] = json!(language);
    dir.robot("bot", &config);
    let questions = Arc::new(Mutex::new(Vec::new()));
    let seen = questions.clone();
    let registry = agent_registry("recordingAgent", move |args: Value, chunks| {
        let seen = seen.clone();
        async move {
            let q = args["question"].as_str().unwrap_or_default().to_string();
            seen.lock().unwrap().push(q);
            chunks.send(json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": ANSWER}}));
            Ok(json!({"answer": ANSWER, "sources": []}))
        }
    });
    let app = start_app(&dir, registry).await;
    wait_connected(&sb, APP, 1).await;
    Chat {
        sb,
        app,
        questions,
        _dir: dir,
    }
}

impl Chat {
    async fn replies_after(&self, n: usize) -> Vec<String> {
        wait_for(&self.sb, "a reply", Duration::from_secs(10), |t| {
            t.replies().len() > n
        })
        .await
        .replies()
    }

    /// Waits for the `n`th question the agent got.
    async fn question(&self, n: usize) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(q) = self.questions.lock().unwrap().get(n) {
                return q.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no question {n}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Posts `m` and waits for the `n`th question the agent got.
    async fn ask(&self, m: &PostMessage, n: usize) -> String {
        self.sb.post_message(m).unwrap();
        self.question(n).await
    }

    async fn final_card_text(&self) -> String {
        let t = wait_for(&self.sb, "the final card", Duration::from_secs(10), |t| {
            t.cards.values().any(|c| {
                c.card_data
                    .as_ref()
                    .is_some_and(|d| d.to_string().contains(ANSWER))
            })
        })
        .await;
        t.cards
            .values()
            .filter_map(|c| c.card_data.as_ref())
            .map(Value::to_string)
            .find(|s| s.contains(ANSWER))
            .unwrap()
    }

    async fn stop(self) {
        self.app.stop(Duration::from_secs(5)).await;
        self.sb.shutdown().await;
    }
}

/// The fixture's `msgtype` and `content`, posted from `user001`.
fn media(name: &str) -> PostMessage {
    let m = fixture(name);
    PostMessage {
        msgtype: m.msgtype.clone(),
        content: m.content.clone(),
        ..PostMessage::text(APP, "")
    }
}

/// `text` in a group, replying to the message `quoted` quotes.
fn replying(quoted: &RobotMessage, text: &str) -> PostMessage {
    PostMessage {
        replied_msg: quoted.text.as_ref().unwrap().replied_msg.clone(),
        ..PostMessage::text(APP, text).in_group("cidQuote==")
    }
}

/// `text` in a group, @-mentioning another member besides the robot.
fn mentioning(text: &str) -> PostMessage {
    PostMessage {
        at_users: vec!["045512".into()],
        ..PostMessage::text(APP, text).in_group("cidMentions==")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_files_and_videos_get_a_polite_reply_in_the_senders_language() {
    let c = chat("zh", json!({})).await;
    let zh = Texts::for_lang(Lang::Zh);
    let en = Texts::for_lang(Lang::En);
    // Nothing known of the sender yet: the robot's configured language.
    c.sb.post_message(&media("robot_picture.json")).unwrap();
    assert_eq!(c.replies_after(0).await, [zh.no_picture]);
    // The sender writes English once; what they send next is answered in English.
    c.sb.post_message(&PostMessage::text(APP, "How do I reset my password?"))
        .unwrap();
    c.final_card_text().await;
    for (i, (name, want)) in [
        ("robot_file.json", en.no_file),
        ("robot_video.json", en.no_video),
        ("robot_picture.json", en.no_picture),
    ]
    .into_iter()
    .enumerate()
    {
        c.sb.post_message(&media(name)).unwrap();
        let replies = c.replies_after(i + 1).await;
        assert_eq!(replies.last().map(String::as_str), Some(want), "{name}");
    }
    // Another sender, still unknown: the configured language.
    let other = PostMessage {
        ..media("robot_file.json").from(Some("user002"), "Wang")
    };
    c.sb.post_message(&other).unwrap();
    assert_eq!(
        c.replies_after(4).await.last().map(String::as_str),
        Some(zh.no_file)
    );
    assert!(
        c.questions.lock().unwrap().len() == 1,
        "media never reach the agent"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quoted_reply_is_answered_for_its_new_text_with_the_quote_as_context() {
    let c = chat("zh", json!({})).await;
    let quoted = fixture("robot_text_group_quote.json");
    let new_text = text_of(&quoted);
    let q = c.ask(&replying(&quoted, &new_text), 0).await;
    assert!(q.starts_with("这个怎么处理？"), "{q}");
    assert!(
        q.contains("引用的消息: \"打印机一直显示脱机，重启也没用\""),
        "{q}"
    );
    // The card shows the new text as its title, not the quote.
    let card = c.final_card_text().await;
    assert!(
        card.contains("这个怎么处理？") && !card.contains("打印机"),
        "{card}"
    );

    // A quoted rich text (the mobile shape) gives its text segments.
    let rich = fixture("robot_text_group_quote_rich.json");
    let q = c.ask(&replying(&rich, "how about this one?"), 1).await;
    assert!(
        q.ends_with("Quoted message: \"VPN error 809 on login\""),
        "{q}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_robots_mention_is_stripped_and_other_peoples_stay() {
    let c = chat("zh", json!({})).await;
    let content = text_of(&fixture("robot_text_group_mentions.json"));
    assert_eq!(
        c.ask(&mentioning(&content), 0).await,
        "@王芳\u{2005}能帮忙看下 VPN 连不上吗？"
    );
    // A client that left the robot's name in the text too: only that one goes.
    assert_eq!(
        c.ask(&mentioning("@客服助手 @王芳 打印机呢？"), 1).await,
        "@王芳 打印机呢？"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_over_the_limit_is_cut_and_the_answer_says_so() {
    let c = chat("en", json!({"maxQuestionChars": 40})).await;
    let long = format!(
        "Why does the VPN drop? {}",
        "It keeps dropping. ".repeat(20)
    );
    c.sb.post_message(&PostMessage::text(APP, &long)).unwrap();
    let q = c.question(0).await;
    assert!(q.chars().count() <= 40, "{q}");
    assert!(long.starts_with(&q), "{q}");
    let card = c.final_card_text().await;
    assert!(
        card.contains("(Your question was long: I read its first 40 characters only.)"),
        "{card}"
    );
    c.stop().await;
}
