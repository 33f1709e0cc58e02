use clap::Args;

use super::output::{column, print_json, render};
use crate::providers::{self, Provider};

#[derive(Debug, Args)]
pub struct ProvidersCmd {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl ProvidersCmd {
    pub fn run(&self) -> anyhow::Result<()> {
        if self.json {
            return print_json(&providers::all());
        }
        let columns = [
            column("provider", |p: &Provider| p.name.to_string()),
            column("base URL", |p: &Provider| {
                p.base_url.unwrap_or("(given with --upstream)").to_string()
            }),
            column("auth", |p: &Provider| p.auth.to_string()),
            column("realtime (WebSocket)", |p: &Provider| {
                p.realtime.unwrap_or("-").to_string()
            }),
            column("added headers", |p: &Provider| {
                let headers: Vec<String> = p
                    .default_headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                headers.join(", ")
            }),
        ];
        let t = render(&columns, providers::all());
        println!("{t}");
        Ok(())
    }
}
