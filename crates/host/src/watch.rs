//! `jitnode run --watch`: file events from the app folder, debounced, fed to a [`Reloader`].
//!
//! Watched: `<app>/elements` recursively (directories, so an editor saving by writing a new
//! file and renaming it over the old one is seen) and `<app>` itself for `.env`. Ignored:
//! hidden entries (except `.env`), `dist/` and `target/` folders, and read-only access
//! events. A burst of events (a save is often several) becomes one reload once the folder
//! has been quiet for the debounce time. Writes that change nothing are dropped by the
//! reload itself: dist compares content hashes, so nothing restarts.
//!
//! Not every file system sends events (some network and container mounts do not), so a
//! polling watcher (periodic scans comparing contents) can be chosen, and is used
//! automatically when the native watcher cannot start.

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use tokio::sync::mpsc;

use crate::reload::{ReloadReport, Reloader};

/// How file changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchMode {
    /// The platform's watcher (inotify, FSEvents/kqueue, ...), else polling.
    #[default]
    Auto,
    /// The platform's watcher only; fail when it cannot start.
    Native,
    /// Periodic scans; works on file systems that send no events.
    Poll,
}

impl FromStr for WatchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<WatchMode, String> {
        match s {
            "" | "auto" => Ok(WatchMode::Auto),
            "native" => Ok(WatchMode::Native),
            "poll" => Ok(WatchMode::Poll),
            other => Err(format!(
                "unknown watch mode \"{other}\" (expected auto, native or poll)"
            )),
        }
    }
}

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub mode: WatchMode,
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Scan interval of the polling watcher.
    pub poll_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            mode: WatchMode::Auto,
            debounce: Duration::from_millis(150),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("{}: nothing to watch (no element sources; --watch needs elements/)", path.display())]
    NoSources { path: PathBuf },
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Relevant file changes in an app folder, as a stream of debounced batches.
pub struct FileEvents {
    // Kept alive for as long as events are wanted; dropping it stops watching.
    _watcher: Box<dyn notify::Watcher + Send>,
    rx: mpsc::UnboundedReceiver<PathBuf>,
    kind: &'static str,
}

impl std::fmt::Debug for FileEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEvents")
            .field("kind", &self.kind)
            .finish()
    }
}

impl FileEvents {
    /// Starts watching `app_dir` (see the module docs for what is watched).
    pub fn watch(app_dir: &Path, options: &WatchOptions) -> Result<FileEvents, WatchError> {
        let elements = app_dir.join("elements");
        if !elements.is_dir() {
            return Err(WatchError::NoSources { path: elements });
        }
        // Watchers report absolute paths: a relative app dir (`jitnode run .`) would match
        // none of them, and every write in it (dist/, data/) would look relevant.
        let canonical = app_dir.canonicalize();
        let app_dir = canonical.as_deref().unwrap_or(app_dir);
        match options.mode {
            WatchMode::Poll => Self::poll(app_dir, options),
            WatchMode::Native => Self::native(app_dir),
            WatchMode::Auto => Self::native(app_dir).or_else(|e| {
                tracing::warn!(
                    "{e}; watching by polling every {:?} instead",
                    options.poll_interval
                );
                Self::poll(app_dir, options)
            }),
        }
    }

    /// `"native"` or `"poll"`: which watcher is in use.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn native(app_dir: &Path) -> Result<FileEvents, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(handler(app_dir, tx)).map_err(|source| {
            WatchError::Watch {
                path: app_dir.to_path_buf(),
                source,
            }
        })?;
        Self::start(app_dir, Box::new(watcher), rx, "native")
    }

    fn poll(app_dir: &Path, options: &WatchOptions) -> Result<FileEvents, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = notify::Config::default()
            .with_poll_interval(options.poll_interval)
            // mtime granularity can hide a quick second save; contents cannot lie.
            .with_compare_contents(true);
        let watcher = notify::PollWatcher::new(handler(app_dir, tx), config).map_err(|source| {
            WatchError::Watch {
                path: app_dir.to_path_buf(),
                source,
            }
        })?;
        Self::start(app_dir, Box::new(watcher), rx, "poll")
    }

    fn start(
        app_dir: &Path,
        mut watcher: Box<dyn notify::Watcher + Send>,
        rx: mpsc::UnboundedReceiver<PathBuf>,
        kind: &'static str,
    ) -> Result<FileEvents, WatchError> {
        for (path, mode) in [
            (app_dir.join("elements"), RecursiveMode::Recursive),
            (app_dir.to_path_buf(), RecursiveMode::NonRecursive),
        ] {
            watcher
                .watch(&path, mode)
                .map_err(|source| WatchError::Watch { path, source })?;
        }
        tracing::info!(watcher = kind, "watching {} for changes", app_dir.display());
        Ok(FileEvents {
            _watcher: watcher,
            rx,
            kind,
        })
    }

    /// Waits for the next change, then for `quiet` without further events; returns the
    /// changed paths (deduplicated), or `None` when the watcher is gone.
    pub async fn next_batch(&mut self, quiet: Duration) -> Option<Vec<PathBuf>> {
        let first = self.rx.recv().await?;
        let mut batch = vec![first];
        // A closed channel ends the batch like quiet does.
        while let Ok(Some(p)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            batch.push(p);
        }
        batch.sort();
        batch.dedup();
        Some(batch)
    }
}

/// The notify callback: forwards relevant paths to the channel.
fn handler(
    app_dir: &Path,
    tx: mpsc::UnboundedSender<PathBuf>,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    let app_dir = app_dir.to_path_buf();
    move |res: notify::Result<notify::Event>| match res {
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for p in event.paths {
                if relevant(&app_dir, &p) {
                    // A closed receiver means nobody watches any more.
                    let _ = tx.send(p);
                }
            }
        }
        // E.g. the kernel's event queue overflowed: rescan to be safe.
        Err(e) => {
            tracing::warn!("file watcher: {e}; reloading to be safe");
            let _ = tx.send(app_dir.join("elements"));
        }
    }
}

/// True for paths whose change can change the app: under `elements/` (but not in hidden
/// entries, `dist/` or `target/`), and `.env`.
pub(crate) fn relevant(app_dir: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(app_dir) else {
        // Some back ends report canonical paths; judge those by their own components.
        return !path
            .components()
            .any(|c| matches!(c, Component::Normal(s) if s.to_string_lossy().starts_with('.') && s != ".env"));
    };
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    match parts.first().map(String::as_str) {
        Some(".env") => parts.len() == 1,
        Some("elements") => !parts[1..]
            .iter()
            .any(|p| p.starts_with('.') || p == "dist" || p == "target"),
        // The app folder itself (e.g. elements/ replaced by a rename).
        None => true,
        _ => false,
    }
}

/// Watches the app and reloads on every change until `shutdown` completes (checked between
/// reloads, so a reload is never cut in half); returns what `shutdown` returned.
/// `on_reload` sees each report (for tests and benchmarks; the log already shows it).
pub async fn run<F, T>(
    reloader: &mut Reloader,
    options: &WatchOptions,
    shutdown: F,
    on_reload: impl FnMut(&ReloadReport),
) -> Result<T, WatchError>
where
    F: Future<Output = T>,
{
    let events = FileEvents::watch(reloader.app_dir(), options)?;
    run_events(reloader, events, options, shutdown, on_reload).await
}

/// [`run`] on a watcher already started with [`FileEvents::watch`]: its watches are in
/// place once that returns, so a caller can make changes knowing they will be seen (the
/// readiness signal tests and benchmarks need instead of a sleep).
pub async fn run_events<F, T>(
    reloader: &mut Reloader,
    mut events: FileEvents,
    options: &WatchOptions,
    shutdown: F,
    mut on_reload: impl FnMut(&ReloadReport),
) -> Result<T, WatchError>
where
    F: Future<Output = T>,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            out = &mut shutdown => return Ok(out),
            batch = events.next_batch(options.debounce) => {
                let Some(batch) = batch else {
                    tracing::warn!("the file watcher stopped; no more reloads");
                    return Ok(shutdown.await);
                };
                tracing::debug!(paths = batch.len(), "files changed");
                let report = reloader.reload_from_disk().await;
                on_reload(&report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevant_paths() {
        let app = Path::new("/app");
        assert!(relevant(app, Path::new("/app/elements/a/e.json")));
        assert!(relevant(app, Path::new("/app/elements/a/b")));
        assert!(relevant(app, Path::new("/app/.env")));
        assert!(!relevant(app, Path::new("/app/dist/manifest.json")));
        assert!(!relevant(app, Path::new("/app/.dist-tmp-1/e")));
        assert!(!relevant(app, Path::new("/app/elements/a/.e.json.swp")));
        assert!(!relevant(app, Path::new("/app/elements/a/target/debug/x")));
        assert!(!relevant(app, Path::new("/app/elements/a/dist/x")));
        assert!(!relevant(app, Path::new("/app/README.md")));
        assert_eq!("poll".parse::<WatchMode>(), Ok(WatchMode::Poll));
        assert!("fast".parse::<WatchMode>().is_err());
    }

    fn fake() -> (FileEvents, mpsc::UnboundedSender<PathBuf>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = FileEvents {
            _watcher: Box::new(notify::NullWatcher),
            rx,
            kind: "test",
        };
        (events, tx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_batch_after_the_quiet_time() {
        let (mut events, tx) = fake();
        let quiet = Duration::from_millis(150);
        let feeder = tokio::spawn(async move {
            for (ms, p) in [(0, "a"), (100, "b"), (100, "a"), (400, "c")] {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                tx.send(PathBuf::from(p)).unwrap();
            }
        });
        let start = tokio::time::Instant::now();
        let first = events.next_batch(quiet).await.unwrap();
        assert_eq!(first, [PathBuf::from("a"), PathBuf::from("b")]);
        // Returned once 150 ms passed after the last event of the burst (at 200 ms).
        assert_eq!(start.elapsed(), Duration::from_millis(350));
        let second = events.next_batch(quiet).await.unwrap();
        assert_eq!(second, [PathBuf::from("c")]);
        feeder.await.unwrap();
        // The sender is gone: no more batches.
        assert_eq!(events.next_batch(quiet).await, None);
    }
}
