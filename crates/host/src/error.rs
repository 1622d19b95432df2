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

/// ` (did you mean "x"?)` when one candidate is a likely typo of `name`, else "".
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    let limit = (name.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

/// Levenshtein distance over chars; names are short, so the simple O(n*m) table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
        "{element}: backendBundleEntry \"{entry}\" of {declared_by} has no loader in this build (built-in loaders are \"builtin:<name>\", native plugins \"native:<path>\")"
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
    /// A reload replaced the element's definition while this load of the old one ran.
    #[error("{element}: replaced by a reload while loading; the new version loads instead")]
    Replaced { element: String },
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
            | LoadError::Stopping { element }
            | LoadError::Replaced { element } => element,
            LoadError::Cycle { cycle } => cycle.first().map(String::as_str).unwrap_or(""),
        }
    }
}

/// Looking up an element by fullName failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    #[error(
        "no element named \"{name}\"{}; elements with a loader: {}",
        did_you_mean(name, loadable.iter().map(String::as_str)),
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
        "{element} has no function \"{function}\"{}; it offers: {}",
        did_you_mean(function, offered.iter().map(|o| o.split('(').next().unwrap_or(o))),
        list(offered)
    )]
    UnknownFunction {
        element: String,
        function: String,
        /// Signatures, e.g. `stream(text: Stext)`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(edit_distance("demo.helo", "demo.hello"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let names = ["demo.hello", "imRobots.dingTalkDemo"];
        assert_eq!(
            did_you_mean("demo.helo", names),
            " (did you mean \"demo.hello\"?)"
        );
        assert_eq!(did_you_mean("zzz", names), "");
        assert_eq!(
            did_you_mean("ech", ["echo", "stream"]),
            " (did you mean \"echo\"?)"
        );
    }
}
