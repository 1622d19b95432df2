//! What a robot implements to receive messages, card clicks and events, and the context it
//! answers through.
//!
//! Delivery contract (see `client`):
//! - A robot message is ACKed after [`Handler::accept_robot_message`] decides on it (by
//!   default at once) and before [`Handler::on_robot_message`] runs, which may take
//!   minutes. A handler that claims messages in a shared store decides there, so the ACK
//!   follows the claim; a refused message is left un-ACKed for the gateway to redeliver.
//! - Card callbacks are ACKed *after* the handler returns, because the ACK carries the card
//!   update; if the handler takes longer than `callback_timeout`, an empty response is
//!   ACKed and the handler keeps running.
//! - Events are ACKed after the handler with its [`EventStatus`] (same timeout rule; on
//!   timeout `LATER` is sent so the gateway retries, and the retry is deduplicated).
//! - A message id is handled once within the dedupe window; a handler returning an error (or
//!   panicking) lets a redelivery try again.
//! - At most `max_concurrent_handlers` run at once and `max_waiting_handlers` wait; beyond
//!   that the client stops reading until a slot frees. `Client::stop` cancels
//!   [`ReplyContext::shutdown`] and waits up to `stop_timeout` for running handlers.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::reply::{OpenApi, ReplyError, SessionWebhook};
use jitnode_dingtalk_wire::api::At;
use jitnode_dingtalk_wire::message::{CardCallback, Event, EventStatus, RobotMessage};

/// A boxed `Send` future, the return type of handler methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// This handler does not take that kind of frame: the ACK says 404.
    #[error("no handler for this topic")]
    NotHandled,
    /// The handler failed: ACK 500 where the ACK waits for it, and a redelivery may retry.
    #[error("{0}")]
    Failed(String),
    /// The frame's data cannot be acted on (e.g. a card callback naming an unknown action):
    /// ACK 400 where the ACK waits for it. Retrying the same data cannot help.
    #[error("{0}")]
    BadRequest(String),
}

impl HandlerError {
    pub fn failed(reason: impl std::fmt::Display) -> HandlerError {
        HandlerError::Failed(reason.to_string())
    }

    pub fn bad_request(reason: impl std::fmt::Display) -> HandlerError {
        HandlerError::BadRequest(reason.to_string())
    }
}

/// What a handler decides about a robot message before it is ACKed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    /// ACK it, then run [`Handler::on_robot_message`].
    Take,
    /// ACK it and do nothing more (e.g. another host holds its claim).
    Skip,
    /// Leave it un-ACKed so the gateway redelivers it, perhaps to another connection (e.g.
    /// the store that decides is unreachable). The reason is logged; the in-memory dedupe
    /// forgets the id so the redelivery is decided afresh.
    Refuse(String),
}

impl From<ReplyError> for HandlerError {
    fn from(e: ReplyError) -> HandlerError {
        HandlerError::Failed(e.to_string())
    }
}

/// The robot's side of the client. Methods borrow `self`; the client keeps the handler in
/// an `Arc` for as long as any call runs.
pub trait Handler: Send + Sync + 'static {
    /// Decides whether this connection takes `msg`; the ACK (or its absence) follows the
    /// decision. It holds a handler slot while it runs, so keep it short (one claim).
    fn accept_robot_message<'a>(&'a self, msg: &'a RobotMessage) -> BoxFuture<'a, Accept> {
        let _ = msg;
        Box::pin(async { Accept::Take })
    }

    fn on_robot_message(
        &self,
        msg: RobotMessage,
        ctx: ReplyContext,
    ) -> BoxFuture<'_, Result<(), HandlerError>>;

    /// Returns the `response` of the ACK (`{"cardData": ...}` to update the card, or Null).
    fn on_card_callback(
        &self,
        cb: CardCallback,
        replier: Replier,
    ) -> BoxFuture<'_, Result<Value, HandlerError>> {
        let _ = (cb, replier);
        Box::pin(async { Err(HandlerError::NotHandled) })
    }

    fn on_event(&self, event: Event) -> BoxFuture<'_, Result<EventStatus, HandlerError>> {
        let _ = event;
        Box::pin(async { Ok(EventStatus::Success) })
    }

    /// CALLBACK frames of other topics; the returned value is the ACK's `response`.
    fn on_callback(&self, topic: &str, data: Value) -> BoxFuture<'_, Result<Value, HandlerError>> {
        let _ = (topic, data);
        Box::pin(async { Err(HandlerError::NotHandled) })
    }
}

/// A handler of robot messages only, made of a function, the way `tower::service_fn`
/// makes a service: `Client::start(config, Arc::new(on_message(|msg, ctx| async move {
/// ctx.reply_text("hi").await?; Ok(()) })))`. Every other frame gets [`Handler`]'s default.
pub fn on_message<F, Fut>(f: F) -> OnMessage<F>
where
    F: Fn(RobotMessage, ReplyContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    OnMessage(f)
}

/// See [`on_message`].
pub struct OnMessage<F>(F);

impl<F, Fut> Handler for OnMessage<F>
where
    F: Fn(RobotMessage, ReplyContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn on_robot_message(
        &self,
        msg: RobotMessage,
        ctx: ReplyContext,
    ) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin((self.0)(msg, ctx))
    }
}

/// The reply APIs of one app: session webhooks and token-authenticated OpenAPI calls.
#[derive(Debug, Clone)]
pub struct Replier {
    pub webhook: SessionWebhook,
    pub openapi: OpenApi,
}

/// Where and how to answer one robot message. `Debug` hides the session key of the
/// webhook URL.
#[derive(Clone)]
pub struct ReplyContext {
    replier: Replier,
    session_webhook: String,
    at: Option<At>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for ReplyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyContext")
            .field("replier", &self.replier)
            .field(
                "session_webhook",
                &jitnode_dingtalk_wire::redacted_url(&self.session_webhook),
            )
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl ReplyContext {
    pub(crate) fn new(replier: Replier, msg: &RobotMessage, shutdown: CancellationToken) -> Self {
        // In groups the answer @s the asker (when they have a staffId: external users do not).
        let at = match (&msg.sender_staff_id, msg.is_group()) {
            (Some(id), true) if !id.is_empty() => Some(At::user(id.clone())),
            _ => None,
        };
        ReplyContext {
            replier,
            session_webhook: msg.session_webhook.clone(),
            at,
            shutdown,
        }
    }

    /// Text through the session webhook, @-ing the sender in groups.
    pub async fn reply_text(&self, content: &str) -> Result<(), ReplyError> {
        self.replier
            .webhook
            .send_text(&self.session_webhook, content, self.at.as_ref())
            .await
    }

    /// Markdown through the session webhook, @-ing the sender in groups.
    pub async fn reply_markdown(&self, title: &str, text: &str) -> Result<(), ReplyError> {
        self.replier
            .webhook
            .send_markdown(&self.session_webhook, title, text, self.at.as_ref())
            .await
    }

    pub fn replier(&self) -> &Replier {
        &self.replier
    }

    pub fn openapi(&self) -> &OpenApi {
        &self.replier.openapi
    }

    /// Whom a reply @s (the sender in groups).
    pub fn at(&self) -> Option<&At> {
        self.at.as_ref()
    }

    /// Cancelled when the client stops; long answers should finish their cards and return.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    fn replier() -> Replier {
        let http = reqwest::Client::new();
        Replier {
            webhook: SessionWebhook::new(http.clone(), vec!["oapi.dingtalk.com".into()]),
            openapi: OpenApi::new(http, &ClientConfig::new("id", "sec-ret")),
        }
    }

    #[tokio::test]
    async fn on_message_runs_the_function_and_leaves_other_frames_to_the_defaults() {
        let handler = on_message(|msg: RobotMessage, ctx: ReplyContext| async move {
            // What the function saw comes back in its error, for the test to read.
            Err(HandlerError::Failed(format!(
                "{} {}",
                msg.msg_id,
                ctx.at().is_some()
            )))
        });
        let msg = RobotMessage {
            msg_id: "msg-7".into(),
            ..RobotMessage::default()
        };
        let ctx = ReplyContext::new(replier(), &msg, CancellationToken::new());
        match handler.on_robot_message(msg, ctx).await {
            Err(HandlerError::Failed(seen)) => assert_eq!(seen, "msg-7 false"),
            other => panic!("{other:?}"),
        }
        let ev = handler.on_callback("/v1.0/other", Value::Null).await;
        assert!(matches!(ev, Err(HandlerError::NotHandled)), "{ev:?}");
    }

    #[test]
    fn debug_hides_the_session_key() {
        let replier = replier();
        let msg = RobotMessage {
            session_webhook:
                "https://user:pw@oapi.dingtalk.com/robot/sendBySession?session=KEY123#frag".into(),
            ..RobotMessage::default()
        };
        let cx = ReplyContext::new(replier, &msg, CancellationToken::new());
        for text in [format!("{cx:?}"), format!("{cx:#?}"), format!("{msg:?}")] {
            assert!(!text.contains("KEY123"), "{text}");
            assert!(!text.contains("pw@"), "{text}");
            assert!(!text.contains("sec-ret"), "{text}");
            assert!(
                text.contains("https://oapi.dingtalk.com/robot/sendBySession?<redacted>"),
                "{text}"
            );
        }
    }
}
