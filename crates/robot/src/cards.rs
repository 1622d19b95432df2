//! The robot's cards as JSON values, for both card modes. No I/O: the reply APIs send what
//! these functions build.
//!
//! **Standard mode** ([`StandardCards`]): the `StandardCard` JSON of dingtalk-stream.md §5.3.
//! Every update replaces the whole card, so each builder returns a whole card. Element ids
//! are `<cardBizId>_<role>`: unique within a card and across cards (the seed gave every
//! element the same timestamp).
//!
//! **Template mode** ([`template`]): `cardParamMap`s (every value a string) for
//! `createAndDeliver` and card updates, plus the request bodies. The published template is
//! expected to use these variables:
//!
//! | variable | meaning |
//! |---|---|
//! | `question` | the question (card title) |
//! | `<streamingKey>` (default `content`) | the answer text, streamed |
//! | `flowStatus` | "1" processing … "3" finished, "5" failed (§5.4) |
//! | `stage` | `thinking`, `answered`, `failed`, `thanked` |
//! | `notice` | a human message (thinking / failure / thanks text) |
//! | `record` | the answer's record id, for button params `{"action":..,"kind":..,"record":"${record}"}` |
//! | `valueVeryHelpful`, `valueHelpful`, `valueUnhelpful`, `valueVeryUnhelpful`, `valueRegenerate`, `valueContinue` | ready-made button values, for templates whose buttons send `{"value": "${valueHelpful}"}` |
//! | `feedback` | the kind the user chose (after feedback) |
//!
//! **AI card mode** ([`ai`]): DingTalk's public AI card template
//! ([`ai_card::TEMPLATE_ID`]), nothing to author. It has three variables only: `flowStatus`,
//! `msgContent` (the answer, streamed) and `sys_full_json_obj` (title and buttons; each
//! button id is an [`Action::to_action_id`]). Notices are appended to the answer text, since
//! the template has no other place for them.

use jitnode_dingtalk_wire::api::{self, ai_card, Mention, StandardCardSend, StandardCardUpdate};
use serde_json::{json, Value};

use crate::callback::FeedbackKind;
use crate::config::Lang;
use crate::message::ReplyTarget;
use crate::texts::Texts;

pub mod view;

/// Role of the standard card element that carries a failure notice (its id is
/// `<cardBizId>_notice`); [`view`] reads a card with a notice and no buttons as failed.
pub(crate) const ROLE_NOTICE: &str = "notice";

/// Role of the closing line of a finished standard answer or thanks (`<cardBizId>_end`); [`view`]
/// reads a card with it as done.
pub(crate) const ROLE_END: &str = "end";

/// Longest header title; longer questions are cut with an ellipsis (the full question is in
/// the records database).
pub const MAX_TITLE_CHARS: usize = 60;

/// A fresh id for a card (`cardBizId` / `outTrackId`): 32 hex digits.
pub fn new_card_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The question cut to [`MAX_TITLE_CHARS`], on one line.
pub fn title_of(question: &str) -> String {
    one_line(question, MAX_TITLE_CHARS)
}

/// `s` on one line (runs of white space folded to one space), cut to at most `max`
/// characters with an ellipsis as the last.
pub fn one_line(s: &str, max: usize) -> String {
    let folded: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        return folded;
    }
    let mut cut: String = folded.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `atUserListJson`: the mention list as a JSON string.
pub fn at_user_list_json(at: &Mention) -> String {
    api::to_json_string(&[at])
}

/// The label of a feedback button.
pub fn feedback_label(texts: &Texts, kind: FeedbackKind) -> &'static str {
    match kind {
        FeedbackKind::VeryHelpful => texts.very_helpful,
        FeedbackKind::Helpful => texts.helpful,
        FeedbackKind::Unhelpful => texts.unhelpful,
        FeedbackKind::VeryUnhelpful => texts.very_unhelpful,
    }
}

/// Builds the standard cards of one card (one `cardBizId`).
#[derive(Debug, Clone)]
pub struct StandardCards {
    card_biz_id: String,
    texts: &'static Texts,
    logo: Option<String>,
}

impl StandardCards {
    pub fn new(card_biz_id: impl Into<String>, lang: Lang) -> StandardCards {
        StandardCards {
            card_biz_id: card_biz_id.into(),
            texts: Texts::for_lang(lang),
            logo: None,
        }
    }

    /// A logo (media id or URL) for the header.
    pub fn with_logo(mut self, logo: impl Into<String>) -> StandardCards {
        self.logo = Some(logo.into());
        self
    }

    pub fn card_biz_id(&self) -> &str {
        &self.card_biz_id
    }

    fn id(&self, role: &str) -> String {
        format!("{}_{role}", self.card_biz_id)
    }

    fn card(&self, question: &str, contents: Vec<Value>) -> Value {
        let mut header = json!({"title": {"type": "text", "text": title_of(question)}});
        if let Some(logo) = &self.logo {
            header["logo"] = json!(logo);
        }
        json!({
            "config": {"autoLayout": true, "enableForward": true},
            "header": header,
            "contents": contents,
        })
    }

    fn markdown(&self, role: &str, text: &str) -> Value {
        json!({"type": "markdown", "text": text, "id": self.id(role)})
    }

    fn divider(&self, role: &str) -> Value {
        json!({"type": "divider", "id": self.id(role)})
    }

    /// Sent at once: the question as header, a "thinking" body. The @-mention goes in the
    /// send request's options ([`standard_send_body`]).
    pub fn thinking(&self, question: &str) -> Value {
        self.card(question, vec![self.markdown("body", self.texts.thinking)])
    }

    /// The answer so far.
    pub fn streaming(&self, question: &str, text_so_far: &str) -> Value {
        let body = if text_so_far.trim().is_empty() {
            self.texts.thinking
        } else {
            text_so_far
        };
        self.card(question, vec![self.markdown("body", body)])
    }

    /// The answer, a divider and an invitation to ask on; no buttons. A standard card's
    /// clicks go to an HTTP callback URL, which this robot does not serve, so buttons here
    /// would do nothing (use card mode `ai` or `template` for feedback buttons).
    pub fn final_answer(&self, question: &str, answer: &str) -> Value {
        self.card(
            question,
            vec![
                self.markdown("body", answer),
                self.divider("divider"),
                self.markdown(ROLE_END, self.texts.invitation),
            ],
        )
    }

    /// A finished, not spinning, card for an answer that failed: what was written so far (if
    /// anything) and a human message.
    pub fn failed(&self, question: &str, partial_answer: &str, message: &str) -> Value {
        let mut contents = Vec::new();
        if !partial_answer.trim().is_empty() {
            contents.push(self.markdown("body", partial_answer));
            contents.push(self.divider("divider"));
        }
        contents.push(self.markdown(ROLE_NOTICE, message));
        self.card(question, contents)
    }

    /// After feedback (a click that reached this robot from a card of another mode):
    /// thanks, and no buttons, as on every standard card (see [`StandardCards::final_answer`]).
    /// With `answer`, the answer stays on the card (to update the answer card in place);
    /// without, the card holds only the thanks (a separate reply).
    pub fn thanks(&self, question: &str, answer: Option<&str>) -> Value {
        let mut contents = Vec::new();
        if let Some(answer) = answer {
            contents.push(self.markdown("body", answer));
            contents.push(self.divider("divider"));
        }
        // The closing line, as on a final answer: the card reads as done, not failed.
        contents.push(self.markdown(ROLE_END, self.texts.thanks));
        self.card(question, contents)
    }
}

/// The body of `POST /v1.0/im/v1.0/robot/interactiveCards/send`. `None` when the target can
/// only be reached through the session webhook.
pub fn standard_send_body(
    robot_code: &str,
    card_biz_id: &str,
    card: &Value,
    target: &ReplyTarget,
    at: Option<&Mention>,
) -> Option<Value> {
    let body = StandardCardSend::new(robot_code, card_biz_id, card, target.card_target()?, at);
    Some(api::to_value(&body))
}

/// The body of `PUT /v1.0/im/robots/interactiveCards` (the whole card again).
pub fn standard_update_body(card_biz_id: &str, card: &Value) -> Value {
    api::to_value(&StandardCardUpdate::new(card_biz_id, card))
}

/// The public AI card's parameter maps (bodies as in [`template`]).
pub mod ai {
    use jitnode_dingtalk_wire::api::ai_card::{self, Button, SysObject};
    use jitnode_dingtalk_wire::{FlowStatus, ParamMap};

    use super::{feedback_label, title_of};
    use crate::callback::{Action, FeedbackKind};
    use crate::config::Lang;
    use crate::texts::Texts;

    fn button(text: &str, primary: bool, action: &Action) -> Button {
        Button {
            text: text.into(),
            color: if primary { "blue" } else { "gray" }.into(),
            id: action.to_action_id(),
            request: true,
        }
    }

    /// The four feedback buttons of `record`.
    pub fn feedback_buttons(record: &str, lang: Lang) -> Vec<Button> {
        let texts = Texts::for_lang(lang);
        FeedbackKind::ALL
            .into_iter()
            .map(|kind| {
                let action = Action::Feedback {
                    kind,
                    record: record.into(),
                };
                let primary = matches!(kind, FeedbackKind::VeryHelpful | FeedbackKind::Helpful);
                button(feedback_label(texts, kind), primary, &action)
            })
            .collect()
    }

    /// "Regenerate" and "continue asking" for `record`.
    pub fn next_buttons(record: &str, lang: Lang) -> Vec<Button> {
        let texts = Texts::for_lang(lang);
        let regenerate = Action::Regenerate {
            record: record.into(),
        };
        let continue_chat = Action::ContinueChat {
            record: record.into(),
        };
        vec![
            button(texts.regenerate, true, &regenerate),
            button(texts.continue_chat, false, &continue_chat),
        ]
    }

    fn params(question: &str, status: FlowStatus, content: &str, buttons: Vec<Button>) -> ParamMap {
        let sys = SysObject {
            msg_title: title_of(question),
            msg_buttons: buttons,
        };
        let mut m = ParamMap::new();
        m.insert(ai_card::KEY_FLOW_STATUS.into(), status.as_str().into());
        m.insert(ai_card::KEY_CONTENT.into(), content.into());
        m.insert(ai_card::KEY_SYS.into(), sys.to_param());
        m
    }

    /// The answer text with a notice under it.
    pub fn with_notice(answer: &str, notice: &str) -> String {
        if answer.trim().is_empty() {
            notice.to_string()
        } else {
            format!("{answer}\n\n---\n{notice}")
        }
    }

    /// Delivered at once: processing, no text yet.
    pub fn thinking(question: &str) -> ParamMap {
        params(question, FlowStatus::Processing, "", Vec::new())
    }

    /// The finished answer with the feedback buttons.
    pub fn final_answer(question: &str, answer: &str, record: &str, lang: Lang) -> ParamMap {
        params(
            question,
            FlowStatus::Finished,
            answer,
            feedback_buttons(record, lang),
        )
    }

    /// A failed answer: the partial text and a human message, no buttons.
    pub fn failed(question: &str, partial_answer: &str, message: &str) -> ParamMap {
        params(
            question,
            FlowStatus::Failed,
            &with_notice(partial_answer, message),
            Vec::new(),
        )
    }

    /// After feedback: the answer, the thanks, and the next-step buttons.
    pub fn thanks(question: &str, answer: &str, record: &str, lang: Lang) -> ParamMap {
        let texts = Texts::for_lang(lang);
        params(
            question,
            FlowStatus::Finished,
            &with_notice(answer, texts.thanks),
            next_buttons(record, lang),
        )
    }

    /// "Continue asking" without a session webhook: the invitation on the card itself.
    pub fn invitation(question: &str, answer: &str, lang: Lang) -> ParamMap {
        let texts = Texts::for_lang(lang);
        params(
            question,
            FlowStatus::Finished,
            &with_notice(answer, texts.invitation),
            Vec::new(),
        )
    }
}

/// Whether `template_id` is the public AI card (then [`ai`] builds its variables).
pub fn is_ai_card(template_id: &str) -> bool {
    template_id == ai_card::TEMPLATE_ID
}

/// Template (advanced / AI) cards: parameter maps and request bodies.
pub mod template {
    use jitnode_dingtalk_wire::api::{
        self, CallbackResponse, CardInstanceUpdate, CardStreaming, CreateAndDeliver, Mention,
    };
    use jitnode_dingtalk_wire::{FlowStatus, ParamMap};
    use serde_json::Value;

    use super::title_of;
    use crate::callback::{Action, FeedbackKind};
    use crate::config::Lang;
    use crate::message::ReplyTarget;
    use crate::texts::Texts;

    /// The `stage` variable: which step of the answer the card shows.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stage {
        Thinking,
        Answered,
        Failed,
        Thanked,
    }

    impl Stage {
        pub const ALL: [Stage; 4] = [
            Stage::Thinking,
            Stage::Answered,
            Stage::Failed,
            Stage::Thanked,
        ];

        pub fn as_str(self) -> &'static str {
            match self {
                Stage::Thinking => "thinking",
                Stage::Answered => "answered",
                Stage::Failed => "failed",
                Stage::Thanked => "thanked",
            }
        }

        pub fn parse(s: &str) -> Option<Stage> {
            Stage::ALL.into_iter().find(|x| x.as_str() == s)
        }
    }

    /// What every state sets: the question, the state, the answer so far and the notice.
    fn base(
        question: &str,
        (status, stage): (FlowStatus, Stage),
        streaming_key: &str,
        answer: &str,
        notice: &str,
    ) -> ParamMap {
        let mut m = ParamMap::new();
        m.insert("question".into(), title_of(question));
        m.insert("flowStatus".into(), status.as_str().into());
        m.insert("stage".into(), stage.as_str().into());
        m.insert(streaming_key.into(), answer.into());
        m.insert("notice".into(), notice.into());
        m
    }

    fn button_values(m: &mut ParamMap, record: &str) {
        m.insert("record".into(), record.into());
        let names = [
            "valueVeryHelpful",
            "valueHelpful",
            "valueUnhelpful",
            "valueVeryUnhelpful",
        ];
        for (kind, name) in FeedbackKind::ALL.into_iter().zip(names) {
            let a = Action::Feedback {
                kind,
                record: record.into(),
            };
            m.insert(name.into(), a.to_value_string());
        }
        let regen = Action::Regenerate {
            record: record.into(),
        };
        m.insert("valueRegenerate".into(), regen.to_value_string());
        let cont = Action::ContinueChat {
            record: record.into(),
        };
        m.insert("valueContinue".into(), cont.to_value_string());
    }

    /// Delivered at once: processing, empty answer, the thinking notice.
    pub fn thinking(question: &str, streaming_key: &str, lang: Lang) -> ParamMap {
        let notice = Texts::for_lang(lang).thinking;
        base(
            question,
            (FlowStatus::Processing, Stage::Thinking),
            streaming_key,
            "",
            notice,
        )
    }

    /// The finished answer with its record id and button values.
    pub fn final_answer(
        question: &str,
        answer: &str,
        record: &str,
        streaming_key: &str,
    ) -> ParamMap {
        let state = (FlowStatus::Finished, Stage::Answered);
        let mut m = base(question, state, streaming_key, answer, "");
        button_values(&mut m, record);
        m
    }

    /// A failed answer: not spinning, the partial text and a human message.
    pub fn failed(
        question: &str,
        partial_answer: &str,
        message: &str,
        streaming_key: &str,
    ) -> ParamMap {
        let state = (FlowStatus::Failed, Stage::Failed);
        base(question, state, streaming_key, partial_answer, message)
    }

    /// After feedback (merged into the card by key): thanks and the next-step buttons.
    pub fn thanks(kind: FeedbackKind, record: &str, lang: Lang) -> ParamMap {
        let mut m = ParamMap::new();
        m.insert("stage".into(), Stage::Thanked.as_str().into());
        m.insert("feedback".into(), kind.as_str().into());
        m.insert("notice".into(), Texts::for_lang(lang).thanks.into());
        button_values(&mut m, record);
        m
    }

    /// The body of `POST /v1.0/card/instances/createAndDeliver`. `None` when the target can
    /// only be reached through the session webhook.
    pub fn create_and_deliver_body(
        template_id: &str,
        out_track_id: &str,
        robot_code: &str,
        target: &ReplyTarget,
        at: Option<&Mention>,
        params: &ParamMap,
    ) -> Option<Value> {
        let body = CreateAndDeliver::new(
            template_id,
            out_track_id,
            robot_code,
            target.card_target()?,
            at,
            params.clone(),
        );
        Some(api::to_value(&body))
    }

    /// The body of `PUT /v1.0/card/instances` (update variables by key).
    pub fn update_body(out_track_id: &str, params: &ParamMap) -> Value {
        api::to_value(&CardInstanceUpdate::by_key(out_track_id, params.clone()))
    }

    /// The body of `PUT /v1.0/card/streaming`. `guid` must be new for every call.
    pub fn streaming_body(
        out_track_id: &str,
        guid: &str,
        key: &str,
        full_text: &str,
        finalize: bool,
        error: bool,
    ) -> Value {
        api::to_value(&CardStreaming {
            out_track_id: out_track_id.into(),
            guid: guid.into(),
            key: key.into(),
            content: full_text.into(),
            is_full: true,
            is_finalize: finalize,
            is_error: error,
        })
    }

    /// The `response` of a card callback ACK that updates the card.
    pub fn callback_response(params: &ParamMap) -> Value {
        api::to_value(&CallbackResponse::update_by_key(params.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::template;
    use super::*;
    use crate::callback::Action;
    use jitnode_dingtalk_wire::{FlowStatus, ParamMap};

    fn collect_ids(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(id)) = m.get("id") {
                    out.push(id.clone());
                }
                m.values().for_each(|x| collect_ids(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
            _ => {}
        }
    }

    fn buttons(card: &Value) -> Vec<(String, Action)> {
        let mut out = Vec::new();
        for c in card["contents"].as_array().unwrap() {
            if c["type"] == "action" {
                for b in c["actions"].as_array().unwrap() {
                    assert_eq!(b["type"], "button");
                    assert_eq!(b["actionType"], "request");
                    let label = b["label"]["text"].as_str().unwrap().to_string();
                    let action = Action::from_value_str(b["value"].as_str().unwrap()).unwrap();
                    out.push((label, action));
                }
            }
        }
        out
    }

    fn body_text(card: &Value) -> String {
        card["contents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "markdown")
            .map(|c| c["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn thinking_card_has_question_header_and_thinking_body() {
        let b = StandardCards::new("card1", Lang::En);
        let card = b.thinking("How do I reset my password?");
        assert_eq!(
            card["header"]["title"]["text"],
            "How do I reset my password?"
        );
        assert_eq!(card["config"]["autoLayout"], true);
        assert_eq!(body_text(&card), Texts::for_lang(Lang::En).thinking);
        assert!(buttons(&card).is_empty());
    }

    #[test]
    fn streaming_card_shows_text_so_far() {
        let b = StandardCards::new("card1", Lang::Zh);
        assert_eq!(body_text(&b.streaming("q", "Step 1: open")), "Step 1: open");
        // Nothing yet: still the thinking text, never an empty body.
        assert_eq!(
            body_text(&b.streaming("q", "  ")),
            Texts::for_lang(Lang::Zh).thinking
        );
    }

    #[test]
    fn final_standard_card_has_the_answer_and_no_dead_buttons() {
        let b = StandardCards::new("card1", Lang::En);
        let card = b.final_answer("q", "The **answer**");
        let contents = card["contents"].as_array().unwrap();
        assert_eq!(contents[0]["text"], "The **answer**");
        assert_eq!(contents[1]["type"], "divider");
        assert_eq!(contents[2]["text"], Texts::for_lang(Lang::En).invitation);
        assert_eq!(contents[2]["id"], "card1_end");
        assert!(buttons(&card).is_empty());
        assert!(!card.to_string().contains("\"button\""));
    }

    #[test]
    fn button_ids_never_carry_the_answer() {
        // A button id names the action and the record only: the answer stays in the store.
        let mut ids: Vec<String> = ai::feedback_buttons("r1", Lang::Zh)
            .into_iter()
            .chain(ai::next_buttons("r1", Lang::Zh))
            .map(|b| b.id)
            .collect();
        assert_eq!(ids.len(), 6);
        ids.dedup();
        assert_eq!(ids.len(), 6, "{ids:?}");
        for id in &ids {
            assert!(id.contains("r1"), "{id}");
            assert!(id.len() < 100, "{id}");
        }
    }

    #[test]
    fn element_ids_are_unique_within_and_across_cards() {
        let a = StandardCards::new("cardA", Lang::Zh);
        let b = StandardCards::new("cardB", Lang::Zh);
        let cards = [
            a.final_answer("q", "x"),
            a.thanks("q", Some("x")),
            a.failed("q", "part", "oops"),
        ];
        for card in &cards {
            let mut ids = Vec::new();
            collect_ids(card, &mut ids);
            let set: HashSet<_> = ids.iter().collect();
            assert_eq!(set.len(), ids.len(), "{ids:?}");
            assert!(ids.len() >= 2);
        }
        let mut ids_a = Vec::new();
        collect_ids(&a.final_answer("q", "x"), &mut ids_a);
        let mut ids_b = Vec::new();
        collect_ids(&b.final_answer("q", "x"), &mut ids_b);
        assert!(ids_a.iter().all(|id| !ids_b.contains(id)));
        assert_ne!(new_card_id(), new_card_id());
        assert_eq!(new_card_id().len(), 32);
    }

    #[test]
    fn failed_card_is_not_spinning_and_keeps_partial_text() {
        let b = StandardCards::new("c", Lang::En);
        let card = b.failed("q", "Half an ans", "Sorry, it broke.");
        let text = body_text(&card);
        assert!(text.contains("Half an ans"));
        assert!(text.contains("Sorry, it broke."));
        assert!(!text.contains(Texts::for_lang(Lang::En).thinking));
        assert!(buttons(&card).is_empty());
        let card = b.failed("q", "", "Sorry, it broke.");
        assert_eq!(body_text(&card), "Sorry, it broke.");
    }

    #[test]
    fn standard_thanks_card_has_no_buttons() {
        // Its clicks would need an HTTP callback this robot does not serve.
        let b = StandardCards::new("c", Lang::En);
        let card = b.thanks("q", None);
        assert!(body_text(&card).contains("Thank you"));
        assert!(buttons(&card).is_empty());
        assert!(!card.to_string().contains("\"button\""));
        let with_answer = b.thanks("q", Some("the answer"));
        assert!(body_text(&with_answer).starts_with("the answer"));
        assert!(buttons(&with_answer).is_empty());
    }

    #[test]
    fn long_questions_are_cut_for_the_title() {
        let q = "长".repeat(100);
        let t = title_of(&q);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
        assert!(t.ends_with('…'));
        assert_eq!(title_of("a\n  b\tc"), "a b c");
        let card = StandardCards::new("c", Lang::Zh)
            .with_logo("@lALPlogo")
            .thinking(&q);
        assert_eq!(card["header"]["title"]["text"], t.as_str());
        assert_eq!(card["header"]["logo"], "@lALPlogo");
    }

    #[test]
    fn standard_send_body_for_group_mentions_the_sender() {
        let card = StandardCards::new("biz1", Lang::Zh).thinking("q");
        let target = ReplyTarget::Group {
            open_conversation_id: "cid9".into(),
        };
        let at = Mention {
            nick_name: "Li \"Lei\"".into(),
            user_id: "0326".into(),
        };
        let body = standard_send_body("robot1", "biz1", &card, &target, Some(&at)).unwrap();
        assert_eq!(body["cardTemplateId"], "StandardCard");
        assert_eq!(body["robotCode"], "robot1");
        assert_eq!(body["cardBizId"], "biz1");
        assert_eq!(body["openConversationId"], "cid9");
        let decoded: Value = serde_json::from_str(body["cardData"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, card);
        let at_list: Value =
            serde_json::from_str(body["sendOptions"]["atUserListJson"].as_str().unwrap()).unwrap();
        assert_eq!(
            at_list,
            json!([{"nickName": "Li \"Lei\"", "userId": "0326"}])
        );
    }

    #[test]
    fn standard_send_body_for_one_to_one_and_session_only() {
        let card = StandardCards::new("biz1", Lang::Zh).thinking("q");
        let target = ReplyTarget::User {
            staff_id: "0999".into(),
        };
        let body = standard_send_body("robot1", "biz1", &card, &target, None).unwrap();
        assert_eq!(body["singleChatReceiver"], r#"{"userId":"0999"}"#);
        assert!(body.get("openConversationId").is_none());
        assert!(body.get("sendOptions").is_none());
        assert_eq!(
            standard_send_body("r", "b", &card, &ReplyTarget::SessionOnly, None),
            None
        );
        let upd = standard_update_body("biz1", &card);
        assert_eq!(upd["cardBizId"], "biz1");
        assert_eq!(upd["cardData"], card.to_string());
    }

    fn all_strings(m: &ParamMap) -> bool {
        // BTreeMap<String, String> is strings by type; check it serializes as such.
        serde_json::to_value(m)
            .unwrap()
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string)
    }

    #[test]
    fn template_params_carry_flow_status_and_buttons() {
        let thinking = template::thinking("q?", "content", Lang::En);
        assert_eq!(thinking["flowStatus"], "1");
        assert_eq!(thinking["content"], "");
        assert_eq!(thinking["question"], "q?");
        assert_eq!(thinking["stage"], "thinking");

        let done = template::final_answer("q?", "answer", "rec1", "answer_md");
        assert_eq!(done["flowStatus"], "3");
        assert_eq!(done["answer_md"], "answer");
        assert_eq!(done["record"], "rec1");
        assert_eq!(
            Action::from_value_str(&done["valueUnhelpful"]).unwrap(),
            Action::Feedback {
                kind: FeedbackKind::Unhelpful,
                record: "rec1".into()
            }
        );
        assert_eq!(
            Action::from_value_str(&done["valueRegenerate"]).unwrap(),
            Action::Regenerate {
                record: "rec1".into()
            }
        );

        let failed = template::failed("q?", "part", "broke", "content");
        assert_eq!(failed["flowStatus"], "5");
        assert_eq!(failed["notice"], "broke");
        assert_eq!(failed["content"], "part");

        let thanks = template::thanks(FeedbackKind::VeryHelpful, "rec1", Lang::En);
        assert_eq!(thanks["feedback"], "very_helpful");
        assert_eq!(thanks["stage"], "thanked");
        assert!(thanks["notice"].contains("Thank"));
        assert_eq!(
            Action::from_value_str(&thanks["valueContinue"]).unwrap(),
            Action::ContinueChat {
                record: "rec1".into()
            }
        );
        for m in [&thinking, &done, &failed, &thanks] {
            assert!(all_strings(m));
        }
        let statuses: Vec<&str> = [
            FlowStatus::Processing,
            FlowStatus::Inputting,
            FlowStatus::Finished,
            FlowStatus::Executing,
            FlowStatus::Failed,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(statuses, ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn ai_card_params_use_only_its_variables_and_encode_buttons() {
        let thinking = ai::thinking("How?");
        let done = ai::final_answer("How?", "Like so.", "rec1", Lang::En);
        let thanks = ai::thanks("How?", "Like so.", "rec1", Lang::En);
        let failed = ai::failed("How?", "Li", "Sorry.");
        for m in [&thinking, &done, &thanks, &failed] {
            assert!(
                m.keys().all(|k| ai_card::VARIABLES.contains(&k.as_str())),
                "{m:?}"
            );
            assert_eq!(m.len(), 3);
        }
        assert_eq!(thinking["flowStatus"], "1");
        assert_eq!(done["flowStatus"], "3");
        assert_eq!(failed["flowStatus"], "5");
        assert_eq!(done["msgContent"], "Like so.");
        assert_eq!(failed["msgContent"], "Li\n\n---\nSorry.");
        let sys = ai_card::SysObject::from_param(&done["sys_full_json_obj"]).unwrap();
        assert_eq!(sys.msg_title, "How?");
        let actions: Vec<Action> = sys
            .msg_buttons
            .iter()
            .map(|b| {
                assert!(b.request);
                Action::from_action_id(&b.id).unwrap()
            })
            .collect();
        let kinds: Vec<FeedbackKind> = actions
            .iter()
            .map(|a| match a {
                Action::Feedback { kind, record } if record == "rec1" => *kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, FeedbackKind::ALL);
        assert_eq!(sys.msg_buttons[0].text, "Very helpful");
        let sys = ai_card::SysObject::from_param(&thanks["sys_full_json_obj"]).unwrap();
        assert_eq!(
            Action::from_action_id(&sys.msg_buttons[0].id).unwrap(),
            Action::Regenerate {
                record: "rec1".into()
            }
        );
        assert!(thanks["msgContent"].starts_with("Like so."));
        assert!(
            ai_card::SysObject::from_param(&thinking["sys_full_json_obj"])
                .unwrap()
                .msg_buttons
                .is_empty()
        );
        assert!(is_ai_card(ai_card::TEMPLATE_ID) && !is_ai_card("x.schema"));
    }

    #[test]
    fn template_bodies() {
        let params = template::thinking("q", "content", Lang::Zh);
        let at = Mention {
            nick_name: "Li".into(),
            user_id: "0326".into(),
        };
        let group = ReplyTarget::Group {
            open_conversation_id: "cid1".into(),
        };
        let b = template::create_and_deliver_body(
            "tpl.schema",
            "t1",
            "robot",
            &group,
            Some(&at),
            &params,
        )
        .unwrap();
        assert_eq!(b["cardTemplateId"], "tpl.schema");
        assert_eq!(b["outTrackId"], "t1");
        assert_eq!(b["callbackType"], "STREAM");
        assert_eq!(b["openSpaceId"], "dtv1.card//IM_GROUP.cid1");
        assert_eq!(b["imGroupOpenDeliverModel"]["robotCode"], "robot");
        assert_eq!(b["imGroupOpenDeliverModel"]["atUserIds"]["0326"], "Li");
        assert_eq!(b["cardData"]["cardParamMap"]["flowStatus"], "1");
        assert!(b.get("imRobotOpenDeliverModel").is_none());

        let user = ReplyTarget::User {
            staff_id: "0326".into(),
        };
        let b =
            template::create_and_deliver_body("tpl", "t2", "robot", &user, None, &params).unwrap();
        assert_eq!(b["openSpaceId"], "dtv1.card//IM_ROBOT.0326");
        assert_eq!(b["imRobotOpenDeliverModel"]["spaceType"], "IM_ROBOT");
        assert!(b.get("imGroupOpenDeliverModel").is_none());
        assert_eq!(
            template::create_and_deliver_body(
                "tpl",
                "t3",
                "r",
                &ReplyTarget::SessionOnly,
                None,
                &params
            ),
            None
        );

        let u = template::update_body("t1", &params);
        assert_eq!(u["cardUpdateOptions"]["updateCardDataByKey"], true);
        assert_eq!(u["cardData"]["cardParamMap"]["stage"], "thinking");

        let s = template::streaming_body("t1", "g1", "content", "so far", false, false);
        assert_eq!(
            s,
            json!({"outTrackId": "t1", "guid": "g1", "key": "content", "content": "so far",
                   "isFull": true, "isFinalize": false, "isError": false})
        );
        let r = template::callback_response(&params);
        assert_eq!(r["cardData"]["cardParamMap"]["flowStatus"], "1");
    }
}
