//! The `builtin:dingTalkStream` loader: brings each `imRobots.dingTalkStreamType` instance
//! to life with its own Stream connection, reports whether that connection is up into the
//! host's readiness, and stops it with its answers finalized.

use std::sync::Arc;
use std::time::Duration;

use jitnode_dingtalk_wire::Refusal;
use jitnode_host::{
    BoxError, BoxFuture, ElementRuntime, FunctionError, FunctionSpec, LoadContext, Loader,
    ReadinessReporter,
};
use jitnode_stream::{Client, ClientConfig, Status};
use serde_json::{json, Value};

use crate::config::RobotConfig;
use crate::records::RecordsAt;
use crate::robot::{Robot, RobotHandler, FINALIZE_BUDGET};

/// The name to register the loader under: Types say `"backendBundleEntry":
/// "builtin:dingTalkStream"`.
pub const LOADER_NAME: &str = "dingTalkStream";

/// The folder, inside the app directory, that holds the app's own store.
pub use jitnode_host::DATA_DIR;

/// Why a robot instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{element}: config.json is missing (a robot needs clientId, clientSecret and agent)")]
    NoConfig { element: String },
    #[error("{element}: config.json: {source}")]
    Config {
        element: String,
        #[source]
        source: crate::config::ConfigError,
    },
    #[error("{element}: {source}")]
    Records {
        element: String,
        #[source]
        source: crate::records::RecordsError,
    },
}

/// The loader (register it with `registry.register(LOADER_NAME, loader())`).
pub fn loader() -> DingTalkStreamLoader {
    DingTalkStreamLoader
}

/// See [`loader`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DingTalkStreamLoader;

/// The Stream client settings of a robot config: its endpoints, and session webhooks
/// allowed on the origins (scheme, host and port) of both endpoints (the sandbox serves
/// both on one origin).
pub fn client_config(config: &RobotConfig) -> ClientConfig {
    let mut c = ClientConfig::new(config.client_id.clone(), config.client_secret());
    c.openapi_endpoint = config.open_api_endpoint.clone();
    c.oapi_endpoint = config.oapi_endpoint.clone();
    let mut origins = Vec::new();
    for base in [&config.oapi_endpoint, &config.open_api_endpoint] {
        if let Some(o) = jitnode_stream::origin_of(base) {
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
    }
    c.webhook_origins = origins;
    c.user_agent = format!("jitnode-robot/{}", env!("CARGO_PKG_VERSION"));
    c
}

impl Loader for DingTalkStreamLoader {
    fn config_schema<'a>(
        &'a self,
        _type_el: &'a jitnode_host::Element,
    ) -> BoxFuture<'a, Result<Option<Arc<jitnode_host::ConfigSchema>>, BoxError>> {
        Box::pin(async { Ok(Some(crate::config::config_schema())) })
    }

    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(async move {
            let element = cx.full_name().to_string();
            let value = cx.config().ok_or_else(|| LoadError::NoConfig {
                element: element.clone(),
            })?;
            let config = RobotConfig::from_value(value).map_err(|source| LoadError::Config {
                element: element.clone(),
                source,
            })?;
            // On the shared store when `jitnode run` opened one; else the app's own store
            // (records only: claims across hosts need the process store).
            let records = match jitnode_store::process_store() {
                Some(store) => RecordsAt::new(store),
                None => RecordsAt::open_in(&cx.data_dir()).await.map_err(|source| {
                    LoadError::Records {
                        element: element.clone(),
                        source,
                    }
                })?,
            };
            let robot = Arc::new(Robot::new(
                element.clone(),
                config.clone(),
                cx.app().clone(),
                records,
            ));
            let client = Client::start(
                client_config(&config),
                Arc::new(RobotHandler(robot.clone())),
            );
            tokio::spawn(sweep(robot.clone(), client.replier().clone()));
            tokio::spawn(report_readiness(
                client.status(),
                cx.readiness("connecting"),
                shown_endpoint(&config),
                robot.clone(),
            ));
            tracing::info!(
                robot = %element,
                client_id = %config.client_id,
                endpoint = %shown_endpoint(&config),
                mode = config.card.mode.as_str(),
                agent = %config.agent,
                "DingTalk robot connecting"
            );
            Ok(Box::new(RobotRuntime { robot, client }) as Box<dyn ElementRuntime>)
        })
    }
}

/// Runs the robot's sweeper at start and then every half lease (with a shared store),
/// until the robot stops: dead hosts' cards, and this host's own from before a restart,
/// are finalized within 1.5 leases, and the messages they claimed without starting are
/// answered.
async fn sweep(robot: Arc<Robot>, replier: jitnode_stream::Replier) {
    let Some(lease) = robot.store_lease() else {
        return;
    };
    let mut tick = tokio::time::interval(crate::robot::sweep_interval(lease));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = robot.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        robot.sweep(&replier.openapi).await;
        robot.sweep_claims(&replier).await;
    }
}

/// Follows the client's status into the host's readiness: connected is ready; refused
/// credentials or an endpoint that cannot be reached is not ready, with the reason. Ends
/// when the client stops or the element is replaced.
async fn report_readiness(
    mut status: tokio::sync::watch::Receiver<Status>,
    reporter: ReadinessReporter,
    endpoint: String,
    robot: Arc<Robot>,
) {
    let mut connected_once = false;
    loop {
        let now = status.borrow_and_update().clone();
        match now {
            Status::Connected { .. } => {
                connected_once = true;
                reporter.ready();
            }
            Status::AuthFailed { error, .. } => {
                // The client logged its own line once; this is the one with the fix.
                robot.refusals.note(
                    &Refusal::AuthFailed,
                    &robot.name,
                    &robot.config,
                    "opening the Stream connection",
                );
                reporter.not_ready(format!(
                    "bad credentials: {error}. Fix: set clientId / clientSecret \
                     (DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET) to the app's Client ID and \
                     Secret, and publish an app version"
                ));
            }
            // No retry delay in the reason: a retry failing the same way changes nothing.
            Status::Backoff { error, .. } => {
                let reason = match connected_once {
                    true => format!("connection lost ({error}); reconnecting"),
                    false => format!("cannot connect to {endpoint}: {error}"),
                };
                reporter.not_ready(reason);
            }
            // A retry keeps the reason of the failure before it.
            Status::Connecting { .. } => {}
            Status::Stopped => return,
        }
        if !reporter.is_current() || status.changed().await.is_err() {
            return;
        }
    }
}

/// The OpenAPI endpoint as logged: without userinfo or query, which may hold credentials.
fn shown_endpoint(config: &RobotConfig) -> String {
    jitnode_dingtalk_wire::redacted_url(&config.open_api_endpoint)
}

/// A running robot instance.
pub struct RobotRuntime {
    robot: Arc<Robot>,
    client: Client,
}

impl RobotRuntime {
    fn status(&self) -> Value {
        json!({
            "robot": self.robot.name,
            "clientId": self.robot.config.client_id,
            "status": format!("{:?}", *self.client.status().borrow()),
            "answering": self.robot.in_flight.running(),
            "records": self.robot.records.location(),
            "refusals": self.robot.refusals.list(),
        })
    }
}

impl ElementRuntime for RobotRuntime {
    fn functions(&self) -> Vec<FunctionSpec> {
        vec![FunctionSpec::any_args("status")]
    }

    /// `status`: connection state, answers running, where records go. With
    /// `{"idleWithinMs": n}` it first waits up to n ms for running answers to end, so a
    /// caller who wants "done?" is woken by the last answer instead of polling.
    fn call<'a>(
        &'a self,
        function: &'a str,
        args: Value,
        _chunks: jitnode_host::ChunkSink,
    ) -> BoxFuture<'a, Result<Value, FunctionError>> {
        Box::pin(async move {
            match function {
                "status" => {
                    if let Some(ms) = args.get("idleWithinMs").and_then(Value::as_u64) {
                        let idle = self.robot.in_flight.wait_idle();
                        // Timing out is an answer too: `answering` says what still runs.
                        let _ = tokio::time::timeout(Duration::from_millis(ms), idle).await;
                    }
                    Ok(self.status())
                }
                other => Err(FunctionError::failed(format!("no function \"{other}\""))),
            }
        })
    }

    /// Cancels running answers, waits (bounded) for their cards to be finalized, then
    /// closes the connection.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.robot.cancel.cancel();
            let waited =
                tokio::time::timeout(FINALIZE_BUDGET, self.robot.in_flight.wait_idle()).await;
            if waited.is_err() {
                tracing::warn!(
                    robot = %self.robot.name,
                    running = self.robot.in_flight.running(),
                    "answers still finalizing at stop; closing anyway"
                );
            }
            self.client.stop().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str, endpoint: &str) -> RobotConfig {
        let v = json!({
            "clientId": "id", "clientSecret": secret, "agent": "a.b", "openApiEndpoint": endpoint
        });
        RobotConfig::from_value(&v).expect("a valid robot config")
    }

    #[test]
    fn the_logged_endpoint_has_no_userinfo() {
        let c = config("s", "https://proxyuser:proxypass@gw.example:8443/dt");
        let shown = shown_endpoint(&c);
        assert_eq!(shown, "https://gw.example:8443/dt");
        let debug = format!("{c:?}");
        assert!(!debug.contains("proxypass"), "{debug}");
    }

    #[test]
    fn client_config_allows_webhooks_on_both_origins_and_hides_secret() {
        let c = config("zz-secret", "http://127.0.0.1:4000");
        let cc = client_config(&c);
        assert_eq!(cc.openapi_endpoint, "http://127.0.0.1:4000");
        assert_eq!(
            cc.webhook_origins,
            vec!["https://oapi.dingtalk.com:443", "http://127.0.0.1:4000"]
        );
        assert_eq!(cc.client_secret.expose(), "zz-secret");
        assert!(!format!("{cc:?}").contains("zz-secret"));
    }
}
