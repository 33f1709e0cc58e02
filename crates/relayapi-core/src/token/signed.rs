//! Issuer-signed tokens (format v2): minted offline by a backend, carrying their own
//! limits, sealed to the relay like any token, and signed by the issuer (ECDSA P-256) so
//! the relay can tell who minted them.
//!
//! ```text
//! header    = 0x02 ‖ kid (8 bytes)
//! plaintext = claims_len (u16 BE) ‖ claims (UTF-8 JSON) ‖ signature (64 bytes, r ‖ s)
//! signature = ECDSA-P256-SHA256(issuer key, "relayapi signed token v2" ‖ header ‖ claims)
//! ```
//! `docs/token-format.md` is the normative description, with test vectors.

use std::fmt;

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::{HEADER_LEN, TokenError, finish, header_with};
use crate::crypto::{Kid, ecies};
use crate::secret::SecretString;

pub const FORMAT_V2: u8 = 0x02;
const SIGNATURE_LABEL: &[u8] = b"relayapi signed token v2";
const SIGNATURE_LEN: usize = 64;
/// Longest claims document accepted.
const MAX_CLAIMS_LEN: usize = 8 * 1024;

/// What an issuer-signed token carries. Unknown fields are refused.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedClaims {
    /// The issuer's name, as registered with `relayapi issuer add`.
    pub iss: String,
    /// The token id: 32 lowercase hex characters, unique per token.
    pub id: String,
    /// The provider API key.
    pub key: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Issued at and expires at, Unix seconds.
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

impl fmt::Debug for SignedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedClaims")
            .field("iss", &self.iss)
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .field("provider", &self.provider)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// An opened v2 token whose signature has not been checked yet.
pub struct OpenedSigned {
    pub claims: SignedClaims,
    message: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

impl fmt::Debug for OpenedSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSigned")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl OpenedSigned {
    /// Does the issuer's key verify the signature? Only the low-S form is accepted: for
    /// each signature (r, s) the twin (r, n − s) verifies too, and would make a second
    /// token string of the same claims.
    pub fn verify(&self, issuer: &PublicKey) -> bool {
        let Ok(signature) = Signature::from_slice(&self.signature) else {
            return false;
        };
        if signature.normalize_s().is_some() {
            return false;
        }
        VerifyingKey::from(issuer)
            .verify(&self.message, &signature)
            .is_ok()
    }

    pub fn api_key(&self) -> SecretString {
        SecretString::new(self.claims.key.clone())
    }
}

fn signed_message(header: &[u8], claims: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_LABEL.len() + header.len() + claims.len());
    message.extend_from_slice(SIGNATURE_LABEL);
    message.extend_from_slice(header);
    message.extend_from_slice(claims);
    message
}

/// Mints a signed token: claims signed with the issuer's key, sealed to the relay's key.
pub fn mint(
    issuer: &SecretKey,
    server: &PublicKey,
    claims: &SignedClaims,
) -> Result<SecretString, TokenError> {
    mint_with_ephemeral(&SecretKey::random(&mut OsRng), issuer, server, claims)
}

/// [`mint`] with a given ephemeral key: only for reproducible test vectors (ECDSA here is
/// deterministic, RFC 6979).
pub fn mint_with_ephemeral(
    ephemeral: &SecretKey,
    issuer: &SecretKey,
    server: &PublicKey,
    claims: &SignedClaims,
) -> Result<SecretString, TokenError> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(claims).expect("claims serialize"));
    if json.len() > MAX_CLAIMS_LEN || claims.key.is_empty() {
        return Err(TokenError::BadApiKey);
    }
    let header = header_with(FORMAT_V2, Kid::of(server));
    let signature: Signature = SigningKey::from(issuer).sign(&signed_message(&header, &json));
    let signature = signature.normalize_s().unwrap_or(signature);
    let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(2 + json.len() + 64));
    plaintext.extend_from_slice(&(json.len() as u16).to_be_bytes());
    plaintext.extend_from_slice(&json);
    plaintext.extend_from_slice(&signature.to_bytes());
    Ok(finish(
        &header,
        &ecies::seal_with_ephemeral(ephemeral, server, &header, &plaintext),
    ))
}

/// Parses a decrypted v2 plaintext.
pub(super) fn decode(header: &[u8], plaintext: &[u8]) -> Result<OpenedSigned, TokenError> {
    debug_assert_eq!(header.len(), HEADER_LEN);
    if plaintext.len() < 2 + SIGNATURE_LEN {
        return Err(TokenError::Malformed);
    }
    let len = u16::from_be_bytes([plaintext[0], plaintext[1]]) as usize;
    if plaintext.len() != 2 + len + SIGNATURE_LEN || len > MAX_CLAIMS_LEN {
        return Err(TokenError::Malformed);
    }
    let json = &plaintext[2..2 + len];
    let claims: SignedClaims = serde_json::from_slice(json).map_err(|_| TokenError::Malformed)?;
    let signature: [u8; SIGNATURE_LEN] =
        plaintext[2 + len..].try_into().expect("64-byte signature");
    Ok(OpenedSigned {
        claims,
        message: signed_message(header, json),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::PrimeField;
    use p256::elliptic_curve::ops::Neg;

    #[test]
    fn only_the_low_s_signature_verifies() {
        let issuer = SecretKey::random(&mut OsRng);
        let header = header_with(FORMAT_V2, Kid::of(&issuer.public_key()));
        let message = signed_message(&header, b"{}");
        let low: Signature = SigningKey::from(&issuer).sign(&message);
        let low = low.normalize_s().unwrap_or(low);
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r.to_repr(), s.as_ref().neg().to_repr()).unwrap();
        let opened = |signature: Signature| OpenedSigned {
            claims: serde_json::from_str(
                r#"{"iss":"i","id":"00","key":"k","provider":"openai","iat":0,"exp":1}"#,
            )
            .unwrap(),
            message: message.clone(),
            signature: signature.to_bytes().into(),
        };
        assert!(opened(low).verify(&issuer.public_key()));
        assert!(
            !opened(high).verify(&issuer.public_key()),
            "the high-S twin must be refused"
        );
    }
}
