//! OpenAI-compatible chat completions over SSE (`stream: true`).

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

use crate::chunk::Chunk;
use crate::config::LlmConfig;
use crate::error::LlmError;

/// Longest SSE line accepted; a longer one means the peer is not speaking SSE.
const MAX_LINE: usize = 1 << 20;
/// Largest `data` of one SSE event (its `data:` lines together): a peer that never sends
/// the closing blank line cannot make it pile up.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most bytes of an error response's body read (only its start is shown anyway).
pub const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
/// Characters of an error body kept in [`LlmError::Status`].
const ERROR_BODY_CHARS: usize = 300;
/// Largest answer accepted, its reasoning included (UTF-8 bytes): a model that runs away
/// is stopped here rather than at the timeout. About 100 pages of text.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Incremental SSE parser: bytes in, `data` payloads of complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<String>,
    /// Bytes in `data` (plus one separator per line).
    data_len: usize,
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
                    self.data_len = 0;
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                let rest = rest.strip_prefix(' ').unwrap_or(rest);
                self.data_len += rest.len() + 1;
                if self.data_len > MAX_EVENT_BYTES {
                    return Err(LlmError::Malformed {
                        reason: format!("event data longer than {MAX_EVENT_BYTES} bytes"),
                        event: String::new(),
                    });
                }
                self.data.push(rest.to_string());
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
            self.data_len = 0;
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
    /// Bytes of answer and reasoning so far, against [`MAX_ANSWER_BYTES`].
    streamed: usize,
    done: bool,
    finished: bool,
}

impl Progress {
    fn count(&mut self, s: &str) -> Result<(), LlmError> {
        self.streamed += s.len();
        if self.streamed > MAX_ANSWER_BYTES {
            return Err(LlmError::TooLong {
                limit: MAX_ANSWER_BYTES,
            });
        }
        Ok(())
    }
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
                    p.count(r)?;
                    out.push(Chunk::Reasoning(r.to_string()));
                }
            }
            match delta.get("content") {
                Some(Value::String(s)) if !s.is_empty() => {
                    p.count(s)?;
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
        req = req.bearer_auth(key.expose());
    }
    let transport = |e: reqwest::Error| LlmError::Transport {
        url: shown.clone(),
        reason: e.without_url().to_string(),
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        let body = read_bounded(resp, MAX_ERROR_BODY_BYTES).await;
        return Err(LlmError::Status {
            url: shown,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect(),
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

/// The first `limit` bytes of a body (fewer if it ends or fails first); the rest is
/// never read.
async fn read_bounded(resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(bytes)) = stream.next().await {
        let room = limit - out.len();
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
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

/// The client against a loopback stand-in that streams a scripted response and reports
/// how many body bytes it managed to write before the client hung up.
#[cfg(test)]
mod bounds {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    /// Serves one request: `head`, then `piece` up to `total` body bytes (then `tail`).
    async fn stand_in(
        head: &'static str,
        piece: Vec<u8>,
        total: usize,
        tail: &'static str,
    ) -> (String, oneshot::Receiver<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            // Read the request: headers, then the announced body.
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                assert!(n > 0, "request cut short");
            }
            let mut written = 0;
            if sock.write_all(head.as_bytes()).await.is_ok() {
                while written < total {
                    if sock.write_all(&piece).await.is_err() {
                        break;
                    }
                    written += piece.len();
                }
                if written >= total {
                    let _ = sock.write_all(tail.as_bytes()).await;
                }
            }
            let _ = sock.shutdown().await;
            let _ = tx.send(written);
        });
        (base, rx)
    }

    async fn call(base: &str) -> Result<String, LlmError> {
        let cfg = LlmConfig {
            base_url: base.to_string(),
            model: "m".into(),
            api_key: None,
            temperature: None,
            timeout: Duration::from_secs(30),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        // Drain chunks so the client never waits on them.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let r = stream_chat(
            &reqwest::Client::new(),
            &cfg,
            &[Message {
                role: "user",
                content: "hi".into(),
            }],
            &tx,
        )
        .await;
        drop(tx);
        drain.await.unwrap();
        r
    }

    /// Bytes the stand-in wrote; a safety limit only (it ends when the client hangs up).
    async fn written(rx: oneshot::Receiver<usize>) -> usize {
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("the stand-in finished")
            .unwrap()
    }

    const HUGE: usize = 64 << 20;

    #[tokio::test]
    async fn error_bodies_are_read_only_up_to_the_bound() {
        let (base, rx) = stand_in(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n",
            b"overloaded ".repeat(6000),
            HUGE,
            "",
        )
        .await;
        match call(&base).await {
            Err(LlmError::Status { status, body, .. }) => {
                assert_eq!(status, 500);
                assert!(body.starts_with("overloaded overloaded"), "{body}");
                assert_eq!(body.chars().count(), ERROR_BODY_CHARS);
            }
            other => panic!("{other:?}"),
        }
        let w = written(rx).await;
        assert!(w < HUGE / 4, "the whole body was read: {w} bytes");
    }

    #[tokio::test]
    async fn data_lines_without_a_blank_line_are_bounded() {
        let line = format!("data: {}\n", "x".repeat(4000)).into_bytes();
        let (base, rx) = stand_in(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            line,
            HUGE,
            "",
        )
        .await;
        match call(&base).await {
            Err(LlmError::Malformed { reason, .. }) => {
                assert!(reason.contains("longer than"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let w = written(rx).await;
        assert!(w < HUGE / 4, "all data lines were kept: {w} bytes");
        // Right at the limit is still one event.
        let mut p = SseParser::default();
        let full = format!("data: {}\n\n", "y".repeat(MAX_EVENT_BYTES - 1));
        assert_eq!(p.feed(full.as_bytes()).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_runaway_answer_is_stopped_at_the_bound() {
        let event = format!(
            "data: {}\n\n",
            json!({"choices": [{"delta": {"content": "z".repeat(1000)}}]})
        )
        .into_bytes();
        let (base, rx) = stand_in(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            event,
            HUGE,
            "data: [DONE]\n\n",
        )
        .await;
        match call(&base).await {
            Err(LlmError::TooLong { limit }) => assert_eq!(limit, MAX_ANSWER_BYTES),
            other => panic!("{:?}", other.map(|t| t.len())),
        }
        let w = written(rx).await;
        assert!(w < HUGE / 4, "the answer kept growing: {w} bytes");
    }
}
