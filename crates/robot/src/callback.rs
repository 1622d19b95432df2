//! Card button actions: how they are written into a button's value and read back from a card
//! callback (`/v1.0/card/instances/callback`, the decoded `data`).
//!
//! **Button value format** (compact JSON in a string; never the question or the answer, which
//! card values are too small for and which the records database already holds):
//! ```text
//! {"action":"feedback","kind":"helpful","record":"<record id>"}
//! {"action":"regenerate","record":"<record id>"}
//! {"action":"continue_chat","record":"<record id>"}
//! ```
//! `kind` is one of `very_helpful`, `helpful`, `unhelpful`, `very_unhelpful`. The record id is
//! the answer's id in [`crate::records`].
//!
//! **Button id format** (the public AI card's `msgButtons[].id`, sent back as
//! `cardPrivateData.actionIds[0]`): `feedback.<kind>.<record>`, `regenerate.<record>`,
//! `continue_chat.<record>`.
//!
//! Where a callback carries the action, first match wins:
//! 1. `content` (a JSON string, or an object) -> `cardPrivateData.params`: either the fields
//!    above directly (`{"action": .., "kind": .., "record": ..}`, a template button's params),
//!    or a `value` param holding the encoded string;
//! 2. `content` -> `cardPrivateData.actionIds[0]`, a button id (public AI card);
//! 3. the top-level `value`: the encoded string (or the same fields as an object), or the
//!    same `cardPrivateData` shape again (the AI card sends `value` like `content`).
//!
//! Anything else is a [`CallbackError`] whose message is fit for a 400 ACK.

use std::fmt;

use jitnode_dingtalk_wire::CardCallback;
use serde_json::{json, Map, Value};

/// Longest accepted record id; ours are 32 characters, message ids are shorter than this.
const MAX_RECORD_LEN: usize = 128;

/// How useful the user found an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    VeryHelpful,
    Helpful,
    Unhelpful,
    VeryUnhelpful,
}

impl FeedbackKind {
    /// In button order.
    pub const ALL: [FeedbackKind; 4] = [
        FeedbackKind::VeryHelpful,
        FeedbackKind::Helpful,
        FeedbackKind::Unhelpful,
        FeedbackKind::VeryUnhelpful,
    ];

    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::VeryHelpful => "very_helpful",
            FeedbackKind::Helpful => "helpful",
            FeedbackKind::Unhelpful => "unhelpful",
            FeedbackKind::VeryUnhelpful => "very_unhelpful",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackKind> {
        FeedbackKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A score for summaries: 2, 1, -1, -2.
    pub fn score(self) -> i32 {
        match self {
            FeedbackKind::VeryHelpful => 2,
            FeedbackKind::Helpful => 1,
            FeedbackKind::Unhelpful => -1,
            FeedbackKind::VeryUnhelpful => -2,
        }
    }
}

impl fmt::Display for FeedbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Feedback { kind: FeedbackKind, record: String },
    Regenerate { record: String },
    ContinueChat { record: String },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Feedback { .. } => "feedback",
            Action::Regenerate { .. } => "regenerate",
            Action::ContinueChat { .. } => "continue_chat",
        }
    }

    pub fn record(&self) -> &str {
        match self {
            Action::Feedback { record, .. }
            | Action::Regenerate { record }
            | Action::ContinueChat { record } => record,
        }
    }

    /// The fields of the action as a JSON object (template button params use these).
    pub fn to_params(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("action".into(), json!(self.name()));
        if let Action::Feedback { kind, .. } = self {
            m.insert("kind".into(), json!(kind.as_str()));
        }
        m.insert("record".into(), json!(self.record()));
        m
    }

    /// The button value: compact JSON in a string.
    pub fn to_value_string(&self) -> String {
        Value::Object(self.to_params()).to_string()
    }

    /// Reads a button value string.
    pub fn from_value_str(value: &str) -> Result<Action, CallbackError> {
        let v: Value = serde_json::from_str(value)
            .map_err(|_| CallbackError::InvalidJson { field: "value" })?;
        let obj = v
            .as_object()
            .ok_or(CallbackError::InvalidJson { field: "value" })?;
        if !obj.contains_key("action") {
            if let Ok(Some(action)) = action_of_private_data(&v) {
                return Ok(action);
            }
        }
        Action::from_params(obj)
    }

    /// The button id of the public AI card (see the module doc).
    pub fn to_action_id(&self) -> String {
        match self {
            Action::Feedback { kind, record } => format!("feedback.{kind}.{record}"),
            other => format!("{}.{}", other.name(), other.record()),
        }
    }

    /// Reads a button id written by [`Action::to_action_id`].
    pub fn from_action_id(id: &str) -> Result<Action, CallbackError> {
        let (action, rest) = id
            .split_once('.')
            .ok_or_else(|| CallbackError::UnknownAction {
                action: shorten(id),
            })?;
        let mut m = Map::new();
        m.insert("action".into(), json!(action));
        let record = if action == "feedback" {
            let (kind, record) = rest.split_once('.').unwrap_or((rest, ""));
            m.insert("kind".into(), json!(kind));
            record
        } else {
            rest
        };
        m.insert("record".into(), json!(record));
        Action::from_params(&m)
    }

    /// Reads the action fields from an object (`action`, `kind`, `record`).
    pub fn from_params(params: &Map<String, Value>) -> Result<Action, CallbackError> {
        let action = str_field(params, "action")?;
        let record = str_field(params, "record")?;
        if record.len() > MAX_RECORD_LEN
            || !record
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        {
            return Err(CallbackError::InvalidRecord);
        }
        let record = record.to_string();
        match action {
            "feedback" => {
                let kind = str_field(params, "kind")?;
                let kind = FeedbackKind::parse(kind).ok_or_else(|| CallbackError::UnknownKind {
                    kind: shorten(kind),
                })?;
                Ok(Action::Feedback { kind, record })
            }
            "regenerate" => Ok(Action::Regenerate { record }),
            "continue_chat" => Ok(Action::ContinueChat { record }),
            other => Err(CallbackError::UnknownAction {
                action: shorten(other),
            }),
        }
    }
}

fn str_field<'a>(
    params: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, CallbackError> {
    match params.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(CallbackError::MissingField { field })
        }
        Some(_) => Err(CallbackError::NotAString { field }),
    }
}

/// Echoed input is cut short: it comes from the network and lands in ACKs and logs.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Why a card callback could not be acted on. Every variant means "bad request" (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("card callback data is not valid JSON")]
    NotJson,
    #[error("card callback data is not a JSON object")]
    NotAnObject,
    #[error("card callback `{field}` is not valid JSON of the expected shape")]
    InvalidJson { field: &'static str },
    #[error("card callback carries no action (neither content.cardPrivateData.params nor value)")]
    NoAction,
    #[error("card action has no `{field}`")]
    MissingField { field: &'static str },
    #[error("card action field `{field}` is not a string")]
    NotAString { field: &'static str },
    #[error("unknown card action {action:?} (expected feedback, regenerate or continue_chat)")]
    UnknownAction { action: String },
    #[error(
        "unknown feedback kind {kind:?} (expected very_helpful, helpful, unhelpful or very_unhelpful)"
    )]
    UnknownKind { kind: String },
    #[error("card action `record` is not a valid record id")]
    InvalidRecord,
}

impl CallbackError {
    /// The Stream ACK code for this error.
    pub fn ack_code(&self) -> u16 {
        400
    }
}

impl Action {
    /// The action of a card callback as the Stream client read it.
    pub fn from_callback(cb: &CardCallback) -> Result<Action, CallbackError> {
        let value = cb.value.as_deref().map(|v| Value::String(v.to_string()));
        action_of(Some(&cb.content), None, value.as_ref())
    }

    /// The action of a callback's decoded `data`, read leniently: a broken `content` leaves
    /// the top-level `value` to stand in.
    pub fn from_data(data: &Value) -> Result<Action, CallbackError> {
        let obj = data.as_object().ok_or(CallbackError::NotAnObject)?;
        action_from(obj)
    }

    /// The same, from the `data` string.
    pub fn from_data_str(data: &str) -> Result<Action, CallbackError> {
        let v: Value = serde_json::from_str(data).map_err(|_| CallbackError::NotJson)?;
        Action::from_data(&v)
    }
}

fn action_from(obj: &Map<String, Value>) -> Result<Action, CallbackError> {
    // A broken `content` is remembered so it is reported when `value` cannot stand in.
    let mut content_error = None;
    let decoded;
    let content = match obj.get("content") {
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                decoded = v;
                Some(&decoded)
            }
            Err(_) => {
                content_error = Some(CallbackError::InvalidJson { field: "content" });
                None
            }
        },
        None | Some(Value::Null) => None,
        Some(other) => Some(other),
    };
    action_of(content, content_error, obj.get("value"))
}

/// First match wins: `content`'s params, then the top-level `value` (see the module doc).
fn action_of(
    content: Option<&Value>,
    mut content_error: Option<CallbackError>,
    value: Option<&Value>,
) -> Result<Action, CallbackError> {
    match content {
        None => {}
        Some(content) => match params_of_content(content) {
            Ok(Some(params)) => {
                if params.contains_key("action") {
                    return Action::from_params(params);
                }
                if let Some(Value::String(v)) = params.get("value") {
                    return Action::from_value_str(v);
                }
            }
            Ok(None) => {}
            Err(e) => content_error = Some(e),
        },
    }
    if let Some(content) = content {
        match action_of_private_data(content) {
            Ok(Some(action)) => return Ok(action),
            Ok(None) => {}
            Err(e) => content_error = Some(e),
        }
    }
    match value {
        Some(Value::String(v)) if !v.trim().is_empty() => Action::from_value_str(v),
        Some(Value::Object(params)) => Action::from_params(params),
        _ => Err(content_error.unwrap_or(CallbackError::NoAction)),
    }
}

fn is_action_id(id: &str) -> bool {
    ["feedback.", "regenerate.", "continue_chat."]
        .iter()
        .any(|p| id.starts_with(p))
}

/// `cardPrivateData.actionIds[0]` as a button id; `Ok(None)` when there is none.
fn action_of_private_data(content: &Value) -> Result<Option<Action>, CallbackError> {
    let ids = content.pointer("/cardPrivateData/actionIds");
    match ids.and_then(Value::as_array).and_then(|a| a.first()) {
        // A custom template's own button ids (no `<action>.` prefix) are not ours: the
        // action is then looked for in `value`.
        Some(Value::String(id)) if is_action_id(id) => Action::from_action_id(id).map(Some),
        Some(Value::String(_)) => Ok(None),
        Some(_) => Err(CallbackError::InvalidJson {
            field: "content.cardPrivateData.actionIds",
        }),
        None => Ok(None),
    }
}

/// `content` -> `cardPrivateData.params`. `Ok(None)` when the shape is right but there are
/// no params.
fn params_of_content(content: &Value) -> Result<Option<&Map<String, Value>>, CallbackError> {
    let obj = content
        .as_object()
        .ok_or(CallbackError::InvalidJson { field: "content" })?;
    let Some(private) = obj.get("cardPrivateData") else {
        return Ok(None);
    };
    let private = private.as_object().ok_or(CallbackError::InvalidJson {
        field: "content.cardPrivateData",
    })?;
    match private.get("params") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => Ok(Some(p)),
        Some(_) => Err(CallbackError::InvalidJson {
            field: "content.cardPrivateData.params",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_with(params: Value) -> String {
        json!({"cardPrivateData": {"actionIds": ["btn"], "params": params}}).to_string()
    }

    fn callback(extra: Value) -> Value {
        let mut v = json!({
            "outTrackId": "track-1", "corpId": "dingcorp", "userId": "0326", "userIdType": 1,
            "spaceType": "IM", "spaceId": "cid1", "type": "actionCallback", "extension": "{}"
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    /// A callback whose `field` is the string `text`.
    fn with(field: &str, text: &str) -> Value {
        let mut v = callback(json!({}));
        v[field] = text.into();
        v
    }

    #[test]
    fn value_strings_round_trip_and_stay_small() {
        let actions = [
            Action::Feedback {
                kind: FeedbackKind::VeryHelpful,
                record: "0123456789abcdef0123456789abcdef".into(),
            },
            Action::Feedback {
                kind: FeedbackKind::VeryUnhelpful,
                record: "msgBjXREkdlZkfTfrIiQomjAw==".into(),
            },
            Action::Regenerate {
                record: "r1".into(),
            },
            Action::ContinueChat {
                record: "r2".into(),
            },
        ];
        for a in actions {
            let s = a.to_value_string();
            assert!(!s.contains(' '), "compact: {s}");
            assert!(s.len() < 100, "{s}");
            assert_eq!(Action::from_value_str(&s).unwrap(), a);
        }
        assert_eq!(
            Action::Feedback {
                kind: FeedbackKind::Helpful,
                record: "r9".into()
            }
            .to_value_string(),
            r#"{"action":"feedback","kind":"helpful","record":"r9"}"#
        );
    }

    #[test]
    fn action_ids_round_trip_and_are_read_from_ai_card_clicks() {
        let all = [
            Action::Feedback {
                kind: FeedbackKind::VeryUnhelpful,
                record: "r.1".into(),
            },
            Action::Regenerate {
                record: "r2".into(),
            },
            Action::ContinueChat {
                record: "r3".into(),
            },
        ];
        for a in &all {
            let id = a.to_action_id();
            assert_eq!(&Action::from_action_id(&id).unwrap(), a, "{id}");
            // The AI card's click: content and value both carry cardPrivateData.
            let private = json!({"cardPrivateData": {"actionIds": [id], "params": {}}}).to_string();
            let data = json!({"type": "actionCallback", "outTrackId": "t",
                              "content": private, "value": private});
            assert_eq!(&Action::from_data(&data).unwrap(), a);
            let only_value = json!({"type": "actionCallback", "value": private});
            assert_eq!(&Action::from_data(&only_value).unwrap(), a);
        }
        assert_eq!(a_id_err("feedback.great.r1"), "unknown feedback kind \"great\" (expected very_helpful, helpful, unhelpful or very_unhelpful)");
        assert!(a_id_err("nodot").contains("unknown card action"));
        assert!(a_id_err("regenerate.").contains("record"));
    }

    fn a_id_err(id: &str) -> String {
        Action::from_action_id(id).unwrap_err().to_string()
    }

    #[test]
    fn kinds_have_names_and_scores() {
        for k in FeedbackKind::ALL {
            assert_eq!(FeedbackKind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(FeedbackKind::parse("meh"), None);
        let scores: Vec<i32> = FeedbackKind::ALL.iter().map(|k| k.score()).collect();
        assert_eq!(scores, [2, 1, -1, -2]);
    }

    #[test]
    fn action_from_content_params_fields() {
        let v = callback(json!({
            "content": content_with(json!({"action": "feedback", "kind": "unhelpful", "record": "rec-1"}))
        }));
        let expected = Action::Feedback {
            kind: FeedbackKind::Unhelpful,
            record: "rec-1".into(),
        };
        assert_eq!(Action::from_data(&v).unwrap(), expected);
        // The same through the typed callback the Stream client hands over.
        let cb = CardCallback::from_data(v, jitnode_dingtalk_wire::frame::TOPIC_CARD_CALLBACK, "")
            .unwrap();
        assert_eq!(Action::from_callback(&cb).unwrap(), expected);
        assert_eq!(cb.out_track_id, "track-1");
        assert_eq!(cb.user_id, "0326");
        assert_eq!(cb.space_type, "IM");
        assert_eq!(cb.space_id, "cid1");
    }

    #[test]
    fn action_from_content_value_param() {
        let value = Action::Regenerate {
            record: "rec-2".into(),
        }
        .to_value_string();
        let v = callback(json!({"content": content_with(json!({"value": value}))}));
        assert_eq!(
            Action::from_data(&v).unwrap(),
            Action::Regenerate {
                record: "rec-2".into()
            }
        );
    }

    #[test]
    fn action_from_top_level_value() {
        let value = Action::ContinueChat {
            record: "rec-3".into(),
        }
        .to_value_string();
        let v = callback(json!({ "value": value }));
        assert_eq!(
            Action::from_data(&v).unwrap(),
            Action::ContinueChat {
                record: "rec-3".into()
            }
        );
        // The same fields as an object are tolerated.
        let v = callback(json!({"value": {"action": "regenerate", "record": "rec-4"}}));
        assert_eq!(Action::from_data(&v).unwrap().record(), "rec-4");
    }

    #[test]
    fn content_wins_over_value_and_broken_content_falls_back_to_value() {
        let v = callback(json!({
            "content": content_with(json!({"action": "regenerate", "record": "from-content"})),
            "value": Action::ContinueChat { record: "from-value".into() }.to_value_string()
        }));
        assert_eq!(Action::from_data(&v).unwrap().record(), "from-content");
        let v = callback(json!({
            "content": "{not json",
            "value": Action::ContinueChat { record: "from-value".into() }.to_value_string()
        }));
        assert_eq!(Action::from_data(&v).unwrap().record(), "from-value");
    }

    #[test]
    fn errors_are_typed_and_clear() {
        use CallbackError::*;
        // (the field, its text, the field the error names)
        let invalid_json = [
            ("content", "{not json", "content"),
            ("content", "[1]", "content"),
            (
                "content",
                r#"{"cardPrivateData": 5}"#,
                "content.cardPrivateData",
            ),
            (
                "content",
                r#"{"cardPrivateData": {"params": "a"}}"#,
                "content.cardPrivateData.params",
            ),
            ("value", "not json", "value"),
        ];
        // (a value text, the field it lacks)
        let missing = [
            (r#"{"record": "r"}"#, "action"),
            (r#"{"action": "regenerate"}"#, "record"),
            (r#"{"action": "feedback", "record": "r"}"#, "kind"),
        ];
        let mut cases: Vec<(Value, CallbackError)> = vec![
            (json!("x"), NotAnObject),
            (callback(json!({})), NoAction),
            (with("content", &content_with(json!({}))), NoAction),
            (
                with("value", r#"{"action": 3, "record": "r"}"#),
                NotAString { field: "action" },
            ),
            (
                with("value", r#"{"action": "delete_all", "record": "r"}"#),
                UnknownAction {
                    action: "delete_all".into(),
                },
            ),
            (
                with(
                    "value",
                    r#"{"action": "feedback", "kind": "meh", "record": "r"}"#,
                ),
                UnknownKind { kind: "meh".into() },
            ),
            (
                with("value", r#"{"action": "regenerate", "record": "a b"}"#),
                InvalidRecord,
            ),
        ];
        cases.extend(
            invalid_json
                .map(|(field, text, named)| (with(field, text), InvalidJson { field: named })),
        );
        cases.extend(missing.map(|(text, field)| (with("value", text), MissingField { field })));
        for (input, expected) in cases {
            let got = Action::from_data(&input).unwrap_err();
            assert_eq!(got, expected, "{input}");
            assert_eq!(got.ack_code(), 400);
            assert!(!got.to_string().is_empty());
        }
        assert_eq!(
            Action::from_data_str("{{").unwrap_err(),
            CallbackError::NotJson
        );
    }

    #[test]
    fn echoed_input_is_shortened() {
        let long = "x".repeat(500);
        let v = callback(json!({"value": json!({"action": long, "record": "r"}).to_string()}));
        let e = Action::from_data(&v).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
        let long_record = "r".repeat(MAX_RECORD_LEN + 1);
        let v = callback(
            json!({"value": json!({"action": "regenerate", "record": long_record}).to_string()}),
        );
        assert_eq!(
            Action::from_data(&v).unwrap_err(),
            CallbackError::InvalidRecord
        );
    }
}
