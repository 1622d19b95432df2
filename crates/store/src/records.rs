//! The answer records and the feedback on them, as stored (the tables `robot-records.sqlite3`
//! had, now on the shared store). Rows are plain text and numbers; [`StoredAnswer`] is the
//! robot's answer type too, and its `records` module reads ratings and conversation kinds
//! from the text and exports feedback.

use crate::{t, Cell, Row, Store, StoreError, Val};

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub record_id: String,
    /// Unique: a redelivered message cannot be stored twice.
    pub message_id: String,
    pub robot: String,
    pub conversation_id: String,
    /// DingTalk's `conversationType`: "1" one-to-one, "2" group.
    pub conversation_type: String,
    pub user_id: String,
    pub staff_id: Option<String>,
    pub user_nick: String,
    pub question: String,
    pub answer: String,
    pub regenerated_from: Option<String>,
    pub answered_at_ms: i64,
}

/// One user's rating of an answer (one per answer and user; a new click replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFeedback {
    pub record_id: String,
    pub user_id: String,
    /// `very_helpful`, `helpful`, `unhelpful` or `very_unhelpful`.
    pub rating: String,
    pub rated_at_ms: i64,
}

/// The unique keys an answer is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKey<'a> {
    /// Its record id (what card buttons carry).
    Record(&'a str),
    /// The id of the message it answers (one answer per message).
    Message(&'a str),
}

/// `SELECT <every answer column> FROM answers a <tail>`, as one static statement.
macro_rules! answers {
    ($tail:literal) => {
        concat!(
            "SELECT a.record_id, a.message_id, a.robot, a.conversation_id, a.conversation_type,
                 a.user_id, a.staff_id, a.user_nick, a.question, a.answer, a.regenerated_from,
                 a.answered_at_ms FROM answers a ",
            $tail
        )
    };
}

fn opt(v: &Option<String>) -> Val {
    v.as_deref().map_or(Val::Null, t)
}

fn opt_text(c: &Cell) -> Option<String> {
    match c {
        Cell::Null => None,
        other => Some(other.text()),
    }
}

fn answer_of(r: &Row) -> StoredAnswer {
    StoredAnswer {
        record_id: r[0].text(),
        message_id: r[1].text(),
        robot: r[2].text(),
        conversation_id: r[3].text(),
        conversation_type: r[4].text(),
        user_id: r[5].text(),
        staff_id: opt_text(&r[6]),
        user_nick: r[7].text(),
        question: r[8].text(),
        answer: r[9].text(),
        regenerated_from: opt_text(&r[10]),
        answered_at_ms: r[11].int(),
    }
}

impl Store {
    /// Stores an answer. Returns `None` when stored, or the record id of the answer stored
    /// before for this message id (nothing written).
    pub async fn insert_answer(&self, a: &StoredAnswer) -> Result<Option<String>, StoreError> {
        let n = self
            .exec(
                "INSERT INTO answers (record_id, message_id, robot, conversation_id, conversation_type,
                     user_id, staff_id, user_nick, question, answer, regenerated_from, answered_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (message_id) DO NOTHING",
                vec![
                    t(&a.record_id),
                    t(&a.message_id),
                    t(&a.robot),
                    t(&a.conversation_id),
                    t(&a.conversation_type),
                    t(&a.user_id),
                    opt(&a.staff_id),
                    t(&a.user_nick),
                    t(&a.question),
                    t(&a.answer),
                    opt(&a.regenerated_from),
                    Val::Int(a.answered_at_ms),
                ],
            )
            .await?;
        if n == 1 {
            return Ok(None);
        }
        Ok(self
            .answer(AnswerKey::Message(&a.message_id))
            .await?
            .map(|a| a.record_id))
    }

    /// The answer with this unique key, if any.
    pub async fn answer(&self, key: AnswerKey<'_>) -> Result<Option<StoredAnswer>, StoreError> {
        let (sql, value) = match key {
            AnswerKey::Record(id) => (answers!("WHERE a.record_id = $1"), id),
            AnswerKey::Message(id) => (answers!("WHERE a.message_id = $1"), id),
        };
        let rows = self.query(sql, vec![t(value)]).await?;
        Ok(rows.first().map(answer_of))
    }

    /// All answers, oldest first (at most `limit`).
    pub async fn list_answers(&self, limit: Option<u32>) -> Result<Vec<StoredAnswer>, StoreError> {
        let rows = self
            .query(answers!("ORDER BY a.answered_at_ms, a.record_id"), vec![])
            .await?;
        let take = limit.map_or(usize::MAX, |l| l as usize);
        Ok(rows.iter().take(take).map(answer_of).collect())
    }

    /// Stores a rating, replacing the user's earlier rating of that answer. Returns false
    /// (nothing written) when there is no answer with that record id.
    pub async fn upsert_feedback(&self, f: &StoredFeedback) -> Result<bool, StoreError> {
        if self
            .answer(AnswerKey::Record(&f.record_id))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.exec(
            "INSERT INTO feedback (record_id, user_id, rating, rated_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (record_id, user_id)
             DO UPDATE SET rating = excluded.rating, rated_at_ms = excluded.rated_at_ms",
            vec![
                t(&f.record_id),
                t(&f.user_id),
                t(&f.rating),
                Val::Int(f.rated_at_ms),
            ],
        )
        .await?;
        Ok(true)
    }

    /// Every rating with its answer, oldest rating first.
    pub async fn list_feedback(&self) -> Result<Vec<(StoredAnswer, StoredFeedback)>, StoreError> {
        let rows = self
            .query(
                "SELECT a.record_id, a.message_id, a.robot, a.conversation_id, a.conversation_type,
                     a.user_id, a.staff_id, a.user_nick, a.question, a.answer, a.regenerated_from,
                     a.answered_at_ms, f.user_id, f.rating, f.rated_at_ms
                 FROM feedback f JOIN answers a ON a.record_id = f.record_id
                 ORDER BY f.rated_at_ms, a.record_id, f.user_id",
                vec![],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let a = answer_of(r);
                let f = StoredFeedback {
                    record_id: a.record_id.clone(),
                    user_id: r[12].text(),
                    rating: r[13].text(),
                    rated_at_ms: r[14].int(),
                };
                (a, f)
            })
            .collect())
    }
}
