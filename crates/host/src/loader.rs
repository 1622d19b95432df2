//! Loaders (how a Type brings its instances to life) and the registry of built-in ones.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jitnode_element::{ConfigSchema, Definition, Element, FileError};
use serde_json::Value;

use crate::app::AppHandle;
use crate::readiness::{Readiness, ReadinessReporter};
use crate::runtime::{BoxError, BoxFuture, ElementRuntime};

/// The folder, inside the app directory, where elements keep their state (records,
/// caches).
pub const DATA_DIR: &str = "data";

/// The app directory of an element folder: its source (`<app>/elements/a/b`) or its copy
/// in dist (`<app>/dist/e/a/b.<hash>`).
pub fn app_dir_of(element_dir: &Path, full_name: &str) -> Option<PathBuf> {
    let depth = full_name.split('.').count();
    let root = element_dir.ancestors().nth(depth)?;
    let name = root.file_name()?.to_str()?;
    if name == "elements" {
        return root.parent().map(Path::to_path_buf);
    }
    let dist = root.parent()?;
    if name == "e" && dist.file_name()?.to_str()? == "dist" {
        return dist.parent().map(Path::to_path_buf);
    }
    None
}

/// The scheme of built-in loaders in `backendBundleEntry`: `builtin:<name>`.
pub const BUILTIN_SCHEME: &str = "builtin:";

/// Loads elements of the Types that name it. Called once per element (the host caches the
/// result); whatever it returns is the element's runtime until it is stopped.
///
/// ```
/// use jitnode_host::{BoxError, BoxFuture, ElementRuntime, FnRuntime, LoadContext, Loader, Registry};
/// use serde_json::{json, Value};
///
/// /// `builtin:greeter`: instances greet the `name` from their config.json.
/// struct Greeter;
///
/// impl Loader for Greeter {
///     fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
///         Box::pin(async move {
///             let name = match cx.config().and_then(|c| c.get("name")) {
///                 Some(Value::String(s)) => s.clone(),
///                 _ => return Err(format!("{}: config.json needs a \"name\"", cx.full_name()).into()),
///             };
///             let rt = FnRuntime::new().function("greet", move |_args, chunks| {
///                 let name = name.clone();
///                 async move {
///                     chunks.send(json!("thinking"));
///                     Ok(json!(format!("hello {name}")))
///                 }
///             });
///             Ok(Box::new(rt) as Box<dyn ElementRuntime>)
///         })
///     }
/// }
///
/// let mut registry = Registry::with_builtins();
/// registry.register("greeter", Greeter);
/// assert_eq!(registry.names(), ["builtin:echo", "builtin:greeter"]);
/// ```
pub trait Loader: Send + Sync + 'static {
    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>>;

    /// The JSON Schema of the configs of the elements below `type_el` (the Type naming this
    /// loader). The host validates every such element's rendered config against it, with
    /// its defaults filled in, before [`Loader::load`] sees it (see
    /// [`ConfigSchema`](jitnode_element::ConfigSchema)). `None`: no schema, configs are
    /// passed as rendered.
    fn config_schema<'a>(
        &'a self,
        type_el: &'a Element,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigSchema>>, BoxError>> {
        let _ = type_el;
        Box::pin(async { Ok(None) })
    }
}

struct FnLoader<F>(F);

impl<F, Fut> Loader for FnLoader<F>
where
    F: Fn(LoadContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Box<dyn ElementRuntime>, BoxError>> + Send + 'static,
{
    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin((self.0)(cx))
    }
}

/// A loader from an async closure.
pub fn loader_fn<F, Fut>(f: F) -> impl Loader
where
    F: Fn(LoadContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Box<dyn ElementRuntime>, BoxError>> + Send + 'static,
{
    FnLoader(f)
}

/// What a loader gets: the element being loaded, its rendered config, and the app.
pub struct LoadContext {
    pub(crate) element: Arc<Element>,
    pub(crate) loader: Arc<Element>,
    pub(crate) config: Option<Arc<Value>>,
    pub(crate) app: AppHandle,
    pub(crate) readiness: Readiness,
    pub(crate) generation: u64,
}

impl LoadContext {
    /// The element being loaded (`nodes[0]` in JitAI terms).
    pub fn element(&self) -> &Element {
        &self.element
    }

    pub fn full_name(&self) -> &str {
        &self.element.full_name
    }

    /// Its e.json (all keys, known and unknown, are in `definition().raw`).
    pub fn definition(&self) -> &Definition {
        &self.element.def
    }

    /// The element whose `backendBundleEntry` chose this loader (usually its Type).
    pub fn loader_element(&self) -> &Element {
        &self.loader
    }

    /// Reads one of the element's files; refuses `..`, absolute paths and symlink escapes.
    pub fn file(&self, rel: &str) -> Result<Vec<u8>, FileError> {
        self.element.read_file(rel)
    }

    /// The element's config.json with templates rendered, or `None` when it has none.
    /// When its Type declares a schema, the config has been validated against it and its
    /// defaults filled in (then it is `Some` even without a config.json).
    /// Holds secrets: never log it.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_deref()
    }

    /// The app directory, worked out from where the element's files are; `None` for an
    /// element that lives in neither `elements/` nor `dist/`.
    pub fn app_dir(&self) -> Option<PathBuf> {
        app_dir_of(&self.element.dir, &self.element.full_name)
    }

    /// `<app>/data`, where elements keep state; the element's own folder when the app
    /// directory is unknown.
    pub fn data_dir(&self) -> PathBuf {
        self.app_dir()
            .unwrap_or_else(|| self.element.dir.clone())
            .join(DATA_DIR)
    }

    /// Declares that this element has a readiness of its own (e.g. a connection to an
    /// outside service), pending on `what` (`"connecting"`) until the returned reporter
    /// says otherwise. Call it at most once per load; see [`Readiness`].
    pub fn readiness(&self, what: &str) -> ReadinessReporter {
        self.readiness
            .reporter(&self.element.full_name, self.generation, what)
    }

    /// The app, to look up other elements by fullName. Lookups through this handle are
    /// recorded as dependencies of this element (it is stopped before them).
    pub fn app(&self) -> &AppHandle {
        &self.app
    }
}

impl fmt::Debug for LoadContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadContext")
            .field("element", &self.element.full_name)
            .field("loader", &self.loader.full_name)
            .field("config", &self.config.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Built-in loaders by name (`builtin:<name>` in a Type's `backendBundleEntry`).
#[derive(Clone, Default)]
pub struct Registry {
    loaders: BTreeMap<String, Arc<dyn Loader>>,
    /// Loaders that take every entry starting with a scheme, e.g. `native:` for plugins
    /// whose entry carries a path (`native:./plugin`).
    schemes: BTreeMap<String, Arc<dyn Loader>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The loaders this crate provides: `builtin:echo`.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        r.register("echo", crate::echo::EchoLoader);
        r
    }

    /// Registers `loader` as `builtin:<name>` (`name` may already carry the scheme).
    /// A later registration of the same name replaces the earlier one.
    pub fn register(&mut self, name: &str, loader: impl Loader) -> &mut Registry {
        self.register_arc(name, Arc::new(loader))
    }

    pub fn register_arc(&mut self, name: &str, loader: Arc<dyn Loader>) -> &mut Registry {
        let name = name.strip_prefix(BUILTIN_SCHEME).unwrap_or(name);
        self.loaders
            .insert(format!("{BUILTIN_SCHEME}{name}"), loader);
        self
    }

    /// Registers `loader` for every entry that starts with `scheme` (e.g. `native:`).
    /// Exact `builtin:` names are looked up first.
    pub fn register_scheme(&mut self, scheme: &str, loader: Arc<dyn Loader>) -> &mut Registry {
        self.schemes.insert(scheme.to_string(), loader);
        self
    }

    /// The loader for a `backendBundleEntry` such as `builtin:echo` or `native:./plugin`.
    pub fn get(&self, entry: &str) -> Option<Arc<dyn Loader>> {
        if let Some(l) = self.loaders.get(entry) {
            return Some(l.clone());
        }
        self.schemes
            .iter()
            .find(|(scheme, _)| entry.starts_with(scheme.as_str()))
            .map(|(_, l)| l.clone())
    }

    /// Registered entries and schemes, e.g. `["builtin:echo", "native:*"]`.
    pub fn names(&self) -> Vec<String> {
        let schemes = self.schemes.keys().map(|s| format!("{s}*"));
        self.loaders.keys().cloned().chain(schemes).collect()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_dir_from_source_and_dist() {
        assert_eq!(
            app_dir_of(Path::new("/app/elements/imRobots/demo"), "imRobots.demo"),
            Some(PathBuf::from("/app"))
        );
        assert_eq!(
            app_dir_of(
                Path::new("/app/dist/e/imRobots/demo.abc123"),
                "imRobots.demo"
            ),
            Some(PathBuf::from("/app"))
        );
        assert_eq!(app_dir_of(Path::new("/x/y/z"), "a.b"), None);
    }
}
