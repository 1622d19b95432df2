//! Elements, the resolved app tree, and type-chain resolution.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::def::Definition;
use crate::file::FileError;
use crate::par::par_map;
use crate::problem::{Problem, ProblemKind, Problems};
use crate::walk::{walk, FoundElement};

/// One resolved element.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// e.g. `imRobots.dingTalkDemo`.
    pub full_name: String,
    /// Folder holding its files (its source folder, or its copy inside dist/).
    pub dir: PathBuf,
    pub def: Definition,
    /// `[self, its Type, ..., Meta]`; `chain.last()` is the Meta.
    pub chain: Vec<String>,
}

impl Element {
    pub fn is_meta(&self) -> bool {
        self.def.is_meta()
    }

    /// The element's last segment (`dingTalkDemo`).
    pub fn name(&self) -> &str {
        self.full_name.rsplit('.').next().unwrap_or(&self.full_name)
    }

    /// The Meta at the end of the chain.
    pub fn meta(&self) -> &str {
        self.chain
            .last()
            .map(String::as_str)
            .unwrap_or(&self.full_name)
    }

    /// Path-safe read of one of this element's files; see [`Element::file_path`].
    pub fn read_file(&self, rel: &str) -> Result<Vec<u8>, FileError> {
        let path = self.file_path(rel)?;
        std::fs::read(&path).map_err(|source| FileError::Io {
            element: self.full_name.clone(),
            file: rel.to_string(),
            source,
        })
    }

    /// Resolves `rel` inside the element folder: refuses empty paths, absolute paths and
    /// `..`, and any path that leaves the folder through a symlink. The file must exist.
    pub fn file_path(&self, rel: &str) -> Result<PathBuf, FileError> {
        crate::file::safe_path(&self.full_name, &self.dir, rel)
    }
}

/// A resolved app: every element by fullName (sorted, for stable output).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppTree {
    pub elements: BTreeMap<String, Element>,
}

impl AppTree {
    pub fn get(&self, full_name: &str) -> Option<&Element> {
        self.elements.get(full_name)
    }

    /// The nearest element up `full_name`'s chain (its Type, then that Type's Type, ...,
    /// then the Meta; never the element itself) whose `backend_bundle_entry` is set.
    /// `None`: a data-only element (or an unknown name).
    pub fn loader_of(&self, full_name: &str) -> Option<&Element> {
        let el = self.get(full_name)?;
        el.chain
            .iter()
            .skip(1)
            .filter_map(|n| self.get(n))
            .find(|e| e.def.backend_bundle_entry.is_some())
    }

    /// Elements whose `type` is exactly `full_name`, in name order.
    pub fn children_of<'a>(&'a self, full_name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements
            .values()
            .filter(move |e| e.def.type_name == full_name)
    }

    /// Every element but the Metas, grouped by its `type`, each group in name order:
    /// [`children_of`](Self::children_of) for all Types at once, in one pass over the tree
    /// (which can hold thousands of elements).
    pub fn children_by_type(&self) -> HashMap<&str, Vec<&Element>> {
        let mut children: HashMap<&str, Vec<&Element>> = HashMap::new();
        for e in self.elements.values().filter(|e| !e.is_meta()) {
            children
                .entry(e.def.type_name.as_str())
                .or_default()
                .push(e);
        }
        children
    }

    /// All Metas, in name order.
    pub fn metas(&self) -> impl Iterator<Item = &Element> {
        self.elements.values().filter(|e| e.is_meta())
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

/// Walks, parses and resolves an element root (e.g. `<app>/elements`), reporting ALL
/// problems in one pass.
pub fn load_tree(elements_root: &Path) -> Result<AppTree, Problems> {
    let (parsed, problems) = parse_tree(elements_root);
    resolve(parsed, problems)
}

/// An element found and parsed but not yet resolved.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub found: FoundElement,
    /// `None` when its e.json has problems (they are in the accompanying problem list).
    pub def: Option<Definition>,
}

/// Walks and parses every e.json (in parallel), without resolving chains.
pub fn parse_tree(elements_root: &Path) -> (Vec<Parsed>, Vec<Problem>) {
    let (found, mut problems) = walk(elements_root);
    let results = par_map(&found, |f| {
        let path = f.dir.join("e.json");
        let parsed = match std::fs::read(&path) {
            Ok(bytes) => Definition::parse(&bytes),
            Err(e) => Err(vec![ProblemKind::Io {
                message: e.to_string(),
            }]),
        };
        (path, parsed)
    });
    let mut out = Vec::with_capacity(found.len());
    for (f, (path, res)) in found.into_iter().zip(results) {
        let def = match res {
            Ok(d) => Some(d),
            Err(kinds) => {
                for k in kinds {
                    problems.push(Problem::new(path.clone(), Some(&f.full_name), k));
                }
                None
            }
        };
        out.push(Parsed { found: f, def });
    }
    (out, problems)
}

/// Resolves every element's chain. `problems` are earlier problems (walk, parse); the
/// result is an error when any problem exists, with chain problems added.
pub fn resolve(parsed: Vec<Parsed>, mut problems: Vec<Problem>) -> Result<AppTree, Problems> {
    let broken: BTreeSet<&str> = parsed
        .iter()
        .filter(|p| p.def.is_none())
        .map(|p| p.found.full_name.as_str())
        .collect();
    let types: HashMap<&str, &str> = parsed
        .iter()
        .filter_map(|p| {
            p.def
                .as_ref()
                .map(|d| (p.found.full_name.as_str(), d.type_name.as_str()))
        })
        .collect();

    let mut chains: HashMap<&str, Vec<String>> = HashMap::new();
    let mut reported_cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut chain_problems = Vec::new();
    for p in &parsed {
        if p.def.is_none() {
            continue;
        }
        let me = p.found.full_name.as_str();
        let ejson = p.found.dir.join("e.json");
        let mut chain: Vec<&str> = vec![me];
        let outcome = loop {
            let cur = *chain.last().expect("chain starts with the element itself");
            let next = types[cur];
            if next.is_empty() {
                break Ok(());
            }
            if let Some(pos) = chain.iter().position(|n| *n == next) {
                let cycle: Vec<String> = chain[pos..].iter().map(|s| s.to_string()).collect();
                break Err(ChainEnd::Cycle(cycle, pos));
            }
            if broken.contains(next) {
                break Err(ChainEnd::Broken(next));
            }
            if !types.contains_key(next) {
                break Err(ChainEnd::Missing(next));
            }
            chain.push(next);
        };
        match outcome {
            Ok(()) => {
                chains.insert(me, chain.iter().map(|s| s.to_string()).collect());
            }
            Err(ChainEnd::Missing(next)) if chain.len() == 1 => chain_problems.push(Problem::new(
                ejson,
                Some(me),
                ProblemKind::UnknownType {
                    type_name: next.to_string(),
                },
            )),
            Err(ChainEnd::Broken(next)) if chain.len() == 1 => chain_problems.push(Problem::new(
                ejson,
                Some(me),
                ProblemKind::TypeHasProblems {
                    type_name: next.to_string(),
                },
            )),
            Err(ChainEnd::Missing(next)) => chain_problems.push(broken_chain(
                ejson,
                me,
                &chain,
                next,
                format!("\"{next}\" names no element"),
            )),
            Err(ChainEnd::Broken(next)) => chain_problems.push(broken_chain(
                ejson,
                me,
                &chain,
                next,
                format!("\"{next}\" has problems in its e.json"),
            )),
            Err(ChainEnd::Cycle(cycle, pos)) => {
                // Report each cycle once, starting from its smallest name, at that file.
                let start = cycle
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.cmp(b.1))
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let mut norm: Vec<String> = cycle[start..].to_vec();
                norm.extend_from_slice(&cycle[..start]);
                if reported_cycles.insert(norm.clone()) {
                    let first = norm[0].clone();
                    let dir = parsed
                        .iter()
                        .find(|q| q.found.full_name == first)
                        .map(|q| q.found.dir.join("e.json"))
                        .unwrap_or_else(|| ejson.clone());
                    let mut shown = norm.clone();
                    shown.push(first.clone());
                    chain_problems.push(Problem::new(
                        dir,
                        Some(&first),
                        ProblemKind::Cycle { cycle: shown },
                    ));
                }
                if pos > 0 {
                    // This element is outside the cycle but leads into it.
                    chain_problems.push(broken_chain(
                        ejson,
                        me,
                        &chain,
                        chain[pos],
                        format!("it leads into a type cycle through \"{}\"", chain[pos]),
                    ));
                }
            }
        }
    }
    problems.extend(chain_problems);
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let mut chains: HashMap<String, Vec<String>> = chains
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let elements = parsed
        .into_iter()
        .filter_map(|p| {
            let def = p.def?;
            let chain = chains.remove(&p.found.full_name)?;
            Some((
                p.found.full_name.clone(),
                Element {
                    full_name: p.found.full_name,
                    dir: p.found.dir,
                    def,
                    chain,
                },
            ))
        })
        .collect();
    Ok(AppTree { elements })
}

/// A [`ProblemKind::BrokenChain`] of `me` at its `ejson`: the chain walked so far, then
/// `next`, where it breaks.
fn broken_chain(ejson: PathBuf, me: &str, chain: &[&str], next: &str, reason: String) -> Problem {
    let mut shown: Vec<String> = chain.iter().map(|s| s.to_string()).collect();
    shown.push(next.to_string());
    Problem::new(
        ejson,
        Some(me),
        ProblemKind::BrokenChain {
            chain: shown,
            reason,
        },
    )
}

enum ChainEnd<'a> {
    Missing(&'a str),
    Broken(&'a str),
    /// The cycle's names (first not repeated) and where it starts in the chain.
    Cycle(Vec<String>, usize),
}
