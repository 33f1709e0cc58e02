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
