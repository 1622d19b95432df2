//! Pure functions behind `jitnode check` and `jitnode tree`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::env::{Env, EnvError};
use crate::par::par_map;
use crate::problem::{json_message, Problem, ProblemKind, Problems};
use crate::schema::{check_configs, file_schemas, ConfigSchemas};
use crate::template::{render_mapped, template_position};
use crate::tree::{parse_tree, resolve, AppTree, Element};

/// Schemas that come from loaders (built-in and native Types), given the resolved tree:
/// the schemas by Type and the problems of getting them.
pub type LoaderSchemas<'a> = &'a (dyn Fn(&AppTree) -> (ConfigSchemas, Vec<Problem>) + Sync);

/// Every problem of an element root: walk, e.json, chains, and the config.json templates of
/// every element whose e.json parsed (missing variables given `env`, non-UTF-8 text,
/// invalid JSON after rendering). Empty when all is well. Config schemas declared by files
/// ([`CONFIG_SCHEMA_FILE`](crate::CONFIG_SCHEMA_FILE)) are checked too; see [`check_with`]
/// for the ones of loaders.
pub fn check(elements_root: &Path, env: &Env) -> Problems {
    check_with(elements_root, env, &|_| (ConfigSchemas::new(), Vec::new()))
}

/// [`check`], also validating each instance's rendered config against its Type's schema:
/// those of `loader_schemas` (asked once the chains resolve) and of `config.schema.json`
/// files, a loader's winning where a Type has both.
pub fn check_with(elements_root: &Path, env: &Env, loader_schemas: LoaderSchemas<'_>) -> Problems {
    let (parsed, problems) = parse_tree(elements_root);
    let configs: Vec<_> = parsed
        .iter()
        .filter(|p| p.def.is_some() && p.found.files.iter().any(|f| f == "config.json"))
        .map(|p| (p.found.full_name.clone(), p.found.dir.join("config.json")))
        .collect();
    let template_problems = par_map(&configs, |(name, path)| check_config(name, path, env));
    let (mut all, tree) = match resolve(parsed, problems) {
        Ok(tree) => (Vec::new(), Some(tree)),
        Err(p) => (p.0, None),
    };
    all.extend(template_problems.into_iter().flatten());
    if let Some(tree) = tree {
        let (mut schemas, schema_problems) = file_schemas(&tree);
        all.extend(schema_problems);
        let (from_loaders, loader_problems) = loader_schemas(&tree);
        all.extend(loader_problems);
        for (name, schema) in from_loaders.iter() {
            schemas.insert(name, schema.clone());
        }
        all.extend(check_configs(&tree, env, &schemas));
    }
    Problems(all)
}

/// [`check`] for an app folder: loads `<app>/.env` under the process environment (a broken
/// `.env` is reported as a problem, and checking goes on with the process environment) and
/// checks `<app>/elements`.
pub fn check_app(app_dir: &Path) -> Problems {
    check_app_with(app_dir, &|_| (ConfigSchemas::new(), Vec::new()))
}

/// [`check_app`] with the schemas of loaders; see [`check_with`].
pub fn check_app_with(app_dir: &Path, loader_schemas: LoaderSchemas<'_>) -> Problems {
    let (env, env_problem) = match Env::load(app_dir) {
        Ok(env) => (env, None),
        Err(e) => {
            let p = match e {
                EnvError::Syntax {
                    file,
                    line,
                    message,
                } => Problem::new(file, None, ProblemKind::EnvSyntax { line, message }),
                EnvError::Io { file, source } => Problem::new(
                    file,
                    None,
                    ProblemKind::Io {
                        message: source.to_string(),
                    },
                ),
            };
            let mut env = std::collections::HashMap::new();
            for (k, v) in std::env::vars_os() {
                if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
                    env.insert(k, v);
                }
            }
            (Env::from_map(env), Some(p))
        }
    };
    let mut problems = check_with(&app_dir.join("elements"), &env, loader_schemas);
    if let Some(p) = env_problem {
        problems.0.insert(0, p);
    }
    problems
}

fn check_config(element: &str, path: &Path, env: &Env) -> Vec<Problem> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return vec![Problem::new(
                path,
                Some(element),
                ProblemKind::Io {
                    message: e.to_string(),
                },
            )]
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return vec![Problem::new(
                path,
                Some(element),
                ProblemKind::NotUtf8 {
                    byte_offset: e.valid_up_to(),
                },
            )]
        }
    };
    let mut missing = Vec::new();
    let (rendered, spans) = render_mapped(text, |n| env.get(n), &mut missing);
    let mut out: Vec<Problem> = missing
        .into_iter()
        .map(|name| Problem::new(path, Some(element), ProblemKind::MissingVariable { name }))
        .collect();
    // Missing values rendered as "" so the JSON shape is still checked.
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&rendered) {
        let (line, column) = template_position(text, &rendered, &spans, e.line(), e.column());
        out.push(Problem::new(
            path,
            Some(element),
            ProblemKind::ConfigInvalidJson {
                line,
                column,
                message: json_message(&e),
            },
        ));
    }
    out
}

/// Renders families as an indented tree: each Meta, below it the elements whose `type` is
/// it (Types), below those their instances, and so on. Each line:
///
/// `<fullName> [<Meta|Type|instance>] <load time>, <loader>[, provides <entry>]`
///
/// where load time is `afterAppInit`, `beforeHandleRequest` or `on demand`, and loader is
/// `loaded by <fullName> (<entry>)` for the nearest loader up the chain, `loaded by the host`
/// for a Meta, or `data only`.
pub fn render_tree(tree: &AppTree) -> String {
    let children = tree.children_by_type();
    let mut out = String::new();
    for meta in tree.metas() {
        render_node(tree, &children, meta, 0, &mut out);
    }
    out
}

fn render_node(
    tree: &AppTree,
    children: &HashMap<&str, Vec<&Element>>,
    el: &Element,
    depth: usize,
    out: &mut String,
) {
    let kids = children
        .get(el.full_name.as_str())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let role = if el.is_meta() {
        "Meta"
    } else if !kids.is_empty() || el.def.backend_bundle_entry.is_some() {
        "Type"
    } else {
        "instance"
    };
    let load = el
        .def
        .backend_load_time
        .map(|t| t.as_str())
        .unwrap_or("on demand");
    let loader = if el.is_meta() {
        "loaded by the host".to_string()
    } else {
        match tree.loader_of(&el.full_name) {
            Some(l) => format!(
                "loaded by {} ({})",
                l.full_name,
                l.def.backend_bundle_entry.as_deref().unwrap_or_default()
            ),
            None => "data only".to_string(),
        }
    };
    let _ = write!(
        out,
        "{:indent$}{} [{role}] {load}, {loader}",
        "",
        el.full_name,
        indent = depth * 2
    );
    if let Some(entry) = &el.def.backend_bundle_entry {
        let _ = write!(out, ", provides {entry}");
    }
    out.push('\n');
    for child in kids {
        render_node(tree, children, child, depth + 1, out);
    }
}
