//! The refusals of [`RefusalFault`]: which calls each one hits, and DingTalk's answer to
//! them, written here literally (the sandbox does not borrow the client's reading of
//! them, so it stays an independent oracle).

use axum::http::StatusCode;
use jitnode_dingtalk_wire::api::{
    ai_card, PATH_CARD_INSTANCES, PATH_CARD_STREAMING, PATH_CREATE_AND_DELIVER, PATH_STANDARD_SEND,
    PATH_STANDARD_UPDATE,
};
use serde_json::{json, Value};

use crate::state::State;
use crate::types::{Permission, Refusal, RefusalFault};

/// A call that refusals can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call<'a> {
    OpenConnection,
    AccessToken,
    /// A card API, by path, with its request body.
    Card {
        path: &'static str,
        body: &'a Value,
    },
    SessionWebhook,
}

/// The answer to a refused call.
#[derive(Debug)]
pub(crate) struct Refused {
    pub status: StatusCode,
    /// `code`, or the `errcode` as text, for the transcript.
    pub code: String,
    pub body: Value,
}

fn permission_of(path: &str) -> Option<&'static str> {
    match path {
        PATH_CREATE_AND_DELIVER | PATH_CARD_INSTANCES => Some("Card.Instance.Write"),
        PATH_CARD_STREAMING => Some("Card.Streaming.Write"),
        PATH_STANDARD_SEND | PATH_STANDARD_UPDATE => Some("qyapi_robot_sendmsg"),
        _ => None,
    }
}

fn api(status: StatusCode, code: &str, message: &str) -> Refused {
    Refused {
        status,
        code: code.to_string(),
        body: json!({"requestid": uuid::Uuid::new_v4().to_string().to_uppercase(),
                     "code": code, "message": message}),
    }
}

/// The answer of `fault` to `call`, when it hits it.
fn answer(fault: &RefusalFault, call: Call<'_>) -> Option<Refused> {
    match (&fault.refusal, call) {
        (Refusal::AuthFailed, Call::OpenConnection) => {
            Some(api(StatusCode::UNAUTHORIZED, "authFailed", "鉴权失败"))
        }
        (Refusal::AuthFailed, Call::AccessToken) => Some(api(
            StatusCode::BAD_REQUEST,
            "invalidParameter.idOrSecret.notFound",
            "clientId或者clientSecret错误",
        )),
        (Refusal::PermissionDenied { permissions }, Call::Card { path, .. }) => {
            let needed = permission_of(path)?;
            if !permissions.iter().any(|p| p.as_str() == needed) {
                return None;
            }
            let mut r = api(
                StatusCode::FORBIDDEN,
                "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                &format!("应用尚未开通所需的权限：[{needed}]，https://open.dingtalk.com/document/orgapp-server/add-api-permission"),
            );
            r.body["accessdenieddetail"] = json!({"requiredScopes": [needed]});
            Some(r)
        }
        (Refusal::TemplateUnpublished, Call::Card { path, body }) => {
            let template = body.get("cardTemplateId").and_then(Value::as_str);
            // DingTalk's own public template is always published.
            (path == PATH_CREATE_AND_DELIVER && template != Some(ai_card::TEMPLATE_ID)).then(|| {
                api(
                    StatusCode::BAD_REQUEST,
                    "param.templateUnpublished",
                    "param.templateUnpublished",
                )
            })
        }
        (Refusal::RobotNotFound, Call::Card { .. }) => Some(api(
            StatusCode::BAD_REQUEST,
            "resource.not.found",
            "robot 不存在",
        )),
        (Refusal::RateLimited, Call::Card { .. }) => Some(match fault.status {
            Some(429) => api(
                StatusCode::TOO_MANY_REQUESTS,
                "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                "请求过于频繁",
            ),
            _ => api(
                StatusCode::FORBIDDEN,
                "Forbidden.AccessDenied.QpsLimitForApi",
                "请求过于频繁，请稍后再试",
            ),
        }),
        (Refusal::SessionExpired, Call::SessionWebhook) => Some(Refused {
            // Webhooks answer 200; the errcode says what happened.
            status: StatusCode::OK,
            code: "300001".into(),
            body: json!({"errcode": 300001, "errmsg": "session 不存在"}),
        }),
        _ => None,
    }
}

/// The first injected refusal that hits `call`, counted down (and dropped when spent).
pub(crate) fn take(st: &mut State, call: Call<'_>) -> Option<Refused> {
    let (i, refused) = st
        .refusals
        .iter()
        .enumerate()
        .find_map(|(i, f)| answer(f, call).map(|r| (i, r)))?;
    match st.refusals[i].count {
        Some(n) if n <= 1 => {
            st.refusals.remove(i);
        }
        Some(n) => st.refusals[i].count = Some(n - 1),
        None => {}
    }
    Some(refused)
}

/// Whether a fault can be injected as given.
pub(crate) fn check(fault: &RefusalFault) -> Result<(), &'static str> {
    match (&fault.refusal, fault.status) {
        (Refusal::PermissionDenied { permissions }, _) if permissions.is_empty() => {
            Err("permissionDenied needs at least one permission")
        }
        (Refusal::PermissionDenied { permissions }, _)
            if permissions
                .iter()
                .any(|p| matches!(p, Permission::Other(_))) =>
        {
            Err("permissions are Card.Instance.Write, Card.Streaming.Write or qyapi_robot_sendmsg")
        }
        (Refusal::RateLimited, Some(s)) if s != 403 && s != 429 => {
            Err("a rate limit's status is 403 or 429")
        }
        (Refusal::RateLimited, _) | (_, None) => Ok(()),
        (_, Some(_)) => Err("status is for rateLimited only"),
    }
}

impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
