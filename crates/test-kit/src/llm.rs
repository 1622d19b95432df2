//! An OpenAI-compatible chat-completions stand-in on loopback (`127.0.0.1:0`): every
//! connection's request is read (head and JSON body), recorded, and handed with its socket to
//! the test's responder, which writes whatever the test scripts. The helpers write the
//! pieces real servers send: the SSE response head, `data:` events, error responses.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// One request as received: the head (request line and headers, lower-cased) and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub head: String,
    pub body: Value,
}

/// The running stand-in. Its accept loop ends with the test's runtime.
pub struct LlmStandIn {
    base_url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl LlmStandIn {
    /// Binds a free loopback port and answers each request with `respond(socket, body)`,
    /// after recording it.
    pub async fn start<F, Fut>(respond: F) -> LlmStandIn
    where
        F: Fn(TcpStream, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let reqs = reqs.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    let body = req.body.clone();
                    reqs.lock().unwrap_or_else(|p| p.into_inner()).push(req);
                    respond(sock, body).await;
                });
            }
        });
        LlmStandIn {
            base_url: format!("http://{addr}/v1"),
            requests,
        }
    }

    /// The `baseUrl` to configure: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Their bodies.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }
}

/// Reads one HTTP/1.1 request with a Content-Length JSON body (what reqwest sends).
/// `None` when the client goes away first or the body is not JSON.
pub async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).ok()?;
    Some(Request { head, body })
}

/// The head of a streamed answer; the connection closes after the stream.
pub const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

/// One SSE event carrying `payload` as its `data:` line.
pub fn sse(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

/// One `chat.completion.chunk` event with `delta` (e.g. `{"content": ".."}` or
/// `{"reasoning_content": ".."}`).
pub fn delta_event(delta: Value) -> String {
    sse(&json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}))
}

/// The end of a stream: a chunk with `finish_reason` "stop", then `[DONE]`.
pub fn finish_events() -> String {
    let fin = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    format!("{}data: [DONE]\n\n", sse(&fin))
}

/// A complete JSON error response with `status_line` (e.g. `500 Internal Server Error`).
pub fn error_response(status_line: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn records_requests_and_serves_the_scripted_answer() {
        let s = LlmStandIn::start(|mut sock, body| async move {
            let text = format!(
                "{SSE_HEAD}{}{}",
                delta_event(json!({"content": body["q"]})),
                finish_events()
            );
            let _ = sock.write_all(text.as_bytes()).await;
        })
        .await;
        assert!(s.base_url().starts_with("http://127.0.0.1:") && s.base_url().ends_with("/v1"));
        let addr = s
            .base_url()
            .trim_start_matches("http://")
            .trim_end_matches("/v1")
            .to_string();
        let mut sock = TcpStream::connect(&addr).await.unwrap();
        let body = r#"{"q":"hi"}"#;
        let req = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream"));
        assert!(answer.contains(r#""delta":{"content":"hi"}"#), "{answer}");
        assert!(answer.ends_with("data: [DONE]\n\n"));
        let reqs = s.requests();
        assert_eq!(reqs.len(), 1);
        assert!(reqs[0].head.starts_with("post /v1/chat/completions "));
        assert_eq!(s.bodies(), [json!({"q": "hi"})]);
    }

    #[test]
    fn error_responses_carry_their_length() {
        let r = error_response(
            "500 Internal Server Error",
            &json!({"error": {"message": "x"}}),
        );
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
