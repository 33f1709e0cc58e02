//! ECIES on P-256: ephemeral ECDH, HKDF-SHA256, AES-256-GCM.
//!
//! Each seal uses a fresh ephemeral key, so the derived AES key is used exactly once; the
//! nonce is derived alongside it rather than sent. The exact byte layout is in
//! `docs/token-format.md`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of a compressed SEC1 P-256 point.
pub const EPHEMERAL_LEN: usize = 33;
/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// Domain-separation label for HKDF's `info`.
const KDF_LABEL: &[u8] = b"relayapi token v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EciesError {
    #[error("the ephemeral public key is not a valid P-256 point")]
    BadEphemeralKey,
    #[error("the ciphertext does not authenticate")]
    Unauthenticated,
}

/// Seals `plaintext` to `recipient`; returns `ephemeral_public (33 bytes) ‖ ciphertext ‖ tag`.
pub fn seal(recipient: &PublicKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with_ephemeral(&SecretKey::random(&mut OsRng), recipient, aad, plaintext)
}

/// [`seal`] with a given ephemeral key: only for reproducible test vectors.
pub fn seal_with_ephemeral(
    ephemeral: &SecretKey,
    recipient: &PublicKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let ephemeral_public = compressed(&ephemeral.public_key());
    let (key, nonce) = derive(ephemeral, recipient, &ephemeral_public);
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("32-byte key");
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(EPHEMERAL_LEN + ciphertext.len());
    out.extend_from_slice(&ephemeral_public);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens what [`seal`] produced, with the recipient's secret key.
pub fn open(
    recipient: &SecretKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EciesError> {
    if sealed.len() < EPHEMERAL_LEN + TAG_LEN {
        return Err(EciesError::Unauthenticated);
    }
    let (ephemeral_bytes, ciphertext) = sealed.split_at(EPHEMERAL_LEN);
    let ephemeral =
        PublicKey::from_sec1_bytes(ephemeral_bytes).map_err(|_| EciesError::BadEphemeralKey)?;
    let shared = p256::ecdh::diffie_hellman(recipient.to_nonzero_scalar(), ephemeral.as_affine());
    let (key, nonce) = kdf(
        shared.raw_secret_bytes(),
        ephemeral_bytes,
        &compressed(&recipient.public_key()),
    );
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("32-byte key");
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EciesError::Unauthenticated)
}

/// SEC1 compressed encoding of a public key (33 bytes).
pub fn compressed(key: &PublicKey) -> [u8; EPHEMERAL_LEN] {
    let point = key.to_encoded_point(true);
    point
        .as_bytes()
        .try_into()
        .expect("a compressed P-256 point is 33 bytes")
}

fn derive(
    ephemeral: &SecretKey,
    recipient: &PublicKey,
    ephemeral_public: &[u8],
) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), recipient.as_affine());
    kdf(
        shared.raw_secret_bytes(),
        ephemeral_public,
        &compressed(recipient),
    )
}

/// HKDF-SHA256 with an empty salt; `info = label ‖ ephemeral_public ‖ recipient_public`
/// binds the key to both parties. Output: 32-byte AES key ‖ 12-byte nonce.
fn kdf(
    shared_x: &[u8],
    ephemeral_public: &[u8],
    recipient_public: &[u8],
) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let hk = Hkdf::<Sha256>::new(None, shared_x);
    let mut info = Vec::with_capacity(KDF_LABEL.len() + 2 * EPHEMERAL_LEN);
    info.extend_from_slice(KDF_LABEL);
    info.extend_from_slice(ephemeral_public);
    info.extend_from_slice(recipient_public);
    let mut okm = Zeroizing::new([0u8; 44]);
    hk.expand(&info, okm.as_mut_slice())
        .expect("44 bytes is a valid HKDF-SHA256 output length");
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sk = SecretKey::random(&mut OsRng);
        let sealed = seal(&sk.public_key(), b"aad", b"hello");
        assert_eq!(open(&sk, b"aad", &sealed).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn wrong_key_or_aad_fails() {
        let sk = SecretKey::random(&mut OsRng);
        let other = SecretKey::random(&mut OsRng);
        let sealed = seal(&sk.public_key(), b"aad", b"hello");
        assert!(open(&other, b"aad", &sealed).is_err());
        assert!(open(&sk, b"aaD", &sealed).is_err());
        assert!(open(&sk, b"aad", &sealed[..sealed.len() - 1]).is_err());
    }
}
