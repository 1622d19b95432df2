//! Walking an element root: which folders are elements, and which files belong to each.
//!
//! Rules:
//! - a folder holding a regular file `e.json` is an element; its fullName is its path below
//!   the root with `/` replaced by `.`; every folder on that path must be a valid segment
//!   (see [`crate::is_valid_segment`]);
//! - a folder without `e.json` is a namespace folder (or, inside an element, a plain subfolder);
//! - `frontend/` and `backend/` directly inside an element belong to that element: no
//!   elements are looked for inside them;
//! - hidden entries (name starting with `.`, which also keeps `.env` files out of dist/) and
//!   folders named `dist` or `target` are skipped everywhere;
//! - a file belongs to the nearest element folder above it; files outside every element are
//!   ignored;
//! - symlinks to files count as files when their target lies inside the element root;
//!   a symlink whose target lies outside it is a problem naming the link (so a link to
//!   `~/.aws/credentials` is never packaged or quoted); symlinks to folders are not
//!   followed (no loops).

use std::fs;
use std::path::{Path, PathBuf};

use crate::par::par_map;
use crate::problem::{is_valid_segment, Problem, ProblemKind};

/// One element folder found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundElement {
    pub full_name: String,
    /// Path below the element root, `/`-separated (`imRobots/dingTalkDemo`).
    pub rel_dir: String,
    /// The folder on disk.
    pub dir: PathBuf,
    /// The element's own files, `/`-separated paths relative to `dir`, sorted; includes
    /// `e.json`; excludes nested elements' files.
    pub files: Vec<String>,
}

/// Walks `root`, returning the element folders (sorted by fullName) and problems met on the
/// way (unreadable folders, bad names). Never stops at the first problem.
///
/// Rules: a folder holding a regular file `e.json` is an element (fullName = its path below
/// `root`, `/` -> `.`, each folder a valid segment); a folder without one is a namespace or,
/// inside an element, a plain subfolder; `frontend/`/`backend/` directly inside an element
/// belong to it; hidden entries and folders named `dist`/`target` are skipped; a file
/// belongs to the nearest element above it; symlinked files count when their target lies
/// inside `root` (else a [`ProblemKind::SymlinkOutsideRoot`] naming the link), symlinked
/// folders are not followed.
pub fn walk(root: &Path) -> (Vec<FoundElement>, Vec<Problem>) {
    // Symlink targets are compared with the root's real location.
    let root_real = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut w = Walker {
        found: Vec::new(),
        problems: Vec::new(),
        root_real: root_real.clone(),
    };
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {
            // Subtrees of the root's folders are independent (nothing owns the root), so
            // they are walked in parallel.
            let entries = w.entries(root, &None).unwrap_or_default();
            if entries
                .iter()
                .any(|(n, k)| n == "e.json" && matches!(k, Kind::File))
            {
                w.problems.push(Problem::new(
                    root.join("e.json"),
                    None,
                    ProblemKind::RootIsElement,
                ));
            }
            let dirs: Vec<String> = entries
                .into_iter()
                .filter(|(_, k)| matches!(k, Kind::Dir))
                .map(|(n, _)| n)
                .collect();
            let parts = par_map(&dirs, |name| {
                let mut sub = Walker {
                    found: Vec::new(),
                    problems: Vec::new(),
                    root_real: root_real.clone(),
                };
                let mut segs = vec![name.clone()];
                sub.dir(&root.join(name), &mut segs, None, false);
                (sub.found, sub.problems)
            });
            for (found, problems) in parts {
                w.found.extend(found);
                w.problems.extend(problems);
            }
        }
        Ok(_) => w.problems.push(Problem::new(
            root,
            None,
            ProblemKind::Io {
                message: "the element root is not a folder".into(),
            },
        )),
        Err(e) => w.problems.push(Problem::new(
            root,
            None,
            ProblemKind::Io {
                message: format!("the element root cannot be read: {e}"),
            },
        )),
    }
    for f in &mut w.found {
        f.files.sort_unstable();
    }
    w.found
        .sort_unstable_by(|a, b| a.full_name.cmp(&b.full_name));
    (w.found, w.problems)
}

struct Walker {
    found: Vec<FoundElement>,
    problems: Vec<Problem>,
    /// The element root, canonicalized.
    root_real: PathBuf,
}

enum Kind {
    File,
    Dir,
    /// A symlink to a file outside the element root: never content, reported when an
    /// element would own it (known only in [`Walker::dir`]).
    Escapes(PathBuf),
}

impl Walker {
    /// Records a problem in `file`, named after the element owning the folder, if any.
    fn report(
        &mut self,
        file: impl Into<PathBuf>,
        owner: &Option<(usize, String)>,
        kind: ProblemKind,
    ) {
        let el = owner
            .as_ref()
            .map(|(i, _)| self.found[*i].full_name.clone());
        self.problems.push(Problem::new(file, el.as_deref(), kind));
    }

    /// [`Walker::report`] of an I/O failure.
    fn report_io(
        &mut self,
        file: impl Into<PathBuf>,
        owner: &Option<(usize, String)>,
        message: String,
    ) {
        self.report(file, owner, ProblemKind::Io { message });
    }

    /// Lists a folder's entries after the skip rules, sorted by name; `None` when it cannot
    /// be read (reported).
    fn entries(
        &mut self,
        path: &Path,
        owner: &Option<(usize, String)>,
    ) -> Option<Vec<(String, Kind)>> {
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.report_io(path, owner, e.to_string());
                return None;
            }
        };
        let mut entries: Vec<(String, Kind)> = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.report_io(path, owner, e.to_string());
                    continue;
                }
            };
            let os_name = entry.file_name();
            let ft = match entry.file_type() {
                Ok(ft) => ft,
                Err(e) => {
                    self.report_io(entry.path(), owner, e.to_string());
                    continue;
                }
            };
            if os_name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                match fs::metadata(entry.path()) {
                    Ok(m) if m.is_file() => match fs::canonicalize(entry.path()) {
                        Ok(real) if real.starts_with(&self.root_real) => Kind::File,
                        Ok(real) => Kind::Escapes(real),
                        Err(e) => {
                            self.report_io(
                                entry.path(),
                                owner,
                                format!("cannot resolve symlink: {e}"),
                            );
                            continue;
                        }
                    },
                    Ok(_) => continue, // symlinked folders are not followed
                    Err(e) => {
                        if owner.is_some() {
                            self.report_io(entry.path(), owner, format!("broken symlink: {e}"));
                        }
                        continue;
                    }
                }
            } else {
                continue; // sockets, fifos, devices: never element content
            };
            let name = match os_name.into_string() {
                Ok(n) => n,
                Err(_) => {
                    // Only report names that would matter: element files and folders.
                    if owner.is_some() || matches!(kind, Kind::Dir) {
                        self.report(entry.path(), owner, ProblemKind::NameNotUtf8);
                    }
                    continue;
                }
            };
            if matches!(kind, Kind::Dir) && (name == "dist" || name == "target") {
                continue;
            }
            entries.push((name, kind));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(entries)
    }

    /// `owner`: the element owning this folder's files and the folder's path inside it.
    fn dir(
        &mut self,
        path: &Path,
        segs: &mut Vec<String>,
        owner: Option<(usize, String)>,
        bundle: bool,
    ) {
        let Some(entries) = self.entries(path, &owner) else {
            return;
        };
        let mut owner = owner;
        let is_element = !bundle
            && entries
                .iter()
                .any(|(n, k)| n == "e.json" && matches!(k, Kind::File));
        if is_element {
            let ejson = path.join("e.json");
            if segs.is_empty() {
                self.problems
                    .push(Problem::new(ejson, None, ProblemKind::RootIsElement));
                owner = None;
            } else if let Some(bad) = segs.iter().find(|s| !is_valid_segment(s)) {
                self.problems.push(Problem::new(
                    ejson,
                    None,
                    ProblemKind::BadSegment {
                        segment: bad.clone(),
                    },
                ));
                owner = None;
            } else {
                self.found.push(FoundElement {
                    full_name: segs.join("."),
                    rel_dir: segs.join("/"),
                    dir: path.to_path_buf(),
                    files: Vec::new(),
                });
                owner = Some((self.found.len() - 1, String::new()));
            }
        }

        if owner.is_none() {
            // An e.json linking outside would otherwise just make this a namespace folder.
            if let Some((name, Kind::Escapes(target))) = entries.iter().find(|(n, _)| n == "e.json")
            {
                self.problems.push(Problem::new(
                    path.join(name),
                    None,
                    ProblemKind::SymlinkOutsideRoot {
                        target: target.clone(),
                    },
                ));
            }
        }
        if let Some((idx, prefix)) = &owner {
            for (name, kind) in &entries {
                match kind {
                    Kind::File => self.found[*idx].files.push(format!("{prefix}{name}")),
                    Kind::Escapes(target) => {
                        let el = self.found[*idx].full_name.clone();
                        self.problems.push(Problem::new(
                            path.join(name),
                            Some(&el),
                            ProblemKind::SymlinkOutsideRoot {
                                target: target.clone(),
                            },
                        ));
                    }
                    Kind::Dir => {}
                }
            }
        }
        for (name, kind) in entries {
            if !matches!(kind, Kind::Dir) {
                continue;
            }
            let in_element_dir = matches!(&owner, Some((_, p)) if p.is_empty());
            let child_bundle =
                bundle || (in_element_dir && (name == "frontend" || name == "backend"));
            let child_owner = owner.as_ref().map(|(i, p)| (*i, format!("{p}{name}/")));
            let child = path.join(&name);
            segs.push(name);
            self.dir(&child, segs, child_owner, child_bundle);
            segs.pop();
        }
    }
}
