//! `jitnode store ...` and the store setting shared by `run`: `--store URL` over
//! `JITNODE_STORE_URL` (process environment over the app's `.env`) over the default.

use std::path::Path;

use jitnode_store::{Store, StoreOptions, StoreUrl, DEFAULT_STORE_URL, STORE_URL_VAR};

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

/// Opens (and migrates) the configured store, importing the old records file once.
pub async fn open(app: &Path, flag: Option<&str>) -> Result<Store, String> {
    let (url, setting) = resolve(app, flag)?;
    let opts = StoreOptions {
        setting,
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &opts).await.map_err(|e| e.to_string())?;
    let legacy = app.join("data").join(jitnode_robot::records::DB_FILE_NAME);
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
