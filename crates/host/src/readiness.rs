//! Readiness: whether the app can do its work, as opposed to merely having started.
//!
//! A started element may still be useless: a robot whose credentials DingTalk refuses, or
//! whose endpoint cannot be reached, has loaded fine. Such an element takes a
//! [`ReadinessReporter`] from its [`LoadContext`](crate::LoadContext) and reports into the
//! app's [`Readiness`] as its state changes (pending, ready, not ready with a reason).
//! The host itself records every element that failed to start (`beforeHandleRequest` /
//! `afterAppInit`) as not ready, with the load error.
//!
//! The app is ready when every entry is [`Check::Ready`]; elements that report nothing
//! and started fine count as ready. This is what `run` summarises and what a `/readyz`
//! endpoint serves ([`ReadinessReport::to_json`]).
//!
//! An entry lives as long as the element generation that made it: stopping an element
//! (or replacing it on reload) removes its entry, and a reporter of an old generation can
//! no longer change what the new one reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::{json, Value};
use tokio::sync::watch;

/// One element's readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not known yet (e.g. still connecting for the first time).
    Pending {
        what: String,
    },
    Ready,
    /// Cannot do its work now; `reason` says why, for a person (never holds a secret).
    NotReady {
        reason: String,
    },
}

impl Check {
    pub fn is_ready(&self) -> bool {
        matches!(self, Check::Ready)
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, Check::Pending { .. })
    }

    /// `"pending"`, `"ready"` or `"notReady"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Check::Pending { .. } => "pending",
            Check::Ready => "ready",
            Check::NotReady { .. } => "notReady",
        }
    }
}

/// A snapshot of every reported check, by fullName.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadinessReport {
    pub checks: BTreeMap<String, Check>,
}

impl ReadinessReport {
    /// True when every check is ready (also when there is none).
    pub fn is_ready(&self) -> bool {
        self.checks.values().all(Check::is_ready)
    }

    /// True when no check is pending any more.
    pub fn is_settled(&self) -> bool {
        !self.checks.values().any(Check::is_pending)
    }

    pub fn get(&self, full_name: &str) -> Option<&Check> {
        self.checks.get(full_name)
    }

    /// Elements that are not ready (pending included), with why, by name.
    pub fn not_ready(&self) -> Vec<(&str, String)> {
        self.checks
            .iter()
            .filter_map(|(n, c)| match c {
                Check::Ready => None,
                Check::Pending { what } => Some((n.as_str(), format!("still {what}"))),
                Check::NotReady { reason } => Some((n.as_str(), reason.clone())),
            })
            .collect()
    }

    /// `{"ready": bool, "elements": {"<fullName>": {"state": "ready"|"pending"|"notReady",
    /// "reason"?: "..."}}}`, the body of a `/readyz` answer.
    pub fn to_json(&self) -> Value {
        let elements: serde_json::Map<String, Value> = self
            .checks
            .iter()
            .map(|(n, c)| {
                let v = match c {
                    Check::Ready => json!({"state": c.as_str()}),
                    Check::Pending { what } => json!({"state": c.as_str(), "reason": what}),
                    Check::NotReady { reason } => json!({"state": c.as_str(), "reason": reason}),
                };
                (n.clone(), v)
            })
            .collect();
        json!({"ready": self.is_ready(), "elements": elements})
    }
}

struct Entry {
    generation: u64,
    check: Check,
}

struct Inner {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Bumped on every change, so waiters wake up.
    changed: watch::Sender<u64>,
}

/// The app's readiness registry (from [`App::readiness`](crate::App::readiness)). Cheap to
/// clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness {
            inner: Arc::new(Inner {
                entries: Mutex::new(BTreeMap::new()),
                changed: watch::channel(0).0,
            }),
        }
    }
}

/// Generation of the host's own entries (start failures); loads get 1, 2, ...
const HOST: u64 = 0;

/// Generation numbers of loads, unique in the process.
pub(crate) fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(HOST + 1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Readiness {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Entries are replaced whole; a panic elsewhere cannot leave one half-written.
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The current checks.
    pub fn report(&self) -> ReadinessReport {
        ReadinessReport {
            checks: self
                .entries()
                .iter()
                .map(|(n, e)| (n.clone(), e.check.clone()))
                .collect(),
        }
    }

    /// Waits until `cond` holds for the report, and returns that report. Wakes on every
    /// change (no polling); bound it with `tokio::time::timeout`.
    pub async fn wait_until(&self, cond: impl Fn(&ReadinessReport) -> bool) -> ReadinessReport {
        let mut rx = self.inner.changed.subscribe();
        loop {
            rx.borrow_and_update();
            let report = self.report();
            if cond(&report) {
                return report;
            }
            // The sender lives in `self`, so this only errs if it is gone, which it is not.
            if rx.changed().await.is_err() {
                return self.report();
            }
        }
    }

    /// Waits until no check is pending (every reporter said ready or not ready).
    pub async fn settled(&self) -> ReadinessReport {
        self.wait_until(ReadinessReport::is_settled).await
    }

    /// A reporter for one load of `full_name`, starting as pending on `what`.
    pub(crate) fn reporter(
        &self,
        full_name: &str,
        generation: u64,
        what: &str,
    ) -> ReadinessReporter {
        self.set(
            full_name,
            generation,
            Check::Pending {
                what: what.to_string(),
            },
        );
        ReadinessReporter {
            registry: Arc::downgrade(&self.inner),
            full_name: full_name.to_string(),
            generation,
        }
    }

    fn set(&self, full_name: &str, generation: u64, check: Check) {
        self.entries()
            .insert(full_name.to_string(), Entry { generation, check });
        self.bump();
    }

    /// Records that `full_name` failed to start.
    pub(crate) fn start_failed(&self, full_name: &str, reason: String) {
        self.set(full_name, HOST, Check::NotReady { reason });
    }

    /// Forgets what the load `generation` of `full_name` reported (it stopped or failed).
    pub(crate) fn remove(&self, full_name: &str, generation: u64) {
        let removed = {
            let mut entries = self.entries();
            match entries.get(full_name) {
                Some(e) if e.generation == generation => entries.remove(full_name).is_some(),
                _ => false,
            }
        };
        if removed {
            self.bump();
        }
    }

    /// Forgets a start failure of `full_name` (it is about to be started again).
    pub(crate) fn clear_start_failure(&self, full_name: &str) {
        self.remove(full_name, HOST);
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.report().checks).finish()
    }
}

/// What one loaded element reports its readiness through (from
/// [`LoadContext::readiness`](crate::LoadContext::readiness)). Reports of an element that
/// has since been stopped or replaced are ignored. Cheap to clone.
#[derive(Clone)]
pub struct ReadinessReporter {
    registry: Weak<Inner>,
    full_name: String,
    generation: u64,
}

impl ReadinessReporter {
    pub fn ready(&self) {
        self.update(Check::Ready);
    }

    /// `reason` is shown to people (run summary, `/readyz`): never put a secret in it.
    pub fn not_ready(&self, reason: impl Into<String>) {
        self.update(Check::NotReady {
            reason: reason.into(),
        });
    }

    pub fn pending(&self, what: impl Into<String>) {
        self.update(Check::Pending { what: what.into() });
    }

    /// False once the element's entry is gone (it stopped or was replaced): nothing it
    /// reports matters any more.
    pub fn is_current(&self) -> bool {
        let Some(inner) = self.registry.upgrade() else {
            return false;
        };
        let registry = Readiness { inner };
        let entries = registry.entries();
        entries
            .get(&self.full_name)
            .is_some_and(|e| e.generation == self.generation)
    }

    fn update(&self, check: Check) {
        let Some(inner) = self.registry.upgrade() else {
            return;
        };
        let registry = Readiness { inner };
        let changed = {
            let mut entries = registry.entries();
            match entries.get_mut(&self.full_name) {
                Some(e) if e.generation == self.generation && e.check != check => {
                    e.check = check;
                    true
                }
                _ => false,
            }
        };
        if changed {
            registry.bump();
        }
    }
}

impl std::fmt::Debug for ReadinessReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessReporter")
            .field("element", &self.full_name)
            .field("generation", &self.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reporters_of_old_generations_change_nothing() {
        let r = Readiness::default();
        let old = r.reporter("a.bot", 7, "connecting");
        assert!(!r.report().is_settled());
        old.not_ready("bad credentials");
        assert_eq!(
            r.report().get("a.bot"),
            Some(&Check::NotReady {
                reason: "bad credentials".into()
            })
        );
        // A reload replaced it: generation 8 reports now; 7 is stale.
        let new = r.reporter("a.bot", 8, "connecting");
        old.ready();
        assert!(!old.is_current());
        assert!(r.report().get("a.bot").is_some_and(Check::is_pending));
        // Stopping generation 7 does not remove 8's entry.
        r.remove("a.bot", 7);
        assert!(r.report().get("a.bot").is_some());
        new.ready();
        assert!(r.report().is_ready());
        r.remove("a.bot", 8);
        assert!(r.report().checks.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_wakes_on_a_report_without_polling() {
        let r = Readiness::default();
        let rep = r.reporter("a.bot", next_generation(), "connecting");
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.settled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        rep.not_ready("cannot reach http://127.0.0.1:9");
        let report = tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken by the report")
            .unwrap();
        assert!(!report.is_ready());
        assert_eq!(
            report.not_ready(),
            [("a.bot", "cannot reach http://127.0.0.1:9".to_string())]
        );
        assert_eq!(
            report.to_json(),
            json!({"ready": false, "elements": {"a.bot": {"state": "notReady", "reason": "cannot reach http://127.0.0.1:9"}}})
        );
    }

    #[test]
    fn start_failures_are_not_ready_until_cleared() {
        let r = Readiness::default();
        r.start_failed("a.x", "a.x: loader failed".into());
        assert!(!r.report().is_ready());
        assert!(r.report().is_settled());
        r.clear_start_failure("a.x");
        assert!(r.report().is_ready());
    }
}
