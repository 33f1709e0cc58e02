//! Limits held for a fleet of relays on one PostgreSQL: the statements behind
//! `server::fleet`. Each is one round trip; time is the database's clock, so a relay whose
//! clock is off still limits correctly.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;

use super::{Store, StoreError};

/// A relay not heard from for this long is presumed dead, and its calls in flight are
/// given back.
pub const RELAY_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Counts a call and takes what its limits need, in one statement: the call (as
/// `consume_statement` does), a slot of the token's concurrency, its reservation of output
/// tokens for the budget, and a request of its rate. The rate limit is GCRA: one time per
/// token (`rate_tat`, microseconds), advanced by `60 s / rpm` per request, and a request
/// is admitted while that time is at most `rpm` intervals ahead of now — a bucket of `rpm`
/// refilled at `rpm` a minute, as one relay applies it. A call that holds a slot or a
/// reservation is also written to this relay's lease, so that it can be given back when
/// the relay dies.
///
/// $1 token id, $2 relay id, $3 output tokens reserved, $4 whether the call takes a lease.
const ADMIT: &str = r#"
WITH clock AS (
  SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
), admitted AS (
  UPDATE tokens t SET
    used_calls = t.used_calls + 1,
    last_used_at = now(),
    in_flight = t.in_flight + CASE WHEN $4 THEN 1 ELSE 0 END,
    reserved_tokens = t.reserved_tokens + $3,
    rate_tat = CASE WHEN t.rpm IS NULL THEN t.rate_tat
      ELSE GREATEST(COALESCE(t.rate_tat, 0), clock.now_us) + 60000000 / t.rpm END
  FROM clock
  WHERE t.id = $1 AND t.revoked_at IS NULL
    AND (t.expires_at IS NULL OR t.expires_at > now())
    AND (t.max_calls IS NULL OR t.used_calls < t.max_calls)
    AND (t.concurrency IS NULL OR t.in_flight < t.concurrency)
    AND (t.max_total_tokens IS NULL
      OR t.used_tokens + t.reserved_tokens + GREATEST($3, 1) <= t.max_total_tokens)
    AND (t.rpm IS NULL OR GREATEST(COALESCE(t.rate_tat, 0), clock.now_us) + 60000000 / t.rpm
      - clock.now_us <= (60000000 / t.rpm) * t.rpm)
  RETURNING t.id, t.rpm, t.rate_tat, clock.now_us
), lease AS (
  INSERT INTO relay_leases (relay_id, token_id, calls, reserved_tokens)
  SELECT $2, id, 1, $3 FROM admitted WHERE $4
  ON CONFLICT (relay_id, token_id) DO UPDATE SET
    calls = relay_leases.calls + 1,
    reserved_tokens = relay_leases.reserved_tokens + EXCLUDED.reserved_tokens
)
SELECT rpm, rate_tat, now_us FROM admitted
"#;

/// Why [`ADMIT`] refused, read after it did (only on a refusal).
const WHY_REFUSED: &str = r#"
SELECT revoked_at IS NOT NULL AS revoked,
  expires_at IS NOT NULL AND expires_at <= now() AS expired,
  max_calls IS NOT NULL AND used_calls >= max_calls AS exhausted,
  concurrency IS NOT NULL AND in_flight >= concurrency AS busy,
  max_total_tokens IS NOT NULL AND used_tokens + reserved_tokens + GREATEST($2, 1) > max_total_tokens AS spent,
  rpm, rate_tat, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
FROM tokens WHERE id = $1
"#;

/// Gives back the slots and reservations of calls that ended, and charges their tokens to
/// the budget in the same statement, so that a reservation never disappears before the
/// tokens it stood for are counted. Slots are given back only while this relay's lease
/// still holds them: a lease reclaimed while the relay was presumed dead is not given back
/// twice. $1 relay id; $2 a JSON list of `{token_id, calls, reserved, charged}`, sorted by
/// token id.
///
/// Locks are taken in the order [`ADMIT`] takes them, the token's row before its lease,
/// or the two would deadlock: the primary `UPDATE` runs first, and the lease's `UPDATE`,
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

/// How often a refusal that nothing explains is tried again.
const ADMIT_TRIES: usize = 3;

/// The outcome of [`Store::fleet_admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAdmission {
    /// Counted. With a rate limit: the rpm, and how far ahead of now its time now is (µs).
    Admitted {
        rate: Option<(u32, i64)>,
    },
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
    /// Refused, but each time by a limit that was no longer in the way when asked why.
    Contended,
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

    /// Counts one call of a token with limits for the fleet; see [`ADMIT`].
    pub async fn fleet_admit(
        &self,
        token_id: &str,
        relay_id: &str,
        reserve: i64,
        lease: bool,
    ) -> Result<FleetAdmission, StoreError> {
        let values = vec![
            token_id.into(),
            relay_id.into(),
            reserve.into(),
            lease.into(),
        ];
        // A refusal is explained by a second read; when that finds nothing in the way (a
        // call ended in between), the call is tried again.
        for _ in 0..ADMIT_TRIES {
            if let Some(row) = self
                .writer
                .query_one_raw(statement(ADMIT, values.clone()))
                .await?
            {
                let rpm: Option<i32> = row.try_get("", "rpm")?;
                let rate = match rpm {
                    Some(rpm) => {
                        let tat: i64 = row.try_get("", "rate_tat")?;
                        let now: i64 = row.try_get("", "now_us")?;
                        Some((u32::try_from(rpm).unwrap_or(1).max(1), tat - now))
                    }
                    None => None,
                };
                return Ok(FleetAdmission::Admitted { rate });
            }
            if let Some(refusal) = self.why_refused(token_id, reserve).await? {
                return Ok(FleetAdmission::Refused(refusal));
            }
        }
        // Refused each time by a limit that had moved on when asked why: slots and
        // reservations coming and going as fast as they are taken.
        Ok(FleetAdmission::Refused(FleetRefusal::Contended))
    }

    async fn why_refused(
        &self,
        token_id: &str,
        reserve: i64,
    ) -> Result<Option<FleetRefusal>, StoreError> {
        let values = vec![token_id.into(), reserve.into()];
        let Some(row) = self
            .writer
            .query_one_raw(statement(WHY_REFUSED, values))
            .await?
        else {
            return Ok(Some(FleetRefusal::Missing));
        };
        let flag = |name: &str| row.try_get::<bool>("", name);
        let refusal = if flag("revoked")? {
            FleetRefusal::Revoked
        } else if flag("expired")? {
            FleetRefusal::Expired
        } else if flag("exhausted")? {
            FleetRefusal::Exhausted
        } else if flag("busy")? {
            FleetRefusal::Concurrency
        } else if flag("spent")? {
            FleetRefusal::Budget
        } else {
            let rpm: Option<i32> = row.try_get("", "rpm")?;
            let tat: Option<i64> = row.try_get("", "rate_tat")?;
            let now: i64 = row.try_get("", "now_us")?;
            match (rpm, tat) {
                (Some(rpm), Some(tat)) if rpm > 0 => {
                    let interval = 60_000_000 / i64::from(rpm);
                    let wait_us = tat.max(now) + interval - now - interval * i64::from(rpm);
                    if wait_us <= 0 {
                        return Ok(None);
                    }
                    FleetRefusal::Rate { wait_us }
                }
                _ => return Ok(None),
            }
        };
        Ok(Some(refusal))
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
