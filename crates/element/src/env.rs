//! Template variables: the process environment over an optional `<app>/.env`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Variable values for templates. `Debug` prints names only, never values.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("names", &names)
            .field("values", &"<redacted>")
            .finish()
    }
}

/// The `.env` file cannot be used. Never contains a value.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Env {
    /// `<app_dir>/.env` (when present) overlaid by the process environment (which wins).
    /// Process variables whose name or value is not UTF-8 are ignored.
    pub fn load(app_dir: &Path) -> Result<Env, EnvError> {
        let file = app_dir.join(".env");
        let mut vars = match std::fs::read(&file) {
            Ok(bytes) => parse_dotenv(&bytes, &file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(EnvError::Io { file, source }),
        };
        for (k, v) in std::env::vars_os() {
            if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
                vars.insert(k, v);
            }
        }
        Ok(Env { vars })
    }

    /// The same variables with `overrides` set on top: values the host decides itself
    /// (such as `run --sandbox` pointing a robot at the sandbox), which win over the process
    /// environment and `.env`.
    pub fn overridden(mut self, overrides: &BTreeMap<String, String>) -> Env {
        for (k, v) in overrides {
            self.vars.insert(k.clone(), v.clone());
        }
        self
    }

    pub fn from_map(map: HashMap<String, String>) -> Env {
        Env { vars: map }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// Variable names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

fn is_var_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Parses `.env` text: `KEY=VALUE` lines, blank lines, `#` comments, an optional `export `
/// prefix, values optionally in double quotes (escapes `\n \r \t \" \\`) or single quotes
/// (literal). Unquoted values end at ` #` (a comment) and are trimmed. Errors name the
/// file and line, never the value.
pub fn parse_dotenv(bytes: &[u8], file: &Path) -> Result<HashMap<String, String>, EnvError> {
    let mut vars = HashMap::new();
    let err = |line: usize, message: &str| EnvError::Syntax {
        file: file.to_path_buf(),
        line,
        message: message.to_string(),
    };
    for (i, raw_line) in bytes.split(|b| *b == b'\n').enumerate() {
        let lineno = i + 1;
        let line =
            std::str::from_utf8(raw_line).map_err(|_| err(lineno, "line is not valid UTF-8"))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
        let Some(eq) = t.find('=') else {
            return Err(err(lineno, "expected KEY=VALUE"));
        };
        let key = t[..eq].trim();
        if !is_var_name(key) {
            return Err(err(
                lineno,
                "the name before '=' must match [A-Za-z_][A-Za-z0-9_]*",
            ));
        }
        let rest = t[eq + 1..].trim_start();
        let (value, after) = if let Some(body) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = body.char_indices();
            let mut end = None;
            while let Some((j, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(j + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 'r')) => out.push('\r'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, '"')) => out.push('"'),
                        Some((_, '\\')) => out.push('\\'),
                        Some((_, other)) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => break,
                    },
                    c => out.push(c),
                }
            }
            let Some(end) = end else {
                return Err(err(lineno, "unterminated double-quoted value"));
            };
            (out, &body[end..])
        } else if let Some(body) = rest.strip_prefix('\'') {
            let Some(end) = body.find('\'') else {
                return Err(err(lineno, "unterminated single-quoted value"));
            };
            (body[..end].to_string(), &body[end + 1..])
        } else {
            let cut = rest
                .char_indices()
                .find(|(j, c)| *c == '#' && *j > 0 && rest[..*j].ends_with([' ', '\t']))
                .map(|(j, _)| j)
                .unwrap_or(rest.len());
            (rest[..cut].trim_end().to_string(), "")
        };
        let after = after.trim_start();
        if !after.is_empty() && !after.starts_with('#') {
            return Err(err(lineno, "unexpected text after the closing quote"));
        }
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}
