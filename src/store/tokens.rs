use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement, UpdateStatement};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Iterable,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;

use super::entities::prelude::Tokens;
use super::entities::token::{self, Column};
use super::{Store, StoreError};
use crate::policy::{Limits, Policy};
use crate::providers::Route;

/// Most tokens per `add_calls` statement (each takes three bound parameters).
const ADD_CALLS_CHUNK: usize = 256;

/// A token as the rest of the program sees it: limits and state, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: Option<String>,
    /// Where its calls go. `None` only for a signed token revoked before its first use,
    /// whose row names no upstream (see [`Store::revoke_unused_signed`]).
    #[serde(flatten, serialize_with = "route_or_placeholder")]
    pub route: Option<Arc<Route>>,
    pub kid: String,
    pub key_hint: String,
    pub used_calls: i64,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Total tokens recorded so far.
    pub used_tokens: i64,
    /// The issuer that minted it, for signed tokens.
    pub issuer: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
}

/// The `provider` column of a placeholder row (see [`TokenRecord::route`]).
const NO_PROVIDER: &str = "-";

/// A placeholder row names its provider `-` in JSON too, as in its column.
fn route_or_placeholder<S: serde::Serializer>(
    route: &Option<Arc<Route>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match route {
        Some(route) => route.serialize(s),
        None => {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry("provider", NO_PROVIDER)?;
            map.end()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
    Exhausted,
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Exhausted => "exhausted",
        })
    }
}

impl TokenRecord {
    /// Revoked beats expired beats exhausted: the most final state wins.
    pub fn status(&self, now: DateTime<Utc>) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.limits.expires_at.is_some_and(|at| at <= now) {
            TokenStatus::Expired
        } else if self
            .limits
            .max_calls
            .is_some_and(|max| self.used_calls >= max)
            || self.token_budget_spent()
        {
            TokenStatus::Exhausted
        } else {
            TokenStatus::Active
        }
    }
}

impl TokenRecord {
    pub fn token_budget_spent(&self) -> bool {
        self.limits
            .max_total_tokens
            .is_some_and(|max| self.used_tokens >= max)
    }

    pub fn policy(&self) -> &Policy {
        &self.limits.policy
    }

    /// The provider's name, `-` for a placeholder row.
    pub fn provider_name(&self) -> &'static str {
        self.route
            .as_ref()
            .map_or(NO_PROVIDER, |r| r.provider().name)
    }
}

/// Everything needed to register an issued token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: Option<String>,
    pub route: Route,
    pub fingerprint: String,
    pub kid: String,
    pub key_hint: String,
    pub limits: Limits,
}

/// A change to a token (`token update`): its name (`None` leaves it as it is) and its
/// limits, as they were read (`before`) and as they are to be.
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    pub name: Option<Option<String>>,
    pub before: Limits,
    pub limits: Limits,
}

/// The outcome of trying to count one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    Counted,
    Exhausted,
    Revoked,
    Missing,
}

fn json_list<T: Serialize>(items: &[T]) -> Option<String> {
    (!items.is_empty()).then(|| serde_json::to_string(items).expect("lists serialize"))
}

fn parse_list<T: serde::de::DeserializeOwned>(
    column: &str,
    value: &Option<String>,
) -> Result<Vec<T>, StoreError> {
    match value {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|_| StoreError::Corrupt(format!("tokens.{column} is not a JSON list"))),
    }
}

/// A limit column: stored as a signed integer, read back only as a positive `u32`.
fn parse_positive(column: &str, value: Option<i32>) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| StoreError::Corrupt(format!("tokens.{column} is {v}")))
        })
        .transpose()
}

/// Every column parsed into its type here, once: a row that does not parse is refused
/// where it is read, with the column named.
impl TryFrom<token::Model> for TokenRecord {
    type Error = StoreError;

    fn try_from(m: token::Model) -> Result<Self, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("token {}: {what}", m.id));
        let route = if m.provider == NO_PROVIDER {
            if m.revoked_at.is_none() {
                return Err(corrupt("no provider, yet not revoked".into()));
            }
            None
        } else {
            let route = Route::new(&m.provider, m.upstream.as_deref(), m.auth.as_deref())
                .map_err(|e| corrupt(e.to_string()))?;
            Some(Arc::new(route))
        };
        let policy = Policy {
            models: parse_list("allowed_models", &m.allowed_models)?,
            origins: parse_list("allowed_origins", &m.allowed_origins)?,
            ips: parse_list("allowed_ips", &m.allowed_ips)?,
            endpoints: parse_list("allowed_endpoints", &m.allowed_endpoints)?,
            rpm: parse_positive("rpm", m.rpm)?,
            concurrency: parse_positive("concurrency", m.concurrency)?,
            max_output_tokens: parse_positive("max_output_tokens", m.max_output_tokens)?,
            max_session_secs: parse_positive("max_session_secs", m.max_session_secs)?,
        };
        Ok(TokenRecord {
            id: m.id,
            name: m.name,
            route,
            kid: m.kid,
            key_hint: m.key_hint,
            used_calls: m.used_calls,
            revoked_at: m.revoked_at,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            used_tokens: m.used_tokens,
            issuer: m.issuer,
            limits: Limits {
                max_calls: m.max_calls,
                max_total_tokens: m.max_total_tokens,
                expires_at: m.expires_at,
                policy,
            },
        })
    }
}

fn set_limits(active: &mut token::ActiveModel, limits: &Limits) {
    let policy = &limits.policy;
    active.max_calls = Set(limits.max_calls);
    active.max_total_tokens = Set(limits.max_total_tokens);
    active.expires_at = Set(limits.expires_at);
    active.allowed_models = Set(json_list(&policy.models));
    active.allowed_origins = Set(json_list(&policy.origins));
    active.allowed_ips = Set(json_list(&policy.ips));
    active.allowed_endpoints = Set(json_list(&policy.endpoints));
    let clamp = |v: Option<u32>| v.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    active.rpm = Set(clamp(policy.rpm));
    active.concurrency = Set(clamp(policy.concurrency));
    active.max_output_tokens = Set(clamp(policy.max_output_tokens));
    active.max_session_secs = Set(clamp(policy.max_session_secs));
}

/// Sets only the limit columns `after` changes from `before`: a limit the update left
/// alone is not written, so a change another admin made to it meanwhile stands.
fn set_changed_limits(active: &mut token::ActiveModel, before: &Limits, after: &Limits) {
    let mut was = <token::ActiveModel as Default>::default();
    let mut will = <token::ActiveModel as Default>::default();
    set_limits(&mut was, before);
    set_limits(&mut will, after);
    for column in Column::iter() {
        if let (ActiveValue::Set(old), ActiveValue::Set(new)) = (was.get(column), will.get(column))
            && old != new
        {
            active.set(column, new);
        }
    }
}

/// The row of a new token, unused; `issuer` for signed tokens.
pub(super) fn new_row(new: &NewToken, issuer: Option<&str>) -> token::ActiveModel {
    let route = &new.route;
    let mut active = token::ActiveModel {
        id: Set(new.id.clone()),
        name: Set(new.name.clone()),
        provider: Set(route.provider().name.to_string()),
        upstream: Set(route.upstream().map(str::to_string)),
        auth: Set(route.auth_override().map(|a| a.to_string())),
        fingerprint: Set(new.fingerprint.clone()),
        kid: Set(new.kid.clone()),
        key_hint: Set(new.key_hint.clone()),
        used_calls: Set(0),
        revoked_at: Set(None),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        used_tokens: Set(0),
        issuer: Set(issuer.map(str::to_string)),
        ..Default::default()
    };
    set_limits(&mut active, &new.limits);
    active
}

/// The row that refuses a signed token revoked before its first use: no upstream, no key.
pub(super) fn placeholder_row(
    id: &str,
    fingerprint: String,
    issuer: &str,
    revoked_at: DateTime<Utc>,
) -> token::ActiveModel {
    let mut active = token::ActiveModel {
        id: Set(id.to_string()),
        name: Set(None),
        provider: Set(NO_PROVIDER.to_string()),
        upstream: Set(None),
        auth: Set(None),
        fingerprint: Set(fingerprint),
        kid: Set(String::new()),
        key_hint: Set("…".into()),
        used_calls: Set(0),
        revoked_at: Set(Some(revoked_at)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        used_tokens: Set(0),
        issuer: Set(Some(issuer.to_string())),
        ..Default::default()
    };
    set_limits(&mut active, &Limits::default());
    active
}

impl Store {
    pub async fn insert_token(&self, new: &NewToken) -> Result<TokenRecord, StoreError> {
        new_row(new, None).insert(&self.writer).await?.try_into()
    }

    /// All tokens, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Tokens::find()
            .order_by_desc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    pub async fn get_token(&self, id: &str) -> Result<TokenRecord, StoreError> {
        Tokens::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .try_into()
    }

    /// Resolves a unique id prefix (as people type them) to its token.
    pub async fn resolve_id(&self, prefix: &str) -> Result<TokenRecord, StoreError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        // Hex only: this also keeps LIKE wildcards out of the pattern.
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::BadId(prefix));
        }
        let mut found = Tokens::find()
            .filter(Column::Id.starts_with(&prefix))
            .limit(2)
            .all(&self.db)
            .await?;
        match found.len() {
            0 => Err(StoreError::NotFound(prefix)),
            1 => found.pop().expect("one row").try_into(),
            _ => {
                let count = Tokens::find()
                    .filter(Column::Id.starts_with(&prefix))
                    .count(&self.db)
                    .await? as usize;
                Err(StoreError::AmbiguousId { prefix, count })
            }
        }
    }

    pub async fn find_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Tokens::find()
            .filter(Column::Fingerprint.eq(fingerprint))
            .one(&self.db)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    /// Revokes a token; revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str) -> Result<TokenRecord, StoreError> {
        Tokens::update_many()
            .col_expr(Column::RevokedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id))
            .filter(Column::RevokedAt.is_null())
            .exec(&self.writer)
            .await?;
        self.get_token(id).await
    }

    pub async fn update_token(
        &self,
        id: &str,
        update: &TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let current = Tokens::find_by_id(id.to_string())
            .one(&self.writer)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut active: token::ActiveModel = current.into();
        if let Some(name) = &update.name {
            active.name = Set(name.clone());
        }
        set_changed_limits(&mut active, &update.before, &update.limits);
        active.update(&self.writer).await?.try_into()
    }

    /// [`Store::try_consume`] for several calls (a token id each) in one transaction, on
    /// the calling thread, if that can be done without waiting (SQLite, after
    /// [`Store::with_inline_counts`]); `None` otherwise.
    pub fn try_consume_now(&self, ids: &[&str]) -> Option<Result<Vec<Consume>, StoreError>> {
        self.inline.as_ref()?.try_consume(ids)
    }

    /// Whether [`Store::try_consume_now`] can answer at all.
    pub fn counts_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// [`Store::give_back`] on the calling thread, if that can be done without waiting.
    pub fn give_back_now(&self, id: &str) -> Option<Result<(), StoreError>> {
        self.inline.as_ref()?.give_back(id)
    }

    /// Counts one call if the token is not revoked and has calls left, in one atomic
    /// statement: however many requests race, at most `max_calls` are counted.
    pub async fn try_consume(&self, id: &str) -> Result<Consume, StoreError> {
        let counted = self
            .writer
            .execute(&consume_statement(id, 1, Utc::now()))
            .await?
            .rows_affected();
        if counted == 1 {
            return Ok(Consume::Counted);
        }
        let row = self.writer.query_one(&revoked_statement(id)).await?;
        let revoked = row
            .map(|r| r.try_get::<Option<DateTime<Utc>>>("", "revoked_at"))
            .transpose()?
            .map(|at| at.is_some());
        Ok(refusal(revoked))
    }

    /// Adds a batch of calls to tokens without a call limit (the counter group-commits them).
    pub async fn add_calls(
        &self,
        calls: &[(String, i64)],
        last_used_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement per piece: `used_calls + CASE id WHEN .. THEN n .. END`. A piece keeps
        // the statement well under every backend's bound-parameter limit; several pieces
        // are written in one transaction, so that a batch is counted whole or not at all.
        let pieces = super::statement_pieces(calls, ADD_CALLS_CHUNK);
        match pieces[..] {
            [] => return Ok(()),
            [piece] => return add_calls_piece(&self.writer, piece, last_used_at).await,
            _ => {}
        }
        let txn = self.writer.begin().await?;
        for piece in pieces {
            add_calls_piece(&txn, piece, last_used_at).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Gives back a call that was counted but never reached the provider.
    pub async fn give_back(&self, id: &str) -> Result<(), StoreError> {
        self.writer.execute(&give_back_statement(id)).await?;
        Ok(())
    }
}

// The counting rule, written once. The asynchronous path runs these statements through
// sea-orm, the inline SQLite path (`inline.rs`) builds them for SQLite and runs them on its
// own connection, so the two cannot drift apart.

/// Counts `calls` calls of a token together: only for a token that exists, is not revoked
/// and has that many calls left (with 1, the rule for every call).
pub(super) fn consume_statement(id: &str, calls: i64, now: DateTime<Utc>) -> UpdateStatement {
    Query::update()
        .table(Tokens)
        .value(Column::UsedCalls, Expr::col(Column::UsedCalls).add(calls))
        .value(Column::LastUsedAt, now)
        .and_where(Column::Id.eq(id))
        .and_where(Column::RevokedAt.is_null())
        .cond_where(
            Condition::any().add(Column::MaxCalls.is_null()).add(
                Expr::col(Column::UsedCalls)
                    .add(calls)
                    .lte(Expr::col(Column::MaxCalls)),
            ),
        )
        .to_owned()
}

/// Gives back a call that never reached the provider.
pub(super) fn give_back_statement(id: &str) -> UpdateStatement {
    Query::update()
        .table(Tokens)
        .value(Column::UsedCalls, Expr::col(Column::UsedCalls).sub(1))
        .and_where(Column::Id.eq(id))
        .and_where(Column::UsedCalls.gt(0))
        .to_owned()
}

/// After a call was not counted: whether the token is revoked, and so why.
pub(super) fn revoked_statement(id: &str) -> SelectStatement {
    Query::select()
        .column(Column::RevokedAt)
        .from(Tokens)
        .and_where(Column::Id.eq(id))
        .to_owned()
}

/// Why a call was not counted, from [`revoked_statement`]'s answer (`None`: no such token).
pub(super) fn refusal(revoked: Option<bool>) -> Consume {
    match revoked {
        None => Consume::Missing,
        Some(true) => Consume::Revoked,
        Some(false) => Consume::Exhausted,
    }
}

/// One `add_calls` statement, on the writer or inside its transaction.
async fn add_calls_piece<C: ConnectionTrait>(
    db: &C,
    piece: &[(String, i64)],
    last_used_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(((first_id, first_n), rest)) = piece.split_first() else {
        return Ok(());
    };
    let increment = rest
        .iter()
        .fold(
            Expr::case(Column::Id.eq(first_id.as_str()), *first_n),
            |case, (id, n)| case.case(Column::Id.eq(id.as_str()), *n),
        )
        .finally(0i64);
    Tokens::update_many()
        .col_expr(
            Column::UsedCalls,
            Expr::col(Column::UsedCalls).add(increment),
        )
        .col_expr(Column::LastUsedAt, Expr::value(last_used_at))
        .filter(Column::Id.is_in(piece.iter().map(|(id, _)| id.as_str())))
        .exec(db)
        .await?;
    Ok(())
}
