//! jitnode-agent: the AI customer-service agent behind `aiagents.*` elements.
//!
//! It loads an instance (config, prompt, knowledge folder), indexes the knowledge as passages
//! (jieba segmentation for Chinese, stemmed words for English, BM25), and answers questions:
//! offline from the best passages, or through an OpenAI-compatible streaming endpoint with the
//! passages and the chat's memory in the prompt. Runs stream JitAI-style chunks.
//!
//! It is NOT the element host: it knows nothing about e.json, templates, dist/ or element
//! lookup. The host renders config.json; [`loader`] (`builtin:aiagents`) then calls
//! [`Agent::load`] and offers [`Agent::run_json`] as the element function `run`.

mod agent;
mod chunk;
mod config;
mod element;
mod error;
mod knowledge;
mod llm;
mod memory;
mod text;

pub use agent::{not_covered, split_for_streaming, Agent, RunArgs, SEARCH_TOOL};
pub use chunk::{Answer, Chunk, Source};
pub use config::{
    config_schema, AgentConfig, LlmConfig, MemoryConfig, OfflineConfig, RetrievalConfig,
    DEFAULT_SYSTEM_PROMPT,
};
pub use element::{loader, LOADER_NAME};
pub use error::{AgentError, LlmError};
pub use knowledge::{Hit, KnowledgeBase, Passage, MAX_PASSAGE_CHARS};
pub use llm::SseParser;
pub use memory::{Memory, Turn};
pub use text::{detect_lang, tokenize, Lang};
pub use tokio_util::sync::CancellationToken;
