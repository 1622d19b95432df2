//! jitnode-dist: builds and reads an app's `dist/`, the packaged form of its elements.
//!
//! Layout: `dist/manifest.json` (elements, chains, definitions, content hashes, host
//! version) and `dist/e/<fullName>-<hash>/` holding a copy of each element's own files,
//! UNRENDERED (templates stay templates; `.env` and other hidden files never get in).
//! `dist/native/<Type>/` belongs to the native loader (`jitnode-native`): the libraries it
//! built for native Types and, in [`LIBRARY_RECORD`], which one is current (see
//! [`LibraryRecord`]). This crate only defines that record and keeps `dist/native` across
//! full rebuilds; it never builds or deletes libraries.
//!
//! Staleness: [`build`] hashes every source file (xxh3) and rebuilds only elements whose
//! content hash changed. [`ensure`] (the start path) first compares each source file's size
//! and mtime with the manifest and hashes only files whose stat differs or is "racy" (mtime
//! not older than the manifest's stamp, so a change in the same timestamp tick is caught);
//! when nothing differs it loads the tree from the manifest without reading any e.json.
//!
//! Atomicity: a full build is written into a temporary folder beside `dist/` and renamed
//! into place. An incremental build writes new element folders under fresh names (the name
//! carries the content hash), then replaces `manifest.json` by rename, then deletes folders
//! no longer referenced. A crash at any point leaves either the old complete dist, the new
//! complete dist, or no dist (then the next start rebuilds everything). Files are not
//! fsync'ed (speed); the guarantee is against process crashes, not power loss.
//!
//! One builder per app at a time: two processes building the same app concurrently are not
//! coordinated (an incremental build deletes copies the other may still use).
//!
//! Not for: rendering config (the host renders at load time, in memory) or loading code.

mod build;
mod manifest;
mod native;

use std::path::{Path, PathBuf};

use jitnode_element::{AppTree, Problems};

pub use manifest::{FORMAT, HOST_VERSION};
pub use native::{
    read_record, record_path, write_record, LibraryRecord, RecordError, LIBRARY_RECORD, NATIVE_DIR,
    RECORD_FORMAT,
};

/// What a build did, by element fullName (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Elements written (new or changed content).
    pub rebuilt: Vec<String>,
    /// Elements kept from the existing dist.
    pub reused: Vec<String>,
    /// Elements in the old dist that no longer exist in the sources.
    pub removed: Vec<String>,
    /// True when everything was (re)built: no dist, unusable manifest, other host version.
    pub full: bool,
}

impl BuildReport {
    /// True when nothing had to be written.
    pub fn up_to_date(&self) -> bool {
        !self.full && self.rebuilt.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The element sources have problems (all of them, one per line).
    #[error("{0}")]
    Problems(#[from] Problems),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `load`: there is no usable dist.
    #[error("{}: no usable dist ({reason}); run `jitnode build` where the element sources are", path.display())]
    NoDist { path: PathBuf, reason: String },
    /// `build`: there are no element sources.
    #[error("{}: no element sources (expected a folder of elements)", path.display())]
    NoSources { path: PathBuf },
}

/// Builds `<app>/dist` from `<app>/elements` when missing or stale, hashing every source
/// file and rebuilding only elements whose content changed. Returns the tree with element
/// dirs inside dist/.
pub fn build(app_dir: &Path) -> Result<(AppTree, BuildReport), DistError> {
    build::run(app_dir, false)
}

/// The start path: when dist is up to date by the size+mtime check, loads the tree from the
/// manifest without parsing sources; otherwise builds what changed. Without an element
/// source folder, runs from dist alone.
pub fn ensure(app_dir: &Path) -> Result<(AppTree, BuildReport), DistError> {
    build::run(app_dir, true)
}

/// Loads the tree from `<app>/dist` alone (no sources needed). Element dirs point into dist.
pub fn load(app_dir: &Path) -> Result<AppTree, DistError> {
    let dist = app_dir.join("dist");
    let m = match manifest::read(&dist) {
        Ok(m) => m,
        Err(manifest::ReadError::Missing) => {
            return Err(DistError::NoDist {
                path: dist,
                reason: "no manifest.json".into(),
            })
        }
        Err(manifest::ReadError::Unusable(reason)) => {
            return Err(DistError::NoDist { path: dist, reason })
        }
    };
    build::tree_from_manifest(&dist, m).map_err(|reason| DistError::NoDist { path: dist, reason })
}
