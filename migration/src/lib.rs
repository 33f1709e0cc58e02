//! The relayapi schema, one file per migration, applied in order.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_tokens;
mod m20261126_000002_usage;
mod m20261126_000003_issuers;
mod m20261202_000004_usage_estimated;
mod m20261202_000005_token_max_session;
mod m20261202_000006_fleet;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_tokens::Migration),
            Box::new(m20261126_000002_usage::Migration),
            Box::new(m20261126_000003_issuers::Migration),
            Box::new(m20261202_000004_usage_estimated::Migration),
            Box::new(m20261202_000005_token_max_session::Migration),
            Box::new(m20261202_000006_fleet::Migration),
        ]
    }
}
pub use sea_orm_migration::MigrationStatus;
