use chrono::Utc;
use clap::Args;

use super::Context;
use super::output::{column, print_json, render, time};
use crate::store::RelayInfo;

#[derive(Debug, Args)]
pub struct RelaysCmd {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl RelaysCmd {
    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        if !store.is_postgres() {
            // Said on stderr, so that `--json` still prints a list.
            eprintln!(
                "relays share limits through PostgreSQL only; on SQLite each `serve` process \
                 keeps its rate and concurrency limits to itself"
            );
        }
        let relays = crate::service::relays(&store).await?;
        if self.json {
            return print_json(&relays);
        }
        let now = Utc::now();
        let columns = [
            column("id", |r: &RelayInfo| r.id.clone()),
            column("address", |r: &RelayInfo| r.address.clone()),
            column("version", |r: &RelayInfo| r.version.clone()),
            column("started", |r: &RelayInfo| time(Some(r.started_at), "")),
            column("last seen", |r: &RelayInfo| {
                format!(
                    "{:.1} s ago",
                    (now - r.last_seen).num_milliseconds().max(0) as f64 / 1e3
                )
            }),
            column("calls in flight", |r: &RelayInfo| r.in_flight.to_string()),
        ];
        println!("{}", render(&columns, &relays));
        Ok(())
    }
}
