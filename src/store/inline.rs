//! SQLite: call counts written on the calling thread.
//!
//! Counting a call is one small `UPDATE` that must commit before the call is forwarded. Sent
//! through sqlx, it crosses to the connection's own thread and back (two task switches and
//! a channel each way), which was about 0.15 ms of the relay's added latency at
//! concurrency 1. With WAL and `synchronous = NORMAL` a commit does not wait for the disk,
//! so the statement itself takes microseconds: here it runs directly, on one connection of
//! its own, when that can be done without waiting.
//!
//! It never waits. The connection is taken with `try_lock`, and SQLite's busy timeout on it
//! is zero: when another thread is using it, or another connection or process holds
//! SQLite's write lock, the attempt answers [`None`] at once and the caller takes the
//! asynchronous path, which waits off the runtime's threads. A lock held elsewhere therefore
//! never stalls a worker thread.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params_from_iter};
use sea_orm::sea_query::{SqliteQueryBuilder, Value, Values};

use super::{Consume, StoreError, tokens};

pub(super) struct InlineCounts {
    conn: Mutex<Connection>,
    consume: ConsumeTemplate,
    counted_inline: AtomicU64,
    counted_deferred: AtomicU64,
    commits: AtomicU64,
}

/// How many calls were counted inline, in how many commits, and how many were left to the
/// asynchronous path (given-back calls are not included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InlineCountStats {
    pub inline: u64,
    pub commits: u64,
    pub deferred: u64,
}

impl InlineCounts {
    /// Opens the database file the store's pools use (which created and migrated it).
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        // Per-connection settings; the journal mode (WAL) is the database's own, set by the
        // pools. The busy timeout is already zero by default: set it anyway, since it is
        // what makes an attempt never wait.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        Ok(Self {
            conn: Mutex::new(conn),
            consume: ConsumeTemplate::new(),
            counted_inline: AtomicU64::new(0),
            counted_deferred: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        })
    }

    /// Counts calls (one token id each, in order) in one transaction by the rule of
    /// `Store::try_consume` (not revoked, calls left), and answers each call's outcome; or
    /// answers `None` if that cannot be done without waiting. One commit for many calls:
    /// SQLite's file locks and WAL write are paid once.
    pub(super) fn try_consume(&self, ids: &[&str]) -> Option<Result<Vec<Consume>, StoreError>> {
        let outcome = self.attempt(|conn| {
            // Only once the connection is ours: a busy attempt costs no clock or formatting.
            let now = sqlite_time(Utc::now());
            if let [id] = ids {
                // One call: its statement commits on its own.
                return Ok(vec![self.consume.run(conn, id, 1, &now)?]);
            }
            immediate_transaction(conn, |txn| {
                let mut outcomes = vec![Consume::Missing; ids.len()];
                // A token's calls of the turn are counted by one statement when they all fit
                // under its limit; otherwise each is counted alone, in the order they came,
                // by the same rule. A token that a page calls in parallel costs one statement.
                for (id, calls) in by_token(ids) {
                    let n = i64::try_from(calls.len()).expect("fewer calls than i64::MAX");
                    let together = n > 1 && self.consume.run(txn, id, n, &now)? == Consume::Counted;
                    for at in calls {
                        outcomes[at] = if together {
                            Consume::Counted
                        } else {
                            self.consume.run(txn, id, 1, &now)?
                        };
                    }
                }
                Ok(outcomes)
            })
        });
        let tally = if outcome.is_some() {
            self.commits.fetch_add(1, Ordering::Relaxed);
            &self.counted_inline
        } else {
            &self.counted_deferred
        };
        tally.fetch_add(ids.len() as u64, Ordering::Relaxed);
        outcome
    }

    pub(super) fn give_back(&self, id: &str) -> Option<Result<(), StoreError>> {
        self.attempt(|conn| {
            run(
                conn,
                tokens::give_back_statement(id).build(SqliteQueryBuilder),
            )?;
            Ok(())
        })
    }

    pub(super) fn stats(&self) -> InlineCountStats {
        InlineCountStats {
            inline: self.counted_inline.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            deferred: self.counted_deferred.load(Ordering::Relaxed),
        }
    }

    fn attempt<R>(
        &self,
        statement: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Option<Result<R, StoreError>> {
        let mut conn = match self.conn.try_lock() {
            Ok(conn) => conn,
            // A panic while the connection was held: SQLite itself is consistent (the
            // statement committed or not), so the connection can still be used.
            Err(std::sync::TryLockError::Poisoned(conn)) => conn.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        // A busy answer rolled the statement (or the transaction) back.
        match statement(&mut conn) {
            Err(e) if is_busy(&e) => None,
            Err(e) => Some(Err(unavailable(e))),
            Ok(r) => Some(Ok(r)),
        }
    }
}

/// The counting statement as the store's query code builds it, built once: its SQL and what
/// each of its parameters is. Built per call through sea-query, it was ~2 % of the relay's
/// CPU at c64.
struct ConsumeTemplate {
    sql: String,
    params: Vec<Param>,
}

#[derive(Debug, PartialEq)]
enum Param {
    TokenId,
    Calls,
    Now,
    Fixed(SqlValue),
}

/// A count of calls no turn has, to tell where the count goes in the template.
const CALLS_MARK: i64 = 0x5eed_ca11;

impl ConsumeTemplate {
    fn new() -> Self {
        // Values no call has, to tell where the token's id and the time go.
        let (id, at) = ("\0token-id", DateTime::<Utc>::UNIX_EPOCH);
        let (sql, values) = tokens::consume_statement(id, CALLS_MARK, at).build(SqliteQueryBuilder);
        let params = values
            .0
            .into_iter()
            .map(|value| match value {
                Value::String(Some(v)) if v == id => Param::TokenId,
                Value::BigInt(Some(CALLS_MARK)) => Param::Calls,
                Value::ChronoDateTimeUtc(Some(v)) if v == at => Param::Now,
                other => Param::Fixed(bind(other)),
            })
            .collect();
        Self { sql, params }
    }

    /// Counts `calls` calls of a token, or says why not (why for one call; for several,
    /// only that they were not counted); `now` as [`sqlite_time`] writes it.
    fn run(&self, conn: &Connection, id: &str, calls: i64, now: &str) -> rusqlite::Result<Consume> {
        let params = self.params.iter().map(|param| match param {
            Param::TokenId => ToSqlOutput::Borrowed(ValueRef::Text(id.as_bytes())),
            Param::Calls => ToSqlOutput::Borrowed(ValueRef::Integer(calls)),
            Param::Now => ToSqlOutput::Borrowed(ValueRef::Text(now.as_bytes())),
            Param::Fixed(value) => ToSqlOutput::Borrowed(value.into()),
        });
        if conn
            .prepare_cached(&self.sql)?
            .execute(params_from_iter(params))?
            == 1
        {
            return Ok(Consume::Counted);
        }
        if calls > 1 {
            return Ok(Consume::Exhausted);
        }
        let (sql, values) = tokens::revoked_statement(id).build(SqliteQueryBuilder);
        let revoked: Option<bool> = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(values.0.into_iter().map(bind)), |row| {
                row.get::<_, Option<String>>(0).map(|at| at.is_some())
            })
            .optional()?;
        Ok(tokens::refusal(revoked))
    }
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction and commits it, or rolls it back on an
/// error. rusqlite's `Transaction` parses `BEGIN` and `COMMIT` afresh each time (~2 % of
/// the relay's CPU at c64); here both stay prepared.
fn immediate_transaction<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = work(conn).and_then(|r| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(r)
    });
    if done.is_err() && !conn.is_autocommit() {
        // The error is what the caller needs; a failed rollback leaves nothing to add.
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// Each token of a turn with the positions of its calls, tokens in the order they first
/// came.
fn by_token<'a>(ids: &[&'a str]) -> Vec<(&'a str, Vec<usize>)> {
    let mut tokens: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (at, id) in ids.iter().enumerate() {
        let slot = *index.entry(id).or_insert_with(|| {
            tokens.push((id, Vec::new()));
            tokens.len() - 1
        });
        tokens[slot].1.push(at);
    }
    tokens
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(sea_orm::DbErr::Custom(e.to_string()))
}

/// A time as sqlx writes `DateTime<Utc>` to SQLite, so that the pools read it back.
/// Runs a statement built by the store's query code; returns the rows changed. The
/// statement text is the same for every call, so the prepared statement is reused.
fn run(conn: &Connection, (sql, values): (String, Values)) -> rusqlite::Result<usize> {
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values.0.into_iter().map(bind)))
}

/// A value bound as sqlx binds it for SQLite (times as RFC 3339 text), so a row written
/// here reads back like one written through sea-orm.
fn bind(value: Value) -> SqlValue {
    match value {
        Value::Int(v) => v.map_or(SqlValue::Null, |v| SqlValue::Integer(v.into())),
        Value::BigInt(v) => v.map_or(SqlValue::Null, SqlValue::Integer),
        Value::String(v) => v.map_or(SqlValue::Null, SqlValue::Text),
        Value::ChronoDateTimeUtc(v) => {
            v.map_or(SqlValue::Null, |at| SqlValue::Text(sqlite_time(at)))
        }
        other => unreachable!("the counting statements bind no {other:?}"),
    }
}

fn sqlite_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::{ConsumeTemplate, Param, bind, sqlite_time, tokens};
    use chrono::{DateTime, Utc};
    use sea_orm::sea_query::{SqliteQueryBuilder, Value};

    #[test]
    fn the_counting_template_is_the_statement_the_query_code_builds() {
        let template = ConsumeTemplate::new();
        let now = Utc::now();
        let (sql, values) = tokens::consume_statement("tok_1", 3, now).build(SqliteQueryBuilder);
        assert_eq!(template.sql, sql);
        assert_eq!(template.params.len(), values.0.len());
        assert!(template.params.contains(&Param::TokenId));
        assert!(template.params.contains(&Param::Calls));
        assert!(template.params.contains(&Param::Now));
        for (param, value) in template.params.iter().zip(values.0) {
            match (param, value) {
                (Param::TokenId, Value::String(Some(id))) => assert_eq!(id, "tok_1"),
                (Param::Calls, Value::BigInt(Some(calls))) => assert_eq!(calls, 3),
                (Param::Now, Value::ChronoDateTimeUtc(Some(at))) => assert_eq!(at, now),
                (Param::Fixed(fixed), value) => assert_eq!(*fixed, bind(value)),
                (param, value) => panic!("{param:?} stands where {value:?} is bound"),
            }
        }
    }

    #[test]
    fn times_read_back_as_sqlx_reads_them() {
        let now = Utc::now();
        let text = sqlite_time(now);
        assert_eq!(DateTime::parse_from_rfc3339(&text).unwrap(), now);
        assert!(text.ends_with("+00:00"), "{text}");
    }
}
