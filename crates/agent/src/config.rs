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
    /// `None` = lexical retrieval only (no `embedding` section, or an empty
    /// `embedding.baseUrl`).
    pub embedding: Option<EmbeddingConfig>,
    pub memory: MemoryConfig,
    pub offline: OfflineConfig,
}

/// An API key. It is a secret: its Debug output shows only that one is set.
#[derive(Clone, PartialEq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// `None` for an empty rendered key (e.g. from `{{LLM_API_KEY:-}}`).
    fn from_rendered(key: String) -> Option<ApiKey> {
        (!key.is_empty()).then_some(ApiKey(key))
    }

    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt("<redacted>", f)
    }
}

/// OpenAI-compatible endpoint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL without the `/chat/completions` suffix.
    pub base_url: String,
    pub model: String,
    /// `None` when the rendered key is empty (e.g. from `{{LLM_API_KEY:-}}`).
    pub api_key: Option<ApiKey>,
    pub temperature: Option<f64>,
    /// Limit for one whole run (request, stream, all tokens).
    pub timeout: Duration,
}

/// Retrieval settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalConfig {
    /// Passages handed to the answer (`topK`).
    pub top_k: usize,
    /// Minimum relevance in 0..=1 (`threshold`): the calibrated probability that a passage
    /// answers the question (see the gate in `knowledge.rs`). Below it a passage is not
    /// used.
    pub threshold: f64,
    /// Passages scoring below this share of the best passage's score are not used
    /// (`relative`, 0..=1).
    pub relative: f64,
    /// With an LLM, the minimum relevance instead of `threshold` (`llmThreshold`, capped at
    /// `threshold`): a weak match still reaches the model, which is told so and says "not
    /// covered" itself when the passages do not answer. Without an LLM a weak match would
    /// be quoted as it stands, so there `threshold` holds.
    pub llm_threshold: f64,
}

/// OpenAI-compatible embeddings endpoint settings (`embedding` section).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingConfig {
    /// Base URL without the `/embeddings` suffix.
    pub base_url: String,
    pub model: String,
    /// `None` when the rendered key is empty.
    pub api_key: Option<ApiKey>,
    /// Limit for one batch request while indexing (`timeoutSecs`).
    pub timeout: Duration,
    /// Limit for embedding a question (`queryTimeoutMs`); past it the question is answered
    /// from lexical retrieval alone.
    pub query_timeout: Duration,
    /// Least cosine similarity for a passage found by vectors (`minSimilarity`).
    pub min_similarity: f64,
    /// Passages per request (`batchSize`).
    pub batch_size: usize,
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
            threshold: 0.55,
            relative: 0.5,
            llm_threshold: 0.35,
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
            embedding: None,
            memory: MemoryConfig::default(),
            offline: OfflineConfig::default(),
        }
    }
}

/// The schema of an agent instance's config.json: shapes, ranges and defaults. Unknown
/// fields are errors (a typo must not fall back to a default).
pub fn config_schema() -> Arc<ConfigSchema> {
    static SCHEMA: OnceLock<Arc<ConfigSchema>> = OnceLock::new();
    ConfigSchema::built_in(&SCHEMA, "agent", schema_json)
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
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.55,
                                  "description": "Minimum relevance in 0..1: the calibrated probability that a passage answers the question."},
                    "relative": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                                 "description": "Passages scoring below this share of the best one are not used."},
                    "llmThreshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.35,
                                     "description": "With an LLM, the minimum relevance instead of threshold (capped at threshold): weak matches reach the model, which says when they do not answer."}
                }
            },
            "embedding": {
                "type": "object",
                "default": {},
                "additionalProperties": false,
                "description": "OpenAI-compatible /embeddings endpoint for hybrid retrieval; lexical only when baseUrl is empty.",
                "properties": {
                    "baseUrl": {
                        "type": "string",
                        "default": "",
                        "description": "Base URL without /embeddings; empty = lexical retrieval only.",
                        "allOf": [{"pattern": "^\\s*(https?://\\S+)?\\s*$",
                                   "x-expected": "expected empty or an http:// or https:// URL"}]
                    },
                    "model": {"type": "string", "default": "", "description": "Embedding model name; required when baseUrl is set."},
                    "apiKey": {"type": "string", "writeOnly": true, "default": "",
                               "description": "Bearer key; empty = none."},
                    "timeoutSecs": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                                    "default": 30, "description": "Limit for one batch request while indexing, in seconds."},
                    "queryTimeoutMs": count(1500, 1, "Limit for embedding a question; past it the answer uses lexical retrieval."),
                    "minSimilarity": {"type": "number", "minimum": -1, "maximum": 1, "default": 0.75,
                                      "description": "Least cosine similarity for a passage found by vectors."},
                    "batchSize": count(32, 1, "Passages per embeddings request.")
                },
                "allOf": [{
                    "if": {"required": ["baseUrl"], "properties": {"baseUrl": {"pattern": "\\S"}}},
                    "then": {
                        "properties": {"model": {"pattern": "\\S",
                                                 "x-expected": "must not be blank when embedding.baseUrl is set"}}
                    }
                }]
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
    embedding: RawEmbedding,
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
    relative: f64,
    llm_threshold: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEmbedding {
    base_url: String,
    model: String,
    api_key: String,
    timeout_secs: f64,
    query_timeout_ms: f64,
    min_similarity: f64,
    batch_size: f64,
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
            api_key: ApiKey::from_rendered(raw.llm.api_key),
            temperature: raw.llm.temperature,
            timeout: Duration::from_secs_f64(raw.llm.timeout_secs),
        });
        let e = raw.embedding;
        let base_url = e.base_url.trim().trim_end_matches('/').to_string();
        let embedding = (!base_url.is_empty()).then(|| EmbeddingConfig {
            base_url,
            model: e.model,
            api_key: ApiKey::from_rendered(e.api_key),
            timeout: Duration::from_secs_f64(e.timeout_secs),
            query_timeout: Duration::from_millis(e.query_timeout_ms as u64),
            min_similarity: e.min_similarity,
            batch_size: e.batch_size as usize,
        });
        Ok(AgentConfig {
            knowledge: raw.knowledge,
            system_prompt: raw.system_prompt.filter(|s| !s.trim().is_empty()),
            prompt_file: raw.prompt_file,
            llm,
            retrieval: RetrievalConfig {
                top_k: raw.retrieval.top_k as usize,
                threshold: raw.retrieval.threshold,
                relative: raw.retrieval.relative,
                // Never stricter with an LLM than without one.
                llm_threshold: raw.retrieval.llm_threshold.min(raw.retrieval.threshold),
            },
            embedding,
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
        let c = AgentConfig::from_value(&json!({"retrieval": {"threshold": 0.3}})).unwrap();
        assert_eq!(c.retrieval.llm_threshold, 0.3, "never stricter with an LLM");
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
        // The embedding key is the same type.
        let c = AgentConfig::from_value(&json!({"embedding": {
            "baseUrl": "http://x", "model": "m", "apiKey": "sk-EMBED"
        }}))
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("sk-EMBED"), "{d}");
        assert!(d.contains("api_key: Some(\"<redacted>\")"), "{d}");
    }
}
