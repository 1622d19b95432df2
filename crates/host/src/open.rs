//! Opening an app directory: the tree (from dist/, built when stale) plus its environment.

use std::collections::BTreeMap;
use std::path::Path;

use jitnode_dist::{BuildReport, DistError};
use jitnode_element::{Env, EnvError};

use crate::app::App;
use crate::loader::Registry;

/// Opening an app directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The sources have problems, or dist/ cannot be built or read.
    #[error(transparent)]
    Dist(#[from] DistError),
    /// The app's `.env` cannot be used (the error never holds a value).
    #[error(transparent)]
    Env(#[from] EnvError),
}

impl App {
    /// Opens `<app_dir>`: brings `dist/` up to date from `elements/` (or, with `from_dist`,
    /// reads `dist/` alone, no sources needed), loads the environment (`.env` under the
    /// process environment) and makes an App whose element dirs point into `dist/`.
    /// Nothing is started. The build report is `None` with `from_dist`.
    pub fn open(
        app_dir: &Path,
        from_dist: bool,
        registry: Registry,
    ) -> Result<(App, Option<BuildReport>), OpenError> {
        App::open_with(app_dir, from_dist, registry, BTreeMap::new())
    }

    /// [`App::open`] with variables set over the environment (they win over the process
    /// environment and `.env`, and a reload keeps them): how the host passes values it
    /// decides at start, such as the sandbox's URL, without touching the process
    /// environment.
    pub fn open_with(
        app_dir: &Path,
        from_dist: bool,
        registry: Registry,
        env_overrides: BTreeMap<String, String>,
    ) -> Result<(App, Option<BuildReport>), OpenError> {
        let (tree, report) = if from_dist {
            (jitnode_dist::load(app_dir)?, None)
        } else {
            let (tree, report) = jitnode_dist::ensure(app_dir)?;
            (tree, Some(report))
        };
        let env = Env::load(app_dir)?.overridden(&env_overrides);
        Ok((
            App::with_env_overrides(tree, env, registry, env_overrides),
            report,
        ))
    }
}
