use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A usage record whose tokens were estimated (the call ended without the provider's
/// report, so it was charged its reservation) rather than reported.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UsageRecords::Table)
                    .add_column(boolean(UsageRecords::Estimated).default(false).to_owned())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UsageRecords::Table)
                    .drop_column(UsageRecords::Estimated)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Estimated,
}
