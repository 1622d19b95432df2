//! Access tokens, session webhooks, card endpoints, card callbacks, and the HTTP control API.

mod common;

use std::time::Duration;

use common::*;
use jitnode_dingtalk_wire::frame::Ack;
use jitnode_sandbox::{AckRecord, Click, PostMessage, Sandbox, SandboxError};
use serde_json::{json, Value};

async fn token(base: &str) -> String {
    let v = post_json(
        &format!("{base}/v1.0/oauth2/accessToken"),
        &json!({"appKey": APP, "appSecret": SECRET}),
    )
    .await;
    assert_eq!(v["expireIn"], 7200);
    v["accessToken"].as_str().unwrap().to_string()
}

async fn call(method: &str, url: &str, tok: Option<&str>, body: Value) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut r = match method {
        "PUT" => c.put(url),
        _ => c.post(url),
    };
    if let Some(t) = tok {
        r = r.header("x-acs-dingtalk-access-token", t);
    }
    let resp = r.json(&body).send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

fn card_json(text: &str) -> String {
    json!({"config": {"autoLayout": true}, "contents": [{"type": "markdown", "text": text, "id": "m1"}]}).to_string()
}

#[tokio::test]
async fn access_token_checks_credentials() {
    let sb = sandbox(quiet()).await;
    let (s, v) = call(
        "POST",
        &format!("{}/v1.0/oauth2/accessToken", sb.base_url()),
        None,
        json!({"appKey": APP, "appSecret": "bad"}),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(v["code"], "authFailed");
    assert!(!token(&sb.base_url()).await.is_empty());
    sb.shutdown().await;
}

/// Updates standard card `biz` to show `text` at `upd`; the answer's status.
async fn update_standard(upd: &str, tok: &str, biz: &str, text: &str) -> u16 {
    let body = json!({"cardBizId": biz, "cardData": card_json(text)});
    call("PUT", upd, Some(tok), body).await.0
}

#[tokio::test]
async fn standard_card_needs_token_and_fields_and_keeps_state() {
    let sb = sandbox(quiet()).await;
    let base = sb.base_url();
    let send = format!("{base}/v1.0/im/v1.0/robot/interactiveCards/send");
    let body = json!({"cardTemplateId": "StandardCard", "robotCode": APP, "cardBizId": "biz1",
        "cardData": card_json("thinking"), "openConversationId": "cidG1"});
    let (s, _) = call("POST", &send, None, body.clone()).await;
    assert_eq!(s, 401, "no token");
    let (s, _) = call("POST", &send, Some("made-up"), body.clone()).await;
    assert_eq!(s, 401, "unknown token");
    let tok = token(&base).await;
    let mut missing = body.clone();
    missing.as_object_mut().unwrap().remove("cardBizId");
    let (s, v) = call("POST", &send, Some(&tok), missing).await;
    assert_eq!(s, 400, "{v}");
    let mut both = body.clone();
    both["singleChatReceiver"] = json!("{\"userId\":\"u1\"}");
    let (s, _) = call("POST", &send, Some(&tok), both).await;
    assert_eq!(s, 400, "only one receiver");
    let (s, v) = call("POST", &send, Some(&tok), body.clone()).await;
    assert_eq!(s, 200, "{v}");
    let upd = format!("{base}/v1.0/im/robots/interactiveCards");
    assert_eq!(update_standard(&upd, &tok, "biz1", "answer").await, 200);
    assert_eq!(update_standard(&upd, &tok, "nope", "x").await, 400);
    let t = sb.transcript();
    let card = &t.cards["biz1"];
    assert_eq!(
        card.card_data.as_ref().unwrap()["contents"][0]["text"],
        "answer"
    );
    assert_eq!(card.conversation_id.as_deref(), Some("cidG1"));
    assert_eq!(card.updates, 1);
    // Every call is in the transcript, rejected ones too (the 401s never reached it).
    let kinds: Vec<(&str, u16)> = t
        .entries
        .iter()
        .map(|e| (e.kind.as_str(), e.status))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("card.send", 400),
            ("card.send", 400),
            ("card.send", 200),
            ("card.update", 200),
            ("card.update", 400)
        ]
    );
    sb.expire_access_tokens();
    assert_eq!(
        update_standard(&upd, &tok, "biz1", "y").await,
        401,
        "expired token"
    );
    sb.shutdown().await;
}

async fn create_ai_card(sb: &Sandbox, tok: &str, track: &str) {
    let (s, v) = call(
        "POST",
        &format!("{}/v1.0/card/instances/createAndDeliver", sb.base_url()),
        Some(tok),
        json!({"cardTemplateId": "tpl.schema", "outTrackId": track, "callbackType": "STREAM",
            "cardData": {"cardParamMap": {"flowStatus": "1", "msgContent": ""}},
            "openSpaceId": "dtv1.card//IM_GROUP.cidG1",
            "imGroupOpenSpaceModel": {"supportForward": true},
            "imGroupOpenDeliverModel": {"robotCode": APP}, "userIdType": 1}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn advanced_card_update_and_streaming_state() {
    let sb = sandbox(quiet()).await;
    let base = sb.base_url();
    let tok = token(&base).await;
    let create = format!("{base}/v1.0/card/instances/createAndDeliver");
    let (s, _) = call("POST", &create, Some(&tok), json!({"cardTemplateId": "t", "outTrackId": "x",
        "cardData": {"cardParamMap": {"n": 1}}, "openSpaceId": "dtv1.card//IM_GROUP.c", "imGroupOpenDeliverModel": {"robotCode": APP}})).await;
    assert_eq!(s, 400, "cardParamMap values must be strings");
    let (s, _) = call(
        "POST",
        &create,
        Some(&tok),
        json!({"cardTemplateId": "t", "outTrackId": "x",
        "cardData": {"cardParamMap": {}}, "openSpaceId": "somewhere"}),
    )
    .await;
    assert_eq!(s, 400, "bad openSpaceId");
    create_ai_card(&sb, &tok, "card1").await;

    let stream = format!("{base}/v1.0/card/streaming");
    for (content, full, fin) in [
        ("Hel", true, false),
        ("Hello wor", true, false),
        ("Hello world", true, true),
    ] {
        let (s, v) = call(
            "PUT",
            &stream,
            Some(&tok),
            json!({"outTrackId": "card1", "guid": uuid(), "key": "msgContent",
            "content": content, "isFull": full, "isFinalize": fin, "isError": false}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, _) = call(
        "PUT",
        &stream,
        Some(&tok),
        json!({"outTrackId": "card1", "key": "msgContent", "content": "x"}),
    )
    .await;
    assert_eq!(s, 400, "guid required");
    let (s, _) = call("PUT", &format!("{base}/v1.0/card/instances"), Some(&tok), json!({"outTrackId": "card1",
        "cardData": {"cardParamMap": {"flowStatus": "3"}}, "cardUpdateOptions": {"updateCardDataByKey": true}})).await;
    assert_eq!(s, 200);
    let card = sb.transcript().cards["card1"].clone();
    assert_eq!(card.streams["msgContent"], "Hello world");
    assert!(card.finalized && !card.failed);
    assert_eq!(card.flow_status.as_deref(), Some("3"));
    assert!(
        card.card_param_map.contains_key("msgContent"),
        "merged by key"
    );
    // A follower reads only what is new since the seq it saw last.
    let all = sb.transcript().entries;
    let mark = all[all.len() - 3].seq;
    let fresh = sb.entries_after(mark);
    assert_eq!(fresh, all[all.len() - 2..].to_vec());
    assert!(sb.entries_after(sb.last_seq()).is_empty());
    create_ai_card(&sb, &tok, "card2").await;
    let open = sb.cards_where(|c| c.flow_status.as_deref() != Some("3"));
    assert_eq!(
        open.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["card2"]
    );
    sb.shutdown().await;
}

fn uuid() -> String {
    format!("{:x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn card_faults_answer_403_then_recover() {
    let sb = sandbox(quiet()).await;
    let tok = token(&sb.base_url()).await;
    create_ai_card(&sb, &tok, "c1").await;
    sb.fail_card_calls(403, Some(2));
    let stream = format!("{}/v1.0/card/streaming", sb.base_url());
    let body = json!({"outTrackId": "c1", "guid": "g", "key": "k", "content": "a", "isFull": true});
    assert_eq!(call("PUT", &stream, Some(&tok), body.clone()).await.0, 403);
    assert_eq!(call("PUT", &stream, Some(&tok), body.clone()).await.0, 403);
    assert_eq!(call("PUT", &stream, Some(&tok), body.clone()).await.0, 200);
    sb.fail_card_calls(503, None);
    for _ in 0..3 {
        assert_eq!(call("PUT", &stream, Some(&tok), body.clone()).await.0, 503);
    }
    sb.clear_card_fault();
    assert_eq!(call("PUT", &stream, Some(&tok), body).await.0, 200);
    let errors: Vec<Option<String>> = sb
        .transcript()
        .entries
        .iter()
        .map(|e| e.error.clone())
        .collect();
    assert_eq!(errors.iter().filter(|e| e.is_some()).count(), 5);
    sb.shutdown().await;
}

/// A click of [`APP`] with nothing in it on the card `track`.
async fn click_card(sb: &Sandbox, track: &str) -> Result<AckRecord, SandboxError> {
    sb.click(&Click {
        client_id: APP.into(),
        out_track_id: track.into(),
        ..Click::default()
    })
    .await
}

#[tokio::test]
async fn card_click_sends_callback_and_applies_response() {
    let sb = sandbox(quiet()).await;
    let tok = token(&sb.base_url()).await;
    create_ai_card(&sb, &tok, "c1").await;
    let mut ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    let mut params = serde_json::Map::new();
    params.insert("action".into(), json!("like"));
    let click = Click {
        client_id: APP.into(),
        out_track_id: "c1".into(),
        action_ids: vec!["btn1".into()],
        params,
        ..Click::default()
    };
    let robot = tokio::spawn(async move {
        let f = next_non_ping(&mut ws).await.unwrap();
        assert_eq!(f.topic(), "/v1.0/card/instances/callback");
        let d = f.data_json().unwrap();
        let content: Value = serde_json::from_str(d["content"].as_str().unwrap()).unwrap();
        assert_eq!(content["cardPrivateData"]["params"]["action"], "like");
        assert_eq!(d["outTrackId"], "c1");
        assert_eq!(d["type"], "actionCallback");
        assert!(d["extension"].is_string());
        let resp = json!({"cardUpdateOptions": {"updateCardDataByKey": true},
            "cardData": {"cardParamMap": {"status": "liked"}}});
        send(&mut ws, &Ack::callback(f.message_id(), resp).to_text()).await;
        ws
    });
    let ack = sb.click(&click).await.unwrap();
    assert!(ack.valid(), "{:?}", ack.problems);
    let _ws = robot.await.unwrap();
    let t = sb.transcript();
    assert_eq!(t.cards["c1"].card_param_map["status"], "liked");
    assert_eq!(t.entries.last().unwrap().kind, "card.callbackResponse");
    assert!(matches!(
        click_card(&sb, "nope").await,
        Err(SandboxError::UnknownCard(_))
    ));
    // A card created without callbackType STREAM sends no clicks over Stream.
    let (s, _) = call(
        "POST",
        &format!("{}/v1.0/card/instances/createAndDeliver", sb.base_url()),
        Some(&tok),
        json!({"cardTemplateId": "tpl.schema", "outTrackId": "http-card",
            "cardData": {"cardParamMap": {}}, "openSpaceId": "dtv1.card//IM_ROBOT.user001",
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(matches!(
        click_card(&sb, "http-card").await,
        Err(SandboxError::NotStreamCard { .. })
    ));
    sb.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn session_webhook_records_replies_and_expires() {
    let sb = sandbox(quiet()).await;
    let mut ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    let p = sb.post_message(&PostMessage::text(APP, "q")).unwrap();
    let _ = next_non_ping(&mut ws).await.unwrap();
    let hook = p.session_webhook.clone();
    let (s, v) = call(
        "POST",
        &hook,
        None,
        json!({"msgtype": "text", "text": {"content": "answer"}, "at": {"atUserIds": ["user001"]}}),
    )
    .await;
    assert_eq!((s, v["errcode"].clone()), (200, json!(0)));
    let (s, v) = call(
        "POST",
        &hook,
        None,
        json!({"msgtype": "markdown", "markdown": {"title": "t", "text": "**md**"}}),
    )
    .await;
    assert_eq!((s, v["errcode"].clone()), (200, json!(0)));
    let (_, v) = call("POST", &hook, None, json!({"msgtype": "text"})).await;
    assert_ne!(v["errcode"], 0, "text.content missing");
    tokio::time::advance(Duration::from_secs(90 * 60 + 1)).await;
    let (s, v) = call(
        "POST",
        &hook,
        None,
        json!({"msgtype": "text", "text": {"content": "late"}}),
    )
    .await;
    assert_eq!(s, 200, "DingTalk answers 200");
    assert_eq!(v["errcode"], 300001);
    let t = sb.transcript();
    assert_eq!(
        t.replies(),
        vec!["answer".to_string(), "**md**".to_string()]
    );
    assert_eq!(
        t.entries[0].conversation_id.as_deref(),
        Some(p.conversation_id.as_str())
    );
    assert_eq!(t.entries.last().unwrap().error.as_deref(), Some("300001"));
    sb.shutdown().await;
}

#[tokio::test]
async fn expire_webhooks_fault() {
    let sb = sandbox(quiet()).await;
    let _ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    let p = sb.post_message(&PostMessage::text(APP, "q")).unwrap();
    sb.expire_webhooks();
    let (_, v) = call(
        "POST",
        &p.session_webhook,
        None,
        json!({"msgtype": "text", "text": {"content": "a"}}),
    )
    .await;
    assert_eq!(v["errcode"], 300001);
    sb.shutdown().await;
}

/// POSTs `body` to the control API at `path` and answers the response.
async fn control_post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn control_http_api_mirrors_the_rust_methods() {
    let sb = Sandbox::start(quiet()).await.unwrap();
    let base = sb.base_url();
    let r = control_post(
        &base,
        "/control/apps",
        &json!({"clientId": APP, "clientSecret": SECRET}),
    )
    .await;
    assert!(r.status().is_success());
    let r = control_post(
        &base,
        "/control/messages",
        &json!({"clientId": APP, "text": "x"}),
    )
    .await;
    assert_eq!(r.status(), 400, "no connection yet");
    assert!(r.text().await.unwrap().contains("no open connection"));
    let mut ws = connect(&sb).await;
    wait_linked(&sb, 1).await;
    let posted = post_json(&format!("{base}/control/messages"),
        &json!({"clientId": APP, "text": "hi", "group": true, "conversationId": "cidX", "atUsers": ["u2"]}))
        .await;
    let f = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(f.message_id(), posted["messageId"].as_str().unwrap());
    let d = f.data_json().unwrap();
    assert_eq!(d["atUsers"].as_array().unwrap().len(), 2, "robot and u2");
    ack_ok(&mut ws, &f).await;
    let ack = get_json(&format!(
        "{base}/control/wait-ack?messageId={}&timeoutMs=5000",
        f.message_id()
    ))
    .await;
    assert_eq!(ack["code"], 200);
    let acks = get_json(&format!("{base}/control/acks")).await;
    assert_eq!(acks.as_array().unwrap().len(), 1);
    let (_, v) = call(
        "POST",
        posted["sessionWebhook"].as_str().unwrap(),
        None,
        json!({"msgtype": "text", "text": {"content": "yo"}}),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    let t = get_json(&format!("{base}/control/transcript")).await;
    assert_eq!(t["entries"][0]["text"], "yo");
    let r = control_post(&base, "/control/faults/cards", &json!({"status": 200})).await;
    assert_eq!(r.status(), 400, "only 403/5xx");
    let conns = get_json(&format!("{base}/control/connections")).await;
    assert_eq!(conns.as_array().unwrap().len(), 1);
    let r = control_post(
        &base,
        "/control/faults/disconnect",
        &json!({"clientId": APP}),
    )
    .await;
    assert!(r.status().is_success());
    let f = next_non_ping(&mut ws).await.unwrap();
    assert_eq!(f.topic(), "disconnect");
    sb.shutdown().await;
}
