use super::*;

fn ring() -> KeyRing {
    KeyRing::in_memory(vec![SecretKey::random(&mut OsRng)])
}

fn claims(key: &str) -> TokenClaims {
    TokenClaims {
        id: TokenId::random(),
        api_key: SecretString::new(key),
    }
}

#[test]
fn seal_open_round_trip() {
    let ring = ring();
    let claims = claims("sk-test-0123456789abcdef");
    let token = seal(&ring.active_public(), &claims).unwrap();
    assert!(token.expose().starts_with(TOKEN_PREFIX));
    let opened = open(&ring, token.expose()).unwrap();
    assert_eq!(opened.id, claims.id);
    assert_eq!(opened.api_key.expose(), "sk-test-0123456789abcdef");
}

#[test]
fn two_seals_of_the_same_claims_differ() {
    let ring = ring();
    let claims = claims("sk-test-0123456789abcdef");
    let a = seal(&ring.active_public(), &claims).unwrap();
    let b = seal(&ring.active_public(), &claims).unwrap();
    assert_ne!(a.expose(), b.expose());
}

#[test]
fn every_single_character_change_fails_to_open() {
    let ring = ring();
    let token = seal(&ring.active_public(), &claims("sk-test-0123456789abcdef")).unwrap();
    let token = token.expose();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..token.len() {
        let mut bytes = token.as_bytes().to_vec();
        let pos = alphabet.iter().position(|&c| c == bytes[i]).unwrap_or(0);
        bytes[i] = alphabet[(pos + 1) % alphabet.len()];
        let mutated = String::from_utf8(bytes).unwrap();
        assert!(
            open(&ring, &mutated).is_err(),
            "change at char {i} still opened"
        );
    }
}

#[test]
fn every_single_byte_change_of_the_blob_fails_to_open() {
    let ring = ring();
    let token = seal(&ring.active_public(), &claims("sk-test-0123456789abcdef")).unwrap();
    let blob = decode(token.expose()).unwrap();
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut mutated = blob.clone();
            mutated[i] ^= flip;
            let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&mutated));
            assert!(
                open(&ring, &token).is_err(),
                "flip {flip:#x} at byte {i} opened"
            );
        }
    }
    // Truncation and extension fail too.
    let t = token.expose();
    assert!(open(&ring, &t[..t.len() - 1]).is_err());
    assert!(open(&ring, &format!("{t}A")).is_err());
}

#[test]
fn a_ring_without_the_key_refuses_with_unknown_key() {
    let token = seal(&ring().active_public(), &claims("sk-test-0123456789abcdef")).unwrap();
    assert_eq!(
        open(&ring(), token.expose()).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn a_forged_kid_does_not_open_with_another_key() {
    let victim = ring();
    let token = seal(&ring().active_public(), &claims("sk-test-0123456789abcdef")).unwrap();
    let mut blob = decode(token.expose()).unwrap();
    blob[1..9].copy_from_slice(&victim.active_kid().0);
    let forged = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
    assert_eq!(
        open(&victim, &forged).unwrap_err(),
        TokenError::Unauthenticated
    );
}

#[test]
fn older_keys_in_the_ring_still_open() {
    let old = SecretKey::random(&mut OsRng);
    let token = seal(&old.public_key(), &claims("sk-test-0123456789abcdef")).unwrap();
    let rotated = KeyRing::in_memory(vec![SecretKey::random(&mut OsRng), old]);
    assert!(open(&rotated, token.expose()).is_ok());
}

#[test]
fn malformed_inputs_are_refused() {
    let ring = ring();
    for bad in [
        "",
        "rly_",
        "sk-123",
        "rly_!!!!",
        "rly_AAAA",
        &"rly_".repeat(5000),
    ] {
        assert_eq!(
            open(&ring, bad).unwrap_err(),
            TokenError::Malformed,
            "{bad:.20}"
        );
    }
    let token = seal(&ring.active_public(), &claims("sk-test-0123456789abcdef")).unwrap();
    let mut blob = decode(token.expose()).unwrap();
    blob[0] = 0x03;
    let v3 = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
    assert_eq!(
        open(&ring, &v3).unwrap_err(),
        TokenError::UnsupportedVersion(3)
    );
    // A v1 token relabelled v2 fails authentication (the header is authenticated).
    blob[0] = 0x02;
    let v2 = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
    assert_eq!(open(&ring, &v2).unwrap_err(), TokenError::Unauthenticated);
}

#[test]
fn empty_or_oversized_keys_are_refused_at_seal() {
    let public = ring().active_public();
    assert_eq!(
        seal(&public, &claims("")).unwrap_err(),
        TokenError::BadApiKey
    );
    let huge = "k".repeat(MAX_API_KEY_LEN + 1);
    assert_eq!(
        seal(&public, &claims(&huge)).unwrap_err(),
        TokenError::BadApiKey
    );
}

/// The vectors in docs/token-format.md: an issuer written from the document alone must
/// produce exactly these tokens.
#[test]
fn documented_test_vectors() {
    let doc = include_str!("../../../../docs/token-format.md");
    let vectors = parse_vectors(doc, "vector");
    assert!(vectors.len() >= 2, "the document must carry test vectors");
    for v in vectors {
        let server =
            SecretKey::from_slice(&hex::decode(&v["server_private_key"]).unwrap()).unwrap();
        let ephemeral =
            SecretKey::from_slice(&hex::decode(&v["ephemeral_private_key"]).unwrap()).unwrap();
        assert_eq!(Kid::of(&server.public_key()).to_string(), v["kid"]);
        let claims = TokenClaims {
            id: TokenId::parse(&v["token_id"]).unwrap(),
            api_key: SecretString::new(v["api_key"].clone()),
        };
        let token = seal_with_ephemeral(&ephemeral, &server.public_key(), &claims).unwrap();
        assert_eq!(token.expose(), v["token"], "vector {}", v["vector"]);
        assert_eq!(fingerprint(token.expose()), v["fingerprint"]);
        let opened = open(&KeyRing::in_memory(vec![server]), &v["token"]).unwrap();
        assert_eq!(opened.id, claims.id);
        assert_eq!(opened.api_key.expose(), v["api_key"]);
    }
}

/// Reads `name: value` lines from the fenced blocks whose first line is `<start>: …`.
fn parse_vectors(doc: &str, start: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut out = Vec::new();
    let mut current: Option<std::collections::HashMap<String, String>> = None;
    for line in doc.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            if let Some(v) = current.take() {
                out.push(v);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(": ") {
            if name == start {
                current = Some(Default::default());
            }
            if let Some(v) = current.as_mut() {
                v.insert(name.to_string(), value.to_string());
            }
        }
    }
    out
}

/// Prints fresh vectors for the document: `cargo test print_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_vectors() {
    for (n, key) in [
        (1, "sk-test-vector-0001-abcdefghijklmnop"),
        (2, "AIzaSy-vector-two-\u{e9}"),
    ] {
        let scalar = |label: &str| Sha256::digest(format!("relayapi test vector {n} {label}"));
        let server = SecretKey::from_slice(&scalar("server")).unwrap();
        let ephemeral = SecretKey::from_slice(&scalar("ephemeral")).unwrap();
        let id = TokenId(scalar("id")[..16].try_into().unwrap());
        let claims = TokenClaims {
            id,
            api_key: SecretString::new(key),
        };
        let token = seal_with_ephemeral(&ephemeral, &server.public_key(), &claims).unwrap();
        println!("vector: {n}");
        println!("server_private_key: {}", hex::encode(server.to_bytes()));
        println!(
            "server_public_key: {}",
            hex::encode(ecies::compressed(&server.public_key()))
        );
        println!("kid: {}", Kid::of(&server.public_key()));
        println!(
            "ephemeral_private_key: {}",
            hex::encode(ephemeral.to_bytes())
        );
        println!("token_id: {id}");
        println!("api_key: {key}");
        println!("token: {}", token.expose());
        println!("fingerprint: {}", fingerprint(token.expose()));
    }
}

#[test]
fn documented_signed_test_vectors() {
    use super::signed::{SignedClaims, mint_with_ephemeral};
    let doc = include_str!("../../../../docs/token-format.md");
    let vectors = parse_vectors(doc, "signed_vector");
    assert!(
        !vectors.is_empty(),
        "the document must carry signed test vectors"
    );
    for v in vectors {
        let key = |name: &str| SecretKey::from_slice(&hex::decode(&v[name]).unwrap()).unwrap();
        let (server, issuer, ephemeral) = (
            key("server_private_key"),
            key("issuer_private_key"),
            key("ephemeral_private_key"),
        );
        let claims: SignedClaims = serde_json::from_str(&v["claims"]).unwrap();
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            v["claims"],
            "claims bytes"
        );
        let token =
            mint_with_ephemeral(&ephemeral, &issuer, &server.public_key(), &claims).unwrap();
        assert_eq!(token.expose(), v["token"]);
        let ring = KeyRing::in_memory(vec![server]);
        match open_any(&ring, &v["token"]).unwrap() {
            Opened::Signed(signed) => {
                assert!(signed.verify(&issuer.public_key()));
                assert!(!signed.verify(&ephemeral.public_key()));
                assert_eq!(signed.claims, claims);
            }
            Opened::Registered(_) => panic!("a signed vector opened as registered"),
        }
        // The document also gives the signature, so that issuers with randomized ECDSA can
        // check their layout with it.
        let blob = decode(&v["token"]).unwrap();
        let plaintext = crate::crypto::ecies::open(
            ring.secret(&ring.active_kid()).unwrap(),
            &blob[..9],
            &blob[9..],
        )
        .unwrap();
        assert_eq!(
            hex::encode(&plaintext[plaintext.len() - 64..]),
            v["signature"]
        );
    }
}

/// `cargo test print_signed_vectors -- --ignored --nocapture`
#[test]
#[ignore]
fn print_signed_vectors() {
    use super::signed::{SignedClaims, mint_with_ephemeral};
    let scalar = |label: &str| {
        SecretKey::from_slice(&Sha256::digest(format!("relayapi signed vector 1 {label}"))).unwrap()
    };
    let (server, issuer, ephemeral) = (scalar("server"), scalar("issuer"), scalar("ephemeral"));
    let claims = SignedClaims {
        iss: "web-backend".into(),
        id: hex::encode(&Sha256::digest(b"relayapi signed vector 1 id")[..16]),
        key: "sk-test-signed-vector-0001".into(),
        provider: "openai".into(),
        upstream: None,
        iat: 1_800_000_000,
        exp: 1_800_000_900,
        max_calls: Some(10),
        models: vec!["gpt-4o-mini".into()],
        origins: vec!["https://app.example.com".into()],
        endpoints: vec![],
        max_output_tokens: Some(512),
    };
    let token = mint_with_ephemeral(&ephemeral, &issuer, &server.public_key(), &claims).unwrap();
    let ring = KeyRing::in_memory(vec![server.clone()]);
    let blob = decode(token.expose()).unwrap();
    let plaintext = crate::crypto::ecies::open(
        ring.secret(&ring.active_kid()).unwrap(),
        &blob[..9],
        &blob[9..],
    )
    .unwrap();
    println!("signed_vector: 1");
    println!("server_private_key: {}", hex::encode(server.to_bytes()));
    println!(
        "server_public_key: {}",
        hex::encode(ecies::compressed(&server.public_key()))
    );
    println!("issuer_private_key: {}", hex::encode(issuer.to_bytes()));
    println!(
        "issuer_public_key: {}",
        hex::encode(ecies::compressed(&issuer.public_key()))
    );
    println!(
        "ephemeral_private_key: {}",
        hex::encode(ephemeral.to_bytes())
    );
    println!("claims: {}", serde_json::to_string(&claims).unwrap());
    println!(
        "signature: {}",
        hex::encode(&plaintext[plaintext.len() - 64..])
    );
    println!("token: {}", token.expose());
}

/// Property tests: random claims and keys, random mutations of whole tokens.
mod properties {
    use super::*;
    use crate::token::signed::{SignedClaims, mint};
    use proptest::prelude::*;

    /// Keys are expensive to make; a few fixed rings cover the key dimension.
    fn ring_for(seed: u8) -> KeyRing {
        let scalar = Sha256::digest([b"relayapi proptest ring ".as_slice(), &[seed]].concat());
        KeyRing::in_memory(vec![SecretKey::from_slice(&scalar).unwrap()])
    }

    fn api_key() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 1..300)
            .prop_map(|chars| chars.into_iter().collect::<String>())
            .prop_filter("fits in a token", |k| k.len() <= MAX_API_KEY_LEN)
    }

    /// A change to a token string: set bytes, cut, extend, or splice in another token's tail.
    #[derive(Debug, Clone)]
    enum Mutation {
        Set(Vec<(usize, u8)>),
        Truncate(usize),
        Append(Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ";
        let byte = prop::sample::select(alphabet.to_vec());
        prop_oneof![
            prop::collection::vec((any::<usize>(), byte.clone()), 1..6).prop_map(Mutation::Set),
            any::<usize>().prop_map(Mutation::Truncate),
            prop::collection::vec(byte, 1..8).prop_map(Mutation::Append),
        ]
    }

    /// Applies the mutation; `None` when it happens to leave the token unchanged.
    fn mutate(token: &str, m: &Mutation) -> Option<String> {
        let mut bytes = token.as_bytes().to_vec();
        match m {
            Mutation::Set(changes) => {
                for (at, b) in changes {
                    let at = at % bytes.len();
                    bytes[at] = *b;
                }
            }
            Mutation::Truncate(at) => bytes.truncate(at % bytes.len()),
            Mutation::Append(tail) => bytes.extend_from_slice(tail),
        }
        let out = String::from_utf8(bytes).expect("ascii");
        (out != token).then_some(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_sealed_token_opens_to_what_was_sealed(
            seed in 0u8..4, id in any::<[u8; 16]>(), key in api_key()
        ) {
            let ring = ring_for(seed);
            let claims = TokenClaims { id: TokenId(id), api_key: SecretString::new(key.clone()) };
            let token = seal(&ring.active_public(), &claims).unwrap();
            let opened = open(&ring, token.expose()).unwrap();
            prop_assert_eq!(opened.id, TokenId(id));
            prop_assert_eq!(opened.api_key.expose(), key.as_str());
            // Another server's key cannot open it.
            prop_assert_eq!(
                open(&ring_for(seed + 4), token.expose()).unwrap_err(),
                TokenError::UnknownKey
            );
        }

        #[test]
        fn every_mutation_of_a_token_fails_to_open(
            id in any::<[u8; 16]>(), key in api_key(), m in mutation()
        ) {
            let ring = ring_for(0);
            let claims = TokenClaims { id: TokenId(id), api_key: SecretString::new(key) };
            let token = seal(&ring.active_public(), &claims).unwrap();
            if let Some(mutated) = mutate(token.expose(), &m) {
                prop_assert!(open_any(&ring, &mutated).is_err(), "{:?} opened", m);
            }
        }

        #[test]
        fn every_signed_token_opens_to_its_claims_and_no_mutation_does(
            id in any::<[u8; 16]>(), key in api_key(), exp in 1i64..i64::MAX,
            max_calls in prop::option::of(any::<u64>()),
            models in prop::collection::vec("[a-z0-9.*-]{1,12}", 0..3),
            m in mutation()
        ) {
            let (ring, issuer) = (ring_for(1), SecretKey::from_slice(&[9u8; 32]).unwrap());
            let claims = SignedClaims {
                iss: "backend".into(), id: hex::encode(id), key, provider: "openai".into(),
                upstream: None, iat: 0, exp, max_calls, models, origins: vec![],
                endpoints: vec![], max_output_tokens: None,
            };
            let token = mint(&issuer, &ring.active_public(), &claims).unwrap();
            match open_any(&ring, token.expose()).unwrap() {
                Opened::Signed(signed) => {
                    prop_assert!(signed.verify(&issuer.public_key()));
                    prop_assert_eq!(&signed.claims, &claims);
                }
                Opened::Registered(_) => prop_assert!(false, "opened as a registered token"),
            }
            if let Some(mutated) = mutate(token.expose(), &m) {
                prop_assert!(open_any(&ring, &mutated).is_err(), "{:?} opened", m);
            }
        }
    }
}
