use std::collections::HashMap;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::Context;
use super::output::{column, print_json, render, time};
use crate::service::{self, UsageQuery};
use crate::store::{UsageGroup, UsageRow};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum By {
    Token,
    Model,
    Day,
}

#[derive(Debug, Args)]
pub struct UsageCmd {
    /// Group by token, model or day (UTC)
    #[arg(long, value_enum, default_value = "token")]
    by: By,
    /// Only this token (id or unique prefix)
    #[arg(long, value_name = "ID")]
    token: Option<String>,
    /// From this time on: a duration back from now (24h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Before this time: a duration back from now or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Print a JSON array
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV
    #[arg(long)]
    csv: bool,
}

/// A report row, with the token's name when grouping by token.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    row: &'a UsageRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl UsageCmd {
    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let query = UsageQuery {
            by: match self.by {
                By::Token => UsageGroup::Token,
                By::Model => UsageGroup::Model,
                By::Day => UsageGroup::Day,
            },
            token: self.token.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        };
        let rows = service::usage(&store, &query).await?;
        let names: HashMap<String, Option<String>> = if matches!(self.by, By::Token) {
            store
                .list_tokens()
                .await?
                .into_iter()
                .map(|t| (t.id, t.name))
                .collect()
        } else {
            HashMap::new()
        };
        store.close().await;
        let name_of =
            |row: &UsageRow| -> Option<&str> { names.get(&row.key).and_then(|n| n.as_deref()) };
        let key_header = match self.by {
            By::Token => "token",
            By::Model => "model",
            By::Day => "day",
        };

        if self.json {
            let out: Vec<Row> = rows
                .iter()
                .map(|row| Row {
                    row,
                    name: name_of(row),
                })
                .collect();
            return print_json(&out);
        }
        if self.csv {
            println!(
                "{key_header},name,calls,errors,aborted,estimated,prompt_tokens,completion_tokens,total_tokens,bytes_out,first_at,last_at"
            );
            for row in &rows {
                println!(
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    csv_field(&row.key),
                    csv_field(name_of(row).unwrap_or("")),
                    row.calls,
                    row.errors,
                    row.aborted,
                    row.estimated,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.total_tokens,
                    row.bytes_out,
                    row.first_at.to_rfc3339(),
                    row.last_at.to_rfc3339(),
                );
            }
            return Ok(());
        }
        if rows.is_empty() {
            println!(
                "no usage recorded{}",
                if self.since.is_some() || self.until.is_some() || self.token.is_some() {
                    " for this selection"
                } else {
                    ""
                }
            );
            return Ok(());
        }
        let mut columns = vec![column(key_header, |r: &UsageRow| r.key.clone())];
        if matches!(self.by, By::Token) {
            columns.push(column("name", |r: &UsageRow| {
                name_of(r).unwrap_or("").to_string()
            }));
        }
        columns.extend([
            column("calls", |r: &UsageRow| r.calls.to_string()),
            column("errors", |r: &UsageRow| r.errors.to_string()),
            column("aborted", |r: &UsageRow| r.aborted.to_string()),
            column("estimated", |r: &UsageRow| r.estimated.to_string()),
            column("prompt", |r: &UsageRow| r.prompt_tokens.to_string()),
            column("completion", |r: &UsageRow| r.completion_tokens.to_string()),
            column("total", |r: &UsageRow| r.total_tokens.to_string()),
            column("last", |r: &UsageRow| time(Some(r.last_at), "")),
        ]);
        let t = render(&columns, &rows);
        println!("{t}");
        Ok(())
    }
}
