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

/// `Debug` by hand for a type that holds secrets, with the redaction in one place:
/// `debug_redacted!(T { a, b } secret { token })` shows `a` and `b` as they are and each
/// optional secret only as whether it is set (`Some("<redacted>")` or `None`);
/// `debug_redacted!(T { a } ..)` shows `a` and leaves every other field out (`T { a: .., .. }`).
#[macro_export]
macro_rules! debug_redacted {
    ($ty:ident { $($shown:ident),* $(,)? } ..) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    .finish_non_exhaustive()
            }
        }
    };
    ($ty:ident { $($shown:ident),* $(,)? } secret { $($secret:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($secret), &self.$secret.as_ref().map(|_| "<redacted>")))*
                    .finish()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)] // Only read through Debug.
    struct Login {
        user: String,
        password: Option<String>,
        key: Option<String>,
    }
    debug_redacted!(Login { user } secret { password, key });

    #[allow(dead_code)] // Only read through Debug.
    struct Token {
        expires: u64,
        token: String,
    }
    debug_redacted!(Token { expires }..);

    #[test]
    fn debug_redacted_shows_whether_a_secret_is_set_never_its_value() {
        let login = Login {
            user: "ann".into(),
            password: Some("hunter2".into()),
            key: None,
        };
        assert_eq!(
            format!("{login:?}"),
            r#"Login { user: "ann", password: Some("<redacted>"), key: None }"#
        );
        let token = Token {
            expires: 7200,
            token: "t0ken".into(),
        };
        assert_eq!(format!("{token:?}"), "Token { expires: 7200, .. }");
    }

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
