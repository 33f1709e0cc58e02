//! The token wire format, v1.
//!
//! ```text
//! token   = "rly_" ‖ base64url_nopad(header ‖ sealed)
//! header  = version (1 byte, 0x01) ‖ kid (8 bytes)
//! sealed  = ECIES(server key, aad = header, plaintext)        (see crypto::ecies)
//! plaintext = token_id (16 bytes) ‖ key_len (u16 big-endian) ‖ api_key (UTF-8)
//! ```
//! `docs/token-format.md` is the normative description, with test vectors.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::crypto::{KeyRing, Kid, ecies};
use crate::secret::SecretString;

/// Fixed and recognizable, so that secret scanners can find leaked tokens.
pub const TOKEN_PREFIX: &str = "rly_";
pub const FORMAT_V1: u8 = 0x01;
const HEADER_LEN: usize = 1 + 8;
const ID_LEN: usize = 16;
/// Longest API key a token may carry, in bytes.
pub const MAX_API_KEY_LEN: usize = 4096;
/// Anything longer than this cannot be a token; refuse before decoding.
const MAX_TOKEN_LEN: usize = 8192;

/// A token id: 16 random bytes, shown as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId(pub [u8; ID_LEN]);

impl TokenId {
    pub fn random() -> Self {
        let mut id = [0u8; ID_LEN];
        OsRng.fill_bytes(&mut id);
        TokenId(id)
    }

    /// Only the canonical form, 32 lowercase hex characters: ids are compared and revoked
    /// as text, so `ABCD…` and `abcd…` must not both name a token.
    pub fn parse(hex_str: &str) -> Option<Self> {
        if hex_str.len() != 2 * ID_LEN
            || !hex_str
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let bytes = hex::decode(hex_str).ok()?;
        Some(TokenId(bytes.try_into().ok()?))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

/// What a token carries: only what the server needs to use it. Limits live in the database.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    pub id: TokenId,
    pub api_key: SecretString,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a relayapi token")]
    Malformed,
    #[error("unsupported token format version {0}")]
    UnsupportedVersion(u8),
    #[error("the token was sealed with a key this server does not have")]
    UnknownKey,
    #[error("the token does not authenticate")]
    Unauthenticated,
    #[error("the API key is empty, longer than {MAX_API_KEY_LEN} bytes, or not UTF-8")]
    BadApiKey,
}

/// Seals claims into a token string for the given server public key.
pub fn seal(server: &PublicKey, claims: &TokenClaims) -> Result<SecretString, TokenError> {
    let header = header(Kid::of(server));
    let plaintext = encode_plaintext(claims)?;
    Ok(finish(&header, &ecies::seal(server, &header, &plaintext)))
}

/// [`seal`] with a given ephemeral key: only for reproducible test vectors.
pub fn seal_with_ephemeral(
    ephemeral: &SecretKey,
    server: &PublicKey,
    claims: &TokenClaims,
) -> Result<SecretString, TokenError> {
    let header = header(Kid::of(server));
    let plaintext = encode_plaintext(claims)?;
    Ok(finish(
        &header,
        &ecies::seal_with_ephemeral(ephemeral, server, &header, &plaintext),
    ))
}

/// Opens a registered (v1) token with whichever key of the ring sealed it.
pub fn open(ring: &KeyRing, token: &str) -> Result<TokenClaims, TokenError> {
    match open_any(ring, token)? {
        Opened::Registered(claims) => Ok(claims),
        Opened::Signed(_) => Err(TokenError::UnsupportedVersion(signed::FORMAT_V2)),
    }
}

/// What a token turned out to be.
#[derive(Debug)]
pub enum Opened {
    /// v1: issued through the store, which holds its limits.
    Registered(TokenClaims),
    /// v2: minted by an issuer, carrying its limits; the signature is still to be checked.
    Signed(Box<signed::OpenedSigned>),
}

/// Opens a token of any supported version.
pub fn open_any(ring: &KeyRing, token: &str) -> Result<Opened, TokenError> {
    let blob = decode(token)?;
    let (header, sealed) = blob.split_at(HEADER_LEN);
    let version = header[0];
    if version != FORMAT_V1 && version != signed::FORMAT_V2 {
        return Err(TokenError::UnsupportedVersion(version));
    }
    let kid = Kid(header[1..].try_into().expect("8-byte kid"));
    let secret = ring.secret(&kid).ok_or(TokenError::UnknownKey)?;
    let plaintext = ecies::open(secret, header, sealed).map_err(|_| TokenError::Unauthenticated)?;
    if version == FORMAT_V1 {
        decode_plaintext(&plaintext).map(Opened::Registered)
    } else {
        signed::decode(header, &plaintext).map(|s| Opened::Signed(Box::new(s)))
    }
}

/// The only form of a token the database ever holds: SHA-256 of the whole string, hex.
pub fn fingerprint(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Cheap shape check, for telling "looks like one of ours" from an arbitrary bearer string.
pub fn looks_like_token(candidate: &str) -> bool {
    candidate.starts_with(TOKEN_PREFIX)
}

fn header(kid: Kid) -> [u8; HEADER_LEN] {
    header_with(FORMAT_V1, kid)
}

fn header_with(version: u8, kid: Kid) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = version;
    header[1..].copy_from_slice(&kid.0);
    header
}

fn finish(header: &[u8], sealed: &[u8]) -> SecretString {
    let mut blob = Vec::with_capacity(header.len() + sealed.len());
    blob.extend_from_slice(header);
    blob.extend_from_slice(sealed);
    SecretString::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
}

fn decode(token: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let body = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenError::Malformed)?;
    // The engine rejects non-canonical encodings (stray trailing bits), so no two strings
    // decode to the same token.
    let blob = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    if blob.len() < HEADER_LEN + ecies::EPHEMERAL_LEN + ecies::TAG_LEN {
        return Err(TokenError::Malformed);
    }
    Ok(blob)
}

fn encode_plaintext(claims: &TokenClaims) -> Result<zeroize::Zeroizing<Vec<u8>>, TokenError> {
    let key = claims.api_key.expose().as_bytes();
    if key.is_empty() || key.len() > MAX_API_KEY_LEN {
        return Err(TokenError::BadApiKey);
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(ID_LEN + 2 + key.len()));
    out.extend_from_slice(&claims.id.0);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    Ok(out)
}

fn decode_plaintext(plaintext: &[u8]) -> Result<TokenClaims, TokenError> {
    // Authenticated, so only a buggy issuer gets here with a bad layout.
    if plaintext.len() < ID_LEN + 2 {
        return Err(TokenError::Malformed);
    }
    let id = TokenId(plaintext[..ID_LEN].try_into().expect("16 bytes"));
    let key_len = u16::from_be_bytes([plaintext[ID_LEN], plaintext[ID_LEN + 1]]) as usize;
    let key = &plaintext[ID_LEN + 2..];
    if key.len() != key_len || key.is_empty() {
        return Err(TokenError::Malformed);
    }
    let key = std::str::from_utf8(key).map_err(|_| TokenError::BadApiKey)?;
    Ok(TokenClaims {
        id,
        api_key: SecretString::new(key),
    })
}

pub mod signed;

#[cfg(test)]
mod tests;
