//! Errors of loading, looking up and calling elements. Each names the element (and the
//! function) a person needs, and what exists instead. None carries a rendered value.

/// Lists names for messages, capped so a 10,000-element app stays readable.
pub(crate) fn list(names: &[String]) -> String {
    const MAX: usize = 30;
    if names.is_empty() {
        return "(none)".to_string();
    }
    let mut s = names
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX {
        s.push_str(&format!(", ... and {} more", names.len() - MAX));
    }
    s
}

/// An element could not be loaded (started). Clone: a failed load is remembered and every
/// later lookup of that element gets the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(
        "{element}: loader {entry} is not available in this build (declared by {declared_by}; available: {})",
        list(available)
    )]
    LoaderUnavailable {
        element: String,
        entry: String,
        declared_by: String,
        available: Vec<String>,
    },
    #[error(
        "{element}: backendBundleEntry \"{entry}\" of {declared_by} names a native plugin; this build only has built-in loaders (\"builtin:<name>\")"
    )]
    NativeUnsupported {
        element: String,
        entry: String,
        declared_by: String,
    },
    /// Rendering config.json failed. The message (from jitnode-element) already names the
    /// element, file and variable, never a value.
    #[error("{message}")]
    Config { element: String, message: String },
    #[error("{element}: loader {entry} failed: {message}")]
    Failed {
        element: String,
        entry: String,
        message: String,
    },
    #[error("{element}: loader {entry} panicked")]
    Panicked { element: String, entry: String },
    /// Elements looking each other up while loading would wait for each other forever.
    #[error("lookup cycle while loading: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("{element}: the app is stopping; not loading it")]
    Stopping { element: String },
}

impl LoadError {
    /// The element that failed to load (for a cycle, the first one in it).
    pub fn element(&self) -> &str {
        match self {
            LoadError::LoaderUnavailable { element, .. }
            | LoadError::NativeUnsupported { element, .. }
            | LoadError::Config { element, .. }
            | LoadError::Failed { element, .. }
            | LoadError::Panicked { element, .. }
            | LoadError::Stopping { element } => element,
            LoadError::Cycle { cycle } => cycle.first().map(String::as_str).unwrap_or(""),
        }
    }
}

/// Looking up an element by fullName failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    #[error(
        "no element named \"{name}\"; elements with a loader: {}",
        list(loadable)
    )]
    UnknownElement { name: String, loadable: Vec<String> },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the app has stopped")]
    AppGone,
}

/// Calling an element function failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(
        "{element} is a data-only element (no loader in its chain {}); it offers no functions",
        chain.join(" -> ")
    )]
    DataOnly { element: String, chain: Vec<String> },
    #[error(
        "{element} has no function \"{function}\"; it offers: {}",
        list(offered)
    )]
    UnknownFunction {
        element: String,
        function: String,
        offered: Vec<String>,
    },
    #[error("{element}.{function}: {message}")]
    BadArgs {
        element: String,
        function: String,
        message: String,
    },
    #[error("{element}.{function} failed: {message}")]
    Failed {
        element: String,
        function: String,
        message: String,
    },
}
