//! The running app: per-element load-once slots, lookups, start phases and ordered stop.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use jitnode_element::{AppTree, Element, Env, LoadTime};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

use crate::error::{CallError, LoadError, LookupError};
use crate::functions::{declared_functions, merge, FunctionSpec};
use crate::loader::{LoadContext, Registry, BUILTIN_SCHEME};
use crate::runtime::{ChunkSink, ElementRuntime, FunctionError};

/// How long one element may take to stop before the host gives up on it.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(5);

type Slot = Arc<OnceCell<Result<LoadedElement, LoadError>>>;

/// A loaded element as others see it: its definition, rendered config and functions.
/// Cheap to clone.
#[derive(Clone)]
pub struct LoadedElement {
    element: Arc<Element>,
    config: Option<Arc<Value>>,
    runtime: Option<Arc<dyn ElementRuntime>>,
    functions: Arc<Vec<FunctionSpec>>,
}

impl LoadedElement {
    pub fn element(&self) -> &Element {
        &self.element
    }

    pub fn full_name(&self) -> &str {
        &self.element.full_name
    }

    /// Rendered config.json (holds secrets: never log it).
    pub fn config(&self) -> Option<&Value> {
        self.config.as_deref()
    }

    /// True when no loader exists up its chain: only definition and files, no functions.
    pub fn is_data_only(&self) -> bool {
        self.runtime.is_none()
    }

    /// The functions it offers, sorted by name (empty for a data-only element).
    pub fn functions(&self) -> &[FunctionSpec] {
        &self.functions
    }

    /// Calls one of its functions after checking the name and the argument shape.
    pub async fn call(
        &self,
        function: &str,
        args: Value,
        chunks: ChunkSink,
    ) -> Result<Value, CallError> {
        let element = &self.element.full_name;
        let Some(rt) = &self.runtime else {
            return Err(CallError::DataOnly {
                element: element.clone(),
                chain: self.element.chain.clone(),
            });
        };
        let Some(spec) = self.functions.iter().find(|f| f.name == function) else {
            return Err(CallError::UnknownFunction {
                element: element.clone(),
                function: function.to_string(),
                offered: self.functions.iter().map(|f| f.to_string()).collect(),
            });
        };
        spec.check_args(&args)
            .map_err(|message| CallError::BadArgs {
                element: element.clone(),
                function: function.to_string(),
                message,
            })?;
        rt.call(function, args, chunks).await.map_err(|e| match e {
            FunctionError::BadArgs(message) => CallError::BadArgs {
                element: element.clone(),
                function: function.to_string(),
                message,
            },
            FunctionError::Failed(message) => CallError::Failed {
                element: element.clone(),
                function: function.to_string(),
                message,
            },
        })
    }
}

impl fmt::Debug for LoadedElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedElement")
            .field("full_name", &self.element.full_name)
            .field("config", &self.config.as_ref().map(|_| "<redacted>"))
            .field("data_only", &self.runtime.is_none())
            .field(
                "functions",
                &self
                    .functions
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What `start` did: elements started per phase, and the ones that failed (with why).
#[derive(Debug, Default)]
pub struct StartReport {
    /// In phase order (beforeHandleRequest first), by name within a phase.
    pub started: Vec<String>,
    pub failed: Vec<(String, LookupError)>,
}

/// What `stop` did, in the order elements were stopped (dependents first).
#[derive(Debug, Default)]
pub struct StopReport {
    /// Each inner list was stopped concurrently, after the lists before it.
    pub waves: Vec<Vec<String>>,
    /// Elements whose stop did not finish within the deadline (or panicked).
    pub timed_out: Vec<String>,
}

impl StopReport {
    /// All stopped elements, flattened in order.
    pub fn order(&self) -> Vec<String> {
        self.waves.iter().flatten().cloned().collect()
    }
}

#[derive(Default)]
struct State {
    /// dependent -> what it looked up (it must stop before them).
    deps: BTreeMap<String, BTreeSet<String>>,
    /// element being loaded -> elements its loader is waiting for (cycle detection).
    waits: HashMap<String, HashSet<String>>,
    /// Running elements (with a runtime), in load order.
    running: Vec<(String, Arc<dyn ElementRuntime>)>,
    stopping: bool,
}

struct AppInner {
    tree: AppTree,
    env: Env,
    registry: Registry,
    slots: HashMap<String, Slot>,
    state: Mutex<State>,
}

impl AppInner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-updated in a way that
        // matters more than stopping the app would; keep going with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn loadable(&self) -> Vec<String> {
        self.tree
            .elements
            .keys()
            .filter(|n| self.tree.loader_of(n).is_some())
            .cloned()
            .collect()
    }

    async fn lookup(
        self: &Arc<Self>,
        name: &str,
        requester: Option<&str>,
    ) -> Result<LoadedElement, LookupError> {
        let Some(slot) = self.slots.get(name).cloned() else {
            return Err(LookupError::UnknownElement {
                name: name.to_string(),
                loadable: self.loadable(),
            });
        };
        if let Some(done) = slot.get() {
            let loaded = done.clone()?;
            self.record_dep(requester, name);
            return Ok(loaded);
        }
        // A requester still loading waits for `name`; refuse if `name` waits for it.
        let waiting_from =
            requester.filter(|r| self.slots.get(*r).is_some_and(|s| !s.initialized()));
        if let Some(r) = waiting_from {
            let mut st = self.state();
            if let Some(cycle) = find_cycle(&st.waits, r, name) {
                return Err(LoadError::Cycle { cycle }.into());
            }
            st.waits
                .entry(r.to_string())
                .or_default()
                .insert(name.to_string());
        }
        // The load runs in its own task so a caller giving up does not abort it halfway
        // (which would make the next caller load it a second time).
        let inner = Arc::clone(self);
        let owned = name.to_string();
        let res =
            tokio::spawn(async move { slot.get_or_init(|| inner.load(owned)).await.clone() }).await;
        if let Some(r) = waiting_from {
            let mut st = self.state();
            if let Some(w) = st.waits.get_mut(r) {
                w.remove(name);
                if w.is_empty() {
                    st.waits.remove(r);
                }
            }
        }
        let loaded = match res {
            Ok(r) => r?,
            // load() itself catches loader panics; this is the runtime shutting down.
            Err(_) => return Err(LookupError::AppGone),
        };
        self.record_dep(requester, name);
        Ok(loaded)
    }

    fn record_dep(&self, requester: Option<&str>, name: &str) {
        if let Some(r) = requester.filter(|r| *r != name) {
            self.state()
                .deps
                .entry(r.to_string())
                .or_default()
                .insert(name.to_string());
        }
    }

    /// Loads one element. Runs at most once per element (inside its OnceCell).
    async fn load(self: Arc<Self>, name: String) -> Result<LoadedElement, LoadError> {
        let el = self
            .tree
            .get(&name)
            .expect("slots are made from the tree's elements");
        let element = Arc::new(el.clone());
        let declared = declared_functions(&self.tree, el);

        let loader_el = self.tree.loader_of(&name);
        let loader = match loader_el {
            None => None,
            Some(l) => {
                let entry = l
                    .def
                    .backend_bundle_entry
                    .clone()
                    .expect("loader_of only returns elements with a backendBundleEntry");
                if !entry.starts_with(BUILTIN_SCHEME) {
                    return Err(LoadError::NativeUnsupported {
                        element: name,
                        entry,
                        declared_by: l.full_name.clone(),
                    });
                }
                match self.registry.get(&entry) {
                    Some(loader) => Some((loader, entry, Arc::new(l.clone()))),
                    None => {
                        return Err(LoadError::LoaderUnavailable {
                            element: name,
                            entry,
                            declared_by: l.full_name.clone(),
                            available: self.registry.names(),
                        })
                    }
                }
            }
        };

        let config = jitnode_element::render_config(el, &self.env)
            .map_err(|e| LoadError::Config {
                element: name.clone(),
                message: e.to_string(),
            })?
            .map(Arc::new);

        let Some((loader, entry, loader_el)) = loader else {
            tracing::debug!(element = %name, "data-only element (no loader in its chain)");
            return Ok(LoadedElement {
                element,
                config,
                runtime: None,
                functions: Arc::new(Vec::new()),
            });
        };
        if self.state().stopping {
            return Err(LoadError::Stopping { element: name });
        }

        let cx = LoadContext {
            element: Arc::clone(&element),
            loader: loader_el,
            config: config.clone(),
            app: AppHandle {
                inner: Arc::downgrade(&self),
                requester: Some(Arc::from(name.as_str())),
            },
        };
        tracing::debug!(element = %name, loader = %entry, "loading");
        // Own task: a panicking loader becomes this element's error, not the caller's.
        let joined = tokio::spawn(async move { loader.load(cx).await }).await;
        let runtime: Arc<dyn ElementRuntime> = match joined {
            Ok(Ok(rt)) => Arc::from(rt),
            Ok(Err(e)) => {
                return Err(LoadError::Failed {
                    element: name,
                    entry,
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(LoadError::Panicked {
                    element: name,
                    entry,
                })
            }
        };
        let functions = Arc::new(merge(runtime.functions(), &declared));
        {
            let mut st = self.state();
            if !st.stopping {
                st.running.push((name.clone(), Arc::clone(&runtime)));
                drop(st);
                tracing::info!(element = %name, loader = %entry, "loaded");
                return Ok(LoadedElement {
                    element,
                    config,
                    runtime: Some(runtime),
                    functions,
                });
            }
        }
        // Stop began while this one was loading: it would never be stopped otherwise.
        let _ = tokio::time::timeout(DEFAULT_STOP_DEADLINE, runtime.stop()).await;
        Err(LoadError::Stopping { element: name })
    }
}

/// If `to` (transitively) waits for `from`, the cycle `from -> to -> ... -> from`.
fn find_cycle(
    waits: &HashMap<String, HashSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    fn dfs(
        waits: &HashMap<String, HashSet<String>>,
        at: &str,
        goal: &str,
        path: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> bool {
        if at == goal {
            return true;
        }
        if !seen.insert(at.to_string()) {
            return false;
        }
        let mut next: Vec<&String> = waits
            .get(at)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        next.sort();
        for n in next {
            path.push(n.clone());
            if dfs(waits, n, goal, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![from.to_string(), to.to_string()];
    let mut seen = HashSet::new();
    dfs(waits, to, from, &mut path, &mut seen).then_some(path)
}

/// A handle to the app for loaders and runtimes. It does not keep the app alive (a
/// runtime holding it would otherwise never be dropped). Lookups made through a handle
/// from a [`LoadContext`] are recorded as that element's dependencies.
#[derive(Clone)]
pub struct AppHandle {
    inner: Weak<AppInner>,
    requester: Option<Arc<str>>,
}

impl AppHandle {
    fn upgrade(&self) -> Result<Arc<AppInner>, LookupError> {
        self.inner.upgrade().ok_or(LookupError::AppGone)
    }

    /// The element by fullName, loading it on first lookup (concurrent first lookups load
    /// it once).
    pub async fn lookup(&self, full_name: &str) -> Result<LoadedElement, LookupError> {
        self.upgrade()?
            .lookup(full_name, self.requester.as_deref())
            .await
    }

    /// Looks the element up and calls one of its functions.
    pub async fn call(
        &self,
        full_name: &str,
        function: &str,
        args: Value,
        chunks: ChunkSink,
    ) -> Result<Value, CallError> {
        self.lookup(full_name)
            .await?
            .call(function, args, chunks)
            .await
    }

    /// An element's definition without loading it (JitAI's `getElementDefine`).
    pub fn definition(&self, full_name: &str) -> Option<Element> {
        self.inner.upgrade()?.tree.get(full_name).cloned()
    }
}

impl fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppHandle")
            .field("requester", &self.requester)
            .finish()
    }
}

/// A running app. Create it from a resolved tree, `start` it, and `stop` it.
pub struct App {
    inner: Arc<AppInner>,
}

impl App {
    pub fn new(tree: AppTree, env: Env, registry: Registry) -> App {
        let slots = tree
            .elements
            .keys()
            .map(|n| (n.clone(), Slot::default()))
            .collect();
        App {
            inner: Arc::new(AppInner {
                tree,
                env,
                registry,
                slots,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn tree(&self) -> &AppTree {
        &self.inner.tree
    }

    /// A handle with no element identity (lookups are not recorded as dependencies).
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            inner: Arc::downgrade(&self.inner),
            requester: None,
        }
    }

    /// Starts all `beforeHandleRequest` elements concurrently, then all `afterAppInit`
    /// ones. A failure is logged with the element's fullName; the others keep running.
    pub async fn start(&self) -> StartReport {
        let mut report = StartReport::default();
        for phase in [LoadTime::BeforeHandleRequest, LoadTime::AfterAppInit] {
            let names: Vec<String> = self
                .inner
                .tree
                .elements
                .values()
                .filter(|e| e.def.backend_load_time == Some(phase))
                .map(|e| e.full_name.clone())
                .collect();
            if names.is_empty() {
                continue;
            }
            tracing::debug!(phase = %phase, count = names.len(), "starting phase");
            let mut set = JoinSet::new();
            for n in names {
                let inner = Arc::clone(&self.inner);
                set.spawn(async move {
                    let r = inner.lookup(&n, None).await;
                    (n, r)
                });
            }
            let mut started = Vec::new();
            let mut failed = Vec::new();
            while let Some(joined) = set.join_next().await {
                // lookup() catches loader panics, so a join error is only a runtime shutdown.
                let Ok((n, r)) = joined else { continue };
                match r {
                    Ok(_) => started.push(n),
                    Err(e) => {
                        tracing::error!(element = %n, phase = %phase, "failed to start: {e}");
                        failed.push((n, e));
                    }
                }
            }
            started.sort();
            failed.sort_by(|a, b| a.0.cmp(&b.0));
            report.started.extend(started);
            report.failed.extend(failed);
        }
        report
    }

    /// The element by fullName, loading it on first lookup.
    pub async fn lookup(&self, full_name: &str) -> Result<LoadedElement, LookupError> {
        self.inner.lookup(full_name, None).await
    }

    /// Looks the element up (loading it and whatever it looks up) and calls a function.
    pub async fn call(
        &self,
        full_name: &str,
        function: &str,
        args: Value,
        chunks: ChunkSink,
    ) -> Result<Value, CallError> {
        self.lookup(full_name)
            .await?
            .call(function, args, chunks)
            .await
    }

    /// Who looked up whom: dependent -> its dependencies.
    pub fn dependencies(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.inner.state().deps.clone()
    }

    /// Running elements (those with a runtime), in load order.
    pub fn running(&self) -> Vec<String> {
        self.inner
            .state()
            .running
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Stops every running element: dependents before what they depend on, each wave
    /// concurrently, each element bounded by `deadline`. Later loads are refused.
    pub async fn stop(&self, deadline: Duration) -> StopReport {
        let (mut remaining, deps) = {
            let mut st = self.inner.state();
            st.stopping = true;
            (std::mem::take(&mut st.running), st.deps.clone())
        };
        let mut report = StopReport::default();
        while !remaining.is_empty() {
            let names: HashSet<&str> = remaining.iter().map(|(n, _)| n.as_str()).collect();
            // Stoppable now: nothing still running depends on it.
            let needed: HashSet<&str> = names
                .iter()
                .filter_map(|n| deps.get(*n))
                .flatten()
                .map(String::as_str)
                .filter(|d| names.contains(d))
                .collect();
            let (mut wave, rest): (Vec<_>, Vec<_>) = remaining
                .into_iter()
                .partition(|(n, _)| !needed.contains(n.as_str()));
            remaining = rest;
            if wave.is_empty() {
                // Only a cycle of call-time lookups is left: no order is right; stop them all.
                tracing::warn!("elements depend on each other in a cycle; stopping them together");
                wave = std::mem::take(&mut remaining);
            }
            wave.sort_by(|a, b| a.0.cmp(&b.0));
            let mut set = JoinSet::new();
            for (n, rt) in &wave {
                let (n, rt) = (n.clone(), Arc::clone(rt));
                set.spawn(async move {
                    let ok = tokio::time::timeout(deadline, rt.stop()).await.is_ok();
                    (n, ok)
                });
            }
            let mut done: HashMap<String, bool> = HashMap::new();
            while let Some(j) = set.join_next().await {
                if let Ok((n, ok)) = j {
                    done.insert(n, ok);
                }
            }
            for (n, _) in &wave {
                if done.get(n).copied() == Some(true) {
                    tracing::info!(element = %n, "stopped");
                } else {
                    tracing::warn!(element = %n, "did not stop within {deadline:?}; leaving it");
                    report.timed_out.push(n.clone());
                }
            }
            report
                .waves
                .push(wave.into_iter().map(|(n, _)| n).collect());
        }
        report
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("elements", &self.inner.tree.elements.len())
            .field("registry", &self.inner.registry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wait_cycles() {
        let mut w: HashMap<String, HashSet<String>> = HashMap::new();
        w.entry("b".into()).or_default().insert("c".into());
        w.entry("c".into()).or_default().insert("a".into());
        assert_eq!(
            find_cycle(&w, "a", "b"),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(find_cycle(&w, "x", "b"), None);
        assert_eq!(find_cycle(&w, "a", "a"), Some(vec!["a".into(), "a".into()]));
    }
}
