//! `AgentConfig`: the instance's rendered config.json, parsed by hand so that every error
//! names the dotted field path.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

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

/// OpenAI-compatible embeddings endpoint settings (`embedding` section).
#[derive(Clone, PartialEq)]
pub struct EmbeddingConfig {
    /// Base URL without the `/embeddings` suffix.
    pub base_url: String,
    pub model: String,
    /// `None` when the rendered key is empty.
    pub api_key: Option<String>,
    /// Limit for one batch request while indexing (`timeoutSecs`, default 30).
    pub timeout: Duration,
    /// Limit for embedding a question (`queryTimeoutMs`, default 1500); past it the
    /// question is answered from lexical retrieval alone.
    pub query_timeout: Duration,
    /// Least cosine similarity for a passage found by vectors alone (`minSimilarity`,
    /// default 0.75).
    pub min_similarity: f64,
    /// Passages per request (`batchSize`, default 32).
    pub batch_size: usize,
}

impl fmt::Debug for EmbeddingConfig {
    // The key is a secret: show only whether one is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("query_timeout", &self.query_timeout)
            .field("min_similarity", &self.min_similarity)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Retrieval settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalConfig {
    /// Passages handed to the answer (`topK`).
    pub top_k: usize,
    /// Minimum relevance in 0..=1 (`threshold`): the share of the question's term weight a
    /// passage covers, tempered by how much evidence the match carries. Below it a
    /// passage is not used.
    pub threshold: f64,
    /// Passages scoring below this share of the best passage's score are not used
    /// (`relative`, 0..=1).
    pub relative: f64,
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
            threshold: 0.4,
            relative: 0.5,
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

fn err(field: &str, reason: impl Into<String>) -> AgentError {
    AgentError::Config {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn section<'a>(
    root: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, AgentError> {
    match root.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(err(name, "expected an object")),
    }
}

fn string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, AgentError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(path, "expected a string")),
    }
}

fn number(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, AgentError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| err(path, "not a finite number")),
        // Templates render into strings; accept "0.3" as well as 0.3.
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| err(path, format!("expected a number, got {s:?}"))),
        Some(_) => Err(err(path, "expected a number")),
    }
}

fn count(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    min: usize,
) -> Result<Option<usize>, AgentError> {
    let Some(n) = number(obj, key, path)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || n < min as f64 || n > 1e9 {
        return Err(err(
            path,
            format!("expected a whole number >= {min}, got {n}"),
        ));
    }
    Ok(Some(n as usize))
}

fn relative_path(s: &str, path: &str) -> Result<PathBuf, AgentError> {
    let p = Path::new(s);
    if s.is_empty() {
        return Err(err(path, "must not be empty"));
    }
    // Files are read from inside the element folder only.
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(err(
            path,
            format!("must be a relative path inside the element folder, got {s:?}"),
        ));
    }
    Ok(p.to_path_buf())
}

fn http_base_url(obj: &Map<String, Value>, path: &str) -> Result<String, AgentError> {
    let base_url = string(obj, "baseUrl", path)?.unwrap_or_default();
    let base_url = base_url.trim().trim_end_matches('/').to_string();
    if !base_url.is_empty()
        && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
    {
        return Err(err(path, "must start with http:// or https://"));
    }
    Ok(base_url)
}

fn embedding(e: &Map<String, Value>) -> Result<Option<EmbeddingConfig>, AgentError> {
    let base_url = http_base_url(e, "embedding.baseUrl")?;
    if base_url.is_empty() {
        return Ok(None);
    }
    let model = string(e, "model", "embedding.model")?
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| err("embedding.model", "required when embedding.baseUrl is set"))?;
    let api_key = string(e, "apiKey", "embedding.apiKey")?.filter(|k| !k.is_empty());
    let timeout = number(e, "timeoutSecs", "embedding.timeoutSecs")?.unwrap_or(30.0);
    if !(timeout > 0.0 && timeout <= 3600.0) {
        return Err(err(
            "embedding.timeoutSecs",
            format!("must be in (0, 3600], got {timeout}"),
        ));
    }
    let query_ms = count(e, "queryTimeoutMs", "embedding.queryTimeoutMs", 1)?.unwrap_or(1500);
    let min_similarity = number(e, "minSimilarity", "embedding.minSimilarity")?.unwrap_or(0.75);
    if !(-1.0..=1.0).contains(&min_similarity) {
        return Err(err(
            "embedding.minSimilarity",
            format!("must be between -1 and 1, got {min_similarity}"),
        ));
    }
    let batch_size = count(e, "batchSize", "embedding.batchSize", 1)?.unwrap_or(32);
    Ok(Some(EmbeddingConfig {
        base_url,
        model,
        api_key,
        timeout: Duration::from_secs_f64(timeout),
        query_timeout: Duration::from_millis(query_ms as u64),
        min_similarity,
        batch_size,
    }))
}

impl AgentConfig {
    /// Parses the rendered config.json value. Unknown keys are ignored; wrong types and
    /// out-of-range values are errors naming the field.
    pub fn from_value(value: &Value) -> Result<AgentConfig, AgentError> {
        let root = value
            .as_object()
            .ok_or_else(|| err("(root)", "expected a JSON object"))?;
        let mut cfg = AgentConfig::default();
        if let Some(k) = string(root, "knowledge", "knowledge")? {
            cfg.knowledge = relative_path(&k, "knowledge")?;
        }
        cfg.system_prompt =
            string(root, "systemPrompt", "systemPrompt")?.filter(|s| !s.trim().is_empty());
        if let Some(p) = string(root, "promptFile", "promptFile")? {
            cfg.prompt_file = relative_path(&p, "promptFile")?;
        }
        if let Some(llm) = section(root, "llm")? {
            let base_url = string(llm, "baseUrl", "llm.baseUrl")?.unwrap_or_default();
            let base_url = base_url.trim().trim_end_matches('/').to_string();
            if !base_url.is_empty() {
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    return Err(err("llm.baseUrl", "must start with http:// or https://"));
                }
                let model = string(llm, "model", "llm.model")?
                    .filter(|m| !m.trim().is_empty())
                    .ok_or_else(|| err("llm.model", "required when llm.baseUrl is set"))?;
                let api_key = string(llm, "apiKey", "llm.apiKey")?.filter(|k| !k.is_empty());
                let temperature = number(llm, "temperature", "llm.temperature")?;
                if let Some(t) = temperature {
                    if !(0.0..=2.0).contains(&t) {
                        return Err(err(
                            "llm.temperature",
                            format!("must be between 0 and 2, got {t}"),
                        ));
                    }
                }
                let timeout = number(llm, "timeoutSecs", "llm.timeoutSecs")?.unwrap_or(60.0);
                if !(timeout > 0.0 && timeout <= 3600.0) {
                    return Err(err(
                        "llm.timeoutSecs",
                        format!("must be in (0, 3600], got {timeout}"),
                    ));
                }
                cfg.llm = Some(LlmConfig {
                    base_url,
                    model,
                    api_key,
                    temperature,
                    timeout: Duration::from_secs_f64(timeout),
                });
            }
        }
        if let Some(r) = section(root, "retrieval")? {
            if let Some(k) = count(r, "topK", "retrieval.topK", 1)? {
                cfg.retrieval.top_k = k;
            }
            if let Some(t) = number(r, "threshold", "retrieval.threshold")? {
                if !(0.0..=1.0).contains(&t) {
                    return Err(err(
                        "retrieval.threshold",
                        format!("must be between 0 and 1, got {t}"),
                    ));
                }
                cfg.retrieval.threshold = t;
            }
            if let Some(t) = number(r, "relative", "retrieval.relative")? {
                if !(0.0..=1.0).contains(&t) {
                    return Err(err(
                        "retrieval.relative",
                        format!("must be between 0 and 1, got {t}"),
                    ));
                }
                cfg.retrieval.relative = t;
            }
        }
        if let Some(e) = section(root, "embedding")? {
            cfg.embedding = embedding(e)?;
        }
        if let Some(m) = section(root, "memory")? {
            if let Some(n) = count(m, "turnsPerChat", "memory.turnsPerChat", 0)? {
                cfg.memory.turns_per_chat = n;
            }
            if let Some(n) = count(m, "maxChats", "memory.maxChats", 1)? {
                cfg.memory.max_chats = n;
            }
        }
        if let Some(o) = section(root, "offline")? {
            if let Some(n) = count(o, "chunkChars", "offline.chunkChars", 1)? {
                cfg.offline.chunk_chars = n;
            }
            if let Some(n) = count(o, "chunkDelayMs", "offline.chunkDelayMs", 0)? {
                cfg.offline.chunk_delay = Duration::from_millis(n as u64);
            }
        }
        Ok(cfg)
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
