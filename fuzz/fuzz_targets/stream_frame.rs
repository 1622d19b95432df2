//! A text frame off the Stream WebSocket: parsed as the client does, then read as each kind
//! of message it may carry. A frame that parses must survive its own serialization.
#![no_main]

use jitnode_dingtalk_wire::frame::{Ack, Frame};
use jitnode_dingtalk_wire::{CardCallback, Event, RobotMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An ACK is the other direction's frame; the sandbox parses those.
    if let Ok(ack) = Ack::parse(text) {
        let _ = Ack::parse(&ack.to_text()).expect("a serialized ACK parses");
    }
    let frame = match Frame::parse(text) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let again = Frame::parse(&frame.to_text()).expect("a serialized frame parses");
    assert_eq!(again, frame, "a frame survives to_text and parse");
    let _ = Ack::pong(&frame).to_text();

    match RobotMessage::from_frame(&frame) {
        Ok(m) => {
            let _ = (m.body(), m.text(), m.is_group());
            // Debug must not panic on any content (it redacts the webhook).
            let _ = format!("{m:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(m) = RobotMessage::from_frame(&frame) {
        // The robot's reading of the message: what it answers and where.
        use jitnode_robot::message::Incoming;
        let _ = (
            m.check(),
            m.question(),
            m.chat_id(),
            m.mention(),
            m.webhook(),
        );
        let target = m.reply_target();
        let _ = (target.standard_card_fields(), target.open_space_id());
        let _ =
            jitnode_robot::message::webhook_usable_at(m.webhook_expires_at_ms(), 1_700_000_000_000);
    }
    if let Ok(c) = CardCallback::from_frame(&frame) {
        let _ = c.param("action");
    }
    let _ = Event::from_frame(&frame);
});
