//! Each refusal a real account gives, injected through the control API and answered with
//! DingTalk's body, read back by the real reply client (`jitnode-stream`) into its
//! [`Refusal`].

mod common;

use std::time::Duration;

use common::*;
use jitnode_dingtalk_wire::api::{self, Method, ParamMap};
use jitnode_sandbox::{Permission, Refusal, RefusalFault, Sandbox};
use jitnode_stream::reply::{http_client, OpenApi, ReplyError, SessionWebhook};
use jitnode_stream::ClientConfig;
use serde_json::{json, Value};

fn openapi(base: &str) -> OpenApi {
    let mut c = ClientConfig::new(APP, SECRET);
    c.openapi_endpoint = base.to_string();
    OpenApi::new(http_client(Duration::from_secs(5)), &c)
}

/// A sandbox that plays `fault`, and a reply client of [`APP`] on it.
async fn refusing(fault: RefusalFault) -> (Sandbox, OpenApi) {
    let sb = sandbox(quiet()).await;
    sb.refuse(fault).unwrap();
    let api = openapi(&sb.base_url());
    (sb, api)
}

/// A call that must be refused.
async fn probe(api: &OpenApi, path: &str) -> ReplyError {
    probe_result(api, path).await.unwrap_err()
}

/// An update of a card that does not exist (or the delivery of a new one): answered with a
/// parameter error (or success) when nothing refuses it first.
async fn probe_result(api: &OpenApi, path: &str) -> Result<Value, ReplyError> {
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"outTrackId": id, "cardBizId": id, "cardData": {"cardParamMap": {}},
                      "guid": "g", "key": "msgContent", "content": "", "cardTemplateId": "tpl.schema",
                      "openSpaceId": "dtv1.card//IM_ROBOT.u1", "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}});
    let method = if path == api::PATH_CREATE_AND_DELIVER || path == api::PATH_STANDARD_SEND {
        Method::Post
    } else {
        Method::Put
    };
    api.call(method, path, &body).await
}

#[tokio::test]
async fn each_permission_is_refused_on_the_calls_that_need_it() {
    let (sb, api) = refusing(RefusalFault::missing(Permission::CardStreamingWrite)).await;
    let e = probe(&api, api::PATH_CARD_STREAMING).await;
    assert_eq!(e.status(), Some(403), "{e}");
    assert_eq!(
        e.refusal(),
        Some(Refusal::PermissionDenied {
            permissions: vec![Permission::CardStreamingWrite]
        })
    );
    // Other APIs are not refused for it: their answer is the probe's parameter error.
    let e = probe(&api, api::PATH_CARD_INSTANCES).await;
    assert_eq!((e.status(), e.refusal()), (Some(400), None), "{e}");

    sb.clear_refusals();
    for (p, path) in [
        (Permission::CardInstanceWrite, api::PATH_CREATE_AND_DELIVER),
        (Permission::CardInstanceWrite, api::PATH_CARD_INSTANCES),
        (Permission::RobotSendMessage, api::PATH_STANDARD_SEND),
        (Permission::RobotSendMessage, api::PATH_STANDARD_UPDATE),
    ] {
        sb.refuse(RefusalFault::missing(p.clone()).times(1))
            .unwrap();
        let e = probe(&api, path).await;
        assert_eq!(
            e.refusal(),
            Some(Refusal::PermissionDenied {
                permissions: vec![p]
            }),
            "{path}: {e}"
        );
        // Spent after one call.
        let again = probe_result(&api, path).await;
        assert!(
            again.as_ref().err().and_then(ReplyError::refusal).is_none(),
            "{again:?}"
        );
    }
    let t = sb.transcript();
    assert!(t
        .entries
        .iter()
        .any(|e| e.error.as_deref() == Some("Forbidden.AccessDenied.AccessTokenPermissionDenied")));
    sb.shutdown().await;
}

#[tokio::test]
async fn template_robot_and_rate_refusals_have_their_codes() {
    let (sb, api) = refusing(RefusalFault::new(Refusal::TemplateUnpublished)).await;
    let e = probe(&api, api::PATH_CREATE_AND_DELIVER).await;
    assert_eq!(e.refusal(), Some(Refusal::TemplateUnpublished), "{e}");
    // A refused call changes nothing.
    assert!(sb.transcript().cards.is_empty());
    // DingTalk's public AI card template is always published.
    let mut params = ParamMap::new();
    params.insert("flowStatus".into(), "1".into());
    let ai = json!({"cardTemplateId": api::ai_card::TEMPLATE_ID, "outTrackId": "ai1",
                    "cardData": {"cardParamMap": params}, "callbackType": "STREAM",
                    "openSpaceId": "dtv1.card//IM_ROBOT.u1",
                    "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}});
    api.call(Method::Post, api::PATH_CREATE_AND_DELIVER, &ai)
        .await
        .unwrap();
    sb.clear_refusals();

    sb.refuse(RefusalFault::new(Refusal::RobotNotFound).times(1))
        .unwrap();
    let e = probe(&api, api::PATH_CARD_STREAMING).await;
    assert_eq!(e.refusal(), Some(Refusal::RobotNotFound), "{e}");

    for status in [403, 429] {
        sb.refuse(
            RefusalFault::new(Refusal::RateLimited)
                .with_status(status)
                .times(1),
        )
        .unwrap();
        let e = probe(&api, api::PATH_CARD_STREAMING).await;
        assert_eq!(e.status(), Some(status));
        assert_eq!(e.refusal(), Some(Refusal::RateLimited), "{e}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn auth_failed_refuses_right_credentials_and_expired_sessions_say_300001() {
    let (sb, api) = refusing(RefusalFault::new(Refusal::AuthFailed)).await;
    let e = api.access_token().await.unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::AuthFailed), "{e}");
    assert!(!e.to_string().contains(SECRET));
    let (status, v) = open(&sb.base_url(), APP, SECRET, &["/v1.0/im/bot/messages/get"]).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("authFailed")));
    sb.clear_refusals();

    sb.refuse(RefusalFault::new(Refusal::SessionExpired).times(1))
        .unwrap();
    let sb_url = sb.base_url();
    let hook = SessionWebhook::new(http_client(Duration::from_secs(5)), vec![sb_url.clone()]);
    // A live session, refused as expired once.
    let _ws = connect(&sb).await;
    let posted = sb
        .post_message(&jitnode_sandbox::PostMessage::text(APP, "hi"))
        .unwrap_or_else(|e| panic!("{e}"));
    let e = hook
        .send_text(&posted.session_webhook, "hello", None)
        .await
        .unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::SessionExpired), "{e}");
    hook.send_text(&posted.session_webhook, "hello", None)
        .await
        .unwrap();
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_faults_are_refused_by_the_control_api() {
    let sb = sandbox(quiet()).await;
    let post = |body: Value| {
        let url = format!("{}/control/faults/refusals", sb.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(json!({"refusal": {"kind": "rateLimited"}, "status": 429})).await,
        200
    );
    assert_eq!(
        post(json!({"refusal": {"kind": "rateLimited"}, "status": 500})).await,
        400
    );
    assert_eq!(
        post(json!({"refusal": {"kind": "permissionDenied", "permissions": []}})).await,
        400
    );
    assert_eq!(post(json!({"refusal": {"kind": "nonsense"}})).await, 400);
    assert!(sb
        .refuse(RefusalFault::new(Refusal::AuthFailed).with_status(429))
        .is_err());
    sb.shutdown().await;
}
