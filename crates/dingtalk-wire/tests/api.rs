//! The OpenAPI bodies against committed fixtures (`tests/fixtures/api/`, the shapes of
//! dingtalk-stream.md §5–§6): each fixture reads into its type and writes back to the same
//! JSON, and the builders make exactly the fixture. A change to a body's shape fails here.

use jitnode_dingtalk_wire::api::{
    self, AccessTokenRequest, AccessTokenResponse, ApiError, CallKind, CallbackResponse,
    CardInstanceUpdate, CardKind, CardStreaming, CardTarget, CreateAndDeliver, FlowStatus, Mention,
    Method, ParamMap, StandardCardSend, StandardCardUpdate, WebhookMessage, WebhookResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads the fixture as `T`, writes it back, and expects the same JSON.
fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(name: &str) -> T {
    let raw = fixture(name);
    let typed: T = serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(api::to_value(&typed), raw, "{name} round trip");
    typed
}

fn card() -> Value {
    json!({"config": {"autoLayout": true, "enableForward": true},
           "header": {"title": {"type": "text", "text": "Why?"}},
           "contents": [{"type": "markdown", "text": "Because.", "id": "c1_answer"}]})
}

fn li() -> Mention {
    Mention {
        nick_name: "Li".into(),
        user_id: "0326".into(),
    }
}

fn params(pairs: &[(&str, &str)]) -> ParamMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn webhook_bodies() {
    let t: WebhookMessage = round_trip("webhook_text.json");
    assert_eq!(
        t,
        WebhookMessage::text("Only text, please.", Some(api::At::user("0326")))
    );
    assert_eq!(t.shown_text(), "Only text, please.");
    let m: WebhookMessage = round_trip("webhook_markdown.json");
    assert_eq!(m.shown_text(), "@0326 **bold**");
    assert_eq!(
        api::to_value(&WebhookMessage::markdown(
            "Answer",
            "@0326 **bold**",
            Some(api::At::user("0326"))
        )),
        fixture("webhook_markdown.json")
    );
    // Nobody to mention: `atUserIds` stays, empty; no `at` at all when not given.
    assert_eq!(
        api::to_value(&WebhookMessage::text("x", Some(api::At::default())))["at"],
        json!({"atUserIds": []})
    );
    assert!(api::to_value(&WebhookMessage::text("x", None))
        .get("at")
        .is_none());
    let ok: WebhookResponse = round_trip("webhook_ok.json");
    assert!(ok.succeeded());
    assert_eq!(ok, WebhookResponse::ok());
    let expired: WebhookResponse = round_trip("webhook_expired.json");
    assert!(!expired.succeeded());
    assert_eq!(expired.errcode, Some(api::ERRCODE_SESSION_EXPIRED));
    let none: WebhookResponse = serde_json::from_value(json!({"code": "x"})).unwrap();
    assert!(!none.succeeded());
}

#[test]
fn token_and_error_bodies_hide_secrets_in_debug() {
    let req: AccessTokenRequest = round_trip("access_token_request.json");
    assert_eq!(req.app_key, "dingapp");
    let shown = format!("{req:?}");
    assert!(
        shown.contains("dingapp") && !shown.contains("s3cret"),
        "{shown}"
    );
    let resp: AccessTokenResponse = round_trip("access_token_response.json");
    assert_eq!(resp.expire_in, 7200);
    assert!(!format!("{resp:?}").contains("tok-1"));
    let e: ApiError = round_trip("api_error.json");
    assert_eq!(e.code, "Forbidden.AccessDenied.QpsLimit");
}

#[test]
fn standard_card_bodies() {
    let group: StandardCardSend = round_trip("standard_send_group.json");
    assert_eq!(
        group,
        StandardCardSend::new(
            "dingapp",
            "c1",
            &card(),
            CardTarget::Group("cid1"),
            Some(&li())
        )
    );
    let user: StandardCardSend = round_trip("standard_send_user.json");
    assert_eq!(
        user,
        StandardCardSend::new("dingapp", "c1", &card(), CardTarget::User("0326"), None)
    );
    let update: StandardCardUpdate = round_trip("standard_update.json");
    assert_eq!(update, StandardCardUpdate::new("c1", &card()));
    let data: Value = serde_json::from_str(&update.card_data).unwrap();
    assert_eq!(data, card());
}

#[test]
fn template_card_bodies() {
    let p = params(&[("flowStatus", "1"), ("question", "Why?")]);
    let group: CreateAndDeliver = round_trip("create_and_deliver_group.json");
    assert_eq!(
        group,
        CreateAndDeliver::new(
            "tpl.schema",
            "t1",
            "dingapp",
            CardTarget::Group("cid1"),
            Some(&li()),
            p.clone()
        )
    );
    let user: CreateAndDeliver = round_trip("create_and_deliver_user.json");
    assert_eq!(
        user,
        CreateAndDeliver::new(
            "tpl.schema",
            "t1",
            "dingapp",
            CardTarget::User("0326"),
            None,
            p
        )
    );
    let update: CardInstanceUpdate = round_trip("card_instances_update.json");
    assert_eq!(
        update,
        CardInstanceUpdate::by_key("t1", params(&[("flowStatus", "2")]))
    );
    let s: CardStreaming = round_trip("card_streaming.json");
    assert!(s.is_full && !s.is_finalize && !s.is_error);
    let r: CallbackResponse = round_trip("callback_response.json");
    assert_eq!(
        r,
        CallbackResponse::update_by_key(params(&[("feedback", "helpful"), ("stage", "thanked")]))
    );
    // A value that is not a string is not a card variable.
    assert!(serde_json::from_value::<CardInstanceUpdate>(
        json!({"outTrackId": "t1", "cardData": {"cardParamMap": {"flowStatus": 3}}})
    )
    .is_err());
}

#[test]
fn closed_sets_have_their_wire_names() {
    for f in FlowStatus::ALL {
        assert_eq!(FlowStatus::parse(f.as_str()), Some(f));
        assert_eq!(api::to_value(&f), json!(f.as_str()));
    }
    assert_eq!(FlowStatus::Failed.as_str(), "5");
    assert!(FlowStatus::Finished.is_terminal() && !FlowStatus::Inputting.is_terminal());
    assert_eq!(FlowStatus::parse("6"), None);
    for k in CallKind::ALL {
        assert_eq!(CallKind::parse(k.as_str()), Some(k));
        assert_eq!(api::to_value(&k), json!(k.as_str()));
        if let Some((method, path)) = k.endpoint() {
            assert_eq!(CallKind::of_endpoint(method, path), Some(k));
        }
    }
    assert_eq!(
        CallKind::of_endpoint(Method::Put, api::PATH_CARD_STREAMING),
        Some(CallKind::CardStreaming)
    );
    assert_eq!(
        CallKind::of_endpoint(Method::Post, api::PATH_CARD_STREAMING),
        None
    );
    assert_eq!(api::to_value(&CardKind::Advanced), json!("advanced"));
    assert_eq!(CardKind::Standard.as_str(), "standard");
}

/// The refusals real accounts give (`tests/fixtures/refusals/`, sources in
/// docs/wire-refusals.md): each body reads into its [`Refusal`].
#[test]
fn real_refusal_bodies_read_into_their_refusal() {
    use jitnode_dingtalk_wire::{Permission, Refusal};
    let refusal = |name: &str| {
        let path = format!(
            "{}/tests/fixtures/refusals/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(errcode) = v.get("errcode") {
            return Refusal::of_errcode(errcode.as_i64().unwrap());
        }
        let body: ApiError = serde_json::from_value(v["body"].clone()).unwrap();
        // The body reads back to the same JSON: nothing of it is lost.
        assert_eq!(api::to_value(&body), v["body"], "{name}");
        Refusal::of_api(
            v["status"].as_u64().unwrap() as u16,
            &body,
            v["path"].as_str().unwrap(),
        )
    };
    let denied = |p| {
        Some(Refusal::PermissionDenied {
            permissions: vec![p],
        })
    };
    for (name, want) in [
        ("auth_failed_open.json", Some(Refusal::AuthFailed)),
        ("auth_failed_token.json", Some(Refusal::AuthFailed)),
        (
            "permission_streaming.json",
            denied(Permission::CardStreamingWrite),
        ),
        (
            "permission_instance.json",
            denied(Permission::CardInstanceWrite),
        ),
        (
            "permission_robot_send.json",
            denied(Permission::RobotSendMessage),
        ),
        (
            "template_unpublished.json",
            Some(Refusal::TemplateUnpublished),
        ),
        ("robot_not_found.json", Some(Refusal::RobotNotFound)),
        ("rate_limited_403.json", Some(Refusal::RateLimited)),
        ("rate_limited_429.json", Some(Refusal::RateLimited)),
        ("session_expired.json", Some(Refusal::SessionExpired)),
    ] {
        assert_eq!(refusal(name), want, "{name}");
    }
}
