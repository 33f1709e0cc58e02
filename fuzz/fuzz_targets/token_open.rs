//! The token decoder and opener. Two ways in: the input as a token string (what any client
//! can send), and the input as a plaintext properly sealed to the relay's key (what only a
//! buggy or hostile issuer could produce), so the parsers behind the AEAD are reached too.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use p256::SecretKey;
use relayapi::crypto::{KeyRing, Kid, ecies};
use relayapi::token::{self, Opened, TokenClaims, TokenError};

fn ring() -> &'static KeyRing {
    static RING: std::sync::OnceLock<KeyRing> = std::sync::OnceLock::new();
    RING.get_or_init(|| {
        let key = SecretKey::from_slice(&[7u8; 32]).expect("valid scalar");
        KeyRing::in_memory(vec![key])
    })
}

fn sealed(ring: &KeyRing, version: u8, plaintext: &[u8]) -> String {
    let public = ring.active_public();
    let mut blob = vec![version];
    blob.extend_from_slice(&Kid::of(&public).0);
    let sealed = ecies::seal(&public, &blob.clone(), plaintext);
    blob.extend_from_slice(&sealed);
    format!("{}{}", token::TOKEN_PREFIX, URL_SAFE_NO_PAD.encode(blob))
}

fuzz_target!(|data: &[u8]| {
    let ring = ring();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            // Whatever a client sends: anything but a sealed token must be refused.
            if let Ok(text) = std::str::from_utf8(rest) {
                assert!(token::open_any(ring, text).is_err() || text.starts_with("rly_"));
                let _ = token::fingerprint(text);
            }
        }
        version => {
            let text = sealed(ring, version, rest);
            match token::open_any(ring, &text) {
                Ok(Opened::Registered(claims)) => {
                    assert_eq!(version, token::FORMAT_V1);
                    // What opened must seal again and open to the same claims.
                    let again = token::seal(&ring.active_public(), &claims).expect("re-seal");
                    let reopened = token::open(ring, again.expose()).expect("re-open");
                    assert_eq!(reopened.id, claims.id);
                    assert_eq!(reopened.api_key.expose(), claims.api_key.expose());
                    let _: TokenClaims = reopened;
                }
                Ok(Opened::Signed(signed)) => {
                    assert_eq!(version, token::signed::FORMAT_V2);
                    // No issuer signed this: the fixed key must not verify it.
                    assert!(!signed.verify(&ring.active_public()));
                }
                Err(TokenError::Malformed | TokenError::BadApiKey) => {}
                Err(other) => panic!("a correctly sealed token failed with {other:?}"),
            }
            // Any change to the sealed bytes is refused.
            let mut bytes = text.into_bytes();
            let at = 4 + rest.len() % (bytes.len() - 4);
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).expect("ascii");
            assert!(token::open_any(ring, &tampered).is_err());
        }
    }
});
