//! A small W3C WebDriver client (JSON over HTTP) and a chromedriver it starts, to drive a
//! real headless Chromium from tests without a browser-automation crate.
//!
//! Chromium runs headless with background networking off (the machine has no internet)
//! and a fresh profile. A missing `chromium` or `chromedriver` is an error naming the
//! Debian packages, never a skipped test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The error for a missing browser, with how to install it.
pub fn install_hint() -> String {
    format!(
        "{CHROMIUM} and {CHROMEDRIVER} are needed for this test: install them with \
         `apt-get install -y chromium chromium-driver` (the README's test command and .ci/run do)"
    )
}

/// A chromedriver process on a free loopback port and one browser session.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser with its driver; the session's DELETE is best effort in close().
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a window of `width` x
    /// `height`.
    pub async fn start(width: u32, height: u32) -> Result<Browser, String> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                return Err(install_hint());
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{CHROMEDRIVER} does not start: {e}; {}", install_hint()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut b = Browser {
            driver,
            http,
            base,
            session: String::new(),
            _profile: profile,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let up = b.http.get(format!("{}/status", b.base)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "chromedriver did not come up; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", b._profile.path().display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let v = b
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {v}"))?
            .to_string();
        Ok(b)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &self.at("/url"),
            Some(json!({"url": url})),
        )
        .await
        .map(drop)
    }

    /// The first element matching the CSS `selector`, if any.
    pub async fn find(&self, selector: &str) -> Result<Option<String>, String> {
        let v = self
            .call(
                reqwest::Method::POST,
                &self.at("/elements"),
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await?;
        Ok(v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT_KEY].as_str())
            .map(str::to_string))
    }

    /// Waits (up to `timeout`) for an element matching `selector`.
    pub async fn wait_for(&self, selector: &str, timeout: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(selector).await? {
                return Ok(e);
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.text_of("body").await.unwrap_or_default();
                return Err(format!(
                    "no {selector} within {timeout:?}; the page shows:\n{body}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, element: &str) -> Result<String, String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &self.at(&format!("/element/{element}/text")),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The visible text of the first element matching `selector` ("" when none).
    pub async fn text_of(&self, selector: &str) -> Result<String, String> {
        match self.find(selector).await? {
            Some(e) => self.text(&e).await,
            None => Ok(String::new()),
        }
    }

    pub async fn click(&self, element: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Types `text` into an element.
    pub async fn type_into(&self, element: &str, text: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/value")),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf, String> {
        let v = self
            .call(reqwest::Method::GET, &self.at("/screenshot"), None)
            .await?;
        let png = decode_base64(v.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.to_path_buf())
    }

    /// Ends the session (the driver ends when dropped).
    pub async fn close(self) {
        let _ = self.call(reqwest::Method::DELETE, &self.at(""), None).await;
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        let mut got = 0;
        for &c in chunk {
            if c == b'=' {
                break;
            }
            n = (n << 6) | value(c).ok_or_else(|| format!("not base64: byte {c}"))?;
            got += 1;
        }
        n <<= 6 * (4 - got);
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..got.max(1)]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(super::decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(super::decode_base64("YWJj").unwrap(), b"abc");
        assert!(super::decode_base64("a*==").is_err());
    }
}
