//! `dist/native/<Type>/library.json`: which library a native Type's build placed in dist/.
//!
//! One small file per native Type rather than a field of `manifest.json`: the host builds
//! native Types lazily at run time, independently of (and possibly concurrently with) a
//! dist build, so each Type's record is replaced on its own, by rename.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Folder of native builds inside dist/.
pub const NATIVE_DIR: &str = "native";
/// File name of a Type's record inside `dist/native/<Type>/`.
pub const LIBRARY_RECORD: &str = "library.json";
/// Bumped when the record's meaning changes; another value is unreadable.
pub const RECORD_FORMAT: u32 = 1;

/// The library one build of a native Type's plugin crate produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryRecord {
    pub format: u32,
    /// The Type's fullName.
    #[serde(rename = "type")]
    pub type_name: String,
    /// File name of the library, in the record's folder.
    pub library: String,
    /// Content hash (xxh3, hex) of the library file.
    pub library_hash: String,
    /// Content hash of the plugin crate's files it was built from (hex).
    pub source_hash: String,
    /// Target triple it was built for.
    pub target: String,
    /// Plugin ABI version its table speaks.
    pub abi_version: u32,
    /// jitnode-plugin version it was built with.
    pub sdk_version: String,
}

/// Why a record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a library record: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// `<native_dir>/<type_name>/library.json`.
pub fn record_path(native_dir: &Path, type_name: &str) -> PathBuf {
    native_dir.join(type_name).join(LIBRARY_RECORD)
}

/// The record at `path`; `Ok(None)` when there is none.
pub fn read_record(path: &Path) -> Result<Option<LibraryRecord>, RecordError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let invalid = |message: String| RecordError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let r: LibraryRecord = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if r.format != RECORD_FORMAT {
        return Err(invalid(format!(
            "format {} (this host reads {RECORD_FORMAT})",
            r.format
        )));
    }
    // A file name in the record's own folder, never a path elsewhere (records are input).
    let plain = !r.library.is_empty()
        && r.library != "."
        && r.library != ".."
        && !r.library.contains(['/', '\\']);
    if !plain {
        return Err(invalid(format!(
            "library \"{}\" is not a file name",
            r.library
        )));
    }
    Ok(Some(r))
}

/// Writes `record` to `path`, replacing any old one by rename (readers see the old or the
/// new record, never half of one).
pub fn write_record(path: &Path, record: &LibraryRecord) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{LIBRARY_RECORD}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LibraryRecord {
        LibraryRecord {
            format: RECORD_FORMAT,
            type_name: "demo.kwType".into(),
            library: "libkw-0123456789abcdef.so".into(),
            library_hash: "0123456789abcdef".into(),
            source_hash: "fedcba9876543210".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            abi_version: 1,
            sdk_version: "0.1.0".into(),
        }
    }

    #[test]
    fn records_round_trip_and_a_missing_one_is_none() {
        let d = tempfile::tempdir().unwrap();
        let path = record_path(d.path(), "demo.kwType");
        assert!(read_record(&path).unwrap().is_none());
        write_record(&path, &record()).unwrap();
        assert_eq!(read_record(&path).unwrap(), Some(record()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"type\": \"demo.kwType\""), "{text}");
        assert!(text.contains("\"abiVersion\": 1"), "{text}");
    }

    #[test]
    fn records_naming_paths_or_other_formats_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(LIBRARY_RECORD);
        let escaping = LibraryRecord {
            library: "../../elsewhere.so".into(),
            ..record()
        };
        write_record(&path, &escaping).unwrap();
        let e = read_record(&path).unwrap_err().to_string();
        assert!(e.contains("is not a file name"), "{e}");
        write_record(
            &path,
            &LibraryRecord {
                format: 99,
                ..record()
            },
        )
        .unwrap();
        let e = read_record(&path).unwrap_err().to_string();
        assert!(e.contains("format 99"), "{e}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            read_record(&path),
            Err(RecordError::Invalid { .. })
        ));
    }
}
