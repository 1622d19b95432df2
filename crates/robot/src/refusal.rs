//! The refusals a real DingTalk account gives ([`Refusal`], read by the reply client from
//! DingTalk's bodies), each turned into one clear sentence that names the robot element,
//! the config field involved and the fix ([`explain`]), and said once per robot instance
//! ([`Refusals`]): a missing permission refuses every answer the same way, and the log
//! should say so once, not once a message.
//!
//! What the robot does meanwhile is decided elsewhere: cards that are refused give way to a
//! markdown reply through the session webhook (`robot`), a rate limit backs off and
//! coalesces updates (`throttle`), refused credentials back off long (`jitnode-stream`).
//! `jitnode doctor` prints the same sentences.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jitnode_dingtalk_wire::{Permission, Refusal};
use serde::Serialize;

use crate::config::{CardMode, RobotConfig};
use crate::throttle::{Retry, RetryHint};

/// A rate limit backs off; a refusal that only a change of setup fixes is not retried
/// within the answer; anything else is retried at the next slot.
impl RetryHint for jitnode_stream::ReplyError {
    fn retry(&self) -> Retry {
        match self.refusal() {
            Some(r) if r.is_transient() => Retry::Backoff,
            Some(Refusal::SessionExpired) | None => Retry::Next,
            Some(_) => Retry::Never,
        }
    }
}

/// The config file of a robot element, as a user finds it.
pub fn config_file(robot: &str) -> String {
    format!("elements/{}/config.json", robot.replace('.', "/"))
}

/// What each permission is for, in words.
fn purpose(p: &Permission) -> &'static str {
    match p {
        Permission::CardInstanceWrite => "create, deliver and update cards",
        Permission::CardStreamingWrite => "stream the answer into an AI card",
        Permission::RobotSendMessage => "the robot sends messages and standard cards",
        Permission::Other(_) => "a call the robot makes",
    }
}

/// The one sentence for `refusal`, met while doing `during` (e.g. "the thinking card").
/// It names the element and its config file, the config field, and the fix.
pub fn explain(refusal: &Refusal, robot: &str, config: &RobotConfig, during: &str) -> String {
    let file = config_file(robot);
    let mode = config.card.mode.as_str();
    match refusal {
        Refusal::AuthFailed => format!(
            "{robot}: DingTalk refused the credentials of clientId {id} ({during}: authFailed). \
             Config: clientId / clientSecret in {file} (DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET). \
             Fix: copy Client ID and Client Secret from the developer console (凭证与基础信息), \
             without spaces, and publish an app version (an unpublished app's credentials are refused). \
             Retrying every few minutes, not faster.",
            id = config.client_id
        ),
        Refusal::PermissionDenied { permissions } => {
            let names: Vec<&str> = permissions.iter().map(Permission::as_str).collect();
            let uses: Vec<String> = permissions
                .iter()
                .map(|p| format!("{p} ({})", purpose(p)))
                .collect();
            format!(
                "{robot}: DingTalk refused {during}: the app lacks permission {} \
                 (Forbidden.AccessDenied.AccessTokenPermissionDenied). \
                 Config: card.mode \"{mode}\" in {file} (DINGTALK_CARD_MODE) needs {}. \
                 Fix: grant {} in the developer console (权限管理), then publish a new app version. \
                 Until then answers go out as markdown messages.",
                names.join(", "),
                uses.join(", "),
                names.join(" and ")
            )
        }
        Refusal::TemplateUnpublished => format!(
            "{robot}: DingTalk refused {during}: card template {tpl} is not published \
             (param.templateUnpublished). Config: card.templateId in {file} \
             (DINGTALK_CARD_TEMPLATE_ID), card.mode \"{mode}\". Fix: publish the template for \
             this app in the card builder (卡片平台), or set card.mode to \"ai\" \
             (DINGTALK_CARD_MODE=ai: DingTalk's public AI card, nothing to publish). \
             Until then answers go out as markdown messages.",
            tpl = config.card.template_id.as_deref().unwrap_or("(none)")
        ),
        Refusal::RobotNotFound => format!(
            "{robot}: DingTalk refused {during}: no published robot with robotCode {code} \
             (resource.not.found: robot 不存在). Config: robotCode in {file} (defaults to \
             clientId). Fix: add the robot capability to the app in Stream mode, publish the \
             robot and an app version; set robotCode if the robot's code differs from the Client ID. \
             Until then answers go out as markdown messages.",
            code = config.robot_code
        ),
        Refusal::RateLimited => format!(
            "{robot}: DingTalk rate limited {during} (HTTP 429 or Forbidden.AccessDenied.QpsLimitForApi). \
             Config: card.minIntervalMs ({interval} ms) and fallbackAfterFailures ({failures}) in {file}. \
             The robot backs off and sends only the latest text; after {failures} failures in a row \
             the answer goes out as a markdown message. Fix: raise card.minIntervalMs, or ask \
             DingTalk for a higher API quota (it is per app).",
            interval = config.card.min_interval.as_millis(),
            failures = config.fallback_after_failures
        ),
        Refusal::SessionExpired => {
            let card = match config.card.mode {
                CardMode::Standard => "standard cards",
                CardMode::Template | CardMode::Ai => "AI cards",
            };
            format!(
                "{robot}: DingTalk refused {during}: the session webhook has expired (errcode 300001; \
                 it lives about 90 minutes). Config: none (DingTalk sets the lifetime); answers in \
                 {card} (card.mode \"{mode}\" in {file}) do not depend on it. Fix: nothing to \
                 configure; the user's next message brings a fresh webhook."
            )
        }
    }
}

/// One refusal as the robot's `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    pub refusal: Refusal,
    /// The sentence of [`explain`] (for the first time it was met).
    pub message: String,
    /// How often it was met.
    pub count: u64,
}

/// The refusals one robot instance has met, each explained once.
#[derive(Debug, Default)]
pub struct Refusals {
    seen: Mutex<BTreeMap<String, Seen>>,
}

impl Refusals {
    /// Counts `refusal`; on its first time logs (and returns) its sentence, an error (a
    /// warning for a rate limit or an expired webhook, which fix themselves). Later times
    /// are debug lines.
    pub fn note(
        &self,
        refusal: &Refusal,
        robot: &str,
        config: &RobotConfig,
        during: &str,
    ) -> Option<String> {
        // One key per kind, and per permission: granting one leaves the other to say.
        let key = match refusal {
            Refusal::PermissionDenied { permissions } => {
                let names: Vec<&str> = permissions.iter().map(Permission::as_str).collect();
                format!("permissionDenied:{}", names.join(","))
            }
            other => other.name().to_string(),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = seen.get_mut(&key) {
            s.count += 1;
            tracing::debug!(
                robot,
                refusal = refusal.name(),
                count = s.count,
                "{during}: refused again"
            );
            return None;
        }
        let message = explain(refusal, robot, config, during);
        match refusal {
            Refusal::RateLimited | Refusal::SessionExpired => tracing::warn!("{message}"),
            _ => tracing::error!("{message}"),
        }
        seen.insert(
            key,
            Seen {
                refusal: refusal.clone(),
                message: message.clone(),
                count: 1,
            },
        );
        Some(message)
    }

    /// Every refusal met, in key order.
    pub fn list(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config as config;

    #[test]
    fn each_sentence_names_element_field_and_fix() {
        let all = [
            (
                Refusal::AuthFailed,
                "clientSecret",
                "publish an app version",
            ),
            (
                Refusal::PermissionDenied {
                    permissions: vec![Permission::CardStreamingWrite],
                },
                "card.mode",
                "grant Card.Streaming.Write",
            ),
            (
                Refusal::TemplateUnpublished,
                "card.templateId",
                "publish the template",
            ),
            (
                Refusal::RobotNotFound,
                "robotCode",
                "add the robot capability",
            ),
            (
                Refusal::RateLimited,
                "card.minIntervalMs",
                "raise card.minIntervalMs",
            ),
            (Refusal::SessionExpired, "Config: none", "next message"),
        ];
        for (r, field, fix) in all {
            let s = explain(
                &r,
                "imRobots.helpdesk",
                &config("template"),
                "the thinking card",
            );
            assert!(s.starts_with("imRobots.helpdesk: "), "{s}");
            assert!(s.contains("elements/imRobots/helpdesk/config.json"), "{s}");
            assert!(
                s.contains(field) && s.contains("Fix:") && s.contains(fix),
                "{s}"
            );
            assert!(!s.contains("s3cr3t"), "{s}");
        }
    }

    #[test]
    fn each_refusal_is_said_once_and_counted() {
        let r = Refusals::default();
        let c = config("ai");
        let denied = |p| Refusal::PermissionDenied {
            permissions: vec![p],
        };
        assert!(r
            .note(&denied(Permission::CardStreamingWrite), "b", &c, "x")
            .is_some());
        assert!(r
            .note(&denied(Permission::CardStreamingWrite), "b", &c, "x")
            .is_none());
        // Another permission is another sentence.
        assert!(r
            .note(&denied(Permission::CardInstanceWrite), "b", &c, "x")
            .is_some());
        let list = r.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list.iter().map(|s| s.count).sum::<u64>(), 3);
    }
}
