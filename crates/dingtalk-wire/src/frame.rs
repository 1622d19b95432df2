//! Stream frames as values: what the gateway sends and what the client answers.
//!
//! No I/O here. Both the client and the sandbox gateway build and parse frames with these
//! types, so the two sides can never disagree about the shape on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Topic of robot messages.
pub const TOPIC_ROBOT: &str = "/v1.0/im/bot/messages/get";
/// Topic of card button callbacks.
pub const TOPIC_CARD_CALLBACK: &str = "/v1.0/card/instances/callback";
/// SYSTEM topic: the server checks we are alive; echo `data` at once.
pub const TOPIC_PING: &str = "ping";
/// SYSTEM topic: the server will stop delivering on this connection.
pub const TOPIC_DISCONNECT: &str = "disconnect";

/// The three frame kinds the gateway pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FrameType {
    System,
    Event,
    Callback,
}

/// A frame pushed by the gateway. `headers` keeps unknown names; `data` is the raw
/// (double-encoded) JSON string as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frame {
    #[serde(default = "default_spec")]
    pub spec_version: String,
    #[serde(rename = "type")]
    pub kind: FrameType,
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub data: String,
}

fn default_spec() -> String {
    "1.0".to_string()
}

/// Why a text frame could not be understood. The message id is kept when it could be read,
/// so the caller can still answer with an error ACK.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct FrameError {
    pub message_id: Option<String>,
    pub reason: String,
}

impl Frame {
    /// Parses one TEXT frame. Headers whose values are not strings are kept as their JSON
    /// text, since the gateway has been seen to send numbers where strings are documented.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        // Every frame takes the typed pass; only one it refuses takes the slower pass through
        // a `Value`, which says what is wrong (or accepts an odd frame the typed pass did
        // not, e.g. one with a field given twice).
        match Frame::parse_typed(text) {
            Some(f) => Ok(f),
            None => Frame::parse_value(text),
        }
    }

    fn parse_typed(text: &str) -> Option<Frame> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            spec_version: Option<Lenient>,
            #[serde(rename = "type")]
            kind: Option<Lenient>,
            headers: Option<BTreeMap<String, Lenient>>,
            data: Option<Lenient>,
        }
        let w: Wire = serde_json::from_str(text).ok()?;
        let headers: BTreeMap<String, String> = w
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.text))
            .collect();
        let kind = match w.kind {
            Some(Lenient { text, string: true }) => match text.as_str() {
                "SYSTEM" => FrameType::System,
                "EVENT" => FrameType::Event,
                "CALLBACK" => FrameType::Callback,
                _ => return None,
            },
            _ => return None,
        };
        if !headers.contains_key("messageId") {
            return None;
        }
        let spec_version = match w.spec_version {
            Some(Lenient { text, string: true }) => text,
            _ => "1.0".to_string(),
        };
        Some(Frame {
            spec_version,
            kind,
            headers,
            data: w.data.map(|d| d.text).unwrap_or_default(),
        })
    }

    fn parse_value(text: &str) -> Result<Frame, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError {
            message_id: None,
            reason: format!("frame is not JSON: {e}"),
        })?;
        let Value::Object(mut obj) = value else {
            return Err(FrameError {
                message_id: None,
                reason: "frame is not a JSON object".into(),
            });
        };
        // The parts are moved out of the parsed value, not copied: `data` is most of a frame.
        let mut headers = BTreeMap::new();
        match obj.remove("headers") {
            None => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    headers.insert(k, s);
                }
            }
            Some(_) => {
                return Err(FrameError {
                    message_id: None,
                    reason: "frame headers are not an object".into(),
                })
            }
        }
        let message_id = headers.get("messageId").cloned();
        let fail = |reason: String| FrameError {
            message_id: message_id.clone(),
            reason,
        };
        if message_id.is_none() {
            return Err(fail("frame has no headers.messageId".into()));
        }
        let kind = match obj.get("type").and_then(Value::as_str) {
            Some("SYSTEM") => FrameType::System,
            Some("EVENT") => FrameType::Event,
            Some("CALLBACK") => FrameType::Callback,
            Some(other) => return Err(fail(format!("unknown frame type {other:?}"))),
            None => return Err(fail("frame has no type".into())),
        };
        let data = match obj.remove("data") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            // Tolerate a gateway that forgot to double-encode.
            Some(other) => other.to_string(),
        };
        let spec_version = match obj.remove("specVersion") {
            Some(Value::String(s)) => s,
            _ => "1.0".to_string(),
        };
        Ok(Frame {
            spec_version,
            kind,
            headers,
            data,
        })
    }

    /// Reads only `headers.messageId` of a frame, skipping everything else without building
    /// it: for answering a frame too large to parse with an error ACK. A header that is not
    /// a string is kept as its JSON text, as in [`Frame::parse`].
    pub fn message_id_of(text: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Headers {
            #[serde(rename = "messageId")]
            message_id: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Outline {
            headers: Option<Headers>,
        }
        let outline: Outline = serde_json::from_str(text).ok()?;
        match outline.headers?.message_id? {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The frame as the gateway writes it.
    pub fn to_text(&self) -> String {
        // Serializing a struct of strings and a map of strings cannot fail.
        serde_json::to_string(self).expect("frame serializes")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn message_id(&self) -> &str {
        self.header("messageId").unwrap_or("")
    }

    pub fn topic(&self) -> &str {
        self.header("topic").unwrap_or("")
    }

    /// Decodes the double-encoded `data` into a value.
    pub fn data_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.data)
    }

    /// Builds a frame the way the gateway does; used by the sandbox and by fixtures.
    pub fn new(kind: FrameType, topic: &str, message_id: &str, data: &Value) -> Frame {
        let mut headers = BTreeMap::new();
        headers.insert("contentType".into(), "application/json".into());
        headers.insert("messageId".into(), message_id.into());
        headers.insert("topic".into(), topic.into());
        Frame {
            spec_version: "1.0".into(),
            kind,
            headers,
            data: data.to_string(),
        }
    }
}

/// A frame field as text: a string as it came, any other JSON as its JSON text (`null` too;
/// an absent or null `data` is read as `Option::None` before this).
struct Lenient {
    text: String,
    /// Whether it came as a JSON string.
    string: bool,
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
        struct V;
        fn json<E>(v: Value) -> Result<Lenient, E> {
            Ok(Lenient {
                text: v.to_string(),
                string: false,
            })
        }
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Lenient, E> {
                self.visit_string(v.to_owned())
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Lenient, E> {
                Ok(Lenient {
                    text: v,
                    string: true,
                })
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Lenient, E> {
                json(v.into())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Lenient, E> {
                json(v.into())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Lenient, E> {
                json(v.into())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Lenient, E> {
                json(v.into())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Lenient, E> {
                json(Value::Null)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Lenient, A::Error> {
                json(Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(m),
                )?)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<Lenient, A::Error> {
                json(Value::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(s),
                )?)
            }
        }
        d.deserialize_any(V)
    }
}

/// Status codes of an ACK.
pub mod code {
    pub const OK: u16 = 200;
    pub const BAD_REQUEST: u16 = 400;
    pub const NOT_FOUND: u16 = 404;
    pub const FAILED: u16 = 500;
}

/// The answer to a frame, written on the connection the frame came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub code: u16,
    pub headers: AckHeaders,
    pub message: String,
    /// JSON encoded as a string, as the gateway expects.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckHeaders {
    pub message_id: String,
    pub content_type: String,
}

impl Ack {
    pub fn new(code: u16, message_id: &str, message: &str, data: &Value) -> Ack {
        Ack {
            code,
            headers: AckHeaders {
                message_id: message_id.to_string(),
                content_type: "application/json".into(),
            },
            message: message.to_string(),
            data: data.to_string(),
        }
    }

    /// Echo of a `ping`: same data, code 200.
    pub fn pong(frame: &Frame) -> Ack {
        Ack {
            code: code::OK,
            headers: AckHeaders {
                message_id: frame.message_id().to_string(),
                content_type: "application/json".into(),
            },
            message: "OK".into(),
            data: frame.data.clone(),
        }
    }

    /// ACK of a CALLBACK frame: `{"response": value}`.
    pub fn callback(message_id: &str, response: Value) -> Ack {
        Ack::new(
            code::OK,
            message_id,
            "OK",
            &serde_json::json!({ "response": response }),
        )
    }

    /// ACK of an EVENT frame: `{"status": "SUCCESS" | "LATER", "message": ...}`.
    pub fn event(message_id: &str, success: bool, message: &str) -> Ack {
        let status = if success { "SUCCESS" } else { "LATER" };
        Ack::new(
            code::OK,
            message_id,
            "OK",
            &serde_json::json!({ "status": status, "message": message }),
        )
    }

    pub fn error(code: u16, message_id: &str, message: &str) -> Ack {
        Ack::new(code, message_id, message, &serde_json::json!({}))
    }

    pub fn to_text(&self) -> String {
        // A struct of strings and an integer always serializes.
        serde_json::to_string(self).expect("ack serializes")
    }

    pub fn parse(text: &str) -> Result<Ack, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLBACK: &str = r#"{"specVersion":"1.0","type":"CALLBACK","headers":{"appId":"a1","connectionId":"c1","contentType":"application/json","messageId":"212ca9d7_974_1898c159aa6_1783b","time":"1690362102194","topic":"/v1.0/im/bot/messages/get","someNewHeader":"kept"},"data":"{\"msgId\":\"m1\",\"msgtype\":\"text\",\"text\":{\"content\":\" hello\"}}"}"#;

    #[test]
    fn parses_callback_and_keeps_unknown_headers() {
        let f = Frame::parse(CALLBACK).unwrap();
        assert_eq!(f.kind, FrameType::Callback);
        assert_eq!(f.topic(), TOPIC_ROBOT);
        assert_eq!(f.message_id(), "212ca9d7_974_1898c159aa6_1783b");
        assert_eq!(f.header("someNewHeader"), Some("kept"));
        assert_eq!(f.data_json().unwrap()["text"]["content"], " hello");
    }

    #[test]
    fn error_keeps_message_id_when_readable() {
        let e =
            Frame::parse(r#"{"type":"NOPE","headers":{"messageId":"x"},"data":"{}"}"#).unwrap_err();
        assert_eq!(e.message_id.as_deref(), Some("x"));
        assert!(e.reason.contains("NOPE"));
        let e = Frame::parse("not json").unwrap_err();
        assert!(e.message_id.is_none());
    }

    #[test]
    fn typed_and_value_passes_read_frames_alike() {
        let frames = [
            CALLBACK,
            r#"{"type":"EVENT","headers":{"messageId":7,"flag":true,"n":null,"o":{"a":[1]}},"data":{"x":1}}"#,
            r#"{"specVersion":2,"type":"SYSTEM","headers":{"messageId":"p"},"data":null}"#,
            r#"{"type":"SYSTEM","headers":{"messageId":"p"}}"#,
        ];
        for text in frames {
            let typed = Frame::parse_typed(text).expect("typed pass");
            assert_eq!(typed, Frame::parse_value(text).unwrap(), "{text}");
        }
        // What the typed pass refuses goes to the value pass for its reason.
        for text in [
            r#"{"type":"SYSTEM","headers":{}}"#,
            r#"{"type":"NOPE","headers":{"messageId":"x"}}"#,
            r#"{"type":1,"headers":{"messageId":"x"}}"#,
            r#"{"type":"SYSTEM","headers":[1]}"#,
            "[]",
        ] {
            assert!(Frame::parse_typed(text).is_none(), "{text}");
            assert!(Frame::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn message_id_of_reads_only_the_header() {
        assert_eq!(
            Frame::message_id_of(CALLBACK).as_deref(),
            Some("212ca9d7_974_1898c159aa6_1783b")
        );
        // The rest need not make a valid frame.
        let odd = r#"{"type":"NOPE","data":{"x":[1,2]},"headers":{"messageId":7}}"#;
        assert_eq!(Frame::message_id_of(odd).as_deref(), Some("7"));
        assert_eq!(Frame::message_id_of(r#"{"headers":{}}"#), None);
        assert_eq!(Frame::message_id_of("not json"), None);
        assert_eq!(Frame::message_id_of(r#"{"headers":"x"}"#), None);
    }

    #[test]
    fn pong_echoes_data() {
        let ping = Frame::new(
            FrameType::System,
            TOPIC_PING,
            "p1",
            &serde_json::json!({"opaque": "123-dsfs"}),
        );
        let ack: Value = serde_json::from_str(&Ack::pong(&ping).to_text()).unwrap();
        assert_eq!(ack["code"], 200);
        assert_eq!(ack["headers"]["messageId"], "p1");
        assert_eq!(ack["data"], r#"{"opaque":"123-dsfs"}"#);
    }
}
