//! Typed errors of the agent: each names the file, field or upstream a person needs.

use std::path::PathBuf;

/// Everything that can go wrong loading or running an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The instance configuration is invalid; `field` is the dotted path in config.json.
    #[error("config.json: field `{field}`: {reason}")]
    Config { field: String, reason: String },

    /// A knowledge or prompt file could not be read.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },

    /// The arguments of `run` are invalid (e.g. missing `question`).
    #[error("run arguments: field `{field}`: {reason}")]
    Args { field: String, reason: String },

    /// The LLM endpoint failed; no partial answer is returned as complete.
    #[error("LLM request failed: {0}")]
    Llm(#[from] LlmError),

    /// The embeddings endpoint could not be set up.
    #[error("embeddings: {0}")]
    Embedding(#[from] crate::embed::EmbedError),

    /// The run exceeded `llm.timeoutSecs`.
    #[error("LLM did not finish within {secs} s")]
    Timeout { secs: u64 },

    /// The caller cancelled the run.
    #[error("run cancelled")]
    Cancelled,
}

/// Failures of the OpenAI-compatible streaming call.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Connecting or reading the response failed (the URL is given without query or credentials).
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },

    /// The endpoint answered with an HTTP error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },

    /// An SSE event could not be understood.
    #[error("malformed stream event: {reason}: {event}")]
    Malformed { reason: String, event: String },

    /// The endpoint reported an error inside the stream.
    #[error("error event from the endpoint: {0}")]
    Upstream(String),

    /// The stream ended without `[DONE]` or a `finish_reason`.
    #[error("stream ended before the answer was complete ({received} characters received)")]
    Incomplete { received: usize },
}
