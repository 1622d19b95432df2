//! The shared backend: PostgreSQL through tokio-postgres, with a small pool of our own.
//!
//! Why no pool crate: a host needs a few connections, a checkout timeout and "drop a closed
//! connection, dial a new one"; that is ~60 lines here, against a further dependency tree for
//! deadpool. A server restart closes every pooled connection; the next checkout notices
//! (`is_closed`) and reconnects, so the host recovers without restarting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls};

use crate::schema::{self, MIGRATIONS_TABLE, PG_MIGRATION_LOCK};
use crate::{now_ms, Cell, Row, StoreError, Val};

/// Connections per host.
const POOL_SIZE: usize = 4;

#[derive(Clone)]
pub(crate) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    shown: String,
    timeout: Duration,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

struct Lease {
    client: Option<Client>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Lease {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Set at checkout and only taken in drop.
        self.client.as_ref().expect("a checked-out connection")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(c);
            }
        }
    }
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
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(POOL_SIZE)),
            }),
        };
        drop(pg.get().await?);
        Ok(pg)
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

    async fn get(&self) -> Result<Lease, StoreError> {
        let permit = tokio::time::timeout(
            self.inner.timeout,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| self.timed_out("waiting for a free connection"))?
        // The semaphore is never closed.
        .expect("pool semaphore open");
        let reuse = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match reuse {
            Some(c) => c,
            None => {
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
                client
            }
        };
        Ok(Lease {
            client: Some(client),
            pool: self.inner.clone(),
            _permit: permit,
        })
    }

    pub(crate) async fn exec(
        &self,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<u64, StoreError> {
        let c = self.get().await?;
        let refs = pg_params(&params);
        tokio::time::timeout(self.inner.timeout, c.execute(sql, &refs))
            .await
            .map_err(|_| self.timed_out("running a statement"))?
            .map_err(|e| self.err(e))
    }

    pub(crate) async fn query(
        &self,
        sql: &'static str,
        params: Vec<Val>,
    ) -> Result<Vec<Row>, StoreError> {
        let c = self.get().await?;
        let refs = pg_params(&params);
        let rows = tokio::time::timeout(self.inner.timeout, c.query(sql, &refs))
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
        let mut c = self.get().await?;
        let client = c.client.as_mut().expect("a checked-out connection");
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
