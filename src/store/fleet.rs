//! Limits held for a fleet of relays on one PostgreSQL: the statements behind
//! `server::fleet`. Each is one round trip, and each takes the token's row before its
//! lease's, so that none deadlocks with another; time is the database's clock, so a relay whose
//! clock is off still limits correctly.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;

use super::{Store, StoreError};

/// A relay not heard from for this long is presumed dead, and its calls in flight are
/// given back.
pub const RELAY_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Counts up to $3 calls of token $1 and takes what their limits need, for relay $2: the
/// migration's `relayapi_admit` (one round trip; the rule is written there, once). $4
/// output tokens reserved per call, $5 whether the calls take a lease.
const ADMIT: &str =
    "SELECT admitted, refusal, rpm, ahead_us, wait_us FROM relayapi_admit($1, $2, $3, $4, $5)";

/// Gives back the slots and reservations of calls that ended, and charges their tokens to
/// the budget in the same statement, so that a reservation never disappears before the
/// tokens it stood for are counted. Slots are given back only while this relay's lease
/// still holds them: a lease reclaimed while the relay was presumed dead is not given back
/// twice. $1 relay id; $2 a JSON list of `{token_id, calls, reserved, charged}`, sorted by
/// token id.
///
/// Locks are taken in the order [`ADMIT`] takes them, the token's row before its lease,
/// or the two would deadlock (they did, in a first version): the primary `UPDATE` runs first, and the lease's `UPDATE`,
/// which it does not read, after it (PostgreSQL runs such a sub-statement to completion
/// once the primary query is done).
const RELEASE: &str = r#"
WITH r AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb)
    AS r(token_id text, calls int, reserved bigint, charged bigint)
), leases AS (
  UPDATE relay_leases l SET calls = l.calls - r.calls, reserved_tokens = l.reserved_tokens - r.reserved
  FROM r WHERE l.relay_id = $1 AND l.token_id = r.token_id AND l.calls >= r.calls
)
UPDATE tokens t SET
  in_flight = GREATEST(t.in_flight - CASE WHEN held.token_id IS NULL THEN 0 ELSE r.calls END, 0),
  reserved_tokens = GREATEST(t.reserved_tokens - CASE WHEN held.token_id IS NULL THEN 0 ELSE r.reserved END, 0),
  used_tokens = t.used_tokens + r.charged
FROM r LEFT JOIN relay_leases held
  ON held.relay_id = $1 AND held.token_id = r.token_id AND held.calls >= r.calls
WHERE t.id = r.token_id
"#;

/// Registers the relay or refreshes its heartbeat; says whether its row had to be made
/// (at start, or after others presumed it dead).
const HEARTBEAT: &str = r#"
INSERT INTO relays (id, address, version, started_at, last_seen, in_flight)
VALUES ($1, $2, $3, $4, now(), $5)
ON CONFLICT (id) DO UPDATE SET last_seen = now(), in_flight = EXCLUDED.in_flight
RETURNING (xmax = 0) AS inserted
"#;

/// Removes relays (those silent for $1 seconds, or the one named $2) and gives back the
/// calls their leases held. Two relays reclaiming at once cannot give back twice: the
/// second finds the relay's row already deleted.
const RECLAIM: &str = r#"
WITH gone_relays AS (
  DELETE FROM relays WHERE last_seen < now() - make_interval(secs => $1) OR id = $2
  RETURNING id
), gone AS (
  DELETE FROM relay_leases l USING gone_relays g WHERE l.relay_id = g.id
  RETURNING l.token_id, l.calls, l.reserved_tokens
), sums AS (
  SELECT token_id, sum(calls)::int AS calls, sum(reserved_tokens)::bigint AS reserved
  FROM gone GROUP BY token_id
), fixed AS (
  UPDATE tokens t SET in_flight = GREATEST(t.in_flight - sums.calls, 0),
    reserved_tokens = GREATEST(t.reserved_tokens - sums.reserved, 0)
  FROM sums WHERE t.id = sums.token_id
)
SELECT (SELECT count(*) FROM gone_relays)::bigint AS relays,
  COALESCE((SELECT sum(calls) FROM sums), 0)::bigint AS calls
"#;

const LIST: &str = r#"
SELECT id, address, version, started_at, last_seen, in_flight FROM relays
WHERE last_seen >= now() - make_interval(secs => $1)
ORDER BY started_at, id
"#;

/// The time one request of a rate takes from its bucket, in microseconds, as [`ADMIT`]
/// computes it: never zero, however high the rate (past 60 million a minute the bucket
/// is as large as the rate, refilled once a microsecond).
pub fn rate_interval_us(rpm: i32) -> i64 {
    (60_000_000 / i64::from(rpm.max(1))).max(1)
}

/// The outcome of [`Store::fleet_admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAdmission {
    /// This many of the calls asked for were counted (at least one). With a rate limit:
    /// the rpm, and how far ahead of now its time is after them (µs).
    Admitted {
        calls: i32,
        rate: Option<(u32, i64)>,
    },
    /// None was: the limit in the way.
    Refused(FleetRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetRefusal {
    Missing,
    Revoked,
    Expired,
    Exhausted,
    Concurrency,
    Budget,
    /// Over its rate: microseconds until the next request would be admitted.
    Rate {
        wait_us: i64,
    },
}

/// What calls of one token that ended give back ([`Store::fleet_release`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub calls: i32,
    pub reserved: i64,
    /// Tokens used, charged to the budget here rather than by the usage record.
    pub charged: i64,
}

/// One relay of the fleet, as its heartbeat last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayInfo {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub in_flight: i32,
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

impl Store {
    /// Whether the store is PostgreSQL, where several relays share limits.
    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Counts up to `calls` calls of a token with limits for the fleet; see [`ADMIT`].
    pub async fn fleet_admit(
        &self,
        token_id: &str,
        relay_id: &str,
        calls: i32,
        reserve: i64,
        lease: bool,
    ) -> Result<FleetAdmission, StoreError> {
        let values = vec![
            token_id.into(),
            relay_id.into(),
            calls.into(),
            reserve.into(),
            lease.into(),
        ];
        let row = self
            .writer
            .query_one_raw(statement(ADMIT, values))
            .await?
            .ok_or_else(|| StoreError::Corrupt("relayapi_admit returned no row".into()))?;
        let admitted: i32 = row.try_get("", "admitted")?;
        let rpm: Option<i32> = row.try_get("", "rpm")?;
        let rpm = rpm.map(|rpm| u32::try_from(rpm).unwrap_or(1).max(1));
        if admitted > 0 {
            let ahead: Option<i64> = row.try_get("", "ahead_us")?;
            return Ok(FleetAdmission::Admitted {
                calls: admitted,
                rate: rpm.zip(ahead),
            });
        }
        let refusal: Option<String> = row.try_get("", "refusal")?;
        Ok(FleetAdmission::Refused(match refusal.as_deref() {
            Some("missing") => FleetRefusal::Missing,
            Some("revoked") => FleetRefusal::Revoked,
            Some("expired") => FleetRefusal::Expired,
            Some("exhausted") => FleetRefusal::Exhausted,
            Some("concurrency") => FleetRefusal::Concurrency,
            Some("budget") => FleetRefusal::Budget,
            Some("rate") => {
                let wait: Option<i64> = row.try_get("", "wait_us")?;
                FleetRefusal::Rate {
                    wait_us: wait.unwrap_or(1).max(1),
                }
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "relayapi_admit refused with {other:?}"
                )));
            }
        }))
    }

    /// Gives back what calls that ended held, token by token; see [`RELEASE`].
    pub async fn fleet_release(
        &self,
        relay_id: &str,
        releases: &[(String, Release)],
    ) -> Result<(), StoreError> {
        if releases.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&(String, Release)> = releases.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let list: Vec<serde_json::Value> = sorted
            .into_iter()
            .map(|(id, r)| {
                serde_json::json!({
                    "token_id": id, "calls": r.calls, "reserved": r.reserved, "charged": r.charged,
                })
            })
            .collect();
        let values = vec![
            relay_id.into(),
            serde_json::Value::Array(list).to_string().into(),
        ];
        self.writer.execute_raw(statement(RELEASE, values)).await?;
        Ok(())
    }

    /// The relay's heartbeat; `true` when its row was (re)created.
    pub async fn relay_heartbeat(
        &self,
        relay: &RelayInfo,
        in_flight: i32,
    ) -> Result<bool, StoreError> {
        let values = vec![
            relay.id.as_str().into(),
            relay.address.as_str().into(),
            relay.version.as_str().into(),
            relay.started_at.into(),
            in_flight.into(),
        ];
        let row = self
            .writer
            .query_one_raw(statement(HEARTBEAT, values))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the heartbeat returned no row".into()))?;
        Ok(row.try_get("", "inserted")?)
    }

    /// Removes relays silent for `ttl`, or the one named `relay_id` (a graceful stop), and
    /// gives back their calls in flight: (relays removed, calls given back).
    pub async fn reclaim_relays(
        &self,
        ttl: std::time::Duration,
        relay_id: Option<&str>,
    ) -> Result<(i64, i64), StoreError> {
        let values = vec![ttl.as_secs_f64().into(), relay_id.unwrap_or("").into()];
        let row = self
            .writer
            .query_one_raw(statement(RECLAIM, values))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the reclaim returned no row".into()))?;
        Ok((row.try_get("", "relays")?, row.try_get("", "calls")?))
    }

    /// The relays heard from within `ttl`, oldest first. Empty on SQLite, where relays do
    /// not share limits.
    pub async fn list_relays(
        &self,
        ttl: std::time::Duration,
    ) -> Result<Vec<RelayInfo>, StoreError> {
        if !self.is_postgres() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .query_all_raw(statement(LIST, vec![ttl.as_secs_f64().into()]))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RelayInfo {
                    id: row.try_get("", "id")?,
                    address: row.try_get("", "address")?,
                    version: row.try_get("", "version")?,
                    started_at: row.try_get("", "started_at")?,
                    last_seen: row.try_get("", "last_seen")?,
                    in_flight: row.try_get("", "in_flight")?,
                })
            })
            .collect()
    }

    /// Announces a change on a channel (PostgreSQL's `NOTIFY`); nothing elsewhere.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.is_postgres() {
            let values = vec![channel.into(), payload.into()];
            self.writer
                .execute_raw(statement("SELECT pg_notify($1, $2)", values))
                .await?;
        }
        Ok(())
    }

    /// The database URL, for connections of their own (the change listener).
    pub fn url(&self) -> &str {
        &self.url
    }
}
