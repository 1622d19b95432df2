//! The store setting: parsing `JITNODE_STORE_URL` / `--store`, and a printable form without
//! the password.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The environment variable (process or app `.env`) that chooses the store.
pub const STORE_URL_VAR: &str = "JITNODE_STORE_URL";
/// The default: an embedded file in the app's data folder ([`DEFAULT_STORE_FILE`]).
pub const DEFAULT_STORE_URL: &str = "sqlite:data/jitnode.sqlite3";
/// The default store's file name, inside the app's data folder.
pub const DEFAULT_STORE_FILE: &str = "jitnode.sqlite3";

/// Where the store lives. `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file (relative paths resolved against the app directory).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string; `shown` is the same with the password masked.
    Postgres { raw: String, shown: String },
}

impl StoreUrl {
    /// Parses a store URL; `setting` names where it came from (for the error), `app_dir`
    /// anchors relative SQLite paths.
    pub fn parse(text: &str, setting: &str, app_dir: &Path) -> Result<StoreUrl, StoreError> {
        let text = text.trim();
        let bad = |reason: &str| StoreError::BadUrl {
            setting: setting.to_string(),
            shown: redact(text),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err(bad("no file path after `sqlite:`"));
            }
            let p = Path::new(rest);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                app_dir.join(p)
            };
            return Ok(StoreUrl::Sqlite(p));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let parsed = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
            if !matches!(parsed.host_str(), Some(h) if !h.is_empty()) {
                return Err(bad("no host"));
            }
            if parsed.path().trim_start_matches('/').is_empty() {
                return Err(bad("no database name (postgres://user@host:port/db)"));
            }
            // Validate with the driver's own parser too, so a URL accepted here connects.
            text.parse::<tokio_postgres::Config>()
                .map_err(|e| bad(&e.to_string()))?;
            return Ok(StoreUrl::Postgres {
                raw: text.to_string(),
                shown: redact(text),
            });
        }
        Err(bad(
            "expected `sqlite:PATH` or `postgres://user@host:port/db`",
        ))
    }

    /// The default store of the app whose data folder is `data_dir`: what
    /// [`DEFAULT_STORE_URL`] names, for a host that has the data folder but no setting.
    pub fn default_in(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.join(DEFAULT_STORE_FILE))
    }

    /// The backend's name, as `jitnode store status` prints it.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Sqlite(_) => "sqlite",
            StoreUrl::Postgres { .. } => "postgres",
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreUrl::Postgres { shown, .. } => f.write_str(shown),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// The URL with any password replaced by `***` (also `password=` query parameters); text that
/// does not parse is cut at its `@` so a password cannot leak through a typo.
pub fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Cannot fail: the URL has a host, since it had a password.
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match text.rfind('@') {
            Some(at) => match text.find("://") {
                Some(s) if s < at => format!("{}://***{}", &text[..s], &text[at..]),
                _ => format!("***{}", &text[at..]),
            },
            None => text.to_string(),
        },
    }
}
