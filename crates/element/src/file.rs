//! Path-safe access to an element's files.

use std::path::{Component, Path, PathBuf};

/// Reading one file of an element failed or was refused. Names the element and the file
/// as asked for (relative), never any content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("element {element}: file \"{file}\" refused: {reason}")]
    Refused {
        element: String,
        file: String,
        reason: &'static str,
    },
    #[error("element {element}: cannot read file \"{file}\": {source}")]
    Io {
        element: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// True when the file simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

pub(crate) fn safe_path(element: &str, dir: &Path, rel: &str) -> Result<PathBuf, FileError> {
    let refused = |reason| FileError::Refused {
        element: element.to_string(),
        file: rel.to_string(),
        reason,
    };
    if rel.is_empty() {
        return Err(refused("empty path"));
    }
    let p = Path::new(rel);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refused("\"..\" is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused("absolute paths are not allowed"))
            }
        }
    }
    let io = |source| FileError::Io {
        element: element.to_string(),
        file: rel.to_string(),
        source,
    };
    let joined = dir.join(p);
    // Symlinks inside the folder may point anywhere; compare the real locations.
    let real = joined.canonicalize().map_err(io)?;
    let real_dir = dir.canonicalize().map_err(io)?;
    if !real.starts_with(&real_dir) {
        return Err(refused("it leaves the element folder through a symlink"));
    }
    // The checked path, so a link swapped after this check cannot redirect the caller.
    Ok(real)
}
