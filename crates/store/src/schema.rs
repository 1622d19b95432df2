//! Versioned migrations, shared by both backends (each step has an SQLite and a PostgreSQL
//! spelling only where the dialects differ). Applied in order inside one transaction that
//! holds a lock across hosts: SQLite's write lock (`BEGIN IMMEDIATE`) or a PostgreSQL
//! transaction-scoped advisory lock, so two hosts starting at once apply each step once.

/// One migration step.
pub struct Migration {
    pub version: i64,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Key of the PostgreSQL advisory lock held while migrating ("jitnode" in ASCII, truncated).
pub const PG_MIGRATION_LOCK: i64 = 0x006a_6974_6e6f_6465;

/// The answers and feedback tables: the robot's records, here and in the old
/// `robot-records.sqlite3` (that file's schema, user_version 1, which
/// `Store::import_legacy_records` reads). A macro, so that the released migration
/// [`V1_COMMON`] stays the same text.
macro_rules! records_tables {
    () => {
        "CREATE TABLE answers (
    record_id        TEXT PRIMARY KEY NOT NULL,
    message_id       TEXT NOT NULL UNIQUE,
    robot            TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    conversation_type TEXT NOT NULL CHECK (conversation_type IN ('1', '2')),
    user_id          TEXT NOT NULL,
    staff_id         TEXT,
    user_nick        TEXT NOT NULL DEFAULT '',
    question         TEXT NOT NULL,
    answer           TEXT NOT NULL,
    regenerated_from TEXT REFERENCES answers(record_id),
    answered_at_ms   BIGINT NOT NULL
);
CREATE INDEX answers_by_time ON answers(answered_at_ms);
CREATE TABLE feedback (
    record_id   TEXT NOT NULL REFERENCES answers(record_id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    rating      TEXT NOT NULL
                CHECK (rating IN ('very_helpful', 'helpful', 'unhelpful', 'very_unhelpful')),
    rated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (record_id, user_id)
);
CREATE INDEX feedback_by_time ON feedback(rated_at_ms);
"
    };
}

/// The DDL of the answers and feedback tables (see `records_tables!`). Integer columns are
/// `BIGINT`, which SQLite stores as INTEGER.
pub const RECORDS_TABLES: &str = records_tables!();

const V1_COMMON: &str = concat!(
    "
CREATE TABLE inbox (
    msg_key        TEXT PRIMARY KEY NOT NULL,
    host           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('claimed', 'answering', 'answered', 'failed')),
    claimed_at_ms  BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX inbox_open ON inbox(state, lease_until_ms);
CREATE TABLE callbacks (
    callback_key TEXT PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    seen_at_ms   BIGINT NOT NULL
);
CREATE TABLE cards (
    card_id        TEXT PRIMARY KEY NOT NULL,
    owner_host     TEXT NOT NULL,
    msg_key        TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open', 'finalizing', 'done', 'failed')),
    last_text      TEXT NOT NULL DEFAULT '',
    updated_at_ms  BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL
);
CREATE INDEX cards_open ON cards(state, lease_until_ms);
",
    records_tables!(),
    "CREATE TABLE imports (
    source      TEXT PRIMARY KEY NOT NULL,
    rows_copied BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL
);
"
);

/// All steps, oldest first. Never edit a released step; add a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: V1_COMMON,
        postgres: V1_COMMON,
    },
    Migration {
        version: 2,
        sqlite: "CREATE TABLE chat_turns (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_id  TEXT NOT NULL,
            question TEXT NOT NULL,
            answer   TEXT NOT NULL,
            at_ms    BIGINT NOT NULL
        );
        CREATE INDEX chat_turns_by_chat ON chat_turns(chat_id, id);",
        postgres: "CREATE TABLE chat_turns (
            id       BIGSERIAL PRIMARY KEY,
            chat_id  TEXT NOT NULL,
            question TEXT NOT NULL,
            answer   TEXT NOT NULL,
            at_ms    BIGINT NOT NULL
        );
        CREATE INDEX chat_turns_by_chat ON chat_turns(chat_id, id);",
    },
    // Open cards say whose they are and what was asked, so a sweeping host can finalize
    // a dead host's card in the question's language with that robot's credentials.
    Migration {
        version: 3,
        sqlite: V3_CARD_OWNER,
        postgres: V3_CARD_OWNER,
    },
    // The inbox keeps each claimed message, so a host can answer one that a dead host
    // claimed (and ACKed) but never started: it is not redelivered.
    Migration {
        version: 4,
        sqlite: V4_INBOX_MESSAGE,
        postgres: V4_INBOX_MESSAGE,
    },
    // The sweeper asks whether an answering message has a card (see
    // `Store::take_stale_claims`).
    Migration {
        version: 5,
        sqlite: V5_CARDS_BY_MESSAGE,
        postgres: V5_CARDS_BY_MESSAGE,
    },
];

const V5_CARDS_BY_MESSAGE: &str = "CREATE INDEX cards_by_message ON cards(msg_key);";

const V4_INBOX_MESSAGE: &str = "
ALTER TABLE inbox ADD COLUMN robot TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN message TEXT;
CREATE INDEX inbox_by_robot ON inbox(robot, state, lease_until_ms);
";

const V3_CARD_OWNER: &str = "
ALTER TABLE cards ADD COLUMN robot TEXT NOT NULL DEFAULT '';
ALTER TABLE cards ADD COLUMN question TEXT NOT NULL DEFAULT '';
CREATE INDEX cards_by_robot ON cards(robot, state, lease_until_ms);
";

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version       BIGINT PRIMARY KEY NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";
