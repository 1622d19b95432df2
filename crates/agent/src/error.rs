//! Typed errors of the agent: each names the file, field or upstream a person needs.

use std::path::PathBuf;

/// Everything that can go wrong loading or running an agent. `Debug` and `Display` of a
/// [`AgentError::Config`] name the field but never the value found there.
#[derive(thiserror::Error)]
pub enum AgentError {
    /// The instance configuration is invalid; `field` is the dotted path in config.json.
    /// `reason` says what is expected; a value quoted in it (or following ", got ") is
    /// left out when shown, since a secret may sit in the wrong field.
    #[error("config.json: field `{field}`: {}", without_values(.reason))]
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

impl std::fmt::Debug for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Config { field, reason } => f
                .debug_struct("Config")
                .field("field", field)
                .field("reason", &without_values(reason))
                .finish(),
            AgentError::File { path, reason } => f
                .debug_struct("File")
                .field("path", path)
                .field("reason", reason)
                .finish(),
            AgentError::Args { field, reason } => f
                .debug_struct("Args")
                .field("field", field)
                .field("reason", reason)
                .finish(),
            AgentError::Llm(e) => f.debug_tuple("Llm").field(e).finish(),
            AgentError::Embedding(e) => f.debug_tuple("Embedding").field(e).finish(),
            AgentError::Timeout { secs } => f.debug_struct("Timeout").field("secs", secs).finish(),
            AgentError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// A config reason without the values it may quote: everything from ", got " on, and the
/// inside of any `"..."`, are dropped.
fn without_values(reason: &str) -> String {
    let head = reason.split(", got ").next().unwrap_or(reason);
    let mut out = String::with_capacity(head.len());
    let mut quoted = false;
    for c in head.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
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

    /// The answer (with its reasoning) grew past the client's limit; the stream was cut.
    #[error("the answer grew past {limit} bytes; stopped reading")]
    TooLong { limit: usize },

    /// The stream ended without `[DONE]` or a `finish_reason`.
    #[error("stream ended before the answer was complete ({received} characters received)")]
    Incomplete { received: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field_not_the_value() {
        let e = AgentError::Config {
            field: "llm.temperature".into(),
            reason: "expected a number, got \"sk-live-123\"".into(),
        };
        let (shown, debug) = (e.to_string(), format!("{e:?}"));
        assert_eq!(
            shown,
            "config.json: field `llm.temperature`: expected a number"
        );
        assert!(!debug.contains("sk-live-123"), "{debug}");
        assert!(debug.contains("llm.temperature"), "{debug}");
        let e = AgentError::Config {
            field: "knowledge".into(),
            reason: "path \"/home/u/.aws/credentials\" is outside".into(),
        };
        assert_eq!(
            e.to_string(),
            "config.json: field `knowledge`: path \"…\" is outside"
        );
        // Reasons without values are shown whole.
        let e = AgentError::Config {
            field: "llm.model".into(),
            reason: "required when llm.baseUrl is set".into(),
        };
        assert!(e.to_string().ends_with("required when llm.baseUrl is set"));
    }

    #[test]
    fn config_parse_errors_do_not_echo_secrets() {
        for llm in [
            serde_json::json!({"baseUrl": "http://127.0.0.1:9", "model": "m", "temperature": "sk-abc-SECRET"}),
            serde_json::json!({"baseUrl": "http://127.0.0.1:9", "model": "m", "timeoutSecs": "sk-abc-SECRET"}),
        ] {
            let e = crate::config::AgentConfig::from_value(&serde_json::json!({"llm": llm}))
                .unwrap_err();
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains("SECRET"), "{text}");
                assert!(text.contains("llm."), "{text}");
            }
        }
        let e = crate::config::AgentConfig::from_value(
            &serde_json::json!({"knowledge": "/etc/SECRET-path"}),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
}
