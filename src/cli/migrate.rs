use clap::Args;

use super::Context;
use super::output::table;
use crate::store::Migrations;

#[derive(Debug, Args)]
pub struct MigrateCmd {
    /// List applied and pending migrations without applying any
    #[arg(long)]
    status: bool,
}

impl MigrateCmd {
    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store_with(Migrations::Leave).await?;
        if self.status {
            let mut t = table(&["migration", "status"]);
            for m in store.migration_status().await? {
                t.add_row(vec![
                    m.name,
                    if m.applied { "applied" } else { "pending" }.into(),
                ]);
            }
            println!("{t}");
        } else {
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!("the database is up to date ({})", store.backend_name());
            }
            for name in applied {
                println!("applied {name}");
            }
        }
        store.close().await;
        Ok(())
    }
}
