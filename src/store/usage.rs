use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, TransactionTrait,
};
use serde::Serialize;

use super::entities::prelude::{Tokens, UsageRecords};
use super::entities::{token, usage_record};
use super::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// One forwarded call, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub token_id: String,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub status: u16,
    pub latency_ms: u32,
    pub ttfb_ms: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub stream: bool,
    pub aborted: bool,
    /// The provider reported no usage (or the call ended before it could): the tokens are
    /// the relay's estimate, charged so that no call is free.
    pub estimated: bool,
    /// The tokens were already added to the token's total (with the release of the
    /// call's reservation, on PostgreSQL): the record only records them.
    #[serde(skip)]
    pub charged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Token,
    Model,
    Day,
}

#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub token_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One line of the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The token id, the model (`(none)` when unknown) or the day (`YYYY-MM-DD`, UTC).
    pub key: String,
    pub calls: i64,
    pub errors: i64,
    pub aborted: i64,
    /// Calls charged an estimate, for want of the provider's report.
    pub estimated: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub bytes_out: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Most rows per usage insert: as fast per row as larger statements, and the few distinct
/// statement texts (see `statement_pieces`) stay small in the statement cache.
const USAGE_ROWS_PER_INSERT: usize = 64;

/// A record's row: each column with its value, in the order of the insert's text.
fn usage_row(r: &UsageRecord) -> [(usage_record::Column, Value); 16] {
    use usage_record::Column as C;
    [
        (C::TokenId, r.token_id.clone().into()),
        (C::CreatedAtMs, r.at.timestamp_millis().into()),
        (
            C::Method,
            r.method.chars().take(16).collect::<String>().into(),
        ),
        (C::Path, r.path.clone().into()),
        (
            C::Model,
            r.model
                .as_ref()
                .map(|m| m.chars().take(255).collect::<String>())
                .into(),
        ),
        (
            C::Status,
            i16::try_from(r.status).unwrap_or(i16::MAX).into(),
        ),
        (C::LatencyMs, clamp_i32(r.latency_ms).into()),
        (C::TtfbMs, clamp_i32(r.ttfb_ms).into()),
        (C::BytesIn, clamp_i64(r.bytes_in).into()),
        (C::BytesOut, clamp_i64(r.bytes_out).into()),
        (C::PromptTokens, r.prompt_tokens.into()),
        (C::CompletionTokens, r.completion_tokens.into()),
        (C::TotalTokens, r.total_tokens.into()),
        (C::Stream, r.stream.into()),
        (C::Aborted, r.aborted.into()),
        (C::Estimated, r.estimated.into()),
    ]
}

/// The text of the usage insert for `rows` records (a piece size: a power of two up to
/// [`USAGE_ROWS_PER_INSERT`]), built by sea-query once per size and backend. Built per
/// batch through sea-orm's active models it was ~4 % of the relay's CPU at c64.
fn usage_insert_text(backend: DbBackend, rows: usize) -> String {
    const SIZES: usize = USAGE_ROWS_PER_INSERT.ilog2() as usize + 1;
    static TEXTS: [[OnceLock<String>; SIZES]; 2] =
        [const { [const { OnceLock::new() }; SIZES] }; 2];
    debug_assert!(rows.is_power_of_two() && rows <= USAGE_ROWS_PER_INSERT);
    let by_backend = usize::from(backend == DbBackend::Postgres);
    TEXTS[by_backend][rows.ilog2() as usize]
        .get_or_init(|| usage_insert(backend, rows).sql)
        .clone()
}

/// The usage insert for `rows` rows as sea-query builds it (its values are placeholders).
fn usage_insert(backend: DbBackend, rows: usize) -> Statement {
    let row = usage_row(&UsageRecord::default());
    let mut insert = Query::insert();
    insert
        .into_table(UsageRecords)
        .columns(row.iter().map(|(column, _)| *column));
    for _ in 0..rows {
        insert.values_panic(row.iter().map(|(_, value)| value.clone().into()));
    }
    backend.build(&insert)
}

impl Store {
    /// Writes a batch of records and adds their tokens to each token's total, in one
    /// transaction.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut per_token: HashMap<&str, i64> = HashMap::new();
        for r in records {
            if let Some(total) = r.total_tokens.filter(|t| *t > 0 && !r.charged) {
                *per_token.entry(r.token_id.as_str()).or_default() += total;
            }
        }
        let backend = self.writer.get_database_backend();
        let txn = self.writer.begin().await?;
        for piece in super::statement_pieces(records, USAGE_ROWS_PER_INSERT) {
            let values = piece
                .iter()
                .flat_map(|r| usage_row(r).map(|(_, value)| value));
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                usage_insert_text(backend, piece.len()),
                values,
            ))
            .await?;
        }
        for (id, total) in per_token {
            Tokens::update_many()
                .col_expr(
                    token::Column::UsedTokens,
                    Expr::col(token::Column::UsedTokens).add(total),
                )
                .filter(token::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Usage grouped by token, model or day, most recent first.
    pub async fn usage_report(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageRow>, StoreError> {
        use usage_record::Column as C;
        let key = match group {
            UsageGroup::Token => Expr::col(C::TokenId),
            UsageGroup::Model => Expr::col(C::Model),
            UsageGroup::Day => Expr::col(C::CreatedAtMs).div(DAY_MS),
        };
        let sum = |col: &str| Expr::cust(format!("CAST(SUM(COALESCE({col}, 0)) AS BIGINT)"));
        let mut q = Query::select();
        q.from(UsageRecords)
            .expr_as(key.clone(), Alias::new("k"))
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("calls"))
            .expr_as(
                Expr::cust("CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT)"),
                Alias::new("errors"),
            )
            .expr_as(
                Expr::cust("CAST(SUM(CASE WHEN aborted THEN 1 ELSE 0 END) AS BIGINT)"),
                Alias::new("aborted_calls"),
            )
            .expr_as(
                Expr::cust("CAST(SUM(CASE WHEN estimated THEN 1 ELSE 0 END) AS BIGINT)"),
                Alias::new("estimated_calls"),
            )
            .expr_as(sum("prompt_tokens"), Alias::new("prompt"))
            .expr_as(sum("completion_tokens"), Alias::new("completion"))
            .expr_as(sum("total_tokens"), Alias::new("total"))
            .expr_as(sum("bytes_out"), Alias::new("bytes"))
            .expr_as(Expr::cust("MIN(created_at_ms)"), Alias::new("first_ms"))
            .expr_as(Expr::cust("MAX(created_at_ms)"), Alias::new("last_ms"))
            .group_by_columns([Alias::new("k")])
            .order_by(Alias::new("last_ms"), Order::Desc);
        if let Some(id) = &filter.token_id {
            q.and_where(Expr::col(C::TokenId).eq(id.clone()));
        }
        if let Some(since) = filter.since {
            q.and_where(Expr::col(C::CreatedAtMs).gte(since.timestamp_millis()));
        }
        if let Some(until) = filter.until {
            q.and_where(Expr::col(C::CreatedAtMs).lt(until.timestamp_millis()));
        }
        let rows = self.db.query_all(&q).await?;
        rows.iter()
            .map(|row| {
                let get = |name: &str| row.try_get::<i64>("", name);
                let key = match group {
                    UsageGroup::Token => row.try_get::<String>("", "k")?,
                    UsageGroup::Model => row
                        .try_get::<Option<String>>("", "k")?
                        .unwrap_or_else(|| "(none)".to_string()),
                    UsageGroup::Day => from_ms(get("k")? * DAY_MS).format("%Y-%m-%d").to_string(),
                };
                Ok(UsageRow {
                    key,
                    calls: get("calls")?,
                    errors: get("errors")?,
                    aborted: get("aborted_calls")?,
                    estimated: get("estimated_calls")?,
                    prompt_tokens: get("prompt")?,
                    completion_tokens: get("completion")?,
                    total_tokens: get("total")?,
                    bytes_out: get("bytes")?,
                    first_at: from_ms(get("first_ms")?),
                    last_at: from_ms(get("last_ms")?),
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveValue::NotSet, QueryTrait, Set};

    /// The record as an active model, the way sea-orm's own insert takes it.
    fn active(r: &UsageRecord) -> usage_record::ActiveModel {
        usage_record::ActiveModel {
            id: NotSet,
            token_id: Set(r.token_id.clone()),
            created_at_ms: Set(r.at.timestamp_millis()),
            method: Set(r.method.chars().take(16).collect()),
            path: Set(r.path.clone()),
            model: Set(r.model.as_ref().map(|m| m.chars().take(255).collect())),
            status: Set(i16::try_from(r.status).unwrap_or(i16::MAX)),
            latency_ms: Set(clamp_i32(r.latency_ms)),
            ttfb_ms: Set(clamp_i32(r.ttfb_ms)),
            bytes_in: Set(clamp_i64(r.bytes_in)),
            bytes_out: Set(clamp_i64(r.bytes_out)),
            prompt_tokens: Set(r.prompt_tokens),
            completion_tokens: Set(r.completion_tokens),
            total_tokens: Set(r.total_tokens),
            stream: Set(r.stream),
            aborted: Set(r.aborted),
            estimated: Set(r.estimated),
        }
    }

    #[test]
    fn the_cached_usage_insert_is_the_one_sea_orm_builds() {
        let records: Vec<UsageRecord> = (0..4)
            .map(|i| UsageRecord {
                token_id: format!("tok_{i}"),
                at: Utc::now(),
                method: "POST-AND-A-METHOD-LONGER-THAN-16".into(),
                path: format!("/v1/chat/completions/{i}"),
                model: (i % 2 == 0).then(|| "m".repeat(300)),
                status: [200, 429, u16::MAX, 502][i],
                latency_ms: u32::MAX,
                ttfb_ms: 12,
                bytes_in: u64::MAX,
                bytes_out: 99,
                prompt_tokens: Some(i as i64),
                completion_tokens: None,
                total_tokens: (i > 1).then_some(7),
                stream: i % 2 == 1,
                aborted: i == 3,
                estimated: i == 2,
                charged: false,
            })
            .collect();
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            for rows in [1, 2, 4] {
                let piece = &records[..rows];
                let expected = UsageRecords::insert_many(piece.iter().map(active)).build(backend);
                let values: Vec<Value> = piece
                    .iter()
                    .flat_map(|r| usage_row(r).map(|(_, v)| v))
                    .collect();
                assert_eq!(usage_insert_text(backend, rows), expected.sql);
                // Twice: the second answer comes from the cache.
                assert_eq!(usage_insert_text(backend, rows), expected.sql);
                assert_eq!(Some(sea_orm::Values(values)), expected.values);
            }
        }
    }
}
