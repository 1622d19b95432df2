//! jitnode-element: the element model of a JitNode-style app, as plain synchronous code.
//!
//! It walks an app's element root (folders with an `e.json`), parses definitions, resolves
//! every element's type chain up to its Meta (reporting all problems in one pass), renders
//! `config.json` templates from an environment, and offers the pure pieces behind `check`
//! and `tree`.
//!
//! Rules decided here (details on the items):
//! - walk ([`walk`]): a folder with an `e.json` is an element; fullName = path below the root
//!   with `/` -> `.`; every folder on the path must match `[A-Za-z_][A-Za-z0-9_-]*`
//!   ([`SEGMENT_RULE`]); `frontend/` and `backend/` directly inside an element belong to it;
//!   hidden entries and `dist/`, `target/` folders are skipped; symlinked folders are not
//!   followed, and a symlinked file whose target lies outside the root is a problem;
//! - e.json: `type` is required (`""` for a Meta); unknown keys are kept in `raw`;
//! - templates ([`render_template`]): values are JSON-escaped inside strings; a placeholder
//!   outside a string becomes a number/boolean literal or else a quoted string, never
//!   structure; values never appear in errors or `Debug`;
//! - config schemas ([`ConfigSchema`]): which Type's schema applies, defaults, unknown
//!   fields, secrets in messages: see the `schema` module docs on [`ConfigSchema`]'s page.
//!
//! It is NOT the runtime: it loads no code, starts nothing, does no network I/O and uses no
//! async runtime. Building `dist/` lives in `jitnode-dist`, loading in `jitnode-host`.

mod check;
mod def;
mod env;
mod file;
mod par;
mod problem;
mod schema;
mod template;
mod tree;
mod walk;

pub use check::{check, check_app, check_app_with, check_with, render_tree, LoaderSchemas};
pub use def::{json_kind, Definition, LoadTime};
pub use env::{parse_dotenv, Env, EnvError};
pub use file::FileError;
pub use par::{par_map, worker_count};
pub use problem::{is_valid_segment, Problem, ProblemKind, Problems, SEGMENT_RULE};
pub use schema::{
    apply_schema, check_configs, file_schemas, read_schema_file, schema_holders, ConfigSchema,
    ConfigSchemas, SchemaError, Violation, ViolationKind, CONFIG_SCHEMA_FILE,
};
pub use template::{render_config, render_template, template_vars, TemplateError};
pub use tree::{load_tree, parse_tree, resolve, AppTree, Element, Parsed};
pub use walk::{walk, FoundElement};
