//! What DingTalk's refusals mean: an OpenAPI error body (`{"requestid", "code", "message"}`,
//! plus `accessdenieddetail` on a missing permission) or a session webhook's `errcode`, read
//! into one [`Refusal`] that a robot can explain and act on.
//!
//! The codes are the ones real accounts answer, as reported in public issue threads (the
//! sources are in `docs/wire-refusals.md`; the bodies are committed as fixtures under
//! `tests/fixtures/refusals/`). A body this module does not know is no refusal (`None`): the
//! caller keeps the plain HTTP error.

use serde::{Deserialize, Serialize};

use crate::api::{
    ApiError, ERRCODE_SESSION_EXPIRED, PATH_CARD_INSTANCES, PATH_CARD_STREAMING,
    PATH_CREATE_AND_DELIVER, PATH_STANDARD_SEND, PATH_STANDARD_UPDATE,
};

/// `POST /v1.0/gateway/connections/open` with credentials DingTalk does not accept.
pub const CODE_AUTH_FAILED: &str = "authFailed";
/// `POST /v1.0/oauth2/accessToken` with credentials DingTalk does not accept.
pub const CODE_ID_OR_SECRET_NOT_FOUND: &str = "invalidParameter.idOrSecret.notFound";
/// HTTP 403: the app lacks a permission; `accessdenieddetail.requiredScopes` names it.
pub const CODE_PERMISSION_DENIED: &str = "Forbidden.AccessDenied.AccessTokenPermissionDenied";
/// HTTP 400: the card template is not published for this app.
pub const CODE_TEMPLATE_UNPUBLISHED: &str = "param.templateUnpublished";
/// HTTP 400 with message "robot 不存在": the robot code names no published robot.
pub const CODE_RESOURCE_NOT_FOUND: &str = "resource.not.found";
/// HTTP 403: too many calls of one API (per app, or per app and API).
pub const CODE_QPS_LIMIT: &str = "Forbidden.AccessDenied.QpsLimitForApi";
pub const CODE_QPS_LIMIT_APP: &str = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi";
/// The older APIs' errcode for the same limit.
pub const ERRCODE_QPS_LIMIT: i64 = 90018;

/// A permission an app is granted in the developer console (权限管理).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Permission {
    /// `Card.Instance.Write`: create, deliver and update cards.
    CardInstanceWrite,
    /// `Card.Streaming.Write`: stream text into an AI card.
    CardStreamingWrite,
    /// `qyapi_robot_sendmsg`: the robot sends messages (standard interactive cards).
    RobotSendMessage,
    /// Any other permission DingTalk names.
    Other(String),
}

impl Permission {
    pub fn as_str(&self) -> &str {
        match self {
            Permission::CardInstanceWrite => "Card.Instance.Write",
            Permission::CardStreamingWrite => "Card.Streaming.Write",
            Permission::RobotSendMessage => "qyapi_robot_sendmsg",
            Permission::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Permission {
        match s {
            "Card.Instance.Write" => Permission::CardInstanceWrite,
            "Card.Streaming.Write" => Permission::CardStreamingWrite,
            "qyapi_robot_sendmsg" => Permission::RobotSendMessage,
            other => Permission::Other(other.to_string()),
        }
    }

    /// The permission a robot's OpenAPI call (by path) needs; `None` for paths that need none.
    pub fn for_path(path: &str) -> Option<Permission> {
        match path {
            PATH_CREATE_AND_DELIVER | PATH_CARD_INSTANCES => Some(Permission::CardInstanceWrite),
            PATH_CARD_STREAMING => Some(Permission::CardStreamingWrite),
            PATH_STANDARD_SEND | PATH_STANDARD_UPDATE => Some(Permission::RobotSendMessage),
            _ => None,
        }
    }
}

impl From<String> for Permission {
    fn from(s: String) -> Permission {
        Permission::parse(&s)
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.as_str().to_string()
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kind of refusal a real account gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Refusal {
    /// The credentials are refused: a wrong Client ID or Secret, or an app with no
    /// published version (its credentials do not work yet).
    AuthFailed,
    /// The app lacks these permissions (never empty when read from a body).
    #[serde(rename_all = "camelCase")]
    PermissionDenied { permissions: Vec<Permission> },
    /// The custom card template is not published.
    TemplateUnpublished,
    /// The robot code names no robot: the robot is not added to the app or not published.
    RobotNotFound,
    /// Too many calls: back off and retry later.
    RateLimited,
    /// The session webhook has expired (it lives about 90 minutes).
    SessionExpired,
}

impl Refusal {
    /// Reads an OpenAPI error answer. `path` is the API called: a permission refusal whose
    /// body names no permission gets the one that API needs.
    pub fn of_api(status: u16, body: &ApiError, path: &str) -> Option<Refusal> {
        let code = body.code.as_str();
        match code {
            CODE_AUTH_FAILED | CODE_ID_OR_SECRET_NOT_FOUND => return Some(Refusal::AuthFailed),
            CODE_PERMISSION_DENIED => {
                let mut permissions: Vec<Permission> = body
                    .accessdenieddetail
                    .iter()
                    .flat_map(|d| d.required_scopes.iter())
                    .map(|s| Permission::parse(s.trim()))
                    .collect();
                if permissions.is_empty() {
                    permissions.extend(Permission::for_path(path));
                }
                return Some(Refusal::PermissionDenied { permissions });
            }
            CODE_TEMPLATE_UNPUBLISHED => return Some(Refusal::TemplateUnpublished),
            CODE_QPS_LIMIT | CODE_QPS_LIMIT_APP => return Some(Refusal::RateLimited),
            _ => {}
        }
        if code == ERRCODE_QPS_LIMIT.to_string() || status == 429 {
            return Some(Refusal::RateLimited);
        }
        if code == CODE_RESOURCE_NOT_FOUND && body.message.to_ascii_lowercase().contains("robot") {
            return Some(Refusal::RobotNotFound);
        }
        if status == 401 && path.ends_with("/connections/open") {
            return Some(Refusal::AuthFailed);
        }
        None
    }

    /// Reads a session webhook's (or an older API's) `errcode`.
    pub fn of_errcode(errcode: i64) -> Option<Refusal> {
        match errcode {
            ERRCODE_SESSION_EXPIRED => Some(Refusal::SessionExpired),
            ERRCODE_QPS_LIMIT => Some(Refusal::RateLimited),
            _ => None,
        }
    }

    /// A short stable name, for logs and the robot's status.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::AuthFailed => "authFailed",
            Refusal::PermissionDenied { .. } => "permissionDenied",
            Refusal::TemplateUnpublished => "templateUnpublished",
            Refusal::RobotNotFound => "robotNotFound",
            Refusal::RateLimited => "rateLimited",
            Refusal::SessionExpired => "sessionExpired",
        }
    }

    /// Whether the same call can succeed later without anyone changing the setup.
    pub fn is_transient(&self) -> bool {
        matches!(self, Refusal::RateLimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str, message: &str) -> ApiError {
        ApiError {
            requestid: "r".into(),
            code: code.into(),
            message: message.into(),
            accessdenieddetail: None,
        }
    }

    #[test]
    fn codes_read_into_refusals() {
        let none = "";
        assert_eq!(
            Refusal::of_api(
                401,
                &body("authFailed", "鉴权失败"),
                "/v1.0/gateway/connections/open"
            ),
            Some(Refusal::AuthFailed)
        );
        assert_eq!(
            Refusal::of_api(
                400,
                &body("param.templateUnpublished", "x"),
                PATH_CREATE_AND_DELIVER
            ),
            Some(Refusal::TemplateUnpublished)
        );
        assert_eq!(
            Refusal::of_api(400, &body("resource.not.found", "robot 不存在"), none),
            Some(Refusal::RobotNotFound)
        );
        assert_eq!(
            Refusal::of_api(400, &body("resource.not.found", "card not found"), none),
            None
        );
        assert_eq!(
            Refusal::of_api(429, &body("", ""), none),
            Some(Refusal::RateLimited)
        );
        assert_eq!(
            Refusal::of_api(403, &body(CODE_QPS_LIMIT_APP, ""), none),
            Some(Refusal::RateLimited)
        );
        assert_eq!(
            Refusal::of_api(500, &body("unknownError", "未知错误"), none),
            None
        );
        // A 403 that names no permission gets the one its API needs.
        assert_eq!(
            Refusal::of_api(403, &body(CODE_PERMISSION_DENIED, ""), PATH_CARD_STREAMING),
            Some(Refusal::PermissionDenied {
                permissions: vec![Permission::CardStreamingWrite]
            })
        );
        assert_eq!(Refusal::of_errcode(300001), Some(Refusal::SessionExpired));
        assert_eq!(Refusal::of_errcode(0), None);
        assert!(Refusal::RateLimited.is_transient() && !Refusal::AuthFailed.is_transient());
    }

    #[test]
    fn permissions_round_trip_as_their_console_codes() {
        for p in [
            Permission::CardInstanceWrite,
            Permission::CardStreamingWrite,
            Permission::RobotSendMessage,
            Permission::Other("Contact.User.Read".into()),
        ] {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(s, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Permission>(&s).unwrap(), p);
        }
        assert_eq!(
            Permission::for_path(PATH_STANDARD_SEND),
            Some(Permission::RobotSendMessage)
        );
        let r: Refusal = serde_json::from_str(
            r#"{"kind": "permissionDenied", "permissions": ["Card.Instance.Write"]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Refusal::PermissionDenied {
                permissions: vec![Permission::CardInstanceWrite]
            }
        );
    }
}
