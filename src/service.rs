//! Token operations shared by every front door (the CLI and the admin API): one
//! validation, one set of errors, one path to the store.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::crypto::KeyRing;
use crate::policy::{self, Policy, PolicyError};
use crate::providers::{self, AuthStyle, UpstreamError};
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

impl From<UpstreamError> for ServiceError {
    fn from(e: UpstreamError) -> Self {
        let field = match e {
            UpstreamError::UnknownProvider(_) => "provider",
            _ => "upstream",
        };
        ServiceError::invalid(field, e)
    }
}

/// The policy fields as a person or a client gives them, before validation.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub models: Vec<String>,
    pub origins: Vec<String>,
    pub ips: Vec<String>,
    pub endpoints: Vec<String>,
    pub rpm: Option<u32>,
    pub concurrency: Option<u32>,
    pub max_output_tokens: Option<u32>,
}

impl PolicyInput {
    pub fn validate(&self) -> Result<Policy, ServiceError> {
        Ok(Policy {
            models: dedup(self.models.iter().map(|m| policy::parse_model(m)))?,
            origins: dedup(self.origins.iter().map(|o| policy::parse_origin(o)))?,
            ips: dedup(self.ips.iter().map(|i| policy::parse_ip_range(i)))?,
            endpoints: dedup(self.endpoints.iter().map(|e| policy::parse_endpoint(e)))?,
            rpm: self
                .rpm
                .map(|v| policy::parse_positive("rpm", v))
                .transpose()?,
            concurrency: self
                .concurrency
                .map(|v| policy::parse_positive("concurrency", v))
                .transpose()?,
            max_output_tokens: self
                .max_output_tokens
                .map(|v| policy::parse_positive("max_output_tokens", v))
                .transpose()?,
        })
    }
}

fn dedup<T: PartialEq>(
    items: impl Iterator<Item = Result<T, PolicyError>>,
) -> Result<Vec<T>, PolicyError> {
    let mut out = Vec::new();
    for item in items {
        let item = item?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// When a token stops working.
#[derive(Debug, Clone, Default)]
pub struct ExpiryInput {
    /// A duration from now, like `30m`, `24h`, `7d`.
    pub expires_in: Option<String>,
    /// An RFC 3339 time.
    pub expires_at: Option<String>,
}

impl ExpiryInput {
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ServiceError> {
        match (&self.expires_in, &self.expires_at) {
            (Some(_), Some(_)) => Err(ServiceError::invalid(
                "expires",
                "give either expires-in or expires-at, not both",
            )),
            (Some(d), None) => {
                let duration =
                    parse_duration(d).map_err(|m| ServiceError::invalid("expires_in", m))?;
                Ok(Some(now + duration))
            }
            (None, Some(at)) => {
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
                Ok(Some(at))
            }
            (None, None) => Ok(None),
        }
    }
}

fn positive_limit(field: &'static str, value: Option<u64>) -> Result<Option<i64>, ServiceError> {
    match value {
        Some(0) => Err(ServiceError::invalid(field, "must be at least 1")),
        Some(n) => i64::try_from(n)
            .map(Some)
            .map_err(|_| ServiceError::invalid(field, "too large")),
        None => Ok(None),
    }
}

/// A positive duration like `90s`, `30m`, `24h`, `7d`.
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
    pub max_calls: Option<u64>,
    pub max_total_tokens: Option<u64>,
    pub expiry: ExpiryInput,
    pub policy: PolicyInput,
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
    let (provider, upstream) =
        providers::resolve(request.provider.trim(), request.upstream.as_deref())?;
    let auth = request
        .auth
        .as_deref()
        .map(|a| a.parse::<AuthStyle>())
        .transpose()
        .map_err(|e| ServiceError::invalid("auth", e))?;
    if auth.is_some() && provider.name != providers::CUSTOM {
        return Err(ServiceError::invalid(
            "auth",
            format!(
                "only a custom provider takes an auth style; {} uses {}",
                provider.name, provider.auth
            ),
        ));
    }
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
    let max_calls = positive_limit("max_calls", request.max_calls)?;
    let max_total_tokens = positive_limit("max_total_tokens", request.max_total_tokens)?;
    let name = request
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ServiceError::invalid("name", "longer than 200 characters"));
    }
    let expires_at = request.expiry.resolve(now)?;
    let policy = request.policy.validate()?;

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
            provider: provider.name.to_string(),
            upstream,
            auth: auth.map(|a| a.to_string()),
            fingerprint: token::fingerprint(sealed.expose()),
            kid: ring.active_kid().to_string(),
            key_hint: api_key.masked_hint(),
            max_calls,
            expires_at,
            max_total_tokens,
            policy,
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

/// A change to a token's limits. Each `Option` left `None` keeps the current value; the
/// `clear_*` flags remove a limit or list.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub name: Option<String>,
    pub max_calls: Option<u64>,
    pub clear_max_calls: bool,
    pub max_total_tokens: Option<u64>,
    pub clear_max_total_tokens: bool,
    pub expiry: ExpiryInput,
    pub clear_expiry: bool,
    pub models: Option<Vec<String>>,
    pub origins: Option<Vec<String>>,
    pub ips: Option<Vec<String>>,
    pub endpoints: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub clear_rpm: bool,
    pub concurrency: Option<u32>,
    pub clear_concurrency: bool,
    pub max_output_tokens: Option<u32>,
    pub clear_max_output_tokens: bool,
}

fn set_or_clear<T>(value: Option<T>, clear: bool, current: Option<T>) -> Option<T> {
    if clear { None } else { value.or(current) }
}

pub async fn update(
    store: &Store,
    id_prefix: &str,
    request: UpdateRequest,
) -> Result<TokenRecord, ServiceError> {
    let current = store.resolve_id(id_prefix).await?;
    let now = Utc::now();
    let p = &current.policy;
    // Validate the merged policy exactly as at issue time.
    let policy = PolicyInput {
        models: request.models.clone().unwrap_or_else(|| p.models.clone()),
        origins: request.origins.clone().unwrap_or_else(|| p.origins.clone()),
        ips: request
            .ips
            .clone()
            .unwrap_or_else(|| p.ips.iter().map(|n| n.to_string()).collect()),
        endpoints: request
            .endpoints
            .clone()
            .unwrap_or_else(|| p.endpoints.clone()),
        rpm: set_or_clear(request.rpm, request.clear_rpm, p.rpm),
        concurrency: set_or_clear(
            request.concurrency,
            request.clear_concurrency,
            p.concurrency,
        ),
        max_output_tokens: set_or_clear(
            request.max_output_tokens,
            request.clear_max_output_tokens,
            p.max_output_tokens,
        ),
    }
    .validate()?;
    let expires_at = if request.clear_expiry {
        Some(None)
    } else {
        request.expiry.resolve(now)?.map(Some)
    };
    let update = TokenUpdate {
        name: request
            .name
            .map(|n| Some(n.trim().to_string()).filter(|n| !n.is_empty())),
        max_calls: if request.clear_max_calls {
            Some(None)
        } else {
            positive_limit("max_calls", request.max_calls)?.map(Some)
        },
        max_total_tokens: if request.clear_max_total_tokens {
            Some(None)
        } else {
            positive_limit("max_total_tokens", request.max_total_tokens)?.map(Some)
        },
        expires_at,
        policy: Some(policy),
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
