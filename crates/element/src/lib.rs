//! jitnode-element: the element model of a JitNode-style app, as plain synchronous code.
//!
//! It walks an app's element root (folders with an `e.json`), parses definitions, resolves
//! every element's type chain up to its Meta (reporting all problems in one pass), renders
//! `config.json` templates from an environment, and offers the pure pieces behind `check`
//! and `tree`.
//!
//! It is NOT the runtime: it loads no code, starts nothing, does no network I/O and uses no
//! async runtime. Building `dist/` lives in `jitnode-dist`, loading in `jitnode-host`.

mod check;
mod def;
mod env;
mod file;
mod par;
mod problem;
mod template;
mod tree;
mod walk;

pub use check::{check, check_app, render_tree};
pub use def::{Definition, LoadTime};
pub use env::{parse_dotenv, Env, EnvError};
pub use file::FileError;
pub use par::{par_map, worker_count};
pub use problem::{is_valid_segment, Problem, ProblemKind, Problems, SEGMENT_RULE};
pub use template::{render_config, render_template, template_vars, TemplateError};
pub use tree::{load_tree, parse_tree, resolve, AppTree, Element, Parsed};
pub use walk::{walk, FoundElement};
