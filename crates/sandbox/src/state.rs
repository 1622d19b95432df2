//! The sandbox's memory and every operation on it. HTTP handlers and the Rust handle both
//! call into [`Shared`], so the two control surfaces cannot drift apart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jitnode_dingtalk_wire::api::ai_card;
use jitnode_dingtalk_wire::frame::{
    Frame, FrameType, TOPIC_CARD_CALLBACK, TOPIC_DISCONNECT, TOPIC_ROBOT,
};
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::types::*;
use crate::SandboxError;

/// Tries of the redelivery of an unACKed push while the app has no connection open.
pub const UNACKED_REDELIVERY_ATTEMPTS: u32 = 10;

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Out {
    Text(String),
    /// Close frame, then end.
    Close(String),
    /// End without a close frame (TCP just goes away).
    Drop,
}

pub(crate) struct App {
    pub secret: String,
}

pub(crate) struct Ticket {
    pub client_id: String,
    pub topics: Vec<String>,
    pub expires: Instant,
    pub used: bool,
}

pub(crate) struct Conn {
    pub client_id: String,
    pub topics: Vec<String>,
    pub tx: mpsc::UnboundedSender<Out>,
    pub accepting: bool,
    pub pushed: u64,
}

pub(crate) struct Pushed {
    pub connection_id: String,
    pub kind: FrameType,
    pub topic: String,
    pub at: Instant,
    pub acked: bool,
}

pub(crate) struct Session {
    pub client_id: String,
    pub conversation_id: String,
    pub expires: Instant,
}

pub(crate) struct Token {
    pub client_id: String,
    pub expires: Instant,
}

/// A list keeping only its newest `cap` items (the oldest go first); see
/// [`SandboxConfig::max_records`]. Reads go through `Deref` to the deque.
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
    /// Items pushed out so far.
    dropped: u64,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring::new(DEFAULT_MAX_RECORDS)
    }
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Ring<T> {
        Ring {
            items: VecDeque::new(),
            cap,
            dropped: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.cap == 0 {
            self.dropped += 1;
            return;
        }
        if self.items.len() >= self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    /// Items ever pushed, kept or dropped.
    pub fn total(&self) -> u64 {
        self.items.len() as u64 + self.dropped
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)
    }

    pub fn iter_mut(&mut self) -> std::collections::vec_deque::IterMut<'_, T> {
        self.items.iter_mut()
    }

    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.items.iter().cloned().collect()
    }
}

impl<T> std::ops::Deref for Ring<T> {
    type Target = VecDeque<T>;
    fn deref(&self) -> &VecDeque<T> {
        &self.items
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub apps: HashMap<String, App>,
    pub tickets: HashMap<String, Ticket>,
    pub conns: BTreeMap<String, Conn>,
    pub pushed: HashMap<String, Pushed>,
    pub acks: Ring<AckRecord>,
    pub pings: Ring<PingRecord>,
    pub problems: Ring<String>,
    pub sessions: HashMap<String, Session>,
    pub tokens: HashMap<String, Token>,
    pub entries: Ring<TranscriptEntry>,
    pub cards: BTreeMap<String, CardState>,
    pub ping_mode: PingMode,
    pub card_fault: Option<CardFault>,
    /// Injected refusals, first match wins ([`crate::refuse`]).
    pub refusals: Vec<RefusalFault>,
    /// Posted messages by messageId, for redelivery.
    pub posted: HashMap<String, (String, String)>,
    /// Accepted session webhook replies so far.
    pub replies: u64,
    /// Woken on every new transcript entry (each card or reply call makes one), so waiters
    /// look at the transcript once per change instead of polling copies of it.
    pub entries_changed: Arc<Notify>,
}

impl State {
    /// Empty state whose lists keep `max_records` each.
    pub fn new(max_records: usize) -> State {
        State {
            acks: Ring::new(max_records),
            pings: Ring::new(max_records),
            problems: Ring::new(max_records),
            entries: Ring::new(max_records),
            ..State::default()
        }
    }
}

impl State {
    /// The kept transcript entries numbered after `seq`. Entries are numbered 1.. without
    /// gaps, so the new ones are the last few.
    pub fn entries_after(&self, seq: u64) -> impl Iterator<Item = &TranscriptEntry> {
        let fresh = self.entries.total().saturating_sub(seq);
        let kept = self.entries.len();
        let skip = kept.saturating_sub(usize::try_from(fresh).unwrap_or(kept));
        self.entries.iter().skip(skip)
    }

    /// The open connection `id`, or the error naming it.
    pub fn conn_mut(&mut self, id: &str) -> Result<&mut Conn, SandboxError> {
        self.conns
            .get_mut(id)
            .ok_or_else(|| SandboxError::UnknownConnection(id.to_string()))
    }
}

/// `now + timeout`, saturating: a huge timeout (`Duration::MAX`) means "practically
/// never", not an overflow panic.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    // About 30 years: far beyond any run, and safe to add to any Instant.
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

pub(crate) struct Inner {
    pub config: SandboxConfig,
    pub addr: SocketAddr,
    pub state: Mutex<State>,
    pub ack_notify: Notify,
    pub reply_notify: Notify,
    pub seq: AtomicU64,
}

/// Cheap clonable handle on the sandbox's memory.
#[derive(Clone)]
pub(crate) struct Shared(pub Arc<Inner>);

pub(crate) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rng.gen();
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a sandbox bug; keep serving what is there.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.0.config
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.0.addr)
    }

    /// Message ids shaped like DingTalk's (`212ca9d7_974_1898c159aa6_1783b`).
    pub fn next_message_id(&self) -> String {
        let n = self.0.seq.fetch_add(1, Ordering::Relaxed);
        let r: u32 = rand::thread_rng().gen();
        format!("{:08x}_{}_{:x}_{:x}", r, n, epoch_ms(), r >> 12)
    }

    pub fn register_app(&self, client_id: &str, secret: &str) {
        self.lock().apps.insert(
            client_id.to_string(),
            App {
                secret: secret.to_string(),
            },
        );
    }

    pub fn check_credentials(&self, client_id: &str, secret: &str) -> bool {
        self.lock()
            .apps
            .get(client_id)
            .is_some_and(|a| a.secret == secret)
    }

    pub fn issue_ticket(&self, client_id: &str, topics: Vec<String>) -> String {
        let ticket = uuid::Uuid::new_v4().to_string();
        let expires = Instant::now() + self.0.config.ticket_ttl;
        self.lock().tickets.insert(
            ticket.clone(),
            Ticket {
                client_id: client_id.to_string(),
                topics,
                expires,
                used: false,
            },
        );
        ticket
    }

    /// Marks the ticket used; returns (client_id, topics) or why it is refused.
    pub fn take_ticket(&self, ticket: &str) -> Result<(String, Vec<String>), &'static str> {
        let mut st = self.lock();
        let t = st.tickets.get_mut(ticket).ok_or("unknown ticket")?;
        if t.used {
            return Err("ticket already used");
        }
        if Instant::now() >= t.expires {
            return Err("ticket expired");
        }
        t.used = true;
        Ok((t.client_id.clone(), t.topics.clone()))
    }

    pub fn add_conn(
        &self,
        client_id: String,
        topics: Vec<String>,
        tx: mpsc::UnboundedSender<Out>,
    ) -> String {
        let id = format!("conn-{}", random_hex(8));
        self.lock().conns.insert(
            id.clone(),
            Conn {
                client_id,
                topics,
                tx,
                accepting: true,
                pushed: 0,
            },
        );
        id
    }

    pub fn remove_conn(&self, id: &str) {
        self.lock().conns.remove(id);
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.lock()
            .conns
            .iter()
            .map(|(id, c)| ConnectionInfo {
                connection_id: id.clone(),
                client_id: c.client_id.clone(),
                topics: c.topics.clone(),
                accepting: c.accepting,
                pushed: c.pushed,
            })
            .collect()
    }

    /// Pushes a frame on one accepting connection of the app subscribed to the topic, chosen
    /// at random. Returns the connection id.
    pub fn push(
        &self,
        client_id: &str,
        kind: FrameType,
        topic: &str,
        message_id: &str,
        data: &Value,
        extra_headers: Vec<(String, String)>,
    ) -> Result<String, SandboxError> {
        self.push_on(
            None,
            client_id,
            kind,
            topic,
            message_id,
            data.to_string(),
            extra_headers,
        )
    }

    /// [`push`](Self::push) with `data` already encoded (a redelivery pushes the same
    /// text), on connection `only` when given (it must be one of the app's accepting
    /// connections subscribed to the topic).
    #[allow(clippy::too_many_arguments)]
    fn push_on(
        &self,
        only: Option<&str>,
        client_id: &str,
        kind: FrameType,
        topic: &str,
        message_id: &str,
        data: String,
        extra_headers: Vec<(String, String)>,
    ) -> Result<String, SandboxError> {
        let mut st = self.lock();
        if !st.apps.contains_key(client_id) {
            return Err(SandboxError::UnknownApp(client_id.to_string()));
        }
        if let Some(id) = only {
            if !st.conns.contains_key(id) {
                return Err(SandboxError::UnknownConnection(id.to_string()));
            }
        }
        let candidates: Vec<String> = st
            .conns
            .iter()
            .filter(|(id, c)| {
                c.client_id == client_id
                    && c.accepting
                    && c.topics.iter().any(|t| t == topic)
                    && only.is_none_or(|o| o == id.as_str())
            })
            .map(|(id, _)| id.clone())
            .collect();
        let conn_id = candidates
            .choose(&mut rand::thread_rng())
            .cloned()
            .ok_or_else(|| SandboxError::NoConnection {
                client_id: client_id.to_string(),
                topic: topic.to_string(),
            })?;
        let mut frame = Frame::new(kind, topic, message_id, &Value::Null);
        frame.data = data;
        frame.headers.insert("appId".into(), client_id.to_string());
        frame.headers.insert("connectionId".into(), conn_id.clone());
        frame.headers.insert("time".into(), epoch_ms().to_string());
        frame.headers.extend(extra_headers);
        st.pushed.insert(
            message_id.to_string(),
            Pushed {
                connection_id: conn_id.clone(),
                kind,
                topic: topic.to_string(),
                at: Instant::now(),
                acked: false,
            },
        );
        let conn = st
            .conns
            .get_mut(&conn_id)
            .expect("candidate was just found");
        conn.pushed += 1;
        // A closed channel means the connection task just ended; the frame is lost like on
        // a real dying link, and no ACK will come.
        let _ = conn.tx.send(Out::Text(frame.to_text()));
        Ok(conn_id)
    }

    pub fn post_message(&self, m: &PostMessage) -> Result<Posted, SandboxError> {
        if !self.lock().apps.contains_key(&m.client_id) {
            return Err(SandboxError::UnknownApp(m.client_id.clone()));
        }
        let staff = m.sender_staff_id.clone();
        let sender_key = staff
            .clone()
            .unwrap_or_else(|| format!("ext-{}", m.sender_nick));
        let conversation_id = m.conversation_id.clone().unwrap_or_else(|| {
            if m.group {
                "cidGroupDefault==".to_string()
            } else {
                // A one-to-one chat is between one user and one robot: two robots never
                // share it.
                format!("cidp2p{}.{}==", sender_key, m.client_id)
            }
        });
        let session = random_hex(16);
        let session_webhook = format!(
            "{}/robot/sendBySession?session={}",
            self.base_url(),
            session
        );
        let now = epoch_ms();
        let ttl = self.0.config.webhook_ttl;
        self.lock().sessions.insert(
            session,
            Session {
                client_id: m.client_id.clone(),
                conversation_id: conversation_id.clone(),
                expires: Instant::now() + ttl,
            },
        );
        let msg_id = format!("msg{}==", random_hex(11));
        let chatbot_user_id = format!("$:LWCP_v1:$bot{}", m.client_id);
        let mut data = serde_json::Map::new();
        data.insert("msgId".into(), json!(msg_id));
        data.insert("msgtype".into(), json!(m.msgtype));
        if m.msgtype == "text" {
            // A group message keeps the space left over from the @-mention.
            let content = if m.group {
                format!(" {}", m.text)
            } else {
                m.text.clone()
            };
            let mut text = json!({ "content": content });
            if let Some(quoted) = &m.replied_msg {
                text["isReplyMsg"] = json!(true);
                text["repliedMsg"] = quoted.clone();
            }
            data.insert("text".into(), text);
        } else {
            let content = m
                .content
                .clone()
                .unwrap_or_else(|| match m.msgtype.as_str() {
                    "audio" => {
                        json!({"recognition": m.text, "duration": 3000, "downloadCode": "dc-audio"})
                    }
                    "picture" => {
                        json!({"downloadCode": "dc-picture", "pictureDownloadCode": "pdc"})
                    }
                    "richText" => json!({"richText": [{"text": m.text}]}),
                    _ => json!({}),
                });
            data.insert("content".into(), content);
        }
        data.insert("conversationId".into(), json!(conversation_id));
        data.insert(
            "conversationType".into(),
            json!(if m.group { "2" } else { "1" }),
        );
        if m.group {
            data.insert(
                "conversationTitle".into(),
                json!(m.conversation_title.as_deref().unwrap_or("Sandbox group")),
            );
        }
        data.insert("senderId".into(), json!(format!("$:LWCP_v1:${sender_key}")));
        if let Some(s) = &staff {
            data.insert("senderStaffId".into(), json!(s));
        }
        data.insert("senderNick".into(), json!(m.sender_nick));
        data.insert("senderCorpId".into(), json!("dingsandboxcorp"));
        data.insert("senderPlatform".into(), json!("Mac"));
        data.insert("isAdmin".into(), json!(false));
        data.insert("chatbotUserId".into(), json!(chatbot_user_id));
        data.insert("chatbotCorpId".into(), json!("dingsandboxcorp"));
        data.insert("robotCode".into(), json!(m.client_id));
        let in_at_list = !m.group || m.at_robot;
        data.insert("isInAtList".into(), json!(in_at_list));
        let mut at_users = Vec::new();
        if m.group && m.at_robot {
            at_users.push(json!({ "dingtalkId": chatbot_user_id }));
        }
        for u in &m.at_users {
            at_users.push(json!({ "dingtalkId": format!("$:LWCP_v1:${u}"), "staffId": u }));
        }
        if !at_users.is_empty() {
            data.insert("atUsers".into(), Value::Array(at_users));
        }
        data.insert("sessionWebhook".into(), json!(session_webhook));
        data.insert(
            "sessionWebhookExpiredTime".into(),
            json!(now + ttl.as_millis() as u64),
        );
        data.insert("createAt".into(), json!(now));
        data.insert("openThreadId".into(), json!(conversation_id));
        let data = Value::Object(data);

        if m.group && !m.at_robot {
            return Ok(Posted {
                msg_id,
                message_id: String::new(),
                conversation_id,
                session_webhook,
                connection_id: None,
                delivered: false,
                data,
            });
        }
        let message_id = self.next_message_id();
        // Encoded once: the frame carries it, and a redelivery pushes the same text.
        let text = data.to_string();
        let conn = self.push_on(
            None,
            &m.client_id,
            FrameType::Callback,
            TOPIC_ROBOT,
            &message_id,
            text.clone(),
            Vec::new(),
        )?;
        self.lock()
            .posted
            .insert(message_id.clone(), (m.client_id.clone(), text));
        self.watch_ack(&message_id);
        Ok(Posted {
            msg_id,
            message_id,
            conversation_id,
            session_webhook,
            connection_id: Some(conn),
            delivered: true,
            data,
        })
    }

    /// Pushes the same message again (same `data`, so the same `msgId`) under a new messageId,
    /// as DingTalk does when an ACK came late. Returns the new messageId.
    pub fn redeliver_now(&self, message_id: &str) -> Result<String, SandboxError> {
        self.redeliver_on(message_id, None)
    }

    /// [`redeliver_now`](Self::redeliver_now) on a chosen connection (`None`: at random).
    pub fn redeliver_on(
        &self,
        message_id: &str,
        connection_id: Option<&str>,
    ) -> Result<String, SandboxError> {
        let (client_id, data) = self
            .lock()
            .posted
            .get(message_id)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownMessage(message_id.to_string()))?;
        let new_id = self.next_message_id();
        self.push_on(
            connection_id,
            &client_id,
            FrameType::Callback,
            TOPIC_ROBOT,
            &new_id,
            data.clone(),
            Vec::new(),
        )?;
        self.lock().posted.insert(new_id.clone(), (client_id, data));
        self.watch_ack(&new_id);
        Ok(new_id)
    }

    /// Pushes an EVENT frame (topic `*` subscribers) with DingTalk's event headers.
    pub fn push_event(
        &self,
        client_id: &str,
        event_type: &str,
        data: &Value,
    ) -> Result<(String, String), SandboxError> {
        let message_id = self.next_message_id();
        let headers = vec![
            ("eventId".to_string(), random_hex(16)),
            ("eventType".to_string(), event_type.to_string()),
            ("eventCorpId".to_string(), "dingsandboxcorp".to_string()),
            ("eventBornTime".to_string(), epoch_ms().to_string()),
            ("eventUnifiedAppId".to_string(), client_id.to_string()),
        ];
        let conn = self.push(client_id, FrameType::Event, "*", &message_id, data, headers)?;
        Ok((message_id, conn))
    }

    /// Writes `text` as is on a connection (malformed frames for client tests). A
    /// `headers.messageId` in it is remembered, so the ACK the client owes is expected.
    pub fn send_raw(&self, connection_id: &str, text: &str) -> Result<(), SandboxError> {
        let mut st = self.lock();
        if !st.conns.contains_key(connection_id) {
            return Err(SandboxError::UnknownConnection(connection_id.to_string()));
        }
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if let Some(id) = v.pointer("/headers/messageId").and_then(Value::as_str) {
            let kind = match v.get("type").and_then(Value::as_str) {
                Some("SYSTEM") => FrameType::System,
                Some("EVENT") => FrameType::Event,
                _ => FrameType::Callback,
            };
            let topic = v
                .pointer("/headers/topic")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            st.pushed.insert(
                id.to_string(),
                Pushed {
                    connection_id: connection_id.to_string(),
                    kind,
                    topic,
                    at: Instant::now(),
                    acked: false,
                },
            );
        }
        let conn = st.conns.get(connection_id).expect("checked above");
        let _ = conn.tx.send(Out::Text(text.to_string()));
        Ok(())
    }

    /// With `redeliver_unacked_after` set, pushes the message again if its ACK is late.
    /// When the app has no open connection at that moment (a dropped link still
    /// reconnecting), it tries again each `redeliver_unacked_after`, up to
    /// [`UNACKED_REDELIVERY_ATTEMPTS`] times, instead of losing the message at once.
    fn watch_ack(&self, message_id: &str) {
        let Some(after) = self.0.config.redeliver_unacked_after else {
            return;
        };
        let sh = self.clone();
        let id = message_id.to_string();
        tokio::spawn(async move {
            for _ in 0..UNACKED_REDELIVERY_ATTEMPTS {
                tokio::time::sleep(after).await;
                let acked = sh.lock().pushed.get(&id).is_some_and(|p| p.acked);
                if acked {
                    return;
                }
                match sh.redeliver_now(&id) {
                    // The new push is watched in turn.
                    Ok(new_id) => {
                        tracing::debug!(%id, %new_id, "redelivered a message whose ACK is late");
                        return;
                    }
                    Err(SandboxError::NoConnection { .. }) => continue,
                    Err(e) => {
                        sh.lock()
                            .problems
                            .push(format!("redelivery of {id} failed: {e}"));
                        return;
                    }
                }
            }
            sh.lock().problems.push(format!(
                "{id}: not ACKed and no connection to redeliver it on after {UNACKED_REDELIVERY_ATTEMPTS} tries; lost"
            ));
        });
    }

    pub fn send_disconnect(&self, connection_id: &str) -> Result<(), SandboxError> {
        let mut st = self.lock();
        let conn = st.conn_mut(connection_id)?;
        conn.accepting = false;
        let id = self.next_message_id();
        let frame = Frame::new(
            FrameType::System,
            TOPIC_DISCONNECT,
            &id,
            &json!({"reason": "persistent connection is timeout"}),
        );
        let _ = conn.tx.send(Out::Text(frame.to_text()));
        let tx = conn.tx.clone();
        let grace = self.0.config.disconnect_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = tx.send(Out::Close("disconnected".into()));
        });
        Ok(())
    }

    pub fn drop_connection(&self, connection_id: &str) -> Result<(), SandboxError> {
        let mut st = self.lock();
        let conn = st
            .conns
            .remove(connection_id)
            .ok_or_else(|| SandboxError::UnknownConnection(connection_id.to_string()))?;
        let _ = conn.tx.send(Out::Drop);
        Ok(())
    }

    /// Records one ACK text received on a connection, checking its shape.
    pub fn record_ack(&self, connection_id: &str, text: &str) {
        let mut problems = Vec::new();
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("ACK is not JSON: {e}"));
                Value::Null
            }
        };
        if !v.is_null() && !v.is_object() {
            problems.push("ACK is not a JSON object".into());
        }
        let code = v.get("code").and_then(Value::as_u64).map(|c| c as u16);
        match code {
            None => problems.push("ACK has no integer `code`".into()),
            Some(200 | 400 | 404 | 500) => {}
            Some(c) => problems.push(format!("ACK code {c} is not one of 200/400/404/500")),
        }
        let message_id = v
            .pointer("/headers/messageId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if message_id.is_empty() {
            problems.push("ACK has no headers.messageId".into());
        }
        if v.pointer("/headers/contentType").and_then(Value::as_str) != Some("application/json") {
            problems.push("ACK headers.contentType is not \"application/json\"".into());
        }
        let message = v.get("message").and_then(Value::as_str).map(str::to_string);
        if message.is_none() {
            problems.push("ACK has no string `message`".into());
        }
        let data = match v.get("data") {
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(d) => d,
                Err(_) => {
                    problems.push("ACK data is a string but not JSON".into());
                    Value::Null
                }
            },
            Some(_) => {
                problems.push("ACK data is not a JSON-encoded string".into());
                Value::Null
            }
            None => {
                problems.push("ACK has no `data`".into());
                Value::Null
            }
        };

        let mut st = self.lock();
        let mut topic = String::new();
        let mut latency_ms = 0.0;
        let ping = st
            .pings
            .iter()
            .position(|p| p.message_id == message_id && p.connection_id == connection_id);
        if let Some(i) = ping {
            topic = "ping".into();
            let sent = json!({ "opaque": st.pings[i].opaque });
            let ok = code == Some(200) && data == sent;
            if !ok {
                problems.push(format!("ping echo differs: sent data {sent}, got {data}"));
            }
            if let Some(p) = st.pings.get_mut(i) {
                p.echoed = Some(ok && problems.is_empty());
            }
        } else if let Some(p) = st.pushed.get_mut(&message_id) {
            topic = p.topic.clone();
            latency_ms = p.at.elapsed().as_secs_f64() * 1000.0;
            if p.connection_id != connection_id {
                problems.push(format!(
                    "ACK arrived on {connection_id}, the frame was pushed on {}",
                    p.connection_id
                ));
            }
            if p.acked {
                problems.push("second ACK for this messageId".into());
            }
            p.acked = true;
            match p.kind {
                FrameType::Callback if code == Some(200) && data.get("response").is_none() => {
                    problems.push("CALLBACK ACK data has no `response`".into());
                }
                FrameType::Event
                    if code == Some(200)
                        && !matches!(
                            data.get("status").and_then(Value::as_str),
                            Some("SUCCESS" | "LATER")
                        ) =>
                {
                    problems.push("EVENT ACK data.status is not SUCCESS or LATER".into());
                }
                _ => {}
            }
        } else if !message_id.is_empty() {
            problems.push("ACK for a messageId never pushed".into());
        }
        for p in &problems {
            st.problems
                .push(format!("{connection_id}: ACK {message_id:?}: {p}"));
        }
        st.acks.push(AckRecord {
            message_id,
            connection_id: connection_id.to_string(),
            topic,
            code,
            message,
            data,
            raw: text.to_string(),
            problems,
            latency_ms,
        });
        drop(st);
        self.0.ack_notify.notify_waiters();
    }

    /// Sends a ping on the connection now (unless pings are withheld).
    pub fn send_ping(&self, connection_id: &str) {
        let mut st = self.lock();
        let Some(conn) = st.conns.get(connection_id) else {
            return;
        };
        let tx = conn.tx.clone();
        // A ping left unanswered until the next one is a protocol problem worth noting.
        let unanswered: Vec<String> = st
            .pings
            .iter()
            .filter(|p| p.connection_id == connection_id && p.echoed.is_none())
            .map(|p| p.message_id.clone())
            .collect();
        for id in unanswered {
            st.problems.push(format!(
                "{connection_id}: ping {id} not answered before the next"
            ));
            if let Some(p) = st.pings.iter_mut().find(|p| p.message_id == id) {
                p.echoed = Some(false);
            }
        }
        let message_id = self.next_message_id();
        let opaque = format!("{}-{}", random_hex(4), random_hex(2));
        st.pings.push(PingRecord {
            connection_id: connection_id.to_string(),
            message_id: message_id.clone(),
            opaque: opaque.clone(),
            echoed: None,
        });
        let frame = Frame::new(
            FrameType::System,
            "ping",
            &message_id,
            &json!({ "opaque": opaque }),
        );
        let _ = tx.send(Out::Text(frame.to_text()));
    }

    pub async fn wait_for_ack(&self, message_id: &str, timeout: Duration) -> Option<AckRecord> {
        let deadline = deadline_after(timeout);
        loop {
            let notified = self.0.ack_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(a) = self
                .lock()
                .acks
                .iter()
                .find(|a| a.message_id == message_id)
                .cloned()
            {
                return Some(a);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub async fn click(&self, c: &Click) -> Result<AckRecord, SandboxError> {
        let card = self
            .lock()
            .cards
            .get(&c.out_track_id)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownCard(c.out_track_id.clone()))?;
        let not_stream = |why| SandboxError::NotStreamCard {
            id: c.out_track_id.clone(),
            why,
        };
        if card.kind != "advanced" {
            return Err(not_stream("standard cards call an HTTP callback URL"));
        }
        if card.callback_type.as_deref() != Some("STREAM") {
            return Err(not_stream(
                "the card was created without callbackType \"STREAM\"",
            ));
        }
        let (space_type, space_id) = match &card.conversation_id {
            Some(cid) if cid.starts_with("IM_ROBOT.") => {
                ("IM_ROBOT", cid.trim_start_matches("IM_ROBOT.").to_string())
            }
            Some(cid) => ("IM_GROUP", cid.trim_start_matches("IM_GROUP.").to_string()),
            None => ("IM_GROUP", String::new()),
        };
        let mut data = serde_json::Map::new();
        data.insert("outTrackId".into(), json!(c.out_track_id));
        data.insert("corpId".into(), json!("dingsandboxcorp"));
        data.insert("userId".into(), json!(c.user_id));
        data.insert("userIdType".into(), json!(1));
        data.insert("spaceType".into(), json!(space_type));
        data.insert("spaceId".into(), json!(space_id));
        data.insert("type".into(), json!("actionCallback"));
        data.insert(
            "extension".into(),
            json!(c.extension.clone().unwrap_or_else(|| "{}".into())),
        );
        let private =
            json!({"cardPrivateData": {"actionIds": c.action_ids, "params": c.params}}).to_string();
        let ai = card.template_id == ai_card::TEMPLATE_ID;
        if ai {
            // Only a shown button with `request: true` calls back.
            let id = c.action_ids.first().map(String::as_str).unwrap_or("");
            let shown = card
                .card_param_map
                .get(ai_card::KEY_SYS)
                .and_then(|s| ai_card::SysObject::from_param(s))
                .is_some_and(|sys| sys.msg_buttons.iter().any(|b| b.request && b.id == id));
            if !shown {
                return Err(SandboxError::NoSuchButton {
                    id: c.out_track_id.clone(),
                    button: id.to_string(),
                });
            }
        }
        match &c.value {
            Some(v) => {
                data.insert("value".into(), json!(v));
            }
            // The AI card sends `value` as the same cardPrivateData string as `content`.
            None if ai => {
                data.insert("value".into(), json!(private));
            }
            None => {}
        }
        if !c.omit_content {
            let content = c.raw_content.clone().unwrap_or(private);
            data.insert("content".into(), json!(content));
        }
        let message_id = self.next_message_id();
        self.push(
            &c.client_id,
            FrameType::Callback,
            TOPIC_CARD_CALLBACK,
            &message_id,
            &Value::Object(data),
            Vec::new(),
        )?;
        let ack = self
            .wait_for_ack(&message_id, self.0.config.click_timeout)
            .await
            .ok_or_else(|| SandboxError::AckTimeout(message_id.clone()))?;
        // The ACK's response may update the card.
        if ack.code == Some(200) {
            if let Some(resp) = ack.data.get("response").filter(|r| r.is_object()) {
                let mut st = self.lock();
                let mut error = None;
                if let Some(map) = resp.pointer("/cardData/cardParamMap") {
                    match string_map(map) {
                        Ok(m) => {
                            if let Some(card) = st.cards.get_mut(&c.out_track_id) {
                                apply_param_map(card, m, true);
                            }
                        }
                        Err(e) => error = Some(e),
                    }
                }
                let entry = TranscriptEntry {
                    seq: 0,
                    client_id: c.client_id.clone(),
                    kind: "card.callbackResponse".into(),
                    conversation_id: card.conversation_id.clone(),
                    card_id: Some(c.out_track_id.clone()),
                    msgtype: None,
                    text: None,
                    body: resp.clone(),
                    status: 200,
                    error,
                };
                push_entry(&mut st, entry);
            }
        }
        Ok(ack)
    }
}

pub(crate) fn push_entry(st: &mut State, mut e: TranscriptEntry) {
    // Numbered over the whole run, so seq stays stable when old entries drop out.
    e.seq = st.entries.total() + 1;
    st.entries.push(e);
    st.entries_changed.notify_waiters();
}

/// `cardParamMap` must map names to strings.
pub(crate) fn string_map(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "cardParamMap is not an object".to_string())?;
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            _ => return Err(format!("cardParamMap.{k} is not a string")),
        }
    }
    Ok(out)
}

pub(crate) fn apply_param_map(card: &mut CardState, m: BTreeMap<String, String>, by_key: bool) {
    if !by_key {
        card.card_param_map.clear();
    }
    card.card_param_map.extend(m);
    card.flow_status = card.card_param_map.get("flowStatus").cloned();
    card.updates += 1;
}
