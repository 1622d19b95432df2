//! The robot's records: answered messages and the feedback on them, in an embedded SQLite
//! database in the app's data folder, with CSV and JSON export for `jitnode feedback`.
//!
//! - `answers`: one row per answer (record id, message id — unique, so a redelivered message
//!   cannot be stored twice — robot, conversation, user, question, answer, time). A
//!   regenerated answer is a new row whose `regenerated_from` names the first one; its
//!   message id is the id of the Stream push that asked for it (the card callback).
//! - `feedback`: one row per answer and user (record id, rating, user, time); a user who
//!   clicks again changes their rating instead of adding a second vote.
//!
//! The database runs in WAL mode with a busy timeout, so several robot instances (each with
//! its own [`Records`]) and a `jitnode feedback` reader can share the file. Calls block
//! briefly on disk I/O; async callers use `spawn_blocking` or accept the short block.
//! Times are epoch milliseconds, exported as RFC 3339 UTC.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use crate::callback::FeedbackKind;
use jitnode_dingtalk_wire::{Mention, RobotMessage};

use crate::message::{ConversationKind, Incoming, ReplyTarget};

/// The file name in the app's data folder.
pub const DB_FILE_NAME: &str = "robot-records.sqlite3";

const SCHEMA_VERSION: i64 = 1;

/// A records database problem, with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("records database {}: cannot create its folder: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("records database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("records database {}: written by a newer version (schema {found}, this build knows {SCHEMA_VERSION})", path.display())]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("records database {}: could not switch to WAL mode (got {mode:?})", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("no answer with record id {record_id:?}")]
    UnknownRecord { record_id: String },
    #[error(transparent)]
    Store(#[from] jitnode_store::StoreError),
    #[error("stored rating {0:?} is not one this build knows")]
    UnknownRating(String),
}

/// An answer to store: the same fields as a stored one ([`AnswerRow`]).
pub type NewAnswer = AnswerRow;

impl AnswerRow {
    /// The answer to a robot message, answered now.
    pub fn for_message(
        message: &RobotMessage,
        robot: &str,
        record_id: &str,
        question: &str,
        answer: &str,
    ) -> AnswerRow {
        AnswerRow {
            record_id: record_id.to_string(),
            message_id: message.msg_id.clone(),
            robot: robot.to_string(),
            conversation_id: message.conversation_id.clone(),
            conversation_kind: message.kind(),
            user_id: message.asker().to_string(),
            staff_id: message.staff_id().map(str::to_string),
            user_nick: message.sender_nick.clone(),
            question: question.to_string(),
            answer: answer.to_string(),
            regenerated_from: None,
            answered_at_ms: now_ms(),
        }
    }

    /// A regenerated answer to a stored one; `message_id` is the id of the push (the card
    /// callback) that asked for it.
    pub fn regenerated(
        first: &AnswerRow,
        record_id: &str,
        message_id: &str,
        answer: &str,
    ) -> AnswerRow {
        AnswerRow {
            record_id: record_id.to_string(),
            message_id: message_id.to_string(),
            robot: first.robot.clone(),
            conversation_id: first.conversation_id.clone(),
            conversation_kind: first.conversation_kind,
            user_id: first.user_id.clone(),
            staff_id: first.staff_id.clone(),
            user_nick: first.user_nick.clone(),
            question: first.question.clone(),
            answer: answer.to_string(),
            regenerated_from: Some(first.record_id.clone()),
            answered_at_ms: now_ms(),
        }
    }
}

/// Result of storing an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The message id was stored before (a redelivery); nothing was written.
    AlreadyStored {
        record_id: String,
    },
}

/// An answer, stored or to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRow {
    pub record_id: String,
    pub message_id: String,
    pub robot: String,
    pub conversation_id: String,
    /// One-to-one or group: needed to send a regenerated answer to the same place.
    pub conversation_kind: ConversationKind,
    /// The asker: staff id, or DingTalk id for external users (`Incoming::asker`).
    pub user_id: String,
    /// The asker's staff id, when they have one (cards and @-mentions need it).
    pub staff_id: Option<String>,
    pub user_nick: String,
    pub question: String,
    pub answer: String,
    pub regenerated_from: Option<String>,
    pub answered_at_ms: i64,
}

/// A feedback joined with its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRow {
    pub record_id: String,
    pub message_id: String,
    pub robot: String,
    pub conversation_id: String,
    /// Who asked the question.
    pub asked_by: String,
    /// Who rated the answer.
    pub rated_by: String,
    pub rating: FeedbackKind,
    pub question: String,
    pub answer: String,
    pub answered_at_ms: i64,
    pub rated_at_ms: i64,
}

/// Which feedback to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedbackFilter {
    /// Only this robot instance (fullName).
    pub robot: Option<String>,
    /// Only feedback given at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// Only this rating.
    pub rating: Option<FeedbackKind>,
    /// At most this many rows (the oldest first).
    pub limit: Option<u32>,
}

/// The records database of one app.
#[derive(Debug)]
pub struct Records {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A fresh record id: 32 hex digits.
pub fn new_record_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Records {
    /// Opens (creating if needed) [`DB_FILE_NAME`] in the app's data folder.
    pub fn open_in(data_dir: &Path) -> Result<Records, RecordsError> {
        std::fs::create_dir_all(data_dir).map_err(|source| RecordsError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Records::open(&data_dir.join(DB_FILE_NAME))
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Records, RecordsError> {
        let sql = |source| RecordsError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        // Another instance may hold the write lock for a moment; wait rather than fail.
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(RecordsError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(sql)?;
        // IMMEDIATE takes the write lock up front, so a second process (or instance) opening
        // the file at the same moment waits on the busy timeout, then finds the tables made.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let made = create_tables(&conn).map_err(|e| match e {
            SchemaError::Newer(found) => RecordsError::NewerSchema {
                path: path.to_path_buf(),
                found,
            },
            SchemaError::Sqlite(e) => sql(e),
        });
        conn.execute_batch(if made.is_ok() { "COMMIT" } else { "ROLLBACK" })
            .map_err(sql)?;
        made?;
        Ok(Records {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql_err(&self, source: rusqlite::Error) -> RecordsError {
        RecordsError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, RecordsError>,
    ) -> Result<T, RecordsError> {
        // A panic while holding the lock leaves the connection itself intact (every write is
        // one statement or transaction), so a poisoned lock is still usable.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Stores an answer. A message id stored before is not stored again.
    pub fn record_answer(&self, a: &NewAnswer) -> Result<Inserted, RecordsError> {
        self.with_conn(|conn| {
            let changed = conn
                .execute(
                    "INSERT INTO answers (record_id, message_id, robot, conversation_id,
                         conversation_type, user_id, staff_id, user_nick, question, answer,
                         regenerated_from, answered_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(message_id) DO NOTHING",
                    params![
                        a.record_id,
                        a.message_id,
                        a.robot,
                        a.conversation_id,
                        kind_code(a.conversation_kind),
                        a.user_id,
                        a.staff_id,
                        a.user_nick,
                        a.question,
                        a.answer,
                        a.regenerated_from,
                        a.answered_at_ms
                    ],
                )
                .map_err(|e| match &a.regenerated_from {
                    Some(from) if is_foreign_key_error(&e) => RecordsError::UnknownRecord {
                        record_id: from.clone(),
                    },
                    _ => self.sql_err(e),
                })?;
            if changed == 1 {
                return Ok(Inserted::New);
            }
            let record_id: String = conn
                .query_row(
                    "SELECT record_id FROM answers WHERE message_id = ?1",
                    [&a.message_id],
                    |r| r.get(0),
                )
                .map_err(|e| self.sql_err(e))?;
            Ok(Inserted::AlreadyStored { record_id })
        })
    }

    /// The answer with this record id.
    pub fn answer(&self, record_id: &str) -> Result<Option<AnswerRow>, RecordsError> {
        self.answer_where("record_id", record_id)
    }

    /// The answer to this message id.
    pub fn answer_by_message(&self, message_id: &str) -> Result<Option<AnswerRow>, RecordsError> {
        self.answer_where("message_id", message_id)
    }

    fn answer_where(&self, column: &str, value: &str) -> Result<Option<AnswerRow>, RecordsError> {
        self.with_conn(|conn| {
            conn.query_row(
                &format!("SELECT {ANSWER_COLUMNS} FROM answers WHERE {column} = ?1"),
                [value],
                answer_row,
            )
            .optional()
            .map_err(|e| self.sql_err(e))
        })
    }

    /// All answers, oldest first (at most `limit`).
    pub fn list_answers(&self, limit: Option<u32>) -> Result<Vec<AnswerRow>, RecordsError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {ANSWER_COLUMNS} FROM answers
                     ORDER BY answered_at_ms, record_id LIMIT ?1"
                ))
                .map_err(|e| self.sql_err(e))?;
            let rows = stmt
                .query_map([limit.map(i64::from).unwrap_or(-1)], answer_row)
                .map_err(|e| self.sql_err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.sql_err(e))
        })
    }

    /// Stores a user's rating of an answer, replacing their earlier rating of it.
    pub fn record_feedback(
        &self,
        record_id: &str,
        user_id: &str,
        rating: FeedbackKind,
        rated_at_ms: i64,
    ) -> Result<(), RecordsError> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO feedback (record_id, user_id, rating, rated_at_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(record_id, user_id)
                 DO UPDATE SET rating = excluded.rating, rated_at_ms = excluded.rated_at_ms",
                params![record_id, user_id, rating.as_str(), rated_at_ms],
            )
            .map_err(|e| {
                if is_foreign_key_error(&e) {
                    RecordsError::UnknownRecord {
                        record_id: record_id.to_string(),
                    }
                } else {
                    self.sql_err(e)
                }
            })?;
            Ok(())
        })
    }

    /// Feedback joined with question and answer, oldest first.
    pub fn list_feedback(&self, filter: &FeedbackFilter) -> Result<Vec<FeedbackRow>, RecordsError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT a.record_id, a.message_id, a.robot, a.conversation_id, a.user_id,
                            f.user_id, f.rating, a.question, a.answer, a.answered_at_ms,
                            f.rated_at_ms
                     FROM feedback f JOIN answers a ON a.record_id = f.record_id
                     WHERE (?1 IS NULL OR a.robot = ?1)
                       AND (?2 IS NULL OR f.rated_at_ms >= ?2)
                       AND (?3 IS NULL OR f.rating = ?3)
                     ORDER BY f.rated_at_ms, a.record_id, f.user_id
                     LIMIT ?4",
                )
                .map_err(|e| self.sql_err(e))?;
            let rows = stmt
                .query_map(
                    params![
                        filter.robot,
                        filter.since_ms,
                        filter.rating.map(FeedbackKind::as_str),
                        filter.limit.map(i64::from).unwrap_or(-1)
                    ],
                    |r| {
                        Ok(FeedbackRow {
                            record_id: r.get(0)?,
                            message_id: r.get(1)?,
                            robot: r.get(2)?,
                            conversation_id: r.get(3)?,
                            asked_by: r.get(4)?,
                            rated_by: r.get(5)?,
                            rating: r.get(6)?,
                            question: r.get(7)?,
                            answer: r.get(8)?,
                            answered_at_ms: r.get(9)?,
                            rated_at_ms: r.get(10)?,
                        })
                    },
                )
                .map_err(|e| self.sql_err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.sql_err(e))
        })
    }
}

impl AnswerRow {
    /// Where a regenerated answer goes: the same conversation, by the same rule as
    /// [`crate::message::Incoming::reply_target`]. An external asker in a one-to-one chat
    /// cannot be reached by a card, only by a fresh session webhook.
    pub fn reply_target(&self) -> ReplyTarget {
        match (self.conversation_kind, &self.staff_id) {
            (ConversationKind::Group, _) => ReplyTarget::Group {
                open_conversation_id: self.conversation_id.clone(),
            },
            (ConversationKind::OneToOne, Some(staff_id)) => ReplyTarget::User {
                staff_id: staff_id.clone(),
            },
            (ConversationKind::OneToOne, None) => ReplyTarget::SessionOnly,
        }
    }

    /// The asker to @-mention in a regenerated answer.
    pub fn at_user(&self) -> Option<Mention> {
        self.staff_id.as_ref().map(|staff_id| Mention {
            nick_name: self.user_nick.clone(),
            user_id: staff_id.clone(),
        })
    }
}

enum SchemaError {
    Newer(i64),
    Sqlite(rusqlite::Error),
}

/// Creates the tables in a new file (inside the caller's transaction). Their DDL is the
/// shared store's ([`jitnode_store::RECORDS_TABLES`]): one schema for both homes.
fn create_tables(conn: &Connection) -> Result<(), SchemaError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(SchemaError::Sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(SchemaError::Newer(version));
    }
    if version == 0 {
        conn.execute_batch(&format!(
            "{} PRAGMA user_version = {SCHEMA_VERSION};",
            jitnode_store::RECORDS_TABLES
        ))
        .map_err(SchemaError::Sqlite)?;
    }
    Ok(())
}

const ANSWER_COLUMNS: &str = "record_id, message_id, robot, conversation_id, conversation_type,
    user_id, staff_id, user_nick, question, answer, regenerated_from, answered_at_ms";

/// The stored form of a conversation kind: DingTalk's own `conversationType` code.
fn kind_code(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::OneToOne => "1",
        ConversationKind::Group => "2",
    }
}

fn answer_row(r: &Row<'_>) -> rusqlite::Result<AnswerRow> {
    Ok(AnswerRow {
        record_id: r.get(0)?,
        message_id: r.get(1)?,
        robot: r.get(2)?,
        conversation_id: r.get(3)?,
        // The CHECK constraint allows only "1" and "2".
        conversation_kind: if r.get::<_, String>(4)? == "1" {
            ConversationKind::OneToOne
        } else {
            ConversationKind::Group
        },
        user_id: r.get(5)?,
        staff_id: r.get(6)?,
        user_nick: r.get(7)?,
        question: r.get(8)?,
        answer: r.get(9)?,
        regenerated_from: r.get(10)?,
        answered_at_ms: r.get(11)?,
    })
}

impl FromSql for FeedbackKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        // The CHECK constraint keeps other values out; a file edited by hand still gets a
        // clear error instead of a panic.
        FeedbackKind::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown rating {text:?}").into()))
    }
}

fn is_foreign_key_error(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Epoch milliseconds as RFC 3339 UTC (`2026-11-24T14:45:18.123Z`).
pub fn format_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

const CSV_HEADER: [&str; 11] = [
    "record_id",
    "message_id",
    "robot",
    "conversation_id",
    "asked_by",
    "rated_by",
    "rating",
    "question",
    "answer",
    "answered_at",
    "rated_at",
];

/// The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF, or starts or
/// ends with a space; quotes are doubled. A field that a spreadsheet would run as a formula
/// (a chat user controls questions and ids) gets a leading `'` and is quoted, as OWASP
/// recommends, so it shows as text.
fn csv_field(out: &mut String, s: &str) {
    let formula = s.starts_with(FORMULA_STARTS);
    let needs_quotes =
        formula || s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs_quotes {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Feedback as CSV (RFC 4180, CRLF line ends, header row first).
pub fn feedback_csv(rows: &[FeedbackRow]) -> String {
    let mut out = String::new();
    let mut line = |fields: &[&str]| {
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    };
    line(&CSV_HEADER);
    for r in rows {
        let answered = format_utc(r.answered_at_ms);
        let rated = format_utc(r.rated_at_ms);
        line(&[
            &r.record_id,
            &r.message_id,
            &r.robot,
            &r.conversation_id,
            &r.asked_by,
            &r.rated_by,
            r.rating.as_str(),
            &r.question,
            &r.answer,
            &answered,
            &rated,
        ]);
    }
    out
}

/// Feedback as a JSON array (times both as RFC 3339 and epoch ms).
pub fn feedback_json(rows: &[FeedbackRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "recordId": r.record_id,
                    "messageId": r.message_id,
                    "robot": r.robot,
                    "conversationId": r.conversation_id,
                    "askedBy": r.asked_by,
                    "ratedBy": r.rated_by,
                    "rating": r.rating.as_str(),
                    "score": r.rating.score(),
                    "question": r.question,
                    "answer": r.answer,
                    "answeredAt": format_utc(r.answered_at_ms),
                    "ratedAt": format_utc(r.rated_at_ms),
                    "answeredAtMs": r.answered_at_ms,
                    "ratedAtMs": r.rated_at_ms,
                })
            })
            .collect(),
    )
}

/// A one-line count per rating, for the CLI's summary (`helpful=3 unhelpful=1 ...`).
pub fn feedback_summary(rows: &[FeedbackRow]) -> String {
    let mut out = String::new();
    for (i, kind) in FeedbackKind::ALL.into_iter().enumerate() {
        let n = rows.iter().filter(|r| r.rating == kind).count();
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{}={n}", kind.as_str());
    }
    out
}

/// Where a robot keeps its records: the shared store `jitnode run` opened (so every host of
/// an app sees the same answers and feedback), or, for a robot hosted without one (tests,
/// embedders), its own file in the app's data folder.
#[derive(Debug, Clone)]
pub enum RecordsAt {
    Store(jitnode_store::Store),
    File(std::sync::Arc<Records>),
}

impl RecordsAt {
    /// The records of the app whose data folder is `data_dir`, as a reader in this process
    /// finds them: the process's store (`jitnode run`), else the app's own file if it has
    /// one.
    pub fn for_app(data_dir: &Path) -> Option<RecordsAt> {
        if let Some(store) = jitnode_store::process_store() {
            return Some(RecordsAt::Store(store));
        }
        if !data_dir.join(DB_FILE_NAME).exists() {
            return None;
        }
        Records::open_in(data_dir)
            .ok()
            .map(|r| RecordsAt::File(std::sync::Arc::new(r)))
    }

    /// Where they are, for status output (the store's URL shows no password).
    pub fn location(&self) -> String {
        match self {
            RecordsAt::Store(s) => s.url().to_string(),
            RecordsAt::File(r) => r.path().display().to_string(),
        }
    }

    /// Stores an answer; a message id stored before is not stored again.
    pub async fn record_answer(&self, a: &NewAnswer) -> Result<Inserted, RecordsError> {
        match self {
            RecordsAt::File(r) => r.record_answer(a),
            RecordsAt::Store(s) => {
                if let Some(from) = &a.regenerated_from {
                    if s.answer_by_record(from).await?.is_none() {
                        return Err(RecordsError::UnknownRecord {
                            record_id: from.clone(),
                        });
                    }
                }
                let row = jitnode_store::StoredAnswer {
                    record_id: a.record_id.clone(),
                    message_id: a.message_id.clone(),
                    robot: a.robot.clone(),
                    conversation_id: a.conversation_id.clone(),
                    conversation_type: kind_code(a.conversation_kind).to_string(),
                    user_id: a.user_id.clone(),
                    staff_id: a.staff_id.clone(),
                    user_nick: a.user_nick.clone(),
                    question: a.question.clone(),
                    answer: a.answer.clone(),
                    regenerated_from: a.regenerated_from.clone(),
                    answered_at_ms: a.answered_at_ms,
                };
                Ok(match s.insert_answer(&row).await? {
                    None => Inserted::New,
                    Some(record_id) => Inserted::AlreadyStored { record_id },
                })
            }
        }
    }

    /// The answer with this record id.
    pub async fn answer(&self, record_id: &str) -> Result<Option<AnswerRow>, RecordsError> {
        match self {
            RecordsAt::File(r) => r.answer(record_id),
            RecordsAt::Store(s) => Ok(s.answer_by_record(record_id).await?.map(stored_answer)),
        }
    }

    /// The answer to this message id.
    pub async fn answer_by_message(
        &self,
        message_id: &str,
    ) -> Result<Option<AnswerRow>, RecordsError> {
        match self {
            RecordsAt::File(r) => r.answer_by_message(message_id),
            RecordsAt::Store(s) => Ok(s.answer_by_message(message_id).await?.map(stored_answer)),
        }
    }

    /// All answers, oldest first (at most `limit`).
    pub async fn list_answers(&self, limit: Option<u32>) -> Result<Vec<AnswerRow>, RecordsError> {
        match self {
            RecordsAt::File(r) => r.list_answers(limit),
            RecordsAt::Store(s) => Ok(s
                .list_answers(limit)
                .await?
                .into_iter()
                .map(stored_answer)
                .collect()),
        }
    }

    /// Stores a user's rating of an answer, replacing their earlier rating of it.
    pub async fn record_feedback(
        &self,
        record_id: &str,
        user_id: &str,
        rating: FeedbackKind,
        rated_at_ms: i64,
    ) -> Result<(), RecordsError> {
        match self {
            RecordsAt::File(r) => r.record_feedback(record_id, user_id, rating, rated_at_ms),
            RecordsAt::Store(s) => {
                let row = jitnode_store::StoredFeedback {
                    record_id: record_id.to_string(),
                    user_id: user_id.to_string(),
                    rating: rating.as_str().to_string(),
                    rated_at_ms,
                };
                match s.upsert_feedback(&row).await? {
                    true => Ok(()),
                    false => Err(RecordsError::UnknownRecord {
                        record_id: record_id.to_string(),
                    }),
                }
            }
        }
    }

    /// Feedback joined with question and answer, oldest first.
    pub async fn list_feedback(
        &self,
        filter: &FeedbackFilter,
    ) -> Result<Vec<FeedbackRow>, RecordsError> {
        let s = match self {
            RecordsAt::File(r) => return r.list_feedback(filter),
            RecordsAt::Store(s) => s,
        };
        let mut out = Vec::new();
        for (a, f) in s.list_feedback().await? {
            let rating = FeedbackKind::parse(&f.rating)
                .ok_or_else(|| RecordsError::UnknownRating(f.rating.clone()))?;
            let keep = filter.robot.as_ref().is_none_or(|r| *r == a.robot)
                && filter.since_ms.is_none_or(|t| f.rated_at_ms >= t)
                && filter.rating.is_none_or(|k| k == rating);
            if keep {
                out.push(FeedbackRow {
                    record_id: a.record_id,
                    message_id: a.message_id,
                    robot: a.robot,
                    conversation_id: a.conversation_id,
                    asked_by: a.user_id,
                    rated_by: f.user_id,
                    rating,
                    question: a.question,
                    answer: a.answer,
                    answered_at_ms: a.answered_at_ms,
                    rated_at_ms: f.rated_at_ms,
                });
            }
            if filter.limit.is_some_and(|l| out.len() >= l as usize) {
                break;
            }
        }
        Ok(out)
    }
}

fn stored_answer(a: jitnode_store::StoredAnswer) -> AnswerRow {
    AnswerRow {
        record_id: a.record_id,
        message_id: a.message_id,
        robot: a.robot,
        conversation_id: a.conversation_id,
        // The CHECK constraint allows only "1" and "2".
        conversation_kind: if a.conversation_type == "1" {
            ConversationKind::OneToOne
        } else {
            ConversationKind::Group
        },
        user_id: a.user_id,
        staff_id: a.staff_id,
        user_nick: a.user_nick,
        question: a.question,
        answer: a.answer,
        regenerated_from: a.regenerated_from,
        answered_at_ms: a.answered_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(record: &str, message: &str, at: i64) -> NewAnswer {
        NewAnswer {
            record_id: record.into(),
            message_id: message.into(),
            robot: "imRobots.dingTalkDemo".into(),
            conversation_id: "cid1".into(),
            conversation_kind: ConversationKind::Group,
            user_id: "0326".into(),
            staff_id: Some("0326".into()),
            user_nick: "Li Lei".into(),
            question: format!("question of {record}"),
            answer: format!("answer of {record}"),
            regenerated_from: None,
            answered_at_ms: at,
        }
    }

    /// Stores each (record, user, rating, time).
    fn rate(db: &Records, ratings: &[(&str, &str, FeedbackKind, i64)]) {
        for &(record, user, rating, at) in ratings {
            db.record_feedback(record, user, rating, at).unwrap();
        }
    }

    fn open() -> (tempfile::TempDir, Records) {
        let dir = tempfile::tempdir().unwrap();
        let db = Records::open_in(&dir.path().join("data")).unwrap();
        (dir, db)
    }

    #[test]
    fn opens_in_the_data_folder_in_wal_mode() {
        let (dir, db) = open();
        assert_eq!(db.path(), dir.path().join("data").join(DB_FILE_NAME));
        assert!(db.path().exists());
        let mode: String = db
            .with_conn(|c| {
                Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .unwrap())
            })
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn answers_are_stored_once_per_message() {
        let (_dir, db) = open();
        assert_eq!(
            db.record_answer(&answer("r1", "m1", 1000)).unwrap(),
            Inserted::New
        );
        // A redelivered message with a different record id is not stored again.
        assert_eq!(
            db.record_answer(&answer("r2", "m1", 2000)).unwrap(),
            Inserted::AlreadyStored {
                record_id: "r1".into()
            }
        );
        let row = db.answer("r1").unwrap().unwrap();
        assert_eq!(row.question, "question of r1");
        assert_eq!(row.answer, "answer of r1");
        assert_eq!(row.user_nick, "Li Lei");
        assert_eq!(row.answered_at_ms, 1000);
        assert_eq!(db.answer("r2").unwrap(), None);
        assert_eq!(db.answer_by_message("m1").unwrap().unwrap().record_id, "r1");
        assert_eq!(db.list_answers(None).unwrap().len(), 1);
    }

    #[test]
    fn stored_answers_know_where_to_reply() {
        let (_dir, db) = open();
        db.record_answer(&answer("g", "m1", 1)).unwrap();
        let mut dm = answer("d", "m2", 2);
        dm.conversation_kind = ConversationKind::OneToOne;
        db.record_answer(&dm).unwrap();
        let mut ext = answer("e", "m3", 3);
        ext.conversation_kind = ConversationKind::OneToOne;
        ext.user_id = "$:LWCP_v1:$x".into();
        ext.staff_id = None;
        db.record_answer(&ext).unwrap();

        let g = db.answer("g").unwrap().unwrap();
        assert_eq!(g.conversation_kind, ConversationKind::Group);
        assert_eq!(
            g.reply_target(),
            ReplyTarget::Group {
                open_conversation_id: "cid1".into()
            }
        );
        assert_eq!(g.at_user().unwrap().user_id, "0326");
        let d = db.answer("d").unwrap().unwrap();
        assert_eq!(d.conversation_kind, ConversationKind::OneToOne);
        assert_eq!(
            d.reply_target(),
            ReplyTarget::User {
                staff_id: "0326".into()
            }
        );
        let e = db.answer("e").unwrap().unwrap();
        assert_eq!(e.staff_id, None);
        assert_eq!(e.reply_target(), ReplyTarget::SessionOnly);
        assert_eq!(e.at_user(), None);
    }

    #[test]
    fn answers_built_from_a_message_and_regenerated() {
        let (_dir, db) = open();
        let msg: RobotMessage = serde_json::from_value(
            json!({"msgId": "msgA", "msgtype": "text", "text": {"content": "q?"},
                    "conversationId": "cidDM", "conversationType": "1",
                    "senderId": "$:x", "senderStaffId": "0777", "senderNick": "Wang"}),
        )
        .unwrap();
        assert_eq!(msg.check(), Ok(ConversationKind::OneToOne));
        let first = NewAnswer::for_message(&msg, "imRobots.demo", "r1", "q?", "a1");
        assert_eq!(first.user_id, "0777");
        assert_eq!(first.conversation_kind, ConversationKind::OneToOne);
        db.record_answer(&first).unwrap();
        let stored = db.answer("r1").unwrap().unwrap();
        let again = NewAnswer::regenerated(&stored, "r2", "cb-frame-1", "a2");
        db.record_answer(&again).unwrap();
        let r2 = db.answer("r2").unwrap().unwrap();
        assert_eq!(r2.question, "q?");
        assert_eq!(r2.answer, "a2");
        assert_eq!(r2.regenerated_from.as_deref(), Some("r1"));
        assert_eq!(r2.message_id, "cb-frame-1");
        assert_eq!(r2.reply_target(), stored.reply_target());
        assert!(r2.answered_at_ms >= stored.answered_at_ms);
    }

    #[test]
    fn a_record_id_reused_for_another_message_is_an_error() {
        let (_dir, db) = open();
        db.record_answer(&answer("r1", "m1", 1000)).unwrap();
        let e = db.record_answer(&answer("r1", "m2", 1000)).unwrap_err();
        assert!(matches!(e, RecordsError::Sqlite { .. }), "{e}");
        assert!(e.to_string().contains(DB_FILE_NAME));
    }

    #[test]
    fn regenerated_answers_link_to_the_first() {
        let (_dir, db) = open();
        db.record_answer(&answer("r1", "m1", 1000)).unwrap();
        let mut again = answer("r2", "callback-frame-9", 2000);
        again.regenerated_from = Some("r1".into());
        assert_eq!(db.record_answer(&again).unwrap(), Inserted::New);
        assert_eq!(
            db.answer("r2")
                .unwrap()
                .unwrap()
                .regenerated_from
                .as_deref(),
            Some("r1")
        );
        let mut orphan = answer("r3", "m3", 3000);
        orphan.regenerated_from = Some("nope".into());
        assert!(matches!(
            db.record_answer(&orphan).unwrap_err(),
            RecordsError::UnknownRecord { record_id } if record_id == "nope"
        ));
        let listed: Vec<String> = db
            .list_answers(Some(1))
            .unwrap()
            .into_iter()
            .map(|a| a.record_id)
            .collect();
        assert_eq!(listed, ["r1"]);
    }

    #[test]
    fn feedback_is_stored_joined_and_replaced_per_user() {
        let (_dir, db) = open();
        db.record_answer(&answer("r1", "m1", 1000)).unwrap();
        db.record_answer(&answer("r2", "m2", 2000)).unwrap();
        rate(
            &db,
            &[
                ("r1", "0326", FeedbackKind::Helpful, 5000),
                ("r2", "0326", FeedbackKind::VeryUnhelpful, 6000),
                // The same user changes their mind: one row, the new rating.
                ("r1", "0326", FeedbackKind::VeryHelpful, 7000),
                // Another user rates the same answer.
                ("r1", "0999", FeedbackKind::Unhelpful, 8000),
            ],
        );

        let rows = db.list_feedback(&FeedbackFilter::default()).unwrap();
        let got: Vec<(&str, &str, FeedbackKind, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.record_id.as_str(),
                    r.rated_by.as_str(),
                    r.rating,
                    r.rated_at_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("r2", "0326", FeedbackKind::VeryUnhelpful, 6000),
                ("r1", "0326", FeedbackKind::VeryHelpful, 7000),
                ("r1", "0999", FeedbackKind::Unhelpful, 8000),
            ]
        );
        assert_eq!(rows[1].question, "question of r1");
        assert_eq!(rows[1].answer, "answer of r1");
        assert_eq!(rows[1].asked_by, "0326");
        assert_eq!(rows[1].answered_at_ms, 1000);
        assert_eq!(
            feedback_summary(&rows),
            "very_helpful=1 helpful=0 unhelpful=1 very_unhelpful=1"
        );
    }

    #[test]
    fn feedback_filters() {
        let (_dir, db) = open();
        db.record_answer(&answer("r1", "m1", 1000)).unwrap();
        let mut other = answer("r2", "m2", 1000);
        other.robot = "imRobots.second".into();
        db.record_answer(&other).unwrap();
        rate(
            &db,
            &[
                ("r1", "u1", FeedbackKind::Helpful, 10),
                ("r1", "u2", FeedbackKind::Unhelpful, 20),
                ("r2", "u1", FeedbackKind::Helpful, 30),
            ],
        );
        let count = |f: FeedbackFilter| db.list_feedback(&f).unwrap().len();
        assert_eq!(
            count(FeedbackFilter {
                robot: Some("imRobots.second".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            count(FeedbackFilter {
                since_ms: Some(20),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(FeedbackFilter {
                rating: Some(FeedbackKind::Helpful),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(FeedbackFilter {
                limit: Some(1),
                ..Default::default()
            }),
            1
        );
    }

    #[test]
    fn feedback_on_an_unknown_record_is_a_typed_error() {
        let (_dir, db) = open();
        let e = db
            .record_feedback("ghost", "u1", FeedbackKind::Helpful, 1)
            .unwrap_err();
        assert!(matches!(&e, RecordsError::UnknownRecord { record_id } if record_id == "ghost"));
        assert!(e.to_string().contains("ghost"));
    }

    #[test]
    fn records_survive_reopening_and_two_handles_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Records::open_in(dir.path()).unwrap();
            db.record_answer(&answer("r1", "m1", 1)).unwrap();
        }
        let a = Records::open_in(dir.path()).unwrap();
        let b = Records::open_in(dir.path()).unwrap();
        assert!(a.answer("r1").unwrap().is_some());
        a.record_answer(&answer("r2", "m2", 2)).unwrap();
        b.record_feedback("r2", "u", FeedbackKind::Helpful, 3)
            .unwrap();
        assert_eq!(
            a.list_feedback(&FeedbackFilter::default()).unwrap().len(),
            1
        );
        // The second instance sees the first's redelivery guard.
        assert_eq!(
            b.record_answer(&answer("rX", "m2", 4)).unwrap(),
            Inserted::AlreadyStored {
                record_id: "r2".into()
            }
        );
    }

    #[test]
    fn a_hand_edited_rating_is_an_error_not_a_panic() {
        let (_dir, db) = open();
        db.record_answer(&answer("r1", "m1", 1)).unwrap();
        db.with_conn(|c| {
            c.execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO feedback VALUES ('r1', 'u', 'meh', 2);",
            )
            .unwrap();
            Ok(())
        })
        .unwrap();
        let e = db.list_feedback(&FeedbackFilter::default()).unwrap_err();
        assert!(e.to_string().contains("meh"), "{e}");
    }

    #[test]
    fn records_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Records>();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let e = Records::open(&path).unwrap_err();
        assert!(
            matches!(e, RecordsError::NewerSchema { found: 99, .. }),
            "{e}"
        );
    }

    #[test]
    fn an_unusable_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = Records::open_in(&file.join("sub")).unwrap_err();
        assert!(matches!(e, RecordsError::CreateDir { .. }));
        assert!(e.to_string().contains("a-file"));
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_utc(1_774_080_994_334), "2026-03-21T08:16:34.334Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_utc(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    fn row(question: &str, answer: &str) -> FeedbackRow {
        FeedbackRow {
            record_id: "r1".into(),
            message_id: "m1".into(),
            robot: "imRobots.demo".into(),
            conversation_id: "cid".into(),
            asked_by: "u1".into(),
            rated_by: "u2".into(),
            rating: FeedbackKind::Unhelpful,
            question: question.into(),
            answer: answer.into(),
            answered_at_ms: 0,
            rated_at_ms: 1000,
        }
    }

    /// A small RFC 4180 reader, to check the writer by round trip.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') if chars.peek() == Some(&'\n') => {
                    chars.next();
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let tricky_q = "Printer, 3rd floor: \"jammed\"?";
        let tricky_a = "Step 1\nStep 2\r\nDone, \"really\"";
        let csv = feedback_csv(&[row(tricky_q, tricky_a), row("plain", " padded ")]);
        assert!(csv.starts_with("record_id,message_id,robot,conversation_id,asked_by,rated_by,rating,question,answer,answered_at,rated_at\r\n"));
        assert!(csv.contains("\"Printer, 3rd floor: \"\"jammed\"\"?\""));
        let parsed = parse_csv(&csv);
        assert_eq!(parsed.len(), 3);
        assert!(parsed.iter().all(|r| r.len() == CSV_HEADER.len()));
        assert_eq!(parsed[1][7], tricky_q);
        assert_eq!(parsed[1][8], tricky_a);
        assert_eq!(parsed[1][6], "unhelpful");
        assert_eq!(parsed[1][10], "1970-01-01T00:00:01.000Z");
        assert_eq!(parsed[2][7], "plain");
        assert_eq!(parsed[2][8], " padded ");
        // Unquoted plain fields stay unquoted.
        assert!(csv.contains(",plain,"));
    }

    #[test]
    fn csv_neutralizes_formulas() {
        let evil = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tcmd",
            "\r=1",
        ];
        for q in evil {
            let csv = feedback_csv(&[row(q, "fine")]);
            let parsed = parse_csv(&csv);
            assert_eq!(parsed[1][7], format!("'{q}"), "{q:?}");
            // Quoted, so no cell of the row starts with a formula character.
            assert!(csv.contains(&format!(",\"'{}\",", q.replace('"', "\"\""))));
        }
        // The user ids are neutralized as well; ordinary text is left alone.
        let mut r = row("a-b = c", "x");
        r.asked_by = "=cmd|' /C calc'!A0".into();
        let parsed = parse_csv(&feedback_csv(&[r]));
        assert_eq!(parsed[1][4], "'=cmd|' /C calc'!A0");
        assert_eq!(parsed[1][7], "a-b = c");
    }

    #[test]
    fn json_export_round_trips() {
        let rows = [row("问题, \"x\"", "答案\n第二行")];
        let v = feedback_json(&rows);
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0]["question"], "问题, \"x\"");
        assert_eq!(back[0]["answer"], "答案\n第二行");
        assert_eq!(back[0]["rating"], "unhelpful");
        assert_eq!(back[0]["score"], -1);
        assert_eq!(back[0]["ratedAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(back[0]["ratedAtMs"], 1000);
        assert_eq!(feedback_json(&[]), json!([]));
    }

    #[test]
    fn ids_and_clock() {
        assert_ne!(new_record_id(), new_record_id());
        assert_eq!(new_record_id().len(), 32);
        // Later than 2024-01-01: the clock is read, not a constant.
        assert!(now_ms() > 1_704_067_200_000);
    }
}
