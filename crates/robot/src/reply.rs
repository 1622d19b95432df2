//! What to send for each step of one answer, in either card mode, as plain
//! [`CardCall`]s (method, path under the OpenAPI base, JSON body), plus the session-webhook
//! bodies for text and markdown replies. The HTTP client that sends them (with the access
//! token) is not here.
//!
//! | step | standard mode | template mode |
//! |---|---|---|
//! | thinking | POST interactiveCards/send | POST createAndDeliver (flowStatus 1) |
//! | partial | PUT interactiveCards (whole card) | first: PUT instances (flowStatus 2); then PUT streaming |
//! | final | PUT interactiveCards (answer, no buttons) | PUT streaming (finalize), PUT instances (flowStatus 3, record, buttons) |
//! | failed | PUT interactiveCards (message, no spinner) | PUT instances (flowStatus 5, message) |
//! | thanks | PUT interactiveCards (answer, thanks, no buttons) | PUT instances (thanks, next buttons) |
//!
//! AI card mode sends what template mode sends, with the public template's variables
//! ([`cards::ai`]). Standard cards carry no buttons: their clicks would go to an HTTP
//! callback this robot does not serve (a click that reaches a standard-mode robot comes
//! from a card sent before a mode change; its thanks has no buttons either).

use jitnode_dingtalk_wire::api::{
    At, Mention, Method, WebhookMessage, WebhookResponse, PATH_CARD_INSTANCES, PATH_CARD_STREAMING,
    PATH_CREATE_AND_DELIVER, PATH_STANDARD_SEND, PATH_STANDARD_UPDATE,
};
use serde_json::Value;

use crate::callback::FeedbackKind;
use crate::cards::{self, ai, template, StandardCards};
use crate::config::{CardMode, Lang, RobotConfig};
use crate::message::ReplyTarget;

/// Logged once when a robot runs in standard card mode.
pub const STANDARD_MODE_NOTE: &str = "card.mode is \"standard\": answer cards carry no feedback, regenerate or continue buttons, because DingTalk sends standard-card clicks to an HTTP callback URL, which this robot does not serve; set card.mode to \"ai\" (DingTalk's public AI card, nothing to author) or \"template\" (your own published template) for buttons that work over Stream";

/// One card API request.
#[derive(Debug, Clone, PartialEq)]
pub struct CardCall {
    pub method: Method,
    /// Path under the OpenAPI base (`openApiEndpoint`).
    pub path: &'static str,
    pub body: Value,
}

impl CardCall {
    fn post(path: &'static str, body: Value) -> CardCall {
        CardCall {
            method: Method::Post,
            path,
            body,
        }
    }

    fn put(path: &'static str, body: Value) -> CardCall {
        CardCall {
            method: Method::Put,
            path,
            body,
        }
    }

    /// The full URL under `base` (no trailing slash, as [`RobotConfig`] keeps it).
    pub fn url(&self, base: &str) -> String {
        format!("{base}{}", self.path)
    }
}

/// The card of one answer: its id, where it goes and how it looks in each step.
#[derive(Debug, Clone)]
pub struct AnswerCard {
    card_id: String,
    question: String,
    mode: CardMode,
    template_id: String,
    streaming_key: String,
    robot_code: String,
    lang: Lang,
    target: ReplyTarget,
    at: Option<Mention>,
}

impl AnswerCard {
    /// A new card for `question`. `None` when the target has no card address
    /// ([`ReplyTarget::SessionOnly`]): answer through the session webhook instead.
    pub fn new(
        config: &RobotConfig,
        card_id: impl Into<String>,
        question: &str,
        target: ReplyTarget,
        at: Option<Mention>,
    ) -> Option<AnswerCard> {
        if target == ReplyTarget::SessionOnly {
            return None;
        }
        Some(AnswerCard::of(config, card_id.into(), question, target, at))
    }

    fn of(
        config: &RobotConfig,
        card_id: String,
        question: &str,
        target: ReplyTarget,
        at: Option<Mention>,
    ) -> AnswerCard {
        AnswerCard {
            card_id,
            question: question.to_string(),
            mode: config.card.mode,
            template_id: config.card.template_id.clone().unwrap_or_default(),
            streaming_key: config.card.streaming_key.clone(),
            robot_code: config.robot_code.clone(),
            lang: Lang::of_text(question, config.language),
            target,
            at,
        }
    }

    /// A card sent before (by a host that died mid-answer), to update or finish: it has no
    /// target, so [`thinking`](Self::thinking) must not be sent for it.
    pub(crate) fn existing(config: &RobotConfig, card_id: &str, question: &str) -> AnswerCard {
        AnswerCard::of(
            config,
            card_id.to_string(),
            question,
            ReplyTarget::SessionOnly,
            None,
        )
    }

    /// `cardBizId` (standard) or `outTrackId` (template).
    pub fn card_id(&self) -> &str {
        &self.card_id
    }

    pub fn mode(&self) -> CardMode {
        self.mode
    }

    fn standard(&self) -> StandardCards {
        StandardCards::new(self.card_id.clone(), self.lang)
    }

    fn standard_update(&self, card: &Value) -> CardCall {
        CardCall::put(
            PATH_STANDARD_UPDATE,
            cards::standard_update_body(&self.card_id, card),
        )
    }

    fn template_update(&self, params: &jitnode_dingtalk_wire::ParamMap) -> CardCall {
        CardCall::put(
            PATH_CARD_INSTANCES,
            template::update_body(&self.card_id, params),
        )
    }

    fn streaming(&self, text: &str, finalize: bool) -> CardCall {
        // A fresh guid per call: the API treats a repeated guid as the same update.
        let guid = uuid::Uuid::new_v4().to_string();
        CardCall::put(
            PATH_CARD_STREAMING,
            template::streaming_body(
                &self.card_id,
                &guid,
                &self.streaming_key,
                text,
                finalize,
                false,
            ),
        )
    }

    /// The first card, sent at once, @-mentioning the asker.
    pub fn thinking(&self) -> CardCall {
        let at = self.at.as_ref();
        match self.mode {
            CardMode::Standard => {
                let card = self.standard().thinking(&self.question);
                // `new` refused SessionOnly, the only target without a body.
                let body = cards::standard_send_body(
                    &self.robot_code,
                    &self.card_id,
                    &card,
                    &self.target,
                    at,
                )
                .unwrap_or(Value::Null);
                CardCall::post(PATH_STANDARD_SEND, body)
            }
            CardMode::Template | CardMode::Ai => {
                let params = if self.mode == CardMode::Ai {
                    ai::thinking(&self.question)
                } else {
                    template::thinking(&self.question, &self.streaming_key, self.lang)
                };
                let body = template::create_and_deliver_body(
                    &self.template_id,
                    &self.card_id,
                    &self.robot_code,
                    &self.target,
                    at,
                    &params,
                )
                .unwrap_or(Value::Null);
                CardCall::post(PATH_CREATE_AND_DELIVER, body)
            }
        }
    }

    /// The text so far. `first` marks the first partial update of the answer (template
    /// cards then switch to "inputting").
    pub fn partial(&self, text: &str, first: bool) -> Vec<CardCall> {
        match self.mode {
            CardMode::Standard => {
                vec![self.standard_update(&self.standard().streaming(&self.question, text))]
            }
            CardMode::Template | CardMode::Ai => {
                let mut calls = Vec::new();
                if first {
                    let mut params = jitnode_dingtalk_wire::ParamMap::new();
                    params.insert(
                        "flowStatus".into(),
                        jitnode_dingtalk_wire::FlowStatus::Inputting.as_str().into(),
                    );
                    calls.push(self.template_update(&params));
                }
                calls.push(self.streaming(text, false));
                calls
            }
        }
    }

    /// The whole answer with the feedback buttons for `record`.
    pub fn final_answer(&self, answer: &str, record: &str) -> Vec<CardCall> {
        match self.mode {
            CardMode::Standard => {
                vec![self.standard_update(&self.standard().final_answer(&self.question, answer))]
            }
            CardMode::Template => vec![
                self.streaming(answer, true),
                self.template_update(&template::final_answer(
                    &self.question,
                    answer,
                    record,
                    &self.streaming_key,
                )),
            ],
            CardMode::Ai => vec![
                self.streaming(answer, true),
                self.template_update(&ai::final_answer(&self.question, answer, record, self.lang)),
            ],
        }
    }

    /// A failed answer: the text so far and a human message; nothing left spinning.
    pub fn failed(&self, partial_answer: &str, message: &str) -> Vec<CardCall> {
        match self.mode {
            CardMode::Standard => vec![self.standard_update(&self.standard().failed(
                &self.question,
                partial_answer,
                message,
            ))],
            CardMode::Template => vec![self.template_update(&template::failed(
                &self.question,
                partial_answer,
                message,
                &self.streaming_key,
            ))],
            CardMode::Ai => {
                vec![self.template_update(&ai::failed(&self.question, partial_answer, message))]
            }
        }
    }

    /// After feedback on this card: the answer stays, thanks and (but on a standard card)
    /// the next-step buttons.
    pub fn thanks(&self, answer: &str, kind: FeedbackKind, record: &str) -> Vec<CardCall> {
        match self.mode {
            CardMode::Standard => {
                vec![self.standard_update(&self.standard().thanks(&self.question, Some(answer)))]
            }
            CardMode::Template => {
                vec![self.template_update(&template::thanks(kind, record, self.lang))]
            }
            CardMode::Ai => {
                vec![self.template_update(&ai::thanks(&self.question, answer, record, self.lang))]
            }
        }
    }
}

/// `at` always present, empty when nobody is mentioned.
fn at_field(at: Option<&Mention>) -> Option<At> {
    Some(at.map(|m| At::user(m.user_id.clone())).unwrap_or_default())
}

/// A text reply through the session webhook (§5.1).
pub fn webhook_text(text: &str, at: Option<&Mention>) -> WebhookMessage {
    WebhookMessage::text(text, at_field(at))
}

/// A markdown reply through the session webhook: the fallback when the card API keeps
/// failing. DingTalk shows a mention in markdown only when `@<staffId>` is in the text, so
/// it is prepended.
pub fn webhook_markdown(title: &str, text: &str, at: Option<&Mention>) -> WebhookMessage {
    let text = match at {
        Some(at) => format!("@{} {text}", at.user_id),
        None => text.to_string(),
    };
    WebhookMessage::markdown(title, text, at_field(at))
}

/// Whether a session-webhook response body means success: HTTP 200 is not enough, an
/// expired session answers 200 with a non-zero `errcode`.
pub fn webhook_succeeded(response: &Value) -> bool {
    serde_json::from_value::<WebhookResponse>(response.clone()).is_ok_and(|r| r.succeeded())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::Action;
    use jitnode_dingtalk_wire::api;
    use serde_json::json;

    use crate::config::test_config as config;

    fn group() -> ReplyTarget {
        ReplyTarget::Group {
            open_conversation_id: "cid1".into(),
        }
    }

    fn li() -> Option<Mention> {
        Some(Mention {
            nick_name: "Li".into(),
            user_id: "0326".into(),
        })
    }

    fn card_data(call: &CardCall) -> Value {
        serde_json::from_str(call.body["cardData"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn session_only_targets_get_no_card() {
        assert!(AnswerCard::new(
            &config("standard"),
            "c",
            "q",
            ReplyTarget::SessionOnly,
            None
        )
        .is_none());
    }

    #[test]
    fn standard_mode_steps() {
        let card = AnswerCard::new(&config("standard"), "c1", "Why?", group(), li()).unwrap();
        assert_eq!(card.card_id(), "c1");
        assert_eq!(card.mode(), CardMode::Standard);

        let t = card.thinking();
        assert_eq!((t.method, t.path), (Method::Post, PATH_STANDARD_SEND));
        assert_eq!(t.body["robotCode"], "dingapp");
        assert_eq!(t.body["cardBizId"], "c1");
        assert_eq!(t.body["openConversationId"], "cid1");
        assert!(t.body["sendOptions"]["atUserListJson"]
            .as_str()
            .unwrap()
            .contains("0326"));
        assert_eq!(card_data(&t)["header"]["title"]["text"], "Why?");
        assert_eq!(
            t.url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/v1.0/im/v1.0/robot/interactiveCards/send"
        );

        let p = card.partial("Because", true);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].method, p[0].path),
            (Method::Put, PATH_STANDARD_UPDATE)
        );
        assert_eq!(p[0].body["cardBizId"], "c1");
        assert!(p[0].body["cardData"].as_str().unwrap().contains("Because"));

        let f = card.final_answer("Because.", "rec1");
        assert_eq!(f.len(), 1);
        let data = card_data(&f[0]);
        let s = data.to_string();
        // No dead buttons: standard clicks would need an HTTP callback.
        assert!(s.contains("Because.") && !s.contains("rec1") && !s.contains("Not helpful"));
        assert!(!s.contains("\"button\""));

        let x = card.failed("Bec", "Sorry.");
        assert!(card_data(&x[0]).to_string().contains("Sorry."));

        let th = card.thanks("Because.", FeedbackKind::Helpful, "rec1");
        let s = card_data(&th[0]).to_string();
        assert!(s.contains("Because.") && s.contains("Thank"));
        assert!(!s.contains("Regenerate") && !s.contains("\"button\""));
    }

    #[test]
    fn template_mode_steps() {
        let target = ReplyTarget::User {
            staff_id: "0326".into(),
        };
        let card = AnswerCard::new(&config("template"), "t1", "Why?", target, li()).unwrap();

        let t = card.thinking();
        assert_eq!((t.method, t.path), (Method::Post, PATH_CREATE_AND_DELIVER));
        assert_eq!(t.body["cardTemplateId"], "tpl.schema");
        assert_eq!(t.body["outTrackId"], "t1");
        assert_eq!(t.body["openSpaceId"], "dtv1.card//IM_ROBOT.0326");
        assert_eq!(t.body["cardData"]["cardParamMap"]["flowStatus"], "1");

        let first = card.partial("Be", true);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].path, PATH_CARD_INSTANCES);
        assert_eq!(first[0].body["cardData"]["cardParamMap"]["flowStatus"], "2");
        assert_eq!(first[1].path, PATH_CARD_STREAMING);
        assert_eq!(first[1].body["content"], "Be");
        assert_eq!(first[1].body["key"], "content");
        assert_eq!(first[1].body["isFinalize"], false);
        let later = card.partial("Because", false);
        assert_eq!(later.len(), 1);
        assert_ne!(later[0].body["guid"], first[1].body["guid"]);

        let f = card.final_answer("Because.", "rec1");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].path, PATH_CARD_STREAMING);
        assert_eq!(f[0].body["isFinalize"], true);
        assert_eq!(f[0].body["content"], "Because.");
        let params = &f[1].body["cardData"]["cardParamMap"];
        assert_eq!(params["flowStatus"], "3");
        assert_eq!(params["record"], "rec1");
        assert_eq!(
            Action::from_value_str(params["valueHelpful"].as_str().unwrap()).unwrap(),
            Action::Feedback {
                kind: FeedbackKind::Helpful,
                record: "rec1".into()
            }
        );

        let x = card.failed("Bec", "Sorry.");
        assert_eq!(x[0].body["cardData"]["cardParamMap"]["flowStatus"], "5");
        assert_eq!(x[0].body["cardData"]["cardParamMap"]["notice"], "Sorry.");

        let th = card.thanks("Because.", FeedbackKind::VeryHelpful, "rec1");
        assert_eq!(
            th[0].body["cardData"]["cardParamMap"]["feedback"],
            "very_helpful"
        );
    }

    #[test]
    fn webhook_bodies() {
        let at = li();
        let t = api::to_value(&webhook_text("Only text, please.", at.as_ref()));
        assert_eq!(
            t,
            json!({"msgtype": "text", "text": {"content": "Only text, please."},
                   "at": {"atUserIds": ["0326"]}})
        );
        let m = api::to_value(&webhook_markdown("Answer", "**bold**", at.as_ref()));
        assert_eq!(m["markdown"]["title"], "Answer");
        assert_eq!(m["markdown"]["text"], "@0326 **bold**");
        assert_eq!(m["at"]["atUserIds"][0], "0326");
        let plain = api::to_value(&webhook_markdown("Answer", "x", None));
        assert_eq!(plain["markdown"]["text"], "x");
        assert_eq!(plain["at"]["atUserIds"], json!([]));
    }

    #[test]
    fn webhook_errcode_is_checked() {
        assert!(webhook_succeeded(&json!({"errcode": 0, "errmsg": "ok"})));
        assert!(!webhook_succeeded(
            &json!({"errcode": 300001, "errmsg": "session expired"})
        ));
        assert!(!webhook_succeeded(&json!({"code": "x"})));
    }
}
