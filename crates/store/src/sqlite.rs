//! The embedded backend: one SQLite file in WAL mode with a busy timeout, so several hosts on
//! one machine and `jitnode` commands can share it. Calls run on tokio's blocking pool.
//!
//! A claim (on the path to the ACK) goes ahead of queued statements: every other call first
//! takes a queue lock, so at most one of them competes with claims for the connection, and
//! a claim waits for at most one statement instead of a whole answer burst's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;

use crate::schema::{self, MIGRATIONS_TABLE};
use crate::{lock, now_ms, Cell, Lane, Row, StoreError, Val};

#[derive(Clone)]
pub(crate) struct Sqlite {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    /// Taken before `conn` by every call but claims (see the module doc).
    queue: Arc<Mutex<()>>,
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Val::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

impl Sqlite {
    pub(crate) async fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let path = path.to_path_buf();
        let p2 = path.clone();
        let conn = run_blocking(move || open_conn(&p2)).await?;
        Ok(Sqlite {
            path,
            conn: Arc::new(Mutex::new(conn)),
            queue: Arc::default(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    async fn with<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        run_blocking(move || {
            // A panic inside a call cannot leave the connection half-used in a way SQLite
            // does not itself roll back; `lock` keeps serving.
            let _turn = match lane {
                Lane::Claim => None,
                Lane::Shared => Some(lock(&this.queue)),
            };
            let mut c = lock(&this.conn);
            f(&mut c).map_err(|e| this.err(e))
        })
        .await
    }

    pub(crate) async fn exec(
        &self,
        lane: Lane,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<u64, StoreError> {
        self.with(lane, move |c| {
            let n = c
                .prepare_cached(&numbered(sql))?
                .execute(rusqlite::params_from_iter(params.iter()))?;
            Ok(n as u64)
        })
        .await
    }

    pub(crate) async fn query(
        &self,
        lane: Lane,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<Vec<Row>, StoreError> {
        self.with(lane, move |c| {
            let mut st = c.prepare_cached(&numbered(sql))?;
            let n = st.column_count();
            let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let mut row = Vec::with_capacity(n);
                for i in 0..n {
                    row.push(match r.get_ref(i)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(v) => Cell::Int(v),
                        ValueRef::Real(v) => Cell::Int(v as i64),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Cell::Text(String::from_utf8_lossy(t).into_owned())
                        }
                    });
                }
                out.push(row);
            }
            Ok(out)
        })
        .await
    }

    /// Applies the missing steps under SQLite's write lock; returns the version after.
    pub(crate) async fn migrate(&self) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let version = self
            .with(Lane::Shared, move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute_batch(MIGRATIONS_TABLE)?;
                let current: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )?;
                if current > schema::latest() {
                    return Ok(Err(current));
                }
                for m in schema::MIGRATIONS.iter().filter(|m| m.version > current) {
                    tx.execute_batch(m.sqlite)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
                        rusqlite::params![m.version, now_ms()],
                    )?;
                }
                tx.commit()?;
                Ok(Ok(schema::latest()))
            })
            .await?;
        version.map_err(|found| StoreError::NewerSchema {
            shown: format!("sqlite:{}", path.display()),
            found,
            known: schema::latest(),
        })
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(err)?;
    // Hosts sharing the file wait for each other's short writes instead of failing.
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(err)?;
    Ok(conn)
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// The shared SQL's `$n` parameters as SQLite's `?n`: SQLite reads `$1` as a *named*
/// parameter numbered by first appearance, which breaks statements that use `$3` before `$1`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}
