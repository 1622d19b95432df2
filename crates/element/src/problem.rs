//! Problems found in an element tree. Every problem names the file a person must fix.

use std::fmt;
use std::path::PathBuf;

use crate::def::LoadTime;

/// The rule for one fullName segment (a folder name on an element's path).
pub const SEGMENT_RULE: &str = "[A-Za-z_][A-Za-z0-9_-]*";

/// True when `s` may be one segment of a fullName: `[A-Za-z_][A-Za-z0-9_-]*`.
/// Dots are excluded because they separate segments; spaces and other punctuation because
/// fullNames are written in code and on command lines.
pub fn is_valid_segment(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What is wrong. Display gives the message without the file (see [`Problem`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A file or folder could not be read.
    Io { message: String },
    /// The file is not valid UTF-8.
    NotUtf8 { byte_offset: usize },
    /// A file or folder name on an element path is not valid UTF-8.
    NameNotUtf8,
    /// A symlink in an element points to a file outside the element root (`target`, its
    /// real path); it is refused, never read.
    SymlinkOutsideRoot { target: PathBuf },
    /// JSON syntax error at a 1-based line and column.
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// e.json parsed but is not an object.
    NotObject { found: &'static str },
    /// e.json has no `type` key.
    TypeFieldMissing,
    /// A known key has the wrong JSON type.
    FieldType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// `backendLoadTime` holds something other than the allowed values.
    BadLoadTime { value: String },
    /// A folder name on the element's path cannot be a fullName segment.
    BadSegment { segment: String },
    /// The element root folder itself holds an e.json (it would have an empty fullName).
    RootIsElement,
    /// `type` names an element that does not exist.
    UnknownType { type_name: String },
    /// `type` names an element whose own e.json has problems.
    TypeHasProblems { type_name: String },
    /// The chain breaks further up (the element's Type, or its Type's Type, ... is missing,
    /// broken or in a cycle). `chain` runs from the element to the missing/broken name.
    BrokenChain { chain: Vec<String>, reason: String },
    /// A cycle of `type` references; the first name is repeated at the end.
    Cycle { cycle: Vec<String> },
    /// A template variable with no value and no fallback.
    MissingVariable { name: String },
    /// config.json is not valid JSON once rendered (position mapped back to the template).
    ConfigInvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// A line of the `.env` file cannot be parsed (the value is never shown).
    EnvSyntax { line: usize, message: String },
    /// The rendered config.json does not satisfy its Type's schema. `line`/`column` are in
    /// the template (the file a person edits); no configured value is shown.
    ConfigSchema {
        line: usize,
        column: usize,
        /// The Type whose schema applies.
        schema_of: String,
        violation: Box<crate::schema::Violation>,
    },
    /// A Type's config schema cannot be used (bad JSON Schema, or its loader failed to
    /// give it).
    BadSchema { message: String },
}

impl ProblemKind {
    /// Converts a serde_json syntax error, keeping its line:column but not its position
    /// suffix (we print the position ourselves).
    pub fn from_json_error(e: &serde_json::Error) -> ProblemKind {
        ProblemKind::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: json_message(e),
        }
    }

    /// Line and column when the problem has one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ProblemKind::InvalidJson { line, column, .. }
            | ProblemKind::ConfigInvalidJson { line, column, .. }
            | ProblemKind::ConfigSchema { line, column, .. } => Some((*line, *column)),
            ProblemKind::EnvSyntax { line, .. } => Some((*line, 1)),
            _ => None,
        }
    }
}

/// serde_json's message without its " at line L column C" suffix.
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::Io { message } => write!(f, "cannot read: {message}"),
            ProblemKind::NotUtf8 { byte_offset } => {
                write!(f, "file is not valid UTF-8 (first bad byte at offset {byte_offset})")
            }
            ProblemKind::NameNotUtf8 => f.write_str("name is not valid UTF-8"),
            ProblemKind::SymlinkOutsideRoot { target } => write!(
                f,
                "symlink refused: its target {} lies outside the element root",
                target.display()
            ),
            ProblemKind::InvalidJson { message, .. } => write!(f, "invalid JSON: {message}"),
            ProblemKind::NotObject { found } => {
                write!(f, "e.json must be a JSON object, found {found}")
            }
            ProblemKind::TypeFieldMissing => {
                f.write_str("e.json has no \"type\" (use \"type\": \"\" for a Meta)")
            }
            ProblemKind::FieldType {
                field,
                expected,
                found,
            } => write!(f, "\"{field}\" must be {expected}, found {found}"),
            ProblemKind::BadLoadTime { value } => write!(
                f,
                "backendLoadTime {value} is not allowed; allowed values: {}",
                LoadTime::ALLOWED
            ),
            ProblemKind::BadSegment { segment } => write!(
                f,
                "folder name \"{segment}\" cannot be part of a fullName (each folder on an element's path must match {SEGMENT_RULE})"
            ),
            ProblemKind::RootIsElement => f.write_str(
                "the element root itself holds an e.json; elements must be in folders below it",
            ),
            ProblemKind::UnknownType { type_name } => {
                write!(f, "type \"{type_name}\" names no element")
            }
            ProblemKind::TypeHasProblems { type_name } => write!(
                f,
                "type \"{type_name}\" is an element whose e.json has problems (see above)"
            ),
            ProblemKind::BrokenChain { chain, reason } => {
                write!(f, "type chain {} is broken: {reason}", chain.join(" -> "))
            }
            ProblemKind::Cycle { cycle } => write!(f, "type cycle: {}", cycle.join(" -> ")),
            ProblemKind::MissingVariable { name } => write!(
                f,
                "missing variable {name} (set it in the environment or the app's .env, or give a fallback: {{{{{name}:-...}}}})"
            ),
            ProblemKind::ConfigInvalidJson { message, .. } => {
                write!(f, "not valid JSON after rendering: {message}")
            }
            ProblemKind::EnvSyntax { message, .. } => f.write_str(message),
            ProblemKind::ConfigSchema {
                schema_of,
                violation,
                ..
            } => write!(f, "{violation} (config schema of {schema_of})"),
            ProblemKind::BadSchema { message } => write!(f, "config schema: {message}"),
        }
    }
}

/// One problem: the file to fix, the element when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub element: Option<String>,
    pub kind: ProblemKind,
}

impl Problem {
    pub fn new(file: impl Into<PathBuf>, element: Option<&str>, kind: ProblemKind) -> Problem {
        Problem {
            file: file.into(),
            element: element.map(str::to_string),
            kind,
        }
    }
}

impl fmt::Display for Problem {
    /// `path/e.json:3:7: a.b: invalid JSON: ...` (position only for syntax errors).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.kind.position() {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(el) = &self.element {
            write!(f, ": {el}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// Every problem found in one pass. Display prints one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
