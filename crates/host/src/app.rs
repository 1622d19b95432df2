//! The running app: per-element load-once slots, lookups, start phases and ordered stop.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use jitnode_element::{AppTree, Element, Env, LoadTime};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

use crate::error::{CallError, LoadError, LookupError};
use crate::functions::{declared_functions, merge, FunctionSpec};
use crate::loader::{LoadContext, Registry, BUILTIN_SCHEME};
use crate::readiness::{next_generation, Readiness};
use crate::runtime::{ChunkSink, ElementRuntime, FunctionError};
use crate::schema::{describe_problems, SchemaCache, SchemaFailure};

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

/// A running element as the app tracks it.
struct Running {
    name: String,
    runtime: Arc<dyn ElementRuntime>,
    /// Hash of its definition, its chain's definitions and its rendered config.
    fingerprint: u64,
    /// Its load's readiness generation: stopping it removes what that load reported.
    generation: u64,
}

#[derive(Default)]
struct State {
    /// dependent -> what it looked up successfully (it must stop before them).
    deps: BTreeMap<String, BTreeSet<String>>,
    /// dependent -> every name it tried to look up, found or not (a reload that changes
    /// one of them restarts the dependent).
    tried: BTreeMap<String, BTreeSet<String>>,
    /// Elements looked up from outside any element (start phases, `App::lookup`): kept
    /// running by themselves, unlike on-demand elements only others needed.
    pinned: HashSet<String>,
    /// element being loaded -> elements its loader is waiting for (cycle detection).
    waits: HashMap<String, HashSet<String>>,
    /// Running elements (with a runtime), in load order.
    running: Vec<Running>,
    stopping: bool,
}

/// One generation of the app's definitions: the tree, the environment and a load-once slot
/// per element. A reload swaps in a new generation that reuses the slots it keeps.
struct View {
    tree: Arc<AppTree>,
    env: Arc<Env>,
    slots: HashMap<String, Slot>,
    /// The Types' config schemas of this generation (a reload may change them).
    schemas: Arc<SchemaCache>,
}

struct AppInner {
    view: RwLock<Arc<View>>,
    registry: Registry,
    state: Mutex<State>,
    /// Variables the host set over the app's environment; a reload keeps them.
    env_overrides: BTreeMap<String, String>,
    readiness: Readiness,
}

impl AppInner {
    // Lock order: `state` before `view` whenever both are held.
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-updated in a way that
        // matters more than stopping the app would; keep going with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_view(&self, view: View) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }

    async fn lookup(
        self: &Arc<Self>,
        name: &str,
        requester: Option<&str>,
    ) -> Result<LoadedElement, LookupError> {
        let view = self.view();
        self.record_attempt(requester, name);
        let Some(slot) = view.slots.get(name).cloned() else {
            return Err(LookupError::UnknownElement {
                name: name.to_string(),
                loadable: loadable(&view.tree),
            });
        };
        if let Some(done) = slot.get() {
            let loaded = done.clone()?;
            self.record_dep(requester, name);
            return Ok(loaded);
        }
        // A requester still loading waits for `name`; refuse if `name` waits for it.
        let waiting_from =
            requester.filter(|r| view.slots.get(*r).is_some_and(|s| !s.initialized()));
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
        let res = tokio::spawn(async move {
            let this = Arc::clone(&slot);
            slot.get_or_init(|| inner.load(owned, view, this))
                .await
                .clone()
        })
        .await;
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

    /// Looks `name` up on behalf of `requester` and calls one of its functions; the one
    /// body behind [`App::call`] and [`AppHandle::call`].
    async fn call(
        self: Arc<Self>,
        name: &str,
        requester: Option<&str>,
        function: &str,
        args: Value,
        chunks: ChunkSink,
    ) -> Result<Value, CallError> {
        let loaded = self.lookup(name, requester).await?;
        // Let go of the app before the function runs: a call made through a handle must
        // not keep the app alive for as long as the function takes.
        drop(self);
        loaded.call(function, args, chunks).await
    }

    fn record_attempt(&self, requester: Option<&str>, name: &str) {
        let mut st = self.state();
        match requester {
            None => {
                st.pinned.insert(name.to_string());
            }
            Some(r) if r != name => {
                st.tried
                    .entry(r.to_string())
                    .or_default()
                    .insert(name.to_string());
            }
            Some(_) => {}
        }
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
    async fn load(
        self: Arc<Self>,
        name: String,
        view: Arc<View>,
        slot: Slot,
    ) -> Result<LoadedElement, LoadError> {
        let el = view
            .tree
            .get(&name)
            .expect("a view's slots are made from its own tree's elements");
        let element = Arc::new(el.clone());
        let declared = declared_functions(&view.tree, el);

        let loader_el = view.tree.loader_of(&name);
        let loader = match loader_el {
            None => None,
            Some(l) => {
                let entry = l
                    .def
                    .backend_bundle_entry
                    .clone()
                    .expect("loader_of only returns elements with a backendBundleEntry");
                match self.registry.get(&entry) {
                    Some(loader) => Some((loader, entry, Arc::new(l.clone()))),
                    None if !entry.starts_with(BUILTIN_SCHEME) => {
                        return Err(LoadError::NativeUnsupported {
                            element: name,
                            entry,
                            declared_by: l.full_name.clone(),
                        })
                    }
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

        let schema = view
            .schemas
            .for_element(&view.tree, &self.registry, el)
            .await
            .map_err(|f| match f {
                SchemaFailure::Loader { entry, message } => LoadError::Failed {
                    element: name.clone(),
                    entry,
                    message,
                },
                SchemaFailure::File(p) => LoadError::Config {
                    element: name.clone(),
                    message: describe_problems(el, &[p]),
                },
            })?;
        let config = match schema {
            Some((of, schema)) => Some(Arc::new(
                jitnode_element::apply_schema(el, &view.env, &of, &schema).map_err(|problems| {
                    LoadError::Config {
                        element: name.clone(),
                        message: describe_problems(el, &problems),
                    }
                })?,
            )),
            None => jitnode_element::render_config(el, &view.env)
                .map_err(|e| LoadError::Config {
                    element: name.clone(),
                    message: e.to_string(),
                })?
                .map(Arc::new),
        };

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
        let fingerprint = fingerprint(&view.tree, el, config.as_deref());
        let generation = next_generation();

        let cx = LoadContext {
            element: Arc::clone(&element),
            loader: loader_el,
            config: config.clone(),
            app: AppHandle {
                inner: Arc::downgrade(&self),
                requester: Some(Arc::from(name.as_str())),
            },
            readiness: self.readiness.clone(),
            generation,
        };
        tracing::debug!(element = %name, loader = %entry, "loading");
        // Own task: a panicking loader becomes this element's error, not the caller's.
        let joined = tokio::spawn(async move { loader.load(cx).await }).await;
        if !matches!(joined, Ok(Ok(_))) {
            // What a failed load reported must not linger as if it ran.
            self.readiness.remove(&name, generation);
        }
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
        let stopping = {
            let mut st = self.state();
            // A reload may have replaced this element while it loaded: the new generation
            // loads its own; this one must not linger unseen.
            let current = self
                .view()
                .slots
                .get(&name)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            if !st.stopping && current {
                st.running.push(Running {
                    name: name.clone(),
                    runtime: Arc::clone(&runtime),
                    fingerprint,
                    generation,
                });
                drop(st);
                tracing::info!(element = %name, loader = %entry, "loaded");
                return Ok(LoadedElement {
                    element,
                    config,
                    runtime: Some(runtime),
                    functions,
                });
            }
            st.stopping
        };
        // Stop (or a reload) began while this one was loading: it would never be stopped
        // otherwise.
        let _ = tokio::time::timeout(DEFAULT_STOP_DEADLINE, runtime.stop()).await;
        self.readiness.remove(&name, generation);
        if stopping {
            Err(LoadError::Stopping { element: name })
        } else {
            Err(LoadError::Replaced { element: name })
        }
    }
}

fn loadable(tree: &AppTree) -> Vec<String> {
    tree.elements
        .keys()
        .filter(|n| tree.loader_of(n).is_some())
        .cloned()
        .collect()
}

/// Identifies what an element runs as: its fullName, the definitions and content (the dist
/// copy's folder name carries a content hash) of everything up its chain, and its rendered
/// config. Only the hash is kept, never the values.
fn fingerprint(tree: &AppTree, el: &Element, config: Option<&Value>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    el.full_name.hash(&mut h);
    for n in &el.chain {
        n.hash(&mut h);
        if let Some(c) = tree.get(n) {
            c.dir.file_name().hash(&mut h);
            serde_json::to_string(&c.def.raw)
                .unwrap_or_default()
                .hash(&mut h);
        }
    }
    config
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .hash(&mut h);
    h.finish()
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
        let requester = self.requester.as_deref();
        self.upgrade()?
            .call(full_name, requester, function, args, chunks)
            .await
    }

    /// Whether the app is stopping (or gone): lookups of elements not loaded yet are
    /// refused from then on, so a caller can tell that failure from its own.
    pub fn stopping(&self) -> bool {
        match self.inner.upgrade() {
            Some(app) => app.state().stopping,
            None => true,
        }
    }

    /// An element's definition without loading it (JitAI's `getElementDefine`).
    pub fn definition(&self, full_name: &str) -> Option<Element> {
        self.inner.upgrade()?.view().tree.get(full_name).cloned()
    }
}

impl fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppHandle")
            .field("requester", &self.requester)
            .finish()
    }
}

/// A running app. Create it from a resolved tree, `start` it, and `stop` it. Clones are
/// the same app (a cheap handle), e.g. one for a [`Reloader`](crate::Reloader) and one for
/// whoever stops it.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

/// What [`App::replace`] did.
#[derive(Debug, Default)]
pub(crate) struct ReplaceReport {
    /// Running elements stopped because they were replaced, removed or no longer needed.
    pub stopped: Vec<String>,
    pub timed_out: Vec<String>,
    pub start: StartReport,
}

impl App {
    pub fn new(tree: AppTree, env: Env, registry: Registry) -> App {
        App::with_env_overrides(tree, env, registry, BTreeMap::new())
    }

    /// An app whose environment has `env_overrides` set over it, now (they must already be
    /// in `env`) and after every reload from disk.
    pub(crate) fn with_env_overrides(
        tree: AppTree,
        env: Env,
        registry: Registry,
        env_overrides: BTreeMap<String, String>,
    ) -> App {
        let slots = tree
            .elements
            .keys()
            .map(|n| (n.clone(), Slot::default()))
            .collect();
        App {
            inner: Arc::new(AppInner {
                view: RwLock::new(Arc::new(View {
                    tree: Arc::new(tree),
                    env: Arc::new(env),
                    slots,
                    schemas: Arc::default(),
                })),
                registry,
                state: Mutex::new(State::default()),
                env_overrides,
                readiness: Readiness::default(),
            }),
        }
    }

    /// The current tree (a reload may replace it; this is a snapshot).
    pub fn tree(&self) -> Arc<AppTree> {
        Arc::clone(&self.inner.view().tree)
    }

    /// The variables set over the app's environment when it was opened.
    pub fn env_overrides(&self) -> &BTreeMap<String, String> {
        &self.inner.env_overrides
    }

    /// The current environment for templates (values are never logged).
    pub fn env(&self) -> Arc<Env> {
        Arc::clone(&self.inner.view().env)
    }

    /// Whether the running elements can do their work (see [`Readiness`]): what a robot
    /// reports about its connection, and the elements that failed to start.
    pub fn readiness(&self) -> Readiness {
        self.inner.readiness.clone()
    }

    /// The loaders this app was made with.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
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
        self.start_where(|_| true).await
    }

    /// [`App::start`] limited to the elements `pick` accepts.
    async fn start_where(&self, pick: impl Fn(&str) -> bool) -> StartReport {
        let mut report = StartReport::default();
        let tree = self.tree();
        for phase in [LoadTime::BeforeHandleRequest, LoadTime::AfterAppInit] {
            let names: Vec<String> = tree
                .elements
                .values()
                .filter(|e| e.def.backend_load_time == Some(phase) && pick(&e.full_name))
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
                        self.inner.readiness.start_failed(&n, e.to_string());
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
        Arc::clone(&self.inner)
            .call(full_name, None, function, args, chunks)
            .await
    }

    /// Who looked up whom: dependent -> its dependencies.
    pub fn dependencies(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.inner.state().deps.clone()
    }

    /// Every name each element tried to look up (found, failed or unknown).
    pub(crate) fn lookups_tried(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.inner.state().tried.clone()
    }

    /// Running elements (those with a runtime), in load order.
    pub fn running(&self) -> Vec<String> {
        self.inner
            .state()
            .running
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Running elements with a fingerprint of what each runs as (its definition and its
    /// chain's, content, rendered config; hashed, never the values). Two apps running the
    /// same elements from the same sources and environment give equal maps.
    pub fn running_fingerprints(&self) -> BTreeMap<String, u64> {
        self.inner
            .state()
            .running
            .iter()
            .map(|r| (r.name.clone(), r.fingerprint))
            .collect()
    }

    /// Stops every running element: dependents before what they depend on, each wave
    /// concurrently, each element bounded by `deadline`. Later loads are refused.
    pub async fn stop(&self, deadline: Duration) -> StopReport {
        let (remaining, deps) = {
            let mut st = self.inner.state();
            st.stopping = true;
            (std::mem::take(&mut st.running), st.deps.clone())
        };
        stop_in_order(remaining, &deps, deadline, &self.inner.readiness).await
    }

    /// Swaps in a new tree and environment. Elements in `restart` (and any not in `tree`)
    /// are stopped (dependents first) before the swap and get fresh load-once slots; the
    /// others keep their slot and runtime. Then the restarted elements that load at start
    /// are started, and on-demand elements nothing needs any more are stopped.
    pub(crate) async fn replace(
        &self,
        tree: AppTree,
        env: Env,
        restart: &BTreeSet<String>,
        deadline: Duration,
    ) -> ReplaceReport {
        let goes = |n: &str| restart.contains(n) || !tree.elements.contains_key(n);
        let mut report = ReplaceReport::default();
        // Stop first, so an element never runs twice (old and new) at the same time.
        let (taken, deps) = {
            let mut st = self.inner.state();
            let taken = take_running(&mut st, |r| goes(&r.name));
            (taken, st.deps.clone())
        };
        let stopped = stop_in_order(taken, &deps, deadline, &self.inner.readiness).await;
        report.stopped.extend(stopped.order());
        report.timed_out.extend(stopped.timed_out);

        let stragglers = {
            let mut st = self.inner.state();
            let old = self.inner.view();
            let slots = tree
                .elements
                .keys()
                .map(|n| {
                    let slot = match old.slots.get(n) {
                        Some(s) if !goes(n) => Arc::clone(s),
                        _ => Slot::default(),
                    };
                    (n.clone(), slot)
                })
                .collect();
            self.inner.set_view(View {
                tree: Arc::new(tree.clone()),
                env: Arc::new(env),
                slots,
                schemas: Arc::default(),
            });
            st.deps.retain(|k, _| !goes(k));
            st.tried.retain(|k, _| !goes(k));
            st.pinned.retain(|k| !goes(k));
            for n in restart {
                self.inner.readiness.clear_start_failure(n);
            }
            for n in old.tree.elements.keys().filter(|n| goes(n)) {
                self.inner.readiness.clear_start_failure(n);
            }
            // Loads of the old generation that finished while the others were stopping.
            take_running(&mut st, |r| goes(&r.name))
        };
        let stopped = stop_in_order(stragglers, &deps, deadline, &self.inner.readiness).await;
        report.stopped.extend(stopped.order());
        report.timed_out.extend(stopped.timed_out);

        report.start = self.start_where(|n| restart.contains(n)).await;
        let collected = self.collect_unneeded(deadline).await;
        report.stopped.extend(collected.order());
        report.timed_out.extend(collected.timed_out);
        report
    }

    /// Stops running on-demand elements that nothing outside looked up and no running
    /// element depends on (a reload may leave such orphans; a clean start would not load
    /// them). Their slots are reset, so a later lookup loads them again.
    async fn collect_unneeded(&self, deadline: Duration) -> StopReport {
        let mut report = StopReport::default();
        loop {
            let victims = {
                let mut st = self.inner.state();
                let view = self.inner.view();
                let needed: HashSet<String> = st
                    .running
                    .iter()
                    .filter_map(|r| st.deps.get(&r.name))
                    .flatten()
                    .cloned()
                    .collect();
                let orphan: HashSet<String> = st
                    .running
                    .iter()
                    .filter(|r| {
                        !st.pinned.contains(&r.name)
                            && !needed.contains(&r.name)
                            && view
                                .tree
                                .get(&r.name)
                                .is_some_and(|e| e.def.backend_load_time.is_none())
                    })
                    .map(|r| r.name.clone())
                    .collect();
                if orphan.is_empty() {
                    break;
                }
                let mut slots = view.slots.clone();
                for n in &orphan {
                    slots.insert(n.clone(), Slot::default());
                }
                self.inner.set_view(View {
                    tree: Arc::clone(&view.tree),
                    env: Arc::clone(&view.env),
                    slots,
                    schemas: Arc::clone(&view.schemas),
                });
                st.deps.retain(|k, _| !orphan.contains(k));
                st.tried.retain(|k, _| !orphan.contains(k));
                take_running(&mut st, |r| orphan.contains(&r.name))
            };
            tracing::debug!(
                count = victims.len(),
                "stopping on-demand elements no longer needed"
            );
            let deps = self.dependencies();
            let r = stop_in_order(victims, &deps, deadline, &self.inner.readiness).await;
            report.waves.extend(r.waves);
            report.timed_out.extend(r.timed_out);
        }
        report
    }
}

fn take_running(st: &mut State, pick: impl Fn(&Running) -> bool) -> Vec<Running> {
    let (taken, kept) = std::mem::take(&mut st.running).into_iter().partition(pick);
    st.running = kept;
    taken
}

/// Stops `remaining`: dependents before what they depend on, each wave concurrently, each
/// element bounded by `deadline`.
async fn stop_in_order(
    mut remaining: Vec<Running>,
    deps: &BTreeMap<String, BTreeSet<String>>,
    deadline: Duration,
    readiness: &Readiness,
) -> StopReport {
    let mut report = StopReport::default();
    while !remaining.is_empty() {
        let names: HashSet<&str> = remaining.iter().map(|r| r.name.as_str()).collect();
        // Stoppable now: nothing still running depends on it.
        let needed: HashSet<String> = names
            .iter()
            .filter_map(|n| deps.get(*n))
            .flatten()
            .filter(|d| names.contains(d.as_str()))
            .cloned()
            .collect();
        let (mut wave, rest): (Vec<_>, Vec<_>) = remaining
            .into_iter()
            .partition(|r| !needed.contains(&r.name));
        remaining = rest;
        if wave.is_empty() {
            // Only a cycle of call-time lookups is left: no order is right; stop them all.
            tracing::warn!("elements depend on each other in a cycle; stopping them together");
            wave = std::mem::take(&mut remaining);
        }
        wave.sort_by(|a, b| a.name.cmp(&b.name));
        let mut set = JoinSet::new();
        for r in &wave {
            let (n, rt) = (r.name.clone(), Arc::clone(&r.runtime));
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
        for r in &wave {
            readiness.remove(&r.name, r.generation);
            if done.get(&r.name).copied() == Some(true) {
                tracing::info!(element = %r.name, "stopped");
            } else {
                tracing::warn!(element = %r.name, "did not stop within {deadline:?}; leaving it");
                report.timed_out.push(r.name.clone());
            }
        }
        report
            .waves
            .push(wave.into_iter().map(|r| r.name).collect());
    }
    report
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("elements", &self.inner.view().tree.elements.len())
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
