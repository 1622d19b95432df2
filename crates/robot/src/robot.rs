//! One running robot instance: the Stream [`Handler`] that turns messages and card clicks
//! into cards, agent calls and records, using the building blocks of this crate.
//!
//! Per question: the claim in the shared store (then the client ACKs), thinking card @-mentioning the asker, the
//! agent's `run` with the question and chat id, its `TEXT_MESSAGE_CONTENT` chunks streamed
//! into the card through the [`throttle`], the answer stored, the final card with the
//! feedback buttons. Every card that was started ends finished or failed: on agent error,
//! timeout, card API failure or stop. When the card cannot show the answer, it goes out as a
//! markdown reply through the session webhook.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_dingtalk_wire::api::{Mention, Method, WebhookMessage, PATH_STANDARD_SEND};
use jitnode_dingtalk_wire::{CardCallback, ParamMap, RobotMessage};
use jitnode_host::{AppHandle, ChunkSink};
use jitnode_stream::handler::{Accept, BoxFuture, Handler, HandlerError, Replier};
use jitnode_stream::reply::{OpenApi, ReplyError};
use jitnode_stream::ReplyContext;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::callback::{Action, CallbackError};
use crate::cards::{self, ai, template, StandardCards};
use crate::config::{CardMode, Lang, RobotConfig};
use crate::message::{cut_chars, webhook_usable_at, Incoming, ReplyTarget};
use crate::records::{self, new_record_id, now_ms, RecordsAt, RobotAnswer};
use crate::refusal::Refusals;
use crate::regen::Regenerations;
use crate::reply::{self, AnswerCard, CardCall};
use crate::texts::Texts;
use crate::throttle::{self, Publish, Retry, RetryHint, ThrottleConfig};
use jitnode_store::StoredAnswer;

/// The chunk type whose text is the answer; reasoning and tool chunks stay out of the card.
pub const ANSWER_CHUNK_TYPE: &str = "TEXT_MESSAGE_CONTENT";

/// Counts running answers so `stop` can wait for them to finalize their cards.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

pub(crate) struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub(crate) fn running(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Conversations whose last session webhook is remembered.
const MAX_KNOWN_WEBHOOKS: usize = 10_000;

/// A session webhook seen in a conversation, kept to answer card clicks (which carry none).
#[derive(Clone)]
struct KnownWebhook {
    url: String,
    expires_at_ms: Option<i64>,
}

/// One robot instance's state, shared by its handler calls.
pub(crate) struct Robot {
    /// fullName of the instance (stored with every answer).
    pub(crate) name: String,
    pub(crate) config: RobotConfig,
    pub(crate) app: AppHandle,
    /// Answers and feedback: on the shared store when there is one.
    pub(crate) records: RecordsAt,
    /// Cancelled by `stop`: running answers finalize their cards and return.
    pub(crate) cancel: CancellationToken,
    pub(crate) in_flight: Arc<InFlight>,
    webhooks: Mutex<HashMap<String, KnownWebhook>>,
    regenerations: Regenerations,
    /// The shared store `jitnode run` opened: message claims across hosts.
    store: Option<jitnode_store::Store>,
    /// The refusals DingTalk gave this instance, each explained once.
    pub(crate) refusals: Refusals,
    /// The language each chat's asker last wrote in (chat id as the agent's memory key).
    langs: Mutex<HashMap<String, Lang>>,
}

/// What one answer is for, whether asked in a message or by a "regenerate" click.
struct Ask {
    question: String,
    chat_id: String,
    target: ReplyTarget,
    at: Option<Mention>,
    /// Session webhook for replies that are not cards.
    webhook: Option<String>,
    /// Context for the agent only (the text a group reply quotes); not shown on the card.
    context: Option<String>,
    /// Appended to the answer (the question was cut).
    note: Option<String>,
    /// The row to store; `answer` and time are filled in when the answer is complete.
    row: StoredAnswer,
}

enum Outcome {
    Answer(String),
    Failed(String),
    TimedOut,
    Stopped,
}

async fn send_call(api: &OpenApi, call: &CardCall) -> Result<Value, ReplyError> {
    api.call(call.method, call.path, &call.body).await
}

async fn send_calls(api: &OpenApi, calls: &[CardCall]) -> Result<(), ReplyError> {
    for c in calls {
        send_call(api, c).await?;
    }
    Ok(())
}

/// Whether a card update failed because the card does not exist: a plain 400 or 404 (not
/// one of the known refusals such as a missing permission or a rate limit, which say
/// nothing of the card).
fn never_created(e: &ReplyError) -> bool {
    matches!(
        e,
        ReplyError::Api {
            status: 400 | 404,
            refusal: None,
            ..
        }
    )
}

/// The answer text of one agent chunk, if it is one.
pub fn answer_text(chunk: &Value) -> Option<&str> {
    if chunk.get("type").and_then(Value::as_str) != Some(ANSWER_CHUNK_TYPE) {
        return None;
    }
    chunk
        .get("data")
        .and_then(|d| d.get("content"))
        .and_then(Value::as_str)
}

/// A bad card callback: the stream client's error ACK carries this text.
fn bad_request(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::bad_request(format!("bad request: {e}"))
}

impl Robot {
    pub(crate) fn new(
        name: String,
        config: RobotConfig,
        app: AppHandle,
        records: RecordsAt,
    ) -> Robot {
        if config.card.mode == CardMode::Standard {
            // Once per robot instance, at load: why its cards have no buttons.
            tracing::warn!(robot = %name, "{}", reply::STANDARD_MODE_NOTE);
        }
        Robot {
            name,
            config,
            app,
            records,
            cancel: CancellationToken::new(),
            in_flight: Arc::new(InFlight::default()),
            regenerations: Regenerations::default(),
            webhooks: Mutex::new(HashMap::new()),
            store: jitnode_store::process_store(),
            refusals: Refusals::default(),
            langs: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one card call; a rate limit is retried after the throttle's backoff, up to
    /// `fallbackAfterFailures` calls in all.
    async fn send_backing_off(&self, api: &OpenApi, call: &CardCall) -> Result<Value, ReplyError> {
        let mut failures = 0;
        loop {
            match send_call(api, call).await {
                Err(e) if e.retry() == Retry::Backoff => {
                    failures += 1;
                    if failures >= self.config.fallback_after_failures.max(1) {
                        return Err(e);
                    }
                    self.call_failed(&e, "the thinking card");
                    let wait = throttle::backoff_after(failures, self.config.card.min_interval);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.cancel.cancelled() => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    /// Logs a failed reply call: a refusal once per kind with its fix
    /// ([`crate::refusal`]), anything else as a warning.
    pub(crate) fn call_failed(&self, e: &ReplyError, during: &str) {
        match e.refusal() {
            Some(r) => {
                self.refusals.note(&r, &self.name, &self.config, during);
            }
            None => tracing::warn!(robot = %self.name, "{during} failed: {e}"),
        }
    }

    /// The lease of the shared store's claims and cards, if there is a store.
    pub(crate) fn store_lease(&self) -> Option<Duration> {
        self.store.as_ref().map(jitnode_store::Store::lease)
    }

    /// The fixed texts in the language of the user's words (`question`), the configured
    /// language when they have none.
    fn lang_of(&self, question: &str) -> Lang {
        Lang::of_text(question, self.config.language)
    }

    /// Remembers the language a chat's asker last wrote in (letters only decide it).
    fn remember_lang(&self, chat_id: &str, question: &str) {
        if !question.chars().any(char::is_alphabetic) {
            return;
        }
        let lang = Lang::of_text(question, self.config.language);
        let mut langs = self.langs.lock().unwrap_or_else(|p| p.into_inner());
        if langs.len() >= MAX_KNOWN_WEBHOOKS && !langs.contains_key(chat_id) {
            langs.clear();
        }
        langs.insert(chat_id.to_string(), lang);
    }

    /// The language to write to a chat in when its message has no words (a picture, a
    /// file): the asker's last question's, else the configured `language`.
    fn sender_lang(&self, chat_id: &str) -> Lang {
        let langs = self.langs.lock().unwrap_or_else(|p| p.into_inner());
        langs.get(chat_id).copied().unwrap_or(self.config.language)
    }

    fn remember_webhook(&self, m: &RobotMessage) {
        if let Some(url) = m.webhook() {
            let mut map = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_KNOWN_WEBHOOKS {
                // Webhooks live ~90 minutes; forget the expired ones before growing further.
                let now = now_ms();
                map.retain(|_, w| w.expires_at_ms.is_none_or(|t| now < t));
                if map.len() >= MAX_KNOWN_WEBHOOKS {
                    map.clear();
                }
            }
            map.insert(
                m.conversation_id.clone(),
                KnownWebhook {
                    url: url.to_string(),
                    expires_at_ms: m.webhook_expires_at_ms(),
                },
            );
        }
    }

    fn webhook_for(&self, conversation_id: &str) -> Option<String> {
        let map = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        map.get(conversation_id)
            .filter(|w| webhook_usable_at(w.expires_at_ms, now_ms()))
            .map(|w| w.url.clone())
    }

    async fn webhook_reply(
        &self,
        replier: &Replier,
        webhook: Option<&str>,
        body: &WebhookMessage,
    ) -> bool {
        let Some(url) = webhook else {
            tracing::warn!(robot = %self.name, "no session webhook to reply through");
            return false;
        };
        match replier.webhook.send(url, body).await {
            Ok(()) => true,
            Err(e) => {
                self.call_failed(&e, "the session webhook reply");
                false
            }
        }
    }

    /// Answers one question end to end. Returns whether the user got something (an answer
    /// or a failure notice).
    async fn answer(
        &self,
        replier: &Replier,
        ask: Ask,
        shutdown: Option<CancellationToken>,
    ) -> bool {
        let _guard = self.in_flight.enter();
        let asked_at = std::time::Instant::now();
        let texts = Texts::for_lang(self.lang_of(&ask.question));
        let api = &replier.openapi;
        let record_id = new_record_id();
        let card = AnswerCard::new(
            &self.config,
            cards::new_card_id(),
            &ask.question,
            ask.target.clone(),
            ask.at.clone(),
        );
        // Recorded before it is sent: a host that dies between the two leaves a record the
        // sweeper can act on (finalize the card, or answer again if it never came to be),
        // where the other order would leave a spinning card nobody knows of.
        let recorded = match &card {
            Some(card) => self.record_open_card(card.card_id(), &ask).await,
            None => None,
        };
        let mut card_ok = false;
        if let Some(card) = &card {
            match self.send_backing_off(api, &card.thinking()).await {
                Ok(_) => card_ok = true,
                Err(e) => self.call_failed(&e, "the thinking card"),
            }
        }
        let open_card = match recorded {
            Some(open) if card_ok => Some(open),
            Some((store, card_id)) => {
                if let Err(e) = store.close_card(&card_id, true).await {
                    tracing::warn!(robot = %self.name, "unsent card not closed in the store: {e}");
                }
                None
            }
            None => None,
        };

        let (feed, rx) = throttle::feed();
        // While the answer runs, its card stays this host's (lease renewed with the text so
        // far); a host that dies stops renewing and the sweeper takes over.
        let heartbeat = open_card
            .clone()
            .map(|(store, card_id)| self.heartbeat(store, card_id, rx.clone()));
        let feed = Arc::new(feed);
        let weak = Arc::downgrade(&feed);
        let sink = ChunkSink::new(move |chunk| {
            if let (Some(text), Some(feed)) = (answer_text(&chunk), weak.upgrade()) {
                feed.append(text);
            }
        });

        let driver = async {
            let card = match (&card, card_ok) {
                (Some(card), true) => card.clone(),
                _ => return None,
            };
            let mut first = true;
            let record = record_id.clone();
            let api = api.clone();
            let updater = move |text: String, publish: Publish| {
                let calls = match publish {
                    Publish::Partial => {
                        let calls = card.partial(&text, first);
                        first = false;
                        calls
                    }
                    Publish::Final => card.final_answer(&text, &record),
                };
                let api = api.clone();
                async move { send_calls(&api, &calls).await }
            };
            Some(throttle::drive(rx, updater, ThrottleConfig::from_robot(&self.config)).await)
        };

        let agent = async {
            let question = match &ask.context {
                Some(quote) => format!("{}\n\n{}: \"{quote}\"", ask.question, texts.quoting),
                None => ask.question.clone(),
            };
            let args = json!({"question": question, "chatId": ask.chat_id});
            let call = async {
                let started = std::time::Instant::now();
                let r = self.app.call(&self.config.agent, "run", args, sink).await;
                jitnode_metrics::global()
                    .llm_latency
                    .observe(started.elapsed());
                r
            };
            let stop = async {
                match &shutdown {
                    Some(s) => tokio::select! {
                        _ = self.cancel.cancelled() => {}
                        _ = s.cancelled() => {}
                    },
                    None => self.cancel.cancelled().await,
                }
            };
            let stopping = || {
                self.cancel.is_cancelled()
                    || shutdown.as_ref().is_some_and(|s| s.is_cancelled())
                    || self.app.stopping()
            };
            let outcome = tokio::select! {
                // Stop first: a stopping host also fails the agent's call (its element
                // stops in the same wave when the robot has not called it yet), and the
                // user should read "restarting", not "failed".
                biased;
                _ = stop => Outcome::Stopped,
                r = tokio::time::timeout(self.config.answer_timeout, call) => match r {
                    Err(_) => Outcome::TimedOut,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Ok(Ok(v)) => {
                        let text = v.get("answer").and_then(Value::as_str).map(str::to_string)
                            .filter(|a| !a.trim().is_empty())
                            .unwrap_or_else(|| feed.text());
                        if text.trim().is_empty() {
                            Outcome::Failed("the agent returned an empty answer".into())
                        } else if let Some(note) = &ask.note {
                            Outcome::Answer(format!("{text}\n\n{note}"))
                        } else {
                            Outcome::Answer(text)
                        }
                    }
                },
            };
            let outcome = match outcome {
                Outcome::Failed(_) if stopping() => Outcome::Stopped,
                o => o,
            };
            if let Outcome::Answer(text) = &outcome {
                // Stored before the final card shows buttons that refer to it.
                let mut row = ask.row.clone();
                row.record_id = record_id.clone();
                row.answer = text.clone();
                row.answered_at_ms = now_ms();
                if let Err(e) = self.records.record_answer(&row).await {
                    tracing::error!(robot = %self.name, "answer not stored: {e}");
                }
                feed.complete(text.clone());
            }
            let partial = feed.text();
            // Dropping the last strong reference closes an unfinished feed: the driver
            // returns without a final update.
            drop(feed);
            (outcome, partial)
        };

        let (report, (outcome, partial)) = tokio::join!(driver, agent);
        if let Some(h) = heartbeat {
            h.abort();
        }
        let shown = matches!(&outcome, Outcome::Answer(_))
            && report.as_ref().is_some_and(|r| r.final_published);
        if let Some((store, card_id)) = &open_card {
            // Finished either way: the final answer, or a failure notice tried below.
            if let Err(e) = store.close_card(card_id, !shown).await {
                tracing::warn!(robot = %self.name, "open card not closed in the store: {e}");
            }
        }
        let metrics = jitnode_metrics::global();
        match &outcome {
            Outcome::Answer(_) => {
                metrics.messages_answered.inc();
                metrics.answer_latency.observe(asked_at.elapsed());
            }
            Outcome::Failed(_) | Outcome::TimedOut => metrics.messages_failed.inc(),
            Outcome::Stopped => {}
        }
        match outcome {
            Outcome::Answer(text) => {
                if shown {
                    return true;
                }
                if let Some(r) = &report {
                    if let Some(e) = &r.last_error {
                        self.call_failed(e, "the answer card's updates");
                    }
                    tracing::warn!(robot = %self.name, failures = r.failures,
                        "card API kept failing; sending the answer as a markdown reply");
                }
                let body = reply::webhook_markdown(texts.fallback_title, &text, ask.at.as_ref());
                let sent = self
                    .webhook_reply(replier, ask.webhook.as_deref(), &body)
                    .await;
                if let (Some(card), Some(r)) = (&card, &report) {
                    // One last try to end the card (it may be rate limited only briefly).
                    let note = if sent {
                        texts.sent_as_message
                    } else {
                        texts.failed
                    };
                    if let Err(e) = send_calls(api, &card.failed(&r.text, note)).await {
                        tracing::debug!(robot = %self.name, "card left as it was: {e}");
                    }
                }
                sent
            }
            other => {
                let message = match &other {
                    Outcome::Failed(e) => {
                        tracing::warn!(robot = %self.name, agent = %self.config.agent, "answer failed: {e}");
                        texts.failed
                    }
                    Outcome::TimedOut => {
                        tracing::warn!(robot = %self.name, timeout = ?self.config.answer_timeout, "answer timed out");
                        texts.timed_out
                    }
                    _ => texts.stopped,
                };
                if let (Some(card), true) = (&card, card_ok) {
                    match send_calls(api, &card.failed(&partial, message)).await {
                        Ok(()) => return true,
                        Err(e) => self.call_failed(&e, "the failed card"),
                    }
                }
                let body = reply::webhook_text(message, ask.at.as_ref());
                self.webhook_reply(replier, ask.webhook.as_deref(), &body)
                    .await
            }
        }
    }

    /// Records a card about to be sent as open in the shared store, so another host can finish it if
    /// this one dies. Returns the store and card id to renew and close it with.
    async fn record_open_card(
        &self,
        card_id: &str,
        ask: &Ask,
    ) -> Option<(jitnode_store::Store, String)> {
        let store = self.store.clone()?;
        let card = jitnode_store::OpenCard {
            card_id,
            msg_key: &ask.row.message_id,
            robot: &self.name,
            question: &ask.question,
        };
        match store
            .open_card(&card, jitnode_store::host_id(), store.lease())
            .await
        {
            Ok(()) => Some((store, card_id.to_string())),
            Err(e) => {
                tracing::warn!(robot = %self.name, "open card not recorded: {e}");
                None
            }
        }
    }

    /// Renews the card's lease every third of it with the text so far, until aborted (the
    /// claim's is renewed by [`Robot::answer_claimed`]).
    fn heartbeat(
        &self,
        store: jitnode_store::Store,
        card_id: String,
        text: tokio::sync::watch::Receiver<throttle::Snapshot>,
    ) -> tokio::task::JoinHandle<()> {
        let name = self.name.clone();
        tokio::spawn(async move {
            let lease = store.lease();
            let host = jitnode_store::host_id();
            let mut tick = tokio::time::interval(heartbeat_interval(lease));
            tick.tick().await;
            loop {
                tick.tick().await;
                let last = text.borrow().text.clone();
                if let Err(e) = store.update_card(&card_id, host, &last, lease).await {
                    tracing::warn!(robot = %name, "card lease not renewed: {e}");
                }
            }
        })
    }

    /// Finalizes every card of this robot left open past its lease by a host that died
    /// mid-answer: failed, with the text it had shown and the "could not be finished"
    /// notice in the question's language (not re-answered, see ARCHITECTURE.md). Returns how
    /// many were finalized.
    pub(crate) async fn sweep(&self, api: &OpenApi) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let host = jitnode_store::host_id();
        let stale = match store
            .take_stale_cards(&self.name, host, store.lease())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(robot = %self.name, "sweeper: store unavailable: {e}");
                return 0;
            }
        };
        let mut done = 0;
        for c in stale {
            let card = AnswerCard::existing(&self.config, &c.card_id, &c.question);
            let texts = Texts::for_lang(self.lang_of(&c.question));
            match send_calls(api, &card.failed(&c.last_text, texts.stopped)).await {
                Ok(()) => {
                    done += 1;
                    tracing::info!(robot = %self.name, card = %c.card_id, dead_host = %c.dead_host,
                        "finalized a card left open by a host that stopped mid-answer");
                    if let Err(e) = store.close_card(&c.card_id, true).await {
                        tracing::warn!(robot = %self.name, "swept card not closed: {e}");
                    }
                }
                // DingTalk has no such card: its host died after recording it and before
                // sending it, so the user saw nothing. The message goes back to the
                // claims' sweep (below, in the same round) to be answered.
                Err(e) if never_created(&e) => {
                    tracing::info!(robot = %self.name, card = %c.card_id, dead_host = %c.dead_host,
                        "a card left open was never sent; answering its message again");
                    if let Err(e) = store.forget_card(&c.card_id, &c.msg_key).await {
                        tracing::warn!(robot = %self.name, "unsent card not forgotten: {e}");
                    }
                }
                // Left `finalizing` under this host's lease: the next sweep retries it.
                Err(e) => {
                    tracing::warn!(robot = %self.name, card = %c.card_id, "sweeper: card not finalized: {e}")
                }
            }
        }
        done
    }

    /// Answers the messages of this robot that a host claimed (and so ACKed) but died
    /// before it started answering: nothing was shown for them and DingTalk does not push
    /// them again, so the claim's message kept in the inbox is all that is left. At most
    /// [`SWEPT_ANSWERS`] per sweep, each in its own task like a pushed message (a stop
    /// cancels them). Returns how many were taken.
    pub(crate) async fn sweep_claims(self: &Arc<Self>, replier: &Replier) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let host = jitnode_store::host_id();
        let stale = match store
            .take_stale_claims(&self.name, host, store.lease(), SWEPT_ANSWERS)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(robot = %self.name, "sweeper: store unavailable: {e}");
                return 0;
            }
        };
        let taken = stale.len();
        for c in stale {
            let m: RobotMessage = match serde_json::from_str(&c.body) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(robot = %self.name, message = %c.msg_key,
                        "sweeper: kept message unreadable, not answered: {e}");
                    let failed = jitnode_store::ClaimState::Failed;
                    if let Err(e) = store
                        .set_claim(&c.msg_key, host, failed, store.lease())
                        .await
                    {
                        tracing::warn!(robot = %self.name, "claim not marked failed: {e}");
                    }
                    continue;
                }
            };
            tracing::info!(robot = %self.name, message = %c.msg_key, dead_host = %c.dead_host,
                "answering a message claimed by a host that stopped before answering it");
            let (robot, replier) = (self.clone(), replier.clone());
            let retry = WhoRetries::Sweep {
                attempts: c.attempts,
            };
            tokio::spawn(async move {
                let shutdown = robot.cancel.child_token();
                if let Err(e) = robot.answer_claimed(m, replier, shutdown, retry).await {
                    tracing::warn!(robot = %robot.name, "swept message not answered: {e}");
                }
            });
        }
        taken
    }

    /// Decides before the ACK whether this host answers `m`: with a shared store, by
    /// claiming its `msgId` there (an insert on a unique key), so the ACK follows the claim.
    /// A message another host claimed is ACKed and skipped. While the store is unreachable
    /// the message is left un-ACKed: DingTalk redelivers it, to this host once the store is
    /// back or to another that reaches it (see ARCHITECTURE.md).
    pub(crate) async fn accept(&self, m: &RobotMessage) -> Accept {
        if self.cancel.is_cancelled() {
            // Stopping: leave the message to a redelivery (to this app's next connection).
            return Accept::Refuse(format!("{}: the robot is stopping", self.name));
        }
        let Some(store) = self.claim_store(m) else {
            return Accept::Take;
        };
        let started = std::time::Instant::now();
        // Serializing these types cannot fail (string keys only); kept in the inbox so a
        // live host can answer it if this one dies before starting.
        let body = serde_json::to_string(m).unwrap_or_default();
        let kept = jitnode_store::InboxMessage {
            key: &m.msg_id,
            robot: &self.name,
            body: &body,
        };
        let claim = store
            .claim_message(&kept, jitnode_store::host_id(), store.lease())
            .await;
        jitnode_metrics::global()
            .claim_latency
            .observe(started.elapsed());
        match claim {
            Ok(jitnode_store::Claim::Won { takeover }) => {
                if takeover {
                    tracing::info!(robot = %self.name, "claim of a dead host taken over");
                }
                Accept::Take
            }
            Ok(jitnode_store::Claim::Duplicate { host, state }) => {
                tracing::info!(robot = %self.name, owner = %host, state = state.as_str(),
                    "message claimed by another host; not answering it here");
                Accept::Skip
            }
            Err(e) => {
                jitnode_metrics::global().messages_failed.inc();
                tracing::error!(robot = %self.name,
                    "store unreachable; message left un-ACKed for DingTalk to redeliver: {e}");
                Accept::Refuse(format!("{}: store unreachable", self.name))
            }
        }
    }

    /// The store that claims `m`, if there is one and `m` has a key to claim by.
    fn claim_store(&self, m: &RobotMessage) -> Option<&jitnode_store::Store> {
        self.store.as_ref().filter(|_| !m.msg_id.is_empty())
    }

    /// Handles a message [`Robot::accept`] took, then records the claim's end: answered, or
    /// released when nothing reached the user so the redelivery is answered at once
    /// instead of after the lease.
    async fn on_message(
        &self,
        m: RobotMessage,
        replier: Replier,
        shutdown: CancellationToken,
    ) -> Result<(), HandlerError> {
        self.answer_claimed(m, replier, shutdown, WhoRetries::Redelivery)
            .await
    }

    /// Answers a message this host holds the claim on, and records the claim's end; `retry`
    /// says who tries again when no answer reached the user.
    async fn answer_claimed(
        &self,
        m: RobotMessage,
        replier: Replier,
        shutdown: CancellationToken,
        retry: WhoRetries,
    ) -> Result<(), HandlerError> {
        let claim = self.claim_store(&m).cloned().map(|s| (s, m.msg_id.clone()));
        if let Some((store, key)) = &claim {
            // The claim may have waited for a handler slot past its lease and been taken by
            // another host's sweeper: only the holder answers (compare-and-set on the host).
            let host = jitnode_store::host_id();
            match store
                .set_claim(
                    key,
                    host,
                    jitnode_store::ClaimState::Answering,
                    store.lease(),
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(robot = %self.name,
                        "claim taken over by another host before answering; not answering here");
                    return Ok(());
                }
                Err(e) => tracing::warn!(robot = %self.name, "claim not marked answering: {e}"),
            }
        }
        // While it answers, the claim stays this host's: a sweeper takes an `answering`
        // claim without a card once its lease runs out (its host died before the card).
        let renewing = CancellationToken::new();
        let renewer = claim.clone().map(|(store, key)| {
            tokio::spawn(renew_claim(store, key, self.name.clone(), renewing.clone()))
        });
        let result = self.handle_message(m, replier, shutdown).await;
        // Stopped and awaited, not aborted: a renewal still in flight could otherwise land
        // after the claim's end below and leave it `answering`.
        renewing.cancel();
        if let Some(r) = renewer {
            let _ = r.await;
        }
        if let Some((store, key)) = claim {
            let host = jitnode_store::host_id();
            let done = match &result {
                Ok(()) => store
                    .set_claim(
                        &key,
                        host,
                        jitnode_store::ClaimState::Answered,
                        store.lease(),
                    )
                    .await
                    .map(drop),
                Err(_) => match retry {
                    // A pushed message is pushed again (the client did not ACK a failure):
                    // release it for whichever host gets the redelivery.
                    WhoRetries::Redelivery => store.release_claim(&key, host).await,
                    // Nothing pushes a swept message again: keep it for a later sweep, a
                    // lease from now, until it has had its attempts.
                    WhoRetries::Sweep { attempts } => {
                        let state = if attempts < CLAIM_ATTEMPTS {
                            jitnode_store::ClaimState::Claimed
                        } else {
                            tracing::warn!(robot = %self.name, attempts,
                                "a swept message was not answered after its last attempt; marked failed");
                            jitnode_store::ClaimState::Failed
                        };
                        store
                            .set_claim(&key, host, state, store.lease())
                            .await
                            .map(drop)
                    }
                },
            };
            if let Err(e) = done {
                tracing::warn!(robot = %self.name, "could not record the claim's end: {e}");
            }
        }
        result
    }

    async fn handle_message(
        &self,
        m: RobotMessage,
        replier: Replier,
        shutdown: CancellationToken,
    ) -> Result<(), HandlerError> {
        m.check()
            .map_err(|e| HandlerError::failed(format!("{}: {e}", self.name)))?;
        jitnode_metrics::global().messages_received.inc();
        self.remember_webhook(&m);
        let webhook = m.webhook().map(str::to_string);
        if let Some(question) = m.question() {
            self.remember_lang(&m.chat_id(), &question);
        }
        if let Some(text) = m.polite_reply(self.sender_lang(&m.chat_id())) {
            let body = reply::webhook_text(text, m.mention().as_ref());
            self.webhook_reply(&replier, webhook.as_deref(), &body)
                .await;
            return Ok(());
        }
        let Some(question) = m.question() else {
            return Ok(());
        };
        // A redelivery that outlived the client's dedupe window (or a restart).
        match self.records.answer_by_message(&m.msg_id).await {
            Ok(Some(_)) => {
                tracing::info!(robot = %self.name, "message answered before; not answering again");
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(robot = %self.name, "records not readable: {e}"),
        }
        let (question, cut) = cut_chars(&question, self.config.max_question_chars.max(1));
        let note = cut.then(|| {
            let texts = Texts::for_lang(self.lang_of(&question));
            texts
                .question_cut
                .replace("{n}", &self.config.max_question_chars.to_string())
        });
        let row = records::answer_to(&m, &self.name, "", &question, "");
        let ask = Ask {
            chat_id: m.chat_id(),
            target: m.reply_target(),
            at: m.mention(),
            webhook,
            context: m.quoted(),
            note,
            row,
            question,
        };
        if self.answer(&replier, ask, Some(shutdown)).await {
            Ok(())
        } else {
            // Nothing reached the user: let a redelivery try again.
            Err(HandlerError::failed("no reply could be delivered"))
        }
    }

    async fn answer_row(&self, record: &str) -> Result<StoredAnswer, HandlerError> {
        match self.records.answer(record).await {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(bad_request(format!("no answer with record id {record:?}"))),
            Err(e) => Err(HandlerError::failed(e)),
        }
    }

    async fn on_callback(
        self: Arc<Self>,
        cb: CardCallback,
        replier: Replier,
    ) -> Result<Value, HandlerError> {
        let action = Action::from_callback(&cb).map_err(|e: CallbackError| {
            tracing::warn!(robot = %self.name, "bad card callback: {e}");
            bad_request(e)
        })?;
        // A click redelivered to another host is acted on once: the first host to record
        // its id in the shared store wins (feedback is idempotent anyway; a regeneration
        // is not). With the store unreachable the click is acted on.
        if let Some(store) = &self.store {
            match store
                .first_callback(&cb.message_id, jitnode_store::host_id())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(robot = %self.name, "card click seen before; not acted on again");
                    return Ok(Value::Null);
                }
                Err(e) => tracing::warn!(robot = %self.name, "click not deduplicated: {e}"),
            }
        }
        let row = self.answer_row(action.record()).await?;
        let lang = self.lang_of(&row.question);
        let texts = Texts::for_lang(lang);
        match action {
            Action::Feedback { kind, record } => {
                let user = Some(cb.user_id.as_str())
                    .filter(|u| !u.is_empty())
                    .unwrap_or(&row.user_id);
                self.records
                    .record_feedback(&record, user, kind, now_ms())
                    .await
                    .map_err(HandlerError::failed)?;
                match self.config.card.mode {
                    CardMode::Template => Ok(template::callback_response(&template::thanks(
                        kind, &record, lang,
                    ))),
                    CardMode::Ai => Ok(template::callback_response(&ai::thanks(
                        &row.question,
                        &row.answer,
                        &record,
                        lang,
                    ))),
                    CardMode::Standard => {
                        if let Some(card_id) = Some(&cb.out_track_id).filter(|c| !c.is_empty()) {
                            if let Some(card) = AnswerCard::new(
                                &self.config,
                                card_id.clone(),
                                &row.question,
                                row.reply_target(),
                                row.at_user(),
                            ) {
                                let calls = card.thanks(&row.answer, kind, &record);
                                if let Err(e) = send_calls(&replier.openapi, &calls).await {
                                    self.call_failed(&e, "the thank-you card");
                                }
                            }
                        }
                        Ok(Value::Null)
                    }
                }
            }
            Action::Regenerate { record } => {
                let permit = match self.regenerations.try_start(
                    &record,
                    &row.user_id,
                    std::time::Instant::now(),
                ) {
                    Ok(p) => p,
                    Err(why) => {
                        // ACKed all the same: DingTalk must not redeliver the click.
                        tracing::info!(robot = %self.name, %record, "regenerate click ignored: {why}");
                        return Ok(Value::Null);
                    }
                };
                let webhook = self.webhook_for(&row.conversation_id);
                let chat_id = row
                    .conversation_kind()
                    .chat_id(&row.conversation_id, &row.user_id);
                let mut new_row = records::regenerated_answer(&row, "", &cb.message_id, "");
                new_row.regenerated_from = Some(record);
                let ask = Ask {
                    question: row.question.clone(),
                    chat_id,
                    target: row.reply_target(),
                    at: row.at_user(),
                    webhook,
                    context: None,
                    note: None,
                    row: new_row,
                };
                // The click is ACKed at once; the new answer card follows. Counted from
                // here, so a stop right now still waits for it.
                let guard = self.in_flight.enter();
                let robot = self.clone();
                tokio::spawn(async move {
                    robot.answer(&replier, ask, None).await;
                    drop(permit);
                    drop(guard);
                });
                Ok(Value::Null)
            }
            Action::ContinueChat { .. } => {
                if let Some(url) = self.webhook_for(&row.conversation_id) {
                    let body = reply::webhook_text(texts.invitation, row.at_user().as_ref());
                    if self.webhook_reply(&replier, Some(&url), &body).await {
                        return Ok(Value::Null);
                    }
                }
                match self.config.card.mode {
                    CardMode::Ai => Ok(template::callback_response(&ai::invitation(
                        &row.question,
                        &row.answer,
                        lang,
                    ))),
                    CardMode::Template => {
                        let mut notice = ParamMap::new();
                        notice.insert("notice".into(), texts.invitation.into());
                        Ok(template::callback_response(&notice))
                    }
                    CardMode::Standard => {
                        // No live session webhook: the invitation goes out as a small card.
                        let id = cards::new_card_id();
                        let card = StandardCards::new(id.clone(), lang).failed(
                            &row.question,
                            "",
                            texts.invitation,
                        );
                        if let Some(body) = cards::standard_send_body(
                            &self.config.robot_code,
                            &id,
                            &card,
                            &row.reply_target(),
                            row.at_user().as_ref(),
                        ) {
                            if let Err(e) = replier
                                .openapi
                                .call(Method::Post, PATH_STANDARD_SEND, &body)
                                .await
                            {
                                self.call_failed(&e, "the invitation card");
                            }
                        }
                        Ok(Value::Null)
                    }
                }
            }
        }
    }
}

/// The Stream handler of one robot instance.
pub(crate) struct RobotHandler(pub(crate) Arc<Robot>);

impl Handler for RobotHandler {
    fn accept_robot_message<'a>(&'a self, msg: &'a RobotMessage) -> BoxFuture<'a, Accept> {
        Box::pin(self.0.accept(msg))
    }

    fn on_robot_message(
        &self,
        msg: RobotMessage,
        ctx: ReplyContext,
    ) -> BoxFuture<'_, Result<(), HandlerError>> {
        let shutdown = ctx.shutdown().clone();
        let replier = ctx.replier().clone();
        Box::pin(self.0.on_message(msg, replier, shutdown))
    }

    fn on_card_callback(
        &self,
        cb: CardCallback,
        replier: Replier,
    ) -> BoxFuture<'_, Result<Value, HandlerError>> {
        Box::pin(self.0.clone().on_callback(cb, replier))
    }
}

/// How often a running answer renews its card's lease: three times per lease, so one
/// missed renewal does not let a sweeper take a live card.
pub(crate) fn heartbeat_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(100))
}

/// Who tries a message again when its answer reached nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhoRetries {
    /// DingTalk pushes it again: the claim is released.
    Redelivery,
    /// A sweeper took it from a dead host; `attempts` counts the claims so far.
    Sweep { attempts: i64 },
}

/// Renews this host's `answering` claim on `key` every third of its lease, until `stop`.
async fn renew_claim(
    store: jitnode_store::Store,
    key: String,
    robot: String,
    stop: CancellationToken,
) {
    let lease = store.lease();
    let host = jitnode_store::host_id();
    let mut tick = tokio::time::interval(heartbeat_interval(lease));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let answering = jitnode_store::ClaimState::Answering;
        if let Err(e) = store.set_claim(&key, host, answering, lease).await {
            tracing::warn!(robot = %robot, "claim lease not renewed: {e}");
        }
    }
}

/// Claims a message gets in all (its first host's, then sweepers') before a sweeper gives
/// it up as failed: a card API that is down for a few leases does not lose it, and one
/// that refuses it for good does not retry it forever.
pub(crate) const CLAIM_ATTEMPTS: i64 = 3;

/// How many messages of dead hosts one sweep takes to answer: a backlog is spread over
/// sweeps (and hosts) instead of starting all its answers at once.
pub(crate) const SWEPT_ANSWERS: usize = 32;

/// How often the sweeper looks for dead hosts' cards: twice per lease, so a card is
/// finalized within 1.5 leases of its host's death.
pub(crate) fn sweep_interval(lease: Duration) -> Duration {
    (lease / 2).max(Duration::from_millis(200))
}

/// How long `stop` waits for running answers to finalize their cards.
pub(crate) const FINALIZE_BUDGET: Duration = Duration::from_secs(3);
