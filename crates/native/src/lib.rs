//! jitnode-native: the host side of native element Types (Rust `cdylib` plugins).
//!
//! [`NativeLoader`] is a `jitnode_host::Loader`. For each element whose Type is native it
//! finds the Type's plugin, builds it when it is a crate, loads the library with
//! libloading behind the versioned C ABI of `jitnode-plugin`, and turns one plugin
//! instance into the element's runtime (calls run on tokio's blocking pool).
//!
//! Naming the plugin in a Type's e.json (paths relative to the Type's folder, never
//! leaving it; `.` is the folder itself):
//! - `"backendBundleEntry": "native:./plugin"`, the usual form;
//! - `"backendBundleEntry": "builtin:native", "nativeEntry": "./plugin"`: the same.
//!
//! [`NativeLoader::register`] registers both.
//!
//! The path is either a folder with a `Cargo.toml` (a standalone crate with its own
//! `[workspace]`, `crate-type = ["cdylib"]`, using `jitnode_plugin::export_type!`), built
//! with `cargo build --release --lib --target <this host's target>` with
//! `CARGO_TARGET_DIR=<app>/dist/native/<Type>/target` (progress lines logged at info, the
//! full compiler output in the error when it fails), or a prebuilt shared library used as
//! is. A crate is built from the app's `elements/` when it is there (see
//! [`NativeOptions::source_root`]), else from the Type's copy in `dist/`; relative path
//! dependencies only resolve in the former.
//!
//! Either way the library is copied to `<app>/dist/native/<Type>/<name>-<contenthash>.so`
//! and loaded from there: libraries are never unloaded (unloading Rust code is unsound; see
//! [`Plugin`]), so a rebuilt library must come from a file name never loaded before.
//!
//! Deploying dist/ alone: after building a crate, `dist/native/<Type>/library.json`
//! records the copy (a `jitnode_dist::LibraryRecord`): its file hash, the hash of the
//! crate's files it was built from ([`source_hash`]), the target triple ([`HOST_TARGET`])
//! and the plugin ABI version. With sources, cargo runs only when the sources hash
//! differently, the ABI version or target differs, or the copy no longer matches its hash;
//! otherwise the recorded copy is loaded. With [`NativeOptions::from_dist`] (`run
//! --from-dist`, or an app without `elements/`) cargo never runs: the recorded copy is
//! loaded after checking target, ABI, its file hash and that the Type's crate copy in
//! dist/ hashes as recorded; any difference, or no record, is one error naming the Type
//! and what differs. [`NativeLoader::build`] is the `jitnode build` step.
//!
//! Unused copies: when a build replaces a Type's record (and on every
//! [`NativeLoader::build`]), copies that neither the record nor a running host names are
//! deleted. Each host process names the copies it opened in its lease file under
//! `dist/native/leases/`, written before opening and flock'ed for the life of the process
//! (so a lease whose lock is free belongs to a process that is gone); `dist/native/lock`
//! is held shared while placing, recording, leasing and opening, and exclusively while
//! collecting, so a collector never misses a copy that is being put to use. Not on
//! non-unix targets (no flock there): nothing is deleted.
//!
//! Failures (missing entry, build error, ABI mismatch, missing symbol, a panic or invalid
//! JSON from the plugin) are errors naming the Type and the file; the element fails to
//! load or the call fails, and the host keeps running.
//!
//! It is NOT the plugin SDK (that is `jitnode-plugin`), does not watch files or decide
//! when to reload (the host's reloader does; a changed Type simply resolves to a new
//! library here), and does not sandbox plugins: a plugin runs in the host process with
//! its full rights, and one that loops forever or aborts cannot be stopped.

mod build;
mod entry;
mod error;
mod lease;
mod library;
mod loader;
mod record;

pub use build::{cargo_build, place_fresh, CargoOptions};
pub use entry::{
    is_native_entry, resolve_source, NativeSource, BUILTIN_NAME, ENTRY_KEY, NATIVE_SCHEME,
};
pub use error::NativeError;
pub use library::{check_header, CallFailure, Instance, Plugin};
pub use loader::{Built, NativeLoader, NativeOptions};
pub use record::{file_hash, source_hash, HOST_TARGET};

/// Helpers of the unit tests.
#[cfg(test)]
mod testing {
    use std::path::Path;

    /// Writes `text` to `path`, creating its folders first.
    pub(crate) fn write_file(path: &Path, text: &str) {
        let dir = path.parent().expect("a file path has a parent");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
