//! The Rust API for backends: mint issuer-signed tokens offline ([`Issuer`]) and call the
//! relay's admin HTTP API ([`AdminClient`]). The Python and Node SDKs in `sdk/` do the same.
//!
//! It depends on `relayapi-core` alone of relayapi: no database, server or CLI crates.

use std::time::Duration;

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p256::{PublicKey, SecretKey};
use serde_json::Value;

use relayapi_core::secret::SecretString;
use relayapi_core::token::TokenId;
use relayapi_core::token::signed::{SignedClaims, mint};

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("invalid key: {0}")]
    Key(&'static str),
    #[error("the claims cannot be sealed (empty or oversized API key)")]
    Claims,
    #[error("admin API: {status} {code}: {message}")]
    Admin {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
    },
    #[error("admin API unreachable: {0}")]
    Http(#[from] reqwest::Error),
}

/// Limits of a token to mint. Unset fields are left to the issuer's caps.
#[derive(Debug, Clone)]
pub struct MintOptions {
    pub provider: String,
    pub upstream: Option<String>,
    pub ttl: Duration,
    pub max_calls: Option<u64>,
    pub models: Vec<String>,
    pub origins: Vec<String>,
    pub endpoints: Vec<String>,
    pub max_output_tokens: Option<u32>,
}

impl Default for MintOptions {
    fn default() -> Self {
        Self {
            provider: "openai".into(),
            upstream: None,
            ttl: Duration::from_secs(300),
            max_calls: None,
            models: Vec::new(),
            origins: Vec::new(),
            endpoints: Vec::new(),
            max_output_tokens: None,
        }
    }
}

/// Mints signed tokens for one registered issuer.
pub struct Issuer {
    name: String,
    key: SecretKey,
    relay: PublicKey,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// `private_key_pem`: the issuer's PKCS#8 PEM; `relay_public_key`: SEC1 hex (as
    /// `relayapi issuer add` prints it) or SPKI PEM.
    pub fn new(
        name: &str,
        private_key_pem: &str,
        relay_public_key: &str,
    ) -> Result<Self, SdkError> {
        let key = SecretKey::from_pkcs8_pem(private_key_pem)
            .map_err(|_| SdkError::Key("the issuer key is not a P-256 PKCS#8 PEM"))?;
        let text = relay_public_key.trim();
        let relay = if text.starts_with("-----BEGIN") {
            PublicKey::from_public_key_pem(text).ok()
        } else {
            hex::decode(text)
                .ok()
                .and_then(|b| PublicKey::from_sec1_bytes(&b).ok())
        }
        .ok_or(SdkError::Key(
            "the relay public key is neither P-256 SEC1 hex nor PEM",
        ))?;
        Ok(Self {
            name: name.to_string(),
            key,
            relay,
        })
    }

    pub fn mint(&self, api_key: &str, options: &MintOptions) -> Result<SecretString, SdkError> {
        let iat = chrono::Utc::now().timestamp();
        let claims = SignedClaims {
            iss: self.name.clone(),
            id: TokenId::random().to_string(),
            key: api_key.to_string(),
            provider: options.provider.clone(),
            upstream: options.upstream.clone(),
            iat,
            exp: iat + options.ttl.as_secs() as i64,
            max_calls: options.max_calls,
            models: options.models.clone(),
            origins: options.origins.clone(),
            endpoints: options.endpoints.clone(),
            max_output_tokens: options.max_output_tokens,
        };
        mint(&self.key, &self.relay, &claims).map_err(|_| SdkError::Claims)
    }
}

/// The admin HTTP API (`relayapi serve --admin-token-env VAR`).
pub struct AdminClient {
    base: String,
    secret: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    pub fn new(base_url: &str, secret: SecretString) -> Result<Self, SdkError> {
        install_crypto_provider();
        Ok(Self {
            base: format!("{}/admin/v1", base_url.trim_end_matches('/')),
            secret,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SdkError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.secret.expose());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let error = &value["error"];
            return Err(SdkError::Admin {
                status,
                code: error["code"].as_str().unwrap_or_default().to_string(),
                message: error["message"].as_str().unwrap_or_default().to_string(),
                param: error["param"].as_str().map(str::to_string),
            });
        }
        Ok(value)
    }

    /// Fields as `token issue`'s flags (`api_key` required).
    pub async fn issue(&self, fields: &Value) -> Result<Value, SdkError> {
        self.call(reqwest::Method::POST, "/tokens", Some(fields))
            .await
    }

    pub async fn list(&self, all: bool) -> Result<Value, SdkError> {
        let path = if all { "/tokens?all=true" } else { "/tokens" };
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn get(&self, id: &str) -> Result<Value, SdkError> {
        self.call(reqwest::Method::GET, &format!("/tokens/{id}"), None)
            .await
    }

    /// A field left out stays; `null` clears it; a value sets it.
    pub async fn update(&self, id: &str, fields: &Value) -> Result<Value, SdkError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/tokens/{id}"),
            Some(fields),
        )
        .await
    }

    pub async fn revoke(&self, id: &str) -> Result<Value, SdkError> {
        self.call(reqwest::Method::DELETE, &format!("/tokens/{id}"), None)
            .await
    }

    /// `query`: e.g. `by=model&since=7d`.
    pub async fn usage(&self, query: &str) -> Result<Value, SdkError> {
        self.call(reqwest::Method::GET, &format!("/usage?{query}"), None)
            .await
    }
}

/// reqwest is built without a default TLS crypto backend; this picks ring, once, unless
/// the program chose one already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
