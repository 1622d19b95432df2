//! Finding the config schema of an element's Type: the loader's (built-in or native) or a
//! `config.schema.json` of a Type defined by files. The rules are jitnode-element's (see
//! [`ConfigSchema`]); this adds the loaders, which only the host knows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jitnode_element::{
    read_schema_file, schema_holders, AppTree, ConfigSchema, ConfigSchemas, Element, Problem,
    ProblemKind,
};

use crate::loader::Registry;

/// Why a Type's schema could not be had.
#[derive(Debug, Clone)]
pub(crate) enum SchemaFailure {
    /// The loader failed to give it (e.g. a native plugin that cannot be built or opened).
    Loader { entry: String, message: String },
    /// The Type's `config.schema.json` is unusable.
    File(Problem),
}

/// Schemas of one generation's Types, asked for at most once each.
#[derive(Default)]
pub(crate) struct SchemaCache {
    by_type: Mutex<HashMap<String, Option<Arc<ConfigSchema>>>>,
}

impl SchemaCache {
    /// The schema for `el`'s config and the Type declaring it: the nearest element up its
    /// chain declaring one, a loader's schema before its `config.schema.json`.
    pub(crate) async fn for_element(
        &self,
        tree: &AppTree,
        registry: &Registry,
        el: &Element,
    ) -> Result<Option<(String, Arc<ConfigSchema>)>, SchemaFailure> {
        for name in el.chain.iter().skip(1) {
            let Some(holder) = tree.get(name) else {
                continue;
            };
            let cached = self
                .by_type
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned();
            let schema = match cached {
                Some(s) => s,
                None => {
                    let s = declared_by(registry, holder).await?;
                    self.by_type
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), s.clone());
                    s
                }
            };
            if let Some(s) = schema {
                return Ok(Some((name.clone(), s)));
            }
        }
        Ok(None)
    }
}

/// The schema `holder` declares for the configs of the elements below it, if any.
async fn declared_by(
    registry: &Registry,
    holder: &Element,
) -> Result<Option<Arc<ConfigSchema>>, SchemaFailure> {
    if let Some(entry) = &holder.def.backend_bundle_entry {
        if let Some(loader) = registry.get(entry) {
            let from_loader =
                loader
                    .config_schema(holder)
                    .await
                    .map_err(|e| SchemaFailure::Loader {
                        entry: entry.clone(),
                        message: e.to_string(),
                    })?;
            if from_loader.is_some() {
                return Ok(from_loader);
            }
        }
    }
    read_schema_file(holder)
        .map(|s| s.map(Arc::new))
        .map_err(SchemaFailure::File)
}

/// The schemas the loaders of `registry` declare for the Types of `tree`, with a problem
/// (at the Type's e.json) for each Type whose loader failed to give its schema. Schemas of
/// `config.schema.json` files are jitnode-element's business
/// ([`jitnode_element::check_with`] adds them).
pub async fn loader_schemas(tree: &AppTree, registry: &Registry) -> (ConfigSchemas, Vec<Problem>) {
    let mut schemas = ConfigSchemas::new();
    let mut problems = Vec::new();
    for holder in schema_holders(tree) {
        let Some(entry) = &holder.def.backend_bundle_entry else {
            continue;
        };
        let Some(loader) = registry.get(entry) else {
            continue;
        };
        match loader.config_schema(holder).await {
            Ok(Some(s)) => schemas.insert(&holder.full_name, s),
            Ok(None) => {}
            Err(e) => problems.push(Problem::new(
                holder.dir.join("e.json"),
                Some(&holder.full_name),
                ProblemKind::BadSchema {
                    message: format!("loader {entry} could not give it: {e}"),
                },
            )),
        }
    }
    (schemas, problems)
}

/// The source folder of an element loaded from its copy in `dist/` (`<app>/dist/e/a/b.<hash>`
/// -> `<app>/elements/a/b`) when that exists, else its own folder: messages name the file a
/// person edits.
pub(crate) fn source_dir(el: &Element) -> PathBuf {
    let depth = el.full_name.split('.').count();
    let from_dist = || -> Option<PathBuf> {
        let e = el.dir.ancestors().nth(depth)?;
        let dist = e.parent()?;
        if e.file_name()? != "e" || dist.file_name()? != "dist" {
            return None;
        }
        let src = dist
            .parent()?
            .join("elements")
            .join(el.full_name.replace('.', "/"));
        src.is_dir().then_some(src)
    };
    from_dist().unwrap_or_else(|| el.dir.clone())
}

/// Problems as `file:line:column: element: ...` lines, naming source files.
pub(crate) fn describe_problems(el: &Element, problems: &[Problem]) -> String {
    let src = source_dir(el);
    problems
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Ok(rel) = p.file.strip_prefix(&el.dir) {
                p.file = src.join(rel);
            }
            p.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
