//! The robot instance's configuration: the rendered `config.json` of an
//! `imRobots.dingTalkStreamType` instance, checked and filled with defaults.
//!
//! Field names are the JSON names (`clientId`, `card.templateId`, ...). Every error names the
//! field so a person can fix the file; no error or `Debug` output ever contains a configured
//! value, because rendered values may hold secrets.
//!
//! The shape, ranges and defaults are the JSON Schema of [`config_schema`], which the host
//! checks before the loader runs (and `jitnode check` reports against); what passes is
//! deserialized. Numbers may be given as JSON numbers or as strings of digits: `{{VAR}}`
//! templating renders to strings, and `"minIntervalMs": "{{CARD_INTERVAL}}"` should work.
//! Unknown fields are rejected so that a typo (`minIntervalMS`) does not silently fall back
//! to a default. A blank optional string counts as absent.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jitnode_dingtalk_wire::api::ai_card;
use jitnode_host::{ConfigSchema, ViolationKind};
use serde::Deserialize;
use serde_json::{json, Value};

/// DingTalk's OpenAPI base (`/v1.0/*`).
pub const DEFAULT_OPEN_API_ENDPOINT: &str = "https://api.dingtalk.com";
/// DingTalk's legacy API base.
pub const DEFAULT_OAPI_ENDPOINT: &str = "https://oapi.dingtalk.com";

/// A configuration problem, naming the field (dotted path, JSON spelling).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("robot config is not a JSON object")]
    NotAnObject,
    #[error("robot config: `{field}` is required")]
    Missing { field: String },
    #[error("robot config: `{field}` {reason}")]
    Invalid { field: String, reason: String },
    #[error("robot config: unknown field `{field}` (known fields: {known})")]
    Unknown { field: String, known: String },
}

impl ConfigError {
    /// The dotted field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::NotAnObject => None,
            ConfigError::Missing { field }
            | ConfigError::Invalid { field, .. }
            | ConfigError::Unknown { field, .. } => Some(field),
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// How answers are shown. The default, for every new robot instance, is [`CardMode::Ai`]
/// (this `Default` is the one home of that fact: the config schema's default and the docs
/// follow it): it works on a real account with nothing to author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardMode {
    /// `StandardCard`: no template; the whole card is replaced on every update. Button clicks
    /// go to an HTTP callback, not over Stream.
    Standard,
    /// An advanced (AI) card from a published template; streaming via `/v1.0/card/streaming`
    /// and button clicks over Stream.
    Template,
    /// DingTalk's public AI card template: nothing to author, streaming and button clicks
    /// over Stream. `card.templateId` and `card.streamingKey` are fixed by the template.
    #[default]
    Ai,
}

impl CardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CardMode::Standard => "standard",
            CardMode::Template => "template",
            CardMode::Ai => "ai",
        }
    }
}

/// Language of the texts the robot writes itself (card labels, notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// The language a user wrote `text` in: Chinese when it has a Han character, English
    /// when it has a Latin letter, else `fallback` (the configured `language`).
    pub fn of_text(text: &str, fallback: Lang) -> Lang {
        let han = |c: char| matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF);
        if text.chars().any(han) {
            Lang::Zh
        } else if text.chars().any(|c| c.is_ascii_alphabetic()) {
            Lang::En
        } else {
            fallback
        }
    }
}

/// The `card` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardConfig {
    pub mode: CardMode,
    /// Required when `mode` is `template`, `None` otherwise.
    pub template_id: Option<String>,
    /// The template variable that receives the streamed text (template mode).
    pub streaming_key: String,
    /// Minimum time between two card updates of one answer.
    pub min_interval: Duration,
    /// Card updates per answer, the final one included.
    pub max_updates: u32,
}

/// `maxQuestionChars` unless the config says otherwise: a long message, well within what
/// the agent's prompt and retrieval handle.
pub const DEFAULT_MAX_QUESTION_CHARS: usize = 2000;

/// The template variable the answer streams into unless `card.streamingKey` says otherwise.
pub const DEFAULT_STREAMING_KEY: &str = "content";

impl Default for CardConfig {
    fn default() -> Self {
        CardConfig {
            mode: CardMode::default(),
            template_id: None,
            streaming_key: DEFAULT_STREAMING_KEY.to_string(),
            min_interval: Duration::from_millis(300),
            max_updates: 20,
        }
    }
}

/// A checked robot instance configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct RobotConfig {
    /// App key; also the robot code unless `robotCode` says otherwise.
    pub client_id: String,
    client_secret: String,
    /// fullName of the agent element whose `run` answers questions.
    pub agent: String,
    /// Base URL of `/v1.0/*` calls, without a trailing slash.
    pub open_api_endpoint: String,
    /// Base URL of legacy calls, without a trailing slash.
    pub oapi_endpoint: String,
    /// `robotCode` of card sends; defaults to `client_id`.
    pub robot_code: String,
    pub card: CardConfig,
    /// After this many card API failures in a row, stop updating the card and send the answer
    /// as a markdown reply through the session webhook.
    pub fallback_after_failures: u32,
    /// Longest time an answer may take before its card is marked failed.
    pub answer_timeout: Duration,
    /// Longest question passed to the agent, in characters; a longer one is cut and its
    /// answer says so.
    pub max_question_chars: usize,
    pub language: Lang,
}

impl fmt::Debug for RobotConfig {
    // By hand so the secret never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("agent", &self.agent)
            // Userinfo in an endpoint URL would be a credential.
            .field(
                "open_api_endpoint",
                &jitnode_dingtalk_wire::redacted_url(&self.open_api_endpoint),
            )
            .field(
                "oapi_endpoint",
                &jitnode_dingtalk_wire::redacted_url(&self.oapi_endpoint),
            )
            .field("robot_code", &self.robot_code)
            .field("card", &self.card)
            .field("fallback_after_failures", &self.fallback_after_failures)
            .field("answer_timeout", &self.answer_timeout)
            .field("max_question_chars", &self.max_question_chars)
            .field("language", &self.language)
            .finish()
    }
}

impl RobotConfig {
    /// The app secret. Deliberately a method, not a field, so it is not printed by accident.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Parses a rendered `config.json` (text).
    pub fn from_json_str(text: &str) -> Result<RobotConfig, ConfigError> {
        // serde_json's message can quote the input; keep only the position.
        let value: Value = serde_json::from_str(text).map_err(|e| {
            invalid(
                "(document)",
                format!(
                    "is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        RobotConfig::from_value(&value)
    }

    /// Checks a rendered `config.json` value against [`config_schema`] (filling in the
    /// defaults) and reads it. The first problem is returned, naming its field.
    pub fn from_value(value: &Value) -> Result<RobotConfig, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::NotAnObject);
        }
        // A blank mode (`{{DINGTALK_CARD_MODE:-}}` with the variable unset) is the default
        // one, so configs need not repeat the default.
        let mut value = value.clone();
        if let Some(card) = value.get_mut("card").and_then(Value::as_object_mut) {
            if card
                .get("mode")
                .and_then(Value::as_str)
                .is_some_and(|m| m.trim().is_empty())
            {
                card.remove("mode");
            }
        }
        let value = &value;
        let checked = config_schema().apply(Some(value)).map_err(|v| {
            let first = v
                .into_iter()
                .next()
                .expect("a failed validation has at least one violation");
            match first.kind {
                ViolationKind::Missing => ConfigError::Missing { field: first.field },
                ViolationKind::Unknown => ConfigError::Unknown {
                    known: first
                        .expected
                        .split_once("known fields: ")
                        .map(|(_, k)| k.trim_end_matches(')').to_string())
                        .unwrap_or_default(),
                    field: first.field,
                },
                ViolationKind::Invalid => ConfigError::Invalid {
                    field: first.field,
                    reason: first.expected,
                },
            }
        })?;
        let raw: Raw = serde_json::from_value(checked).map_err(|e| ConfigError::Invalid {
            field: "(document)".into(),
            reason: format!("does not fit the schema's shape: {e}"),
        })?;
        let blank = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let endpoint = |s: String, default: &str| {
            let s = s.trim().trim_end_matches('/').to_string();
            if s.is_empty() {
                default.to_string()
            } else {
                s
            }
        };
        let client_id = raw.client_id.trim().to_string();
        let mode = match raw.card.mode.as_str() {
            "template" => CardMode::Template,
            "standard" => CardMode::Standard,
            _ => CardMode::Ai,
        };
        let (template_id, streaming_key) = match mode {
            CardMode::Ai => (
                Some(ai_card::TEMPLATE_ID.to_string()),
                ai_card::KEY_CONTENT.to_string(),
            ),
            // A template id without template mode is harmless; keep it out of the way.
            CardMode::Template => (blank(raw.card.template_id), raw.card.streaming_key),
            CardMode::Standard => (None, raw.card.streaming_key),
        };
        Ok(RobotConfig {
            robot_code: blank(raw.robot_code).unwrap_or_else(|| client_id.clone()),
            client_id,
            client_secret: raw.client_secret.trim().to_string(),
            agent: raw.agent.trim().to_string(),
            open_api_endpoint: endpoint(raw.open_api_endpoint, DEFAULT_OPEN_API_ENDPOINT),
            oapi_endpoint: endpoint(raw.oapi_endpoint, DEFAULT_OAPI_ENDPOINT),
            card: CardConfig {
                mode,
                template_id,
                streaming_key,
                min_interval: Duration::from_millis(raw.card.min_interval_ms),
                max_updates: raw.card.max_updates,
            },
            fallback_after_failures: raw.fallback_after_failures,
            answer_timeout: Duration::from_millis(raw.answer_timeout_ms),
            max_question_chars: raw.max_question_chars,
            language: if raw.language == "en" {
                Lang::En
            } else {
                Lang::Zh
            },
        })
    }
}

/// The config as the schema vouched for it (defaults filled in).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    client_id: String,
    client_secret: String,
    agent: String,
    open_api_endpoint: String,
    oapi_endpoint: String,
    robot_code: Option<String>,
    card: RawCard,
    fallback_after_failures: u32,
    answer_timeout_ms: u64,
    max_question_chars: usize,
    language: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCard {
    mode: String,
    template_id: Option<String>,
    streaming_key: String,
    min_interval_ms: u64,
    max_updates: u32,
}

/// A non-blank string that is not an unrendered `{{...}}` placeholder.
fn filled(description: &str, secret: bool) -> Value {
    json!({
        "type": "string",
        "writeOnly": secret,
        "description": description,
        "allOf": [
            {"pattern": "\\S", "x-expected": "must not be empty"},
            {"not": {"pattern": "\\{\\{"}, "x-expected": "still holds an unrendered {{...}} placeholder"}
        ]
    })
}

fn endpoint(default: &str, description: &str) -> Value {
    json!({
        "type": "string",
        "default": default,
        "description": description,
        "allOf": [{"pattern": "^\\s*(https?://[^/?#\\s]+[^?#\\s]*)?\\s*$",
                   "x-expected": "expected an http:// or https:// URL without query or fragment"}]
    })
}

fn whole(min: u64, max: u64, default: u64, description: &str) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "default": default,
           "description": description})
}

/// The JSON Schema of a robot instance's config.json.
pub fn config_schema() -> Arc<ConfigSchema> {
    static SCHEMA: OnceLock<Arc<ConfigSchema>> = OnceLock::new();
    ConfigSchema::built_in(&SCHEMA, "robot", || {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["clientId", "clientSecret", "agent"],
            "properties": {
                "clientId": filled("App key; also the robot code unless robotCode is set.", false),
                "clientSecret": filled("App secret.", true),
                "agent": {
                    "type": "string",
                    "description": "fullName of the agent element whose run answers questions.",
                    "allOf": [{"pattern": "^\\s*[\\w-]+(\\.[\\w-]+)*\\s*$",
                               "x-expected": "expected the fullName of an agent element, like \"aiagents.helpdesk\""}]
                },
                "openApiEndpoint": endpoint(DEFAULT_OPEN_API_ENDPOINT, "Base URL of /v1.0/* calls."),
                "oapiEndpoint": endpoint(DEFAULT_OAPI_ENDPOINT, "Base URL of legacy calls."),
                "robotCode": {"type": "string", "description": "robotCode of card sends; defaults to clientId.",
                              "allOf": [{"not": {"pattern": "\\{\\{"}, "x-expected": "still holds an unrendered {{...}} placeholder"}]},
                "card": {
                    "type": "object",
                    "default": {},
                    "additionalProperties": false,
                    "description": "How answers are shown.",
                    "properties": {
                        "mode": {"enum": ["standard", "template", "ai", ""], "default": CardMode::default().as_str(),
                                 "description": "ai: DingTalk's public AI card template (nothing to author), streaming, clicks over Stream; template: your own published card template, streaming, clicks over Stream; standard: StandardCard, no buttons (its clicks need an HTTP callback); blank: the default."},
                        "templateId": {"type": "string", "description": "Published card template; required in template mode.",
                                       "allOf": [{"not": {"pattern": "\\{\\{"}, "x-expected": "still holds an unrendered {{...}} placeholder"}]},
                        "streamingKey": {"type": "string", "default": "content", "pattern": "^[A-Za-z0-9_]+$",
                                         "x-expected": "expected a template variable name (letters, digits, _)",
                                         "description": "Template variable receiving the streamed text."},
                        "minIntervalMs": whole(0, 60_000, 300, "Minimum time between two card updates of one answer."),
                        "maxUpdates": whole(1, 1000, 20, "Card updates per answer, the final one included.")
                    },
                    "allOf": [{
                        "if": {"required": ["mode"], "properties": {"mode": {"const": "template"}}},
                        "then": {"required": ["templateId"],
                                 "x-expected": "is required when card.mode is \"template\"",
                                 "properties": {"templateId": {"pattern": "\\S",
                                                               "x-expected": "is required when card.mode is \"template\""}}}
                    }]
                },
                "fallbackAfterFailures": whole(1, 1000, 3, "Card API failures in a row before answering by markdown instead."),
                "answerTimeoutMs": whole(1000, 3_600_000, 120_000, "Longest time an answer may take."),
                "maxQuestionChars": whole(1, 100_000, DEFAULT_MAX_QUESTION_CHARS as u64, "Longest question passed to the agent, in characters; a longer one is cut and its answer says so."),
                "language": {"enum": ["zh", "en"], "default": "zh",
                             "description": "Language of the texts the robot writes itself."}
            }
        })
    })
}

/// A robot config for unit tests: app `dingapp` (secret `s3cr3t`), English, card mode
/// `mode` (template mode with template `tpl.schema`).
#[cfg(test)]
pub(crate) fn test_config(mode: &str) -> RobotConfig {
    let mut card = serde_json::json!({"mode": mode});
    if mode == "template" {
        card["templateId"] = serde_json::json!("tpl.schema");
    }
    RobotConfig::from_value(&serde_json::json!({
        "clientId": "dingapp", "clientSecret": "s3cr3t", "agent": "aiagents.helpdesk",
        "language": "en", "card": card
    }))
    .expect("the test config is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_texts_follow_the_language_of_the_question() {
        assert_eq!(
            Lang::of_text("How do I reset my password?", Lang::Zh),
            Lang::En
        );
        assert_eq!(Lang::of_text("dist 删了会怎样", Lang::En), Lang::Zh);
        assert_eq!(Lang::of_text("123 ?!", Lang::En), Lang::En);
        assert_eq!(Lang::of_text("", Lang::Zh), Lang::Zh);
    }
    use serde_json::json;

    fn minimal() -> Value {
        json!({"clientId": "ding123", "clientSecret": "s3cr3t-value", "agent": "aiagents.helpdesk"})
    }

    fn with(mut base: Value, key: &str, v: Value) -> Value {
        base.as_object_mut().unwrap().insert(key.into(), v);
        base
    }

    fn err_field(v: Value) -> String {
        RobotConfig::from_value(&v)
            .unwrap_err()
            .field()
            .unwrap()
            .to_string()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = RobotConfig::from_value(&minimal()).unwrap();
        assert_eq!(c.client_id, "ding123");
        assert_eq!(c.client_secret(), "s3cr3t-value");
        assert_eq!(c.agent, "aiagents.helpdesk");
        assert_eq!(c.open_api_endpoint, "https://api.dingtalk.com");
        assert_eq!(c.oapi_endpoint, "https://oapi.dingtalk.com");
        assert_eq!(c.robot_code, "ding123");
        assert_eq!(c.card.mode, CardMode::Ai);
        assert_eq!(c.card.template_id.as_deref(), Some(ai_card::TEMPLATE_ID));
        assert_eq!(c.max_question_chars, DEFAULT_MAX_QUESTION_CHARS);
        assert_eq!(c.card.streaming_key, "msgContent");
        assert_eq!(c.card.min_interval, Duration::from_millis(300));
        assert_eq!(c.card.max_updates, 20);
        assert_eq!(c.fallback_after_failures, 3);
        assert_eq!(c.answer_timeout, Duration::from_secs(120));
        assert_eq!(c.language, Lang::Zh);
    }

    #[test]
    fn full_config_is_read() {
        let v = json!({
            "clientId": "id", "clientSecret": "sec", "agent": "aiagents.ragTest",
            "openApiEndpoint": "http://127.0.0.1:4567/", "oapiEndpoint": "http://127.0.0.1:4567/oapi",
            "robotCode": "robot-1", "fallbackAfterFailures": "5", "answerTimeoutMs": 30000,
            "language": "en",
            "card": {"mode": "template", "templateId": "tpl.schema", "streamingKey": "answer",
                     "minIntervalMs": "0", "maxUpdates": 7}
        });
        let c = RobotConfig::from_value(&v).unwrap();
        assert_eq!(c.open_api_endpoint, "http://127.0.0.1:4567");
        assert_eq!(c.oapi_endpoint, "http://127.0.0.1:4567/oapi");
        assert_eq!(c.robot_code, "robot-1");
        assert_eq!(c.fallback_after_failures, 5);
        assert_eq!(c.answer_timeout, Duration::from_secs(30));
        assert_eq!(c.language, Lang::En);
        assert_eq!(c.card.mode, CardMode::Template);
        assert_eq!(c.card.template_id.as_deref(), Some("tpl.schema"));
        assert_eq!(c.card.streaming_key, "answer");
        assert_eq!(c.card.min_interval, Duration::ZERO);
        assert_eq!(c.card.max_updates, 7);
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = RobotConfig::from_value(&minimal()).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("ding123"));
    }

    #[test]
    fn required_fields_are_named() {
        for key in ["clientId", "clientSecret", "agent"] {
            let mut v = minimal();
            v.as_object_mut().unwrap().remove(key);
            let e = RobotConfig::from_value(&v).unwrap_err();
            assert_eq!(
                e,
                ConfigError::Missing {
                    field: key.to_string()
                }
            );
            assert!(e.to_string().contains(key));
            // An empty string is as missing as an absent field.
            let v = with(minimal(), key, json!("  "));
            assert_eq!(err_field(v), key);
        }
    }

    #[test]
    fn unrendered_placeholder_is_an_error_without_the_value() {
        let v = with(minimal(), "clientSecret", json!("{{DINGTALK_SECRET}}"));
        let e = RobotConfig::from_value(&v).unwrap_err();
        assert_eq!(e.field(), Some("clientSecret"));
        assert!(e.to_string().contains("unrendered"), "{e}");
        assert!(!e.to_string().contains("DINGTALK_SECRET"));
    }

    #[test]
    fn template_mode_requires_template_id() {
        let v = with(minimal(), "card", json!({"mode": "template"}));
        let e = RobotConfig::from_value(&v).unwrap_err();
        assert_eq!(e.field(), Some("card.templateId"));
        assert!(e.to_string().contains("template"), "{e}");
    }

    /// The config of `minimal()` with this `card` section.
    fn with_card(card: Value) -> RobotConfig {
        RobotConfig::from_value(&with(minimal(), "card", card)).unwrap()
    }

    #[test]
    fn ai_mode_uses_the_public_template() {
        let c = with_card(json!({"mode": "ai", "templateId": "x.schema"}));
        assert_eq!(c.card.mode, CardMode::Ai);
        assert_eq!(c.card.template_id.as_deref(), Some(ai_card::TEMPLATE_ID));
        assert_eq!(c.card.streaming_key, "msgContent");
    }

    #[test]
    fn a_blank_mode_is_the_default_ai() {
        // What `{{DINGTALK_CARD_MODE:-}}` renders to with the variable unset.
        let v = with(minimal(), "card", json!({"mode": ""}));
        assert_eq!(RobotConfig::from_value(&v).unwrap().card.mode, CardMode::Ai);
        assert_eq!(CardConfig::default().mode, CardMode::Ai);
        let schema = config_schema();
        let filled = schema.apply(Some(&minimal())).unwrap();
        assert_eq!(filled["card"]["mode"], CardMode::default().as_str());
    }

    #[test]
    fn standard_mode_drops_template_id() {
        let c = with_card(json!({"mode": "standard", "templateId": "x.schema"}));
        assert_eq!(c.card.mode, CardMode::Standard);
        assert_eq!(c.card.template_id, None);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("card", json!({"mode": "fancy"}), "card.mode"),
            ("card", json!({"maxUpdates": 0}), "card.maxUpdates"),
            ("card", json!({"maxUpdates": -3}), "card.maxUpdates"),
            (
                "card",
                json!({"minIntervalMs": "soon"}),
                "card.minIntervalMs",
            ),
            ("card", json!({"minIntervalMs": 1.5}), "card.minIntervalMs"),
            ("card", json!({"streamingKey": "a b"}), "card.streamingKey"),
            ("card", json!({"maxUpdate": 3}), "card.maxUpdate"),
            ("card", json!("standard"), "card"),
            ("openApiEndpoint", json!("ftp://example"), "openApiEndpoint"),
            ("openApiEndpoint", json!("not a url"), "openApiEndpoint"),
            ("oapiEndpoint", json!(42), "oapiEndpoint"),
            ("fallbackAfterFailures", json!(0), "fallbackAfterFailures"),
            ("answerTimeoutMs", json!(true), "answerTimeoutMs"),
            ("agent", json!("aiagents..x"), "agent"),
            ("agent", json!("aiagents/x"), "agent"),
            ("language", json!("fr"), "language"),
            ("clientSecretTypo", json!("x"), "clientSecretTypo"),
        ];
        for (key, value, field) in cases {
            let v = with(minimal(), key, value.clone());
            assert_eq!(err_field(v), field, "{key} = {value}");
        }
    }

    #[test]
    fn invalid_values_are_not_echoed() {
        let v = with(minimal(), "openApiEndpoint", json!("zz-private-value-zz"));
        let e = RobotConfig::from_value(&v).unwrap_err().to_string();
        assert!(!e.contains("zz-private-value-zz"), "{e}");
        let e = RobotConfig::from_json_str("{\"clientSecret\": \"zz-private-value-zz\" oops")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("zz-private-value-zz"), "{e}");
    }

    #[test]
    fn not_an_object_is_rejected() {
        assert_eq!(
            RobotConfig::from_value(&json!([1])).unwrap_err(),
            ConfigError::NotAnObject
        );
    }

    #[test]
    fn from_json_str_parses_text() {
        let c = RobotConfig::from_json_str(&minimal().to_string()).unwrap();
        assert_eq!(c.agent, "aiagents.helpdesk");
    }
}
