//! What the robot reads from a robot message (the typed
//! [`jitnode_dingtalk_wire::RobotMessage`] the Stream client hands it): the question, who
//! asked, where to answer, and the chat id for conversation memory. [`Incoming`] adds these
//! readings to the message itself, so there is one message type from the frame to the card.
//!
//! Rules decided here:
//! - **Checked.** A message needs a `msgId` (the frame's `messageId` stands in), a
//!   `conversationId`, a `conversationType` of "1" or "2" and a sender; see
//!   [`Incoming::check`].
//! - **Question.** `text.content`, trimmed. DingTalk removes the robot's own `@name` from it
//!   but leaves the space; some clients leave the name too. In groups, the leading `@name`
//!   tokens beyond the number of *other* people @-mentioned (`atUsers` without the robot,
//!   `chatbotUserId`) are the robot's and are stripped; the others' stay as typed
//!   (`@王芳 can you look at the VPN?`), so the agent sees who else was addressed. Audio with
//!   a non-empty `content.recognition` is answered as a question; `richText` is answered
//!   with its text parts. `picture`, `file` and `video` get a polite reply naming what the
//!   robot cannot read; other types a "text or voice only" one.
//! - **Quote.** A group reply that quotes a message (`text.isReplyMsg`, `text.repliedMsg`)
//!   is answered for its new text; the quoted text ([`Incoming::quoted`]) goes to the agent
//!   as context.
//! - **Chat id** (the agent's memory key): the asker is `senderStaffId`, or `senderId` for
//!   external users who have no staff id. One-to-one: `user:<asker>`. Group:
//!   `group:<conversationId>:<asker>`, so each person in a group has their own thread and a
//!   group thread never mixes with that person's private chat.
//! - **Reply target.** Group: `openConversationId` = `conversationId`. One-to-one: the
//!   sender's staff id (`singleChatReceiver` / `IM_ROBOT` space); an external sender without
//!   a staff id can only be answered through the session webhook.

use jitnode_dingtalk_wire::api::{self, CardTarget, Mention, SingleChatReceiver};
use jitnode_dingtalk_wire::{ConversationType, RobotMessage};
use serde_json::{json, Value};

use crate::config::Lang;
use crate::texts::Texts;

/// Why a message cannot be acted on (answered with an error ACK and logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("robot message has no `{field}`")]
    Missing { field: &'static str },
    #[error("robot message field `{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// One-to-one or group: a checked `conversationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    OneToOne,
    Group,
}

impl ConversationKind {
    /// The wire value.
    pub fn conversation_type(self) -> ConversationType {
        match self {
            ConversationKind::OneToOne => ConversationType::OneToOne,
            ConversationKind::Group => ConversationType::Group,
        }
    }

    /// The agent's conversation-memory key of `asker` in this chat (see the module doc):
    /// one rule for live messages and regenerated answers.
    pub fn chat_id(self, conversation_id: &str, asker: &str) -> String {
        match self {
            ConversationKind::OneToOne => format!("user:{asker}"),
            ConversationKind::Group => format!("group:{conversation_id}:{asker}"),
        }
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

/// Whether a session webhook expiring at `expires_at_ms` (epoch ms) can still be used at
/// `now_ms`. Unknown expiry counts as usable; a minute of margin covers clock skew and the
/// request's own time.
pub fn webhook_usable_at(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    match expires_at_ms {
        Some(t) => now_ms + 60_000 < t,
        None => true,
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
    /// Where an answer in this chat goes: the group; else the asker by staff id; else only
    /// the session webhook reaches them (an external asker in a one-to-one chat). One rule
    /// for live messages and stored answers.
    pub fn of(
        kind: ConversationKind,
        conversation_id: &str,
        staff_id: Option<&str>,
    ) -> ReplyTarget {
        match (kind, staff_id) {
            (ConversationKind::Group, _) => ReplyTarget::Group {
                open_conversation_id: conversation_id.to_string(),
            },
            (ConversationKind::OneToOne, Some(staff_id)) => ReplyTarget::User {
                staff_id: staff_id.to_string(),
            },
            (ConversationKind::OneToOne, None) => ReplyTarget::SessionOnly,
        }
    }

    /// The card address; `None` for [`ReplyTarget::SessionOnly`].
    pub fn card_target(&self) -> Option<CardTarget<'_>> {
        match self {
            ReplyTarget::Group {
                open_conversation_id,
            } => Some(CardTarget::Group(open_conversation_id)),
            ReplyTarget::User { staff_id } => Some(CardTarget::User(staff_id)),
            ReplyTarget::SessionOnly => None,
        }
    }

    /// The fields that address a standard card send (`openConversationId` or
    /// `singleChatReceiver`), to merge into its body. `None` for [`ReplyTarget::SessionOnly`].
    pub fn standard_card_fields(&self) -> Option<serde_json::Map<String, Value>> {
        let mut m = serde_json::Map::new();
        match self.card_target()? {
            CardTarget::Group(cid) => {
                m.insert("openConversationId".into(), json!(cid));
            }
            CardTarget::User(staff) => {
                let receiver = SingleChatReceiver {
                    user_id: staff.to_string(),
                };
                m.insert(
                    "singleChatReceiver".into(),
                    json!(api::to_json_string(&receiver)),
                );
            }
        }
        Some(m)
    }

    /// The `openSpaceId` of a template card delivery.
    pub fn open_space_id(&self) -> Option<String> {
        self.card_target().map(CardTarget::open_space_id)
    }
}

/// The robot's readings of a message, straight from the typed message.
pub trait Incoming {
    /// Whether the robot can act on the message at all; its conversation kind if so.
    fn check(&self) -> Result<ConversationKind, MessageError>;
    /// Group or one-to-one; anything but a group counts as one-to-one (see [`Self::check`]).
    fn kind(&self) -> ConversationKind;
    /// The stable id of the asker: staff id when known, else the DingTalk id.
    fn asker(&self) -> &str;
    /// The asker's staff id, when they have one (trimmed, never empty).
    fn staff_id(&self) -> Option<&str>;
    /// What the message asks for.
    fn asked(&self) -> Content;
    /// The question, when the message asks one.
    fn question(&self) -> Option<String>;
    /// The agent's conversation-memory key (see the module doc for the rule).
    fn chat_id(&self) -> String;
    /// Where the answer goes.
    fn reply_target(&self) -> ReplyTarget;
    /// The sender to @-mention, when they have a staff id (only staff can be mentioned).
    fn mention(&self) -> Option<Mention>;
    /// The session webhook, when the message brought one.
    fn webhook(&self) -> Option<&str>;
    /// `sessionWebhookExpiredTime`, when known.
    fn webhook_expires_at_ms(&self) -> Option<i64>;
    /// The text reply for a message that is not a question, `None` for a question.
    fn polite_reply(&self, lang: Lang) -> Option<&'static str>;
    /// The words of the message this one quotes (a reply in a group), cut to
    /// [`MAX_QUOTE_CHARS`]; `None` when it quotes nothing or nothing readable.
    fn quoted(&self) -> Option<String>;
    /// How many people other than the robot the message @-mentions.
    fn others_mentioned(&self) -> usize;
}

/// The longest quote passed on as context.
pub const MAX_QUOTE_CHARS: usize = 500;

/// `text` cut to at most `max` characters (at a character boundary); whether it was cut.
pub fn cut_chars(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (text[..at].trim_end().to_string(), true),
        None => (text.to_string(), false),
    }
}

/// The readable words of a quoted message's `content` (`repliedMsg.content`): its `text`
/// (or `content`), a markdown's `text`, or the text segments of a rich text, which come as
/// `{"msgType": "text", "content"}` or `{"text"}`.
fn quoted_words(msgtype: &str, content: &Value) -> Option<String> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let words = match msgtype {
        "richText" => {
            let parts: Vec<String> = content
                .get("richText")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|seg| {
                    seg.get("msgType")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "text")
                })
                .filter_map(|seg| text(seg, "text").or_else(|| text(seg, "content")))
                .collect();
            Some(parts.join(""))
        }
        "audio" => text(content, "recognition"),
        _ => text(content, "text").or_else(|| text(content, "content")),
    }?;
    let words = words.trim();
    (!words.is_empty()).then(|| cut_chars(words, MAX_QUOTE_CHARS).0)
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

impl Incoming for RobotMessage {
    fn check(&self) -> Result<ConversationKind, MessageError> {
        if non_empty(&self.msg_id).is_none() {
            return Err(MessageError::Missing { field: "msgId" });
        }
        if non_empty(&self.conversation_id).is_none() {
            return Err(MessageError::Missing {
                field: "conversationId",
            });
        }
        let kind = match &self.conversation_type {
            ConversationType::OneToOne => ConversationKind::OneToOne,
            ConversationType::Group => ConversationKind::Group,
            ConversationType::Other(s) if s.is_empty() => {
                return Err(MessageError::Missing {
                    field: "conversationType",
                })
            }
            ConversationType::Other(_) => {
                return Err(MessageError::Invalid {
                    field: "conversationType",
                    reason: "must be \"1\" (one-to-one) or \"2\" (group)".into(),
                })
            }
        };
        if non_empty(&self.sender_id).is_none() && self.staff_id().is_none() {
            return Err(MessageError::Missing { field: "senderId" });
        }
        Ok(kind)
    }

    fn kind(&self) -> ConversationKind {
        if self.is_group() {
            ConversationKind::Group
        } else {
            ConversationKind::OneToOne
        }
    }

    fn asker(&self) -> &str {
        self.staff_id()
            .or_else(|| non_empty(&self.sender_id))
            .unwrap_or_default()
    }

    fn staff_id(&self) -> Option<&str> {
        self.sender_staff_id.as_deref().and_then(non_empty)
    }

    fn asked(&self) -> Content {
        let kind = self.kind();
        let others = self.others_mentioned();
        let question = |raw: &str, from_voice: bool| {
            let text = clean_question(raw, kind, others);
            if text.is_empty() {
                Content::Empty
            } else {
                Content::Question { text, from_voice }
            }
        };
        let content = self.content.as_ref();
        // A message without `msgtype` is read as text.
        let msgtype = non_empty(&self.msgtype).unwrap_or("text");
        match msgtype {
            "text" => question(
                self.text.as_ref().map(|t| t.content.as_str()).unwrap_or(""),
                false,
            ),
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

    fn question(&self) -> Option<String> {
        match self.asked() {
            Content::Question { text, .. } => Some(text),
            _ => None,
        }
    }

    fn chat_id(&self) -> String {
        self.kind().chat_id(&self.conversation_id, self.asker())
    }

    fn reply_target(&self) -> ReplyTarget {
        ReplyTarget::of(self.kind(), &self.conversation_id, self.staff_id())
    }

    fn mention(&self) -> Option<Mention> {
        self.staff_id().map(|staff_id| Mention {
            nick_name: self.sender_nick.trim().to_string(),
            user_id: staff_id.to_string(),
        })
    }

    fn webhook(&self) -> Option<&str> {
        non_empty(&self.session_webhook)
    }

    fn webhook_expires_at_ms(&self) -> Option<i64> {
        Some(self.session_webhook_expired_time).filter(|t| *t > 0)
    }

    fn polite_reply(&self, lang: Lang) -> Option<&'static str> {
        let t = Texts::for_lang(lang);
        match self.asked() {
            Content::Question { .. } => None,
            Content::Empty => Some(t.empty_question),
            Content::Unsupported { msgtype } => Some(match msgtype.as_str() {
                "picture" => t.no_picture,
                "file" => t.no_file,
                "video" => t.no_video,
                _ => t.only_text,
            }),
        }
    }

    fn quoted(&self) -> Option<String> {
        let text = self.text.as_ref().filter(|t| t.is_reply_msg)?;
        let replied = text.replied_msg.as_ref()?;
        let msgtype = replied
            .get("msgType")
            .or_else(|| replied.get("msgtype"))
            .and_then(Value::as_str)
            .unwrap_or("text");
        quoted_words(msgtype, replied.get("content")?)
    }

    fn others_mentioned(&self) -> usize {
        let robot = self.chatbot_user_id.trim();
        self.at_users
            .iter()
            .filter(|u| robot.is_empty() || u.dingtalk_id != robot)
            .count()
    }
}

/// Trims, and in groups strips the leading `@name` tokens beyond the `others` (the people
/// other than the robot @-mentioned): those are the robot's. `char::is_whitespace` covers
/// the U+2005 space DingTalk puts after a mention.
fn clean_question(raw: &str, kind: ConversationKind, others: usize) -> String {
    let rest = raw.trim();
    if kind != ConversationKind::Group {
        return rest.to_string();
    }
    // The leading mention tokens: where each starts.
    let mut starts = Vec::new();
    let mut at = rest;
    while let Some(after) = at.strip_prefix(['@', '＠']) {
        starts.push(rest.len() - at.len());
        at = match after.find(char::is_whitespace) {
            Some(end) => after[end..].trim_start(),
            None => "",
        };
    }
    let robot_tokens = starts.len().saturating_sub(others);
    let kept = match starts.get(robot_tokens) {
        // The first of the others' mentions onwards.
        Some(&start) => &rest[start..],
        None => at,
    };
    kept.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitnode_dingtalk_wire::frame::TOPIC_ROBOT;
    use jitnode_dingtalk_wire::{Frame, FrameType, ParseError};

    /// The message as the Stream client reads it from a frame with `messageId` `hdr`.
    fn from_data_str(data: &str, hdr: &str) -> Result<RobotMessage, ParseError> {
        let mut f = Frame::new(FrameType::Callback, TOPIC_ROBOT, hdr, &Value::Null);
        f.data = data.to_string();
        RobotMessage::from_frame(&f)
    }

    /// Read and checked.
    fn parse(data: &Value, hdr: &str) -> Result<RobotMessage, MessageError> {
        let m = from_data_str(&data.to_string(), hdr).expect("a message of the right shape");
        m.check()?;
        Ok(m)
    }

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
        let m = parse(&group_text(" @Helper\u{2005}@张三 what is VPN?  "), "hdr").unwrap();
        assert_eq!(m.msg_id, "msg-1");
        assert_eq!(m.kind(), ConversationKind::Group);
        assert_eq!(m.question().as_deref(), Some("what is VPN?"));
        assert_eq!(m.conversation_title.as_deref(), Some("Support"));
        assert_eq!(m.robot_code.as_deref(), Some("dingrobot"));
        assert_eq!(m.create_at, 1774080994334);
        assert_eq!(m.webhook_expires_at_ms(), Some(1774086394522));
        assert!(m.webhook().unwrap().ends_with("TOKEN123"));
    }

    #[test]
    fn only_the_robots_leftover_mention_is_stripped() {
        let with_others = |content: &str, others: &[&str]| {
            let mut v = group_text(content);
            v["chatbotUserId"] = json!("$:LWCP_v1:$bot");
            let mut at = vec![json!({"dingtalkId": "$:LWCP_v1:$bot"})];
            at.extend(
                others
                    .iter()
                    .map(|o| json!({"dingtalkId": format!("$:LWCP_v1:${o}"), "staffId": o})),
            );
            v["atUsers"] = json!(at);
            parse(&v, "").unwrap()
        };
        // DingTalk removed the robot's mention: the other person's stays.
        let m = with_others(" @王芳\u{2005}can you check the VPN?", &["wf"]);
        assert_eq!(m.others_mentioned(), 1);
        assert_eq!(
            m.question().as_deref(),
            Some("@王芳\u{2005}can you check the VPN?")
        );
        // A client that left the robot's name: that one goes, the other stays.
        let m = with_others(" @Helper @王芳 @李雷 check the VPN", &["wf", "ll"]);
        assert_eq!(m.question().as_deref(), Some("@王芳 @李雷 check the VPN"));
        // Nobody else mentioned: every leading mention is the robot's.
        let m = with_others(" @Helper\u{2005}check the VPN", &[]);
        assert_eq!(m.question().as_deref(), Some("check the VPN"));
        // Only mentions and nothing asked.
        let m = with_others(" @王芳", &["wf"]);
        assert_eq!(m.question().as_deref(), Some("@王芳"));
    }

    #[test]
    fn a_quoted_reply_is_answered_for_its_new_text_with_the_quote_as_context() {
        let mut v = group_text(" 这个怎么处理？");
        v["text"]["isReplyMsg"] = json!(true);
        v["text"]["repliedMsg"] = json!({"msgType": "text", "msgId": "m0",
            "content": {"text": "打印机一直显示脱机"}});
        let m = parse(&v, "").unwrap();
        assert_eq!(m.question().as_deref(), Some("这个怎么处理？"));
        assert_eq!(m.quoted().as_deref(), Some("打印机一直显示脱机"));
        // The other shapes seen: content.content, rich text segments, a card (unreadable).
        v["text"]["repliedMsg"] = json!({"msgType": "text", "content": {"content": "plain"}});
        assert_eq!(parse(&v, "").unwrap().quoted().as_deref(), Some("plain"));
        v["text"]["repliedMsg"] = json!({"msgType": "richText", "content": {"richText": [
            {"msgType": "text", "content": "VPN error "}, {"msgType": "picture", "downloadCode": "d"},
            {"text": "809"}]}});
        assert_eq!(
            parse(&v, "").unwrap().quoted().as_deref(),
            Some("VPN error 809")
        );
        v["text"]["repliedMsg"] =
            json!({"msgType": "interactiveCard", "content": {"cardContent": {}}});
        assert_eq!(parse(&v, "").unwrap().quoted(), None);
        let long = "长".repeat(MAX_QUOTE_CHARS + 50);
        v["text"]["repliedMsg"] = json!({"msgType": "text", "content": {"text": long}});
        let q = parse(&v, "").unwrap().quoted().unwrap();
        assert_eq!(q.chars().count(), MAX_QUOTE_CHARS);
        // Not a reply: no quote.
        assert_eq!(parse(&group_text(" hi"), "").unwrap().quoted(), None);
    }

    #[test]
    fn cut_chars_counts_characters_not_bytes() {
        assert_eq!(cut_chars("打印机脱机", 3), ("打印机".to_string(), true));
        assert_eq!(cut_chars("short", 10), ("short".to_string(), false));
    }

    #[test]
    fn group_leading_space_only_is_trimmed() {
        let m = parse(&group_text(" hello"), "").unwrap();
        assert_eq!(m.question().as_deref(), Some("hello"));
    }

    #[test]
    fn mentions_inside_the_question_are_kept() {
        let m = parse(&group_text(" who is @Wang in IT?"), "").unwrap();
        assert_eq!(m.question().as_deref(), Some("who is @Wang in IT?"));
    }

    #[test]
    fn one_to_one_keeps_a_leading_at() {
        let mut v = one_to_one(Some("0999"));
        v["text"]["content"] = json!("@home what now");
        let m = parse(&v, "").unwrap();
        assert_eq!(m.question().as_deref(), Some("@home what now"));
    }

    #[test]
    fn only_mentions_is_empty_with_a_polite_reply() {
        let m = parse(&group_text(" @Helper\u{2005}"), "").unwrap();
        assert_eq!(m.asked(), Content::Empty);
        assert_eq!(
            m.polite_reply(Lang::En),
            Some(Texts::for_lang(Lang::En).empty_question)
        );
        let m = parse(&group_text("@Helper"), "").unwrap();
        assert_eq!(m.asked(), Content::Empty);
    }

    #[test]
    fn chat_ids_follow_the_rule() {
        let g = parse(&group_text("q"), "").unwrap();
        assert_eq!(g.chat_id(), "group:cidGROUP:0326");
        let staff = parse(&one_to_one(Some("0999")), "").unwrap();
        assert_eq!(staff.chat_id(), "user:0999");
        let external = parse(&one_to_one(None), "").unwrap();
        assert_eq!(external.chat_id(), "user:$:LWCP_v1:$ext");
    }

    #[test]
    fn reply_targets() {
        let g = parse(&group_text("q"), "").unwrap();
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

        let dm = parse(&one_to_one(Some("0999")), "").unwrap();
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

        let ext = parse(&one_to_one(None), "").unwrap();
        assert_eq!(ext.reply_target(), ReplyTarget::SessionOnly);
        assert_eq!(ext.reply_target().standard_card_fields(), None);
        assert_eq!(ext.reply_target().open_space_id(), None);
    }

    #[test]
    fn at_user_needs_a_staff_id() {
        let g = parse(&group_text("q"), "").unwrap();
        assert_eq!(
            g.mention(),
            Some(Mention {
                nick_name: "Li Lei".into(),
                user_id: "0326".into()
            })
        );
        let ext = parse(&one_to_one(None), "").unwrap();
        assert_eq!(ext.mention(), None);
    }

    #[test]
    fn audio_with_recognition_is_a_question() {
        let mut v = one_to_one(Some("1"));
        v["msgtype"] = json!("audio");
        v["content"] =
            json!({"duration": 3000, "downloadCode": "x", "recognition": " 打印机怎么连接 "});
        let m = parse(&v, "").unwrap();
        assert_eq!(
            m.asked(),
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
        let m = parse(&v, "").unwrap();
        assert_eq!(
            m.asked(),
            Content::Unsupported {
                msgtype: "audio".into()
            }
        );
        let zh = Texts::for_lang(Lang::Zh);
        let en = Texts::for_lang(Lang::En);
        for (t, reply, en_reply) in [
            ("picture", zh.no_picture, en.no_picture),
            ("video", zh.no_video, en.no_video),
            ("file", zh.no_file, en.no_file),
            ("unknownMsgType", zh.only_text, en.only_text),
        ] {
            let mut v = one_to_one(Some("1"));
            v["msgtype"] = json!(t);
            v["content"] = json!({"downloadCode": "x"});
            let m = parse(&v, "").unwrap();
            assert_eq!(m.asked(), Content::Unsupported { msgtype: t.into() });
            assert_eq!(m.polite_reply(Lang::Zh), Some(reply));
            assert_eq!(m.polite_reply(Lang::En), Some(en_reply));
        }
    }

    #[test]
    fn rich_text_uses_its_text_parts() {
        let mut v = group_text("");
        v["msgtype"] = json!("richText");
        v["content"] = json!({"richText": [{"text": " @Helper\u{2005}see "}, {"downloadCode": "pic"}, {"text": "this error"}]});
        let m = parse(&v, "").unwrap();
        assert_eq!(m.question().as_deref(), Some("see this error"));
        v["content"] = json!({"richText": [{"downloadCode": "pic"}]});
        let m = parse(&v, "").unwrap();
        assert!(matches!(m.asked(), Content::Unsupported { .. }));
    }

    #[test]
    fn msg_id_falls_back_to_the_frame_header() {
        let mut v = group_text("q");
        v.as_object_mut().unwrap().remove("msgId");
        let m = parse(&v, "hdr-77").unwrap();
        assert_eq!(m.msg_id, "hdr-77");
        assert_eq!(
            parse(&v, "").unwrap_err(),
            MessageError::Missing { field: "msgId" }
        );
    }

    #[test]
    fn broken_messages_are_typed_errors() {
        // Not JSON, or not an object: the Stream client refuses these with a 400 ACK.
        assert!(matches!(
            from_data_str("{oops", "h"),
            Err(ParseError::DataNotJson { .. })
        ));
        assert!(matches!(
            from_data_str("[]", "h"),
            Err(ParseError::Shape { .. })
        ));
        let mut v = group_text("q");
        v.as_object_mut().unwrap().remove("conversationId");
        assert_eq!(
            parse(&v, "").unwrap_err(),
            MessageError::Missing {
                field: "conversationId"
            }
        );
        let mut v = group_text("q");
        v["conversationType"] = json!("3");
        let e = parse(&v, "").unwrap_err();
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
            parse(&v, "").unwrap_err(),
            MessageError::Missing { field: "senderId" }
        );
    }

    #[test]
    fn numeric_conversation_type_and_missing_msgtype_are_tolerated() {
        let mut v = group_text(" hi");
        v["conversationType"] = json!(1);
        v.as_object_mut().unwrap().remove("msgtype");
        let m = parse(&v, "").unwrap();
        assert_eq!(m.kind(), ConversationKind::OneToOne);
        assert_eq!(m.question().as_deref(), Some("hi"));
    }

    #[test]
    fn webhook_debug_hides_the_session_token() {
        let m = parse(&group_text("q"), "").unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("TOKEN123"), "{shown}");
        assert!(shown.contains("sendBySession?<redacted>"));
    }

    #[test]
    fn webhook_expiry() {
        let hook = Some(1_000_000);
        assert!(webhook_usable_at(hook, 900_000));
        assert!(!webhook_usable_at(hook, 950_000));
        assert!(!webhook_usable_at(hook, 2_000_000));
        let unknown = None;
        assert!(webhook_usable_at(unknown, i64::MAX / 2));
    }
}
