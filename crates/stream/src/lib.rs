//! DingTalk Stream mode: the client that keeps a connection to the gateway (ACKs, redelivery
//! dedupe), and the reply APIs a robot answers with over HTTP (session webhook, access
//! token, cards, AI card streaming).
//!
//! Not for: the wire shapes themselves (frames, messages, bodies: `jitnode-dingtalk-wire`,
//! which this crate speaks), elements, robots' business logic, or playing DingTalk's side
//! (that is `jitnode-sandbox`).
//!
//! Start with [`Client::start`] and a [`Handler`]; answer through [`ReplyContext`] or the
//! [`Replier`] (see `handler` for when each kind of frame is ACKed).

pub mod client;
pub mod config;
pub mod dedupe;
pub mod handler;
pub mod reply;

pub use client::{Client, ConnectError, StatsSnapshot, Status};
pub use config::{origin_of, BackoffConfig, ClientConfig, KeepaliveConfig, Secret, Subscription};
pub use handler::{on_message, Accept, BoxFuture, Handler, HandlerError, Replier, ReplyContext};
pub use reply::{OpenApi, ReplyError, SessionWebhook};
