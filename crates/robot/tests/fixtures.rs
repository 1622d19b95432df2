//! The robot reads the committed wire fixtures (crates/dingtalk-wire/tests/fixtures) of the
//! messages a real chat sends and of an AI card click.

use jitnode_dingtalk_wire::{CardCallback, Frame, RobotMessage};
use jitnode_robot::callback::{Action, FeedbackKind};
use jitnode_robot::message::{Content, Incoming};

fn frame(name: &str) -> Frame {
    let path = format!(
        "{}/../dingtalk-wire/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Frame::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn asked(name: &str) -> Content {
    RobotMessage::from_frame(&frame(name))
        .expect("a robot message")
        .asked()
}

#[test]
fn rich_text_is_answered_by_its_text() {
    assert_eq!(
        asked("robot_rich_text.json"),
        Content::Question {
            text: "这张截图里的报错怎么解决？".into(),
            from_voice: false
        }
    );
}

#[test]
fn picture_file_and_video_are_unsupported_by_type() {
    for (file, msgtype) in [
        ("robot_picture.json", "picture"),
        ("robot_file.json", "file"),
        ("robot_video.json", "video"),
    ] {
        assert_eq!(
            asked(file),
            Content::Unsupported {
                msgtype: msgtype.into()
            },
            "{file}"
        );
    }
}

#[test]
fn an_ai_card_click_reads_its_button_id() {
    let cb = CardCallback::from_frame(&frame("card_callback_ai_card.json")).expect("callback");
    assert_eq!(
        Action::from_callback(&cb).unwrap(),
        Action::Feedback {
            kind: FeedbackKind::Helpful,
            record: "b9d8aae5583342919e109bd2058ec51f".into()
        }
    );
}
