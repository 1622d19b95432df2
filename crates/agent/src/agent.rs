//! `Agent`: a loaded agent instance (config, knowledge index, memory, LLM client) and `run`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::chunk::{Answer, Chunk, Source};
use crate::config::{AgentConfig, DEFAULT_SYSTEM_PROMPT};
use crate::embed::{fuse, EmbedError, Embedder, Vectors};
use crate::error::{AgentError, LlmError};
use crate::knowledge::{Hit, KnowledgeBase, SearchParams};
use crate::llm::{stream_chat, Message};
use crate::memory::{Memory, Turn};
use crate::text::{cut_after, detect_lang, Lang};

/// Name of the retrieval step in TOOL_CALL_START / TOOL_CALL_END chunks.
pub const SEARCH_TOOL: &str = "knowledge_search";

/// Arguments of the `run` element function: `{"question": "...", "chatId": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunArgs {
    pub question: String,
    /// Empty = no conversation memory.
    pub chat_id: String,
}

impl RunArgs {
    /// Parses `{"question": string, "chatId"?: string}` (`chat_id` accepted too).
    pub fn from_value(v: &Value) -> Result<RunArgs, AgentError> {
        let bad = |field: &str, reason: &str| AgentError::Args {
            field: field.into(),
            reason: reason.into(),
        };
        let obj = v
            .as_object()
            .ok_or_else(|| bad("(root)", "expected an object"))?;
        let question = match obj.get("question") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) => return Err(bad("question", "must not be empty")),
            Some(_) => return Err(bad("question", "expected a string")),
            None => return Err(bad("question", "missing")),
        };
        let chat_id = match obj.get("chatId").or_else(|| obj.get("chat_id")) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(bad("chatId", "expected a string")),
        };
        Ok(RunArgs { question, chat_id })
    }
}

/// Told to the LLM when even the best passage is a weak match (below `threshold`, above
/// `llmThreshold`), so that a question the knowledge does not cover is still refused.
pub const WEAK_MATCH_NOTE: &str = "\nThese passages match the question only weakly: use them \
     only if they really answer it; otherwise say that the knowledge base does not cover the \
     question, and name no source.";

/// The fixed answer when nothing in the knowledge base passes the threshold.
pub fn not_covered(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => {
            "抱歉，知识库中没有涉及这个问题的内容，我无法据此回答。请换个问法，或联系人工客服。"
        }
        Lang::En => {
            "Sorry, the knowledge base does not cover this question, so I cannot answer it. \
             Please rephrase it or contact a human agent."
        }
    }
}

/// A loaded agent. `Send + Sync`; share it behind an `Arc` and call `run` concurrently.
pub struct Agent {
    config: AgentConfig,
    system_prompt: String,
    kb: KnowledgeBase,
    memory: Memory,
    client: Option<reqwest::Client>,
    embedder: Option<Embedder>,
    /// Filled by [`Agent::index_vectors`]; until then retrieval is lexical.
    vectors: RwLock<Option<Arc<Vectors>>>,
    vector_cache: Option<PathBuf>,
}

impl std::fmt::Debug for Agent {
    // Summary only: the prompt and passages are long, and the config may hold a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .field("passages", &self.kb.passages().len())
            .field("chats", &self.memory.chats())
            .finish()
    }
}

impl Agent {
    /// Loads an instance: parses `config` (the rendered config.json), reads the prompt and
    /// indexes the knowledge folder under `element_dir`.
    pub fn load(element_dir: &Path, config: &Value) -> Result<Agent, AgentError> {
        let config = AgentConfig::from_value(config)?;
        let system_prompt = match &config.system_prompt {
            Some(p) => p.clone(),
            None => {
                let path = element_dir.join(&config.prompt_file);
                match std::fs::read_to_string(&path) {
                    Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                    Ok(_) => DEFAULT_SYSTEM_PROMPT.to_string(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        DEFAULT_SYSTEM_PROMPT.to_string()
                    }
                    Err(e) => {
                        return Err(AgentError::File {
                            path,
                            reason: format!("cannot read prompt: {e}"),
                        })
                    }
                }
            }
        };
        let kdir = element_dir.join(&config.knowledge);
        if !kdir.is_dir() {
            return Err(AgentError::File {
                path: kdir,
                reason: "knowledge folder (config.json field `knowledge`) does not exist".into(),
            });
        }
        crate::text::warm_up();
        let kb = KnowledgeBase::load_dir(&kdir)?;
        let client = match &config.llm {
            None => None,
            Some(_) => Some(reqwest::Client::builder().build().map_err(|e| {
                AgentError::Llm(LlmError::Transport {
                    url: String::new(),
                    reason: e.without_url().to_string(),
                })
            })?),
        };
        let embedder = match &config.embedding {
            None => None,
            Some(e) => Some(Embedder::new(e.clone())?),
        };
        let memory = Memory::new(config.memory.turns_per_chat, config.memory.max_chats);
        tracing::debug!(
            passages = kb.passages().len(),
            bytes = kb.bytes,
            online = client.is_some(),
            "agent loaded"
        );
        Ok(Agent {
            config,
            system_prompt,
            kb,
            memory,
            client,
            embedder,
            vectors: RwLock::new(None),
            vector_cache: None,
        })
    }

    /// Keeps passage vectors in `path` across loads, so a reload embeds only the passages
    /// whose content changed.
    pub fn with_vector_cache(mut self, path: PathBuf) -> Agent {
        self.vector_cache = Some(path);
        self
    }

    /// Embeds the knowledge (cached vectors first) when an embedding endpoint is
    /// configured, and switches retrieval to hybrid. Returns how many passages had to be
    /// sent to the endpoint; `Ok(0)` without an endpoint. On an error, retrieval stays
    /// lexical.
    pub async fn index_vectors(&self) -> Result<usize, EmbedError> {
        let Some(embedder) = &self.embedder else {
            return Ok(0);
        };
        let (vectors, requested) = embedder
            .embed_passages(self.kb.passages(), self.vector_cache.as_deref())
            .await?;
        tracing::info!(
            embedded = vectors.embedded(),
            requested,
            "knowledge vectors ready: hybrid retrieval"
        );
        *self.vectors.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(vectors));
        Ok(requested)
    }

    /// True once passage vectors are in use.
    pub fn hybrid_ready(&self) -> bool {
        self.vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn knowledge(&self) -> &KnowledgeBase {
        &self.kb
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Retrieval alone, with the configured top k and threshold.
    pub fn retrieve(&self, question: &str) -> Vec<Hit> {
        let r = &self.config.retrieval;
        self.kb.search_with(
            question,
            SearchParams {
                top_k: r.top_k,
                threshold: self.threshold(),
                relative: r.relative,
            },
        )
    }

    /// The least relevance a passage needs to be used: lower with an LLM, which is told
    /// when the match is weak (see [`crate::config::RetrievalConfig::llm_threshold`]).
    fn threshold(&self) -> f64 {
        let r = &self.config.retrieval;
        if self.client.is_some() && self.config.llm.is_some() {
            r.llm_threshold
        } else {
            r.threshold
        }
    }

    /// Retrieval for a question in a conversation: a short follow-up ("and in a group?",
    /// "那群里呢") is searched together with the chat's previous question, since on its own
    /// it names too little.
    pub fn retrieve_in_chat(&self, question: &str, chat_id: &str) -> Vec<Hit> {
        self.lexical_in_chat(question, chat_id).1
    }

    /// The query actually searched (the question, or the previous one plus a follow-up)
    /// and its lexical hits.
    fn lexical_in_chat(&self, question: &str, chat_id: &str) -> (String, Vec<Hit>) {
        if is_follow_up(question) {
            if let Some(prev) = self.memory.recall(chat_id).pop() {
                let query = format!("{} {question}", prev.question);
                let hits = self.retrieve(&query);
                if !hits.is_empty() {
                    return (query, hits);
                }
            }
        }
        (question.to_string(), self.retrieve(question))
    }

    /// Lexical hits, fused with the vector ranking when vectors are ready and the question
    /// can be embedded in time; otherwise (with a warning) the lexical hits alone.
    pub async fn retrieve_hybrid(&self, question: &str, chat_id: &str) -> Vec<Hit> {
        let (query, lexical) = self.lexical_in_chat(question, chat_id);
        let vectors = self
            .vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (Some(embedder), Some(vectors)) = (&self.embedder, vectors) else {
            return lexical;
        };
        let qvec = match embedder
            .embed(
                std::slice::from_ref(&query),
                embedder.config().query_timeout,
            )
            .await
        {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            Ok(_) => return lexical,
            Err(e) => {
                tracing::warn!("question not embedded, answering from lexical retrieval: {e}");
                return lexical;
            }
        };
        let r = &self.config.retrieval;
        let semantic = vectors.rank(&qvec, embedder.config().min_similarity);
        let wide = self.kb.search_with(
            &query,
            SearchParams {
                top_k: r.top_k * 3,
                threshold: self.threshold(),
                relative: r.relative,
            },
        );
        let lex_ids: Vec<usize> = wide.iter().map(|h| h.passage).collect();
        let sem_ids: Vec<usize> = semantic.iter().take(r.top_k * 3).map(|s| s.0).collect();
        fuse(&lex_ids, &sem_ids)
            .into_iter()
            .take(r.top_k)
            .map(|(p, score)| {
                let lex = wide
                    .iter()
                    .find(|h| h.passage == p)
                    .map_or(0.0, |h| h.relevance);
                let cos = semantic.iter().find(|s| s.0 == p).map_or(0.0, |s| s.1);
                Hit {
                    passage: p,
                    score,
                    relevance: lex.max(cos),
                }
            })
            .collect()
    }

    /// Answers `question`, streaming chunks to `chunks` (send failures are ignored: the
    /// answer is still returned). `chat_id` selects the conversation memory ("" = none).
    /// Cancelling `cancel` returns `Cancelled` promptly and drops any HTTP stream.
    pub async fn run(
        &self,
        question: &str,
        chat_id: &str,
        chunks: Sender<Chunk>,
        cancel: CancellationToken,
    ) -> Result<Answer, AgentError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(AgentError::Cancelled),
            r = self.run_inner(question, chat_id, &chunks) => r,
        }
    }

    /// The `run` element function in JSON terms, for a host wrapper: parses
    /// `{"question", "chatId"?}` (errors are [`AgentError::Args`]), hands every chunk to
    /// `on_chunk` as JSON (`{"type", "data"}`) in order, and returns
    /// `{"answer", "sources"}`.
    pub async fn run_json(
        &self,
        args: &Value,
        on_chunk: impl Fn(Value) + Send + Sync,
        cancel: CancellationToken,
    ) -> Result<Value, AgentError> {
        let args = RunArgs::from_value(args)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(64);
        let forward = async {
            // Ends when `run` returns and drops the sender.
            while let Some(c) = rx.recv().await {
                on_chunk(c.to_json());
            }
        };
        let (answer, ()) =
            tokio::join!(self.run(&args.question, &args.chat_id, tx, cancel), forward);
        Ok(answer?.to_json())
    }

    async fn run_inner(
        &self,
        question: &str,
        chat_id: &str,
        chunks: &Sender<Chunk>,
    ) -> Result<Answer, AgentError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(AgentError::Args {
                field: "question".into(),
                reason: "must not be empty".into(),
            });
        }
        let lang = detect_lang(question);
        let _ = chunks
            .send(Chunk::ToolStart {
                tool: SEARCH_TOOL.into(),
                args: json!({ "query": question, "topK": self.config.retrieval.top_k }),
            })
            .await;
        let hits = self.retrieve_hybrid(question, chat_id).await;
        let sources: Vec<Source> = hits
            .iter()
            .map(|h| {
                let p = self.kb.passage(h.passage);
                Source {
                    file: p.file.clone(),
                    heading: p.heading.clone(),
                    relevance: (h.relevance * 1000.0).round() / 1000.0,
                }
            })
            .collect();
        let _ = chunks
            .send(Chunk::ToolEnd {
                tool: SEARCH_TOOL.into(),
                result: json!({ "passages": serde_json::to_value(&sources).unwrap_or(Value::Null) }),
            })
            .await;

        if hits.is_empty() {
            // Nothing relevant: say so, with or without an LLM, and invent nothing.
            let answer = not_covered(lang).to_string();
            let _ = chunks.send(Chunk::Text(answer.clone())).await;
            return Ok(Answer {
                answer,
                sources: Vec::new(),
            });
        }

        let answer = match (&self.config.llm, &self.client) {
            (Some(llm), Some(client)) => {
                let messages = self.messages(question, chat_id, &hits, lang);
                match tokio::time::timeout(llm.timeout, stream_chat(client, llm, &messages, chunks))
                    .await
                {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(AgentError::Timeout {
                            secs: llm.timeout.as_secs(),
                        })
                    }
                }
            }
            _ => self.offline_answer(&hits, lang, chunks).await,
        };
        self.memory.remember(
            chat_id,
            Turn {
                question: question.to_string(),
                answer: answer.clone(),
            },
        );
        Ok(Answer { answer, sources })
    }

    /// System prompt with the passages, then the chat's memory, then the question.
    fn messages(&self, question: &str, chat_id: &str, hits: &[Hit], lang: Lang) -> Vec<Message> {
        let mut system = self.system_prompt.clone();
        system.push_str("\n\n# Knowledge passages\n");
        for (i, h) in hits.iter().enumerate() {
            let p = self.kb.passage(h.passage);
            system.push_str(&format!(
                "\n[{}] {} — {}\n{}\n",
                i + 1,
                p.file,
                p.heading,
                p.text
            ));
        }
        system.push_str(
            "\nEnd the answer with the file names of the passages you used, like \
             (source: reload.en.md). If the passages do not answer the question, say so.",
        );
        if hits
            .first()
            .is_some_and(|h| h.relevance < self.config.retrieval.threshold)
        {
            system.push_str(WEAK_MATCH_NOTE);
        }
        system.push_str(match lang {
            Lang::Zh => "\nAnswer in Chinese.",
            Lang::En => "\nAnswer in English.",
        });
        let mut msgs = vec![Message {
            role: "system",
            content: system,
        }];
        for t in self.memory.recall(chat_id) {
            msgs.push(Message {
                role: "user",
                content: t.question,
            });
            msgs.push(Message {
                role: "assistant",
                content: t.answer,
            });
        }
        msgs.push(Message {
            role: "user",
            content: question.to_string(),
        });
        msgs
    }

    /// The best passage verbatim, other hits as references, streamed at the configured pace.
    async fn offline_answer(&self, hits: &[Hit], lang: Lang, chunks: &Sender<Chunk>) -> String {
        let best = self.kb.passage(hits[0].passage);
        let mut answer = match lang {
            Lang::Zh => format!("根据知识库《{}》：\n\n{}", best.heading, best.text),
            Lang::En => format!(
                "From the knowledge base, \"{}\":\n\n{}",
                best.heading, best.text
            ),
        };
        let others: Vec<String> = hits[1..]
            .iter()
            .map(|h| self.kb.passage(h.passage))
            .filter(|p| !(p.file == best.file && p.heading == best.heading))
            .map(|p| format!("{} ({})", p.heading, p.file))
            .collect();
        if !others.is_empty() {
            answer.push_str(match lang {
                Lang::Zh => "\n\n另见：",
                Lang::En => "\n\nSee also: ",
            });
            answer.push_str(&others.join(match lang {
                Lang::Zh => "；",
                Lang::En => "; ",
            }));
        }
        answer.push_str(&sources_line(
            &[Source {
                file: best.file.clone(),
                heading: best.heading.clone(),
                relevance: 0.0,
            }],
            lang,
        ));
        let pieces = split_for_streaming(&answer, self.config.offline.chunk_chars);
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            let _ = chunks.send(Chunk::Text(piece)).await;
            if i < last && !self.config.offline.chunk_delay.is_zero() {
                tokio::time::sleep(self.config.offline.chunk_delay).await;
            }
        }
        answer
    }
}

/// The closing "Source: a.md, b.md" line of an answer, in the question's language, each
/// file once in rank order.
fn sources_line(sources: &[Source], lang: Lang) -> String {
    let mut files: Vec<&str> = Vec::new();
    for s in sources {
        if !files.contains(&s.file.as_str()) {
            files.push(&s.file);
        }
    }
    match lang {
        Lang::Zh => format!("\n\n来源：{}", files.join("、")),
        Lang::En => format!("\n\nSource: {}", files.join(", ")),
    }
}

/// Words that open a follow-up which leans on the previous question.
const FOLLOW_UP_EN: &[&str] = &[
    "and",
    "what about",
    "how about",
    "also",
    "same",
    "what if",
    "and if",
    "then",
    "or",
];
const FOLLOW_UP_ZH: &[&str] = &["那", "那么", "还有", "另外", "同样"];

/// Most content words a follow-up has (search-mode sub-words count too: 群聊 gives 群聊).
const FOLLOW_UP_MAX_WORDS: usize = 3;

/// A short question opening with a follow-up word, or a short Chinese one ending in 呢.
fn is_follow_up(question: &str) -> bool {
    let q = question.trim().to_lowercase();
    let short = q.chars().filter(|c| c.is_alphanumeric()).count() <= 24;
    // A follow-up leans on the previous question because it names little itself; one that
    // names more ("also, how do I reset my password?") is a question of its own.
    let words = crate::text::tokenize(&q)
        .iter()
        .filter(|t| !crate::text::is_bigram(t))
        .count();
    if !short || words > FOLLOW_UP_MAX_WORDS {
        return false;
    }
    let en = FOLLOW_UP_EN.iter().any(|cue| {
        q.strip_prefix(cue)
            .is_some_and(|rest| rest.starts_with(|c: char| !c.is_alphanumeric()))
    });
    // 那个/那些 ("that one") open ordinary questions too.
    let zh = (FOLLOW_UP_ZH.iter().any(|cue| q.starts_with(cue))
        && !q.starts_with("那个")
        && !q.starts_with("那些"))
        || q.trim_end_matches(['?', '？', ' ']).ends_with('呢');
    en || zh
}

/// Cuts text into pieces of about `size` characters, preferring to cut after whitespace or
/// punctuation; the pieces concatenate to the input exactly.
pub fn split_for_streaming(text: &str, size: usize) -> Vec<String> {
    let size = size.max(1);
    let (mut out, rest) = cut_after(text, |c, n| {
        let soft = c.is_whitespace()
            || matches!(c, '，' | '。' | '；' | '：' | '、' | ',' | '.' | ';' | ':');
        (n >= size && soft) || n >= size * 2
    });
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_pieces_rejoin_exactly() {
        let t = "Hello world, this is a test. 你好，世界。这是一个测试！";
        let p = split_for_streaming(t, 5);
        assert!(p.len() > 3);
        assert_eq!(p.concat(), t);
        assert!(p.iter().all(|s| s.chars().count() <= 10));
    }

    #[test]
    fn run_futures_are_send_so_hosts_can_spawn_them() {
        fn assert_send<T: Send>(_: &T) {}
        fn check(agent: &Agent) {
            let f = agent.run_json(&Value::Null, |_| {}, CancellationToken::new());
            assert_send(&f);
            let (tx, _rx) = tokio::sync::mpsc::channel(1);
            assert_send(&agent.run("q", "c", tx, CancellationToken::new()));
        }
        let _ = check; // compile-time check only
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<Agent>();
    }

    #[test]
    fn follow_ups_are_recognised() {
        for q in [
            "and in a group?",
            "What about Windows?",
            "那群里呢？",
            "还有别的办法吗",
            "群聊呢",
        ] {
            assert!(is_follow_up(q), "{q}");
        }
        for q in [
            "android app?",
            "How do I reset my password?",
            "那个 dist 文件夹删掉以后重新启动会自动重新打包所有的元素吗，还是要手动执行 build 命令",
            "theory",
            "那个配置文件在哪",
            "also, how do I reset my password and change my email?",
            "热更新的监听模式怎么切换成轮询呢",
        ] {
            assert!(!is_follow_up(q), "{q}");
        }
    }

    #[test]
    fn run_args_parse() {
        let a = RunArgs::from_value(&json!({"question": " hi ", "chatId": "u1"})).unwrap();
        assert_eq!(
            a,
            RunArgs {
                question: "hi".into(),
                chat_id: "u1".into()
            }
        );
        let e = RunArgs::from_value(&json!({"chatId": "u1"})).unwrap_err();
        assert!(e.to_string().contains("question"));
    }
}
