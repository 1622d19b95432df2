//! The decoded `data` of robot messages, card callbacks and events, as typed values.
//!
//! Parsing is lenient about missing fields (the gateway omits some for external users and
//! one-to-one chats) but strict about shapes: a field of the wrong type is an error that the
//! client answers with a 400 ACK.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use crate::api::TextContent;
use crate::frame::Frame;

/// Why a frame's `data` could not be read as the type its topic promises.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("data of topic {topic} is not JSON: {source}")]
    DataNotJson {
        topic: String,
        source: serde_json::Error,
    },
    #[error("data of topic {topic} does not match its shape: {source}")]
    Shape {
        topic: String,
        source: serde_json::Error,
    },
    #[error("card callback field `{field}` is missing")]
    MissingField { field: &'static str },
    #[error("card callback field `{field}` is not a JSON document: {source}")]
    FieldNotJson {
        field: &'static str,
        source: serde_json::Error,
    },
}

/// `conversationType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationType {
    /// "1"
    OneToOne,
    /// "2"; the robot only sees group messages that @ it.
    Group,
    Other(String),
}

impl<'de> Deserialize<'de> for ConversationType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let s = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        Ok(match s.as_str() {
            "1" => ConversationType::OneToOne,
            "2" => ConversationType::Group,
            _ => ConversationType::Other(s),
        })
    }
}

impl ConversationType {
    /// The wire value: "1", "2" or what came.
    pub fn as_str(&self) -> &str {
        match self {
            ConversationType::OneToOne => "1",
            ConversationType::Group => "2",
            ConversationType::Other(s) => s,
        }
    }
}

impl Serialize for ConversationType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Default for ConversationType {
    fn default() -> Self {
        ConversationType::Other(String::new())
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Epoch milliseconds, sent as a number or (sometimes) a string.
fn epoch_ms<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AtUser {
    #[serde(default)]
    pub dingtalk_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
}

/// A robot message (`/v1.0/im/bot/messages/get`). Unknown fields are kept in `extra`.
/// `Debug` shows the session webhook without its query (the session key). Serializes back to
/// the same JSON fields (absent optional fields stay absent, zero times are left out).
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
// Every field may be missing: each takes its value of `RobotMessage::default()`.
#[serde(rename_all = "camelCase", default)]
pub struct RobotMessage {
    pub msg_id: String,
    pub msgtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextContent>,
    /// Body of non-text messages (picture, richText, audio, video, file, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    pub conversation_id: String,
    pub conversation_type: ConversationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_title: Option<String>,
    pub sender_id: String,
    /// Absent for external users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_staff_id: Option<String>,
    pub sender_nick: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_corp_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_platform: Option<String>,
    pub is_admin: bool,
    pub chatbot_user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chatbot_corp_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robot_code: Option<String>,
    pub is_in_at_list: bool,
    pub at_users: Vec<AtUser>,
    pub session_webhook: String,
    #[serde(deserialize_with = "epoch_ms", skip_serializing_if = "is_zero")]
    pub session_webhook_expired_time: i64,
    #[serde(deserialize_with = "epoch_ms", skip_serializing_if = "is_zero")]
    pub create_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_thread_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for RobotMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session key travels in the webhook's query.
        let webhook = crate::redacted_url(&self.session_webhook);
        f.debug_struct("RobotMessage")
            .field("msg_id", &self.msg_id)
            .field("msgtype", &self.msgtype)
            .field("text", &self.text)
            .field("content", &self.content)
            .field("conversation_id", &self.conversation_id)
            .field("conversation_type", &self.conversation_type)
            .field("conversation_title", &self.conversation_title)
            .field("sender_id", &self.sender_id)
            .field("sender_staff_id", &self.sender_staff_id)
            .field("sender_nick", &self.sender_nick)
            .field("sender_corp_id", &self.sender_corp_id)
            .field("sender_platform", &self.sender_platform)
            .field("is_admin", &self.is_admin)
            .field("chatbot_user_id", &self.chatbot_user_id)
            .field("chatbot_corp_id", &self.chatbot_corp_id)
            .field("robot_code", &self.robot_code)
            .field("is_in_at_list", &self.is_in_at_list)
            .field("at_users", &self.at_users)
            .field("session_webhook", &webhook)
            .field(
                "session_webhook_expired_time",
                &self.session_webhook_expired_time,
            )
            .field("create_at", &self.create_at)
            .field("open_thread_id", &self.open_thread_id)
            .field("extra", &self.extra)
            .finish()
    }
}

/// What a robot message says, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageBody<'a> {
    /// Text with the @-mention's leading space trimmed.
    Text(&'a str),
    /// A voice message and DingTalk's speech recognition of it.
    Audio { recognition: &'a str },
    /// Anything else, with its `content` object (Null when absent).
    Other {
        msgtype: &'a str,
        content: &'a Value,
    },
}

static NULL: Value = Value::Null;

impl RobotMessage {
    /// Parses the `data` of a robot message frame; `msgId` falls back to the frame's
    /// `messageId` when absent.
    pub fn from_frame(frame: &Frame) -> Result<RobotMessage, ParseError> {
        // One pass from the text (no intermediate Value); the error's category tells bad
        // JSON from JSON of the wrong shape.
        let mut msg: RobotMessage = serde_json::from_str(&frame.data).map_err(|source| {
            let topic = frame.topic().to_string();
            match source.classify() {
                serde_json::error::Category::Data => ParseError::Shape { topic, source },
                _ => ParseError::DataNotJson { topic, source },
            }
        })?;
        if msg.msg_id.is_empty() {
            msg.msg_id = frame.message_id().to_string();
        }
        Ok(msg)
    }

    pub fn body(&self) -> MessageBody<'_> {
        match self.msgtype.as_str() {
            "text" => MessageBody::Text(
                self.text
                    .as_ref()
                    .map(|t| t.content.trim())
                    .unwrap_or_default(),
            ),
            "audio" => MessageBody::Audio {
                recognition: self
                    .content
                    .as_ref()
                    .and_then(|c| c.get("recognition"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim(),
            },
            other => MessageBody::Other {
                msgtype: other,
                content: self.content.as_ref().unwrap_or(&NULL),
            },
        }
    }

    /// The words of the message: trimmed text, or the recognition of a voice message.
    pub fn text(&self) -> Option<&str> {
        match self.body() {
            MessageBody::Text(t) => Some(t),
            MessageBody::Audio { recognition } if !recognition.is_empty() => Some(recognition),
            _ => None,
        }
    }

    pub fn is_group(&self) -> bool {
        self.conversation_type == ConversationType::Group
    }
}

/// `cardPrivateData` of a card callback's `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CardPrivateData {
    #[serde(default)]
    pub action_ids: Vec<String>,
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// A card button click (`/v1.0/card/instances/callback`), with `content` and `extension`
/// decoded from their JSON strings.
#[derive(Debug, Clone, PartialEq)]
pub struct CardCallback {
    pub out_track_id: String,
    pub corp_id: String,
    pub user_id: String,
    pub user_id_type: Option<Value>,
    pub space_type: String,
    pub space_id: String,
    /// `type`, e.g. "actionCallback".
    pub kind: String,
    pub value: Option<String>,
    pub private_data: CardPrivateData,
    /// The decoded `content` as a whole.
    pub content: Value,
    /// The decoded `extension`; Null when the field is absent.
    pub extension: Value,
    /// The frame's `messageId`.
    pub message_id: String,
}

fn str_field(obj: &Map<String, Value>, name: &str) -> String {
    match obj.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

impl CardCallback {
    /// `content` must be present and valid JSON; `extension` may be absent but, when
    /// present, must be valid JSON (an empty string counts as absent).
    pub fn from_frame(frame: &Frame) -> Result<CardCallback, ParseError> {
        let topic = frame.topic();
        let value = frame
            .data_json()
            .map_err(|source| ParseError::DataNotJson {
                topic: topic.to_string(),
                source,
            })?;
        CardCallback::from_data(value, topic, frame.message_id())
    }

    /// Reads the decoded `data` of a callback frame of `topic` with `message_id`.
    pub fn from_data(
        value: Value,
        topic: &str,
        message_id: &str,
    ) -> Result<CardCallback, ParseError> {
        let topic = topic.to_string();
        let obj = match value {
            Value::Object(o) => o,
            other => {
                let source = serde_json::from_value::<Map<String, Value>>(other)
                    .expect_err("a non-object never parses as a map");
                return Err(ParseError::Shape { topic, source });
            }
        };
        let content = match obj.get("content") {
            Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str::<Value>(s)
                .map_err(|source| ParseError::FieldNotJson {
                    field: "content",
                    source,
                })?,
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => return Err(ParseError::MissingField { field: "content" }),
        };
        let private_data = match content.get("cardPrivateData") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|source| ParseError::Shape { topic, source })?,
            None => CardPrivateData::default(),
        };
        let extension = match obj.get("extension") {
            Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str::<Value>(s)
                .map_err(|source| ParseError::FieldNotJson {
                    field: "extension",
                    source,
                })?,
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => Value::Null,
        };
        Ok(CardCallback {
            out_track_id: str_field(&obj, "outTrackId"),
            corp_id: str_field(&obj, "corpId"),
            user_id: str_field(&obj, "userId"),
            user_id_type: obj.get("userIdType").cloned(),
            space_type: str_field(&obj, "spaceType"),
            space_id: str_field(&obj, "spaceId"),
            kind: str_field(&obj, "type"),
            value: obj.get("value").and_then(Value::as_str).map(str::to_string),
            private_data,
            content,
            extension,
            message_id: message_id.to_string(),
        })
    }

    /// The `data` as the gateway writes it: `content` and `extension` as JSON strings.
    /// (`message_id` travels in the frame's headers, not here.)
    pub fn to_data(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: &str| {
            m.insert(k.into(), Value::String(v.into()));
        };
        put("outTrackId", &self.out_track_id);
        put("corpId", &self.corp_id);
        put("userId", &self.user_id);
        put("spaceType", &self.space_type);
        put("spaceId", &self.space_id);
        put("type", &self.kind);
        put("content", &self.content.to_string());
        if !self.extension.is_null() {
            put("extension", &self.extension.to_string());
        }
        if let Some(v) = &self.value {
            put("value", v);
        }
        if let Some(t) = &self.user_id_type {
            m.insert("userIdType".into(), t.clone());
        }
        Value::Object(m)
    }

    /// `cardPrivateData.params[name]` as a string, if it is one.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.private_data.params.get(name).and_then(Value::as_str)
    }
}

impl Serialize for CardCallback {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_data().serialize(s)
    }
}

/// Reads the decoded `data` (no frame, so `message_id` is empty).
impl<'de> Deserialize<'de> for CardCallback {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        CardCallback::from_data(v, crate::frame::TOPIC_CARD_CALLBACK, "")
            .map_err(serde::de::Error::custom)
    }
}

/// An EVENT push.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub corp_id: String,
    pub born_time: String,
    pub topic: String,
    pub headers: BTreeMap<String, String>,
    pub data: Value,
}

impl Event {
    pub fn from_frame(frame: &Frame) -> Result<Event, ParseError> {
        let data = frame
            .data_json()
            .map_err(|source| ParseError::DataNotJson {
                topic: frame.topic().to_string(),
                source,
            })?;
        let h = |n: &str| frame.header(n).unwrap_or_default().to_string();
        Ok(Event {
            event_id: h("eventId"),
            event_type: h("eventType"),
            corp_id: h("eventCorpId"),
            born_time: h("eventBornTime"),
            topic: frame.topic().to_string(),
            headers: frame.headers.clone(),
            data,
        })
    }
}

/// Answer of an EVENT handler, carried in the ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Success,
    /// Ask the gateway to deliver it again later.
    Later,
}
