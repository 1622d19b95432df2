//! DingTalk Stream mode: the wire frames as plain values, the client that keeps a connection
//! to the gateway, and the reply APIs a robot answers with (session webhook, access token,
//! cards, AI card streaming).
//!
//! Not for: elements, robots' business logic, or playing DingTalk's side (that is
//! `jitnode-sandbox`). `frame` does no I/O so both sides can share it.
//!
//! Start with [`Client::start`] and a [`Handler`]; answer through [`ReplyContext`] or the
//! [`Replier`] (see `handler` for when each kind of frame is ACKed).

pub mod client;
pub mod config;
pub mod dedupe;
pub mod frame;
pub mod handler;
pub mod message;
pub mod reply;

pub use client::{Client, ConnectError, StatsSnapshot, Status};
pub use config::{origin_of, BackoffConfig, ClientConfig, KeepaliveConfig, Secret, Subscription};
pub use handler::{BoxFuture, Handler, HandlerError, Replier, ReplyContext};
pub use message::{CardCallback, ConversationType, Event, EventStatus, MessageBody, RobotMessage};
pub use reply::{redacted_url, At, CardTarget, OpenApi, ReplyError, SessionWebhook};
