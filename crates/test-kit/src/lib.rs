//! Fixtures shared by the workspace's tests (a dev-dependency only; `publish = false`).
//!
//! - [`llm`]: an OpenAI-compatible stand-in on loopback that records each request and
//!   answers it the way a test scripts (SSE streams, cut-offs, HTTP errors).

pub mod llm;
