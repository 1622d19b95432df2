//! The sandbox's control API: JSON bodies posted to its endpoints over real HTTP, against
//! one sandbox started once, with our Stream client connected to it as an echo robot (so
//! posted messages, events and raw frames reach a real client, and its replies come back).
//! The first byte picks the endpoint; the rest is the body. Each body is also read as the
//! endpoint's typed request, as the handler does. No body may take the server or the
//! client down (a panic in any task aborts the fuzzer) or earn a 5xx.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use std::sync::Arc;

use jitnode_dingtalk_wire::RobotMessage;
use jitnode_sandbox::{CardFault, Click, PingMode, PostMessage, Sandbox, SandboxConfig};
use jitnode_stream::{on_message, Client, ClientConfig, ReplyContext, Status};
use libfuzzer_sys::fuzz_target;

const ENDPOINTS: [&str; 11] = [
    "/control/apps",
    "/control/messages",
    "/control/click",
    "/control/faults/disconnect",
    "/control/faults/drop",
    "/control/faults/pings",
    "/control/faults/redeliver",
    "/control/faults/cards",
    "/control/faults/raw",
    "/control/events",
    "/control/faults/expire-webhooks",
];

const CLIENT_ID: &str = "dingfuzz";
const SECRET: &str = "fuzz-secret";

struct Server {
    addr: SocketAddr,
    // Kept alive for the whole run: the sandbox's and the client's tasks live on it.
    _rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    _client: Client,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        let sandbox = rt
            .block_on(Sandbox::start(SandboxConfig::default()))
            .expect("the sandbox binds loopback");
        sandbox.register_app(CLIENT_ID, SECRET);
        let mut config = ClientConfig::new(CLIENT_ID, SECRET).with_base_url(&sandbox.base_url());
        // Inputs disconnect and drop it; back within milliseconds, so later inputs reach it.
        config.backoff.base = Duration::from_millis(5);
        config.backoff.max = Duration::from_millis(20);
        config.backoff.jitter = Duration::from_millis(5);
        config.backoff.auth_failed = Duration::from_millis(20);
        let client = rt.block_on(async {
            let echo = on_message(|msg: RobotMessage, ctx: ReplyContext| async move {
                let text = format!("echo: {}", msg.text().unwrap_or_default());
                ctx.reply_text(&text).await?;
                Ok(())
            });
            let client = Client::start(config, Arc::new(echo));
            let mut status = client.status();
            status
                .wait_for(|s| matches!(s, Status::Connected { .. }))
                .await
                .expect("the client connects to the sandbox");
            client
        });
        Server {
            addr: sandbox.addr(),
            _rt: rt,
            sandbox,
            _client: client,
        }
    })
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect to the sandbox");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One write: a second small one would wait for the delayed ACK of the first.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    s.set_nodelay(true).expect("set TCP_NODELAY");
    s.write_all(&request).expect("write the request");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read the response");
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    status.unwrap_or_else(|| panic!("no HTTP response to {path}: {text:?}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let path = ENDPOINTS[usize::from(*first) % ENDPOINTS.len()];
    let _ = serde_json::from_slice::<PostMessage>(body);
    let _ = serde_json::from_slice::<Click>(body);
    let _ = serde_json::from_slice::<PingMode>(body);
    let _ = serde_json::from_slice::<CardFault>(body);
    let server = server();
    let status = post(server.addr, path, body);
    assert!(status < 500, "{path} answered {status}");
    // An input may re-register the app with another secret; the client's stays valid.
    server.sandbox.register_app(CLIENT_ID, SECRET);
});
