//! Fixtures shared by the workspace's tests (a dev-dependency only; `publish = false`).
//!
//! - [`llm`]: an OpenAI-compatible stand-in on loopback that records each request and
//!   answers it the way a test scripts (SSE streams, cut-offs, HTTP errors);
//! - [`demo`]: private copies of the repository's demo app;
//! - [`drive`]: what the multi-process benches share (seeded faults, the tally of answers
//!   read from the sandbox's transcript);
//! - [`webdriver`]: a small WebDriver client, to drive a real headless Chromium;
//! - [`postgres`]: a throwaway PostgreSQL cluster on a loopback port (initdb + postgres);
//! - [`robot`]: an app directory with the robot family and instances pointed at a
//!   sandbox, and a wait on the sandbox's transcript;
//! - [`stream`]: a counting robot handler, a quick-reconnecting client config and a polled
//!   wait, for the Stream client's tests.

pub mod demo;
pub mod drive;
pub mod llm;
pub mod postgres;
pub mod robot;
pub mod stream;
pub mod webdriver;
