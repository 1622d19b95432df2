//! Private copies of the repository's demo app, so tests never write `dist/` into the
//! repository or race each other on it.

use std::path::{Path, PathBuf};

/// The repository's root (holding the demo app's `elements/` and `.env`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a readable directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        }
    }
}

/// A private copy of the demo app (its elements/ and .env). Its crates/ links to the
/// repository's, as in a clone: the native demo plugin depends on crates/plugin by
/// relative path.
pub fn demo_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("elements"), &dir.path().join("elements"));
    std::fs::copy(repo_root().join(".env"), dir.path().join(".env")).expect("the demo's .env");
    std::os::unix::fs::symlink(
        repo_root()
            .canonicalize()
            .expect("the repository root")
            .join("crates"),
        dir.path().join("crates"),
    )
    .expect("a symlink to crates/");
    dir
}
