//! `AgentConfig`: the instance's rendered config.json. Its shape, ranges and defaults are
//! the JSON Schema of [`config_schema`] (which the host checks before loading, and
//! `jitnode check` reports against); what passes is deserialized as is.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jitnode_host::ConfigSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::AgentError;

/// Prompt used when neither `systemPrompt` nor a prompt file is given.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a customer-service assistant. Answer only from the \
knowledge passages provided. If they do not cover the question, say so plainly and do not guess. \
Answer in the language of the question.";

/// Parsed configuration of one agent instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Knowledge folder, relative to the element folder (`knowledge` by default).
    pub knowledge: PathBuf,
    /// Inline system prompt (`systemPrompt`); wins over `promptFile`.
    pub system_prompt: Option<String>,
    /// Prompt file relative to the element folder (`promptFile`, default `prompt.md`, optional).
    pub prompt_file: PathBuf,
    /// `None` = offline mode (no `llm` section, or an empty `llm.baseUrl`).
    pub llm: Option<LlmConfig>,
    pub retrieval: RetrievalConfig,
    pub memory: MemoryConfig,
    pub offline: OfflineConfig,
}

/// OpenAI-compatible endpoint settings.
#[derive(Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL without the `/chat/completions` suffix.
    pub base_url: String,
    pub model: String,
    /// `None` when the rendered key is empty (e.g. from `{{LLM_API_KEY:-}}`).
    pub api_key: Option<String>,
    pub temperature: Option<f64>,
    /// Limit for one whole run (request, stream, all tokens).
    pub timeout: Duration,
}

impl fmt::Debug for LlmConfig {
    // The key is a secret: show only whether one is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Retrieval settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalConfig {
    /// Passages handed to the answer (`topK`).
    pub top_k: usize,
    /// Minimum relevance in 0..=1: the share of the question's term weight found in a
    /// passage (`threshold`). Below it a passage is not used.
    pub threshold: f64,
}

/// Conversation memory bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Question/answer turns kept per chat id (`turnsPerChat`); 0 disables memory.
    pub turns_per_chat: usize,
    /// Chats kept in total (`maxChats`); the least recently used is dropped first.
    pub max_chats: usize,
}

/// Pace of the streamed offline answer.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineConfig {
    /// Approximate characters per chunk (`chunkChars`).
    pub chunk_chars: usize,
    /// Pause between chunks (`chunkDelayMs`).
    pub chunk_delay: Duration,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            top_k: 3,
            threshold: 0.45,
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            turns_per_chat: 6,
            max_chats: 1000,
        }
    }
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            chunk_chars: 24,
            chunk_delay: Duration::from_millis(40),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            knowledge: PathBuf::from("knowledge"),
            system_prompt: None,
            prompt_file: PathBuf::from("prompt.md"),
            llm: None,
            retrieval: RetrievalConfig::default(),
            memory: MemoryConfig::default(),
            offline: OfflineConfig::default(),
        }
    }
}

/// The schema of an agent instance's config.json: shapes, ranges and defaults. Unknown
/// fields are errors (a typo must not fall back to a default).
pub fn config_schema() -> Arc<ConfigSchema> {
    static SCHEMA: OnceLock<Arc<ConfigSchema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(ConfigSchema::new(schema_json()).expect("the agent schema is valid (tested)"))
        })
        .clone()
}

/// A path inside the element folder: relative, without `..`.
fn relative_path(default: &str, description: &str) -> Value {
    json!({
        "type": "string",
        "default": default,
        "description": description,
        "allOf": [{
            "minLength": 1,
            "not": {"pattern": "(^/|^[A-Za-z]:|(^|[/\\\\])\\.\\.([/\\\\]|$))"},
            "x-expected": "expected a relative path inside the element folder"
        }]
    })
}

fn count(default: u64, min: u64, description: &str) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": 1_000_000_000u64,
           "default": default, "description": description})
}

fn schema_json() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "knowledge": relative_path("knowledge", "Knowledge folder, relative to the element folder."),
            "systemPrompt": {"type": "string", "description": "Inline system prompt; wins over promptFile."},
            "promptFile": relative_path("prompt.md", "Prompt file relative to the element folder (optional file)."),
            "llm": {
                "type": "object",
                "default": {},
                "additionalProperties": false,
                "description": "OpenAI-compatible endpoint; offline (quoting passages) when baseUrl is empty.",
                "properties": {
                    "baseUrl": {
                        "type": "string",
                        "default": "",
                        "description": "Base URL without /chat/completions; empty = offline.",
                        "allOf": [{"pattern": "^\\s*(https?://\\S+)?\\s*$",
                                   "x-expected": "expected empty (offline) or an http:// or https:// URL"}]
                    },
                    "model": {"type": "string", "description": "Model name; required when baseUrl is set."},
                    "apiKey": {"type": "string", "writeOnly": true, "default": "",
                               "description": "Bearer key; empty = none."},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2,
                                    "description": "Sampling temperature (0 to 2)."},
                    "timeoutSecs": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                                    "default": 60, "description": "Limit for one whole run, in seconds."}
                },
                "allOf": [{
                    "if": {"required": ["baseUrl"], "properties": {"baseUrl": {"pattern": "\\S"}}},
                    "then": {
                        "required": ["model"],
                        "x-expected": "is required when llm.baseUrl is set",
                        "properties": {"model": {"pattern": "\\S",
                                                 "x-expected": "must not be blank when llm.baseUrl is set"}}
                    }
                }]
            },
            "retrieval": {
                "type": "object",
                "default": {},
                "additionalProperties": false,
                "properties": {
                    "topK": count(3, 1, "Passages handed to the answer."),
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.45,
                                  "description": "Minimum relevance in 0..1 (share of the question's term weight found in a passage)."}
                }
            },
            "memory": {
                "type": "object",
                "default": {},
                "additionalProperties": false,
                "properties": {
                    "turnsPerChat": count(6, 0, "Question/answer turns kept per chat id; 0 disables memory."),
                    "maxChats": count(1000, 1, "Chats kept in total; the least recently used is dropped first.")
                }
            },
            "offline": {
                "type": "object",
                "default": {},
                "additionalProperties": false,
                "properties": {
                    "chunkChars": count(24, 1, "Approximate characters per streamed chunk."),
                    "chunkDelayMs": count(40, 0, "Pause between chunks, in milliseconds.")
                }
            }
        }
    })
}

/// The config as the schema vouched for it (defaults filled in). Counts are read as
/// numbers: JSON Schema's integers include `3.0`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    knowledge: PathBuf,
    system_prompt: Option<String>,
    prompt_file: PathBuf,
    llm: RawLlm,
    retrieval: RawRetrieval,
    memory: RawMemory,
    offline: RawOffline,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLlm {
    base_url: String,
    model: Option<String>,
    api_key: String,
    temperature: Option<f64>,
    timeout_secs: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRetrieval {
    top_k: f64,
    threshold: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMemory {
    turns_per_chat: f64,
    max_chats: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOffline {
    chunk_chars: f64,
    chunk_delay_ms: f64,
}

impl AgentConfig {
    /// Checks the rendered config.json value against [`config_schema`] and reads it.
    /// Unknown fields, wrong types and out-of-range values are errors naming the field.
    pub fn from_value(value: &Value) -> Result<AgentConfig, AgentError> {
        let checked = config_schema().apply(Some(value)).map_err(|v| {
            let first = &v[0];
            let more = match v.len() {
                1 => String::new(),
                n => format!(
                    " (and {} more problem{})",
                    n - 1,
                    if n == 2 { "" } else { "s" }
                ),
            };
            AgentError::Config {
                field: first.field.clone(),
                reason: format!("{}{more}", first.expected),
            }
        })?;
        let raw: Raw = serde_json::from_value(checked).map_err(|e| AgentError::Config {
            field: "(root)".into(),
            reason: e.to_string(),
        })?;
        let base_url = raw.llm.base_url.trim().trim_end_matches('/').to_string();
        let llm = (!base_url.is_empty()).then(|| LlmConfig {
            base_url,
            model: raw.llm.model.unwrap_or_default(),
            api_key: Some(raw.llm.api_key).filter(|k| !k.is_empty()),
            temperature: raw.llm.temperature,
            timeout: Duration::from_secs_f64(raw.llm.timeout_secs),
        });
        Ok(AgentConfig {
            knowledge: raw.knowledge,
            system_prompt: raw.system_prompt.filter(|s| !s.trim().is_empty()),
            prompt_file: raw.prompt_file,
            llm,
            retrieval: RetrievalConfig {
                top_k: raw.retrieval.top_k as usize,
                threshold: raw.retrieval.threshold,
            },
            memory: MemoryConfig {
                turns_per_chat: raw.memory.turns_per_chat as usize,
                max_chats: raw.memory.max_chats as usize,
            },
            offline: OfflineConfig {
                chunk_chars: raw.offline.chunk_chars as usize,
                chunk_delay: Duration::from_millis(raw.offline.chunk_delay_ms as u64),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_base_url_is_offline_and_empty_key_is_none() {
        let c = AgentConfig::from_value(&json!({"llm": {"baseUrl": "", "model": "m"}})).unwrap();
        assert!(c.llm.is_none());
        let c = AgentConfig::from_value(
            &json!({"llm": {"baseUrl": "http://x/v1/", "model": "m", "apiKey": ""}}),
        )
        .unwrap();
        let llm = c.llm.unwrap();
        assert_eq!(llm.base_url, "http://x/v1");
        assert!(llm.api_key.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let e = AgentConfig::from_value(&json!({"retrieval": {"topK": "many"}})).unwrap_err();
        assert!(e.to_string().contains("retrieval.topK"), "{e}");
        let e = AgentConfig::from_value(&json!({"llm": {"baseUrl": "http://x"}})).unwrap_err();
        assert!(e.to_string().contains("llm.model"), "{e}");
        let e = AgentConfig::from_value(&json!({"knowledge": "../etc"})).unwrap_err();
        assert!(e.to_string().contains("knowledge"), "{e}");
        let e = AgentConfig::from_value(&json!({"retrieval": {"threshold": 3}})).unwrap_err();
        assert!(e.to_string().contains("retrieval.threshold"), "{e}");
    }

    #[test]
    fn defaults_come_from_the_schema_and_unknown_fields_are_errors() {
        assert_eq!(
            AgentConfig::from_value(&json!({})).unwrap(),
            AgentConfig::default()
        );
        let e = AgentConfig::from_value(&json!({"retrieval": {"topk": 2}})).unwrap_err();
        assert!(e.to_string().contains("retrieval.topk"), "{e}");
        assert!(e.to_string().contains("unknown field"), "{e}");
        let c = AgentConfig::from_value(&json!({"retrieval": {"topK": "5"}})).unwrap();
        assert_eq!(c.retrieval.top_k, 5);
    }

    #[test]
    fn api_key_is_redacted_in_debug() {
        let c = AgentConfig::from_value(
            &json!({"llm": {"baseUrl": "http://x", "model": "m", "apiKey": "sk-SECRET"}}),
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("sk-SECRET"), "{d}");
        assert!(d.contains("redacted"));
    }
}
