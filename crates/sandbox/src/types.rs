//! Public values: configuration, inputs of the control API and the records it reads back.
//! All of them are JSON too, so the HTTP control API and the Rust methods share one shape.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use jitnode_dingtalk_wire::{CallKind, CardKind, FlowStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the sandbox behaves. `Default` binds 127.0.0.1:0 with DingTalk's documented timings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Interval of SYSTEM `ping` frames on each connection.
    pub ping_interval: Duration,
    /// How long an open-connection ticket stays usable (DingTalk: 90 s).
    pub ticket_ttl: Duration,
    /// Lifetime of a session webhook (DingTalk: about 90 minutes).
    pub webhook_ttl: Duration,
    /// Lifetime of an access token, reported as `expireIn` (DingTalk: 7200 s).
    pub token_ttl: Duration,
    /// After a `disconnect`, the server closes the connection this much later (DingTalk: ~10 s).
    pub disconnect_grace: Duration,
    /// How long `click` waits for the ACK of the card callback.
    pub click_timeout: Duration,
    /// Robot messages not ACKed within this are pushed again (same `msgId`, new
    /// messageId), as field reports describe for slow ACKs (15–60 s). Off by default so
    /// tests opt in.
    pub redeliver_unacked_after: Option<Duration>,
    /// Bearer token the control API (`/control/*`) demands when set; then any Host and
    /// Origin are accepted. Without one, the control API answers only requests whose Host
    /// (and Origin, if any) is a loopback name, so a web page cannot reach it through DNS
    /// rebinding. Required when `bind` is not a loopback address.
    pub control_token: Option<jitnode_stream::Secret>,
    /// The transcript, ACK, ping and problem lists each keep at most this many records,
    /// dropping the oldest first (a ring), so a long soak cannot grow memory without
    /// bound. Default [`DEFAULT_MAX_RECORDS`].
    pub max_records: usize,
}

/// Default [`SandboxConfig::max_records`]: plenty for any test, a few tens of MB at most.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ping_interval: Duration::from_secs(30),
            ticket_ttl: Duration::from_secs(90),
            webhook_ttl: Duration::from_secs(90 * 60),
            token_ttl: Duration::from_secs(7200),
            disconnect_grace: Duration::from_secs(10),
            click_timeout: Duration::from_secs(10),
            redeliver_unacked_after: None,
            control_token: None,
            max_records: DEFAULT_MAX_RECORDS,
        }
    }
}

/// A user message to post into a conversation (`post_message`, `POST /control/messages`).
///
/// Missing fields get plausible values: a one-to-one conversation with staff user
/// `user001`, text message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PostMessage {
    /// The robot (app) the message goes to.
    pub client_id: String,
    /// Group conversation (`conversationType` "2") instead of one-to-one ("1").
    pub group: bool,
    /// Conversation id; when absent, generated from the sender and the robot (one-to-one:
    /// each user has a chat of their own with each robot) or fixed (group).
    pub conversation_id: Option<String>,
    /// Group title (groups only).
    pub conversation_title: Option<String>,
    /// Sender's staff id; `None` plays an external user (no `senderStaffId`).
    pub sender_staff_id: Option<String>,
    pub sender_nick: String,
    /// In a group, whether the robot is @-mentioned. DingTalk only delivers group messages
    /// that @ the robot; others are not pushed (`delivered: false`).
    pub at_robot: bool,
    /// Other staff ids @-mentioned.
    pub at_users: Vec<String>,
    /// `text`, `picture`, `richText`, `audio`, `video`, `file`, `unknownMsgType`.
    pub msgtype: String,
    /// Text of a `text` message (a group message gets the leading space of the @-mention).
    pub text: String,
    /// `content` object of a non-text message; a plausible one is made when absent.
    pub content: Option<Value>,
    /// A text message replying to (quoting) another: the `text.repliedMsg` object
    /// (`{"msgType", "content", "msgId", ...}`); `text.isReplyMsg` is then true.
    pub replied_msg: Option<Value>,
}

impl Default for PostMessage {
    fn default() -> Self {
        PostMessage {
            client_id: String::new(),
            group: false,
            conversation_id: None,
            conversation_title: None,
            sender_staff_id: Some("user001".into()),
            sender_nick: "Test User".into(),
            at_robot: true,
            at_users: Vec::new(),
            msgtype: "text".into(),
            text: String::new(),
            content: None,
            replied_msg: None,
        }
    }
}

impl PostMessage {
    /// A one-to-one text message from staff user `user001`.
    pub fn text(client_id: &str, text: &str) -> PostMessage {
        PostMessage {
            client_id: client_id.into(),
            text: text.into(),
            ..PostMessage::default()
        }
    }

    /// The same, in group `conversation_id`, @-mentioning the robot.
    pub fn in_group(mut self, conversation_id: &str) -> PostMessage {
        self.group = true;
        self.at_robot = true;
        self.conversation_id = Some(conversation_id.into());
        self
    }

    /// From another sender.
    pub fn from(mut self, staff_id: Option<&str>, nick: &str) -> PostMessage {
        self.sender_staff_id = staff_id.map(str::to_string);
        self.sender_nick = nick.into();
        self
    }
}

/// What `post_message` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    /// `data.msgId`, the id to dedupe on.
    pub msg_id: String,
    /// `headers.messageId` of the frame, the id ACKs refer to. Empty when not delivered.
    pub message_id: String,
    pub conversation_id: String,
    pub session_webhook: String,
    /// Connection the frame was pushed on; `None` when not delivered.
    pub connection_id: Option<String>,
    /// False for a group message that does not @ the robot.
    pub delivered: bool,
    /// The decoded `data` as pushed.
    pub data: Value,
}

/// A card button click (`click`, `POST /control/click`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Click {
    pub client_id: String,
    /// The advanced card's `outTrackId`; the card must exist.
    pub out_track_id: String,
    pub user_id: String,
    pub action_ids: Vec<String>,
    /// `cardPrivateData.params`, e.g. `{"action": "like"}`.
    pub params: serde_json::Map<String, Value>,
    pub value: Option<String>,
    /// Replaces the `content` string as sent (to send invalid JSON); `omit_content` drops it.
    pub raw_content: Option<String>,
    pub omit_content: bool,
    /// The `extension` string; `{}` when absent.
    pub extension: Option<String>,
}

impl Default for Click {
    fn default() -> Self {
        Click {
            client_id: String::new(),
            out_track_id: String::new(),
            user_id: "user001".into(),
            action_ids: Vec::new(),
            params: serde_json::Map::new(),
            value: None,
            raw_content: None,
            omit_content: false,
            extension: None,
        }
    }
}

/// One ACK received from a client, with what was wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckRecord {
    pub message_id: String,
    pub connection_id: String,
    /// Topic of the frame acknowledged (`ping` for ping echoes); empty if the id is unknown.
    pub topic: String,
    pub code: Option<u16>,
    pub message: Option<String>,
    /// The decoded `data` string (Null when absent or not JSON).
    pub data: Value,
    /// The ACK frame as received.
    pub raw: String,
    /// Empty when the ACK has the exact shape and refers to a frame pushed on this connection.
    pub problems: Vec<String>,
    /// Time from push to ACK, milliseconds (tokio clock).
    pub latency_ms: f64,
}

impl AckRecord {
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A SYSTEM `ping` sent and whether it was echoed correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingRecord {
    pub connection_id: String,
    pub message_id: String,
    pub opaque: String,
    /// None until an answer arrives; then whether it was code 200 with the same data.
    pub echoed: Option<bool>,
}

/// A live client connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub client_id: String,
    pub topics: Vec<String>,
    /// False once `disconnect` was sent: nothing more is pushed on it.
    pub accepting: bool,
    /// Frames pushed on it (not counting pings).
    pub pushed: u64,
}

/// One call the robot made (webhook reply or card API), in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    pub seq: u64,
    pub client_id: String,
    /// `webhook`, `card.send`, `card.update`, `card.createAndDeliver`, `card.instances.update`,
    /// `card.streaming`, `card.callbackResponse`.
    pub kind: String,
    pub conversation_id: Option<String>,
    /// cardBizId / outTrackId for card calls.
    pub card_id: Option<String>,
    /// For webhooks: `text` or `markdown` (or what was sent).
    pub msgtype: Option<String>,
    /// Text of a webhook reply (text content or markdown text).
    pub text: Option<String>,
    /// The request body as sent.
    pub body: Value,
    /// HTTP status answered.
    pub status: u16,
    /// DingTalk error code answered (`errcode` or `code`), None on success.
    pub error: Option<String>,
}

impl TranscriptEntry {
    /// The kind as the wire crate names it; `None` for a name it does not know.
    pub fn call_kind(&self) -> Option<CallKind> {
        CallKind::parse(&self.kind)
    }

    /// Whether this is a card call or the card update of a callback ACK.
    pub fn is_card(&self) -> bool {
        self.call_kind().is_some_and(|k| k != CallKind::Webhook)
    }
}

/// Current state of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardState {
    pub id: String,
    pub client_id: String,
    /// `standard` or `advanced`.
    pub kind: String,
    pub template_id: String,
    pub conversation_id: Option<String>,
    /// Standard cards: the whole card JSON (decoded).
    pub card_data: Option<Value>,
    /// Advanced cards: `cardParamMap`.
    pub card_param_map: BTreeMap<String, String>,
    /// Advanced cards: streamed variables (`key` -> content).
    pub streams: BTreeMap<String, String>,
    /// Advanced cards: `callbackType`; clicks reach the robot over Stream only with "STREAM".
    pub callback_type: Option<String>,
    /// `flowStatus` from `cardParamMap`, if set.
    pub flow_status: Option<String>,
    /// A streaming call with `isFinalize: true` arrived.
    pub finalized: bool,
    /// A streaming call with `isError: true` arrived.
    pub failed: bool,
    /// Accepted updates (any kind) after creation.
    pub updates: u64,
}

impl CardState {
    pub fn card_kind(&self) -> Option<CardKind> {
        match self.kind.as_str() {
            "standard" => Some(CardKind::Standard),
            "advanced" => Some(CardKind::Advanced),
            _ => None,
        }
    }

    pub fn flow(&self) -> Option<FlowStatus> {
        self.flow_status.as_deref().and_then(FlowStatus::parse)
    }
}

/// Everything the robot sent, in order, plus the current state of each card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub entries: Vec<TranscriptEntry>,
    pub cards: BTreeMap<String, CardState>,
}

impl Transcript {
    /// Texts of accepted webhook replies, in order.
    pub fn replies(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.call_kind() == Some(CallKind::Webhook) && e.error.is_none())
            .filter_map(|e| e.text.clone())
            .collect()
    }

    /// The `seq` of the newest entry (0 when empty): entries after it are new.
    pub fn last_seq(&self) -> u64 {
        self.entries.iter().map(|e| e.seq).max().unwrap_or(0)
    }
}

/// How pings behave (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum PingMode {
    #[default]
    Normal,
    /// Each ping is sent this much later than due.
    Delay { ms: u64 },
    /// No pings at all.
    Withhold,
}

/// Card endpoints answer with an error (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardFault {
    /// 403 (QPS limit) or a 5xx.
    pub status: u16,
    /// The next `count` calls; None until cleared.
    pub count: Option<u32>,
}

pub use jitnode_dingtalk_wire::refusal::{Permission, Refusal};

/// A refusal a real account gives, played by the sandbox (fault injection):
/// `POST /control/faults/refusals`, [`crate::Sandbox::refuse`]. Which calls each refusal
/// hits, and with what body, is the sandbox's model of DingTalk (docs/wire-refusals.md):
///
/// | refusal | calls refused | answer |
/// |---|---|---|
/// | `authFailed` | connections/open, accessToken (even right credentials: an unpublished app) | 401 `authFailed` / 400 `invalidParameter.idOrSecret.notFound` |
/// | `permissionDenied` | card calls needing one of `permissions` | 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` with `accessdenieddetail.requiredScopes` |
/// | `templateUnpublished` | createAndDeliver of any template but the public AI card | 400 `param.templateUnpublished` |
/// | `robotNotFound` | every card call | 400 `resource.not.found` "robot 不存在" |
/// | `rateLimited` | every card call | 403 `Forbidden.AccessDenied.QpsLimitForApi`, or 429 with `status` |
/// | `sessionExpired` | session webhook posts | HTTP 200, `errcode` 300001 "session 不存在" |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalFault {
    pub refusal: Refusal,
    /// `rateLimited` only: 403 (the default) or 429.
    #[serde(default)]
    pub status: Option<u16>,
    /// The next `count` calls it hits; `None` until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

impl RefusalFault {
    /// `refusal` on every call it hits, until cleared.
    pub fn new(refusal: Refusal) -> RefusalFault {
        RefusalFault {
            refusal,
            status: None,
            count: None,
        }
    }

    /// The app lacks `permission`.
    pub fn missing(permission: Permission) -> RefusalFault {
        RefusalFault::new(Refusal::PermissionDenied {
            permissions: vec![permission],
        })
    }

    /// Only the next `n` calls it hits.
    pub fn times(mut self, n: u32) -> RefusalFault {
        self.count = Some(n);
        self
    }

    /// The HTTP status of a rate limit (403 or 429).
    pub fn with_status(mut self, status: u16) -> RefusalFault {
        self.status = Some(status);
        self
    }
}
