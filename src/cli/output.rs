//! Shared shapes for what commands print: tables for people, JSON for scripts.

use chrono::{DateTime, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::store::{TokenRecord, TokenStatus};

/// A token with its status, as `--json` prints it.
#[derive(Serialize)]
pub struct TokenView<'a> {
    #[serde(flatten)]
    pub record: &'a TokenRecord,
    pub status: TokenStatus,
}

impl<'a> TokenView<'a> {
    pub fn new(record: &'a TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            record,
            status: record.status(now),
        }
    }
}

/// A table column: its header and how a row fills it, written side by side, so that a
/// column cannot be added, moved or dropped without its header.
pub struct Column<'a, T> {
    header: &'static str,
    cell: Box<dyn Fn(&T) -> String + 'a>,
}

pub fn column<'a, T>(header: &'static str, cell: impl Fn(&T) -> String + 'a) -> Column<'a, T> {
    Column {
        header,
        cell: Box::new(cell),
    }
}

/// The rows under their columns.
pub fn render<T>(columns: &[Column<'_, T>], rows: &[T]) -> Table {
    let header: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let mut t = table(&header);
    for row in rows {
        t.add_row(columns.iter().map(|c| (c.cell)(row)).collect::<Vec<_>>());
    }
    t
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    table
}

pub fn time(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| none.to_string())
}

pub fn calls(record: &TokenRecord) -> String {
    match record.limits.max_calls {
        Some(max) => format!("{}/{}", record.used_calls, max),
        None => format!("{}/∞", record.used_calls),
    }
}

pub fn tokens_used(record: &TokenRecord) -> String {
    match record.limits.max_total_tokens {
        Some(max) => format!("{}/{}", record.used_tokens, max),
        None => record.used_tokens.to_string(),
    }
}

pub fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
