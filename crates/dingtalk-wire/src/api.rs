//! The HTTP side of DingTalk as values: the OpenAPI paths a robot calls, and the request and
//! response bodies of session webhooks, the access token, standard cards, advanced (template
//! and AI) cards, card streaming and the card callback's ACK response
//! (dingtalk-stream.md §5–§6).
//!
//! Every body serializes to exactly the JSON DingTalk documents, field for field; the tests
//! in `tests/api.rs` pin that against committed fixtures. Bodies that carry a secret hide it
//! from `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `POST`: exchange `appKey` / `appSecret` for an access token.
pub const PATH_ACCESS_TOKEN: &str = "/v1.0/oauth2/accessToken";
/// `POST`: send a standard card.
pub const PATH_STANDARD_SEND: &str = "/v1.0/im/v1.0/robot/interactiveCards/send";
/// `PUT`: replace a standard card.
pub const PATH_STANDARD_UPDATE: &str = "/v1.0/im/robots/interactiveCards";
/// `POST`: create and deliver a template card.
pub const PATH_CREATE_AND_DELIVER: &str = "/v1.0/card/instances/createAndDeliver";
/// `PUT`: update a template card's variables.
pub const PATH_CARD_INSTANCES: &str = "/v1.0/card/instances";
/// `PUT`: stream text into a template card variable.
pub const PATH_CARD_STREAMING: &str = "/v1.0/card/streaming";

/// The header that carries the access token on every OpenAPI call.
pub const HEADER_ACCESS_TOKEN: &str = "x-acs-dingtalk-access-token";

/// Session webhook `errcode` of an expired session (answered with HTTP 200).
pub const ERRCODE_SESSION_EXPIRED: i64 = 300001;

/// `cardTemplateId` of a standard card.
pub const STANDARD_CARD_TEMPLATE: &str = "StandardCard";

/// `callbackType` that routes a template card's button clicks over Stream.
pub const CALLBACK_TYPE_STREAM: &str = "STREAM";

/// The HTTP methods of the card APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// What a robot sends DingTalk, one kind per endpoint (plus the callback ACK's card update).
/// The names are the ones the sandbox's transcript uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallKind {
    /// A session webhook reply.
    #[serde(rename = "webhook")]
    Webhook,
    /// `POST` [`PATH_STANDARD_SEND`].
    #[serde(rename = "card.send")]
    CardSend,
    /// `PUT` [`PATH_STANDARD_UPDATE`].
    #[serde(rename = "card.update")]
    CardUpdate,
    /// `POST` [`PATH_CREATE_AND_DELIVER`].
    #[serde(rename = "card.createAndDeliver")]
    CardCreateAndDeliver,
    /// `PUT` [`PATH_CARD_INSTANCES`].
    #[serde(rename = "card.instances.update")]
    CardInstancesUpdate,
    /// `PUT` [`PATH_CARD_STREAMING`].
    #[serde(rename = "card.streaming")]
    CardStreaming,
    /// The `response` of a card callback ACK that updated the card.
    #[serde(rename = "card.callbackResponse")]
    CardCallbackResponse,
}

impl CallKind {
    pub const ALL: [CallKind; 7] = [
        CallKind::Webhook,
        CallKind::CardSend,
        CallKind::CardUpdate,
        CallKind::CardCreateAndDeliver,
        CallKind::CardInstancesUpdate,
        CallKind::CardStreaming,
        CallKind::CardCallbackResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Webhook => "webhook",
            CallKind::CardSend => "card.send",
            CallKind::CardUpdate => "card.update",
            CallKind::CardCreateAndDeliver => "card.createAndDeliver",
            CallKind::CardInstancesUpdate => "card.instances.update",
            CallKind::CardStreaming => "card.streaming",
            CallKind::CardCallbackResponse => "card.callbackResponse",
        }
    }

    pub fn parse(s: &str) -> Option<CallKind> {
        CallKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Method and path of the OpenAPI call; `None` for the webhook and the callback ACK.
    pub fn endpoint(self) -> Option<(Method, &'static str)> {
        match self {
            CallKind::CardSend => Some((Method::Post, PATH_STANDARD_SEND)),
            CallKind::CardUpdate => Some((Method::Put, PATH_STANDARD_UPDATE)),
            CallKind::CardCreateAndDeliver => Some((Method::Post, PATH_CREATE_AND_DELIVER)),
            CallKind::CardInstancesUpdate => Some((Method::Put, PATH_CARD_INSTANCES)),
            CallKind::CardStreaming => Some((Method::Put, PATH_CARD_STREAMING)),
            CallKind::Webhook | CallKind::CardCallbackResponse => None,
        }
    }

    /// The card call at `method` `path`, if it is one.
    pub fn of_endpoint(method: Method, path: &str) -> Option<CallKind> {
        CallKind::ALL
            .into_iter()
            .find(|k| k.endpoint() == Some((method, path)))
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of interactive card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    /// `StandardCard`: the whole card JSON in every call; clicks go to HTTP callbacks only.
    Standard,
    /// A template (advanced or AI) card: variables in a `cardParamMap`; clicks over Stream.
    Advanced,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::Standard => "standard",
            CardKind::Advanced => "advanced",
        }
    }
}

/// The AI card's state variable `flowStatus` ("1".."5" on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FlowStatus {
    /// "1": spinning.
    #[serde(rename = "1")]
    Processing,
    /// "2": text is arriving.
    #[serde(rename = "2")]
    Inputting,
    /// "3"
    #[serde(rename = "3")]
    Finished,
    /// "4"
    #[serde(rename = "4")]
    Executing,
    /// "5"
    #[serde(rename = "5")]
    Failed,
}

impl FlowStatus {
    pub const ALL: [FlowStatus; 5] = [
        FlowStatus::Processing,
        FlowStatus::Inputting,
        FlowStatus::Finished,
        FlowStatus::Executing,
        FlowStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Processing => "1",
            FlowStatus::Inputting => "2",
            FlowStatus::Finished => "3",
            FlowStatus::Executing => "4",
            FlowStatus::Failed => "5",
        }
    }

    pub fn parse(s: &str) -> Option<FlowStatus> {
        FlowStatus::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Finished or failed: the card no longer changes by itself.
    pub fn is_terminal(self) -> bool {
        matches!(self, FlowStatus::Finished | FlowStatus::Failed)
    }
}

/// Whom a session webhook reply @-mentions. `atUserIds` is always written (empty when
/// nobody), `isAtAll` only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct At {
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_at_all: bool,
}

impl At {
    pub fn user(staff_id: impl Into<String>) -> At {
        At {
            at_user_ids: vec![staff_id.into()],
            is_at_all: false,
        }
    }
}

/// `{"content": ...}`. A robot message that quotes another (a reply in a group) adds
/// `isReplyMsg: true` and `repliedMsg`, the quoted message (`msgType`, `content`, `msgId`,
/// `senderId`, `createdAt`): see docs/wire-messages.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TextContent {
    pub content: String,
    #[serde(rename = "isReplyMsg", skip_serializing_if = "std::ops::Not::not")]
    pub is_reply_msg: bool,
    #[serde(rename = "repliedMsg", skip_serializing_if = "Option::is_none")]
    pub replied_msg: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Markdown {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub text: String,
}

/// The body of a session webhook post (§5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum WebhookMessage {
    Text {
        text: TextContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<At>,
    },
    Markdown {
        markdown: Markdown,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<At>,
    },
}

impl WebhookMessage {
    pub fn text(content: impl Into<String>, at: Option<At>) -> WebhookMessage {
        WebhookMessage::Text {
            text: TextContent {
                content: content.into(),
                ..TextContent::default()
            },
            at,
        }
    }

    pub fn markdown(title: impl Into<String>, text: impl Into<String>, at: Option<At>) -> Self {
        WebhookMessage::Markdown {
            markdown: Markdown {
                title: title.into(),
                text: text.into(),
            },
            at,
        }
    }

    /// The words shown: the text content or the markdown text.
    pub fn shown_text(&self) -> &str {
        match self {
            WebhookMessage::Text { text, .. } => &text.content,
            WebhookMessage::Markdown { markdown, .. } => &markdown.text,
        }
    }
}

/// A session webhook's answer: success only with `errcode` 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WebhookResponse {
    #[serde(default)]
    pub errcode: Option<i64>,
    #[serde(default)]
    pub errmsg: String,
}

impl WebhookResponse {
    pub fn ok() -> WebhookResponse {
        WebhookResponse {
            errcode: Some(0),
            errmsg: "ok".into(),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.errcode == Some(0)
    }
}

/// `POST` [`PATH_ACCESS_TOKEN`]. Debug hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenRequest {
    pub app_key: String,
    pub app_secret: String,
}

crate::debug_redacted!(AccessTokenRequest { app_key }..);

/// The answer to [`AccessTokenRequest`]. Debug hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenResponse {
    pub access_token: String,
    /// Seconds.
    pub expire_in: u64,
}

crate::debug_redacted!(AccessTokenResponse { expire_in }..);

/// An OpenAPI error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApiError {
    #[serde(default)]
    pub requestid: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// On a missing permission (`Forbidden.AccessDenied.AccessTokenPermissionDenied`): the
    /// permissions the call needs (see [`crate::refusal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessdenieddetail: Option<AccessDeniedDetail>,
}

/// `accessdenieddetail` of an [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccessDeniedDetail {
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

/// Where a card goes: a group or one staff member's chat with the robot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardTarget<'a> {
    /// `openConversationId`.
    Group(&'a str),
    /// `singleChatReceiver` by staffId.
    User(&'a str),
}

impl CardTarget<'_> {
    /// The `openSpaceId` of a template card delivery.
    pub fn open_space_id(self) -> String {
        match self {
            CardTarget::Group(cid) => format!("dtv1.card//IM_GROUP.{cid}"),
            CardTarget::User(staff) => format!("dtv1.card//IM_ROBOT.{staff}"),
        }
    }
}

/// `singleChatReceiver`, itself a JSON document inside a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleChatReceiver {
    pub user_id: String,
}

/// One entry of `sendOptions.atUserListJson`: a person to @-mention on a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mention {
    #[serde(default)]
    pub nick_name: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SendOptions {
    /// A JSON list of [`Mention`]s, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_user_list_json: Option<String>,
}

/// `POST` [`PATH_STANDARD_SEND`] (§5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardCardSend {
    pub card_template_id: String,
    pub robot_code: String,
    pub card_biz_id: String,
    /// The card JSON, as a string.
    pub card_data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_conversation_id: Option<String>,
    /// A [`SingleChatReceiver`] as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_chat_receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_options: Option<SendOptions>,
}

impl StandardCardSend {
    /// A standard card for `target`, mentioning `mention` when given.
    pub fn new(
        robot_code: &str,
        card_biz_id: &str,
        card: &serde_json::Value,
        target: CardTarget<'_>,
        mention: Option<&Mention>,
    ) -> StandardCardSend {
        let (open_conversation_id, single_chat_receiver) = match target {
            CardTarget::Group(cid) => (Some(cid.to_string()), None),
            CardTarget::User(staff) => (
                None,
                Some(to_json_string(&SingleChatReceiver {
                    user_id: staff.to_string(),
                })),
            ),
        };
        StandardCardSend {
            card_template_id: STANDARD_CARD_TEMPLATE.into(),
            robot_code: robot_code.into(),
            card_biz_id: card_biz_id.into(),
            card_data: card.to_string(),
            open_conversation_id,
            single_chat_receiver,
            send_options: mention.map(|m| SendOptions {
                at_user_list_json: Some(to_json_string(&[m])),
            }),
        }
    }
}

/// `PUT` [`PATH_STANDARD_UPDATE`]: the whole card again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardCardUpdate {
    pub card_biz_id: String,
    /// The card JSON, as a string.
    pub card_data: String,
}

impl StandardCardUpdate {
    pub fn new(card_biz_id: &str, card: &serde_json::Value) -> StandardCardUpdate {
        StandardCardUpdate {
            card_biz_id: card_biz_id.into(),
            card_data: card.to_string(),
        }
    }
}

/// A `cardParamMap`: every value a string, as the card API requires.
pub type ParamMap = BTreeMap<String, String>;

/// `{"cardParamMap": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CardData {
    #[serde(default)]
    pub card_param_map: ParamMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CardUpdateOptions {
    #[serde(default)]
    pub update_card_data_by_key: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_private_data_by_key: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSpaceModel {
    pub support_forward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeliverModel {
    pub robot_code: String,
    /// staffId -> nick of the people to @-mention.
    #[serde(default)]
    pub at_user_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotDeliverModel {
    pub space_type: String,
}

/// `POST` [`PATH_CREATE_AND_DELIVER`] (§5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAndDeliver {
    pub card_template_id: String,
    pub out_track_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_type: Option<String>,
    pub card_data: CardData,
    pub open_space_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_group_open_space_model: Option<OpenSpaceModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_group_open_deliver_model: Option<GroupDeliverModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_robot_open_space_model: Option<OpenSpaceModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_robot_open_deliver_model: Option<RobotDeliverModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id_type: Option<u8>,
}

impl CreateAndDeliver {
    /// A template card with Stream callbacks for `target`, mentioning `mention` in groups.
    pub fn new(
        template_id: &str,
        out_track_id: &str,
        robot_code: &str,
        target: CardTarget<'_>,
        mention: Option<&Mention>,
        params: ParamMap,
    ) -> CreateAndDeliver {
        let mut body = CreateAndDeliver {
            card_template_id: template_id.into(),
            out_track_id: out_track_id.into(),
            callback_type: Some(CALLBACK_TYPE_STREAM.into()),
            card_data: CardData {
                card_param_map: params,
            },
            open_space_id: target.open_space_id(),
            im_group_open_space_model: None,
            im_group_open_deliver_model: None,
            im_robot_open_space_model: None,
            im_robot_open_deliver_model: None,
            user_id_type: Some(1),
        };
        let forward = Some(OpenSpaceModel {
            support_forward: true,
        });
        match target {
            CardTarget::Group(_) => {
                body.im_group_open_space_model = forward;
                body.im_group_open_deliver_model = Some(GroupDeliverModel {
                    robot_code: robot_code.into(),
                    at_user_ids: mention
                        .map(|m| (m.user_id.clone(), m.nick_name.clone()))
                        .into_iter()
                        .collect(),
                });
            }
            CardTarget::User(_) => {
                body.im_robot_open_space_model = forward;
                body.im_robot_open_deliver_model = Some(RobotDeliverModel {
                    space_type: "IM_ROBOT".into(),
                });
            }
        }
        body
    }
}

/// `PUT` [`PATH_CARD_INSTANCES`]: updates the given variables, by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardInstanceUpdate {
    pub out_track_id: String,
    pub card_data: CardData,
    #[serde(default)]
    pub card_update_options: CardUpdateOptions,
}

impl CardInstanceUpdate {
    pub fn by_key(out_track_id: &str, params: ParamMap) -> CardInstanceUpdate {
        CardInstanceUpdate {
            out_track_id: out_track_id.into(),
            card_data: CardData {
                card_param_map: params,
            },
            card_update_options: CardUpdateOptions {
                update_card_data_by_key: true,
                update_private_data_by_key: Some(true),
            },
        }
    }
}

/// `PUT` [`PATH_CARD_STREAMING`]: the full text so far of one AI card variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardStreaming {
    pub out_track_id: String,
    /// New for every call: the API treats a repeated guid as the same update.
    pub guid: String,
    pub key: String,
    pub content: String,
    #[serde(default)]
    pub is_full: bool,
    #[serde(default)]
    pub is_finalize: bool,
    #[serde(default)]
    pub is_error: bool,
}

/// The `response` of a card callback ACK that updates the card (§6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallbackResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_update_options: Option<CardUpdateOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_data: Option<CardData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_private_data: Option<CardData>,
}

impl CallbackResponse {
    /// Merges `params` into the card's variables, by key.
    pub fn update_by_key(params: ParamMap) -> CallbackResponse {
        CallbackResponse {
            card_update_options: Some(CardUpdateOptions {
                update_card_data_by_key: true,
                update_private_data_by_key: None,
            }),
            card_data: Some(CardData {
                card_param_map: params,
            }),
            user_private_data: None,
        }
    }
}

/// A body as a JSON value. The bodies here are maps of strings, numbers and booleans, which
/// always serialize.
pub fn to_value<T: Serialize>(body: &T) -> serde_json::Value {
    serde_json::to_value(body).expect("wire bodies serialize")
}

/// A value as a JSON document inside a string (`cardData`, `singleChatReceiver`, ...).
pub fn to_json_string<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("wire bodies serialize")
}

/// DingTalk's public AI card template, the one the official SDKs use; usable without
/// authoring a template (dingtalk-stream.md §5.5).
pub mod ai_card {
    use serde::{Deserialize, Serialize};

    /// Its `cardTemplateId`.
    pub const TEMPLATE_ID: &str = "382e4302-551d-4880-bf29-a30acfab2e71.schema";
    /// The variable the answer is streamed into (`PUT /v1.0/card/streaming` key).
    pub const KEY_CONTENT: &str = "msgContent";
    /// The card state, `flowStatus` "1".."5".
    pub const KEY_FLOW_STATUS: &str = "flowStatus";
    /// A JSON string of [`SysObject`]: title and buttons.
    pub const KEY_SYS: &str = "sys_full_json_obj";
    /// The only variables the template has; anything else is not rendered.
    pub const VARIABLES: [&str; 3] = [KEY_FLOW_STATUS, KEY_CONTENT, KEY_SYS];

    /// The decoded `sys_full_json_obj`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SysObject {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub msg_title: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub msg_buttons: Vec<Button>,
    }

    /// One button under the answer. With `request: true` a click is sent back over Stream
    /// as a card callback whose `cardPrivateData.actionIds` is `[id]`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Button {
        pub text: String,
        /// `blue` (primary) or `gray`.
        #[serde(default)]
        pub color: String,
        pub id: String,
        #[serde(default)]
        pub request: bool,
    }

    impl SysObject {
        /// The string value of `sys_full_json_obj`.
        pub fn to_param(&self) -> String {
            // Serializing plain strings and bools into JSON cannot fail.
            serde_json::to_string(self).expect("SysObject serializes")
        }

        /// Reads `sys_full_json_obj`; `None` when it is not this shape.
        pub fn from_param(s: &str) -> Option<SysObject> {
            serde_json::from_str(s).ok()
        }
    }
}
