//! The token store: the only place that builds queries. Everything above it works with
//! [`TokenRecord`] and never sees sea-orm entities.

mod entities;
mod fleet;
mod inline;
mod issuers;
mod tokens;
mod usage;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm::{Statement, TransactionTrait};

pub use fleet::{FleetAdmission, FleetRefusal, RELAY_TTL, RelayInfo, Release, rate_interval_us};
pub use inline::InlineCountStats;
pub use issuers::unused_fingerprint;
pub use tokens::{Consume, NewToken, TokenRecord, TokenStatus, TokenUpdate};
pub use usage::{UsageFilter, UsageGroup, UsageRecord, UsageRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no token with id {0}")]
    NotFound(String),
    #[error("the id prefix {prefix} matches {count} tokens; give more characters")]
    AmbiguousId { prefix: String, count: usize },
    #[error("an id must be hex characters: {0}")]
    BadId(String),
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    BadUrl,
    #[error("{0} already exists")]
    Exists(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] DbErr),
    #[error("the database holds a value this version cannot read: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        StoreError::Unavailable(e)
    }
}

/// How a database URL is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations before use (every command but `migrate`).
    Apply,
    /// Leave the schema alone (`migrate` reports before it acts).
    Leave,
}

#[derive(Debug, Clone)]
pub struct MigrationState {
    pub name: String,
    pub applied: bool,
}

#[derive(Clone)]
pub struct Store {
    /// Reads.
    db: DatabaseConnection,
    /// Writes. On SQLite a pool of one connection: writers take turns in the pool's queue
    /// instead of in SQLite's busy handler (which sleeps), and the connection's page cache
    /// stays valid from one write to the next (SQLite drops a connection's cache whenever
    /// another connection has written). On PostgreSQL the same pool as reads.
    writer: DatabaseConnection,
    /// SQLite on a file: call counts written on the calling thread when that needs no
    /// waiting (see `inline`).
    inline: Option<std::sync::Arc<inline::InlineCounts>>,
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.db.get_database_backend())
            .finish()
    }
}

impl Store {
    pub async fn connect(url: &str, migrations: Migrations) -> Result<Self, StoreError> {
        Self::connect_with(url, migrations, PG_CONNECTIONS).await
    }

    /// [`connect`](Self::connect) with at most `pg_connections` connections on PostgreSQL
    /// (SQLite's pools are fixed).
    pub async fn connect_with(
        url: &str,
        migrations: Migrations,
        pg_connections: u32,
    ) -> Result<Self, StoreError> {
        let is_sqlite = url.starts_with("sqlite:");
        if !is_sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(StoreError::BadUrl);
        }
        let mut options = ConnectOptions::new(url.to_string());
        options
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every connection it hands out by default: one more round trip
            // (to PostgreSQL, or to SQLite's connection thread) before every query. Only a
            // connection that sat idle long enough to have been dropped is checked first.
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
            .sqlx_logging(false);
        let store = if is_sqlite {
            // WAL lets readers run beside the writer; NORMAL sync keeps every commit across a
            // process crash (a power loss may lose the last commits).
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .create_if_missing(true)
            });
            let writer = Database::connect(options.clone().max_connections(1).to_owned()).await?;
            let db = Database::connect(options.max_connections(8).to_owned()).await?;
            Store {
                db,
                writer,
                inline: None,
                url: url.into(),
            }
        } else {
            let db = Database::connect(options.max_connections(pg_connections.max(1)).to_owned())
                .await?;
            Store {
                writer: db.clone(),
                db,
                inline: None,
                url: url.into(),
            }
        };
        if migrations == Migrations::Apply {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Lets call counts be written on the calling thread (SQLite on a file; elsewhere a
    /// no-op). For the relay, after migrations: the statements need the tables.
    pub fn with_inline_counts(mut self) -> Result<Self, StoreError> {
        if let Some(path) = self.sqlite_file() {
            self.inline = Some(std::sync::Arc::new(inline::InlineCounts::open(&path)?));
        }
        Ok(self)
    }

    /// How counts were written, when they can be written inline.
    pub fn inline_count_stats(&self) -> Option<InlineCountStats> {
        self.inline.as_ref().map(|i| i.stats())
    }

    fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        use sea_orm::sqlx::sqlite::SqliteConnectOptions;
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return None;
        }
        let options: SqliteConnectOptions = self.url.parse().ok()?;
        let path = options.get_filename();
        // An in-memory database is private to its connection: nothing to share.
        (!path.as_os_str().is_empty() && path.as_os_str() != ":memory:").then(|| path.to_path_buf())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }

    /// Applies pending migrations; returns the names applied. On PostgreSQL an advisory lock
    /// serializes processes that start together.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.writer.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(7310571209485217)",
            ))
            .await?;
        }
        let pending: Vec<String> = Migrator::get_pending_migrations(&txn)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        if !pending.is_empty() {
            Migrator::up(&txn, None).await?;
        }
        txn.commit().await?;
        Ok(pending)
    }

    pub async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        Ok(Migrator::get_migration_with_status(&self.db)
            .await?
            .iter()
            .map(|m| MigrationState {
                name: m.name().to_string(),
                applied: m.status() == migration::MigrationStatus::Applied,
            })
            .collect())
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::Unavailable)
    }

    pub async fn close(self) {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            let _ = self.writer.close().await;
        }
        let _ = self.db.close().await;
    }
}

impl Store {
    /// SQLite: checkpoints the write-ahead log every few seconds. With a relay reading and
    /// writing all the time, SQLite's own checkpoints may never find a moment to restart the
    /// log, which then grows without bound (and slows every read). The checkpoint runs on a
    /// connection of its own with a short busy timeout, so that it can hold writers back
    /// for at most that long; when readers are in the way it simply tries again later.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let url = self.url.clone();
        let sqlite = self.db.get_database_backend() == DbBackend::Sqlite;
        tokio::spawn(async move {
            if !sqlite {
                return;
            }
            let mut options = ConnectOptions::new(url.to_string());
            options
                .max_connections(1)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|o| o.busy_timeout(CHECKPOINT_BUSY_TIMEOUT));
            let db = match Database::connect(options).await {
                Ok(db) => db,
                Err(e) => {
                    tracing::warn!(error = %e, "no WAL maintenance connection");
                    return;
                }
            };
            let mut tick = tokio::time::interval(WAL_CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = db
                    .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                    .await
                {
                    tracing::debug!(error = %e, "WAL checkpoint did not run");
                }
            }
        })
    }
}

/// Splits `items` into pieces for multi-row statements: full pieces of `max` (a power of
/// two), then the rest in descending powers of two. The statement's text depends on its row
/// count, and every text a connection runs stays prepared in its statement cache (100 per
/// connection): with any count from 1 to 512, SQLite held ~14 MB of compiled usage
/// inserts. Powers of two bound the distinct texts to log2(max) + 1.
pub(crate) fn statement_pieces<T>(items: &[T], max: usize) -> Vec<&[T]> {
    debug_assert!(max.is_power_of_two());
    let mut pieces = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let len = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (piece, tail) = rest.split_at(len);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// PostgreSQL connections a process keeps open at most, unless told otherwise.
pub const PG_CONNECTIONS: u32 = 32;
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token of OpenAI's with only a call limit, for tests of the counting rule.
    pub(crate) fn new_token(max_calls: Option<i64>) -> tokens::NewToken {
        let id = crate::token::TokenId::random().to_string();
        tokens::NewToken {
            fingerprint: format!("fp-{id}"),
            id,
            name: None,
            route: crate::providers::Route::new("openai", None, None).unwrap(),
            kid: "k".into(),
            key_hint: "…".into(),
            limits: crate::policy::Limits {
                max_calls,
                ..Default::default()
            },
        }
    }

    /// A store on a fresh SQLite file (`t.db` in the directory) that counts inline.
    pub(crate) async fn sqlite_with_inline_counts() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, Migrations::Apply)
            .await
            .unwrap()
            .with_inline_counts()
            .unwrap();
        (dir, store)
    }

    /// Two updates made from the same reading of a token, each of one limit: the second
    /// leaves the first's limit as the first set it (only what an update changes is
    /// written).
    #[tokio::test]
    async fn an_update_writes_only_the_limits_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, Migrations::Apply).await.unwrap();
        let read = store.insert_token(&new_token(Some(5))).await.unwrap();
        let mut calls = read.limits.clone();
        calls.max_calls = Some(9);
        let mut rpm = read.limits.clone();
        rpm.policy.rpm = Some(30);
        for after in [calls, rpm] {
            let update = tokens::TokenUpdate {
                name: None,
                before: read.limits.clone(),
                limits: after,
            };
            store.update_token(&read.id, &update).await.unwrap();
        }
        let now = store.get_token(&read.id).await.unwrap();
        assert_eq!(now.limits.max_calls, Some(9), "the first update was undone");
        assert_eq!(now.limits.policy.rpm, Some(30));
    }

    /// The inline SQLite count and the asynchronous one are built from one statement; this
    /// checks that they also answer alike, and leave the same row, case by case.
    #[tokio::test]
    async fn the_inline_and_the_async_count_agree() {
        let (_dir, store) = sqlite_with_inline_counts().await;
        let inline = store.inline.clone().expect("inline counts on a file");
        // (call limit, calls used, revoked)
        let cases = [
            (None, 0, false),
            (Some(2), 1, false),
            (Some(2), 2, false),
            (Some(5), 0, true),
        ];
        for (max, used, revoked) in cases {
            let mut answers = Vec::new();
            for inline_path in [true, false] {
                let t = store.insert_token(&new_token(max)).await.unwrap();
                for _ in 0..used {
                    assert_eq!(store.try_consume(&t.id).await.unwrap(), Consume::Counted);
                }
                if revoked {
                    store.revoke(&t.id).await.unwrap();
                }
                let outcome = if inline_path {
                    inline.try_consume(&[&t.id]).expect("not busy").unwrap()[0]
                } else {
                    store.try_consume(&t.id).await.unwrap()
                };
                let row = store.get_token(&t.id).await.unwrap();
                let given_back = if inline_path {
                    inline.give_back(&t.id).expect("not busy").unwrap();
                    store.get_token(&t.id).await.unwrap().used_calls
                } else {
                    store.give_back(&t.id).await.unwrap();
                    store.get_token(&t.id).await.unwrap().used_calls
                };
                answers.push((
                    outcome,
                    row.used_calls,
                    row.last_used_at.is_some(),
                    given_back,
                ));
            }
            assert_eq!(answers[0], answers[1], "{max:?} {used} {revoked}");
        }
        let missing = "0".repeat(32);
        assert_eq!(
            inline.try_consume(&[&missing]).unwrap().unwrap(),
            [Consume::Missing]
        );
        assert_eq!(store.try_consume(&missing).await.unwrap(), Consume::Missing);
        // A give-back never goes below zero, on either path.
        let t = store.insert_token(&new_token(None)).await.unwrap();
        inline.give_back(&t.id).unwrap().unwrap();
        store.give_back(&t.id).await.unwrap();
        assert_eq!(store.get_token(&t.id).await.unwrap().used_calls, 0);
    }

    /// Several calls counted inline in one transaction: each is decided by the count rule in
    /// order (the second call of a token with one call left is refused), and a transaction
    /// that cannot take SQLite's write lock counts nothing and answers `None` at once.
    #[tokio::test]
    async fn calls_counted_together_are_each_decided_in_order() {
        let (dir, store) = sqlite_with_inline_counts().await;
        let path = dir.path().join("t.db");
        let inline = store.inline.clone().expect("inline counts on a file");
        let open = store.insert_token(&new_token(None)).await.unwrap();
        let last = store.insert_token(&new_token(Some(1))).await.unwrap();
        let revoked = store.insert_token(&new_token(Some(9))).await.unwrap();
        store.revoke(&revoked.id).await.unwrap();
        let missing = "0".repeat(32);
        let ids = [
            &open.id,
            &last.id,
            &open.id,
            &last.id,
            &revoked.id,
            &missing,
            &open.id,
        ];
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        let outcomes = inline.try_consume(&ids).expect("not busy").unwrap();
        use Consume::*;
        assert_eq!(
            outcomes,
            [
                Counted, Counted, Counted, Exhausted, Revoked, Missing, Counted
            ]
        );
        assert_eq!(store.get_token(&open.id).await.unwrap().used_calls, 3);
        assert_eq!(store.get_token(&last.id).await.unwrap().used_calls, 1);
        assert_eq!(store.get_token(&revoked.id).await.unwrap().used_calls, 0);

        // A token's calls of one turn are counted together when they fit, and otherwise
        // each in order: of five calls with three left, the first three.
        let three = store.insert_token(&new_token(Some(3))).await.unwrap();
        let four = store.insert_token(&new_token(Some(4))).await.unwrap();
        let ids = [
            &three.id, &four.id, &three.id, &three.id, &four.id, &three.id, &four.id, &three.id,
            &four.id,
        ];
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        let outcomes = inline.try_consume(&ids).expect("not busy").unwrap();
        assert_eq!(
            outcomes,
            [
                Counted, Counted, Counted, Counted, Counted, Exhausted, Counted, Exhausted, Counted
            ]
        );
        assert_eq!(store.get_token(&three.id).await.unwrap().used_calls, 3);
        assert_eq!(store.get_token(&four.id).await.unwrap().used_calls, 4);
        let outcomes = inline.try_consume(&[&four.id, &four.id]).unwrap().unwrap();
        assert_eq!(outcomes, [Exhausted, Exhausted]);
        assert_eq!(store.get_token(&four.id).await.unwrap().used_calls, 4);

        // Another writer holds SQLite's write lock: nothing is counted, and no wait.
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let began = std::time::Instant::now();
        assert!(inline.try_consume(&[&open.id, &open.id]).is_none());
        assert!(began.elapsed() < std::time::Duration::from_millis(500));
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(store.get_token(&open.id).await.unwrap().used_calls, 3);
        assert_eq!(inline.stats().deferred, 2);
    }

    #[test]
    fn pieces_are_powers_of_two_and_keep_every_item_in_order() {
        for n in 0..=1100usize {
            let items: Vec<usize> = (0..n).collect();
            let pieces = statement_pieces(&items, 64);
            assert!(
                pieces
                    .iter()
                    .all(|p| p.len().is_power_of_two() && p.len() <= 64)
            );
            assert_eq!(pieces.concat(), items);
            // Full pieces first, then at most one piece of each smaller size.
            let small: Vec<usize> = pieces.iter().map(|p| p.len()).filter(|l| *l < 64).collect();
            assert!(small.windows(2).all(|w| w[0] > w[1]), "{n}: {small:?}");
        }
        assert_eq!(statement_pieces(&[0u8; 7], 64).len(), 3);
    }
}
