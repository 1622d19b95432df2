//! DingTalk's wire format as plain values: Stream frames and ACKs, the robot message and
//! card callback they carry, and the OpenAPI paths and bodies a robot answers with.
//!
//! No I/O and no clients. The Stream client (`jitnode-stream`), the robot
//! (`jitnode-robot`), the sandbox playing DingTalk's side (`jitnode-sandbox`) and the CLI
//! all read and write these types, so a change to the wire shows in one place. The
//! committed fixtures under `tests/fixtures/` round-trip through them.
//!
//! - [`frame`]: frames, topics and ACKs;
//! - [`message`]: the decoded `data` of robot messages, card callbacks and events;
//! - [`api`]: paths, request/response bodies, and the closed sets ([`api::FlowStatus`],
//!   [`api::CardKind`], [`api::CallKind`]);
//! - [`refusal`]: what DingTalk's error answers mean ([`refusal::Refusal`]), read from their
//!   real bodies.
//!
//! Which fields are required and where each shape comes from (with sources):
//! `docs/wire-messages.md` (messages, webhooks, cards, the callback response),
//! `docs/wire-ai-card.md` (the public AI card and its clicks), `docs/wire-refusals.md`.

pub mod api;
pub mod frame;
pub mod message;
pub mod refusal;

pub use api::{CallKind, CardKind, CardTarget, FlowStatus, Mention, Method, ParamMap};
pub use frame::{Ack, Frame, FrameError, FrameType};
pub use message::{
    AtUser, CardCallback, CardPrivateData, ConversationType, Event, EventStatus, MessageBody,
    ParseError, RobotMessage,
};
pub use refusal::{Permission, Refusal};

/// A URL for Debug output and logs: scheme, host, port and path, without userinfo, query
/// or fragment (where session keys and tokens travel).
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let origin = u.origin().ascii_serialization();
            let hidden = if u.query().is_some() || u.fragment().is_some() {
                "?<redacted>"
            } else {
                ""
            };
            format!("{origin}{}{hidden}", u.path())
        }
        Err(_) if raw.is_empty() => String::new(),
        Err(_) => "<not a URL, redacted>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_only_origin_and_path() {
        for (raw, shown) in [
            (
                "https://u:p@oapi.dingtalk.com/robot/sendBySession?session=k#f",
                "https://oapi.dingtalk.com/robot/sendBySession?<redacted>",
            ),
            ("http://127.0.0.1:8917", "http://127.0.0.1:8917/"),
            ("https://api.dingtalk.com/", "https://api.dingtalk.com/"),
            ("", ""),
            ("token-without-scheme", "<not a URL, redacted>"),
        ] {
            assert_eq!(redacted_url(raw), shown, "{raw}");
        }
    }
}
