//! Parsing of real-shaped frames kept under `tests/fixtures/`, and their round trip.

use jitnode_dingtalk_wire::frame::{
    Ack, Frame, FrameType, TOPIC_CARD_CALLBACK, TOPIC_PING, TOPIC_ROBOT,
};
use jitnode_dingtalk_wire::message::{
    CardCallback, ConversationType, Event, MessageBody, ParseError, RobotMessage,
};
use serde_json::{json, Value};

fn fixture(name: &str) -> Frame {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Frame::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn group_text_message() {
    let f = fixture("robot_text_group.json");
    assert_eq!(f.kind, FrameType::Callback);
    assert_eq!(f.topic(), TOPIC_ROBOT);
    let m = RobotMessage::from_frame(&f).unwrap();
    assert_eq!(m.msg_id, "msgBjXREkdlZkfTfrIiQomjAw==");
    assert_eq!(m.conversation_type, ConversationType::Group);
    assert!(m.is_group());
    assert_eq!(m.text(), Some("how do I reset my password?"));
    assert_eq!(m.body(), MessageBody::Text("how do I reset my password?"));
    assert_eq!(m.conversation_title.as_deref(), Some("Support group"));
    assert_eq!(m.sender_staff_id.as_deref(), Some("032615015535634423"));
    assert!(m.is_in_at_list);
    assert_eq!(m.at_users.len(), 1);
    assert_eq!(m.at_users[0].staff_id, None);
    assert_eq!(m.session_webhook_expired_time, 1774086394522);
    assert_eq!(m.create_at, 1774080994334);
    assert_eq!(m.robot_code.as_deref(), Some("dingrobot123"));
    assert_eq!(m.sender_platform.as_deref(), Some("Mac"));
    assert!(m.session_webhook.starts_with("https://oapi.dingtalk.com/"));
}

#[test]
fn external_sender_has_no_staff_id() {
    let m = RobotMessage::from_frame(&fixture("robot_text_single_external.json")).unwrap();
    assert_eq!(m.conversation_type, ConversationType::OneToOne);
    assert_eq!(m.sender_staff_id, None);
    assert_eq!(m.text(), Some("hello"));
}

#[test]
fn audio_uses_recognition_and_picture_keeps_content() {
    let m = RobotMessage::from_frame(&fixture("robot_audio.json")).unwrap();
    assert_eq!(
        m.body(),
        MessageBody::Audio {
            recognition: "what time is it"
        }
    );
    assert_eq!(m.text(), Some("what time is it"));
    let m = RobotMessage::from_frame(&fixture("robot_picture.json")).unwrap();
    assert_eq!(m.text(), None);
    match m.body() {
        MessageBody::Other { msgtype, content } => {
            assert_eq!(msgtype, "picture");
            assert_eq!(content["downloadCode"], "mIofN681YE3fpic");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn msg_id_falls_back_to_message_id_and_conversation_type_number() {
    let f = Frame::new(
        FrameType::Callback,
        TOPIC_ROBOT,
        "hdr-1",
        &json!({"msgtype": "text", "text": {"content": "x"}, "conversationType": 2, "createAt": "17"}),
    );
    let m = RobotMessage::from_frame(&f).unwrap();
    assert_eq!(m.msg_id, "hdr-1");
    assert_eq!(m.conversation_type, ConversationType::Group);
    assert_eq!(m.create_at, 17);
}

#[test]
fn robot_data_not_json_or_wrong_shape_is_an_error() {
    let base = fixture("robot_text_group.json");
    let with = |data: &str| {
        let mut f = base.clone();
        f.data = data.into();
        RobotMessage::from_frame(&f)
    };
    assert!(matches!(
        with("{not json"),
        Err(ParseError::DataNotJson { .. })
    ));
    assert!(matches!(
        with(r#"{"atUsers": "nope"}"#),
        Err(ParseError::Shape { .. })
    ));
}

#[test]
fn card_callback_decodes_content_and_extension() {
    let f = fixture("card_callback.json");
    assert_eq!(f.topic(), TOPIC_CARD_CALLBACK);
    let cb = CardCallback::from_frame(&f).unwrap();
    assert_eq!(cb.out_track_id, "answer-42");
    assert_eq!(cb.kind, "actionCallback");
    assert_eq!(cb.private_data.action_ids, vec!["like"]);
    assert_eq!(cb.param("action"), Some("like"));
    assert_eq!(cb.param("record"), Some("r-7"));
    assert_eq!(cb.extension["source"], "button");
    assert_eq!(cb.user_id_type, Some(json!(1)));
    assert_eq!(cb.message_id, "2a3b4c_1_card");
}

#[test]
fn card_callback_bad_fields_are_typed_errors() {
    let base = fixture("card_callback.json");
    let mut data: Value = base.data_json().unwrap();
    let with = |data: &Value| {
        let mut f = base.clone();
        f.data = data.to_string();
        CardCallback::from_frame(&f)
    };
    data.as_object_mut().unwrap().remove("content");
    assert!(matches!(
        with(&data),
        Err(ParseError::MissingField { field: "content" })
    ));
    data["content"] = json!("{broken");
    assert!(matches!(
        with(&data),
        Err(ParseError::FieldNotJson {
            field: "content",
            ..
        })
    ));
    data["content"] = json!("{}");
    data["extension"] = json!("nope{");
    let e = with(&data).unwrap_err();
    assert!(matches!(
        e,
        ParseError::FieldNotJson {
            field: "extension",
            ..
        }
    ));
    assert!(e.to_string().contains("extension"));
    data.as_object_mut().unwrap().remove("extension");
    assert_eq!(with(&data).unwrap().extension, Value::Null);
    // `data` that is JSON but not an object.
    assert!(matches!(
        with(&json!([1, 2])),
        Err(ParseError::Shape { .. })
    ));
}

#[test]
fn system_frames_and_pong() {
    let ping = fixture("system_ping.json");
    assert_eq!((ping.kind, ping.topic()), (FrameType::System, TOPIC_PING));
    let pong: Value = serde_json::from_str(&Ack::pong(&ping).to_text()).unwrap();
    assert_eq!(pong["code"], 200);
    assert_eq!(pong["headers"]["messageId"], "96dc9bfd_99_ping");
    assert_eq!(pong["headers"]["contentType"], "application/json");
    let data: Value = serde_json::from_str(pong["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["opaque"], "3b5a4f21-8c1e-4d0b-9e2a-6f7c8d9e0a1b");
    let d = fixture("system_disconnect.json");
    assert_eq!(d.topic(), "disconnect");
    assert_eq!(
        d.data_json().unwrap()["reason"],
        "persistent connection is timeout"
    );
}

#[test]
fn event_headers() {
    let ev = Event::from_frame(&fixture("event_chat_update.json")).unwrap();
    assert_eq!(ev.event_id, "e1f2a3");
    assert_eq!(ev.event_type, "chat_update_title");
    assert_eq!(ev.corp_id, "dingc7a8b9");
    assert_eq!(ev.data["Title"], "new title");
    assert_eq!(
        ev.headers.get("eventUnifiedAppId").map(String::as_str),
        Some("u1")
    );
}

#[test]
fn ack_shapes_are_exact() {
    let a: Value = serde_json::from_str(
        &Ack::callback("m1", json!({"cardData": {"cardParamMap": {"s": "1"}}})).to_text(),
    )
    .unwrap();
    assert_eq!(a["code"], 200);
    assert_eq!(a["message"], "OK");
    let data: Value = serde_json::from_str(a["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"response": {"cardData": {"cardParamMap": {"s": "1"}}}})
    );
    let e: Value = serde_json::from_str(&Ack::event("m2", false, "later").to_text()).unwrap();
    let data: Value = serde_json::from_str(e["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"status": "LATER", "message": "later"}));
}

/// Every frame fixture, read and written back: the frame text, and the typed `data` of robot
/// messages and card callbacks, come out as they went in.
#[test]
fn fixtures_round_trip_through_the_types() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let f = fixture(&name);
        let again = Frame::parse(&f.to_text()).unwrap();
        assert_eq!(again, f, "{name}: frame round trip");
        let data = f.data_json().unwrap();
        match f.topic() {
            TOPIC_ROBOT => {
                let m = RobotMessage::from_frame(&f).unwrap();
                let written = serde_json::to_value(&m).unwrap();
                // Every field that came is written back with the same value.
                for (k, v) in data.as_object().unwrap() {
                    assert_eq!(written.get(k), Some(v), "{name}: field {k}");
                }
                let back: RobotMessage = serde_json::from_value(written).unwrap();
                assert_eq!(back, m, "{name}: message round trip");
            }
            TOPIC_CARD_CALLBACK => {
                let cb = CardCallback::from_frame(&f).unwrap();
                let written = serde_json::to_value(&cb).unwrap();
                let back =
                    CardCallback::from_data(written.clone(), f.topic(), f.message_id()).unwrap();
                assert_eq!(back, cb, "{name}: callback round trip");
                for k in ["outTrackId", "userId", "spaceId", "value", "userIdType"] {
                    assert_eq!(written.get(k), data.get(k), "{name}: field {k}");
                }
                let via_serde: CardCallback = serde_json::from_value(written).unwrap();
                assert_eq!(via_serde.content, cb.content);
            }
            _ => {}
        }
        seen += 1;
    }
    assert!(seen >= 8, "fixtures found: {seen}");
}
