//! Streamed chunks of a run, in JitAI's shape: `{"type": "...", "data": {...}}`.

use serde::Serialize;
use serde_json::{json, Value};

/// One streamed piece of a run. Only `Text` belongs in front of users.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Answer text (`TEXT_MESSAGE_CONTENT`).
    Text(String),
    /// Model reasoning (`REASONING_CONTENT`); never part of the answer.
    Reasoning(String),
    /// A tool started (`TOOL_CALL_START`); here: the knowledge search.
    ToolStart { tool: String, args: Value },
    /// A tool finished (`TOOL_CALL_END`) with its result.
    ToolEnd { tool: String, result: Value },
}

impl Chunk {
    /// JitAI's chunk type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Chunk::Text(_) => "TEXT_MESSAGE_CONTENT",
            Chunk::Reasoning(_) => "REASONING_CONTENT",
            Chunk::ToolStart { .. } => "TOOL_CALL_START",
            Chunk::ToolEnd { .. } => "TOOL_CALL_END",
        }
    }

    /// `{"type": ..., "data": {...}}`; text chunks carry `data.content`.
    pub fn to_json(&self) -> Value {
        let data = match self {
            Chunk::Text(s) | Chunk::Reasoning(s) => json!({ "content": s }),
            Chunk::ToolStart { tool, args } => json!({ "toolName": tool, "args": args }),
            Chunk::ToolEnd { tool, result } => json!({ "toolName": tool, "result": result }),
        };
        json!({ "type": self.type_name(), "data": data })
    }

    /// The answer text of this chunk, if it is answer text.
    pub fn answer_text(&self) -> Option<&str> {
        match self {
            Chunk::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// File relative to the knowledge folder.
    pub file: String,
    pub heading: String,
    /// Relevance 0..=1: the probability that the passage answers the question.
    pub relevance: f64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub answer: String,
    /// Empty when the knowledge base does not cover the question.
    pub sources: Vec<Source>,
}

impl Answer {
    /// `{"answer": "...", "sources": [{"file", "heading", "relevance"}]}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self)
            .unwrap_or_else(|_| json!({ "answer": self.answer, "sources": [] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_use_jitai_names() {
        assert_eq!(
            Chunk::Text("hi".into()).to_json(),
            json!({"type": "TEXT_MESSAGE_CONTENT", "data": {"content": "hi"}})
        );
        assert_eq!(
            Chunk::Reasoning("r".into()).to_json()["type"],
            "REASONING_CONTENT"
        );
        let s = Chunk::ToolStart {
            tool: "knowledge_search".into(),
            args: json!({"query": "q"}),
        }
        .to_json();
        assert_eq!(s["type"], "TOOL_CALL_START");
        assert_eq!(s["data"]["args"]["query"], "q");
        assert_eq!(
            Chunk::ToolEnd {
                tool: "t".into(),
                result: json!(1)
            }
            .to_json()["type"],
            "TOOL_CALL_END"
        );
    }
}
