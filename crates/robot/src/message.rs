//! A robot message (`/v1.0/im/bot/messages/get`, the decoded `data`) reduced to what the robot
//! acts on: the question, who asked, where to answer, and the chat id for conversation memory.
//!
//! Rules decided here:
//! - **Question.** `text.content`, trimmed. In group chats the leading `@name` tokens left over
//!   from mentions are stripped too (DingTalk removes the robot's own mention but leaves the
//!   space, and mentions of other people typed before the question stay). Audio with a
//!   non-empty `content.recognition` is answered as a question; `richText` is answered with
//!   its text parts. Every other message type gets a polite "text or voice only" reply.
//! - **Chat id** (the agent's memory key): the asker is `senderStaffId`, or `senderId` for
//!   external users who have no staff id. One-to-one: `user:<asker>`. Group:
//!   `group:<conversationId>:<asker>`, so each person in a group has their own thread and a
//!   group thread never mixes with that person's private chat.
//! - **Reply target.** Group: `openConversationId` = `conversationId`. One-to-one: the
//!   sender's staff id (`singleChatReceiver` / `IM_ROBOT` space); an external sender without
//!   a staff id can only be answered through the session webhook.

use std::fmt;

use serde_json::{json, Value};

use crate::config::Lang;
use crate::texts::Texts;

/// Why a message could not be understood at all (answered with an error ACK and logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("robot message is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("robot message is not a JSON object")]
    NotAnObject,
    #[error("robot message has no `{field}`")]
    Missing { field: &'static str },
    #[error("robot message field `{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// One-to-one or group conversation (`conversationType` "1" / "2").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    OneToOne,
    Group,
}

/// Who sent the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// `senderId`, always present (an opaque DingTalk id).
    pub id: String,
    /// `senderStaffId`, absent for external users.
    pub staff_id: Option<String>,
    /// `senderNick`, may be empty.
    pub nick: String,
}

impl Sender {
    /// The stable id of the asker: staff id when known, else the DingTalk id.
    pub fn user_key(&self) -> &str {
        self.staff_id.as_deref().unwrap_or(&self.id)
    }
}

/// What the message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A question to answer. `from_voice` when it came from speech recognition.
    Question { text: String, from_voice: bool },
    /// Text with nothing left after trimming and stripping mentions.
    Empty,
    /// A message type the robot does not understand (`picture`, `file`, ...).
    Unsupported { msgtype: String },
}

/// The session webhook that arrived with the message. Debug hides the URL's query, which
/// holds the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionWebhook {
    pub url: String,
    /// `sessionWebhookExpiredTime`, epoch milliseconds.
    pub expires_at_ms: Option<i64>,
}

impl fmt::Debug for SessionWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.url.split_once('?') {
            Some((base, _)) => format!("{base}?<redacted>"),
            None => self.url.clone(),
        };
        f.debug_struct("SessionWebhook")
            .field("url", &shown)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl SessionWebhook {
    /// Whether the webhook can still be used at `now_ms` (epoch ms). Unknown expiry counts as
    /// usable; a minute of margin covers clock skew and the request's own time.
    pub fn is_usable_at(&self, now_ms: i64) -> bool {
        match self.expires_at_ms {
            Some(t) => now_ms + 60_000 < t,
            None => true,
        }
    }
}

/// Where replies to a message go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A group: `openConversationId`.
    Group { open_conversation_id: String },
    /// A one-to-one chat with a staff member: `singleChatReceiver.userId`.
    User { staff_id: String },
    /// A one-to-one chat with someone without a staff id: only the session webhook reaches
    /// them.
    SessionOnly,
}

impl ReplyTarget {
    /// The fields that address a standard card send (`openConversationId` or
    /// `singleChatReceiver`), to merge into its body. `None` for [`ReplyTarget::SessionOnly`].
    pub fn standard_card_fields(&self) -> Option<serde_json::Map<String, Value>> {
        let mut m = serde_json::Map::new();
        match self {
            ReplyTarget::Group {
                open_conversation_id,
            } => {
                m.insert("openConversationId".into(), json!(open_conversation_id));
            }
            ReplyTarget::User { staff_id } => {
                // singleChatReceiver is itself a JSON document inside a string.
                let receiver = json!({"userId": staff_id}).to_string();
                m.insert("singleChatReceiver".into(), json!(receiver));
            }
            ReplyTarget::SessionOnly => return None,
        }
        Some(m)
    }

    /// The `openSpaceId` of a template card delivery.
    pub fn open_space_id(&self) -> Option<String> {
        match self {
            ReplyTarget::Group {
                open_conversation_id,
            } => Some(format!("dtv1.card//IM_GROUP.{open_conversation_id}")),
            ReplyTarget::User { staff_id } => Some(format!("dtv1.card//IM_ROBOT.{staff_id}")),
            ReplyTarget::SessionOnly => None,
        }
    }
}

/// A person to @-mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtUser {
    pub nick: String,
    pub staff_id: String,
}

/// A parsed robot message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotMessage {
    /// `msgId`, or the frame's `headers.messageId` when absent.
    pub msg_id: String,
    pub msgtype: String,
    pub conversation_id: String,
    pub kind: ConversationKind,
    pub conversation_title: Option<String>,
    pub sender: Sender,
    pub robot_code: Option<String>,
    pub session_webhook: Option<SessionWebhook>,
    /// `createAt`, epoch milliseconds.
    pub created_at_ms: Option<i64>,
    pub content: Content,
}

impl RobotMessage {
    /// Parses the frame's `data` string. `frame_message_id` is the frame's
    /// `headers.messageId`, used when `msgId` is missing.
    pub fn from_data_str(data: &str, frame_message_id: &str) -> Result<Self, MessageError> {
        let value: Value = serde_json::from_str(data).map_err(|e| MessageError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        RobotMessage::parse(&value, frame_message_id)
    }

    /// Parses the decoded `data` value.
    pub fn parse(data: &Value, frame_message_id: &str) -> Result<Self, MessageError> {
        let obj = data.as_object().ok_or(MessageError::NotAnObject)?;
        let s = |k: &str| -> Option<String> {
            obj.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let msg_id = s("msgId")
            .or_else(|| Some(frame_message_id.trim().to_string()).filter(|v| !v.is_empty()))
            .ok_or(MessageError::Missing { field: "msgId" })?;
        let conversation_id = s("conversationId").ok_or(MessageError::Missing {
            field: "conversationId",
        })?;
        let kind = match obj.get("conversationType") {
            Some(Value::String(t)) if t == "1" => ConversationKind::OneToOne,
            Some(Value::String(t)) if t == "2" => ConversationKind::Group,
            // Numbers where strings are documented have been seen in other fields; accept.
            Some(Value::Number(n)) if n.as_u64() == Some(1) => ConversationKind::OneToOne,
            Some(Value::Number(n)) if n.as_u64() == Some(2) => ConversationKind::Group,
            None | Some(Value::Null) => {
                return Err(MessageError::Missing {
                    field: "conversationType",
                })
            }
            Some(_) => {
                return Err(MessageError::Invalid {
                    field: "conversationType",
                    reason: "must be \"1\" (one-to-one) or \"2\" (group)".into(),
                })
            }
        };
        let staff_id = s("senderStaffId");
        let sender_id = s("senderId")
            .or_else(|| staff_id.clone())
            .ok_or(MessageError::Missing { field: "senderId" })?;
        let sender = Sender {
            id: sender_id,
            staff_id,
            nick: s("senderNick").unwrap_or_default(),
        };
        let session_webhook = s("sessionWebhook").map(|url| SessionWebhook {
            url,
            expires_at_ms: obj.get("sessionWebhookExpiredTime").and_then(as_i64),
        });
        let msgtype = s("msgtype").unwrap_or_else(|| "text".to_string());
        let content = extract_content(obj, &msgtype, kind);
        Ok(RobotMessage {
            msg_id,
            msgtype,
            conversation_id,
            kind,
            conversation_title: s("conversationTitle"),
            sender,
            robot_code: s("robotCode"),
            session_webhook,
            created_at_ms: obj.get("createAt").and_then(as_i64),
            content,
        })
    }

    /// The question, when the message asks one.
    pub fn question(&self) -> Option<&str> {
        match &self.content {
            Content::Question { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The agent's conversation-memory key (see the module doc for the rule).
    pub fn chat_id(&self) -> String {
        let asker = self.sender.user_key();
        match self.kind {
            ConversationKind::OneToOne => format!("user:{asker}"),
            ConversationKind::Group => format!("group:{}:{asker}", self.conversation_id),
        }
    }

    /// Where the answer goes.
    pub fn reply_target(&self) -> ReplyTarget {
        match (self.kind, &self.sender.staff_id) {
            (ConversationKind::Group, _) => ReplyTarget::Group {
                open_conversation_id: self.conversation_id.clone(),
            },
            (ConversationKind::OneToOne, Some(staff_id)) => ReplyTarget::User {
                staff_id: staff_id.clone(),
            },
            (ConversationKind::OneToOne, None) => ReplyTarget::SessionOnly,
        }
    }

    /// The sender to @-mention, when they have a staff id (only staff can be mentioned).
    pub fn at_user(&self) -> Option<AtUser> {
        self.sender.staff_id.as_ref().map(|staff_id| AtUser {
            nick: self.sender.nick.clone(),
            staff_id: staff_id.clone(),
        })
    }

    /// The text reply for a message that is not a question, `None` for a question.
    pub fn polite_reply(&self, lang: Lang) -> Option<&'static str> {
        let t = Texts::for_lang(lang);
        match self.content {
            Content::Question { .. } => None,
            Content::Empty => Some(t.empty_question),
            Content::Unsupported { .. } => Some(t.only_text),
        }
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn extract_content(
    obj: &serde_json::Map<String, Value>,
    msgtype: &str,
    kind: ConversationKind,
) -> Content {
    let question = |raw: &str, from_voice: bool| {
        let text = clean_question(raw, kind);
        if text.is_empty() {
            Content::Empty
        } else {
            Content::Question { text, from_voice }
        }
    };
    let content = obj.get("content");
    match msgtype {
        "text" => {
            let raw = obj
                .get("text")
                .and_then(|t| t.get("content"))
                .and_then(Value::as_str)
                .unwrap_or("");
            question(raw, false)
        }
        "audio" => match content
            .and_then(|c| c.get("recognition"))
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty())
        {
            Some(r) => question(r, true),
            None => Content::Unsupported {
                msgtype: msgtype.to_string(),
            },
        },
        "richText" => {
            let parts: Vec<&str> = content
                .and_then(|c| c.get("richText"))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.get("text").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if parts.iter().all(|p| p.trim().is_empty()) {
                Content::Unsupported {
                    msgtype: msgtype.to_string(),
                }
            } else {
                question(&parts.join(""), false)
            }
        }
        other => Content::Unsupported {
            msgtype: other.to_string(),
        },
    }
}

/// Trims, and in groups strips leading `@name` tokens. `char::is_whitespace` covers the
/// U+2005 space DingTalk puts after a mention.
fn clean_question(raw: &str, kind: ConversationKind) -> String {
    let mut rest = raw.trim();
    if kind == ConversationKind::Group {
        while let Some(after_at) = rest.strip_prefix(['@', '＠']) {
            match after_at.find(char::is_whitespace) {
                Some(end) => rest = after_at[end..].trim_start(),
                // Only a mention, nothing after it.
                None => rest = "",
            }
        }
    }
    rest.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_text(content: &str) -> Value {
        json!({
            "msgId": "msg-1", "msgtype": "text", "text": {"content": content},
            "conversationId": "cidGROUP", "conversationType": "2", "conversationTitle": "Support",
            "senderId": "$:LWCP_v1:$abc", "senderStaffId": "0326", "senderNick": "Li Lei",
            "robotCode": "dingrobot",
            "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=TOKEN123",
            "sessionWebhookExpiredTime": 1774086394522i64, "createAt": 1774080994334i64
        })
    }

    fn one_to_one(staff: Option<&str>) -> Value {
        let mut v = json!({
            "msgId": "msg-2", "msgtype": "text", "text": {"content": "  how do I reset my password?\n"},
            "conversationId": "cidDM", "conversationType": "1",
            "senderId": "$:LWCP_v1:$ext", "senderNick": "Han Meimei"
        });
        if let Some(s) = staff {
            v["senderStaffId"] = json!(s);
        }
        v
    }

    #[test]
    fn group_text_is_parsed_and_mention_leftovers_stripped() {
        let m = RobotMessage::parse(&group_text(" @Helper\u{2005}@张三 what is VPN?  "), "hdr")
            .unwrap();
        assert_eq!(m.msg_id, "msg-1");
        assert_eq!(m.kind, ConversationKind::Group);
        assert_eq!(m.question(), Some("what is VPN?"));
        assert_eq!(m.conversation_title.as_deref(), Some("Support"));
        assert_eq!(m.robot_code.as_deref(), Some("dingrobot"));
        assert_eq!(m.created_at_ms, Some(1774080994334));
        let hook = m.session_webhook.as_ref().unwrap();
        assert_eq!(hook.expires_at_ms, Some(1774086394522));
        assert!(hook.url.ends_with("TOKEN123"));
    }

    #[test]
    fn group_leading_space_only_is_trimmed() {
        let m = RobotMessage::parse(&group_text(" hello"), "").unwrap();
        assert_eq!(m.question(), Some("hello"));
    }

    #[test]
    fn mentions_inside_the_question_are_kept() {
        let m = RobotMessage::parse(&group_text(" who is @Wang in IT?"), "").unwrap();
        assert_eq!(m.question(), Some("who is @Wang in IT?"));
    }

    #[test]
    fn one_to_one_keeps_a_leading_at() {
        let mut v = one_to_one(Some("0999"));
        v["text"]["content"] = json!("@home what now");
        let m = RobotMessage::parse(&v, "").unwrap();
        assert_eq!(m.question(), Some("@home what now"));
    }

    #[test]
    fn only_mentions_is_empty_with_a_polite_reply() {
        let m = RobotMessage::parse(&group_text(" @Helper\u{2005}"), "").unwrap();
        assert_eq!(m.content, Content::Empty);
        assert_eq!(
            m.polite_reply(Lang::En),
            Some(Texts::for_lang(Lang::En).empty_question)
        );
        let m = RobotMessage::parse(&group_text("@Helper"), "").unwrap();
        assert_eq!(m.content, Content::Empty);
    }

    #[test]
    fn chat_ids_follow_the_rule() {
        let g = RobotMessage::parse(&group_text("q"), "").unwrap();
        assert_eq!(g.chat_id(), "group:cidGROUP:0326");
        let staff = RobotMessage::parse(&one_to_one(Some("0999")), "").unwrap();
        assert_eq!(staff.chat_id(), "user:0999");
        let external = RobotMessage::parse(&one_to_one(None), "").unwrap();
        assert_eq!(external.chat_id(), "user:$:LWCP_v1:$ext");
    }

    #[test]
    fn reply_targets() {
        let g = RobotMessage::parse(&group_text("q"), "").unwrap();
        let target = g.reply_target();
        assert_eq!(
            target,
            ReplyTarget::Group {
                open_conversation_id: "cidGROUP".into()
            }
        );
        assert_eq!(
            target.open_space_id().as_deref(),
            Some("dtv1.card//IM_GROUP.cidGROUP")
        );
        assert_eq!(
            Value::Object(target.standard_card_fields().unwrap()),
            json!({"openConversationId": "cidGROUP"})
        );

        let dm = RobotMessage::parse(&one_to_one(Some("0999")), "").unwrap();
        let target = dm.reply_target();
        assert_eq!(
            target,
            ReplyTarget::User {
                staff_id: "0999".into()
            }
        );
        assert_eq!(
            target.open_space_id().as_deref(),
            Some("dtv1.card//IM_ROBOT.0999")
        );
        let fields = target.standard_card_fields().unwrap();
        let receiver: Value =
            serde_json::from_str(fields["singleChatReceiver"].as_str().unwrap()).unwrap();
        assert_eq!(receiver, json!({"userId": "0999"}));

        let ext = RobotMessage::parse(&one_to_one(None), "").unwrap();
        assert_eq!(ext.reply_target(), ReplyTarget::SessionOnly);
        assert_eq!(ext.reply_target().standard_card_fields(), None);
        assert_eq!(ext.reply_target().open_space_id(), None);
    }

    #[test]
    fn at_user_needs_a_staff_id() {
        let g = RobotMessage::parse(&group_text("q"), "").unwrap();
        assert_eq!(
            g.at_user(),
            Some(AtUser {
                nick: "Li Lei".into(),
                staff_id: "0326".into()
            })
        );
        let ext = RobotMessage::parse(&one_to_one(None), "").unwrap();
        assert_eq!(ext.at_user(), None);
    }

    #[test]
    fn audio_with_recognition_is_a_question() {
        let mut v = one_to_one(Some("1"));
        v["msgtype"] = json!("audio");
        v["content"] =
            json!({"duration": 3000, "downloadCode": "x", "recognition": " 打印机怎么连接 "});
        let m = RobotMessage::parse(&v, "").unwrap();
        assert_eq!(
            m.content,
            Content::Question {
                text: "打印机怎么连接".into(),
                from_voice: true
            }
        );
        assert_eq!(m.polite_reply(Lang::Zh), None);
    }

    #[test]
    fn audio_without_recognition_and_other_types_get_the_polite_reply() {
        let mut v = one_to_one(Some("1"));
        v["msgtype"] = json!("audio");
        v["content"] = json!({"duration": 3000});
        let m = RobotMessage::parse(&v, "").unwrap();
        assert_eq!(
            m.content,
            Content::Unsupported {
                msgtype: "audio".into()
            }
        );
        for t in ["picture", "video", "file", "unknownMsgType"] {
            let mut v = one_to_one(Some("1"));
            v["msgtype"] = json!(t);
            v["content"] = json!({"downloadCode": "x"});
            let m = RobotMessage::parse(&v, "").unwrap();
            assert_eq!(m.content, Content::Unsupported { msgtype: t.into() });
            assert_eq!(
                m.polite_reply(Lang::Zh),
                Some(Texts::for_lang(Lang::Zh).only_text)
            );
        }
    }

    #[test]
    fn rich_text_uses_its_text_parts() {
        let mut v = group_text("");
        v["msgtype"] = json!("richText");
        v["content"] = json!({"richText": [{"text": " @Helper\u{2005}see "}, {"downloadCode": "pic"}, {"text": "this error"}]});
        let m = RobotMessage::parse(&v, "").unwrap();
        assert_eq!(m.question(), Some("see this error"));
        v["content"] = json!({"richText": [{"downloadCode": "pic"}]});
        let m = RobotMessage::parse(&v, "").unwrap();
        assert!(matches!(m.content, Content::Unsupported { .. }));
    }

    #[test]
    fn msg_id_falls_back_to_the_frame_header() {
        let mut v = group_text("q");
        v.as_object_mut().unwrap().remove("msgId");
        let m = RobotMessage::parse(&v, "hdr-77").unwrap();
        assert_eq!(m.msg_id, "hdr-77");
        assert_eq!(
            RobotMessage::parse(&v, "").unwrap_err(),
            MessageError::Missing { field: "msgId" }
        );
    }

    #[test]
    fn broken_messages_are_typed_errors() {
        assert!(matches!(
            RobotMessage::from_data_str("{oops", "h"),
            Err(MessageError::NotJson { .. })
        ));
        assert_eq!(
            RobotMessage::from_data_str("[]", "h").unwrap_err(),
            MessageError::NotAnObject
        );
        let mut v = group_text("q");
        v.as_object_mut().unwrap().remove("conversationId");
        assert_eq!(
            RobotMessage::parse(&v, "").unwrap_err(),
            MessageError::Missing {
                field: "conversationId"
            }
        );
        let mut v = group_text("q");
        v["conversationType"] = json!("3");
        let e = RobotMessage::parse(&v, "").unwrap_err();
        assert!(matches!(
            e,
            MessageError::Invalid {
                field: "conversationType",
                ..
            }
        ));
        let mut v = group_text("q");
        v.as_object_mut().unwrap().remove("senderId");
        v.as_object_mut().unwrap().remove("senderStaffId");
        assert_eq!(
            RobotMessage::parse(&v, "").unwrap_err(),
            MessageError::Missing { field: "senderId" }
        );
    }

    #[test]
    fn numeric_conversation_type_and_missing_msgtype_are_tolerated() {
        let mut v = group_text(" hi");
        v["conversationType"] = json!(1);
        v.as_object_mut().unwrap().remove("msgtype");
        let m = RobotMessage::parse(&v, "").unwrap();
        assert_eq!(m.kind, ConversationKind::OneToOne);
        assert_eq!(m.question(), Some("hi"));
    }

    #[test]
    fn webhook_debug_hides_the_session_token() {
        let m = RobotMessage::parse(&group_text("q"), "").unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("TOKEN123"), "{shown}");
        assert!(shown.contains("sendBySession?<redacted>"));
    }

    #[test]
    fn webhook_expiry() {
        let hook = SessionWebhook {
            url: "https://x/y".into(),
            expires_at_ms: Some(1_000_000),
        };
        assert!(hook.is_usable_at(900_000));
        assert!(!hook.is_usable_at(950_000));
        assert!(!hook.is_usable_at(2_000_000));
        let unknown = SessionWebhook {
            url: "https://x/y".into(),
            expires_at_ms: None,
        };
        assert!(unknown.is_usable_at(i64::MAX / 2));
    }
}
