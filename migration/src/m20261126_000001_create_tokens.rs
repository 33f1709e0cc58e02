use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .if_not_exists()
                    // 16 random bytes as lowercase hex: also the id sealed inside the token.
                    .col(string_len(Tokens::Id, 32).primary_key())
                    .col(string_null(Tokens::Name))
                    .col(string_len(Tokens::Provider, 64))
                    .col(string_null(Tokens::Upstream))
                    .col(string_null(Tokens::Auth))
                    // SHA-256 of the whole token string, hex. Never the token itself.
                    .col(string_len_uniq(Tokens::Fingerprint, 64))
                    .col(string_len(Tokens::Kid, 16))
                    .col(string_len(Tokens::KeyHint, 32))
                    .col(big_integer_null(Tokens::MaxCalls))
                    .col(big_integer(Tokens::UsedCalls).default(0))
                    .col(timestamp_with_time_zone_null(Tokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Tokens::RevokedAt))
                    .col(timestamp_with_time_zone(Tokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tokens::LastUsedAt))
                    // Policies: JSON arrays of strings; NULL means "no restriction".
                    .col(text_null(Tokens::AllowedModels))
                    .col(text_null(Tokens::AllowedOrigins))
                    .col(text_null(Tokens::AllowedIps))
                    .col(text_null(Tokens::AllowedEndpoints))
                    .col(integer_null(Tokens::Rpm))
                    .col(integer_null(Tokens::Concurrency))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tokens_created_at")
                    .table(Tokens::Table)
                    .col(Tokens::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    Name,
    Provider,
    Upstream,
    Auth,
    Fingerprint,
    Kid,
    KeyHint,
    MaxCalls,
    UsedCalls,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
    LastUsedAt,
    AllowedModels,
    AllowedOrigins,
    AllowedIps,
    AllowedEndpoints,
    Rpm,
    Concurrency,
}
