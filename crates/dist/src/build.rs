//! The build: compare sources with the manifest, write what changed, swap atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jitnode_element::{
    load_tree, par_map, resolve, walk, AppTree, Definition, Element, FoundElement, Parsed, Problem,
    ProblemKind, Problems,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::manifest::{self, hex, Manifest, ManifestElement, ManifestFile, FORMAT, HOST_VERSION};
use crate::{BuildReport, DistError};

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DistError + 'a {
    move |source| DistError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn mtime_ns(m: &Metadata) -> u64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The file system's idea of "now" (its timestamp granularity included): the mtime of a
/// file created for the purpose.
fn fs_now(dir: &Path) -> Result<u64, DistError> {
    let path = dir.join(format!(".stamp-{}", std::process::id()));
    let f = File::create(&path).map_err(io("create", &path))?;
    let m = f.metadata().map_err(io("stat", &path))?;
    drop(f);
    let _ = fs::remove_file(&path);
    Ok(mtime_ns(&m))
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Builds a tree from a manifest; `Err(reason)` when the manifest does not hold together.
/// Takes the manifest by value so the recorded definitions move into the tree uncopied.
pub(crate) fn tree_from_manifest(dist: &Path, m: Manifest) -> Result<AppTree, String> {
    let mut elements = BTreeMap::new();
    for (name, e) in m.elements {
        let def = Definition::from_raw(e.def)
            .map_err(|_| format!("element {name}: its recorded definition is invalid"))?;
        if e.chain.first() != Some(&name) {
            return Err(format!(
                "element {name}: its recorded chain does not start with it"
            ));
        }
        elements.insert(
            name.clone(),
            Element {
                full_name: name.clone(),
                dir: dist.join(&e.dir),
                def,
                chain: e.chain,
            },
        );
    }
    for e in elements.values() {
        if let Some(missing) = e.chain.iter().find(|c| !elements.contains_key(*c)) {
            return Err(format!(
                "element {}: chain member {missing} is not recorded",
                e.full_name
            ));
        }
    }
    let dirs: Vec<&PathBuf> = elements.values().map(|e| &e.dir).collect();
    let present = par_map(&dirs, |d| d.is_dir());
    if let Some(i) = present.iter().position(|ok| !ok) {
        return Err(format!("{} is missing", dirs[i].display()));
    }
    Ok(AppTree { elements })
}

/// True when every file of `f` has the size and mtime recorded in `e`, and the record is
/// not racy (mtime older than the manifest's stamp).
fn stat_clean(f: &FoundElement, e: &ManifestElement, stamp_ns: u64) -> bool {
    if e.src != f.rel_dir || e.files.len() != f.files.len() {
        return false;
    }
    e.files.iter().zip(&f.files).all(|(mf, path)| {
        mf.path == *path
            && mf.mtime_ns < stamp_ns
            && fs::metadata(f.dir.join(path))
                .map(|m| m.len() == mf.size && mtime_ns(&m) == mf.mtime_ns)
                .unwrap_or(false)
    })
}

/// Reads a whole file and the metadata taken before reading (a change during the read then
/// shows up as a stat mismatch next time). Sized from that metadata, so a small file costs
/// open, fstat, two reads and close (`fs::read` adds another fstat and a seek).
fn read_with_metadata(path: &Path) -> std::io::Result<(Vec<u8>, Metadata)> {
    let mut file = File::open(path)?;
    let m = file.metadata()?;
    let mut buf = vec![0u8; m.len() as usize];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // Expected size reached: confirm EOF (the file may have grown).
            let mut probe = [0u8; 4096];
            let n = file.read(&mut probe)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&probe[..n]);
            filled = buf.len();
            continue;
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => {
                buf.truncate(filled);
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((buf, m))
}

/// Per element: dist folder, content hash, file records, written by this build.
type Record = (String, String, Vec<ManifestFile>, bool);

enum Outcome {
    /// Unchanged by stat; everything comes from the old manifest entry.
    Reused(Definition),
    /// Read and hashed. `written`: a new folder was written under `dir`.
    Fresh {
        def: Definition,
        files: Vec<ManifestFile>,
        hash: String,
        dir: String,
        written: bool,
    },
    Bad(Vec<Problem>),
    Failed(DistError),
}

/// `e/<source path>.<hash>`: nested like the sources, because creating thousands of
/// entries in one folder is slow on common file systems; the `.` cannot occur in a fullName
/// segment, so an element copy never collides with a namespace folder.
fn element_dir_name(rel_dir: &str, hash: &str) -> String {
    format!("e/{rel_dir}.{hash}")
}

/// Reads, hashes and parses one element; writes its copy under `target` unless the old
/// dist already holds the same content.
fn process(
    f: &FoundElement,
    old: Option<&ManifestElement>,
    dist: &Path,
    target: &Path,
    full: bool,
) -> Outcome {
    let mut contents = Vec::with_capacity(f.files.len());
    let mut files = Vec::with_capacity(f.files.len());
    let mut problems = Vec::new();
    for rel in &f.files {
        let path = f.dir.join(rel);
        let read = read_with_metadata(&path);
        match read {
            Ok((buf, m)) => {
                files.push(ManifestFile {
                    path: rel.clone(),
                    size: m.len(),
                    mtime_ns: mtime_ns(&m),
                    hash: hex(xxh3_64(&buf)),
                });
                contents.push(buf);
            }
            Err(e) => problems.push(Problem::new(
                path,
                Some(&f.full_name),
                ProblemKind::Io {
                    message: e.to_string(),
                },
            )),
        }
    }
    if !problems.is_empty() {
        return Outcome::Bad(problems);
    }
    let Some(ej) = files.iter().position(|mf| mf.path == "e.json") else {
        return Outcome::Bad(vec![Problem::new(
            f.dir.join("e.json"),
            Some(&f.full_name),
            ProblemKind::Io {
                message: "e.json disappeared while building".into(),
            },
        )]);
    };
    let def = match Definition::parse(&contents[ej]) {
        Ok(d) => d,
        Err(kinds) => {
            return Outcome::Bad(
                kinds
                    .into_iter()
                    .map(|k| Problem::new(f.dir.join("e.json"), Some(&f.full_name), k))
                    .collect(),
            )
        }
    };
    // The element hash covers each file's path and content hash, in path order.
    let mut acc = Vec::with_capacity(files.len() * 48);
    for mf in &files {
        acc.extend_from_slice(mf.path.as_bytes());
        acc.push(0);
        acc.extend_from_slice(mf.hash.as_bytes());
        acc.push(0);
    }
    let hash = hex(xxh3_64(&acc));
    if !full {
        if let Some(o) = old {
            if o.hash == hash && dist.join(&o.dir).is_dir() {
                return Outcome::Fresh {
                    def,
                    files,
                    hash,
                    dir: o.dir.clone(),
                    written: false,
                };
            }
        }
    }
    let dir = element_dir_name(&f.rel_dir, &hash);
    let out = target.join(&dir);
    if let Err(e) = write_element(&out, &files, &contents, full) {
        return Outcome::Failed(e);
    }
    Outcome::Fresh {
        def,
        files,
        hash,
        dir,
        written: true,
    }
}

fn write_element(
    out: &Path,
    files: &[ManifestFile],
    contents: &[Vec<u8>],
    fresh_target: bool,
) -> Result<(), DistError> {
    if !fresh_target && out.exists() {
        // A leftover of a crashed build: never referenced by a manifest, so rewrite it.
        fs::remove_dir_all(out).map_err(io("remove", out))?;
    }
    // Its parent was created before the parallel pass.
    fs::create_dir(out).map_err(io("create", out))?;
    let mut made: HashSet<PathBuf> = HashSet::new();
    for (mf, bytes) in files.iter().zip(contents) {
        let path = out.join(&mf.path);
        if let Some(parent) = path.parent() {
            if parent != out && made.insert(parent.to_path_buf()) {
                fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
        }
        fs::write(&path, bytes).map_err(io("write", &path))?;
    }
    Ok(())
}

fn write_manifest(root: &Path, m: &Manifest) -> Result<(), DistError> {
    let bytes = serde_json::to_vec(m).map_err(|e| DistError::Io {
        action: "serialise",
        path: root.join("manifest.json"),
        source: std::io::Error::other(e),
    })?;
    let tmp = root.join("manifest.json.tmp");
    fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    let dst = root.join("manifest.json");
    fs::rename(&tmp, &dst).map_err(io("rename", &dst))
}

/// Complete problem list for sources that failed somewhere (the error path only).
fn all_problems(src_root: &Path, fallback: Vec<Problem>) -> DistError {
    match load_tree(src_root) {
        Err(p) => DistError::Problems(p),
        Ok(_) => DistError::Problems(Problems(fallback)),
    }
}

/// Deletes element copies under `dir` (dist-relative `rel`) that `keep` does not list, and
/// namespace folders left empty.
fn collect_garbage(dir: &Path, rel: &str, keep: &HashSet<&str>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child_rel = format!("{rel}/{name}");
        if name.contains('.') {
            if !keep.contains(child_rel.as_str()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        } else {
            collect_garbage(&entry.path(), &child_rel, keep);
            let _ = fs::remove_dir(entry.path()); // only succeeds when empty
        }
    }
}

/// Removes leftovers of crashed full builds beside dist/ (those whose process is gone).
fn remove_leftovers(app_dir: &Path) {
    if let Ok(rd) = fs::read_dir(app_dir) {
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let Some(rest) = n
                .strip_prefix(".dist-tmp-")
                .or_else(|| n.strip_prefix(".dist-old-"))
            else {
                continue;
            };
            // Leave the folders of another builder that is still running alone.
            let pid = rest.split('-').next().unwrap_or_default();
            let ours = pid == std::process::id().to_string();
            let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
            if ours || !alive {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The outcome when dist/ is used as it is: every element reused, nothing rebuilt.
fn all_reused(tree: AppTree) -> (AppTree, BuildReport) {
    let reused = tree.elements.keys().cloned().collect();
    (
        tree,
        BuildReport {
            reused,
            ..BuildReport::default()
        },
    )
}

pub(crate) fn run(app_dir: &Path, trust_stat: bool) -> Result<(AppTree, BuildReport), DistError> {
    let dist = app_dir.join("dist");
    let src_root = app_dir.join("elements");
    let old = manifest::read(&dist).ok();

    if !src_root.is_dir() {
        if trust_stat {
            if let Some(m) = old {
                let tree = tree_from_manifest(&dist, m).map_err(|reason| DistError::NoDist {
                    path: dist.clone(),
                    reason,
                })?;
                return Ok(all_reused(tree));
            }
        }
        return Err(DistError::NoSources { path: src_root });
    }

    let (found, walk_problems) = walk(&src_root);
    if !walk_problems.is_empty() {
        return Err(all_problems(&src_root, walk_problems));
    }

    // Fast path: every file unchanged by size+mtime and the same set of elements.
    let clean: Vec<bool> = match (&old, trust_stat) {
        (Some(m), true) => par_map(&found, |f| {
            m.elements
                .get(&f.full_name)
                .is_some_and(|e| stat_clean(f, e, m.stamp_ns))
        }),
        _ => vec![false; found.len()],
    };
    let unchanged = old
        .as_ref()
        .is_some_and(|m| trust_stat && found.len() == m.elements.len() && clean.iter().all(|c| *c));
    let old = match old {
        Some(m) if unchanged => match tree_from_manifest(&dist, m) {
            Ok(tree) => return Ok(all_reused(tree)),
            Err(_) => None,
        },
        // An old dist we cannot trust is rebuilt from scratch.
        Some(m) => Some(m).filter(|m| tree_from_manifest(&dist, m.clone()).is_ok()),
        None => None,
    };
    let full = old.is_none();
    let target = if full {
        remove_leftovers(app_dir);
        let tmp = app_dir.join(format!(".dist-tmp-{}", unique_suffix()));
        fs::create_dir_all(tmp.join("e")).map_err(io("create", &tmp))?;
        tmp
    } else {
        dist.clone()
    };
    let cleanup_target = |written: &[String]| {
        if full {
            let _ = fs::remove_dir_all(&target);
        } else {
            for d in written {
                let _ = fs::remove_dir_all(dist.join(d));
            }
        }
    };
    let stamp_ns = if full {
        fs::metadata(&target)
            .map(|m| mtime_ns(&m))
            .map_err(io("stat", &target))?
    } else {
        fs_now(&dist)?
    };

    // Namespace folders first, once, so the parallel writers only create element folders.
    let mut parents: Vec<&str> = found
        .iter()
        .map(|f| f.rel_dir.rsplit_once('/').map(|(p, _)| p).unwrap_or(""))
        .collect();
    parents.sort_unstable();
    parents.dedup();
    for p in parents {
        let d = target.join("e").join(p);
        if let Err(e) = fs::create_dir_all(&d) {
            cleanup_target(&[]);
            return Err(io("create", &d)(e));
        }
    }

    let old_elems = old.as_ref().map(|m| &m.elements);
    let indices: Vec<usize> = (0..found.len()).collect();
    let outcomes = par_map(&indices, |&i| {
        let f = &found[i];
        let prev = old_elems.and_then(|m| m.get(&f.full_name));
        if clean[i] {
            if let Some(p) = prev {
                if let Ok(def) = Definition::from_raw(p.def.clone()) {
                    return Outcome::Reused(def);
                }
            }
        }
        process(f, prev, &dist, &target, full)
    });

    let written: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Fresh {
                dir, written: true, ..
            } => Some(dir.clone()),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    let mut failure = None;
    let mut parsed = Vec::with_capacity(found.len());
    let mut records: HashMap<String, Record> = HashMap::new();
    for (f, o) in found.into_iter().zip(outcomes) {
        match o {
            Outcome::Reused(def) => {
                let p = &old_elems.expect("reused only with an old manifest")[&f.full_name];
                records.insert(
                    f.full_name.clone(),
                    (p.dir.clone(), p.hash.clone(), p.files.clone(), false),
                );
                parsed.push(Parsed {
                    found: f,
                    def: Some(def),
                });
            }
            Outcome::Fresh {
                def,
                files,
                hash,
                dir,
                written,
            } => {
                records.insert(f.full_name.clone(), (dir, hash, files, written));
                parsed.push(Parsed {
                    found: f,
                    def: Some(def),
                });
            }
            Outcome::Bad(p) => {
                problems.extend(p);
                parsed.push(Parsed {
                    found: f,
                    def: None,
                });
            }
            Outcome::Failed(e) => {
                failure.get_or_insert(e);
                parsed.push(Parsed {
                    found: f,
                    def: None,
                });
            }
        }
    }
    if let Some(e) = failure {
        cleanup_target(&written);
        return Err(e);
    }
    let src_tree = match resolve(parsed, problems) {
        Ok(t) => t,
        Err(p) => {
            cleanup_target(&written);
            return Err(DistError::Problems(p));
        }
    };

    let mut report = BuildReport {
        full,
        ..BuildReport::default()
    };
    let mut new_elements = BTreeMap::new();
    let mut tree = AppTree::default();
    for (name, mut el) in src_tree.elements {
        let (dir, hash, files, was_written) = records
            .remove(&name)
            .expect("every resolved element has a record: failures return early");
        if was_written {
            report.rebuilt.push(name.clone());
        } else {
            report.reused.push(name.clone());
        }
        let src = el
            .dir
            .strip_prefix(&src_root)
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        new_elements.insert(
            name.clone(),
            ManifestElement {
                dir: dir.clone(),
                src,
                hash,
                chain: el.chain.clone(),
                def: el.def.raw.clone(),
                files,
            },
        );
        el.dir = dist.join(&dir);
        tree.elements.insert(name, el);
    }
    if let Some(m) = &old {
        report.removed = m
            .elements
            .keys()
            .filter(|k| !new_elements.contains_key(*k))
            .cloned()
            .collect();
    }
    let manifest = Manifest {
        format: FORMAT,
        host_version: HOST_VERSION.to_string(),
        stamp_ns,
        elements: new_elements,
    };

    if full {
        if let Err(e) = write_manifest(&target, &manifest) {
            cleanup_target(&written);
            return Err(e);
        }
        // Native libraries are not built from here: keep them (and their records, and
        // the leases of hosts running them) across the swap. Moving the folder leaves
        // open files and mapped libraries intact. Best effort: without it the native
        // loader rebuilds.
        let native = dist.join(crate::native::NATIVE_DIR);
        if native.is_dir() {
            let _ = fs::rename(&native, target.join(crate::native::NATIVE_DIR));
        }
        let old_dist = if dist.exists() {
            let aside = app_dir.join(format!(".dist-old-{}", unique_suffix()));
            fs::rename(&dist, &aside).map_err(io("move aside", &dist))?;
            Some(aside)
        } else {
            None
        };
        fs::rename(&target, &dist).map_err(io("rename into place", &dist))?;
        if let Some(aside) = old_dist {
            let _ = fs::remove_dir_all(aside);
        }
    } else {
        write_manifest(&dist, &manifest)?;
        // Only now is anything old unreferenced; delete it (and crash leftovers).
        let keep: HashSet<&str> = manifest.elements.values().map(|e| e.dir.as_str()).collect();
        collect_garbage(&dist.join("e"), "e", &keep);
    }
    Ok((tree, report))
}
