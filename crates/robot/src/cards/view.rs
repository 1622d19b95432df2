//! The inverse of the card builders: what a card built by this crate shows — its text, its
//! buttons (as [`Action`]s) and whether it is still working, done or failed. One reader for
//! every place that looks at a card from outside: `jitnode ask`, the tests, a console.
//!
//! It reads the shapes the builders write: standard cards by their element roles
//! (`<cardBizId>_body`, `_notice`, buttons' values), template cards by their variables
//! (`flowStatus`, `stage`, `record`, `notice` and the streamed answer).

use std::collections::BTreeMap;

use jitnode_dingtalk_wire::api::ai_card;
use jitnode_dingtalk_wire::{FlowStatus, ParamMap};
use serde_json::Value;

use super::template::Stage;
use super::{ROLE_END, ROLE_NOTICE};
use crate::callback::{Action, FeedbackKind};

/// Where an answer's card is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Thinking or streaming.
    Working,
    /// The answer (or the thanks) with its buttons.
    Done,
    /// Ended with a message instead of an answer.
    Failed,
}

/// What a card shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardView {
    /// The visible text: the body and the notice, separated by a `---` line.
    pub text: String,
    /// The buttons, in order.
    pub buttons: Vec<Action>,
    pub progress: Progress,
}

const SEPARATOR: &str = "\n---\n";

impl CardView {
    /// A standard card's JSON (the whole card, as sent or updated).
    pub fn standard(card: &Value) -> CardView {
        let contents = card["contents"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let texts: Vec<&str> = contents
            .iter()
            .filter(|c| c["type"] == "markdown")
            .filter_map(|c| c["text"].as_str())
            .collect();
        let buttons: Vec<Action> = contents
            .iter()
            .flat_map(|c| c["actions"].as_array().map(Vec::as_slice).unwrap_or(&[]))
            .filter_map(|b| b["value"].as_str())
            .filter_map(|v| Action::from_value_str(v).ok())
            .collect();
        let notice_suffix = format!("_{ROLE_NOTICE}");
        let has_notice = contents.iter().any(|c| {
            c["id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&notice_suffix))
        });
        let end_suffix = format!("_{ROLE_END}");
        let has_end = contents
            .iter()
            .any(|c| c["id"].as_str().is_some_and(|id| id.ends_with(&end_suffix)));
        let progress = match (buttons.is_empty(), has_notice) {
            _ if has_end => Progress::Done,
            (false, _) => Progress::Done,
            (true, true) => Progress::Failed,
            (true, false) => Progress::Working,
        };
        CardView {
            text: texts.join(SEPARATOR),
            buttons,
            progress,
        }
    }

    /// A template card: its variables, the streamed variables, and the name of the one
    /// the answer streams into (`card.streamingKey`, `content` by default).
    pub fn template(
        params: &ParamMap,
        streams: &BTreeMap<String, String>,
        streaming_key: &str,
    ) -> CardView {
        let answer = streams
            .get(streaming_key)
            .filter(|s| !s.is_empty())
            .or_else(|| params.get(streaming_key));
        let mut parts: Vec<&str> = answer.map(String::as_str).into_iter().collect();
        if let Some(notice) = params.get("notice") {
            parts.push(notice);
        }
        parts.retain(|p| !p.is_empty());
        let stage = params.get("stage").and_then(|s| Stage::parse(s));
        let buttons = match (params.get("record"), stage) {
            (Some(record), Some(Stage::Answered)) => FeedbackKind::ALL
                .into_iter()
                .map(|kind| Action::Feedback {
                    kind,
                    record: record.clone(),
                })
                .collect(),
            (Some(record), Some(Stage::Thanked)) => vec![
                Action::Regenerate {
                    record: record.clone(),
                },
                Action::ContinueChat {
                    record: record.clone(),
                },
            ],
            _ => Vec::new(),
        };
        let flow = params.get("flowStatus").and_then(|f| FlowStatus::parse(f));
        let progress = match flow {
            Some(FlowStatus::Failed) => Progress::Failed,
            Some(FlowStatus::Finished) => Progress::Done,
            _ if stage == Some(Stage::Failed) => Progress::Failed,
            _ if !buttons.is_empty() => Progress::Done,
            _ => Progress::Working,
        };
        CardView {
            text: parts.join(SEPARATOR),
            buttons,
            progress,
        }
    }

    /// A public AI card: its three variables (the answer may still be in the streams).
    pub fn ai(params: &ParamMap, streams: &BTreeMap<String, String>) -> CardView {
        let flow = params
            .get(ai_card::KEY_FLOW_STATUS)
            .and_then(|f| FlowStatus::parse(f));
        // A finished card's text is set with its state (and may add a notice to what was
        // streamed); while working, the stream is ahead.
        let set = params.get(ai_card::KEY_CONTENT).filter(|s| !s.is_empty());
        let streamed = streams.get(ai_card::KEY_CONTENT).filter(|s| !s.is_empty());
        let text = match flow {
            Some(f) if f.is_terminal() => set.or(streamed),
            _ => streamed.or(set),
        }
        .cloned()
        .unwrap_or_default();
        let buttons: Vec<Action> = params
            .get(ai_card::KEY_SYS)
            .and_then(|s| ai_card::SysObject::from_param(s))
            .map(|sys| sys.msg_buttons)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.request)
            .filter_map(|b| Action::from_action_id(&b.id).ok())
            .collect();
        let progress = match flow {
            Some(FlowStatus::Failed) => Progress::Failed,
            Some(FlowStatus::Finished) => Progress::Done,
            _ => Progress::Working,
        };
        CardView {
            text: text.replace("\n\n---\n", SEPARATOR),
            buttons,
            progress,
        }
    }

    /// Finished or failed: the card no longer changes by itself.
    pub fn is_done(&self) -> bool {
        self.progress != Progress::Working
    }

    /// The answer's record id, when the card has buttons.
    pub fn record(&self) -> Option<&str> {
        self.buttons.first().map(Action::record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::{template, StandardCards};
    use crate::config::Lang;

    #[test]
    fn standard_cards_read_back_as_built() {
        let cards = StandardCards::new("c1", Lang::En);
        let thinking = CardView::standard(&cards.thinking("Why?"));
        assert_eq!(thinking.progress, Progress::Working);
        assert!(thinking.buttons.is_empty());
        assert!(!thinking.text.is_empty());

        let streaming = CardView::standard(&cards.streaming("Why?", "Bec"));
        assert_eq!(
            (streaming.text.as_str(), streaming.progress),
            ("Bec", Progress::Working)
        );

        let done = CardView::standard(&cards.final_answer("Why?", "Because."));
        assert!(done.text.starts_with("Because.\n---\n"));
        assert_eq!(done.progress, Progress::Done);
        assert!(done.buttons.is_empty());
        assert_eq!(done.record(), None);

        let failed = CardView::standard(&cards.failed("Why?", "Bec", "Sorry."));
        assert_eq!(failed.progress, Progress::Failed);
        assert_eq!(failed.text, "Bec\n---\nSorry.");
        assert!(failed.buttons.is_empty() && failed.is_done());

        let thanks = CardView::standard(&cards.thanks("Why?", Some("Because.")));
        assert_eq!(thanks.progress, Progress::Done);
        assert!(thanks.buttons.is_empty());
        assert!(thanks.text.starts_with("Because.\n---\n"));
    }

    #[test]
    fn ai_cards_read_back_as_built() {
        use crate::cards::ai;
        let none = BTreeMap::new();
        let thinking = CardView::ai(&ai::thinking("Why?"), &none);
        assert_eq!(thinking.progress, Progress::Working);
        let mut streams = BTreeMap::new();
        streams.insert("msgContent".to_string(), "Bec".to_string());
        assert_eq!(CardView::ai(&ai::thinking("Why?"), &streams).text, "Bec");
        let done = CardView::ai(&ai::final_answer("Why?", "Because.", "r9", Lang::En), &none);
        assert_eq!(
            (done.text.as_str(), done.progress),
            ("Because.", Progress::Done)
        );
        assert_eq!(done.buttons.len(), 4);
        assert_eq!(done.record(), Some("r9"));
        let failed = CardView::ai(&ai::failed("Why?", "Bec", "Sorry."), &none);
        assert_eq!(failed.progress, Progress::Failed);
        assert_eq!(failed.text, "Bec\n---\nSorry.");
        let thanks = CardView::ai(&ai::thanks("Why?", "Because.", "r9", Lang::En), &none);
        assert!(matches!(thanks.buttons[0], Action::Regenerate { .. }));
        assert!(thanks.text.starts_with("Because.\n---\n"));
    }

    #[test]
    fn template_cards_read_back_as_built() {
        let none = BTreeMap::new();
        let thinking = CardView::template(
            &template::thinking("Why?", "content", Lang::En),
            &none,
            "content",
        );
        assert_eq!(thinking.progress, Progress::Working);
        assert!(thinking.buttons.is_empty());

        let mut streams = BTreeMap::new();
        streams.insert("answer".to_string(), "Bec".to_string());
        let mut params = template::thinking("Why?", "answer", Lang::En);
        params.insert("flowStatus".into(), FlowStatus::Inputting.as_str().into());
        params.insert("notice".into(), String::new());
        let streaming = CardView::template(&params, &streams, "answer");
        assert_eq!(
            (streaming.text.as_str(), streaming.progress),
            ("Bec", Progress::Working)
        );

        let done = CardView::template(
            &template::final_answer("Why?", "Because.", "r9", "content"),
            &none,
            "content",
        );
        assert_eq!(done.text, "Because.");
        assert_eq!(done.progress, Progress::Done);
        assert_eq!(done.buttons.len(), 4);
        assert_eq!(done.record(), Some("r9"));

        let failed = CardView::template(
            &template::failed("Why?", "Bec", "Sorry.", "content"),
            &none,
            "content",
        );
        assert_eq!(failed.progress, Progress::Failed);
        assert_eq!(failed.text, "Bec\n---\nSorry.");

        // Thanks are merged by key into the finished card.
        let mut thanked = template::final_answer("Why?", "Because.", "r9", "content");
        thanked.extend(template::thanks(FeedbackKind::Helpful, "r9", Lang::En));
        let thanks = CardView::template(&thanked, &none, "content");
        assert_eq!(thanks.progress, Progress::Done);
        assert_eq!(thanks.buttons.len(), 2);
        assert!(matches!(thanks.buttons[0], Action::Regenerate { .. }));
    }
}
