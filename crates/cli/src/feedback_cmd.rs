//! `jitnode feedback`: the robot's stored feedback (with question and answer), listed or
//! exported as CSV / JSON, from `<app>/data/robot-records.sqlite3`.

use std::path::Path;

use jitnode_robot::records::{
    feedback_csv, feedback_json, feedback_summary, format_utc, FeedbackFilter, Records,
    DB_FILE_NAME,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per rating, then a summary.
    Table,
    Csv,
    Json,
}

/// Lists (or exports) the feedback of the app at `app`.
pub fn run(app: &Path, format: Format) -> Result<(), String> {
    let data = app.join(jitnode_robot::loader::DATA_DIR);
    let db = data.join(DB_FILE_NAME);
    if !db.exists() {
        return match format {
            Format::Json => {
                println!("[]");
                Ok(())
            }
            Format::Csv => {
                print!("{}", feedback_csv(&[]));
                Ok(())
            }
            Format::Table => {
                println!(
                    "no records yet ({} does not exist; the robot creates it on its first answer)",
                    db.display()
                );
                Ok(())
            }
        };
    }
    let records = Records::open_in(&data).map_err(|e| e.to_string())?;
    let rows = records
        .list_feedback(&FeedbackFilter::default())
        .map_err(|e| e.to_string())?;
    match format {
        Format::Csv => print!("{}", feedback_csv(&rows)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&feedback_json(&rows)).expect("JSON values serialize")
        ),
        Format::Table => {
            let answers = records.list_answers(None).map_err(|e| e.to_string())?;
            for r in &rows {
                println!(
                    "{}  {:<14} {}  Q: {}",
                    format_utc(r.rated_at_ms),
                    r.rating.as_str(),
                    r.robot,
                    one_line(&r.question, 70)
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

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
