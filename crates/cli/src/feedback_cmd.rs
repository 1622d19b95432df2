//! `jitnode feedback`: the robot's stored feedback (with question and answer), listed or
//! exported as CSV / JSON, from the configured store (`--store` over `JITNODE_STORE_URL`,
//! default `sqlite:data/jitnode.sqlite3`; an old `data/robot-records.sqlite3` is imported
//! into it once).

use std::path::Path;

use jitnode_robot::records::{
    feedback_csv, feedback_json, feedback_summary, format_utc, FeedbackFilter, RecordsAt,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per rating, then a summary.
    Table,
    Csv,
    Json,
}

/// Lists (or exports) the feedback of the app at `app`, from its store.
pub async fn run(app: &Path, store: Option<&str>, format: Format) -> Result<(), String> {
    let store = crate::store_cmd::open(app, store).await?;
    let shown = store.url().to_string();
    let records = RecordsAt::new(store);
    let rows = records
        .list_feedback(&FeedbackFilter::default())
        .await
        .map_err(|e| e.to_string())?;
    match format {
        Format::Csv => print!("{}", feedback_csv(&rows)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&feedback_json(&rows)).expect("JSON values serialize")
        ),
        Format::Table => {
            let answers = records
                .list_answers(None)
                .await
                .map_err(|e| e.to_string())?;
            if answers.is_empty() {
                println!("no records yet in {shown} (the robot stores its first answer there)");
                return Ok(());
            }
            for r in &rows {
                println!(
                    "{}  {:<14} {}  Q: {}",
                    format_utc(r.rated_at_ms),
                    r.rating.as_str(),
                    r.robot,
                    jitnode_robot::cards::one_line(&r.question, 70)
                );
            }
            println!(
                "{} answers, {} ratings: {}",
                answers.len(),
                rows.len(),
                feedback_summary(&rows)
            );
        }
    }
    Ok(())
}
