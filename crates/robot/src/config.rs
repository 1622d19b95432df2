//! The robot instance's configuration: the rendered `config.json` of an
//! `imRobots.dingTalkStreamType` instance, checked and filled with defaults.
//!
//! Field names are the JSON names (`clientId`, `card.templateId`, ...). Every error names the
//! field so a person can fix the file; no error or `Debug` output ever contains a configured
//! value, because rendered values may hold secrets.
//!
//! Numbers may be given as JSON numbers or as strings of digits: `{{VAR}}` templating renders
//! to strings, and `"minIntervalMs": "{{CARD_INTERVAL}}"` should work. Unknown fields are
//! rejected so that a typo (`minIntervalMS`) does not silently fall back to a default.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// DingTalk's OpenAPI base (`/v1.0/*`).
pub const DEFAULT_OPEN_API_ENDPOINT: &str = "https://api.dingtalk.com";
/// DingTalk's legacy API base.
pub const DEFAULT_OAPI_ENDPOINT: &str = "https://oapi.dingtalk.com";

const TOP_FIELDS: &[&str] = &[
    "clientId",
    "clientSecret",
    "agent",
    "openApiEndpoint",
    "oapiEndpoint",
    "robotCode",
    "card",
    "fallbackAfterFailures",
    "answerTimeoutMs",
    "language",
];
const CARD_FIELDS: &[&str] = &[
    "mode",
    "templateId",
    "streamingKey",
    "minIntervalMs",
    "maxUpdates",
];

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

/// How answers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardMode {
    /// `StandardCard`: no template; the whole card is replaced on every update. Button clicks
    /// go to an HTTP callback, not over Stream.
    #[default]
    Standard,
    /// An advanced (AI) card from a published template; streaming via `/v1.0/card/streaming`
    /// and button clicks over Stream.
    Template,
}

impl CardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CardMode::Standard => "standard",
            CardMode::Template => "template",
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

impl Default for CardConfig {
    fn default() -> Self {
        CardConfig {
            mode: CardMode::Standard,
            template_id: None,
            streaming_key: "content".to_string(),
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
                &jitnode_stream::redacted_url(&self.open_api_endpoint),
            )
            .field(
                "oapi_endpoint",
                &jitnode_stream::redacted_url(&self.oapi_endpoint),
            )
            .field("robot_code", &self.robot_code)
            .field("card", &self.card)
            .field("fallback_after_failures", &self.fallback_after_failures)
            .field("answer_timeout", &self.answer_timeout)
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

    /// Checks a rendered `config.json` value and applies the defaults.
    pub fn from_value(value: &Value) -> Result<RobotConfig, ConfigError> {
        let obj = value.as_object().ok_or(ConfigError::NotAnObject)?;
        reject_unknown(obj, TOP_FIELDS, "")?;

        let client_id = required_string(obj, "clientId", "clientId")?;
        let client_secret = required_string(obj, "clientSecret", "clientSecret")?;
        let agent = required_string(obj, "agent", "agent")?;
        check_full_name(&agent)?;
        let open_api_endpoint =
            optional_endpoint(obj, "openApiEndpoint")?.unwrap_or(DEFAULT_OPEN_API_ENDPOINT.into());
        let oapi_endpoint =
            optional_endpoint(obj, "oapiEndpoint")?.unwrap_or(DEFAULT_OAPI_ENDPOINT.into());
        let robot_code =
            optional_string(obj, "robotCode", "robotCode")?.unwrap_or_else(|| client_id.clone());
        let fallback_after_failures = optional_u64(
            obj,
            "fallbackAfterFailures",
            "fallbackAfterFailures",
            1,
            1000,
        )?
        .unwrap_or(3) as u32;
        let answer_timeout_ms =
            optional_u64(obj, "answerTimeoutMs", "answerTimeoutMs", 1000, 3_600_000)?
                .unwrap_or(120_000);
        let language = match optional_string(obj, "language", "language")?.as_deref() {
            None | Some("zh") => Lang::Zh,
            Some("en") => Lang::En,
            Some(_) => return Err(invalid("language", "must be \"zh\" or \"en\"")),
        };
        let card = match obj.get("card") {
            None | Some(Value::Null) => CardConfig::default(),
            Some(Value::Object(card)) => parse_card(card)?,
            Some(_) => return Err(invalid("card", "must be an object")),
        };

        Ok(RobotConfig {
            client_id,
            client_secret,
            agent,
            open_api_endpoint,
            oapi_endpoint,
            robot_code,
            card,
            fallback_after_failures,
            answer_timeout: Duration::from_millis(answer_timeout_ms),
            language,
        })
    }
}

fn parse_card(card: &Map<String, Value>) -> Result<CardConfig, ConfigError> {
    reject_unknown(card, CARD_FIELDS, "card.")?;
    let defaults = CardConfig::default();
    let mode = match optional_string(card, "mode", "card.mode")?.as_deref() {
        None | Some("standard") => CardMode::Standard,
        Some("template") => CardMode::Template,
        Some(_) => return Err(invalid("card.mode", "must be \"standard\" or \"template\"")),
    };
    let template_id = optional_string(card, "templateId", "card.templateId")?;
    let template_id = match mode {
        CardMode::Template => Some(template_id.ok_or_else(|| {
            invalid(
                "card.templateId",
                "is required when card.mode is \"template\"",
            )
        })?),
        // A template id without template mode is harmless; keep it out of the way.
        CardMode::Standard => None,
    };
    let streaming_key = optional_string(card, "streamingKey", "card.streamingKey")?
        .unwrap_or(defaults.streaming_key);
    if !streaming_key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(invalid(
            "card.streamingKey",
            "must be a template variable name (letters, digits, _)",
        ));
    }
    let min_interval_ms = optional_u64(card, "minIntervalMs", "card.minIntervalMs", 0, 60_000)?
        .unwrap_or(defaults.min_interval.as_millis() as u64);
    let max_updates = optional_u64(card, "maxUpdates", "card.maxUpdates", 1, 1000)?
        .map(|n| n as u32)
        .unwrap_or(defaults.max_updates);
    Ok(CardConfig {
        mode,
        template_id,
        streaming_key,
        min_interval: Duration::from_millis(min_interval_ms),
        max_updates,
    })
}

fn reject_unknown(
    obj: &Map<String, Value>,
    known: &[&str],
    prefix: &str,
) -> Result<(), ConfigError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ConfigError::Unknown {
            field: format!("{prefix}{k}"),
            known: known.join(", "),
        }),
        None => Ok(()),
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            // A placeholder left in the rendered config means templating was skipped or a
            // variable is missing; an empty or literal secret must not be used silently.
            if s.contains("{{") {
                return Err(invalid(
                    field,
                    "still holds an unrendered {{...}} placeholder",
                ));
            }
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn required_string(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<String, ConfigError> {
    optional_string(obj, key, field)?.ok_or_else(|| ConfigError::Missing {
        field: field.to_string(),
    })
}

fn optional_u64(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConfigError> {
    let n = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().parse::<u64>().ok(),
        Some(Value::String(_)) => return Ok(None),
        Some(_) => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            field,
            format!("must be a whole number from {min} to {max}"),
        )),
    }
}

fn optional_endpoint(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(s) = optional_string(obj, key, key)? else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&s).map_err(|_| invalid(key, "is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(key, "must be an http:// or https:// URL"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(key, "must not have a query or fragment"));
    }
    // Paths are appended to the base, so the base keeps no trailing slash.
    Ok(Some(s.trim_end_matches('/').to_string()))
}

/// A fullName is dotted element names (`aiagents.ragTest`); nothing else can name an element.
fn check_full_name(name: &str) -> Result<(), ConfigError> {
    let ok = name.split('.').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "agent",
            "must be the fullName of an agent element, like \"aiagents.helpdesk\"",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(c.card.mode, CardMode::Standard);
        assert_eq!(c.card.template_id, None);
        assert_eq!(c.card.streaming_key, "content");
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
        assert!(e.to_string().contains("unrendered"));
        assert!(!e.to_string().contains("DINGTALK_SECRET"));
    }

    #[test]
    fn template_mode_requires_template_id() {
        let v = with(minimal(), "card", json!({"mode": "template"}));
        let e = RobotConfig::from_value(&v).unwrap_err();
        assert_eq!(e.field(), Some("card.templateId"));
        assert!(e.to_string().contains("template"), "{e}");
    }

    #[test]
    fn standard_mode_drops_template_id() {
        let v = with(minimal(), "card", json!({"templateId": "x.schema"}));
        let c = RobotConfig::from_value(&v).unwrap();
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
