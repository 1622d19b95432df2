//! Hot reload: turning a new version of the app's tree and environment into the fewest
//! restarts that make the running app equal to a clean start on that version.
//!
//! Which elements restart (decided here):
//! - changed: added, removed, or with a different definition, chain or content (the dist
//!   copy's folder carries a content hash, so a write that changes nothing changes nothing);
//! - config changed: the rendered `config.json` hashes differently (e.g. after a `.env`
//!   edit). Only hashes are kept, never rendered values;
//! - chain: every element whose type chain (before or after) contains one of the above, so a
//!   changed Type (or Type's Type) restarts its instances;
//! - dependents: every element that looked one of the restarted elements up (at load or at
//!   call time, transitively). A runtime may keep the `LoadedElement` it got, whose runtime
//!   the reload stops; restarting the dependent is the only way to be sure it holds the new
//!   one. It costs extra restarts (a robot that called a changed agent reconnects).
//!
//! Restarted elements that load at start (`afterAppInit`, `beforeHandleRequest`) are started
//! again; on-demand ones load again at their next lookup, and on-demand elements nothing
//! needs any more are stopped. So after any sequence of edits, the running set equals a
//! clean start on the final tree (whenever the final tree is valid).
//!
//! An invalid version (e.json problems, a cycle, a `config.json` that is not valid JSON,
//! uses a variable that is not set or fails its Type's schema, a broken `.env`) is rejected as a whole: the last good
//! version keeps running and the error names the file and line:column. A config that was
//! already failing in the last good version does not block later edits.
//!
//! Known limit: a version rejected only for its config templates has already been built
//! into `dist/`, which drops the old copies of the elements it changed. Those elements keep
//! running from memory, but an on-demand element among them that is first looked up before
//! the fix cannot read its old files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jitnode_dist::DistError;
use jitnode_element::{AppTree, Element, Env, EnvError, ProblemKind, TemplateError};

use crate::app::App;
use crate::error::{list, LookupError};
use crate::schema::{describe_problems, SchemaCache, SchemaFailure};

/// Why a new version was rejected (the last good one keeps running).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The element sources have problems, or dist/ could not be written.
    #[error(transparent)]
    Dist(#[from] DistError),
    /// The app's `.env` cannot be used (never holds a value).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Config templates that cannot be rendered, or configs that fail their Type's schema:
    /// one `file:line:column: message` each.
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
    /// The blocking build task could not finish (the runtime is shutting down).
    #[error("the rebuild task did not finish: {0}")]
    Task(String),
}

/// What one reload did. Lists are sorted by fullName.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Elements whose definition, content or rendered config changed (incl. added/removed).
    pub changed: Vec<String>,
    /// Were running, and run again with the new version.
    pub restarted: Vec<String>,
    /// Run now and did not before (new elements, or now needed).
    pub started: Vec<String>,
    /// Ran before and do not now (removed, now on-demand, failed to restart, no longer needed).
    pub stopped: Vec<String>,
    /// Elements that failed to start, with why.
    pub failed: Vec<(String, LookupError)>,
    /// Elements whose stop did not finish within the deadline.
    pub timed_out: Vec<String>,
    /// Set when the new version was rejected: the last good version kept running.
    pub kept_last_good: Option<ReloadError>,
}

impl ReloadReport {
    /// True when the reload changed nothing that runs and rejected nothing.
    pub fn is_noop(&self) -> bool {
        self.kept_last_good.is_none()
            && self.changed.is_empty()
            && self.restarted.is_empty()
            && self.started.is_empty()
            && self.stopped.is_empty()
    }
}

/// The outcome of rendering one element's config, kept as a hash (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendered {
    Absent,
    Hash(u64),
    Failed,
}

/// The last version that was accepted.
struct Good {
    tree: Arc<AppTree>,
    env: Arc<Env>,
    configs: BTreeMap<String, Rendered>,
}

/// Applies new versions of an app to its running [`App`]. The file watcher only feeds it;
/// tests call [`Reloader::apply`] directly.
pub struct Reloader {
    app: App,
    app_dir: PathBuf,
    good: Good,
    stop_deadline: Duration,
    /// The last reload was rejected (so the next accepted one says it recovered).
    rejected: bool,
    before_restart: Option<BeforeRestart>,
}

/// See [`Reloader::before_restart`].
type BeforeRestart = Box<dyn FnMut(&AppTree, &Env) + Send>;

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("app_dir", &self.app_dir)
            .field("elements", &self.good.tree.len())
            .finish()
    }
}

impl Reloader {
    /// A reloader for `app` (opened from `app_dir`, normally already started). The app's
    /// current tree and environment are the last good version.
    pub fn new(app_dir: &Path, app: App) -> Reloader {
        let tree = app.tree();
        let env = app.env();
        let configs = tree
            .elements
            .values()
            .map(|e| (e.full_name.clone(), render_hash(e, &env, app_dir).0))
            .collect();
        Reloader {
            app,
            app_dir: app_dir.to_path_buf(),
            good: Good { tree, env, configs },
            stop_deadline: crate::app::DEFAULT_STOP_DEADLINE,
            rejected: false,
            before_restart: None,
        }
    }

    /// Calls `f` with every accepted version (its tree and environment) before any element
    /// restarts with it: the place to prepare what the new elements need at start, such as
    /// the sandbox learning a new robot's credentials before that robot connects.
    pub fn before_restart(mut self, f: impl FnMut(&AppTree, &Env) + Send + 'static) -> Reloader {
        self.before_restart = Some(Box::new(f));
        self
    }

    /// How long each element gets to stop when it is restarted or removed.
    pub fn with_stop_deadline(mut self, deadline: Duration) -> Reloader {
        self.stop_deadline = deadline;
        self
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn app_dir(&self) -> &Path {
        &self.app_dir
    }

    /// Reads the new version from disk (brings `dist/` up to date, rebuilding only changed
    /// elements, and reloads `.env`) and applies it.
    pub async fn reload_from_disk(&mut self) -> ReloadReport {
        let dir = self.app_dir.clone();
        let overrides = self.app.env_overrides().clone();
        // Building hashes and copies files: keep that off the async workers.
        let next = tokio::task::spawn_blocking(move || -> Result<(AppTree, Env), ReloadError> {
            let (tree, report) = jitnode_dist::ensure(&dir)?;
            if !report.up_to_date() {
                tracing::debug!(
                    rebuilt = report.rebuilt.len(),
                    removed = report.removed.len(),
                    "dist/ updated"
                );
            }
            let env = Env::load(&dir)?.overridden(&overrides);
            Ok((tree, env))
        })
        .await
        .unwrap_or_else(|e| Err(ReloadError::Task(e.to_string())));
        self.apply(next).await
    }

    /// Applies a new version: restarts what it changes (see the module docs), or keeps the
    /// last good version running when `next` is an error or renders badly.
    pub async fn apply(&mut self, next: Result<(AppTree, Env), ReloadError>) -> ReloadReport {
        let (tree, env) = match next {
            Ok(v) => v,
            Err(e) => return self.reject(e),
        };
        if std::mem::take(&mut self.rejected) {
            tracing::info!("the app's sources are valid again");
        }
        let old = &self.good;
        let env_changed = !same_env(&old.env, &env);

        let mut changed: BTreeSet<String> = BTreeSet::new();
        for (name, el) in &tree.elements {
            if old.tree.get(name) != Some(el) {
                changed.insert(name.clone());
            }
        }
        for name in old.tree.elements.keys() {
            if !tree.elements.contains_key(name) {
                changed.insert(name.clone());
            }
        }

        let mut configs = BTreeMap::new();
        let mut config_changed = BTreeSet::new();
        let mut errors = Vec::new();
        for (name, el) in &tree.elements {
            let was = old.configs.get(name).copied();
            let now = if env_changed || changed.contains(name) {
                let (now, err) = render_hash(el, &env, &self.app_dir);
                // Only a new failure blocks the edit; one the last good version already had
                // stays that element's own load error.
                if let Some(err) =
                    err.filter(|_| was != Some(Rendered::Failed) || changed.contains(name))
                {
                    errors.push(err);
                }
                now
            } else {
                was.unwrap_or(Rendered::Absent)
            };
            if was.is_some() && was != Some(now) {
                config_changed.insert(name.clone());
            }
            configs.insert(name.clone(), now);
        }
        if !errors.is_empty() {
            errors.sort();
            return self.reject(ReloadError::Config(errors));
        }

        let base: BTreeSet<String> = changed.union(&config_changed).cloned().collect();
        let mut restart = base.clone();
        for el in old.tree.elements.values().chain(tree.elements.values()) {
            if el.chain.iter().any(|c| base.contains(c)) {
                restart.insert(el.full_name.clone());
            }
        }
        // Elements whose own config, Type or chain changed must pass their Type's schema
        // (of the new version); dependents restarted below keep a config that passed.
        let schemas = SchemaCache::default();
        for name in &restart {
            let Some(el) = tree.get(name) else { continue };
            let problems = match schemas.for_element(&tree, self.app.registry(), el).await {
                Ok(None) => continue,
                Ok(Some((of, schema))) => {
                    match jitnode_element::apply_schema(el, &env, &of, &schema) {
                        Ok(_) => continue,
                        // Template problems were weighed above.
                        Err(p) => p
                            .into_iter()
                            .filter(|p| matches!(p.kind, ProblemKind::ConfigSchema { .. }))
                            .collect::<Vec<_>>(),
                    }
                }
                Err(SchemaFailure::File(p)) => vec![p],
                // A loader that cannot give its schema fails that element's load, with the
                // same message; it does not block the rest of the edit.
                Err(SchemaFailure::Loader { .. }) => continue,
            };
            if !problems.is_empty() {
                errors.push(describe_problems(el, &problems));
            }
        }
        if !errors.is_empty() {
            errors.sort();
            return self.reject(ReloadError::Config(errors));
        }
        // Dependents, transitively: whoever looked up something that restarts.
        let tried = self.app.lookups_tried();
        loop {
            let more: Vec<String> = tried
                .iter()
                .filter(|(k, v)| !restart.contains(*k) && v.iter().any(|d| restart.contains(d)))
                .map(|(k, _)| k.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            restart.extend(more);
        }

        if let Some(f) = &mut self.before_restart {
            f(&tree, &env);
        }
        let mut report = ReloadReport {
            changed: changed.iter().cloned().collect(),
            ..ReloadReport::default()
        };
        if restart.is_empty() {
            self.good = Good {
                tree: Arc::new(tree),
                env: Arc::new(env),
                configs,
            };
            return report;
        }
        let before: BTreeSet<String> = self.app.running().into_iter().collect();
        let new_tree = Arc::new(tree);
        let new_env = Arc::new(env);
        let replaced = self
            .app
            .replace(
                (*new_tree).clone(),
                (*new_env).clone(),
                &restart,
                self.stop_deadline,
            )
            .await;
        let after: BTreeSet<String> = self.app.running().into_iter().collect();
        let stopped_now: BTreeSet<String> = replaced.stopped.into_iter().collect();
        report.restarted = stopped_now.intersection(&after).cloned().collect();
        report.started = after.difference(&before).cloned().collect();
        report.stopped = before.difference(&after).cloned().collect();
        report.failed = replaced.start.failed;
        report.timed_out = replaced.timed_out;
        report.timed_out.sort();
        self.good = Good {
            tree: new_tree,
            env: new_env,
            configs,
        };
        tracing::info!(
            changed = %list(&report.changed),
            restarted = %list(&report.restarted),
            started = %list(&report.started),
            stopped = %list(&report.stopped),
            failed = report.failed.len(),
            "reloaded"
        );
        jitnode_metrics::global().reloads.inc();
        report
    }

    fn reject(&mut self, e: ReloadError) -> ReloadReport {
        self.rejected = true;
        tracing::error!("reload rejected; the last good version keeps running:\n{e}");
        ReloadReport {
            kept_last_good: Some(e),
            ..ReloadReport::default()
        }
    }
}

fn same_env(a: &Env, b: &Env) -> bool {
    let names = a.names();
    names == b.names() && names.iter().all(|n| a.get(n) == b.get(n))
}

/// Renders an element's config and keeps only its hash; on failure, the message (with
/// file and line:column) a person needs to fix it.
fn render_hash(el: &Element, env: &Env, app_dir: &Path) -> (Rendered, Option<String>) {
    match jitnode_element::render_config(el, env) {
        Ok(None) => (Rendered::Absent, None),
        Ok(Some(v)) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            serde_json::to_string(&v).unwrap_or_default().hash(&mut h);
            (Rendered::Hash(h.finish()), None)
        }
        Err(e) => (Rendered::Failed, Some(describe(&e, el, app_dir))),
    }
}

/// A template error as `file:line:column: ...`, naming the source file (the error itself
/// names the dist copy that was rendered); a missing variable gets the position of its
/// first placeholder (jitnode-element reports only the file for those).
fn describe(e: &TemplateError, el: &Element, app_dir: &Path) -> String {
    // A fullName is its source folder with `/` -> `.` (segments cannot hold a `.`).
    let src_dir = app_dir
        .join("elements")
        .join(el.full_name.replace('.', "/"));
    let src_dir = if src_dir.is_dir() {
        src_dir
    } else {
        el.dir.clone()
    };
    let message = e.to_string().replace(
        &el.dir.display().to_string(),
        &src_dir.display().to_string(),
    );
    match e {
        TemplateError::Missing { file, names, .. } => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let at = names
                .iter()
                .filter_map(|n| placeholder_position(&text, n))
                .min()
                .map(|(l, c)| format!(":{l}:{c}"))
                .unwrap_or_default();
            let file = src_dir.join(file.strip_prefix(&el.dir).unwrap_or(file));
            format!("{}{at}: {message}", file.display())
        }
        _ => message,
    }
}

/// 1-based line and column (in chars) of the first `{{NAME` or `<<NAME` placeholder.
fn placeholder_position(text: &str, name: &str) -> Option<(usize, usize)> {
    let at = ["{{", "<<"]
        .iter()
        .filter_map(|open| {
            let needle = format!("{open}{name}");
            text.match_indices(&needle)
                .find(|(i, _)| {
                    // The name must end here (`{{A` is not `{{AB`).
                    let end = i + needle.len();
                    !text[end..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(|(i, _)| i)
        })
        .min()?;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Some((line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholder_positions() {
        let t = "{\n  \"a\": \"{{AB}}\",\n  \"b\": <<A>>\n}";
        assert_eq!(placeholder_position(t, "A"), Some((3, 8)));
        assert_eq!(placeholder_position(t, "AB"), Some((2, 9)));
        assert_eq!(placeholder_position(t, "C"), None);
    }
}
