//! Building a plugin crate with cargo, and placing libraries under fresh file names.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::NativeError;

/// How to run cargo.
#[derive(Debug, Clone)]
pub struct CargoOptions {
    /// The cargo binary (default: `$CARGO`, else `cargo` on the PATH).
    pub cargo: PathBuf,
    /// `--release` (default true: plugins run in a long-lived host).
    pub release: bool,
    /// `--offline`: never touch the network (for locked, pre-fetched dependencies).
    pub offline: bool,
}

impl Default for CargoOptions {
    fn default() -> CargoOptions {
        CargoOptions {
            cargo: std::env::var_os("CARGO")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("cargo")),
            release: true,
            offline: false,
        }
    }
}

/// Builds the library of the crate in `crate_dir` into `target_dir` and returns the path
/// of the cdylib cargo produced. Progress lines go to tracing (info); when cargo fails,
/// the error holds everything it printed.
pub async fn cargo_build(
    type_name: &str,
    crate_dir: &Path,
    target_dir: &Path,
    opts: &CargoOptions,
) -> Result<PathBuf, NativeError> {
    let manifest = crate_dir.join("Cargo.toml");
    let mut cmd = Command::new(&opts.cargo);
    cmd.arg("build")
        .arg("--lib")
        .arg("--manifest-path")
        .arg(&manifest)
        // Artifacts as JSON on stdout (to find the library), diagnostics rendered as text
        // on stderr (to show them as a person would see them).
        .arg("--message-format=json-render-diagnostics")
        .arg("--color=never")
        // For this host's own target, whatever cargo's default is: dist/ records the
        // target beside the library, and a host only loads libraries of its own.
        .arg("--target")
        .arg(crate::record::HOST_TARGET)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The host shutting down while a build runs must not leave cargo behind.
        .kill_on_drop(true);
    if opts.release {
        cmd.arg("--release");
    }
    if opts.offline {
        cmd.arg("--offline");
    }
    tracing::info!(r#type = %type_name, crate_dir = %crate_dir.display(), "building native plugin");
    let mut child = cmd.spawn().map_err(|source| NativeError::CargoSpawn {
        type_name: type_name.to_string(),
        cargo: opts.cargo.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout was piped above");
    let stderr = child.stderr.take().expect("stderr was piped above");

    let ty = type_name.to_string();
    let err_task = tokio::spawn(async move {
        let mut all = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if is_progress(&line) {
                tracing::info!(r#type = %ty, "cargo: {}", line.trim());
            } else {
                tracing::debug!(r#type = %ty, "cargo: {line}");
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    let want_manifest = std::fs::canonicalize(&manifest).unwrap_or_else(|_| manifest.clone());
    let mut library = None;
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(p) = cdylib_of(&line, &want_manifest) {
            library = Some(p);
        }
    }
    let status = child.wait().await.map_err(|source| NativeError::Io {
        type_name: type_name.to_string(),
        action: "wait for cargo building",
        path: manifest.clone(),
        source,
    })?;
    let output = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(NativeError::Build {
            type_name: type_name.to_string(),
            manifest,
            status: status.to_string(),
            output,
        });
    }
    library.ok_or(NativeError::NoLibrary {
        type_name: type_name.to_string(),
        manifest,
    })
}

/// cargo's status lines (`Compiling x`, `Finished ...`) as opposed to diagnostics.
fn is_progress(line: &str) -> bool {
    let t = line.trim_start();
    let word = t.split_whitespace().next().unwrap_or("");
    line.starts_with(' ')
        && word.len() > 1
        && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && word[1..].chars().all(|c| c.is_ascii_lowercase())
}

/// The shared library named by one `compiler-artifact` JSON message for the crate at
/// `manifest` (cargo reports canonical manifest paths).
fn cdylib_of(line: &str, manifest: &Path) -> Option<PathBuf> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["reason"] != "compiler-artifact" {
        return None;
    }
    let ours = v["manifest_path"].as_str().is_some_and(|m| {
        Path::new(m) == manifest || std::fs::canonicalize(m).is_ok_and(|c| c == manifest)
    });
    let is_cdylib = v["target"]["kind"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
    if !ours || !is_cdylib {
        return None;
    }
    v["filenames"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|f| f.ends_with(std::env::consts::DLL_SUFFIX))
        .map(PathBuf::from)
}

/// Copies `lib` into `dir` under a name carrying its content hash and returns that path.
///
/// Loaded libraries are never unloaded, and loading a path that is already loaded returns
/// the old code, so a rebuilt library must be loaded from a name never used before; naming
/// by content also means an unchanged library maps to the copy already loaded.
pub fn place_fresh(type_name: &str, lib: &Path, dir: &Path) -> Result<PathBuf, NativeError> {
    let io = |action: &'static str, path: &Path| {
        let type_name = type_name.to_string();
        let path = path.to_path_buf();
        move |source| NativeError::Io {
            type_name,
            action,
            path,
            source,
        }
    };
    let bytes = std::fs::read(lib).map_err(io("read", lib))?;
    let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    let stem = lib
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_string());
    let name = format!("{stem}-{hash:016x}{}", std::env::consts::DLL_SUFFIX);
    let dest = dir.join(name);
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    // Written beside and renamed, so a concurrent loader never maps a half-written file.
    let tmp = dir.join(format!(".tmp-{}-{hash:016x}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &dest).map_err(io("rename into place", &dest))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_status_words_only() {
        assert!(is_progress("   Compiling serde v1.0.0"));
        assert!(is_progress(
            "    Finished `release` profile [optimized] target(s) in 3.2s"
        ));
        assert!(!is_progress(
            "error[E0425]: cannot find value `x` in this scope"
        ));
        assert!(!is_progress("  --> src/lib.rs:3:5"));
        assert!(!is_progress("   |"));
        assert!(!is_progress("warning: unused variable"));
    }

    #[test]
    fn finds_our_cdylib_in_artifact_messages() {
        let m = Path::new("/w/p/Cargo.toml");
        let ours = r#"{"reason":"compiler-artifact","manifest_path":"/w/p/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/release/libp.so"]}"#;
        let ours = ours.replace(".so", std::env::consts::DLL_SUFFIX);
        assert_eq!(
            cdylib_of(&ours, m),
            Some(PathBuf::from(format!(
                "/t/release/libp{}",
                std::env::consts::DLL_SUFFIX
            )))
        );
        let dep = ours.replace("/w/p/", "/w/dep/");
        assert_eq!(cdylib_of(&dep, m), None);
        let rlib = r#"{"reason":"compiler-artifact","manifest_path":"/w/p/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libp.rlib"]}"#;
        assert_eq!(cdylib_of(rlib, m), None);
        assert_eq!(cdylib_of("not json", m), None);
    }

    #[test]
    fn fresh_names_follow_content() {
        let d = tempfile::tempdir().unwrap();
        let src = d
            .path()
            .join(format!("libx{}", std::env::consts::DLL_SUFFIX));
        std::fs::write(&src, b"one").unwrap();
        let out = d.path().join("out");
        let a = place_fresh("t", &src, &out).unwrap();
        assert_eq!(place_fresh("t", &src, &out).unwrap(), a);
        std::fs::write(&src, b"two").unwrap();
        let b = place_fresh("t", &src, &out).unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        assert!(b
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("libx-"));
    }
}
