use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per column: SQLite adds a single column per statement.
        for column in [
            integer_null(Tokens::MaxOutputTokens),
            big_integer_null(Tokens::MaxTotalTokens),
            big_integer(Tokens::UsedTokens).default(0).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tokens::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(UsageRecords::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UsageRecords::Id))
                    .col(string_len(UsageRecords::TokenId, 32))
                    // Unix milliseconds, UTC: range filters and day buckets are plain
                    // integer arithmetic on every backend.
                    .col(big_integer(UsageRecords::CreatedAtMs))
                    .col(string_len(UsageRecords::Method, 16))
                    .col(text(UsageRecords::Path))
                    .col(string_null(UsageRecords::Model))
                    .col(small_integer(UsageRecords::Status))
                    .col(integer(UsageRecords::LatencyMs))
                    .col(integer(UsageRecords::TtfbMs))
                    .col(big_integer(UsageRecords::BytesIn))
                    .col(big_integer(UsageRecords::BytesOut))
                    .col(big_integer_null(UsageRecords::PromptTokens))
                    .col(big_integer_null(UsageRecords::CompletionTokens))
                    .col(big_integer_null(UsageRecords::TotalTokens))
                    .col(boolean(UsageRecords::Stream))
                    .col(boolean(UsageRecords::Aborted))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_token_time")
                    .table(UsageRecords::Table)
                    .col(UsageRecords::TokenId)
                    .col(UsageRecords::CreatedAtMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_time")
                    .table(UsageRecords::Table)
                    .col(UsageRecords::CreatedAtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageRecords::Table).to_owned())
            .await?;
        for column in [
            Tokens::MaxOutputTokens,
            Tokens::MaxTotalTokens,
            Tokens::UsedTokens,
        ] {
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

#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names)] // the names are the columns
enum Tokens {
    Table,
    MaxOutputTokens,
    MaxTotalTokens,
    UsedTokens,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    TokenId,
    CreatedAtMs,
    Method,
    Path,
    Model,
    Status,
    LatencyMs,
    TtfbMs,
    BytesIn,
    BytesOut,
    PromptTokens,
    CompletionTokens,
    TotalTokens,
    Stream,
    Aborted,
}
