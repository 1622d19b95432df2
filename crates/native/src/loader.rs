//! [`NativeLoader`]: the host [`Loader`] for native Types.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jitnode_element::{ConfigSchema, Element};
use jitnode_host::{
    ArgSpec, BoxError, BoxFuture, ChunkSink, ElementRuntime, FunctionError, FunctionSpec,
    LoadContext, Loader, Registry,
};
use jitnode_plugin::{Function, LoadArgs};
use serde_json::Value;

use crate::build::{cargo_build, place_fresh, CargoOptions};
use crate::entry::{resolve_source, NativeSource, BUILTIN_NAME};
use crate::error::NativeError;
use crate::library::{CallFailure, Instance, Plugin};
use crate::record::{usable_library, Unusable};

/// Where native builds go and how cargo runs.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Per-Type output: `<out_dir>/<Type fullName>/` holds the loaded library copies and
    /// the record of the current one (`library.json`), and, unless `target_dir` is set,
    /// cargo's target dir `target/`. Usually `<app>/dist/native`.
    pub out_dir: PathBuf,
    /// One cargo target dir shared by every native Type (saves rebuilding common
    /// dependencies); `None`: one per Type under `out_dir`.
    pub target_dir: Option<PathBuf>,
    /// The app's source element root (`<app>/elements`). When a Type's plugin crate
    /// exists there too, it is built from there rather than from the Type's copy in
    /// `dist/`, so that relative path dependencies resolve as their author wrote them
    /// (the copy sits at another depth). `None`, or no sources: built where the Type is.
    pub source_root: Option<PathBuf>,
    /// Run from dist/ alone: a crate Type is never built; the library recorded for it in
    /// `out_dir` is checked and loaded, or the load fails saying what is missing.
    pub from_dist: bool,
    pub cargo: CargoOptions,
}

impl NativeOptions {
    /// Builds into `<app_dir>/dist/native/<Type fullName>/`, release mode, from the
    /// sources in `<app_dir>/elements`.
    pub fn for_app(app_dir: &Path) -> NativeOptions {
        NativeOptions {
            out_dir: app_dir.join("dist").join("native"),
            target_dir: None,
            source_root: Some(app_dir.join("elements")),
            from_dist: false,
            cargo: CargoOptions::default(),
        }
    }

    /// Loads the libraries recorded in `<app_dir>/dist/native` and never runs cargo: for
    /// `--from-dist` and for apps deployed as dist/ without their sources.
    pub fn for_dist(app_dir: &Path) -> NativeOptions {
        NativeOptions {
            source_root: None,
            from_dist: true,
            ..NativeOptions::for_app(app_dir)
        }
    }
}

/// What [`NativeLoader::build`] did for one crate Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The library copy now recorded for the Type.
    pub library: PathBuf,
    /// True when cargo ran (the sources or the ABI changed, or nothing usable was recorded).
    pub rebuilt: bool,
    /// Copies no record and no running host named any more, now deleted.
    pub removed: Vec<PathBuf>,
}

/// The last plugin built from one source, with the source's stat fingerprint then.
type SourceSlot = Arc<tokio::sync::Mutex<Option<(u64, Arc<Plugin>)>>>;

struct Inner {
    options: NativeOptions,
    /// Per plugin source (crate folder or library file): serialises its builds and
    /// remembers the result while the source is unchanged.
    sources: Mutex<HashMap<PathBuf, SourceSlot>>,
    /// Opened libraries by placed path (content hash in the name): each is opened once.
    opened: Mutex<HashMap<PathBuf, Arc<Plugin>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent whatever panicked while one was held (single inserts).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads elements of native Types: finds the Type's plugin (see [`resolve_source`]),
/// builds it with cargo when it is a crate, copies the library to a fresh file name,
/// opens it (ABI checked first), and makes one plugin instance per element.
///
/// Registering it trusts the app's native Types like any code the host runs. Cheap to
/// clone (shared caches).
#[derive(Clone)]
pub struct NativeLoader {
    inner: Arc<Inner>,
}

impl NativeLoader {
    pub fn new(options: NativeOptions) -> NativeLoader {
        NativeLoader {
            inner: Arc::new(Inner {
                options,
                sources: Mutex::new(HashMap::new()),
                opened: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// [`NativeLoader::new`] with [`NativeOptions::for_app`].
    pub fn for_app(app_dir: &Path) -> NativeLoader {
        NativeLoader::new(NativeOptions::for_app(app_dir))
    }

    pub fn options(&self) -> &NativeOptions {
        &self.inner.options
    }

    /// Registers this loader for the `native:<path>` scheme and as `builtin:native` (Types
    /// then name their plugin with `"nativeEntry"`; see the crate docs).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(BUILTIN_NAME, self.clone());
        registry.register_scheme(
            crate::entry::NATIVE_SCHEME,
            std::sync::Arc::new(self.clone()),
        );
    }

    /// The plugin of the native Type `type_el`, built and opened if its source changed
    /// since the last call (or was never used). Concurrent calls for one Type build once.
    ///
    /// A crate is built only when the library recorded for it in `out_dir` does not fit
    /// (other sources or ABI, another target, a changed file); with
    /// [`NativeOptions::from_dist`] it is never built and the recorded library must fit.
    pub async fn plugin_for(&self, type_el: &Element) -> Result<Arc<Plugin>, NativeError> {
        Ok(self.prepare(type_el).await?.0)
    }

    /// For `jitnode build`: brings the library of a crate Type up to date (cargo runs only
    /// when it must, as in [`NativeLoader::plugin_for`]), records it, and removes copies
    /// that neither the record nor a running host names. `Ok(None)` for a Type whose
    /// plugin is a prebuilt library (nothing to build).
    pub async fn build(&self, type_el: &Element) -> Result<Option<Built>, NativeError> {
        if matches!(resolve_source(type_el)?, NativeSource::Library(_)) {
            return Ok(None);
        }
        let (plugin, rebuilt, mut removed) = self.prepare(type_el).await?;
        // Also when nothing was rebuilt: copies of hosts that have exited since go now.
        removed.extend(self.collect_unused(&type_el.full_name).await);
        Ok(Some(Built {
            library: plugin.path().to_path_buf(),
            rebuilt,
            removed,
        }))
    }

    /// [`NativeLoader::plugin_for`], whether cargo ran for it, and the copies removed
    /// after it did.
    async fn prepare(
        &self,
        type_el: &Element,
    ) -> Result<(Arc<Plugin>, bool, Vec<PathBuf>), NativeError> {
        let source = match resolve_source(type_el)? {
            NativeSource::Crate(dir) if !self.inner.options.from_dist => {
                NativeSource::Crate(self.source_crate(type_el, &dir).unwrap_or(dir))
            }
            other => other,
        };
        let key = key_path(&source);
        let type_name = type_el.full_name.clone();
        let type_out = self.inner.options.out_dir.join(&type_name);
        let record = jitnode_dist::record_path(&self.inner.options.out_dir, &type_name);
        let slot = Arc::clone(lock(&self.inner.sources).entry(key.clone()).or_default());
        let mut last = slot.lock().await;
        // From dist the record says which library to use: watch it instead of the crate.
        let fp = match &source {
            NativeSource::Crate(_) if self.inner.options.from_dist => {
                fingerprint(&NativeSource::Library(record.clone()))
            }
            other => fingerprint(other),
        };
        if let Some((seen, plugin)) = last.as_ref() {
            if *seen == fp {
                return Ok((Arc::clone(plugin), false, Vec::new()));
            }
        }
        let (plugin, rebuilt, removed) = match &source {
            NativeSource::Crate(dir) if self.inner.options.from_dist => {
                let this = self.clone();
                let (ty, dir, rec) = (type_name.clone(), dir.clone(), record.clone());
                let plugin = on_blocking_pool(&type_name, &key, move || {
                    this.open_recorded(&ty, &dir, &rec)
                })
                .await??;
                (plugin, false, Vec::new())
            }
            NativeSource::Crate(dir) => {
                let io = |source| NativeError::Io {
                    type_name: type_name.clone(),
                    action: "hash the plugin sources in",
                    path: dir.clone(),
                    source,
                };
                // Hashed before building: an edit while cargo runs then shows as a
                // change next time instead of being recorded as built.
                let d = dir.clone();
                let hash =
                    on_blocking_pool(&type_name, &key, move || crate::record::source_hash(&d))
                        .await?
                        .map_err(io)?;
                let this = self.clone();
                let (ty, rec, h) = (type_name.clone(), record.clone(), hash.clone());
                let reused =
                    on_blocking_pool(&type_name, &key, move || this.reuse_recorded(&ty, &rec, &h))
                        .await??;
                match reused {
                    Some(plugin) => (plugin, false, Vec::new()),
                    None => {
                        let target = match &self.inner.options.target_dir {
                            Some(t) => t.clone(),
                            None => type_out.join("target"),
                        };
                        let built =
                            cargo_build(&type_name, dir, &target, &self.inner.options.cargo)
                                .await?;
                        let this = self.clone();
                        let (ty, out, rec) = (type_name.clone(), type_out.clone(), record.clone());
                        let plugin = on_blocking_pool(&type_name, &key, move || {
                            this.place_and_record(&ty, &built, &out, &rec, hash)
                        })
                        .await??;
                        let removed = self.collect_unused(&type_name).await;
                        (plugin, true, removed)
                    }
                }
            }
            NativeSource::Library(file) => {
                let this = self.clone();
                let (ty, file, out) = (type_name.clone(), file.clone(), type_out.clone());
                let plugin = on_blocking_pool(&type_name, &key, move || {
                    let native = &this.inner.options.out_dir;
                    let _held = crate::lease::shared(native).map_err(lock_failed(&ty, native))?;
                    let placed = place_fresh(&ty, &file, &out)?;
                    this.lease_and_open(&ty, &placed)
                })
                .await??;
                (plugin, false, Vec::new())
            }
        };
        *last = Some((fp, Arc::clone(&plugin)));
        Ok((plugin, rebuilt, removed))
    }

    /// From dist alone: the recorded library, checked against the Type's copy of its
    /// crate in dist/, opened.
    fn open_recorded(
        &self,
        type_name: &str,
        dist_copy: &Path,
        record: &Path,
    ) -> Result<Arc<Plugin>, NativeError> {
        let copy_hash =
            crate::record::source_hash(dist_copy).map_err(|source| NativeError::Io {
                type_name: type_name.to_string(),
                action: "hash the plugin sources in",
                path: dist_copy.to_path_buf(),
                source,
            })?;
        let native = &self.inner.options.out_dir;
        let _held = crate::lease::shared(native).map_err(lock_failed(type_name, native))?;
        match usable_library(record, Some(&copy_hash)) {
            Ok((_, library)) => self.lease_and_open(type_name, &library),
            Err(Unusable::Missing) => Err(NativeError::NotBuilt {
                type_name: type_name.to_string(),
                record: record.to_path_buf(),
            }),
            Err(Unusable::Differs(what)) => Err(NativeError::DistLibrary {
                type_name: type_name.to_string(),
                record: record.to_path_buf(),
                what,
            }),
        }
    }

    /// With sources: the recorded library when it was built from sources hashing to
    /// `source_hash` for this target and ABI and is intact, opened; `None`: build.
    fn reuse_recorded(
        &self,
        type_name: &str,
        record: &Path,
        source_hash: &str,
    ) -> Result<Option<Arc<Plugin>>, NativeError> {
        let native = &self.inner.options.out_dir;
        let _held = crate::lease::shared(native).map_err(lock_failed(type_name, native))?;
        match usable_library(record, Some(source_hash)) {
            Ok((_, library)) => {
                tracing::debug!(r#type = %type_name, library = %library.display(), "native library is up to date");
                self.lease_and_open(type_name, &library).map(Some)
            }
            Err(Unusable::Missing) => Ok(None),
            Err(Unusable::Differs(what)) => {
                tracing::info!(r#type = %type_name, "rebuilding the native library: {what}");
                Ok(None)
            }
        }
    }

    /// Places a fresh build, opens it (which checks its ABI), then records it. All under
    /// the shared lock, so no collector sees the new copy before the record names it.
    fn place_and_record(
        &self,
        type_name: &str,
        built: &Path,
        type_out: &Path,
        record: &Path,
        source_hash: String,
    ) -> Result<Arc<Plugin>, NativeError> {
        let native = &self.inner.options.out_dir;
        let _held = crate::lease::shared(native).map_err(lock_failed(type_name, native))?;
        let placed = place_fresh(type_name, built, type_out)?;
        let plugin = self.lease_and_open(type_name, &placed)?;
        let io = |action: &'static str, path: &Path| {
            let (type_name, path) = (type_name.to_string(), path.to_path_buf());
            move |source| NativeError::Io {
                type_name,
                action,
                path,
                source,
            }
        };
        let library_hash = crate::record::file_hash(&placed).map_err(io("read", &placed))?;
        let entry = jitnode_dist::LibraryRecord {
            format: jitnode_dist::RECORD_FORMAT,
            type_name: type_name.to_string(),
            library: placed
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            library_hash,
            source_hash,
            target: crate::record::HOST_TARGET.to_string(),
            abi_version: jitnode_plugin::abi::ABI_VERSION,
            sdk_version: plugin.sdk_version().to_string(),
        };
        jitnode_dist::write_record(record, &entry).map_err(io("write", record))?;
        Ok(plugin)
    }

    /// Names the copy in this process's lease, then opens it. Call holding the shared lock.
    fn lease_and_open(&self, type_name: &str, placed: &Path) -> Result<Arc<Plugin>, NativeError> {
        let native = &self.inner.options.out_dir;
        let file = placed
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::lease::lease(native, type_name, &file).map_err(|source| NativeError::Io {
            type_name: type_name.to_string(),
            action: "write the lease of this host in",
            path: native.join("leases"),
            source,
        })?;
        self.open(placed, type_name)
    }

    /// Deletes the Type's copies nothing names any more (see the `lease` module); failures
    /// only cost disk space, so they are logged, not returned.
    async fn collect_unused(&self, type_name: &str) -> Vec<PathBuf> {
        let native = self.inner.options.out_dir.clone();
        let ty = type_name.to_string();
        let res =
            tokio::task::spawn_blocking(move || crate::lease::collect_unused(&native, &ty)).await;
        match res {
            Ok(Ok(removed)) => {
                for r in &removed {
                    tracing::info!(r#type = %type_name, library = %r.display(), "removed an unused native library copy");
                }
                removed
            }
            Ok(Err(e)) => {
                tracing::warn!(r#type = %type_name, "cannot remove unused native library copies: {e}");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(r#type = %type_name, "removing unused native library copies did not finish: {e}");
                Vec::new()
            }
        }
    }

    /// The crate folder `dir` (inside `type_el`'s folder) in the source tree, if there.
    fn source_crate(&self, type_el: &Element, dir: &Path) -> Option<PathBuf> {
        let root = self.inner.options.source_root.as_ref()?;
        let rel = dir.strip_prefix(&type_el.dir).ok()?;
        let src = root.join(type_el.full_name.replace('.', "/")).join(rel);
        (src != dir && src.join("Cargo.toml").is_file()).then_some(src)
    }

    /// Opens a placed library once; later calls get the same plugin.
    fn open(&self, placed: &Path, type_name: &str) -> Result<Arc<Plugin>, NativeError> {
        if let Some(p) = lock(&self.inner.opened).get(placed) {
            return Ok(Arc::clone(p));
        }
        // SAFETY: the library is the plugin of a Type of the app this host runs; running
        // its code is what registering the native loader means (see the type's doc).
        let plugin = Arc::new(unsafe { Plugin::open(placed, type_name) }?);
        tracing::info!(
            r#type = %type_name,
            library = %placed.display(),
            rust_type = %plugin.rust_type(),
            sdk = %plugin.sdk_version(),
            "native plugin opened"
        );
        let mut opened = lock(&self.inner.opened);
        Ok(Arc::clone(
            opened.entry(placed.to_path_buf()).or_insert(plugin),
        ))
    }
}

impl std::fmt::Debug for NativeLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeLoader")
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Runs `f` on the blocking pool; a task that does not finish (it panicked) is a broken
/// protocol of the Type whose library `key` is being opened.
async fn on_blocking_pool<T: Send + 'static>(
    type_name: &str,
    key: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NativeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NativeError::Protocol {
            type_name: type_name.to_string(),
            path: key.to_path_buf(),
            what: "opening".into(),
            message: format!("did not finish: {e}"),
        })
}

fn lock_failed<'a>(
    type_name: &'a str,
    native: &'a Path,
) -> impl FnOnce(std::io::Error) -> NativeError + 'a {
    move |source| NativeError::Io {
        type_name: type_name.to_string(),
        action: "lock",
        path: native.join("lock"),
        source,
    }
}

fn key_path(source: &NativeSource) -> PathBuf {
    match source {
        NativeSource::Crate(p) | NativeSource::Library(p) => p.clone(),
    }
}

/// Size and mtime of every file of the source (a crate: all files but `target/` and
/// hidden ones), hashed. Cheap enough to run per load, and any edit changes it; changes
/// to path dependencies outside the folder are not seen (cargo would see them, but is
/// not asked while this is unchanged).
fn fingerprint(source: &NativeSource) -> u64 {
    fn walk(dir: &Path, h: &mut DefaultHasher) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if n.starts_with('.') || n == "target" {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            n.hash(h);
            if meta.is_dir() {
                walk(&e.path(), h);
            } else {
                meta.len().hash(h);
                meta.modified().ok().hash(h);
            }
        }
    }
    let mut h = DefaultHasher::new();
    match source {
        NativeSource::Crate(dir) => walk(dir, &mut h),
        NativeSource::Library(file) => {
            if let Ok(meta) = std::fs::metadata(file) {
                meta.len().hash(&mut h);
                meta.modified().ok().hash(&mut h);
            }
        }
    }
    h.finish()
}

fn to_spec(f: &Function) -> FunctionSpec {
    FunctionSpec {
        name: f.name.clone(),
        title: f.title.clone(),
        args: f.args.as_ref().map(|args| {
            args.iter()
                .map(|a| ArgSpec {
                    name: a.name.clone(),
                    data_type: a.data_type.clone(),
                    required: a.required,
                })
                .collect()
        }),
    }
}

impl Loader for NativeLoader {
    /// Builds and opens the Type's plugin (as a load would) and asks it.
    fn config_schema<'a>(
        &'a self,
        type_el: &'a Element,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigSchema>>, BoxError>> {
        Box::pin(async move {
            let plugin = self.plugin_for(type_el).await?;
            Ok(plugin.config_schema().cloned())
        })
    }

    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(async move {
            let type_el = cx.loader_element().clone();
            let plugin = self.plugin_for(&type_el).await?;
            let args = LoadArgs {
                full_name: cx.full_name().to_string(),
                type_name: type_el.full_name.clone(),
                dir: cx.element().dir.clone(),
                config: cx.config().cloned().unwrap_or(Value::Null),
            };
            let p = Arc::clone(&plugin);
            let instance = tokio::task::spawn_blocking(move || p.instantiate(&args))
                .await
                .map_err(|e| format!("loading in the native plugin did not finish: {e}"))??;
            tracing::debug!(
                element = %cx.full_name(),
                library = %plugin.path().display(),
                "native element loaded"
            );
            let functions = plugin.functions().iter().map(to_spec).collect();
            Ok(Box::new(NativeRuntime {
                instance: Arc::new(instance),
                functions,
            }) as Box<dyn ElementRuntime>)
        })
    }
}

/// One element backed by a plugin instance. Calls run on tokio's blocking pool, since
/// plugin code is synchronous and may take its time.
struct NativeRuntime {
    instance: Arc<Instance>,
    functions: Vec<FunctionSpec>,
}

impl ElementRuntime for NativeRuntime {
    fn functions(&self) -> Vec<FunctionSpec> {
        self.functions.clone()
    }

    fn call<'a>(
        &'a self,
        function: &'a str,
        args: Value,
        _chunks: ChunkSink,
    ) -> BoxFuture<'a, Result<Value, FunctionError>> {
        let instance = Arc::clone(&self.instance);
        let function = function.to_string();
        Box::pin(async move {
            let res = tokio::task::spawn_blocking(move || instance.call(&function, &args)).await;
            match res {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(CallFailure::BadArgs(m))) => Err(FunctionError::BadArgs(m)),
                Ok(Err(other)) => Err(FunctionError::Failed(other.to_string())),
                Err(e) => Err(FunctionError::failed(format!(
                    "the native call did not finish: {e}"
                ))),
            }
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        let instance = Arc::clone(&self.instance);
        Box::pin(async move {
            let element = instance.element().to_string();
            match tokio::task::spawn_blocking(move || instance.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%element, "native stop failed: {e}"),
                Err(e) => tracing::warn!(%element, "native stop did not finish: {e}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use jitnode_element::Definition;

    use super::*;
    use crate::testing::write_file;

    #[test]
    fn crates_are_built_from_the_source_tree_when_it_has_them() {
        let d = tempfile::tempdir().unwrap();
        let dist_ty = d.path().join("dist/e/demo/kwType.abc123");
        let src_ty = d.path().join("elements/demo/kwType");
        for t in [&dist_ty, &src_ty] {
            write_file(&t.join("plugin/Cargo.toml"), "");
        }
        let el = Element {
            full_name: "demo.kwType".into(),
            dir: dist_ty.clone(),
            def: Definition::parse(br#"{"type": "demo.meta"}"#).unwrap(),
            chain: vec!["demo.kwType".into(), "demo.meta".into()],
        };
        let loader = NativeLoader::for_app(d.path());
        assert_eq!(
            loader.source_crate(&el, &dist_ty.join("plugin")),
            Some(src_ty.join("plugin"))
        );
        std::fs::remove_file(src_ty.join("plugin/Cargo.toml")).unwrap();
        assert_eq!(loader.source_crate(&el, &dist_ty.join("plugin")), None);
        let mut no_sources = NativeOptions::for_app(d.path());
        no_sources.source_root = None;
        assert_eq!(
            NativeLoader::new(no_sources).source_crate(&el, &dist_ty.join("plugin")),
            None
        );
    }
}
