use clap::Args;

use super::output::{print_json, table};
use crate::providers;

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
        let mut t = table(&["provider", "base URL", "auth", "added headers"]);
        for p in providers::all() {
            let headers: Vec<String> = p
                .default_headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            t.add_row(vec![
                p.name.to_string(),
                p.base_url.unwrap_or("(given with --upstream)").to_string(),
                p.auth.to_string(),
                headers.join(", "),
            ]);
        }
        println!("{t}");
        Ok(())
    }
}
