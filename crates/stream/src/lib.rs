//! DingTalk Stream mode: the wire frames as plain values, the client that keeps a connection
//! to the gateway, and the reply APIs a robot answers with (session webhook, access token,
//! cards, AI card streaming).
//!
//! Not for: elements, robots' business logic, or playing DingTalk's side (that is
//! `jitnode-sandbox`). `frame` does no I/O so both sides can share it.

pub mod frame;
