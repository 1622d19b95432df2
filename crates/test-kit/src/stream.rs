//! The Stream client's test pieces: a robot handler that counts what it handles, a client
//! config with short backoffs, and a polled wait. Shared by the client's tests against a
//! scripted gateway and against the sandbox.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_dingtalk_wire::{CardCallback, RobotMessage};
use jitnode_stream::{BoxFuture, ClientConfig, Handler, HandlerError, Replier, ReplyContext};
use rand::Rng;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

/// How long [`wait_until`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// A client of `id` on `base_url` whose reconnects come quickly (50 ms base, 20 ms jitter,
/// 500 ms at most), so tests of reconnecting stay short.
pub fn client_config(id: &str, secret: &str, base_url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(id, secret).with_base_url(base_url);
    c.backoff.base = Duration::from_millis(50);
    c.backoff.jitter = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(500);
    c
}

/// Polls `cond` every 10 ms; panics naming `what` after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A robot that counts its handlings per msgId. What each handling does besides is the
/// test's to set: wait for the client's shutdown (`wait_for_shutdown`), for a permit of
/// `hold` (see [`Recorder::release`]), at `gate` and for a random time in `delay_ms`; fail
/// the first attempt of a msgId starting with "fail" (`fail_first`); and reply
/// `echo: <text>` (`reply`). A card click is answered with `card_answer` (none: null) after
/// `card_delay_ms`.
#[derive(Default)]
pub struct Recorder {
    pub wait_for_shutdown: bool,
    pub hold: Option<Semaphore>,
    pub gate: Option<Arc<Notify>>,
    pub delay_ms: Range<u64>,
    pub fail_first: bool,
    pub reply: bool,
    pub card_delay_ms: u64,
    pub card_answer: Option<fn(&CardCallback) -> Value>,
    /// Handlings started.
    pub started: AtomicUsize,
    /// Handlings started and not ended.
    pub busy: AtomicUsize,
    /// The most handlings busy at once.
    pub peak: AtomicUsize,
    /// Attempts per msgId, failed ones too.
    pub attempts: Mutex<HashMap<String, usize>>,
    /// The reply errors met, as text.
    pub reply_errors: Mutex<Vec<String>>,
    /// Card clicks answered.
    pub cards_done: AtomicUsize,
    /// Handlings ended well per msgId (public so that tests may build on `..Recorder`).
    pub handled: Mutex<HashMap<String, usize>>,
}

impl Recorder {
    /// How often `msg_id` was handled to its end.
    pub fn count(&self, msg_id: &str) -> usize {
        self.handled
            .lock()
            .unwrap()
            .get(msg_id)
            .copied()
            .unwrap_or(0)
    }

    /// Handlings ended well, over every msgId.
    pub fn total(&self) -> usize {
        self.handled.lock().unwrap().values().sum()
    }

    /// Lets `n` more handlings past `hold`.
    pub fn release(&self, n: usize) {
        self.hold
            .as_ref()
            .expect("a Recorder with a hold")
            .add_permits(n);
    }

    /// One handling up to its result, without the counts of its start and end.
    async fn handle(&self, msg: &RobotMessage, ctx: &ReplyContext) -> Result<(), HandlerError> {
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(msg.msg_id.clone()).or_default();
            *n += 1;
            *n
        };
        if self.wait_for_shutdown {
            ctx.shutdown().cancelled().await;
        }
        if let Some(hold) = &self.hold {
            hold.acquire()
                .await
                .expect("the hold is never closed")
                .forget();
        }
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        if !self.delay_ms.is_empty() {
            let ms = rand::thread_rng().gen_range(self.delay_ms.clone());
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.fail_first && msg.msg_id.starts_with("fail") && attempt == 1 {
            return Err(HandlerError::failed("first attempt fails"));
        }
        if self.reply {
            let text = format!("echo: {}", msg.text().unwrap_or("?"));
            if let Err(e) = ctx.reply_text(&text).await {
                self.reply_errors.lock().unwrap().push(e.to_string());
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl Handler for Recorder {
    fn on_robot_message(
        &self,
        msg: RobotMessage,
        ctx: ReplyContext,
    ) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let r = self.handle(&msg, &ctx).await;
            self.busy.fetch_sub(1, Ordering::SeqCst);
            r?;
            *self.handled.lock().unwrap().entry(msg.msg_id).or_default() += 1;
            Ok(())
        })
    }

    fn on_card_callback(
        &self,
        cb: CardCallback,
        _replier: Replier,
    ) -> BoxFuture<'_, Result<Value, HandlerError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(self.card_delay_ms)).await;
            self.cards_done.fetch_add(1, Ordering::SeqCst);
            Ok(self.card_answer.map_or(Value::Null, |answer| answer(&cb)))
        })
    }
}
