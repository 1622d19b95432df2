//! A typed client for the control API of a sandbox running elsewhere (another process, as
//! behind `jitnode ask`): the same calls as the Rust methods of [`crate::Sandbox`], over
//! HTTP, with typed answers and errors.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{AckRecord, Click, PostMessage, Posted, Transcript};

/// A control call that did not give its answer. Never holds the control token.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the sandbox at {base} does not answer ({reason})")]
    Unreachable { base: String, reason: String },
    #[error("sandbox {path} answered HTTP {status}: {body}")]
    Refused {
        path: &'static str,
        status: u16,
        body: String,
    },
    #[error("sandbox {path} answered something unexpected: {reason}")]
    Unexpected { path: &'static str, reason: String },
}

/// The control API under one sandbox base URL.
#[derive(Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base: String,
    token: Option<jitnode_stream::Secret>,
}

jitnode_dingtalk_wire::debug_redacted!(ControlClient { base } secret { token });

/// How long one control call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl ControlClient {
    /// A client for the sandbox at `base_url` (its [`crate::Sandbox::base_url`]).
    pub fn new(base_url: &str) -> ControlClient {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Only fails when the TLS backend cannot initialise, which is a broken install.
            .expect("HTTP client builds");
        ControlClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` (a sandbox with a control token demands it).
    pub fn with_token(mut self, token: jitnode_stream::Secret) -> ControlClient {
        self.token = Some(token);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /control/apps`.
    pub async fn register_app(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(), ControlError> {
        let body = serde_json::json!({"clientId": client_id, "clientSecret": client_secret});
        let _: serde_json::Value = self.post("/control/apps", &body).await?;
        Ok(())
    }

    /// `POST /control/messages`: a user message into a conversation.
    pub async fn post_message(&self, message: &PostMessage) -> Result<Posted, ControlError> {
        self.post("/control/messages", message).await
    }

    /// `POST /control/click`: a card button click, answered with the robot's ACK.
    pub async fn click(&self, click: &Click) -> Result<AckRecord, ControlError> {
        self.post("/control/click", click).await
    }

    /// `GET /control/transcript`.
    pub async fn transcript(&self) -> Result<Transcript, ControlError> {
        self.get("/control/transcript").await
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        }
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &B,
    ) -> Result<T, ControlError> {
        let req = self.request(self.http.post(format!("{}{path}", self.base)).json(body));
        self.answer(path, req).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &'static str) -> Result<T, ControlError> {
        let req = self.request(self.http.get(format!("{}{path}", self.base)));
        self.answer(path, req).await
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        path: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ControlError> {
        let unreachable = |e: reqwest::Error| ControlError::Unreachable {
            base: self.base.clone(),
            reason: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        if !(200..300).contains(&status) {
            return Err(ControlError::Refused {
                path,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| ControlError::Unexpected {
            path,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_base_and_never_the_token() {
        let client = ControlClient::new("http://127.0.0.1:8917/");
        assert_eq!(
            format!("{client:?}"),
            r#"ControlClient { base: "http://127.0.0.1:8917", token: None }"#
        );
        let shown = format!("{:?}", client.with_token("s3cret".into()));
        assert!(shown.contains(r#"token: Some("<redacted>")"#), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
