//! Config templates: `{{NAME}}`, `<<NAME>>`, `{{NAME:-fallback}}`, `<<NAME:-fallback>>`.
//!
//! Rules (the template is JSON text, rendered before parsing):
//! - NAME matches `[A-Za-z_][A-Za-z0-9_]*`; anything else (e.g. `{{ NAME }}`) is left as is.
//! - A placeholder inside a JSON string literal is replaced by its value escaped as JSON
//!   string content, so quotes, backslashes, newlines or `}}` in a value stay inside that
//!   string. Values are never rescanned for placeholders.
//! - A placeholder outside any string stands for a whole JSON value: when the value is a
//!   JSON number or `true`/`false` it is inserted as that literal, otherwise as a quoted JSON
//!   string. Structure (objects, arrays, `null`, extra keys) can never be injected.
//! - The fallback text after `:-` runs to the closing `}}`/`>>` and may not contain `"` or
//!   a line break (so it can never span a string boundary). It is template text, written by
//!   the template's author: inside a string it is inserted as written (JSON escapes such as
//!   `\\` keep their JSON meaning, and a lone backslash at its end is a literal backslash,
//!   so it never escapes the closing quote); outside a string it is used like a value (number/boolean
//!   literal, else a quoted string). An unset variable without fallback is an error naming
//!   the element, file and variable.
//! - Rendered text is only returned to the caller; errors never contain values.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::file::FileError;
use crate::problem::json_message;
use crate::tree::Element;

/// Rendering failed. Names element, file and variables, never a value.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("element {element}: {}: missing variable{} {} (set {} in the environment or the app's .env, or give a fallback like {{{{NAME:-default}}}})",
        file.display(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" })]
    Missing {
        element: String,
        file: PathBuf,
        names: Vec<String>,
    },
    #[error("element {element}: {}: not valid UTF-8", file.display())]
    NotUtf8 { element: String, file: PathBuf },
    /// Position in the template (mapped back from the rendered text).
    #[error("element {element}: {}:{line}:{column}: not valid JSON after rendering: {message}", file.display())]
    InvalidJson {
        element: String,
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// One placeholder found in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder<'a> {
    pub start: usize,
    pub end: usize,
    pub name: &'a str,
    pub fallback: Option<&'a str>,
    pub in_string: bool,
}

/// Finds placeholders, tracking whether each sits inside a JSON string literal.
pub(crate) fn scan(text: &str) -> Vec<Placeholder<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut in_str, mut esc) = (0, false, false);
    while i < b.len() {
        let c = b[i];
        if in_str && esc {
            esc = false;
            i += 1;
            continue;
        }
        if (c == b'{' || c == b'<') && b.get(i + 1) == Some(&c) {
            if let Some(p) = match_at(text, i, in_str) {
                i = p.end;
                out.push(p);
                continue;
            }
        }
        if in_str {
            if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        }
        i += 1;
    }
    out
}

fn match_at(text: &str, i: usize, in_string: bool) -> Option<Placeholder<'_>> {
    let close = if text.as_bytes()[i] == b'{' {
        "}}"
    } else {
        ">>"
    };
    let rest = &text[i + 2..];
    let name_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let first = rest.as_bytes().first()?;
    if name_len == 0 || first.is_ascii_digit() {
        return None;
    }
    let name = &rest[..name_len];
    let after = &rest[name_len..];
    if after.starts_with(close) {
        return Some(Placeholder {
            start: i,
            end: i + 2 + name_len + 2,
            name,
            fallback: None,
            in_string,
        });
    }
    let body = after.strip_prefix(":-")?;
    let stop = body.find(close)?;
    let fallback = &body[..stop];
    if fallback.contains(['\n', '\r', '"']) {
        return None;
    }
    Some(Placeholder {
        start: i,
        end: i + 2 + name_len + 2 + stop + 2,
        name,
        fallback: Some(fallback),
        in_string,
    })
}

/// Lists the variables a template uses, in order of first use: `(name, has_fallback)`.
/// A name used both with and without a fallback appears twice.
pub fn template_vars(text: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for p in scan(text) {
        let item = (p.name.to_string(), p.fallback.is_some());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Appends `value` escaped as JSON string content (no surrounding quotes).
fn escape_into(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// A placeholder outside a string: a number/boolean literal, or else a quoted string.
fn value_into(out: &mut String, value: &str) {
    let t = value.trim();
    let literal = matches!(
        serde_json::from_str::<serde_json::Value>(t),
        Ok(serde_json::Value::Number(_) | serde_json::Value::Bool(_))
    );
    if literal {
        out.push_str(t);
    } else {
        out.push('"');
        escape_into(out, value);
        out.push('"');
    }
}

/// Renders with `lookup`; names with neither value nor fallback go to `missing` (each once)
/// and render as an empty string value, so the rest can still be checked.
pub(crate) fn render_with<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    missing: &mut Vec<String>,
) -> String {
    render_mapped(text, lookup, missing).0
}

/// Where one placeholder went: template byte range and rendered byte range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    t_start: usize,
    t_end: usize,
    r_start: usize,
    r_end: usize,
}

/// [`render_with`], also returning where each placeholder went, so positions in the
/// rendered text can be mapped back to the template (see [`template_position`]).
pub(crate) fn render_mapped<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    missing: &mut Vec<String>,
) -> (String, Vec<Span>) {
    let mut out = String::with_capacity(text.len() + 64);
    let mut spans = Vec::new();
    let mut last = 0;
    for p in scan(text) {
        out.push_str(&text[last..p.start]);
        last = p.end;
        let r_start = out.len();
        let value = match lookup(p.name) {
            Some(v) => Some(v),
            None if p.in_string && p.fallback.is_some() => {
                let fallback = p.fallback.unwrap_or_default();
                out.push_str(fallback);
                // A trailing lone backslash would escape the text after the placeholder
                // (the closing quote), so the string would not end where the scanner saw
                // it end: it is taken literally instead.
                let trailing = fallback.bytes().rev().take_while(|b| *b == b'\\').count();
                if trailing % 2 == 1 {
                    out.push('\\');
                }
                None
            }
            None if p.fallback.is_some() => p.fallback,
            None => {
                if !missing.iter().any(|m| m == p.name) {
                    missing.push(p.name.to_string());
                }
                Some("")
            }
        };
        match value {
            Some(v) if p.in_string => escape_into(&mut out, v),
            Some(v) => value_into(&mut out, v),
            None => {}
        }
        spans.push(Span {
            t_start: p.start,
            t_end: p.end,
            r_start,
            r_end: out.len(),
        });
    }
    out.push_str(&text[last..]);
    (out, spans)
}

/// Maps a 1-based (line, column) in the rendered text back to the template; a position
/// inside a substituted value maps to the start of its placeholder.
pub(crate) fn template_position(
    template: &str,
    rendered: &str,
    spans: &[Span],
    line: usize,
    column: usize,
) -> (usize, usize) {
    let mut offset = 0;
    for (i, l) in rendered.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += column.saturating_sub(1).min(l.len());
            break;
        }
        offset += l.len();
    }
    template_offset_position(template, spans, offset)
}

/// Maps a byte offset in the rendered text to a 1-based (line, column) in the template.
pub(crate) fn template_offset_position(
    template: &str,
    spans: &[Span],
    offset: usize,
) -> (usize, usize) {
    let t = match spans.iter().rev().find(|s| s.r_start <= offset) {
        Some(s) if offset < s.r_end => s.t_start,
        Some(s) => s.t_end + (offset - s.r_end),
        None => offset,
    }
    .min(template.len());
    let before = &template.as_bytes()[..t];
    let t_line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    (t_line, t - line_start + 1)
}

/// Renders a JSON template: `{{NAME}}`, `<<NAME>>`, `{{NAME:-fallback}}`, `<<NAME:-fallback>>`
/// (NAME = `[A-Za-z_][A-Za-z0-9_]*`). Inside a JSON string a value is escaped as string
/// content, so it can never break out; outside any string a value that is a JSON number or
/// `true`/`false` is inserted as that literal, anything else as a quoted string (never
/// structure). A fallback may not contain `"` or a line break; inside a string it is inserted
/// as written (it is template text). The error names the
/// element, file and every missing variable.
pub fn render_template(
    text: &str,
    env: &Env,
    element: &str,
    file: &Path,
) -> Result<String, TemplateError> {
    let mut missing = Vec::new();
    let out = render_with(text, |n| env.get(n), &mut missing);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Missing {
            element: element.to_string(),
            file: file.to_path_buf(),
            names: missing,
        })
    }
}

/// Reads and renders the element's `config.json` (`None` when it has none), parsed.
pub fn render_config(
    element: &Element,
    env: &Env,
) -> Result<Option<serde_json::Value>, TemplateError> {
    let path = element.dir.join("config.json");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = element.read_file("config.json")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| TemplateError::NotUtf8 {
        element: element.full_name.clone(),
        file: path.clone(),
    })?;
    let mut missing = Vec::new();
    let (rendered, spans) = render_mapped(text, |n| env.get(n), &mut missing);
    if !missing.is_empty() {
        return Err(TemplateError::Missing {
            element: element.full_name.clone(),
            file: path,
            names: missing,
        });
    }
    serde_json::from_str(&rendered).map(Some).map_err(|e| {
        let (line, column) = template_position(text, &rendered, &spans, e.line(), e.column());
        TemplateError::InvalidJson {
            element: element.full_name.clone(),
            file: path,
            line,
            column,
            message: json_message(&e),
        }
    })
}
