//! jitnode-agent: the AI customer-service agent behind `aiagents.*` elements.
//!
//! It loads an instance (config, prompt, knowledge folder), reads the knowledge (Markdown,
//! text, HTML, FAQ pairs in CSV/JSON/JSONL, a `synonyms.txt`) into passages, indexes them
//! (BM25F over heading, aliases and text; jieba words plus bigrams for Chinese, stemmed and
//! spell-corrected words for English; optionally vectors from an OpenAI-compatible
//! embeddings endpoint, fused by reciprocal rank), and answers questions: offline from the
//! best passages, or through an OpenAI-compatible streaming endpoint with the passages and
//! the chat's memory in the prompt. Runs stream JitAI-style chunks.
//!
//! It is NOT the element host: it knows nothing about e.json, templates, dist/ or element
//! lookup. The host renders config.json; [`loader`] (`builtin:aiagents`) then calls
//! [`Agent::load`] and offers [`Agent::run_json`] as the element function `run`.

mod agent;
mod chunk;
mod config;
mod element;
mod embed;
mod error;
mod ingest;
mod knowledge;
mod llm;
mod memory;
mod text;

pub use agent::{not_covered, split_for_streaming, Agent, RunArgs, SEARCH_TOOL, WEAK_MATCH_NOTE};
pub use chunk::{Answer, Chunk, Source};
pub use config::{
    config_schema, AgentConfig, ApiKey, EmbeddingConfig, LlmConfig, MemoryConfig, OfflineConfig,
    RetrievalConfig, DEFAULT_SYSTEM_PROMPT,
};
pub use element::{loader, LOADER_NAME};
pub use embed::{cache_path as vector_cache_path, EmbedError};
pub use error::{AgentError, LlmError};
pub use ingest::{Format, IngestProblem};
pub use knowledge::{
    GateFeatures, Hit, KnowledgeBase, Passage, SearchParams, MAX_PASSAGE_CHARS, SYNONYMS_FILE,
};
pub use llm::SseParser;
pub use memory::{Memory, Turn};
pub use text::{detect_lang, tokenize, Lang};
pub use tokio_util::sync::CancellationToken;
