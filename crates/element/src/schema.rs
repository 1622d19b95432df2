//! Config schemas: each Type declares the JSON Schema its instances' `config.json` must
//! satisfy, so a config's shape is checked before any of the Type's code runs.
//!
//! Rules decided here:
//! - a schema is JSON Schema (draft 2020-12 unless it names another `$schema`); it may not
//!   `$ref` anything outside itself (no resolver is installed, so nothing is ever fetched);
//! - which schema applies to an element: the nearest element up its type chain (never the
//!   element itself) that declares one ([`ConfigSchemas::for_element`]); a Type declares one
//!   through its loader (built-in or native), or, for a Type defined by files, with a
//!   [`CONFIG_SCHEMA_FILE`] in its folder;
//! - before validating, [`ConfigSchema::apply`] fills in every absent property whose schema
//!   has a `default` (a section with `"default": {}` then gets its own defaults), so an
//!   instance whose fields all have defaults needs no config.json at all; a `null` value
//!   counts as absent unless the field allows null; a string given for a `number`,
//!   `integer` or `boolean` field is read as one when it parses (templates render inside
//!   strings), and a blank one counts as absent;
//! - unknown fields are errors exactly where a schema says `"additionalProperties": false`
//!   (the built-in Types say it everywhere, so a typo never falls back to a default);
//! - messages name the field path (`retrieval.topK`, `rules[0].answer`) and what was
//!   expected; they never contain a configured value (rendered values may hold secrets),
//!   and a secret field (`"writeOnly": true`, or a name containing secret, apiKey, token or
//!   password) is marked as such;
//! - `x-expected` on a subschema replaces the generated "expected ..." text of failures
//!   under it (for patterns and conditions a person cannot read).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::env::Env;
use crate::par::par_map;
use crate::problem::{json_message, Problem, ProblemKind};
use crate::template::{render_mapped, template_offset_position, template_position};
use crate::tree::{AppTree, Element};

/// The file in a Type's folder that declares its instances' config schema.
pub const CONFIG_SCHEMA_FILE: &str = "config.schema.json";

/// Where a schema is compiled from; nothing is ever loaded from it.
const SCHEMA_URL: &str = "mem:///config.schema.json";

/// A schema that does not compile (bad JSON Schema, or a `$ref` outside itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable JSON Schema: {0}")]
pub struct SchemaError(pub String);

/// One compiled config schema.
pub struct ConfigSchema {
    raw: Value,
    compiled: boon::Schemas,
    index: boon::SchemaIndex,
}

impl fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSchema").finish_non_exhaustive()
    }
}

/// One way a config fails its schema. Holds no configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the value to point at (for a missing field, its object).
    pub pointer: String,
    /// Point at the key of the last pointer token rather than at its value (unknown fields).
    pub at_key: bool,
    /// Dotted field path (`retrieval.topK`, `rules[0].answer`; `(root)` for the whole).
    pub field: String,
    /// What was expected, e.g. `expected an integer, found a string`.
    pub expected: String,
    /// The field holds a secret (its value is never shown anyway; this says why).
    pub secret: bool,
    pub kind: ViolationKind,
}

/// The broad kind of a [`Violation`], for callers that map it onto their own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViolationKind {
    /// A required field is absent.
    Missing,
    /// A field the schema does not allow (`additionalProperties: false`).
    Unknown,
    /// A value of the wrong type, out of range, not matching, ...
    Invalid,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`", self.field)?;
        if self.secret {
            f.write_str(" (secret, value not shown)")?;
        }
        write!(f, ": {}", self.expected)
    }
}

impl ConfigSchema {
    /// Compiles a schema.
    pub fn new(raw: Value) -> Result<ConfigSchema, SchemaError> {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        // No loader for any scheme: a schema cannot make the host read files or the network.
        compiler.use_loader(Box::new(boon::SchemeUrlLoader::new()));
        let mut compiled = boon::Schemas::new();
        compiler
            .add_resource(SCHEMA_URL, raw.clone())
            .map_err(|e| SchemaError(format!("{e:#}")))?;
        let index = compiler
            .compile(SCHEMA_URL, &mut compiled)
            .map_err(|e| SchemaError(format!("{e:#}")))?;
        Ok(ConfigSchema {
            raw,
            compiled,
            index,
        })
    }

    /// Parses and compiles schema text (e.g. a `config.schema.json`).
    pub fn from_json(text: &str) -> Result<ConfigSchema, SchemaError> {
        let raw: Value = serde_json::from_str(text).map_err(|e| SchemaError(e.to_string()))?;
        ConfigSchema::new(raw)
    }

    /// A schema built into a crate, compiled once into `cell` on first use. Such schemas
    /// are constants covered by their crate's tests, so one that does not compile is a
    /// bug, not an input error: this panics, naming `what`.
    pub fn built_in(
        cell: &'static OnceLock<Arc<ConfigSchema>>,
        what: &str,
        raw: impl FnOnce() -> Value,
    ) -> Arc<ConfigSchema> {
        cell.get_or_init(|| match ConfigSchema::new(raw()) {
            Ok(schema) => Arc::new(schema),
            Err(e) => panic!("the {what} schema is valid (tested): {e:?}"),
        })
        .clone()
    }

    /// The schema as declared.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Fills in defaults and reads numeric strings (see the module docs), then validates.
    /// `None` (no config.json) is taken as `{}`. Returns the config the Type's code gets,
    /// or every violation.
    pub fn apply(&self, config: Option<&Value>) -> Result<Value, Vec<Violation>> {
        let mut value = config.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        prepare(&self.raw, &mut value);
        match self.compiled.validate(&value, self.index) {
            Ok(()) => Ok(value),
            Err(e) => {
                let mut out = Vec::new();
                self.collect(&e, &mut out);
                out.sort_by(|a, b| (&a.pointer, &a.field).cmp(&(&b.pointer, &b.field)));
                out.dedup();
                Err(out)
            }
        }
    }

    fn collect(&self, e: &boon::ValidationError<'_, '_>, out: &mut Vec<Violation>) {
        let keyword = keyword_schema(&self.raw, e.schema_url);
        let custom = keyword
            .and_then(|k| k.get("x-expected"))
            .and_then(Value::as_str)
            .map(str::to_string);
        // A failed choice between forms says what it wants as a whole when the schema
        // tells how; each form's own failure would be noise.
        let choice = matches!(e.kind, boon::ErrorKind::AnyOf | boon::ErrorKind::OneOf(_));
        if !(e.causes.is_empty() || choice && custom.is_some()) {
            // (A choice with a custom text falls through and is reported as one.)
            for c in &e.causes {
                self.collect(c, out);
            }
            return;
        }
        let tokens: Vec<String> = e
            .instance_location
            .tokens
            .iter()
            .map(|t| match t {
                boon::InstanceToken::Prop(p) => p.to_string(),
                boon::InstanceToken::Item(i) => i.to_string(),
            })
            .collect();
        let pointer = e.instance_location.to_string();
        let at = |extra: Option<&str>, expected: String, kind: ViolationKind| {
            let at_key = kind == ViolationKind::Unknown;
            let mut toks = tokens.clone();
            if let Some(x) = extra {
                toks.push(x.to_string());
            }
            let field = dotted(&self.raw, &toks);
            Violation {
                pointer: match (extra, at_key) {
                    (Some(x), true) => format!("{pointer}/{}", escape(x)),
                    _ => pointer.clone(),
                },
                at_key,
                secret: is_secret(&self.raw, &toks),
                kind,
                field,
                expected: custom.clone().unwrap_or(expected),
            }
        };
        use boon::ErrorKind as K;
        match &e.kind {
            K::Required { want } => {
                for w in want {
                    out.push(at(Some(w), "is required".into(), ViolationKind::Missing));
                }
            }
            K::AdditionalProperties { got } => {
                let known = keyword
                    .and_then(|k| k.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                for g in got {
                    out.push(at(
                        Some(g),
                        format!("unknown field (known fields: {known})"),
                        ViolationKind::Unknown,
                    ));
                }
            }
            K::DependentRequired { prop, missing } | K::Dependency { prop, missing } => {
                for m in missing {
                    out.push(at(
                        Some(m),
                        format!("is required when `{prop}` is set"),
                        ViolationKind::Missing,
                    ));
                }
            }
            kind => out.push(at(None, expected(kind), ViolationKind::Invalid)),
        }
    }

    /// The fields this schema accepts, one per line: dotted path, type, default, whether
    /// required, and the field's `description`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        describe_into(&self.raw, "", &mut out);
        if out.is_empty() {
            out.push_str("  (no fields declared)\n");
        }
        out
    }
}

/// The schema object holding the keyword a failure came from (boon reports the
/// subschema's location, whose fragment is a JSON pointer into the schema).
fn keyword_schema<'a>(raw: &'a Value, url: &str) -> Option<&'a Value> {
    let frag = url.split_once('#').map(|(_, f)| f).unwrap_or("");
    raw.pointer(&percent_decode(frag))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The schema that describes the value at `tokens` (through `properties` and `items`).
fn schema_at<'a>(raw: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut s = raw;
    for t in tokens {
        s = s
            .get("properties")
            .and_then(|p| p.get(t))
            .or_else(|| s.get("items"))?;
    }
    Some(s)
}

/// `a.b[2].c`: array items (where the schema or the token says so) in brackets.
fn dotted(raw: &Value, tokens: &[String]) -> String {
    let mut out = String::new();
    let mut s = Some(raw);
    for t in tokens {
        let is_item = s.is_some_and(|s| {
            s.get("items").is_some() && s.get("properties").and_then(|p| p.get(t)).is_none()
        });
        if is_item {
            let _ = write!(out, "[{t}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(t);
        }
        s = s.and_then(|s| {
            s.get("properties")
                .and_then(|p| p.get(t))
                .or_else(|| s.get("items"))
        });
    }
    if out.is_empty() {
        out.push_str("(root)");
    }
    out
}

fn is_secret(raw: &Value, tokens: &[String]) -> bool {
    if schema_at(raw, tokens)
        .and_then(|s| s.get("writeOnly"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return true;
    }
    let Some(name) = tokens.last() else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    ["secret", "apikey", "api_key", "token", "password"]
        .iter()
        .any(|w| lower.contains(w))
}

fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Defaults, `null` as absent, and scalars given as strings; see the module docs.
fn prepare(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let Some(Value::Object(props)) = schema.get("properties") else {
                return;
            };
            for (k, ps) in props {
                let types = types_of(ps);
                let absent = match map.get(k) {
                    None => true,
                    Some(Value::Null) => !types.contains(&"null"),
                    Some(Value::String(s)) => {
                        s.trim().is_empty()
                            && !types.is_empty()
                            && types
                                .iter()
                                .all(|t| matches!(*t, "number" | "integer" | "boolean"))
                    }
                    Some(_) => false,
                };
                if absent {
                    map.remove(k);
                    if let Some(d) = ps.get("default") {
                        map.insert(k.clone(), d.clone());
                    }
                }
                if let Some(v) = map.get_mut(k) {
                    prepare(ps, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    prepare(is, it);
                }
            }
        }
        Value::String(s) => {
            let types = types_of(schema);
            if types.contains(&"string") {
                return;
            }
            let t = s.trim();
            let parsed = if types.contains(&"integer") || types.contains(&"number") {
                match serde_json::from_str::<Value>(t) {
                    Ok(n @ Value::Number(_)) => Some(n),
                    _ => None,
                }
            } else if types.contains(&"boolean") {
                match t {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(p) = parsed {
                *value = p;
            }
        }
        _ => {}
    }
}

fn kind_name(t: boon::Type) -> &'static str {
    match t {
        boon::Type::Null => "null",
        boon::Type::Boolean => "a boolean",
        boon::Type::Number => "a number",
        boon::Type::Integer => "an integer",
        boon::Type::String => "a string",
        boon::Type::Array => "an array",
        boon::Type::Object => "an object",
    }
}

/// "expected ..." for one failing keyword; never mentions the value itself.
fn expected(kind: &boon::ErrorKind<'_, '_>) -> String {
    use boon::ErrorKind as K;
    match kind {
        K::Type { got, want } => {
            let want: Vec<&str> = want.iter().map(kind_name).collect();
            format!("expected {}, found {}", want.join(" or "), kind_name(*got))
        }
        K::Enum { want } => format!(
            "expected one of {}",
            want.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        K::Const { want } => format!("expected {want}"),
        K::Minimum { want, .. } => format!("expected at least {want}"),
        K::Maximum { want, .. } => format!("expected at most {want}"),
        K::ExclusiveMinimum { want, .. } => format!("expected more than {want}"),
        K::ExclusiveMaximum { want, .. } => format!("expected less than {want}"),
        K::MultipleOf { want, .. } => format!("expected a multiple of {want}"),
        K::MinLength { want, .. } if *want == 1 => "must not be empty".into(),
        K::MinLength { want, .. } => format!("expected at least {want} characters"),
        K::MaxLength { want, .. } => format!("expected at most {want} characters"),
        K::Pattern { want, .. } => format!("expected text matching /{want}/"),
        K::Format { want, .. } => format!("expected {want} format"),
        K::MinItems { want, .. } => format!("expected at least {want} items"),
        K::MaxItems { want, .. } => format!("expected at most {want} items"),
        K::UniqueItems { .. } => "expected unique items".into(),
        K::MinProperties { want, .. } => format!("expected at least {want} fields"),
        K::MaxProperties { want, .. } => format!("expected at most {want} fields"),
        K::FalseSchema => "is not allowed here".into(),
        K::Not => "has a value that is not allowed here".into(),
        K::AnyOf | K::OneOf(None) => "matches none of the allowed forms".into(),
        K::OneOf(Some(_)) => "matches more than one of the allowed forms".into(),
        other => format!("{other}"),
    }
}

fn describe_into(schema: &Value, prefix: &str, out: &mut String) {
    let Some(Value::Object(props)) = schema.get("properties") else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (k, ps) in props {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let mut line = format!("  {path}");
        let types = types_of(ps);
        if !types.is_empty() {
            let _ = write!(line, "  ({})", types.join(" | "));
        }
        if let Some(e) = ps.get("enum").and_then(Value::as_array) {
            let _ = write!(
                line,
                "  one of {}",
                e.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if required.contains(&k.as_str()) {
            line.push_str("  required");
        }
        if let Some(d) = ps.get("default").filter(|d| !d.is_object()) {
            let _ = write!(line, "  default {d}");
        }
        if let Some(d) = ps.get("description").and_then(Value::as_str) {
            let _ = write!(line, "\n      {d}");
        }
        out.push_str(&line);
        out.push('\n');
        describe_into(ps, &path, out);
        if let Some(items) = ps.get("items") {
            describe_into(items, &format!("{path}[]"), out);
        }
    }
}

/// Compiled schemas by the fullName of the Type that declares each.
#[derive(Debug, Clone, Default)]
pub struct ConfigSchemas {
    by_type: HashMap<String, Arc<ConfigSchema>>,
}

impl ConfigSchemas {
    pub fn new() -> ConfigSchemas {
        ConfigSchemas::default()
    }

    pub fn insert(&mut self, type_name: &str, schema: Arc<ConfigSchema>) {
        self.by_type.insert(type_name.to_string(), schema);
    }

    pub fn get(&self, type_name: &str) -> Option<&Arc<ConfigSchema>> {
        self.by_type.get(type_name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// (Type fullName, schema) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<ConfigSchema>)> {
        self.by_type.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The schema for `el`'s config and the Type declaring it: the nearest up its chain.
    pub fn for_element<'a>(&'a self, el: &Element) -> Option<(&'a str, &'a Arc<ConfigSchema>)> {
        el.chain
            .iter()
            .skip(1)
            .find_map(|t| self.by_type.get_key_value(t.as_str()))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Reads and compiles `el`'s own [`CONFIG_SCHEMA_FILE`], if it has one.
// `Problem` is the crate's one error report, large by design (it names file, element and
// position); it is built once per bad schema file, not on a hot path.
#[allow(clippy::result_large_err)]
pub fn read_schema_file(el: &Element) -> Result<Option<ConfigSchema>, Problem> {
    let path = el.dir.join(CONFIG_SCHEMA_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let problem = |message: String| {
        Problem::new(
            path.clone(),
            Some(&el.full_name),
            ProblemKind::BadSchema { message },
        )
    };
    let bytes = el
        .read_file(CONFIG_SCHEMA_FILE)
        .map_err(|e| problem(e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| problem("not valid UTF-8".into()))?;
    ConfigSchema::from_json(text)
        .map(Some)
        .map_err(|e| problem(e.to_string()))
}

/// Every element that some element's chain passes through (the possible schema holders).
pub fn schema_holders(tree: &AppTree) -> Vec<&Element> {
    let mut names: Vec<&str> = tree
        .elements
        .values()
        .flat_map(|e| e.chain.iter().skip(1).map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().filter_map(|n| tree.get(n)).collect()
}

/// Renders `el`'s config.json (absent: `{}`) and applies `schema`, declared by the Type
/// `schema_of`: the config the Type's code gets (defaults filled in), or every problem,
/// each naming the file and the template's line:column. Template problems (a missing
/// variable, invalid JSON) are returned alone: the schema is not tried on a broken render.
pub fn apply_schema(
    el: &Element,
    env: &Env,
    schema_of: &str,
    schema: &ConfigSchema,
) -> Result<Value, Vec<Problem>> {
    let path = el.dir.join("config.json");
    let problem = |kind: ProblemKind| Problem::new(path.clone(), Some(&el.full_name), kind);
    let source = if path.exists() {
        let bytes = el.read_file("config.json").map_err(|e| {
            vec![problem(ProblemKind::Io {
                message: e.to_string(),
            })]
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            vec![problem(ProblemKind::NotUtf8 {
                byte_offset: e.utf8_error().valid_up_to(),
            })]
        })?;
        let mut missing = Vec::new();
        let (rendered, spans) = render_mapped(&text, |n| env.get(n), &mut missing);
        if !missing.is_empty() {
            return Err(missing
                .into_iter()
                .map(|name| problem(ProblemKind::MissingVariable { name }))
                .collect());
        }
        let value: Value = serde_json::from_str(&rendered).map_err(|e| {
            let (line, column) = template_position(&text, &rendered, &spans, e.line(), e.column());
            vec![problem(ProblemKind::ConfigInvalidJson {
                line,
                column,
                message: json_message(&e),
            })]
        })?;
        Some((text, rendered, spans, value))
    } else {
        None
    };
    schema
        .apply(source.as_ref().map(|s| &s.3))
        .map_err(|violations| {
            violations
                .into_iter()
                .map(|violation| {
                    let (line, column) = match &source {
                        Some((text, rendered, spans, _)) => {
                            let at =
                                locate(rendered, &violation.pointer, violation.at_key).unwrap_or(0);
                            template_offset_position(text, spans, at)
                        }
                        // No file: there is no position; 1:1 of the file to create.
                        None => (1, 1),
                    };
                    problem(ProblemKind::ConfigSchema {
                        line,
                        column,
                        schema_of: schema_of.to_string(),
                        violation: Box::new(violation),
                    })
                })
                .collect()
        })
}

/// The schema problems of every element of `tree` that has a schema in `schemas`, in one
/// pass (in parallel). Elements whose config.json does not render are skipped: their
/// template problems are reported by [`check`](crate::check) already.
pub fn check_configs(tree: &AppTree, env: &Env, schemas: &ConfigSchemas) -> Vec<Problem> {
    if schemas.is_empty() {
        return Vec::new();
    }
    let els: Vec<&Element> = tree.elements.values().collect();
    par_map(&els, |el| match schemas.for_element(el) {
        None => Vec::new(),
        Some((of, schema)) => match apply_schema(el, env, of, schema) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .filter(|p| matches!(p.kind, ProblemKind::ConfigSchema { .. }))
                .collect(),
        },
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Schemas of the Types defined by files: every chain element with a
/// [`CONFIG_SCHEMA_FILE`], plus the problems of those that do not compile.
#[allow(clippy::result_large_err)] // see read_schema_file
pub fn file_schemas(tree: &AppTree) -> (ConfigSchemas, Vec<Problem>) {
    let holders = schema_holders(tree);
    let read = par_map(&holders, |el| read_schema_file(el));
    let mut schemas = ConfigSchemas::new();
    let mut problems = Vec::new();
    for (el, r) in holders.iter().zip(read) {
        match r {
            Ok(Some(s)) => schemas.insert(&el.full_name, Arc::new(s)),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    (schemas, problems)
}

/// Locates the value at JSON pointer `pointer` in valid JSON `text`: its byte offset, or
/// the offset of its key when `at_key`. `None` when the pointer is not in the text.
pub(crate) fn locate(text: &str, pointer: &str, at_key: bool) -> Option<usize> {
    let tokens: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else {
        pointer
            .strip_prefix('/')?
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect()
    };
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    for (n, tok) in tokens.iter().enumerate() {
        let last = n + 1 == tokens.len();
        match b.get(i)? {
            b'{' => {
                i = skip_ws(b, i + 1);
                let mut found = None;
                while b.get(i)? != &b'}' {
                    let key_at = i;
                    let end = skip_string(b, i)?;
                    let key: String = serde_json::from_str(&text[i..end]).ok()?;
                    i = skip_ws(b, end);
                    if b.get(i)? != &b':' {
                        return None;
                    }
                    i = skip_ws(b, i + 1);
                    // A repeated key: the last one is the value serde_json keeps.
                    if &key == tok {
                        found = Some((key_at, i));
                    }
                    i = skip_ws(b, skip_value(b, i)?);
                    if b.get(i) == Some(&b',') {
                        i = skip_ws(b, i + 1);
                    }
                }
                let (key_at, value_at) = found?;
                if last && at_key {
                    return Some(key_at);
                }
                i = value_at;
            }
            b'[' => {
                let want: usize = tok.parse().ok()?;
                i = skip_ws(b, i + 1);
                for _ in 0..want {
                    if b.get(i)? == &b']' {
                        return None;
                    }
                    i = skip_ws(b, skip_value(b, i)?);
                    if b.get(i) == Some(&b',') {
                        i = skip_ws(b, i + 1);
                    }
                }
                if b.get(i)? == &b']' {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(i)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (just past its closing quote).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i)? != &b'"' {
        return None;
    }
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locates_values_and_keys() {
        let t = "{\n  \"a\": {\"b\": [1, {\"c\": \"x\\\"]\"}, 3]},\n  \"d\": true\n}";
        let at = |p: &str, k: bool| locate(t, p, k).map(|i| &t[i..i + 3]);
        assert_eq!(at("", false), Some("{\n "));
        assert_eq!(at("/a/b/2", false), Some("3]}"));
        assert_eq!(at("/a/b/1/c", false), Some("\"x\\"));
        assert_eq!(at("/d", true), Some("\"d\""));
        assert_eq!(at("/d", false), Some("tru"));
        assert_eq!(at("/a/b/3", false), None);
        assert_eq!(at("/zz", false), None);
    }

    #[test]
    fn defaults_fill_sections_and_strings_become_numbers() {
        let s = ConfigSchema::new(json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "default": 3},
                "sec": {"type": "object", "default": {},
                        "properties": {"x": {"type": "number", "default": 0.5}}}
            }
        }))
        .unwrap();
        assert_eq!(s.apply(None).unwrap(), json!({"n": 3, "sec": {"x": 0.5}}));
        assert_eq!(
            s.apply(Some(&json!({"n": " 7 ", "sec": {"x": null}})))
                .unwrap(),
            json!({"n": 7, "sec": {"x": 0.5}})
        );
        assert_eq!(s.apply(Some(&json!({"n": ""}))).unwrap()["n"], json!(3));
        let v = s.apply(Some(&json!({"n": "three"}))).unwrap_err();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "n");
        assert_eq!(v[0].expected, "expected an integer, found a string");
    }

    #[test]
    fn a_schema_cannot_reach_outside_itself() {
        let e = ConfigSchema::new(json!({"$ref": "file:///etc/passwd"})).unwrap_err();
        assert!(e.0.contains("file:///etc/passwd"), "{e}");
    }
}
