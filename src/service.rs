//! Token operations shared by every front door (the CLI and the admin API): one
//! validation, one set of errors, one path to the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::KeyRing;
use crate::policy::{self, Limits, Policy, PolicyError};
use crate::providers::{self, Route, RouteError, UpstreamError};
use crate::secret::SecretString;
use crate::store::{
    NewToken, Store, StoreError, TokenRecord, TokenStatus, TokenUpdate, UsageFilter, UsageGroup,
    UsageRow,
};
use crate::token::{self, TokenClaims, TokenId};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    fn invalid(field: &'static str, message: impl ToString) -> Self {
        ServiceError::Invalid {
            field,
            message: message.to_string(),
        }
    }
}

impl From<PolicyError> for ServiceError {
    fn from(e: PolicyError) -> Self {
        let field = match e {
            PolicyError::Model(_) => "model",
            PolicyError::Origin(_) => "origin",
            PolicyError::Ip(_) => "ip",
            PolicyError::Endpoint(_) => "endpoint",
            PolicyError::Zero(name) => name,
        };
        ServiceError::invalid(field, e)
    }
}

impl From<RouteError> for ServiceError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::Upstream(e) => e.into(),
            RouteError::Auth(_) | RouteError::AuthNotTaken(..) => ServiceError::invalid("auth", e),
        }
    }
}

impl From<UpstreamError> for ServiceError {
    fn from(e: UpstreamError) -> Self {
        let field = match e {
            UpstreamError::UnknownProvider(_) => "provider",
            _ => "upstream",
        };
        ServiceError::invalid(field, e)
    }
}

/// A token's limits as people and clients write them, before validation: the limit fields
/// of `token issue` and `token update` and of the admin API's bodies, in one place.
///
/// Each field absent (`None`) leaves the limit as it is; `Some(None)` (JSON `null`, a
/// `--clear-*` flag) removes it; `Some(Some(v))` sets it. A list set empty removes it too.
/// Issuing applies a change to a token without limits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitsChange {
    #[serde(default, deserialize_with = "present")]
    pub max_calls: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub max_total_tokens: Option<Option<u64>>,
    /// A lifetime from now, like `30m`, `24h`, `7d`.
    #[serde(default, deserialize_with = "present")]
    pub expires_in: Option<Option<String>>,
    /// An RFC 3339 time.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub origins: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub ips: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub endpoints: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub concurrency: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_output_tokens: Option<Option<u32>>,
    /// The longest realtime session, like `10m`.
    #[serde(default, deserialize_with = "present")]
    pub max_session: Option<Option<String>>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, by `default`).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl LimitsChange {
    /// The limits after this change, each value validated as at issue time.
    pub fn apply(&self, current: &Limits, now: DateTime<Utc>) -> Result<Limits, ServiceError> {
        let p = &current.policy;
        let positive = |name| move |v: &u32| policy::parse_positive(name, *v);
        Ok(Limits {
            max_calls: change(&self.max_calls, current.max_calls, |v| {
                positive_limit("max_calls", *v)
            })?,
            max_total_tokens: change(&self.max_total_tokens, current.max_total_tokens, |v| {
                positive_limit("max_total_tokens", *v)
            })?,
            expires_at: self.expiry(now)?.unwrap_or(current.expires_at),
            policy: Policy {
                models: changed_list(&self.models, &p.models, policy::parse_model)?,
                origins: changed_list(&self.origins, &p.origins, policy::parse_origin)?,
                ips: changed_list(&self.ips, &p.ips, policy::parse_ip_range)?,
                endpoints: changed_list(&self.endpoints, &p.endpoints, policy::parse_endpoint)?,
                rpm: change(&self.rpm, p.rpm, positive("rpm"))?,
                concurrency: change(&self.concurrency, p.concurrency, positive("concurrency"))?,
                max_output_tokens: change(
                    &self.max_output_tokens,
                    p.max_output_tokens,
                    positive("max_output_tokens"),
                )?,
                max_session_secs: change(&self.max_session, p.max_session_secs, |d| {
                    session_length(d)
                })?,
            },
        })
    }

    /// The expiry change: `None` to keep, `Some(None)` to never expire, `Some(Some(at))`.
    fn expiry(&self, now: DateTime<Utc>) -> Result<Option<Option<DateTime<Utc>>>, ServiceError> {
        match (&self.expires_in, &self.expires_at) {
            (Some(Some(_)), Some(Some(_))) => Err(ServiceError::invalid(
                "expires",
                "give either expires-in or expires-at, not both",
            )),
            (Some(Some(d)), _) => {
                let duration =
                    parse_duration(d).map_err(|m| ServiceError::invalid("expires_in", m))?;
                Ok(Some(Some(now + duration)))
            }
            (_, Some(Some(at))) => {
                let at = DateTime::parse_from_rfc3339(at)
                    .map_err(|_| {
                        ServiceError::invalid(
                            "expires_at",
                            format!("{at:?} is not an RFC 3339 time like 2026-12-31T23:59:00Z"),
                        )
                    })?
                    .with_timezone(&Utc);
                if at <= now {
                    return Err(ServiceError::invalid(
                        "expires_at",
                        "the time is in the past",
                    ));
                }
                Ok(Some(Some(at)))
            }
            (Some(None), _) | (_, Some(None)) => Ok(Some(None)),
            (None, None) => Ok(None),
        }
    }
}

/// One optional limit after a change.
fn change<T, U, E: Into<ServiceError>>(
    field: &Option<Option<T>>,
    current: Option<U>,
    parse: impl Fn(&T) -> Result<U, E>,
) -> Result<Option<U>, ServiceError> {
    match field {
        None => Ok(current),
        Some(None) => Ok(None),
        Some(Some(v)) => parse(v).map(Some).map_err(Into::into),
    }
}

/// One list after a change: kept, cleared, or replaced by its parsed, deduplicated items.
fn changed_list<T: PartialEq + Clone>(
    field: &Option<Option<Vec<String>>>,
    current: &[T],
    parse: impl Fn(&str) -> Result<T, PolicyError>,
) -> Result<Vec<T>, ServiceError> {
    match field {
        None => Ok(current.to_vec()),
        Some(None) => Ok(Vec::new()),
        Some(Some(items)) => {
            let mut out = Vec::new();
            for item in items {
                let item = parse(item)?;
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Ok(out)
        }
    }
}

fn positive_limit(field: &'static str, value: u64) -> Result<i64, ServiceError> {
    match value {
        0 => Err(ServiceError::invalid(field, "must be at least 1")),
        n => i64::try_from(n).map_err(|_| ServiceError::invalid(field, "too large")),
    }
}

/// A positive duration like `90s`, `30m`, `24h`, `7d`.
/// A realtime session's longest length, as whole seconds: at least one, at most a day.
fn session_length(s: &str) -> Result<u32, ServiceError> {
    let invalid = |m: String| ServiceError::invalid("max_session", m);
    let d = parse_duration(s).map_err(invalid)?;
    let secs = d.num_seconds();
    if !(1..=86_400).contains(&secs) {
        return Err(invalid(format!("{s:?} must be between 1s and 24h")));
    }
    Ok(secs as u32)
}

pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?} is not a duration like 30m, 24h or 7d"))?;
    if d.is_zero() {
        return Err(format!("{s:?} is zero"));
    }
    chrono::Duration::from_std(d).map_err(|_| format!("{s:?} is too long"))
}

#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub provider: String,
    pub upstream: Option<String>,
    pub auth: Option<String>,
    pub name: Option<String>,
    pub api_key: SecretString,
    pub limits: LimitsChange,
}

/// A freshly issued token: the only time the token string exists outside the client.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub record: TokenRecord,
    #[serde(serialize_with = "expose")]
    pub token: SecretString,
}

fn expose<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

pub async fn issue(
    store: &Store,
    ring: &KeyRing,
    request: IssueRequest,
) -> Result<IssuedToken, ServiceError> {
    let now = Utc::now();
    let route = Route::new(
        request.provider.trim(),
        request.upstream.as_deref(),
        request.auth.as_deref(),
    )?;
    let api_key = SecretString::new(request.api_key.expose().trim());
    if api_key.is_empty() {
        return Err(ServiceError::invalid("api_key", "the API key is empty"));
    }
    if api_key.expose().chars().any(|c| c.is_control()) {
        return Err(ServiceError::invalid(
            "api_key",
            "the API key holds control characters",
        ));
    }
    let name = request
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ServiceError::invalid("name", "longer than 200 characters"));
    }
    let limits = request.limits.apply(&Limits::default(), now)?;

    let id = TokenId::random();
    let claims = TokenClaims {
        id,
        api_key: api_key.clone(),
    };
    let sealed = token::seal(&ring.active_public(), &claims)
        .map_err(|e| ServiceError::invalid("api_key", e))?;
    let record = store
        .insert_token(&NewToken {
            id: id.to_string(),
            name,
            route,
            fingerprint: token::fingerprint(sealed.expose()),
            kid: ring.active_kid().to_string(),
            key_hint: api_key.masked_hint(),
            limits,
        })
        .await?;
    Ok(IssuedToken {
        record,
        token: sealed,
    })
}

pub async fn revoke(store: &Store, id_prefix: &str) -> Result<TokenRecord, ServiceError> {
    let record = store.resolve_id(id_prefix).await?;
    Ok(store.revoke(&record.id).await?)
}

/// A change to a token's name (`None` keeps it; empty removes it) and limits.
pub async fn update(
    store: &Store,
    id_prefix: &str,
    name: Option<String>,
    limits: &LimitsChange,
) -> Result<TokenRecord, ServiceError> {
    let current = store.resolve_id(id_prefix).await?;
    let update = TokenUpdate {
        name: name.map(|n| Some(n.trim().to_string()).filter(|n| !n.is_empty())),
        limits: limits.apply(&current.limits, Utc::now())?,
        before: current.limits.clone(),
    };
    Ok(store.update_token(&current.id, &update).await?)
}

/// Tokens, newest first: active and exhausted ones, or all with `include_ended`.
pub async fn list(store: &Store, include_ended: bool) -> Result<Vec<TokenRecord>, ServiceError> {
    let now = Utc::now();
    Ok(store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|r| {
            include_ended || !matches!(r.status(now), TokenStatus::Revoked | TokenStatus::Expired)
        })
        .collect())
}

/// The relays sharing the database, heard from within the time after which they are
/// presumed dead; none on SQLite.
pub async fn relays(store: &Store) -> Result<Vec<crate::store::RelayInfo>, ServiceError> {
    Ok(store.list_relays(crate::store::RELAY_TTL).await?)
}

pub async fn show(store: &Store, id_prefix: &str) -> Result<TokenRecord, ServiceError> {
    Ok(store.resolve_id(id_prefix).await?)
}

/// A usage report request as people and clients give it.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub by: UsageGroup,
    pub token: Option<String>,
    /// A duration back from now (`24h`, `7d`) or an RFC 3339 time.
    pub since: Option<String>,
    pub until: Option<String>,
}

pub async fn usage(store: &Store, query: &UsageQuery) -> Result<Vec<UsageRow>, ServiceError> {
    let now = Utc::now();
    let since = query
        .since
        .as_deref()
        .map(|v| parse_when("since", v, now))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|v| parse_when("until", v, now))
        .transpose()?;
    let token_id = match &query.token {
        Some(prefix) => Some(store.resolve_id(prefix).await?.id),
        None => None,
    };
    let filter = UsageFilter {
        token_id,
        since,
        until,
    };
    Ok(store.usage_report(&filter, query.by).await?)
}

/// A time given as a duration back from `now` or as RFC 3339.
pub fn parse_when(
    field: &'static str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ServiceError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    let back = parse_duration(value).map_err(|_| {
        ServiceError::invalid(
            field,
            format!("{value:?} is neither a duration like 24h nor an RFC 3339 time"),
        )
    })?;
    Ok(now - back)
}

/// Registers an issuer. Without a public key a key pair is generated and its private half
/// returned (shown once, never stored).
pub async fn add_issuer(
    store: &Store,
    name: &str,
    public_key: Option<p256::PublicKey>,
    caps: crate::issuer::IssuerCaps,
) -> Result<(crate::issuer::Issuer, Option<p256::SecretKey>), ServiceError> {
    if !crate::issuer::valid_name(name) {
        return Err(ServiceError::invalid(
            "name",
            "an issuer name is 1–64 letters, digits, '-', '_' or '.'",
        ));
    }
    if caps.providers.is_empty() {
        return Err(ServiceError::invalid(
            "provider",
            "give at least one provider",
        ));
    }
    for p in &caps.providers {
        providers::lookup(p).ok_or_else(|| {
            ServiceError::from(providers::UpstreamError::UnknownProvider(p.clone()))
        })?;
    }
    let upstreams = caps
        .upstreams
        .iter()
        .map(|u| providers::parse_upstream(u))
        .collect::<Result<Vec<_>, _>>()?;
    if caps.max_lifetime_secs <= 0 {
        return Err(ServiceError::invalid("max_lifetime", "must be positive"));
    }
    if caps.max_calls.is_some_and(|n| n <= 0) {
        return Err(ServiceError::invalid("max_calls", "must be at least 1"));
    }
    let (public, secret) = match public_key {
        Some(p) => (p, None),
        None => {
            let secret = p256::SecretKey::random(&mut rand_core::OsRng);
            (secret.public_key(), Some(secret))
        }
    };
    let caps = crate::issuer::IssuerCaps { upstreams, ..caps };
    let issuer = store
        .insert_issuer(
            name,
            &hex::encode(crate::crypto::ecies::compressed(&public)),
            &caps,
        )
        .await
        .map_err(|e| match e {
            StoreError::Exists(n) => {
                ServiceError::invalid("name", format!("issuer {n} already exists"))
            }
            other => other.into(),
        })?;
    Ok((issuer, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: serde_json::Value) -> LimitsChange {
        serde_json::from_value(json).expect("a limits change")
    }

    #[test]
    fn absent_keeps_null_clears_and_a_value_sets() {
        let now = Utc::now();
        let issued = change(serde_json::json!({
            "max_calls": 10, "expires_in": "1h", "models": ["gpt-4o*"], "rpm": 60,
            "max_output_tokens": 256,
        }))
        .apply(&Limits::default(), now)
        .unwrap();
        assert_eq!(issued.max_calls, Some(10));
        assert_eq!(issued.expires_at, Some(now + chrono::Duration::hours(1)));
        assert_eq!(issued.policy.models.len(), 1);
        assert_eq!(issued.policy.rpm, Some(60));

        // Nothing given: nothing changes.
        assert_eq!(
            change(serde_json::json!({})).apply(&issued, now).unwrap(),
            issued
        );

        let updated = change(serde_json::json!({
            "max_calls": null, "expires_at": null, "models": null, "rpm": 30,
        }))
        .apply(&issued, now)
        .unwrap();
        assert_eq!(updated.max_calls, None);
        assert_eq!(updated.expires_at, None);
        assert!(updated.policy.models.is_empty());
        assert_eq!(updated.policy.rpm, Some(30));
        assert_eq!(
            updated.policy.max_output_tokens, issued.policy.max_output_tokens,
            "an absent field is left alone"
        );
    }

    #[test]
    fn every_value_is_validated_as_at_issue() {
        let now = Utc::now();
        for (json, field) in [
            (serde_json::json!({"max_calls": 0}), "max_calls"),
            (serde_json::json!({"rpm": 0}), "rpm"),
            (serde_json::json!({"expires_in": "soon"}), "expires_in"),
            (
                serde_json::json!({"expires_at": "2000-01-01T00:00:00Z"}),
                "expires_at",
            ),
            (serde_json::json!({"origins": ["not an origin"]}), "origin"),
            (
                serde_json::json!({"expires_in": "1h", "expires_at": "2999-01-01T00:00:00Z"}),
                "expires",
            ),
        ] {
            match change(json.clone()).apply(&Limits::default(), now) {
                Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
