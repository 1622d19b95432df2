//! `jitnode store ...` and the store setting shared by `run`: `--store URL` over
//! `JITNODE_STORE_URL` (process environment over the app's `.env`) over the default.

use std::path::Path;

use std::time::Duration;

use jitnode_store::{
    Store, StoreOptions, StoreUrl, DEFAULT_LEASE, DEFAULT_STORE_URL, LEASE_VAR, STORE_URL_VAR,
};

/// The configured store URL and the name of the setting it came from.
pub fn resolve(app: &Path, flag: Option<&str>) -> Result<(StoreUrl, String), String> {
    let (text, setting) = match flag {
        Some(f) => (f.to_string(), "--store".to_string()),
        None => {
            let env = jitnode_element::Env::load(app).map_err(|e| e.to_string())?;
            match env.get(STORE_URL_VAR) {
                Some(v) if !v.trim().is_empty() => (v.to_string(), STORE_URL_VAR.to_string()),
                _ => (
                    DEFAULT_STORE_URL.to_string(),
                    format!("{STORE_URL_VAR} (default)"),
                ),
            }
        }
    };
    let url = StoreUrl::parse(&text, &setting, app).map_err(|e| e.to_string())?;
    Ok((url, setting))
}

/// The claim lease: `JITNODE_STORE_LEASE_SECS` (process environment over `.env`), whole
/// seconds of at least 1, else the default.
pub fn lease(env: &jitnode_element::Env) -> Result<Duration, String> {
    match env.get(LEASE_VAR).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_LEASE),
        Some(v) => match v.parse::<u64>() {
            Ok(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
            _ => Err(format!(
                "{LEASE_VAR} must be a whole number of seconds of at least 1, not {v:?}"
            )),
        },
    }
}

/// Opens (and migrates) the configured store, importing the old records file once.
pub async fn open(app: &Path, flag: Option<&str>) -> Result<Store, String> {
    let (url, setting) = resolve(app, flag)?;
    let env = jitnode_element::Env::load(app).map_err(|e| e.to_string())?;
    let opts = StoreOptions {
        setting,
        lease: lease(&env)?,
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &opts).await.map_err(|e| e.to_string())?;
    let legacy = app.join("data").join(jitnode_store::LEGACY_RECORDS_FILE);
    if let Some(n) = store
        .import_legacy_records(&legacy)
        .await
        .map_err(|e| e.to_string())?
    {
        tracing::info!(
            rows = n,
            "imported {} into the store {url}",
            legacy.display()
        );
    }
    Ok(store)
}

/// `jitnode store status`.
pub async fn status(app: &Path, flag: Option<&str>) -> Result<(), String> {
    let store = open(app, flag).await?;
    let s = store.status().await.map_err(|e| e.to_string())?;
    println!("backend         {}", s.backend);
    println!("url             {}", s.url);
    println!("schema version  {}", s.schema_version);
    println!("claims          {} ({} open)", s.claims, s.open_claims);
    println!("open cards      {}", s.open_cards);
    println!("answers         {}", s.answers);
    println!("feedback        {}", s.feedback);
    println!("card callbacks  {}", s.callbacks);
    println!("chat turns      {}", s.chat_turns);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> jitnode_element::Env {
        jitnode_element::Env::from_map([(LEASE_VAR.to_string(), v.to_string())].into())
    }

    #[test]
    fn the_lease_setting_takes_whole_seconds_and_names_itself_when_wrong() {
        assert_eq!(lease(&env("15")), Ok(Duration::from_secs(15)));
        assert_eq!(lease(&env(" ")), Ok(DEFAULT_LEASE));
        for bad in ["0", "1.5", "-3", "soon"] {
            let e = lease(&env(bad)).unwrap_err();
            assert!(e.contains(LEASE_VAR) && e.contains(bad), "{e}");
        }
        let none = jitnode_element::Env::from_map(Default::default());
        assert_eq!(lease(&none), Ok(DEFAULT_LEASE));
    }
}
