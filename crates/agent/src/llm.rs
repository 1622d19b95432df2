//! OpenAI-compatible chat completions over SSE (`stream: true`).

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

use crate::chunk::Chunk;
use crate::config::LlmConfig;
use crate::error::LlmError;

/// Longest SSE line accepted; a longer one means the peer is not speaking SSE.
const MAX_LINE: usize = 1 << 20;

/// Incremental SSE parser: bytes in, `data` payloads of complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them (multi-line `data:`
    /// fields joined with `\n`; comments and other fields ignored).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, LlmError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line).map_err(|_| LlmError::Malformed {
                reason: "line is not UTF-8".into(),
                event: String::from_utf8_lossy(line).chars().take(200).collect(),
            })?;
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LlmError::Malformed {
                reason: "line longer than 1 MiB".into(),
                event: String::new(),
            });
        }
        Ok(events)
    }

    /// Flushes an event left without its closing blank line at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let rest = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_string();
            if let Some(d) = rest.strip_prefix("data:") {
                self.data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            }
        }
        if self.data.is_empty() {
            None
        } else {
            let d = self.data.join("\n");
            self.data.clear();
            Some(d)
        }
    }
}

/// One message of the chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// Endpoint URL shown in errors: without credentials or query.
pub(crate) fn display_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains('/') => {
            format!("{}{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Default)]
struct Progress {
    text: String,
    done: bool,
    finished: bool,
}

fn handle_event(data: &str, p: &mut Progress) -> Result<Vec<Chunk>, LlmError> {
    if data.trim() == "[DONE]" {
        p.done = true;
        return Ok(Vec::new());
    }
    let malformed = |reason: &str| LlmError::Malformed {
        reason: reason.to_string(),
        event: data.chars().take(200).collect(),
    };
    let v: Value = serde_json::from_str(data).map_err(|_| malformed("not JSON"))?;
    if let Some(e) = v.get("error") {
        let msg = e
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(LlmError::Upstream(msg.chars().take(300).collect()));
    }
    let choices = match v.get("choices") {
        Some(Value::Array(c)) => c,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err(malformed("`choices` is not an array")),
    };
    let mut out = Vec::new();
    // Only the first choice is requested (n = 1).
    if let Some(choice) = choices.first() {
        if let Some(delta) = choice.get("delta") {
            for key in ["reasoning_content", "reasoning"] {
                if let Some(r) = delta
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    out.push(Chunk::Reasoning(r.to_string()));
                }
            }
            match delta.get("content") {
                Some(Value::String(s)) if !s.is_empty() => {
                    p.text.push_str(s);
                    out.push(Chunk::Text(s.clone()));
                }
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(_) => return Err(malformed("`delta.content` is not a string")),
            }
        }
        if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
            p.finished = true;
        }
    }
    Ok(out)
}

/// Streams one chat completion; answer and reasoning deltas go to `chunks` as they arrive.
/// Returns the whole answer only when the stream ended properly.
pub async fn stream_chat(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    messages: &[Message],
    chunks: &Sender<Chunk>,
) -> Result<String, LlmError> {
    let url = format!("{}/chat/completions", cfg.base_url);
    let shown = display_url(&url);
    let msgs: Vec<Value> = messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let mut body = json!({ "model": cfg.model, "messages": msgs, "stream": true });
    if let Some(t) = cfg.temperature {
        body["temperature"] = json!(t);
    }
    let mut req = client
        .post(&url)
        .header("accept", "text/event-stream")
        .json(&body);
    if let Some(key) = &cfg.api_key {
        req = req.bearer_auth(key);
    }
    let transport = |e: reqwest::Error| LlmError::Transport {
        url: shown.clone(),
        reason: e.without_url().to_string(),
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(LlmError::Status {
            url: shown,
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        });
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    let mut p = Progress::default();
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(transport)?;
        for event in parser.feed(&bytes)? {
            for c in handle_event(&event, &mut p)? {
                // A caller that stopped listening still gets the final answer.
                let _ = chunks.send(c).await;
            }
            if p.done {
                return Ok(p.text);
            }
        }
    }
    if let Some(event) = parser.finish() {
        for c in handle_event(&event, &mut p)? {
            let _ = chunks.send(c).await;
        }
    }
    if p.done || p.finished {
        Ok(p.text)
    } else {
        Err(LlmError::Incomplete {
            received: p.text.chars().count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_reads_and_multiline_data() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\":").unwrap().is_empty());
        assert_eq!(
            p.feed(b"1}\r\n\r\n: comment\n\nevent: x\ndata: l1\ndata: l2\n\n")
                .unwrap(),
            vec!["{\"a\":1}", "l1\nl2"]
        );
        assert!(p.feed(b"data: [DONE]").unwrap().is_empty());
        assert_eq!(p.finish().as_deref(), Some("[DONE]"));
    }

    #[test]
    fn events_update_progress() {
        let mut p = Progress::default();
        let c = handle_event(
            r#"{"choices":[{"delta":{"reasoning_content":"think","content":"Hi"}}]}"#,
            &mut p,
        )
        .unwrap();
        assert_eq!(
            c,
            vec![Chunk::Reasoning("think".into()), Chunk::Text("Hi".into())]
        );
        handle_event(
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            &mut p,
        )
        .unwrap();
        assert!(p.finished);
        assert!(matches!(
            handle_event("{oops", &mut p),
            Err(LlmError::Malformed { .. })
        ));
        assert!(
            matches!(handle_event(r#"{"error":{"message":"quota"}}"#, &mut p), Err(LlmError::Upstream(m)) if m == "quota")
        );
    }

    #[test]
    fn urls_in_errors_hide_credentials() {
        assert_eq!(
            display_url("https://u:p@host/v1/chat/completions?k=1"),
            "https://host/v1/chat/completions"
        );
    }
}
