//! Removing unused library copies from `dist/native` without pulling one from under a
//! running host.
//!
//! A host never unloads a library, so every copy it ever opened stays in use until the
//! process exits. Each host process keeps one *lease* per native folder,
//! `<native>/leases/<pid>-<nanos>.lease`: the `<Type>/<file>` names of the copies it
//! opened, one per line, appended before opening. The host holds an exclusive `flock` on
//! its lease file for its whole life (the file is never closed), so the lock is released
//! exactly when the process ends, however it ends.
//!
//! `<native>/lock` orders the two sides. Placing a copy, writing the Type's record,
//! appending to a lease and opening a copy happen under a shared lock; collecting takes it
//! exclusively, then removes a Type's copies that neither its record nor any live lease
//! names. A lease whose lock can be taken belongs to a process that is gone: it is removed
//! and names nothing. Since a lease is written before its copy is opened and the record
//! before the lock is released, a collector never sees a copy in use that is not named.
//!
//! Without flock (non-unix) nothing is collected.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use jitnode_dist::{read_record, record_path};

const LOCK_FILE: &str = "lock";
const LEASES_DIR: &str = "leases";

/// This process's leases, by native folder: kept (and their files open, hence locked)
/// until the process exits, since the libraries they name are never unloaded.
fn leases() -> &'static Mutex<HashMap<PathBuf, Lease>> {
    static LEASES: OnceLock<Mutex<HashMap<PathBuf, Lease>>> = OnceLock::new();
    LEASES.get_or_init(Mutex::default)
}

struct Lease {
    file: File,
    names: HashSet<String>,
}

/// The shared or exclusive hold on `<native>/lock`; released when dropped.
pub(crate) struct DirLock {
    _file: File,
}

fn open_lock(native: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(native)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(native.join(LOCK_FILE))
}

/// Waits for the shared lock: placing, recording, leasing and opening copies.
pub(crate) fn shared(native: &Path) -> std::io::Result<DirLock> {
    let file = open_lock(native)?;
    sys::lock(&file, sys::Mode::Shared)?;
    Ok(DirLock { _file: file })
}

/// Names `<type_name>/<file>` in this process's lease of `native`, creating the lease on
/// first use. Call with the shared lock held, before opening the copy.
pub(crate) fn lease(native: &Path, type_name: &str, file: &str) -> std::io::Result<()> {
    let name = format!("{type_name}/{file}");
    let mut all = leases().lock().unwrap_or_else(|p| p.into_inner());
    let key = native
        .canonicalize()
        .unwrap_or_else(|_| native.to_path_buf());
    let lease = match all.entry(key) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let dir = native.join(LEASES_DIR);
            std::fs::create_dir_all(&dir)?;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let id = format!("{}-{nanos}", std::process::id());
            // Locked under a name no one reads as a lease, then renamed (the lock moves
            // with the file): nobody can see it unlocked and take it for a dead one.
            let tmp = dir.join(format!(".{id}.tmp"));
            let file = File::create_new(&tmp)?;
            // A fresh file nobody else has opened: taking its lock cannot block.
            sys::lock(&file, sys::Mode::Exclusive)?;
            std::fs::rename(&tmp, dir.join(format!("{id}.lease")))?;
            // Short-lived hosts (`jitnode call`) each leave a lease: clear the dead ones
            // here too, not only when a build collects.
            remove_dead_leases(&dir)?;
            v.insert(Lease {
                file,
                names: HashSet::new(),
            })
        }
    };
    if lease.names.contains(&name) {
        return Ok(());
    }
    lease.file.write_all(format!("{name}\n").as_bytes())?;
    lease.names.insert(name);
    Ok(())
}

/// Removes the leases in `dir` whose lock is free (their process is gone) and returns
/// the others. Needs the lock on the native folder, shared or exclusive: leases are only
/// created under it, so a lease is never seen before its lock is taken.
fn remove_dead_leases(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut held = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(held);
    };
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension() != Some(std::ffi::OsStr::new("lease")) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if sys::try_exclusive(&file)? {
            // The kernel released its owner's lock when that process ended.
            let _ = std::fs::remove_file(&path);
        } else {
            held.push(path);
        }
    }
    Ok(held)
}

/// True for the names [`crate::place_fresh`] gives copies: `<stem>-<16 hex><suffix>`.
fn is_placed_copy(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(std::env::consts::DLL_SUFFIX) else {
        return false;
    };
    stem.rsplit_once('-').is_some_and(|(head, hash)| {
        !head.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Removes the copies in `<native>/<type_name>/` that neither the Type's record nor a
/// running host's lease names, and the leases of hosts that are gone. Returns the removed
/// copies. Waits for the exclusive lock; never call it holding [`shared`].
pub(crate) fn collect_unused(native: &Path, type_name: &str) -> std::io::Result<Vec<PathBuf>> {
    if !sys::SUPPORTED {
        return Ok(Vec::new());
    }
    let lock = open_lock(native)?;
    sys::lock(&lock, sys::Mode::Exclusive)?;

    let mut live: HashSet<String> = HashSet::new();
    for path in remove_dead_leases(&native.join(LEASES_DIR))? {
        // Held, so in use: whatever it names stays. Unreadable means keep everything.
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Vec::new());
        };
        live.extend(text.lines().map(str::to_string));
    }
    // An unreadable record keeps everything: better a stale copy than a missing one.
    let Ok(record) = read_record(&record_path(native, type_name)) else {
        return Ok(Vec::new());
    };
    let current = record.map(|r| r.library);

    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(native.join(type_name)) else {
        return Ok(removed);
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_placed_copy(&name)
            || current.as_deref() == Some(name.as_str())
            || live.contains(&format!("{type_name}/{name}"))
        {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed.sort();
    drop(lock);
    Ok(removed)
}

#[cfg(unix)]
mod sys {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    pub const SUPPORTED: bool = true;

    pub enum Mode {
        Shared,
        Exclusive,
    }

    fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
        loop {
            // SAFETY: flock takes an open descriptor (borrowed from `file` for the call)
            // and an operation flag; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Blocks until the lock is held.
    pub fn lock(file: &File, mode: Mode) -> std::io::Result<()> {
        flock(
            file,
            match mode {
                Mode::Shared => libc::LOCK_SH,
                Mode::Exclusive => libc::LOCK_EX,
            },
        )
    }

    /// `Ok(true)` when the exclusive lock was free (and is now held through `file`).
    pub fn try_exclusive(file: &File) -> std::io::Result<bool> {
        match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(not(unix))]
mod sys {
    use std::fs::File;

    pub const SUPPORTED: bool = false;

    pub enum Mode {
        Shared,
        Exclusive,
    }

    pub fn lock(_file: &File, _mode: Mode) -> std::io::Result<()> {
        Ok(())
    }

    pub fn try_exclusive(_file: &File) -> std::io::Result<bool> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use jitnode_dist::{write_record, LibraryRecord, RECORD_FORMAT};

    use super::*;

    fn copy_name(hash: &str) -> String {
        format!("libkw-{hash}{}", std::env::consts::DLL_SUFFIX)
    }

    #[test]
    fn placed_copies_are_recognised_by_name() {
        assert!(is_placed_copy(&copy_name("0123456789abcdef")));
        assert!(!is_placed_copy(&copy_name("0123")));
        assert!(!is_placed_copy(&copy_name("0123456789abcdeg")));
        assert!(!is_placed_copy("library.json"));
        assert!(!is_placed_copy(".tmp-1-0123456789abcdef"));
    }

    /// The record's copy, and copies named by this (live) process's lease, stay; a copy
    /// named only by the lease of a process that is gone, and one nobody names, go, and so
    /// does the dead lease.
    #[test]
    fn only_copies_no_record_or_live_lease_names_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let native = d.path().join("native");
        let ty = native.join("demo.kwType");
        std::fs::create_dir_all(&ty).unwrap();
        let [current, leased, dead, unnamed] = [
            "000000000000000a",
            "000000000000000b",
            "000000000000000c",
            "000000000000000d",
        ]
        .map(copy_name);
        for n in [&current, &leased, &dead, &unnamed] {
            std::fs::write(ty.join(n), n).unwrap();
        }
        std::fs::write(ty.join("library.json.keep"), "").unwrap();
        write_record(
            &record_path(&native, "demo.kwType"),
            &LibraryRecord {
                format: RECORD_FORMAT,
                type_name: "demo.kwType".into(),
                library: current.clone(),
                library_hash: "000000000000000a".into(),
                source_hash: "1".into(),
                target: crate::HOST_TARGET.into(),
                abi_version: 1,
                sdk_version: "0.1.0".into(),
            },
        )
        .unwrap();
        {
            let _held = shared(&native).unwrap();
            lease(&native, "demo.kwType", &leased).unwrap();
        }
        // A lease file nobody holds a lock on: its process has exited.
        let gone = native.join(LEASES_DIR).join("1-1.lease");
        std::fs::write(&gone, format!("demo.kwType/{dead}\n")).unwrap();

        let removed = collect_unused(&native, "demo.kwType").unwrap();
        let mut expected = vec![ty.join(&dead), ty.join(&unnamed)];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(ty.join(&current).is_file());
        assert!(ty.join(&leased).is_file());
        assert!(ty.join("library.json.keep").is_file());
        assert!(!gone.exists(), "the dead lease is removed");
        let ours = std::fs::read_dir(native.join(LEASES_DIR)).unwrap().count();
        assert_eq!(ours, 1, "this process's lease stays");
        assert_eq!(
            collect_unused(&native, "demo.kwType").unwrap(),
            Vec::<PathBuf>::new()
        );
    }
}
