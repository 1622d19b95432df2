//! jitnode's shared store: what several hosts of one robot app must agree on, behind one
//! setting (`JITNODE_STORE_URL`, `jitnode run --store`), on SQLite (embedded default) or
//! PostgreSQL (shared by replicas).
//!
//! It holds the inbox of claims (one row per robot message: the host that won it, its state
//! and lease, and the message, for a host to answer when its claimer died before starting), card-callback dedupe, open cards, bounded chat memory, and the answer and
//! feedback tables (imported from the old `robot-records.sqlite3`). It is not a general data
//! layer: no query builder, no ORM; each operation is one or two statements written once and
//! run unchanged on both backends (positional `$n` parameters work in both dialects).

mod pg;
mod records;
mod schema;
mod sqlite;
mod url;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::records::{AnswerKey, StoredAnswer, StoredFeedback};
pub use crate::url::{redact, StoreUrl, DEFAULT_STORE_FILE, DEFAULT_STORE_URL, STORE_URL_VAR};

/// The file, in an app's data folder, that held the robot's records before the store
/// ([`Store::import_legacy_records`] copies it in).
pub const LEGACY_RECORDS_FILE: &str = "robot-records.sqlite3";
pub use schema::{latest as latest_schema_version, RECORDS_TABLES};

/// A store problem. Messages name the store by its redacted URL, never with a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{setting} = {shown:?} is not a store URL: {reason}")]
    BadUrl {
        setting: String,
        shown: String,
        reason: String,
    },
    #[error("{setting} = {shown:?}: cannot reach the store: {reason}")]
    Unreachable {
        setting: String,
        shown: String,
        reason: String,
    },
    #[error("store sqlite:{}: cannot create its folder: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store sqlite:{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store sqlite:{}: could not switch to WAL mode (got {mode:?})", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("store {shown}: {source}")]
    Postgres {
        shown: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("store {shown}: timed out after {after:?} {what}")]
    Timeout {
        shown: String,
        what: &'static str,
        after: Duration,
    },
    #[error(
        "store {shown}: written by a newer version (schema {found}, this build knows {known})"
    )]
    NewerSchema {
        shown: String,
        found: i64,
        known: i64,
    },
    #[error("legacy records {}: {source}", path.display())]
    Legacy {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store task failed: {0}")]
    Task(String),
}

/// A parameter of a statement (owned, so SQLite calls can move to the blocking pool).
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Text(String),
    Int(i64),
    Null,
}

/// One value read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            Cell::Text(t) => t.parse().unwrap_or(0),
            Cell::Null => 0,
        }
    }
    fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Null => String::new(),
        }
    }
}

pub(crate) type Row = Vec<Cell>;

fn t(s: &str) -> Val {
    Val::Text(s.to_string())
}

/// Locks `m`, also when a panic poisoned it: every guarded value here (a connection, a
/// statement cache, a queue turn) stays usable, since SQLite rolls back what a panic left
/// half done and the caches hold only complete entries.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The claim: a new row, or the takeover of a claim whose lease ran out before it was
/// finished. Returns the row's attempts when this host won it, no row otherwise. A takeover
/// keeps the message it had when the new claim brings none.
const CLAIM_SQL: &str = "INSERT INTO inbox AS i
         (msg_key, host, state, claimed_at_ms, lease_until_ms, attempts, robot, message)
     VALUES ($1, $2, 'claimed', $3, $4, 1, $5, $6)
     ON CONFLICT (msg_key) DO UPDATE SET host = excluded.host, state = 'claimed',
         claimed_at_ms = excluded.claimed_at_ms, lease_until_ms = excluded.lease_until_ms,
         attempts = i.attempts + 1, robot = COALESCE(NULLIF(excluded.robot, ''), i.robot),
         message = COALESCE(excluded.message, i.message)
     WHERE i.state IN ('claimed', 'answering') AND i.lease_until_ms < excluded.claimed_at_ms
     RETURNING attempts";

const CLAIM_HOLDER_SQL: &str = "SELECT host, state FROM inbox WHERE msg_key = $1";

/// Statements of every answer, prepared on each PostgreSQL connection at start.
const HOT_STATEMENTS: &[&str] = &[CLAIM_SQL, CLAIM_HOLDER_SQL, SET_CLAIM_SQL];

const SET_CLAIM_SQL: &str =
    "UPDATE inbox SET state = $3, lease_until_ms = $4 WHERE msg_key = $1 AND host = $2";

/// Which of a backend's ways to the database a statement takes: claims decide a message's
/// ACK, so they do not queue behind other statements (each backend's module doc says how).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Claim,
    Shared,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(pg::Postgres),
}

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Where the URL came from, for errors (`JITNODE_STORE_URL` or `--store`).
    pub setting: String,
    /// Connect, checkout and statement timeout (PostgreSQL).
    pub timeout: Duration,
    /// How long a claim stays this host's before another host may take it over.
    pub lease: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            setting: STORE_URL_VAR.to_string(),
            timeout: Duration::from_secs(5),
            lease: DEFAULT_LEASE,
        }
    }
}

/// An open, migrated store. Cheap to clone (shares its connections).
#[derive(Clone)]
pub struct Store {
    url: StoreUrl,
    backend: Backend,
    lease: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

/// The state of a claim on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    Claimed,
    Answering,
    Answered,
    Failed,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Claimed => "claimed",
            ClaimState::Answering => "answering",
            ClaimState::Answered => "answered",
            ClaimState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> ClaimState {
        match s {
            "answering" => ClaimState::Answering,
            "answered" => ClaimState::Answered,
            "failed" => ClaimState::Failed,
            _ => ClaimState::Claimed,
        }
    }
}

/// What a claim attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This host owns the message now: answer it (`takeover`: a dead host's lease expired).
    Won { takeover: bool },
    /// Another claim holds it (or it is finished): ACK and do not answer.
    Duplicate { host: String, state: ClaimState },
}

/// A robot message to claim, kept in the inbox with its claim.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxMessage<'a> {
    /// The claim's key (`msgId`).
    pub key: &'a str,
    /// fullName of the robot instance it was pushed to.
    pub robot: &'a str,
    /// The message as received (its wire JSON), so another host can answer it.
    pub body: &'a str,
}

impl std::fmt::Debug for InboxMessage<'_> {
    // The body holds the session webhook (a credential): never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxMessage")
            .field("key", &self.key)
            .field("robot", &self.robot)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A message claimed by a host that died before it started answering, now claimed by the
/// sweeping host to answer.
#[derive(Clone, PartialEq, Eq)]
pub struct StaleClaim {
    pub msg_key: String,
    pub dead_host: String,
    /// The message's wire JSON, as [`InboxMessage::body`].
    pub body: String,
    /// Hosts that have claimed it so far, this one included.
    pub attempts: i64,
}

impl std::fmt::Debug for StaleClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaleClaim")
            .field("msg_key", &self.msg_key)
            .field("dead_host", &self.dead_host)
            .field("body_bytes", &self.body.len())
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// A card a host is about to send, or has sent and not yet finished: what another host needs
/// to finalize it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCard<'a> {
    pub card_id: &'a str,
    /// The claimed message it answers.
    pub msg_key: &'a str,
    /// fullName of the robot instance that sent it (its credentials update it).
    pub robot: &'a str,
    /// The question, for the card's text and language.
    pub question: &'a str,
}

/// A card left open past its lease, now taken by the sweeping host to finalize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCard {
    pub card_id: String,
    pub msg_key: String,
    pub dead_host: String,
    pub question: String,
    pub last_text: String,
}

/// One remembered question and answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    pub question: String,
    pub answer: String,
}

/// What `jitnode store status` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub backend: &'static str,
    pub url: String,
    pub schema_version: i64,
    pub claims: i64,
    pub open_claims: i64,
    pub open_cards: i64,
    pub answers: i64,
    pub feedback: i64,
    pub callbacks: i64,
    pub chat_turns: i64,
}

impl Store {
    /// Opens the store and applies the migrations. An unreachable PostgreSQL is one
    /// [`StoreError::Unreachable`] naming `opts.setting`.
    pub async fn open(url: &StoreUrl, opts: &StoreOptions) -> Result<Store, StoreError> {
        let backend = match url {
            StoreUrl::Sqlite(path) => Backend::Sqlite(sqlite::Sqlite::open(path).await?),
            StoreUrl::Postgres { raw, shown } => {
                Backend::Postgres(pg::Postgres::open(raw, shown, opts.timeout).await.map_err(
                    |e| StoreError::Unreachable {
                        setting: opts.setting.clone(),
                        shown: shown.clone(),
                        reason: match &e {
                            StoreError::Postgres { source, .. } => source.to_string(),
                            other => other.to_string(),
                        },
                    },
                )?)
            }
        };
        let store = Store {
            url: url.clone(),
            backend,
            lease: opts.lease,
        };
        store.migrate().await?;
        if let Backend::Postgres(p) = &store.backend {
            p.warm(HOT_STATEMENTS).await?;
        }
        Ok(store)
    }

    /// The lease of this host's claims ([`StoreOptions::lease`]).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The store's URL (displays without password).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Applies missing migrations (idempotent); returns the schema version.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.migrate().await,
            Backend::Postgres(p) => p.migrate().await,
        }
    }

    async fn exec(&self, sql: &'static str, params: Vec<Val>) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.exec(Lane::Shared, sql, params).await,
            Backend::Postgres(p) => p.exec(Lane::Shared, sql, params).await,
        }
    }

    async fn query(&self, sql: &'static str, params: Vec<Val>) -> Result<Vec<Row>, StoreError> {
        self.query_in(Lane::Shared, sql, params).await
    }

    async fn query_in(
        &self,
        lane: Lane,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<Vec<Row>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.query(lane, sql, params).await,
            Backend::Postgres(p) => p.query(lane, sql, params).await,
        }
    }

    async fn count(&self, sql: &'static str) -> Result<i64, StoreError> {
        let rows = self.query(sql, vec![]).await?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }

    /// Claims a message for `host`: an insert on the unique message key. A claim whose lease
    /// has run out while still claimed/answering (its host died) is taken over.
    ///
    /// Winning is one statement and one round trip: the insert, or on conflict the
    /// takeover of an expired claim, both atomic under the key's row lock (two hosts never
    /// both get a row back). Only a duplicate reads the holder with a second statement.
    pub async fn claim(
        &self,
        msg_key: &str,
        host: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_keyed(msg_key, Val::Text(String::new()), Val::Null, host, lease)
            .await
    }

    /// [`Store::claim`] that keeps the message in the inbox: if this host dies before it
    /// starts answering (the message was ACKed, so DingTalk does not push it again), the
    /// sweeper of a live host answers it ([`Store::take_stale_claims`]).
    pub async fn claim_message(
        &self,
        m: &InboxMessage<'_>,
        host: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_keyed(m.key, t(m.robot), t(m.body), host, lease)
            .await
    }

    async fn claim_keyed(
        &self,
        msg_key: &str,
        robot: Val,
        body: Val,
        host: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let won = self
            .query_in(
                Lane::Claim,
                CLAIM_SQL,
                vec![
                    t(msg_key),
                    t(host),
                    Val::Int(now),
                    Val::Int(until),
                    robot,
                    body,
                ],
            )
            .await?;
        if let Some(attempts) = won.first().and_then(|r| r.first()) {
            // A fresh insert has attempts 1; a takeover has counted the dead host's too.
            return Ok(Claim::Won {
                takeover: attempts.int() > 1,
            });
        }
        let rows = self
            .query_in(Lane::Claim, CLAIM_HOLDER_SQL, vec![t(msg_key)])
            .await?;
        let (host, state) = rows
            .first()
            .map(|r| (r[0].text(), ClaimState::parse(&r[1].text())))
            .unwrap_or_default_claim();
        Ok(Claim::Duplicate { host, state })
    }

    /// Moves this host's claim to `state` (and extends its lease while answering). Returns
    /// false when the claim is no longer this host's (taken over after its lease ran out).
    pub async fn set_claim(
        &self,
        msg_key: &str,
        host: &str,
        state: ClaimState,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = now_ms() + lease.as_millis() as i64;
        let n = self
            .exec(
                SET_CLAIM_SQL,
                vec![t(msg_key), t(host), t(state.as_str()), Val::Int(until)],
            )
            .await?;
        Ok(n == 1)
    }

    /// The claim on a message, if any.
    pub async fn claim_of(
        &self,
        msg_key: &str,
    ) -> Result<Option<(String, ClaimState, i64)>, StoreError> {
        let rows = self
            .query(
                "SELECT host, state, attempts FROM inbox WHERE msg_key = $1",
                vec![t(msg_key)],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| (r[0].text(), ClaimState::parse(&r[1].text()), r[2].int())))
    }

    /// Records a card callback; true the first time this key is seen (a redelivered click
    /// returns false and must not be acted on again).
    pub async fn first_callback(&self, key: &str, host: &str) -> Result<bool, StoreError> {
        let n = self
            .exec(
                "INSERT INTO callbacks (callback_key, host, seen_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (callback_key) DO NOTHING",
                vec![t(key), t(host), Val::Int(now_ms())],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records a card `host` is about to send, held by it for `lease` (renewed by
    /// [`Store::update_card`]).
    pub async fn open_card(
        &self,
        card: &OpenCard<'_>,
        host: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.exec(
            "INSERT INTO cards (card_id, owner_host, msg_key, state, last_text, updated_at_ms,
                 lease_until_ms, robot, question)
             VALUES ($1, $2, $3, 'open', '', $4, $5, $6, $7)
             ON CONFLICT (card_id) DO UPDATE SET owner_host = $2, state = 'open',
                 updated_at_ms = $4, lease_until_ms = $5",
            vec![
                t(card.card_id),
                t(host),
                t(card.msg_key),
                Val::Int(now),
                Val::Int(now + lease.as_millis() as i64),
                t(card.robot),
                t(card.question),
            ],
        )
        .await?;
        Ok(())
    }

    /// Saves a card's latest text and extends its lease (the owner's heartbeat).
    pub async fn update_card(
        &self,
        card_id: &str,
        host: &str,
        text: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self
            .exec(
                "UPDATE cards SET last_text = $3, updated_at_ms = $4, lease_until_ms = $5
                 WHERE card_id = $1 AND owner_host = $2 AND state IN ('open', 'finalizing')",
                vec![
                    t(card_id),
                    t(host),
                    t(text),
                    Val::Int(now),
                    Val::Int(now + lease.as_millis() as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Closes a card as done or failed.
    pub async fn close_card(&self, card_id: &str, failed: bool) -> Result<(), StoreError> {
        self.exec(
            "UPDATE cards SET state = $2, updated_at_ms = $3 WHERE card_id = $1",
            vec![
                t(card_id),
                t(if failed { "failed" } else { "done" }),
                Val::Int(now_ms()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Forgets a card a sweeper found was never created (its host died after recording it
    /// and before sending it), and hands its message back to [`Store::take_stale_claims`]
    /// to be answered. The claim goes back first: a host that dies in between leaves the
    /// card to be swept again, never a message nobody answers.
    pub async fn forget_card(&self, card_id: &str, msg_key: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE inbox SET state = 'answering', lease_until_ms = 0
             WHERE msg_key = $1 AND state = 'failed'",
            vec![t(msg_key)],
        )
        .await?;
        self.exec("DELETE FROM cards WHERE card_id = $1", vec![t(card_id)])
            .await?;
        Ok(())
    }

    /// Takes every card of `robot` left unfinished past its lease (its host died, or a
    /// sweeper that took it could not finish it) for `host` to finalize; two sweepers never
    /// get the same card. Their claims are marked failed.
    pub async fn take_stale_cards(
        &self,
        robot: &str,
        host: &str,
        lease: Duration,
    ) -> Result<Vec<StaleCard>, StoreError> {
        let now = now_ms();
        let candidates = self
            .query(
                "SELECT card_id, msg_key, owner_host, question, last_text FROM cards
                 WHERE robot = $1 AND state IN ('open', 'finalizing') AND lease_until_ms < $2",
                vec![t(robot), Val::Int(now)],
            )
            .await?;
        let mut out = Vec::new();
        for r in candidates {
            let card_id = r[0].text();
            // Compare-and-set on the old owner: only one sweeper's update matches.
            let n = self
                .exec(
                    "UPDATE cards SET state = 'finalizing', owner_host = $2, lease_until_ms = $3
                     WHERE card_id = $1 AND state IN ('open', 'finalizing') AND owner_host = $4
                         AND lease_until_ms < $5",
                    vec![
                        t(&card_id),
                        t(host),
                        Val::Int(now + lease.as_millis() as i64),
                        Val::Text(r[2].text()),
                        Val::Int(now),
                    ],
                )
                .await?;
            if n == 1 {
                self.exec(
                    "UPDATE inbox SET state = 'failed' WHERE msg_key = $1 AND state IN ('claimed', 'answering')",
                    vec![Val::Text(r[1].text())],
                )
                .await?;
                out.push(StaleCard {
                    card_id,
                    msg_key: r[1].text(),
                    dead_host: r[2].text(),
                    question: r[3].text(),
                    last_text: r[4].text(),
                });
            }
        }
        Ok(out)
    }

    /// Takes up to `limit` messages of `robot` whose claim ran out with nothing shown for
    /// them, for `host` to answer: still `claimed` (its host died after the ACK and before
    /// it started answering), or `answering` without a card (it died before its card was
    /// recorded; an answering host renews its lease, so an expired one is a dead host's).
    /// Two sweepers never get the same one. The new claim is `claimed` under `host`'s
    /// lease, so it starts like any other ([`Store::set_claim`]).
    pub async fn take_stale_claims(
        &self,
        robot: &str,
        host: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StaleClaim>, StoreError> {
        let now = now_ms();
        let candidates = self
            .query(
                "SELECT msg_key, host, message, attempts FROM inbox i
                 WHERE robot = $1 AND lease_until_ms < $2 AND message IS NOT NULL
                     AND (state = 'claimed' OR (state = 'answering' AND NOT EXISTS
                         (SELECT 1 FROM cards c WHERE c.msg_key = i.msg_key)))
                 ORDER BY claimed_at_ms LIMIT $3",
                vec![t(robot), Val::Int(now), Val::Int(limit as i64)],
            )
            .await?;
        let mut out = Vec::new();
        for r in candidates {
            // Compare-and-set on the old holder: only one sweeper's update matches, and a
            // host that claims it meanwhile (a redelivery) keeps it.
            let n = self
                .exec(
                    "UPDATE inbox SET host = $2, state = 'claimed', claimed_at_ms = $3,
                         lease_until_ms = $4, attempts = attempts + 1
                     WHERE msg_key = $1 AND host = $5 AND state IN ('claimed', 'answering')
                         AND lease_until_ms < $3",
                    vec![
                        Val::Text(r[0].text()),
                        t(host),
                        Val::Int(now),
                        Val::Int(now + lease.as_millis() as i64),
                        Val::Text(r[1].text()),
                    ],
                )
                .await?;
            if n == 1 {
                out.push(StaleClaim {
                    msg_key: r[0].text(),
                    dead_host: r[1].text(),
                    body: r[2].text(),
                    attempts: r[3].int() + 1,
                });
            }
        }
        Ok(out)
    }

    /// Appends a turn to a chat's memory and keeps only its newest `keep` turns.
    pub async fn push_turn(
        &self,
        chat_id: &str,
        turn: &ChatTurn,
        keep: usize,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO chat_turns (chat_id, question, answer, at_ms) VALUES ($1, $2, $3, $4)",
            vec![
                t(chat_id),
                t(&turn.question),
                t(&turn.answer),
                Val::Int(now_ms()),
            ],
        )
        .await?;
        self.exec(
            "DELETE FROM chat_turns WHERE chat_id = $1 AND id NOT IN
                 (SELECT id FROM chat_turns WHERE chat_id = $1 ORDER BY id DESC LIMIT $2)",
            vec![t(chat_id), Val::Int(keep as i64)],
        )
        .await?;
        Ok(())
    }

    /// A chat's remembered turns, oldest first.
    pub async fn turns(&self, chat_id: &str) -> Result<Vec<ChatTurn>, StoreError> {
        let rows = self
            .query(
                "SELECT question, answer FROM chat_turns WHERE chat_id = $1 ORDER BY id",
                vec![t(chat_id)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ChatTurn {
                question: r[0].text(),
                answer: r[1].text(),
            })
            .collect())
    }

    /// Copies the answers and feedback of an old `robot-records.sqlite3` into this store,
    /// once (keyed by the file's path); existing rows are kept. Returns rows copied, or None
    /// when there is no such file or it was imported before.
    pub async fn import_legacy_records(&self, path: &Path) -> Result<Option<u64>, StoreError> {
        if !path.is_file() {
            return Ok(None);
        }
        let source = path.display().to_string();
        let done = self
            .query(
                "SELECT rows_copied FROM imports WHERE source = $1",
                vec![t(&source)],
            )
            .await?;
        if !done.is_empty() {
            return Ok(None);
        }
        let p = path.to_path_buf();
        let (answers, feedback) = sqlite::run_blocking(move || read_legacy(&p)).await?;
        let mut copied = 0;
        for a in answers {
            copied += self
                .exec(
                    "INSERT INTO answers (record_id, message_id, robot, conversation_id, conversation_type,
                         user_id, staff_id, user_nick, question, answer, regenerated_from, answered_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
                    a,
                )
                .await?;
        }
        for f in feedback {
            copied += self
                .exec(
                    "INSERT INTO feedback (record_id, user_id, rating, rated_at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    f,
                )
                .await?;
        }
        self.exec(
            "INSERT INTO imports (source, rows_copied, at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            vec![t(&source), Val::Int(copied as i64), Val::Int(now_ms())],
        )
        .await?;
        Ok(Some(copied))
    }

    /// Backend, schema version and counts.
    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        Ok(StoreStatus {
            backend: self.url.backend(),
            url: self.url.to_string(),
            schema_version: self
                .count("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .await?,
            claims: self.count("SELECT COUNT(*) FROM inbox").await?,
            open_claims: self
                .count("SELECT COUNT(*) FROM inbox WHERE state IN ('claimed', 'answering')")
                .await?,
            open_cards: self
                .count("SELECT COUNT(*) FROM cards WHERE state IN ('open', 'finalizing')")
                .await?,
            answers: self.count("SELECT COUNT(*) FROM answers").await?,
            feedback: self.count("SELECT COUNT(*) FROM feedback").await?,
            callbacks: self.count("SELECT COUNT(*) FROM callbacks").await?,
            chat_turns: self.count("SELECT COUNT(*) FROM chat_turns").await?,
        })
    }

    /// The store's file, for the SQLite backend.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// The redacted URL, for the PostgreSQL backend.
    pub fn postgres_shown(&self) -> Option<&str> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p.shown()),
        }
    }
}

trait DefaultClaim {
    fn unwrap_or_default_claim(self) -> (String, ClaimState);
}

impl DefaultClaim for Option<(String, ClaimState)> {
    /// The row vanished between insert and read (only a manual delete does that): report it
    /// as answered so nothing answers twice.
    fn unwrap_or_default_claim(self) -> (String, ClaimState) {
        self.unwrap_or_else(|| (String::new(), ClaimState::Answered))
    }
}

type LegacyRows = (Vec<Vec<Val>>, Vec<Vec<Val>>);

fn read_legacy(path: &Path) -> Result<LegacyRows, StoreError> {
    let err = |source| StoreError::Legacy {
        path: path.to_path_buf(),
        source,
    };
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
    let cell = |r: &rusqlite::Row, i: usize| -> rusqlite::Result<Val> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Val::Null,
            rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
            rusqlite::types::ValueRef::Real(v) => Val::Int(v as i64),
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                Val::Text(String::from_utf8_lossy(b).into_owned())
            }
        })
    };
    let read = |sql: &str, n: usize| -> rusqlite::Result<Vec<Vec<Val>>> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map([], |r| {
            (0..n)
                .map(|i| cell(r, i))
                .collect::<rusqlite::Result<Vec<Val>>>()
        })?;
        rows.collect()
    };
    // Regenerated answers point at their first one: copy firsts first.
    let answers = read(
        "SELECT record_id, message_id, robot, conversation_id, conversation_type, user_id, staff_id,
                user_nick, question, answer, regenerated_from, answered_at_ms
         FROM answers ORDER BY regenerated_from IS NOT NULL, answered_at_ms",
        12,
    )
    .map_err(err)?;
    let feedback = read(
        "SELECT record_id, user_id, rating, rated_at_ms FROM feedback",
        4,
    )
    .map_err(err)?;
    Ok((answers, feedback))
}

/// How long a claim or an open card stays this host's without a heartbeat; after it, another
/// host (a redelivery or the sweeper) may take the message or finalize the card.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The setting (process environment or the app's `.env`) that overrides [`DEFAULT_LEASE`],
/// in whole seconds.
pub const LEASE_VAR: &str = "JITNODE_STORE_LEASE_SECS";

static PROCESS_STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();

/// Registers the store `jitnode run` opened, for the elements it loads (the robot). Only the
/// first call counts: one process, one store.
pub fn set_process_store(store: Store) {
    let _ = PROCESS_STORE.set(store);
}

/// The store registered by [`set_process_store`], if any.
pub fn process_store() -> Option<Store> {
    PROCESS_STORE.get().cloned()
}

/// This process's host id in claims and cards: host name, pid and a random part (a host
/// restarted with the same pid is still a different owner).
pub fn host_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{host}-{}-{nanos:08x}", std::process::id())
    })
}

impl Store {
    /// Drops this host's claim on a message it could not answer, so a redelivery may claim
    /// it at once.
    pub async fn release_claim(&self, msg_key: &str, host: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM inbox WHERE msg_key = $1 AND host = $2 AND state <> 'answered'",
            vec![t(msg_key), t(host)],
        )
        .await?;
        Ok(())
    }
}
