//! `dist/manifest.json`: what a dist holds, written last and atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bumped when the layout of dist/ changes; a different value forces a full rebuild.
pub const FORMAT: u32 = 1;
/// The host version recorded in (and required of) a manifest.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub host_version: String,
    /// File-system time taken (from a fresh file's mtime) before any source was read.
    /// A recorded file whose mtime is not older than this may have changed within the same
    /// timestamp tick after it was read, so its stat record is not trusted.
    pub stamp_ns: u64,
    pub elements: BTreeMap<String, ManifestElement>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestElement {
    /// Folder of the element's copy, relative to dist/ (`e/<fullName>-<hash>`).
    pub dir: String,
    /// Source folder relative to the element root (`imRobots/dingTalkDemo`).
    pub src: String,
    /// Content hash of the element (paths and contents of all its files), hex.
    pub hash: String,
    pub chain: Vec<String>,
    /// The e.json object as written (unrendered; e.json holds no rendered values).
    pub def: Map<String, Value>,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub mtime_ns: u64,
    pub hash: String,
}

/// Why a manifest cannot be used.
#[derive(Debug)]
pub enum ReadError {
    Missing,
    Unusable(String),
}

pub fn read(dist: &Path) -> Result<Manifest, ReadError> {
    let path = dist.join("manifest.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Unusable(e.to_string())),
    };
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Unusable(e.to_string()))?;
    if m.format != FORMAT {
        return Err(ReadError::Unusable(format!(
            "format {} (this host writes {FORMAT})",
            m.format
        )));
    }
    if m.host_version != HOST_VERSION {
        return Err(ReadError::Unusable(format!(
            "built by host {} (this is {HOST_VERSION})",
            m.host_version
        )));
    }
    for (name, e) in &m.elements {
        if !safe_rel(&e.dir) || !e.dir.starts_with("e/") {
            return Err(ReadError::Unusable(format!("element {name}: bad dir")));
        }
    }
    Ok(m)
}

/// A relative `/`-path with no `..`, empty or absolute parts (manifests are input too).
pub fn safe_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

pub fn hex(h: u64) -> String {
    format!("{h:016x}")
}
