//! Errors of finding, building, opening and instantiating native plugins. Each names the
//! Type (whose library it is) or the element, and the file involved; none carries config.

use std::path::PathBuf;

/// Bringing a native Type's library into the process, or making an instance, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// The Type's e.json does not say where its plugin is, or says it wrongly.
    #[error("{type_name}: {message}")]
    Entry { type_name: String, message: String },

    #[error("{type_name}: cannot run cargo ({cargo}): {source}")]
    CargoSpawn {
        type_name: String,
        cargo: PathBuf,
        source: std::io::Error,
    },

    /// cargo failed; `output` is everything it printed to stderr (the compiler errors).
    #[error("{type_name}: cargo build of {manifest} failed ({status}):\n{output}")]
    Build {
        type_name: String,
        manifest: PathBuf,
        status: String,
        output: String,
    },

    #[error(
        "{type_name}: cargo built no cdylib for {manifest}; its Cargo.toml needs [lib] crate-type = [\"cdylib\"]"
    )]
    NoLibrary {
        type_name: String,
        manifest: PathBuf,
    },

    /// Running from dist/ alone, the Type's crate has no library recorded in dist/, and
    /// only its sources (with cargo) could make one.
    #[error(
        "{type_name}: dist/ holds no built library for this native Type ({} is missing) and a dist-only app has no sources to build one; run `jitnode build` where the element sources are, then deploy the new dist/",
        record.display()
    )]
    NotBuilt { type_name: String, record: PathBuf },

    /// Running from dist/ alone, the recorded library does not fit: another target or
    /// ABI, other sources than dist/ holds, or a file whose hash is not the recorded one.
    #[error(
        "{type_name}: the library recorded in {} cannot be used: {what}; rebuild it with `jitnode build` where the element sources are, then deploy the new dist/",
        record.display()
    )]
    DistLibrary {
        type_name: String,
        record: PathBuf,
        what: String,
    },

    #[error("{type_name}: {action} {path}: {source}")]
    Io {
        type_name: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{type_name}: cannot load native library {path}: {message}")]
    Open {
        type_name: String,
        path: PathBuf,
        message: String,
    },

    #[error(
        "{type_name}: {path} is not a jitnode plugin: it has no symbol jitnode_plugin_entry (export one with jitnode_plugin::export_type!): {message}"
    )]
    MissingSymbol {
        type_name: String,
        path: PathBuf,
        message: String,
    },

    /// The library speaks another ABI version, or its table has another size: nothing
    /// past the header was read.
    #[error(
        "{type_name}: plugin ABI mismatch in {path}: the library has ABI version {found_version} (table of {found_size} bytes), this host needs version {expected_version} ({expected_size} bytes); rebuild it against jitnode-plugin {sdk}"
    )]
    AbiMismatch {
        type_name: String,
        path: PathBuf,
        found_version: u32,
        found_size: u32,
        expected_version: u32,
        expected_size: u32,
        sdk: &'static str,
    },

    /// The library broke the protocol: invalid JSON, a null table or instance, ...
    #[error("{type_name}: native plugin {path} {what}: {message}")]
    Protocol {
        type_name: String,
        path: PathBuf,
        what: String,
        message: String,
    },

    /// The plugin panicked (the panic was caught at the boundary).
    #[error("{type_name}: native plugin {path} panicked in {what}: {message}")]
    Panicked {
        type_name: String,
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    /// The Type's own `load` refused the element `element` (bad config, ...). The host
    /// puts the element's name in front of this message.
    #[error("{type_name}: load refused: {message}")]
    Load {
        type_name: String,
        element: String,
        message: String,
    },
}
