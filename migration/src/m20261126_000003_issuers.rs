use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Issuers::Table)
                    .if_not_exists()
                    .col(string_len(Issuers::Name, 64).primary_key())
                    // SEC1 compressed P-256 public key, hex: the issuer signs, the relay verifies.
                    .col(string_len(Issuers::PublicKey, 66))
                    .col(timestamp_with_time_zone(Issuers::CreatedAt))
                    .col(timestamp_with_time_zone_null(Issuers::RevokedAt))
                    // Caps, JSON lists: providers and upstreams its tokens may name, policies
                    // its tokens must carry.
                    .col(text(Issuers::Providers))
                    .col(text(Issuers::Upstreams))
                    .col(text(Issuers::Required))
                    .col(big_integer(Issuers::MaxLifetimeSecs))
                    .col(big_integer_null(Issuers::MaxCalls))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tokens::Table)
                    .add_column(string_len_null(Tokens::Issuer, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tokens_issuer")
                    .table(Tokens::Table)
                    .col(Tokens::Issuer)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_tokens_issuer")
                    .table(Tokens::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tokens::Table)
                    .drop_column(Tokens::Issuer)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Issuers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Issuers {
    Table,
    Name,
    PublicKey,
    CreatedAt,
    RevokedAt,
    Providers,
    Upstreams,
    Required,
    MaxLifetimeSecs,
    MaxCalls,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Issuer,
}
