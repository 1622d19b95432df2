//! The logic of the built-in DingTalk robot Type, `imRobots.dingTalkStreamType`: everything
//! between "a robot message or card click arrived" and "these cards and records result",
//! as self-contained building blocks.
//!
//! - [`config`]: the instance's rendered `config.json`, checked, with defaults.
//! - [`message`]: the question, chat id, reply target and @-mention, read straight from the
//!   typed robot message ([`message::Incoming`]).
//! - [`cards`]: the standard card JSON and the template-card parameter maps and bodies.
//! - [`callback`]: button values and card callbacks, read back into [`callback::Action`]s.
//! - [`reply`]: each step of an answer's card as card API calls (either mode), and the
//!   session-webhook text / markdown bodies.
//! - [`throttle`]: the card update scheduler of one streamed answer.
//! - [`records`]: answers and feedback in the store (`jitnode-store`), with CSV / JSON
//!   export.
//! - [`texts`]: the sentences the robot writes itself, per language.
//! - [`refusal`]: each refusal of a real account (missing permission, unpublished template
//!   or robot, rate limit, bad credentials, expired webhook) as one sentence naming the
//!   element, the config field and the fix, said once per instance.
//!
//! - [`loader`]: the `builtin:dingTalkStream` loader ([`loader()`]) that runs each robot
//!   instance: its own Stream connection, the message and card-click handler (`robot`),
//!   records on the process store or the app's own in `<app>/data/`, and a stop that finalizes running answers' cards.
//!
//! Not here: the Stream connection, ACKs, redelivery dedupe and the HTTP reply APIs
//! (`jitnode-stream`); the agent (called only through the host by its fullName); element
//! loading in general (`jitnode-host`).

pub mod callback;
pub mod cards;
pub mod config;
pub mod loader;
pub mod message;
pub mod records;
pub mod refusal;
pub mod regen;
pub mod reply;
mod robot;
pub mod texts;
pub mod throttle;

pub use loader::{loader, DingTalkStreamLoader, LOADER_NAME};
pub use robot::{answer_text, ANSWER_CHUNK_TYPE};
