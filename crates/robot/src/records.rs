//! The robot's records: answered messages and the feedback on them, kept in a
//! [`jitnode_store::Store`] (its `answers` and `feedback` tables), with CSV and JSON export
//! for `jitnode feedback`.
//!
//! - `answers`: one row per answer ([`StoredAnswer`]; the message id is unique, so a
//!   redelivered message cannot be stored twice). A regenerated answer is a new row whose
//!   `regenerated_from` names the first one; its message id is the id of the Stream push
//!   that asked for it (the card callback).
//! - `feedback`: one row per answer and user; a user who clicks again changes their rating
//!   instead of adding a second vote.
//!
//! The store is the one `jitnode run` opened, or for a robot hosted without one (tests,
//! embedders) the app's own SQLite store at the default place in its data folder
//! ([`RecordsAt::open_in`]). Times are epoch milliseconds, exported as RFC 3339 UTC.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jitnode_dingtalk_wire::{Mention, RobotMessage};
use jitnode_store::{
    AnswerKey, Store, StoreError, StoreOptions, StoreUrl, StoredAnswer, StoredFeedback,
    DEFAULT_STORE_FILE, LEGACY_RECORDS_FILE,
};
use serde_json::{json, Value};

use crate::callback::FeedbackKind;
use crate::message::{ConversationKind, Incoming, ReplyTarget};

/// A records problem; store errors name the store (its file or redacted URL).
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("no answer with record id {record_id:?}")]
    UnknownRecord { record_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored rating {0:?} is not one this build knows")]
    UnknownRating(String),
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

/// The answer to a robot message, answered now.
pub fn answer_to(
    message: &RobotMessage,
    robot: &str,
    record_id: &str,
    question: &str,
    answer: &str,
) -> StoredAnswer {
    StoredAnswer {
        record_id: record_id.to_string(),
        message_id: message.msg_id.clone(),
        robot: robot.to_string(),
        conversation_id: message.conversation_id.clone(),
        conversation_type: kind_code(message.kind()),
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
pub fn regenerated_answer(
    first: &StoredAnswer,
    record_id: &str,
    message_id: &str,
    answer: &str,
) -> StoredAnswer {
    StoredAnswer {
        record_id: record_id.to_string(),
        message_id: message_id.to_string(),
        answer: answer.to_string(),
        regenerated_from: Some(first.record_id.clone()),
        answered_at_ms: now_ms(),
        ..first.clone()
    }
}

/// What the robot reads from a stored answer. A trait because the type is the store's,
/// whose conversation is stored as DingTalk's `conversationType`.
pub trait RobotAnswer {
    /// One-to-one or group: needed to send a regenerated answer to the same place.
    fn conversation_kind(&self) -> ConversationKind;

    /// Where a regenerated answer goes: the same conversation, by the same rule as
    /// [`crate::message::Incoming::reply_target`]. An external asker in a one-to-one chat
    /// cannot be reached by a card, only by a fresh session webhook.
    fn reply_target(&self) -> ReplyTarget;

    /// The asker to @-mention in a regenerated answer.
    fn at_user(&self) -> Option<Mention>;
}

impl RobotAnswer for StoredAnswer {
    fn conversation_kind(&self) -> ConversationKind {
        // The CHECK constraint allows only "1" and "2".
        if self.conversation_type == "1" {
            ConversationKind::OneToOne
        } else {
            ConversationKind::Group
        }
    }

    fn reply_target(&self) -> ReplyTarget {
        let staff_id = self.staff_id.as_deref();
        ReplyTarget::of(self.conversation_kind(), &self.conversation_id, staff_id)
    }

    fn at_user(&self) -> Option<Mention> {
        self.staff_id.as_ref().map(|staff_id| Mention {
            nick_name: self.user_nick.clone(),
            user_id: staff_id.clone(),
        })
    }
}

/// The stored form of a conversation kind: DingTalk's own `conversationType` code.
pub fn kind_code(kind: ConversationKind) -> String {
    kind.conversation_type().as_str().to_string()
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

/// Where a robot keeps its records: a store, the one `jitnode run` opened (so every host of
/// an app sees the same answers and feedback) or the app's own ([`RecordsAt::open_in`]).
#[derive(Debug, Clone)]
pub struct RecordsAt {
    store: Store,
}

impl RecordsAt {
    /// The records in `store`.
    pub fn new(store: Store) -> RecordsAt {
        RecordsAt { store }
    }

    /// The app's own store, for a robot hosted without a process store: SQLite at the
    /// default place in the app's data folder (where `jitnode run` keeps it without a
    /// setting), opened once per folder in this process and shared by its robots. An old
    /// records file in the folder is imported into it once.
    pub async fn open_in(data_dir: &Path) -> Result<RecordsAt, RecordsError> {
        // An async lock: two robots loading at once open the folder's store once.
        static OPEN: OnceLock<tokio::sync::Mutex<HashMap<PathBuf, Store>>> = OnceLock::new();
        let mut open = OPEN.get_or_init(Default::default).lock().await;
        if let Some(store) = open.get(data_dir) {
            return Ok(RecordsAt::new(store.clone()));
        }
        let url = StoreUrl::default_in(data_dir);
        let store = Store::open(&url, &StoreOptions::default()).await?;
        store
            .import_legacy_records(&data_dir.join(LEGACY_RECORDS_FILE))
            .await?;
        open.insert(data_dir.to_path_buf(), store.clone());
        Ok(RecordsAt::new(store))
    }

    /// The records of the app whose data folder is `data_dir`, as a reader in this process
    /// finds them: the process's store (`jitnode run`), else the app's own store if it has
    /// one (or an old records file to import).
    pub async fn for_app(data_dir: &Path) -> Option<RecordsAt> {
        if let Some(store) = jitnode_store::process_store() {
            return Some(RecordsAt::new(store));
        }
        let has_any = [DEFAULT_STORE_FILE, LEGACY_RECORDS_FILE]
            .iter()
            .any(|f| data_dir.join(f).exists());
        if !has_any {
            return None;
        }
        RecordsAt::open_in(data_dir).await.ok()
    }

    /// The store the records are in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where they are, for status output (the store's URL shows no password).
    pub fn location(&self) -> String {
        self.store().url().to_string()
    }

    /// Stores an answer; a message id stored before is not stored again.
    pub async fn record_answer(&self, a: &StoredAnswer) -> Result<Inserted, RecordsError> {
        let s = self.store();
        if let Some(from) = &a.regenerated_from {
            if s.answer(AnswerKey::Record(from)).await?.is_none() {
                return Err(RecordsError::UnknownRecord {
                    record_id: from.clone(),
                });
            }
        }
        Ok(match s.insert_answer(a).await? {
            None => Inserted::New,
            Some(record_id) => Inserted::AlreadyStored { record_id },
        })
    }

    /// The answer with this record id.
    pub async fn answer(&self, record_id: &str) -> Result<Option<StoredAnswer>, RecordsError> {
        Ok(self.store().answer(AnswerKey::Record(record_id)).await?)
    }

    /// The answer to this message id.
    pub async fn answer_by_message(
        &self,
        message_id: &str,
    ) -> Result<Option<StoredAnswer>, RecordsError> {
        Ok(self.store().answer(AnswerKey::Message(message_id)).await?)
    }

    /// All answers, oldest first (at most `limit`).
    pub async fn list_answers(
        &self,
        limit: Option<u32>,
    ) -> Result<Vec<StoredAnswer>, RecordsError> {
        Ok(self.store().list_answers(limit).await?)
    }

    /// Stores a user's rating of an answer, replacing their earlier rating of it.
    pub async fn record_feedback(
        &self,
        record_id: &str,
        user_id: &str,
        rating: FeedbackKind,
        rated_at_ms: i64,
    ) -> Result<(), RecordsError> {
        let row = StoredFeedback {
            record_id: record_id.to_string(),
            user_id: user_id.to_string(),
            rating: rating.as_str().to_string(),
            rated_at_ms,
        };
        match self.store().upsert_feedback(&row).await? {
            true => Ok(()),
            false => Err(RecordsError::UnknownRecord {
                record_id: record_id.to_string(),
            }),
        }
    }

    /// Feedback joined with question and answer, oldest first.
    pub async fn list_feedback(
        &self,
        filter: &FeedbackFilter,
    ) -> Result<Vec<FeedbackRow>, RecordsError> {
        let mut out = Vec::new();
        for (a, f) in self.store().list_feedback().await? {
            if filter.limit.is_some_and(|l| out.len() >= l as usize) {
                break;
            }
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
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(record: &str, message: &str, at: i64) -> StoredAnswer {
        StoredAnswer {
            record_id: record.into(),
            message_id: message.into(),
            robot: "imRobots.dingTalkDemo".into(),
            conversation_id: "cid1".into(),
            conversation_type: kind_code(ConversationKind::Group),
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
    async fn rate(db: &RecordsAt, ratings: &[(&str, &str, FeedbackKind, i64)]) {
        for &(record, user, rating, at) in ratings {
            db.record_feedback(record, user, rating, at).await.unwrap();
        }
    }

    async fn open() -> (tempfile::TempDir, RecordsAt) {
        let dir = tempfile::tempdir().unwrap();
        let db = RecordsAt::open_in(&dir.path().join("data")).await.unwrap();
        (dir, db)
    }

    /// The app's own store file in `dir`'s data folder.
    fn store_file(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("data").join(DEFAULT_STORE_FILE)
    }

    #[tokio::test]
    async fn opens_in_the_data_folder_in_wal_mode() {
        let (dir, db) = open().await;
        let file = store_file(&dir);
        assert_eq!(db.store().sqlite_path(), Some(file.as_path()));
        assert!(file.exists());
        assert!(db.location().contains(DEFAULT_STORE_FILE));
        let mode: String = rusqlite::Connection::open(&file)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn answers_are_stored_once_per_message() {
        let (_dir, db) = open().await;
        assert_eq!(
            db.record_answer(&answer("r1", "m1", 1000)).await.unwrap(),
            Inserted::New
        );
        // A redelivered message with a different record id is not stored again.
        assert_eq!(
            db.record_answer(&answer("r2", "m1", 2000)).await.unwrap(),
            Inserted::AlreadyStored {
                record_id: "r1".into()
            }
        );
        let row = db.answer("r1").await.unwrap().unwrap();
        assert_eq!(row.question, "question of r1");
        assert_eq!(row.answer, "answer of r1");
        assert_eq!(row.user_nick, "Li Lei");
        assert_eq!(row.answered_at_ms, 1000);
        assert_eq!(db.answer("r2").await.unwrap(), None);
        assert_eq!(
            db.answer_by_message("m1").await.unwrap().unwrap().record_id,
            "r1"
        );
        assert_eq!(db.list_answers(None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn stored_answers_know_where_to_reply() {
        let (_dir, db) = open().await;
        db.record_answer(&answer("g", "m1", 1)).await.unwrap();
        let mut dm = answer("d", "m2", 2);
        dm.conversation_type = kind_code(ConversationKind::OneToOne);
        db.record_answer(&dm).await.unwrap();
        let mut ext = answer("e", "m3", 3);
        ext.conversation_type = kind_code(ConversationKind::OneToOne);
        ext.user_id = "$:LWCP_v1:$x".into();
        ext.staff_id = None;
        db.record_answer(&ext).await.unwrap();

        let expected = [
            (
                "g",
                ConversationKind::Group,
                ReplyTarget::Group {
                    open_conversation_id: "cid1".into(),
                },
            ),
            (
                "d",
                ConversationKind::OneToOne,
                ReplyTarget::User {
                    staff_id: "0326".into(),
                },
            ),
            ("e", ConversationKind::OneToOne, ReplyTarget::SessionOnly),
        ];
        for (record, kind, target) in expected {
            let a = db.answer(record).await.unwrap().unwrap();
            assert_eq!(a.conversation_kind(), kind, "{record}");
            assert_eq!(a.reply_target(), target, "{record}");
        }
        let g = db.answer("g").await.unwrap().unwrap();
        assert_eq!(g.at_user().unwrap().user_id, "0326");
        let e = db.answer("e").await.unwrap().unwrap();
        assert_eq!(e.staff_id, None);
        assert_eq!(e.at_user(), None);
    }

    #[tokio::test]
    async fn answers_built_from_a_message_and_regenerated() {
        let (_dir, db) = open().await;
        let msg: RobotMessage = serde_json::from_value(
            json!({"msgId": "msgA", "msgtype": "text", "text": {"content": "q?"},
                    "conversationId": "cidDM", "conversationType": "1",
                    "senderId": "$:x", "senderStaffId": "0777", "senderNick": "Wang"}),
        )
        .unwrap();
        assert_eq!(msg.check(), Ok(ConversationKind::OneToOne));
        let first = answer_to(&msg, "imRobots.demo", "r1", "q?", "a1");
        assert_eq!(first.user_id, "0777");
        assert_eq!(first.conversation_kind(), ConversationKind::OneToOne);
        db.record_answer(&first).await.unwrap();
        let stored = db.answer("r1").await.unwrap().unwrap();
        let again = regenerated_answer(&stored, "r2", "cb-frame-1", "a2");
        db.record_answer(&again).await.unwrap();
        let r2 = db.answer("r2").await.unwrap().unwrap();
        assert_eq!(r2.question, "q?");
        assert_eq!(r2.answer, "a2");
        assert_eq!(r2.regenerated_from.as_deref(), Some("r1"));
        assert_eq!(r2.message_id, "cb-frame-1");
        assert_eq!(r2.reply_target(), stored.reply_target());
        assert!(r2.answered_at_ms >= stored.answered_at_ms);
    }

    #[tokio::test]
    async fn a_record_id_reused_for_another_message_is_an_error() {
        let (_dir, db) = open().await;
        db.record_answer(&answer("r1", "m1", 1000)).await.unwrap();
        let e = db
            .record_answer(&answer("r1", "m2", 1000))
            .await
            .unwrap_err();
        assert!(
            matches!(e, RecordsError::Store(StoreError::Sqlite { .. })),
            "{e}"
        );
        assert!(e.to_string().contains(DEFAULT_STORE_FILE));
    }

    #[tokio::test]
    async fn regenerated_answers_link_to_the_first() {
        let (_dir, db) = open().await;
        db.record_answer(&answer("r1", "m1", 1000)).await.unwrap();
        let mut again = answer("r2", "callback-frame-9", 2000);
        again.regenerated_from = Some("r1".into());
        assert_eq!(db.record_answer(&again).await.unwrap(), Inserted::New);
        assert_eq!(
            db.answer("r2")
                .await
                .unwrap()
                .unwrap()
                .regenerated_from
                .as_deref(),
            Some("r1")
        );
        let mut orphan = answer("r3", "m3", 3000);
        orphan.regenerated_from = Some("nope".into());
        assert!(matches!(
            db.record_answer(&orphan).await.unwrap_err(),
            RecordsError::UnknownRecord { record_id } if record_id == "nope"
        ));
        let listed: Vec<String> = db
            .list_answers(Some(1))
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.record_id)
            .collect();
        assert_eq!(listed, ["r1"]);
    }

    #[tokio::test]
    async fn feedback_is_stored_joined_and_replaced_per_user() {
        let (_dir, db) = open().await;
        db.record_answer(&answer("r1", "m1", 1000)).await.unwrap();
        db.record_answer(&answer("r2", "m2", 2000)).await.unwrap();
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
        )
        .await;

        let rows = db.list_feedback(&FeedbackFilter::default()).await.unwrap();
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

    #[tokio::test]
    async fn feedback_filters() {
        let (_dir, db) = open().await;
        db.record_answer(&answer("r1", "m1", 1000)).await.unwrap();
        let mut other = answer("r2", "m2", 1000);
        other.robot = "imRobots.second".into();
        db.record_answer(&other).await.unwrap();
        rate(
            &db,
            &[
                ("r1", "u1", FeedbackKind::Helpful, 10),
                ("r1", "u2", FeedbackKind::Unhelpful, 20),
                ("r2", "u1", FeedbackKind::Helpful, 30),
            ],
        )
        .await;
        let filters = [
            FeedbackFilter {
                robot: Some("imRobots.second".into()),
                ..Default::default()
            },
            FeedbackFilter {
                since_ms: Some(20),
                ..Default::default()
            },
            FeedbackFilter {
                rating: Some(FeedbackKind::Helpful),
                ..Default::default()
            },
            FeedbackFilter {
                limit: Some(1),
                ..Default::default()
            },
        ];
        let mut counts = Vec::new();
        for f in &filters {
            counts.push(db.list_feedback(f).await.unwrap().len());
        }
        assert_eq!(counts, [1, 2, 2, 1]);
    }

    #[tokio::test]
    async fn feedback_on_an_unknown_record_is_a_typed_error() {
        let (_dir, db) = open().await;
        let e = db
            .record_feedback("ghost", "u1", FeedbackKind::Helpful, 1)
            .await
            .unwrap_err();
        assert!(matches!(&e, RecordsError::UnknownRecord { record_id } if record_id == "ghost"));
        assert!(e.to_string().contains("ghost"));
    }

    #[tokio::test]
    async fn records_survive_reopening_and_two_handles_share_the_file() {
        let (dir, a) = open().await;
        a.record_answer(&answer("r1", "m1", 1)).await.unwrap();
        // The same folder again: the same store.
        let again = RecordsAt::open_in(&dir.path().join("data")).await.unwrap();
        assert!(again.answer("r1").await.unwrap().is_some());
        // A second handle on the same file, as another process would open it.
        let url = StoreUrl::Sqlite(store_file(&dir));
        let b = RecordsAt::new(Store::open(&url, &StoreOptions::default()).await.unwrap());
        assert!(b.answer("r1").await.unwrap().is_some());
        a.record_answer(&answer("r2", "m2", 2)).await.unwrap();
        b.record_feedback("r2", "u", FeedbackKind::Helpful, 3)
            .await
            .unwrap();
        assert_eq!(
            a.list_feedback(&FeedbackFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
        // The second handle sees the first's redelivery guard.
        assert_eq!(
            b.record_answer(&answer("rX", "m2", 4)).await.unwrap(),
            Inserted::AlreadyStored {
                record_id: "r2".into()
            }
        );
    }

    #[tokio::test]
    async fn an_old_records_file_is_imported_into_the_own_store() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // An old file: the same tables, as the robot wrote them before the store.
        let old = rusqlite::Connection::open(data.join(LEGACY_RECORDS_FILE)).unwrap();
        old.execute_batch(jitnode_store::RECORDS_TABLES).unwrap();
        old.execute(
            "INSERT INTO answers VALUES ('r1', 'm1', 'imRobots.demo', 'c', '1', 'u', NULL, 'U',
                 'q', 'a', NULL, 5)",
            [],
        )
        .unwrap();
        drop(old);
        let db = RecordsAt::for_app(&data)
            .await
            .expect("found by its old file");
        assert_eq!(db.answer("r1").await.unwrap().unwrap().answered_at_ms, 5);
    }

    #[tokio::test]
    async fn a_hand_edited_rating_is_an_error_not_a_panic() {
        let (dir, db) = open().await;
        db.record_answer(&answer("r1", "m1", 1)).await.unwrap();
        rusqlite::Connection::open(store_file(&dir))
            .unwrap()
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO feedback VALUES ('r1', 'u', 'meh', 2);",
            )
            .unwrap();
        let e = db
            .list_feedback(&FeedbackFilter::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("meh"), "{e}");
    }

    #[test]
    fn records_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<RecordsAt>();
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        rusqlite::Connection::open(data.join(DEFAULT_STORE_FILE))
            .unwrap()
            .execute_batch(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY NOT NULL,
                     applied_at_ms BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (99, 0);",
            )
            .unwrap();
        let e = RecordsAt::open_in(&data).await.unwrap_err();
        assert!(
            matches!(
                e,
                RecordsError::Store(StoreError::NewerSchema { found: 99, .. })
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unusable_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = RecordsAt::open_in(&file.join("sub")).await.unwrap_err();
        assert!(matches!(
            e,
            RecordsError::Store(StoreError::CreateDir { .. })
        ));
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
