//! The shared backend: PostgreSQL through tokio-postgres, with a small pool of our own.
//!
//! Why no pool crate: a host needs a few connections, a timeout and "drop a closed
//! connection, dial a new one"; that is a few dozen lines here, against a further dependency
//! tree for deadpool. A server restart closes every pooled connection; the next statement
//! on a slot notices (`is_closed`) and redials, so the host recovers without restarting.
//!
//! Why statements share connections instead of checking one out: a tokio-postgres client
//! pipelines concurrent statements, so a claim never waits for a free connection behind
//! other statements' round trips (checkout queueing was most of the claim p99 under load);
//! it is sent at once on the next slot. Each connection keeps its prepared statements, so a
//! statement is one round trip (bind + execute) instead of two (parse + describe first).
//! Only migrations need a transaction; they run on a connection of their own.
//!
//! Claims have connections of their own too ([`Lane::Claim`]), so that a claim (on the path
//! to the ACK) is not pipelined behind a sweep's or a record's statements on a shared slot
//! and does not wait for their round trips.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::schema::{self, MIGRATIONS_TABLE, PG_MIGRATION_LOCK};
use crate::{lock, now_ms, Cell, Lane, Row, StoreError, Val};

/// Connections per host shared by all statements but claims.
const POOL_SIZE: usize = 4;
/// Connections for claims only, after the shared ones: two, so that a burst of claims (a
/// reconnect's held pushes, redeliveries) runs on two server backends at once.
const CLAIM_SLOTS: usize = 2;

#[derive(Clone)]
pub(crate) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    shown: String,
    timeout: Duration,
    /// Each slot's live connection (the shared ones, then [`CLAIM_SLOTS`]); the async lock
    /// is held only to read it or, when it is closed, while one task redials (the others
    /// on that slot wait for that dial).
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
}

impl Postgres {
    /// Builds the pool and dials one connection, so an unreachable server fails at start.
    pub(crate) async fn open(
        raw: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<Postgres, StoreError> {
        let mut config: Config =
            raw.parse()
                .map_err(|e: tokio_postgres::Error| StoreError::BadUrl {
                    setting: "store URL".into(),
                    shown: shown.to_string(),
                    reason: e.to_string(),
                })?;
        config.connect_timeout(timeout);
        config.application_name("jitnode");
        let pg = Postgres {
            inner: Arc::new(Inner {
                config,
                shown: shown.to_string(),
                timeout,
                slots: (0..POOL_SIZE + CLAIM_SLOTS)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
            }),
        };
        pg.conn(Lane::Shared).await?;
        Ok(pg)
    }

    /// Dials every slot and prepares `hot` on each, so the first messages after start do
    /// not pay for connecting and parsing (call after migrating: the tables must exist).
    pub(crate) async fn warm(&self, hot: &[&'static str]) -> Result<(), StoreError> {
        for i in 0..POOL_SIZE + CLAIM_SLOTS {
            let c = self.conn_at(i).await?;
            for sql in hot {
                self.statement(&c, sql).await?;
            }
        }
        Ok(())
    }

    pub(crate) fn shown(&self) -> &str {
        &self.inner.shown
    }

    fn err(&self, source: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            shown: self.inner.shown.clone(),
            source,
        }
    }

    fn timed_out(&self, what: &'static str) -> StoreError {
        StoreError::Timeout {
            shown: self.inner.shown.clone(),
            what,
            after: self.inner.timeout,
        }
    }

    async fn dial(&self) -> Result<Client, StoreError> {
        let (client, conn) =
            tokio::time::timeout(self.inner.timeout, self.inner.config.connect(NoTls))
                .await
                .map_err(|_| self.timed_out("connecting"))?
                .map_err(|e| self.err(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "store connection ended");
            }
        });
        Ok(client)
    }

    /// The next connection of `lane` (round robin within it).
    async fn conn(&self, lane: Lane) -> Result<Arc<Conn>, StoreError> {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let i = match lane {
            Lane::Claim => POOL_SIZE + n % CLAIM_SLOTS,
            Lane::Shared => n % POOL_SIZE,
        };
        self.conn_at(i).await
    }

    /// Slot `i`'s connection, redialed if the server closed it.
    async fn conn_at(&self, i: usize) -> Result<Arc<Conn>, StoreError> {
        let mut slot = tokio::time::timeout(self.inner.timeout, self.inner.slots[i].lock())
            .await
            .map_err(|_| self.timed_out("waiting for a connection"))?;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let c = Arc::new(Conn {
            client: self.dial().await?,
            prepared: Mutex::new(HashMap::new()),
        });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// `sql` prepared on `c`, once per connection.
    async fn statement(&self, c: &Conn, sql: &'static str) -> Result<Statement, StoreError> {
        let cached = lock(&c.prepared).get(sql).cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let s = tokio::time::timeout(self.inner.timeout, c.client.prepare(sql))
            .await
            .map_err(|_| self.timed_out("preparing a statement"))?
            .map_err(|e| self.err(e))?;
        lock(&c.prepared).insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) async fn exec(
        &self,
        lane: Lane,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<u64, StoreError> {
        let c = self.conn(lane).await?;
        let st = self.statement(&c, sql).await?;
        let refs = pg_params(&params);
        tokio::time::timeout(self.inner.timeout, c.client.execute(&st, &refs))
            .await
            .map_err(|_| self.timed_out("running a statement"))?
            .map_err(|e| self.err(e))
    }

    pub(crate) async fn query(
        &self,
        lane: Lane,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<Vec<Row>, StoreError> {
        let c = self.conn(lane).await?;
        let st = self.statement(&c, sql).await?;
        let refs = pg_params(&params);
        let rows = tokio::time::timeout(self.inner.timeout, c.client.query(&st, &refs))
            .await
            .map_err(|_| self.timed_out("running a query"))?
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let cell = match *col.type_() {
                    Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int)),
                    Type::INT4 => r
                        .try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|v| Cell::Int(v.into()))),
                    _ => r.try_get::<_, Option<String>>(i).map(|v| v.map(Cell::Text)),
                }
                .map_err(|e| self.err(e))?;
                row.push(cell.unwrap_or(Cell::Null));
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Applies the missing steps in one transaction holding an advisory lock, so hosts
    /// starting together wait for each other and each step runs once.
    pub(crate) async fn migrate(&self) -> Result<i64, StoreError> {
        // A transaction needs a connection to itself, not one the slots share.
        let mut client = self.dial().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_MIGRATION_LOCK])
            .await
            .map_err(|e| self.err(e))?;
        tx.batch_execute(MIGRATIONS_TABLE)
            .await
            .map_err(|e| self.err(e))?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        if current > schema::latest() {
            return Err(StoreError::NewerSchema {
                shown: self.inner.shown.clone(),
                found: current,
                known: schema::latest(),
            });
        }
        for m in schema::MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.batch_execute(m.postgres)
                .await
                .map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
                &[&m.version, &now_ms()],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(schema::latest())
    }
}

const NULL_TEXT: Option<String> = None;

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|v| match v {
            Val::Text(s) => s as &(dyn ToSql + Sync),
            Val::Int(i) => i as &(dyn ToSql + Sync),
            Val::Null => &NULL_TEXT as &(dyn ToSql + Sync),
        })
        .collect()
}
