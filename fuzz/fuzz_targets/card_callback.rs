//! The `data` of a card callback frame, read by the stream crate (fields) and by the robot
//! (which button, on which record). An action that is read back must survive its own
//! button value.
#![no_main]

use jitnode_dingtalk_wire::frame::{Frame, FrameType, TOPIC_CARD_CALLBACK};
use jitnode_robot::callback::Action;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut frame = Frame::new(
        FrameType::Callback,
        TOPIC_CARD_CALLBACK,
        "fuzz-1",
        &serde_json::Value::Null,
    );
    frame.data = text.to_string();
    if let Ok(c) = jitnode_dingtalk_wire::CardCallback::from_frame(&frame) {
        let _ = (c.param("action"), c.param("record"));
        match Action::from_callback(&c) {
            Ok(action) => {
                let value = action.to_value_string();
                let back = Action::from_value_str(&value).expect("an action's own value parses");
                assert_eq!(back, action, "an action survives its button value");
                assert_eq!(Action::from_params(&action.to_params()), Ok(action));
            }
            Err(e) => {
                let _ = (e.to_string(), e.ack_code());
            }
        }
    }
    // A button value on its own, as `value` carries it.
    let _ = Action::from_value_str(text);
});
