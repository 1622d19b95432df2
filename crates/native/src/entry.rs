//! Where a native Type's plugin is: a crate folder to build, or a prebuilt library.

use std::path::PathBuf;

use jitnode_element::Element;
use serde_json::Value;

use crate::error::NativeError;

/// `backendBundleEntry` scheme naming a plugin directly: `native:<path>`.
pub const NATIVE_SCHEME: &str = "native:";

/// The built-in loader name this crate registers: `backendBundleEntry: "builtin:native"`.
pub const BUILTIN_NAME: &str = "native";

/// The e.json key giving the plugin path when the entry is `builtin:native`.
pub const ENTRY_KEY: &str = "nativeEntry";

/// True when a `backendBundleEntry` names the native loader (`native:<path>` or
/// `builtin:native`): the element declaring it is a native Type.
pub fn is_native_entry(entry: &str) -> bool {
    entry.starts_with(NATIVE_SCHEME) || entry == format!("builtin:{BUILTIN_NAME}")
}

/// A native Type's plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeSource {
    /// A folder with a Cargo.toml: built with cargo.
    Crate(PathBuf),
    /// A prebuilt shared library, loaded as is.
    Library(PathBuf),
}

/// Finds the plugin of `type_el` (the element whose `backendBundleEntry` chose the native
/// loader), from `native:<path>` or from `builtin:native` plus `"nativeEntry": "<path>"`.
/// `<path>` is relative to the Type's folder and may not leave it; `.` is the folder itself.
pub fn resolve_source(type_el: &Element) -> Result<NativeSource, NativeError> {
    let err = |message: String| NativeError::Entry {
        type_name: type_el.full_name.clone(),
        message,
    };
    let entry = type_el.def.backend_bundle_entry.as_deref().unwrap_or("");
    let rel = match entry.strip_prefix(NATIVE_SCHEME) {
        Some(rel) => rel.to_string(),
        None => match type_el.def.raw.get(ENTRY_KEY) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(err(format!(
                    "\"{ENTRY_KEY}\" in e.json must be a string path (e.g. \"./plugin\")"
                )))
            }
            None => {
                return Err(err(format!(
                    "backendBundleEntry \"{entry}\" needs \"{ENTRY_KEY}\" in e.json: the plugin crate folder or shared library, relative to the Type's folder (e.g. \"./plugin\")"
                )))
            }
        },
    };
    let rel = rel.trim();
    let trimmed = rel.trim_start_matches("./").trim_end_matches('/');
    let path = if trimmed.is_empty() || trimmed == "." {
        type_el.dir.clone()
    } else {
        type_el
            .file_path(trimmed)
            .map_err(|e| err(format!("native plugin \"{rel}\": {e}")))?
    };
    if path.is_dir() {
        if path.join("Cargo.toml").is_file() {
            Ok(NativeSource::Crate(path))
        } else {
            Err(err(format!(
                "native plugin \"{rel}\" is a folder without a Cargo.toml"
            )))
        }
    } else {
        Ok(NativeSource::Library(path))
    }
}

#[cfg(test)]
mod tests {
    use jitnode_element::Definition;
    use serde_json::json;

    use super::*;

    fn type_el(dir: &std::path::Path, def: Value) -> Element {
        Element {
            full_name: "fx.kwType".into(),
            dir: dir.to_path_buf(),
            def: Definition::parse(def.to_string().as_bytes()).unwrap(),
            chain: vec!["fx.kwType".into(), "fx.meta".into()],
        }
    }

    #[test]
    fn both_entry_forms_find_crates_and_libraries() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("plugin")).unwrap();
        std::fs::write(d.path().join("plugin/Cargo.toml"), "").unwrap();
        std::fs::write(d.path().join("libx.so"), "").unwrap();
        let crate_dir = NativeSource::Crate(d.path().join("plugin"));

        let el = type_el(
            d.path(),
            json!({"type": "fx.meta", "backendBundleEntry": "native:./plugin"}),
        );
        assert_eq!(resolve_source(&el).unwrap(), crate_dir);
        let el = type_el(
            d.path(),
            json!({"type": "fx.meta", "backendBundleEntry": "builtin:native", "nativeEntry": "plugin/"}),
        );
        assert_eq!(resolve_source(&el).unwrap(), crate_dir);
        let el = type_el(
            d.path(),
            json!({"type": "fx.meta", "backendBundleEntry": "builtin:native", "nativeEntry": "./libx.so"}),
        );
        assert_eq!(
            resolve_source(&el).unwrap(),
            NativeSource::Library(d.path().join("libx.so"))
        );
    }

    #[test]
    fn bad_entries_name_the_type_and_the_problem() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let msg = |def: Value| {
            resolve_source(&type_el(d.path(), def))
                .unwrap_err()
                .to_string()
        };

        for (entry, want) in [
            (
                "builtin:native",
                "fx.kwType: backendBundleEntry \"builtin:native\" needs \"nativeEntry\"",
            ),
            (
                "native:../outside",
                "fx.kwType: native plugin \"../outside\"",
            ),
            (
                "native:./missing.so",
                "fx.kwType: native plugin \"./missing.so\"",
            ),
        ] {
            let m = msg(json!({"type": "fx.meta", "backendBundleEntry": entry}));
            assert!(m.starts_with(want), "{m}");
        }
        let m = msg(json!({"type": "fx.meta", "backendBundleEntry": "native:empty"}));
        assert_eq!(
            m,
            "fx.kwType: native plugin \"empty\" is a folder without a Cargo.toml"
        );
        let m = msg(
            json!({"type": "fx.meta", "backendBundleEntry": "builtin:native", "nativeEntry": 3}),
        );
        assert!(m.contains("must be a string path"), "{m}");
    }
}
