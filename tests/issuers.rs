//! Issuer-signed tokens: minted offline, accepted within the issuer's caps, counted exactly.

use crate::common;
use common::TEST_KEY as KEY;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::mock::MockUpstream;
use common::{TestEnv, TestRelay, cli_async, http};
use p256::SecretKey;
use p256::pkcs8::DecodePrivateKey;
use relayapi::crypto::KeyRing;
use relayapi::server::ServeConfig;
use relayapi::token::TokenId;
use relayapi::token::signed::{SignedClaims, mint};
use serde_json::Value;

struct Setup {
    env: TestEnv,
    mock: MockUpstream,
    issuer_key: SecretKey,
    relay_public: p256::PublicKey,
}

async fn setup(extra: &[&str]) -> Setup {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let key_file = env.dir.path().join("issuer.pem");
    let mut args = vec![
        "issuer",
        "add",
        "web",
        "--provider",
        "openai",
        "--upstream",
        mock.url.as_str(),
        "--max-lifetime",
        "10m",
        "--max-calls",
        "20",
        "--json",
        "--private-key-out",
    ];
    let key_path = key_file.to_str().unwrap().to_string();
    args.push(&key_path);
    args.extend_from_slice(extra);
    let out = cli_async(&env, &args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v.get("private_key_pem").is_none(),
        "the key went to the file, not stdout"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let issuer_key =
        SecretKey::from_pkcs8_pem(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let relay_public = KeyRing::load(&env.keys_dir()).unwrap().active_public();
    let hex_public = v["relay_public_key"].as_str().unwrap();
    assert_eq!(
        hex::encode(relayapi::crypto::ecies::compressed(&relay_public)),
        hex_public
    );
    Setup {
        env,
        mock,
        issuer_key,
        relay_public,
    }
}

fn claims(s: &Setup) -> SignedClaims {
    let now = chrono::Utc::now().timestamp();
    SignedClaims {
        iss: "web".into(),
        id: TokenId::random().to_string(),
        key: KEY.into(),
        provider: "openai".into(),
        upstream: Some(s.mock.url.clone()),
        iat: now,
        exp: now + 300,
        max_calls: Some(3),
        models: vec![],
        origins: vec!["https://app.example.com".into()],
        endpoints: vec![],
        max_output_tokens: None,
    }
}

async fn call(relay: &TestRelay, token: &str) -> (u16, String) {
    let r = http()
        .post(format!("{}/v1/chat/completions", relay.url))
        .bearer_auth(token)
        .header("origin", "https://app.example.com")
        .body(r#"{"model":"m"}"#)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(!body.contains(KEY));
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_tokens_work_without_a_prior_row_and_are_counted() {
    let s = setup(&["--require", "origin"]).await;
    let relay = TestRelay::start(&s.env, ServeConfig::default()).await;
    let c = claims(&s);
    let token = mint(&s.issuer_key, &s.relay_public, &c).unwrap();
    let token = token.expose();
    for _ in 0..3 {
        assert_eq!(call(&relay, token).await, (200, String::new()));
    }
    assert_eq!(call(&relay, token).await.1, "calls_exhausted");
    assert_eq!(s.mock.count(), 3);
    assert_eq!(
        s.mock.requests()[0].headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    relay.stop().await;
    let out = cli_async(&s.env, &["token", "show", &c.id, "--json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["used_calls"].as_i64(), v["issuer"].as_str()),
        (Some(3), Some("web"))
    );
    assert_eq!(v["policy"]["origins"][0], "https://app.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_signatures_and_revocation_are_enforced() {
    let s = setup(&["--require", "origin"]).await;
    let relay = TestRelay::start(&s.env, ServeConfig::default()).await;
    let mint_with = |f: &dyn Fn(&mut SignedClaims)| {
        let mut c = claims(&s);
        f(&mut c);
        mint(&s.issuer_key, &s.relay_public, &c)
            .unwrap()
            .expose()
            .to_string()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "lifetime over the cap",
            mint_with(&|c| c.exp = c.iat + 3600),
            "invalid_token",
        ),
        (
            "calls over the cap",
            mint_with(&|c| c.max_calls = Some(21)),
            "invalid_token",
        ),
        (
            "provider not allowed",
            mint_with(&|c| c.provider = "anthropic".into()),
            "invalid_token",
        ),
        (
            "upstream not allowed",
            mint_with(&|c| c.upstream = Some("http://127.0.0.1:1".into())),
            "invalid_token",
        ),
        (
            "required origin missing",
            mint_with(&|c| c.origins.clear()),
            "invalid_token",
        ),
        (
            "unknown issuer",
            mint_with(&|c| c.iss = "other".into()),
            "invalid_token",
        ),
        // Claims that would wrap in a signed cast or a subtraction: each must be refused,
        // not turned into "no limit" or "never expires".
        (
            "calls of 2^64-1",
            mint_with(&|c| c.max_calls = Some(u64::MAX)),
            "invalid_token",
        ),
        (
            "calls of 2^63",
            mint_with(&|c| c.max_calls = Some(1 << 63)),
            "invalid_token",
        ),
        (
            "a lifetime that wraps",
            mint_with(&|c| {
                c.iat = -1;
                c.exp = i64::MAX
            }),
            "invalid_token",
        ),
        (
            "an expiry past the calendar",
            mint_with(&|c| c.exp = i64::MAX),
            "invalid_token",
        ),
        (
            "an upper-case id",
            mint_with(&|c| c.id = c.id.to_ascii_uppercase()),
            "invalid_token",
        ),
        (
            "expired",
            mint_with(&|c| {
                c.iat -= 600;
                c.exp = c.iat + 300
            }),
            "token_expired",
        ),
        (
            "signed by another key",
            mint(
                &SecretKey::random(&mut rand_core::OsRng),
                &s.relay_public,
                &claims(&s),
            )
            .unwrap()
            .expose()
            .to_string(),
            "invalid_token",
        ),
    ];
    for (what, token, code) in &cases {
        let (status, got) = call(&relay, token).await;
        assert_eq!((status, got.as_str()), (401, *code), "{what}");
    }
    // Every single-character change of a signed token is refused.
    let good = mint_with(&|_| {});
    for i in (4..good.len()).step_by(7) {
        let mut bytes = good.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let (status, code) = call(&relay, std::str::from_utf8(&bytes).unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "invalid_token"), "char {i}");
    }
    assert_eq!(
        s.mock.count(),
        0,
        "a refused signed token reached the upstream"
    );

    // One token revoked by id before its first use.
    let mut early = claims(&s);
    early.id = TokenId::random().to_string();
    let early_token = mint(&s.issuer_key, &s.relay_public, &early).unwrap();
    let out = cli_async(
        &s.env,
        &["token", "revoke", &early.id, "--issuer", "web", "--yes"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(call(&relay, early_token.expose()).await.1, "token_revoked");

    // Revoking the issuer stops its tokens, used or not.
    let used = mint_with(&|_| {});
    let unused = mint_with(&|_| {});
    assert_eq!(call(&relay, &used).await.0, 200);
    let out = cli_async(&s.env, &["issuer", "revoke", "web", "--yes"]).await;
    assert!(out.status.success());
    let started = std::time::Instant::now();
    loop {
        let (status, code) = call(&relay, &used).await;
        if status == 401 {
            assert_eq!(code, "token_revoked");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the issuer's token still works"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(call(&relay, &unused).await.1, "token_revoked");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_issuer_api_mints_accepted_tokens() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use relayapi::sdk::{Issuer, MintOptions};
    let s = setup(&[]).await;
    let relay = TestRelay::start(&s.env, ServeConfig::default()).await;
    let pem = s.issuer_key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let relay_hex = hex::encode(relayapi::crypto::ecies::compressed(&s.relay_public));
    let issuer = Issuer::new("web", &pem, &relay_hex).unwrap();
    let options = MintOptions {
        upstream: Some(s.mock.url.clone()),
        max_calls: Some(1),
        origins: vec!["https://app.example.com".into()],
        ..MintOptions::default()
    };
    let token = issuer.mint(KEY, &options).unwrap();
    assert_eq!(call(&relay, token.expose()).await.0, 200);
    assert_eq!(call(&relay, token.expose()).await.1, "calls_exhausted");
    assert!(Issuer::new("web", "not a key", &relay_hex).is_err());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_token_is_counted_exactly_under_concurrency() {
    let s = setup(&[]).await;
    let relay = TestRelay::start(&s.env, ServeConfig::default()).await;
    let mut c = claims(&s);
    c.max_calls = Some(10);
    let token = mint(&s.issuer_key, &s.relay_public, &c)
        .unwrap()
        .expose()
        .to_string();
    let statuses = common::concurrent_statuses(
        std::slice::from_ref(&relay.url),
        &token,
        60,
        Some("https://app.example.com"),
    )
    .await;
    assert_eq!(
        (statuses.get(&200), statuses.get(&429)),
        (Some(&10), Some(&50)),
        "{statuses:?}"
    );
    assert_eq!(s.mock.count(), 10);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_commands_refuse_bad_input() {
    let env = TestEnv::sqlite();
    for (args, expected) in [
        (
            vec!["issuer", "add", "bad name", "--provider", "openai"],
            "issuer name",
        ),
        (
            vec!["issuer", "add", "x", "--provider", "nope"],
            "unknown provider",
        ),
        (
            vec![
                "issuer",
                "add",
                "x",
                "--provider",
                "openai",
                "--max-lifetime",
                "soon",
            ],
            "--max-lifetime",
        ),
        (
            vec!["issuer", "revoke", "ghost", "--yes"],
            "no issuer named ghost",
        ),
    ] {
        let out = cli_async(&env, &args).await;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let out = cli_async(&env, &["issuer", "add", "x", "--provider", "openai"]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BEGIN PRIVATE KEY"),
        "a generated key is shown once"
    );
    let again = cli_async(&env, &["issuer", "add", "x", "--provider", "openai"]).await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let list = cli_async(&env, &["issuer", "list", "--json"]).await;
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "x");
    assert!(!String::from_utf8_lossy(&list.stdout).contains("PRIVATE"));
    let table = cli_async(&env, &["issuer", "list"]).await;
    let table = String::from_utf8(table.stdout).unwrap();
    let (header, rows) = crate::common::parse_table(&table);
    assert_eq!(rows.len(), v.as_array().unwrap().len());
    let cell = |column| crate::common::cell(&header, &rows[0], column);
    assert_eq!(cell("name"), "x");
    assert_eq!(
        cell("providers"),
        v[0]["caps"]["providers"][0].as_str().unwrap()
    );
    assert_eq!(
        cell("max lifetime"),
        format!("{}s", v[0]["caps"]["max_lifetime_secs"])
    );
    assert_eq!(cell("status"), "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_policies_are_not_met_by_a_catch_all() {
    let s = setup(&["--require", "model", "--require", "endpoint"]).await;
    let relay = TestRelay::start(&s.env, ServeConfig::default()).await;
    let mint_with = |models: &[&str], endpoints: &[&str]| {
        let mut c = claims(&s);
        c.models = models.iter().map(|m| m.to_string()).collect();
        c.endpoints = endpoints.iter().map(|e| e.to_string()).collect();
        mint(&s.issuer_key, &s.relay_public, &c).unwrap()
    };
    for (models, endpoints) in [
        (&["*"][..], &["/v1/chat/completions"][..]),
        (&["m"], &["/*"]),
        (&["m"], &["* /*"]),
        (&["m"], &["POST /*"]),
        (&["m", "*"], &["/v1/chat/completions"]),
    ] {
        let token = mint_with(models, endpoints);
        let (status, code) = call(&relay, token.expose()).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_token"),
            "{models:?} {endpoints:?}"
        );
    }
    let token = mint_with(&["m"], &["/v1/chat/completions"]);
    assert_eq!(call(&relay, token.expose()).await.0, 200);
    relay.stop().await;
}
