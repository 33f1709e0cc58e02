//! Issuers: backends allowed to mint signed tokens offline, within caps set by the admin.

use chrono::{DateTime, Utc};
use p256::PublicKey;
use serde::{Deserialize, Serialize};

use crate::policy::{Limits, Policy};
use crate::providers;
use crate::store::NewToken;
use crate::token::signed::SignedClaims;
use crate::token::{TokenId, fingerprint};

/// A policy an issuer's tokens must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Required {
    Origin,
    Model,
    Endpoint,
    MaxOutputTokens,
    MaxCalls,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuerCaps {
    /// Providers its tokens may name.
    pub providers: Vec<String>,
    /// Upstream base URLs its tokens may name (none: only the providers' own base URLs).
    pub upstreams: Vec<String>,
    /// Policies its tokens must carry.
    pub required: Vec<Required>,
    /// Longest lifetime (exp − iat), seconds.
    pub max_lifetime_secs: i64,
    /// Most calls per token.
    pub max_calls: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issuer {
    pub name: String,
    /// SEC1 compressed public key, hex.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub caps: IssuerCaps,
}

impl Issuer {
    pub fn verifying_key(&self) -> Option<PublicKey> {
        PublicKey::from_sec1_bytes(&hex::decode(&self.public_key).ok()?).ok()
    }
}

/// Why a signed token is refused (the relay maps these to its error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRefusal {
    #[error("unknown issuer, bad signature, or a claim outside the issuer's caps: {0}")]
    Invalid(&'static str),
    #[error("the issuer has been revoked")]
    IssuerRevoked,
    #[error("the token has expired")]
    Expired,
}

/// Issuer names: what `issuer add` accepts.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Allowed clock skew for `iat` in the future.
const SKEW_SECS: i64 = 60;

/// Checks a signed token's claims against its issuer's caps; returns the row to register.
pub fn check(
    claims: &SignedClaims,
    issuer: &Issuer,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<NewToken, SignedRefusal> {
    use SignedRefusal::Invalid;
    if issuer.revoked_at.is_some() {
        return Err(SignedRefusal::IssuerRevoked);
    }
    let now_s = now.timestamp();
    // Every claim that meets a cap is checked in range first: arithmetic on claims is
    // checked, and a value that does not fit refuses the token.
    let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(Invalid("exp"))?;
    if claims.iat < 0 {
        return Err(Invalid("iat"));
    }
    if claims.exp <= now_s {
        return Err(SignedRefusal::Expired);
    }
    if claims.iat > now_s.saturating_add(SKEW_SECS) || claims.exp <= claims.iat {
        return Err(Invalid("iat"));
    }
    let caps = &issuer.caps;
    let lifetime = claims
        .exp
        .checked_sub(claims.iat)
        .ok_or(Invalid("lifetime"))?;
    if lifetime > caps.max_lifetime_secs {
        return Err(Invalid("lifetime"));
    }
    if TokenId::parse(&claims.id).is_none() {
        return Err(Invalid("id"));
    }
    if !caps.providers.iter().any(|p| p == &claims.provider) {
        return Err(Invalid("provider"));
    }
    let provider = providers::lookup(&claims.provider).ok_or(Invalid("provider"))?;
    let upstream = match &claims.upstream {
        Some(u) => {
            let u = providers::parse_upstream(u).map_err(|_| Invalid("upstream"))?;
            if !caps.upstreams.iter().any(|allowed| allowed == &u) {
                return Err(Invalid("upstream"));
            }
            Some(u)
        }
        None if provider.base_url.is_none() => return Err(Invalid("upstream")),
        None => None,
    };
    let claimed_calls = claims
        .max_calls
        .map(|n| {
            i64::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(Invalid("max_calls"))
        })
        .transpose()?;
    let max_calls = match (claimed_calls, caps.max_calls) {
        (Some(n), Some(cap)) if n > cap => return Err(Invalid("max_calls")),
        (None, Some(cap)) => Some(cap),
        (n, _) => n,
    };
    for required in &caps.required {
        let present = match required {
            Required::Origin => !claims.origins.is_empty(),
            // A catch-all (`*`, `/*`) is no restriction: it does not meet the requirement.
            Required::Model => {
                !claims.models.is_empty()
                    && !claims
                        .models
                        .iter()
                        .any(|m| crate::policy::model_pattern_is_catch_all(m))
            }
            Required::Endpoint => {
                !claims.endpoints.is_empty()
                    && !claims
                        .endpoints
                        .iter()
                        .filter_map(|e| crate::policy::parse_endpoint(e).ok())
                        .any(|e| crate::policy::endpoint_rule_is_catch_all(&e))
            }
            Required::MaxOutputTokens => claims.max_output_tokens.is_some(),
            Required::MaxCalls => claims.max_calls.is_some(),
        };
        if !present {
            return Err(Invalid("required policy missing"));
        }
    }
    let policy = Policy {
        models: claims
            .models
            .iter()
            .map(|m| crate::policy::parse_model(m))
            .collect::<Result<_, _>>()
            .map_err(|_| Invalid("models"))?,
        origins: claims
            .origins
            .iter()
            .map(|o| crate::policy::parse_origin(o))
            .collect::<Result<_, _>>()
            .map_err(|_| Invalid("origins"))?,
        ips: Vec::new(),
        endpoints: claims
            .endpoints
            .iter()
            .map(|e| crate::policy::parse_endpoint(e))
            .collect::<Result<_, _>>()
            .map_err(|_| Invalid("endpoints"))?,
        rpm: None,
        concurrency: None,
        max_output_tokens: claims.max_output_tokens,
        // Signed claims carry no session limit: the relay's own holds.
        max_session_secs: None,
    };
    let route = providers::Route::new(provider.name, upstream.as_deref(), None)
        .map_err(|_| Invalid("upstream"))?;
    Ok(NewToken {
        id: claims.id.clone(),
        name: None,
        route,
        fingerprint: fingerprint(presented),
        kid: String::new(),
        key_hint: crate::secret::SecretString::new(claims.key.clone()).masked_hint(),
        limits: Limits {
            max_calls,
            max_total_tokens: None,
            expires_at: Some(expires_at),
            policy,
        },
    })
}
