//! Whether the library recorded in `dist/native/<Type>/library.json` can serve a Type.

use std::path::{Path, PathBuf};

use jitnode_dist::{read_record, LibraryRecord};
use jitnode_plugin::abi::ABI_VERSION;
use xxhash_rust::xxh3::xxh3_64;

/// The target triple this host was compiled for; plugins are built for it.
pub const HOST_TARGET: &str = env!("JITNODE_HOST_TARGET");

/// Content hash of a plugin crate: the `/`-path and content hash of every file, in path
/// order. Skips what a dist copy of the crate leaves out (hidden entries, folders named
/// `target` or `dist`), so the sources and their copy in dist/ hash alike. Path
/// dependencies outside the folder are not covered; the ABI version recorded beside the
/// hash guards what matters of the plugin SDK.
pub fn source_hash(dir: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, rel: &str, acc: &mut Vec<u8>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = format!("{rel}{name}");
            if e.file_type()?.is_dir() {
                if name != "target" && name != "dist" {
                    walk(&e.path(), &format!("{path}/"), acc)?;
                }
            } else {
                let bytes = std::fs::read(e.path())?;
                acc.extend_from_slice(path.as_bytes());
                acc.push(0);
                acc.extend_from_slice(format!("{:016x}", xxh3_64(&bytes)).as_bytes());
                acc.push(0);
            }
        }
        Ok(())
    }
    let mut acc = Vec::new();
    walk(dir, "", &mut acc)?;
    Ok(format!("{:016x}", xxh3_64(&acc)))
}

/// Content hash of a library file, as [`crate::place_fresh`] puts it in the file name.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    Ok(format!("{:016x}", xxh3_64(&std::fs::read(path)?)))
}

/// Why the recorded library cannot serve the Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// No record at all.
    Missing,
    /// A record, but it does not fit (what differs, in words).
    Differs(String),
}

/// The recorded library of a Type, checked: built for this host's target and ABI, from
/// sources hashing to `source_hash` (when given), its file present with the recorded hash.
/// Reads the whole library to hash it.
pub(crate) fn usable_library(
    record_path: &Path,
    source_hash: Option<&str>,
) -> Result<(LibraryRecord, PathBuf), Unusable> {
    let record = match read_record(record_path) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Unusable::Missing),
        Err(e) => return Err(Unusable::Differs(e.to_string())),
    };
    let differs = |what: String| Err(Unusable::Differs(what));
    if record.target != HOST_TARGET {
        return differs(format!(
            "it was built for target {}, this host is {HOST_TARGET}",
            record.target
        ));
    }
    if record.abi_version != ABI_VERSION {
        return differs(format!(
            "it was built for plugin ABI version {}, this host needs version {ABI_VERSION}",
            record.abi_version
        ));
    }
    if let Some(h) = source_hash {
        if record.source_hash != h {
            return differs(format!(
                "it was built from other plugin sources (recorded source hash {}, the sources now hash to {h})",
                record.source_hash
            ));
        }
    }
    let dir = record_path.parent().unwrap_or(Path::new("."));
    let library = dir.join(&record.library);
    match file_hash(&library) {
        Ok(h) if h == record.library_hash => Ok((record, library)),
        Ok(h) => differs(format!(
            "its file {} does not match the record (recorded hash {}, the file hashes to {h})",
            library.display(),
            record.library_hash
        )),
        Err(e) => differs(format!(
            "its file {} cannot be read: {e}",
            library.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_file;

    #[test]
    fn source_hash_follows_content_and_skips_what_dist_leaves_out() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("plugin");
        write_file(&c.join("Cargo.toml"), "[package]");
        write_file(&c.join("src/lib.rs"), "fn a() {}");
        let h = source_hash(&c).unwrap();
        for skipped in ["target/x", ".git/HEAD", "dist/y", ".hidden"] {
            write_file(&c.join(skipped), skipped);
        }
        assert_eq!(source_hash(&c).unwrap(), h);
        std::fs::write(c.join("src/lib.rs"), "fn b() {}").unwrap();
        let h2 = source_hash(&c).unwrap();
        assert_ne!(h2, h);
        // A move between files changes the hash too (paths are hashed).
        std::fs::rename(c.join("src/lib.rs"), c.join("src/other.rs")).unwrap();
        assert_ne!(source_hash(&c).unwrap(), h2);
    }
}
