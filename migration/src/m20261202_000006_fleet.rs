use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What several relays on one PostgreSQL share to hold limits for the fleet as a whole:
/// per token, the calls in flight, the output tokens they reserve and the rate limit's
/// theoretical arrival time (GCRA, in microseconds of the database's clock); the live
/// relays with their heartbeats; and each relay's leases, so that a dead relay's calls
/// can be given back. On PostgreSQL, triggers announce every change a relay must see
/// (`NOTIFY relayapi_changes`). SQLite gets the same columns and tables, unused.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            integer(Tokens::InFlight).default(0).to_owned(),
            big_integer(Tokens::ReservedTokens).default(0).to_owned(),
            big_integer_null(Tokens::RateTat),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tokens::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Relays::Table)
                    .col(string(Relays::Id).primary_key())
                    .col(string(Relays::Address))
                    .col(string(Relays::Version))
                    .col(timestamp_with_time_zone(Relays::StartedAt))
                    .col(timestamp_with_time_zone(Relays::LastSeen))
                    .col(integer(Relays::InFlight).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RelayLeases::Table)
                    .col(string(RelayLeases::RelayId))
                    .col(string(RelayLeases::TokenId))
                    .col(integer(RelayLeases::Calls).default(0))
                    .col(big_integer(RelayLeases::ReservedTokens).default(0))
                    .primary_key(
                        Index::create()
                            .col(RelayLeases::RelayId)
                            .col(RelayLeases::TokenId),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared(NOTIFY_FUNCTIONS).await?;
            db.execute_unprepared(NOTIFY_TRIGGERS).await?;
            db.execute_unprepared(ADMIT_FUNCTION).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS relayapi_token_changed ON tokens;
                     DROP TRIGGER IF EXISTS relayapi_token_deleted ON tokens;
                     DROP TRIGGER IF EXISTS relayapi_issuer_changed ON issuers;
                     DROP FUNCTION IF EXISTS relayapi_admit(text, text, integer, bigint, boolean);
                     DROP FUNCTION IF EXISTS relayapi_notify_token();
                     DROP FUNCTION IF EXISTS relayapi_notify_issuer();",
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(RelayLeases::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Relays::Table).to_owned())
            .await?;
        for column in [Tokens::InFlight, Tokens::ReservedTokens, Tokens::RateTat] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// A payload is `<kind>:<subject>:<microseconds>`: `t` a token id, `i` an issuer name; the
/// time (the database's clock when the change was made) measures how late relays apply it.
const NOTIFY_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION relayapi_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relayapi_changes', 't:' || COALESCE(NEW.id, OLD.id) || ':'
    || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION relayapi_notify_issuer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relayapi_changes', 'i:' || COALESCE(NEW.name, OLD.name) || ':'
    || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
  RETURN NULL;
END $$;
"#;

/// Only what a relay must see: counting (`used_calls`, `in_flight`, …) notifies nobody.
const NOTIFY_TRIGGERS: &str = r#"
CREATE TRIGGER relayapi_token_changed
  AFTER UPDATE OF revoked_at, expires_at, max_calls, max_total_tokens, allowed_models,
    allowed_origins, allowed_ips, allowed_endpoints, rpm, concurrency, max_output_tokens,
    max_session_secs, provider, upstream, auth
  ON tokens FOR EACH ROW EXECUTE FUNCTION relayapi_notify_token();
CREATE TRIGGER relayapi_token_deleted
  AFTER DELETE ON tokens FOR EACH ROW EXECUTE FUNCTION relayapi_notify_token();
CREATE TRIGGER relayapi_issuer_changed
  AFTER INSERT OR UPDATE OR DELETE ON issuers FOR EACH ROW EXECUTE FUNCTION relayapi_notify_issuer();
"#;

/// Admits up to `p_calls` calls of a token for the whole fleet, in one round trip: the
/// token's row is locked, and as many calls as every limit leaves room for are counted,
/// each taking a slot of its concurrency, its reservation of output tokens and a request
/// of its rate, and written to the relay's lease. The rate is GCRA: `rate_tat` (µs of
/// the database's clock) advances by `60 s / rpm` per request, and a request is admitted
/// while it stays at most `rpm` intervals ahead of now: a bucket of `rpm` refilled at
/// `rpm` a minute. The budget gives each call room for its reservation (at least one
/// token). `admitted` = 0 comes with the limit that refused, in the order a single call is
/// checked; `ahead_us` (admitted) and `wait_us` (refused for the rate) are for headers.
const ADMIT_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION relayapi_admit(
  p_token text, p_relay text, p_calls integer, p_reserve bigint, p_lease boolean)
RETURNS TABLE(admitted integer, refusal text, rpm integer, ahead_us bigint, wait_us bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t tokens%ROWTYPE;
  now_us bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
  n bigint := p_calls;
  step bigint;
  start_us bigint;
BEGIN
  SELECT * INTO t FROM tokens WHERE id = p_token FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 0, 'missing'::text, NULL::integer, NULL::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF t.revoked_at IS NOT NULL THEN
    RETURN QUERY SELECT 0, 'revoked'::text, t.rpm, NULL::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF t.expires_at IS NOT NULL AND t.expires_at <= now() THEN
    RETURN QUERY SELECT 0, 'expired'::text, t.rpm, NULL::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF t.max_calls IS NOT NULL THEN
    n := LEAST(n, GREATEST(t.max_calls - t.used_calls, 0));
    IF n = 0 THEN
      RETURN QUERY SELECT 0, 'exhausted'::text, t.rpm, NULL::bigint, NULL::bigint;
      RETURN;
    END IF;
  END IF;
  IF t.concurrency IS NOT NULL THEN
    n := LEAST(n, GREATEST(t.concurrency - t.in_flight, 0));
    IF n = 0 THEN
      RETURN QUERY SELECT 0, 'concurrency'::text, t.rpm, NULL::bigint, NULL::bigint;
      RETURN;
    END IF;
  END IF;
  IF t.max_total_tokens IS NOT NULL THEN
    n := LEAST(n, GREATEST((t.max_total_tokens - t.used_tokens - t.reserved_tokens)
      / GREATEST(p_reserve, 1), 0));
    IF n = 0 THEN
      RETURN QUERY SELECT 0, 'budget'::text, t.rpm, NULL::bigint, NULL::bigint;
      RETURN;
    END IF;
  END IF;
  IF t.rpm IS NOT NULL THEN
    step := GREATEST(60000000 / t.rpm, 1);
    start_us := GREATEST(COALESCE(t.rate_tat, 0), now_us);
    n := LEAST(n, GREATEST((step * t.rpm - (start_us - now_us)) / step, 0));
    IF n = 0 THEN
      RETURN QUERY SELECT 0, 'rate'::text, t.rpm, NULL::bigint,
        start_us + step - now_us - step * t.rpm;
      RETURN;
    END IF;
  END IF;
  UPDATE tokens SET
    used_calls = used_calls + n,
    last_used_at = now(),
    in_flight = in_flight + CASE WHEN p_lease THEN n ELSE 0 END,
    reserved_tokens = reserved_tokens + n * p_reserve,
    rate_tat = CASE WHEN t.rpm IS NULL THEN rate_tat ELSE start_us + n * step END
  WHERE id = p_token;
  IF p_lease THEN
    INSERT INTO relay_leases (relay_id, token_id, calls, reserved_tokens)
    VALUES (p_relay, p_token, n, n * p_reserve)
    ON CONFLICT (relay_id, token_id) DO UPDATE SET
      calls = relay_leases.calls + EXCLUDED.calls,
      reserved_tokens = relay_leases.reserved_tokens + EXCLUDED.reserved_tokens;
  END IF;
  RETURN QUERY SELECT n::integer, NULL::text, t.rpm,
    CASE WHEN t.rpm IS NULL THEN NULL ELSE start_us + n * step - now_us END, NULL::bigint;
END $$;
"#;

// The column is named for what it holds; that it shares the table's name is clippy's only
// objection.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Tokens {
    Table,
    InFlight,
    ReservedTokens,
    RateTat,
}

#[derive(DeriveIden)]
enum Relays {
    Table,
    Id,
    Address,
    Version,
    StartedAt,
    LastSeen,
    InFlight,
}

#[derive(DeriveIden)]
enum RelayLeases {
    Table,
    RelayId,
    TokenId,
    Calls,
    ReservedTokens,
}
