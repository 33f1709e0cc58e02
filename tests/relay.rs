//! `relayapi serve`'s main job, against a real local upstream and a real database.

use crate::common;

use std::time::{Duration, Instant};

use common::mock::{CHAT_JSON, FIRST_EVENT, MockUpstream, REST_EVENTS};
use common::{
    TEST_KEY as KEY, TestEnv, TestRelay, assert_refusal, cli_async, http, issue_async, used_calls,
};
use relayapi::server::ServeConfig;

fn chat_body(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// A relay on a fresh SQLite installation, in front of a recording mock, with one token
/// for the mock. Kept whole (`s.relay`, `s.mock`): a field let go of would stop the mock
/// or delete the data directory under the running relay.
struct Setup {
    env: TestEnv,
    relay: TestRelay,
    mock: MockUpstream,
    id: String,
    token: String,
}

/// [`Setup`] with the default settings and a token issued with `args`.
async fn setup(args: &[&str]) -> Setup {
    setup_with(ServeConfig::default(), args).await
}

async fn setup_with(config: ServeConfig, args: &[&str]) -> Setup {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, config).await;
    let mut all = vec!["--upstream", mock.url.as_str()];
    all.extend_from_slice(args);
    let (id, token) = relay.issue(&all).await;
    Setup {
        env,
        relay,
        mock,
        id,
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_call_carries_the_real_key_and_never_the_token() {
    let s = setup(&[]).await;
    let response = s
        .relay
        .request(
            reqwest::Method::POST,
            "/v1/chat/completions?api-version=1",
            &s.token,
        )
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body(chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(response.headers()["x-upstream"], "mock");
    let all_headers = format!("{:?}", response.headers());
    let body = response.text().await.unwrap();
    assert_eq!(body, CHAT_JSON);
    assert!(
        !all_headers.contains(KEY) && !body.contains(KEY),
        "the client saw the key"
    );

    let seen = s.mock.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.query.as_deref(), Some("api-version=1"));
    assert_eq!(r.headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["host"], s.mock.url.trim_start_matches("http://"));
    assert!(r.headers.get("origin").is_none());
    assert!(
        !r.everything().contains(&s.token),
        "the upstream saw the token"
    );
    assert_eq!(r.body, chat_body("gpt-4o-mini"));
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_style_reaches_the_right_path_with_its_auth() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let prefixed = format!("{}/prefix", mock.url);
    let (_, anthropic) = issue_async(
        &env,
        KEY,
        &["--provider", "anthropic", "--upstream", &mock.url],
    )
    .await;
    let (_, gemini) = issue_async(
        &env,
        KEY,
        &["--provider", "gemini", "--upstream", &mock.url],
    )
    .await;
    let (_, azure) =
        issue_async(&env, KEY, &["--provider", "azure", "--upstream", &prefixed]).await;
    let (_, custom) = issue_async(
        &env,
        KEY,
        &[
            "--provider",
            "custom",
            "--upstream",
            &mock.url,
            "--auth",
            "query:key",
        ],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let client = http();

    // Anthropic SDK: baseURL = relay, x-api-key, /v1/messages.
    let r = client
        .post(format!("{}/v1/messages", relay.url))
        .header("x-api-key", &anthropic)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Gemini SDK: the key in `?key=` (or x-goog-api-key).
    let r = client
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent?key={gemini}&alt=json",
            relay.url
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Azure: api-key header, base URL with a path prefix.
    let r = client
        .post(format!(
            "{}/openai/deployments/d/chat/completions",
            relay.url
        ))
        .header("api-key", &azure)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Custom provider whose key goes in the query.
    let r = client
        .get(format!("{}/v1/models", relay.url))
        .bearer_auth(&custom)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A client-sent anthropic-version is kept.
    let r = client
        .post(format!("{}/v1/messages", relay.url))
        .header("x-api-key", &anthropic)
        .header("anthropic-version", "2099-01-01")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let seen = mock.requests();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], KEY);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(
        seen[1].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(seen[1].query.as_deref(), Some("alt=json"));
    assert_eq!(seen[1].headers["x-goog-api-key"], KEY);
    assert_eq!(
        seen[2].path,
        "/prefix/openai/deployments/d/chat/completions"
    );
    assert_eq!(seen[2].headers["api-key"], KEY);
    assert_eq!(
        seen[3].query.as_deref(),
        Some(format!("key={KEY}").as_str())
    );
    assert!(seen[3].headers.get("authorization").is_none());
    assert_eq!(seen[4].headers["anthropic-version"], "2099-01-01");
    for (r, token) in seen
        .iter()
        .zip([&anthropic, &gemini, &azure, &custom, &anthropic])
    {
        assert!(
            !r.everything().contains(token.as_str()),
            "the upstream saw a token"
        );
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_through_unbuffered() {
    let s = setup(&[]).await;
    let mut stream = s
        .relay
        .stream(
            &s.token,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true}"#,
        )
        .await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.header("content-type"), "text/event-stream");
    // The mock holds the rest until released: the first event must arrive on its own.
    let first = stream.next().await.expect("a first event");
    assert_eq!(first, FIRST_EVENT.as_bytes());
    s.mock.release();
    assert_eq!(stream.rest().await, REST_EVENTS.as_bytes());
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let s = setup(&[]).await;
    let mut stream = s
        .relay
        .stream(&s.token, "/v1/chat/completions", r#"{"stream": true}"#)
        .await;
    stream.next().await.expect("a first event");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s
        .mock
        .shared
        .streams_dropped
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_calls_are_forwarded_under_concurrency() {
    let s = setup(&["--max-calls", "50"]).await;
    let statuses =
        common::concurrent_statuses(std::slice::from_ref(&s.relay.url), &s.token, 200, None).await;
    assert_eq!(
        (statuses.get(&200), statuses.get(&429)),
        (Some(&50), Some(&150)),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 2, "unexpected statuses: {statuses:?}");
    assert_eq!(
        s.mock.count(),
        50,
        "the upstream received more than max_calls"
    );
    s.relay.stop().await;
    assert_eq!(used_calls(&s.env, &s.id).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_tokens_are_counted_before_they_are_forwarded() {
    let s = setup(&[]).await;
    for i in 1..=7 {
        let r = s
            .relay
            .request(reqwest::Method::GET, "/v1/models", &s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // Durable at once, not at some later flush or at shutdown.
        assert_eq!(used_calls(&s.env, &s.id).await, i);
    }
    // Concurrent calls share writes but each is counted.
    let statuses =
        common::concurrent_statuses(std::slice::from_ref(&s.relay.url), &s.token, 40, None).await;
    assert_eq!(statuses.get(&200), Some(&40), "{statuses:?}");
    assert_eq!(used_calls(&s.env, &s.id).await, 47);
    s.relay.stop().await;
    assert_eq!(s.mock.count(), 47);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_by_another_process_is_honoured_within_a_second() {
    let s = setup(&[]).await;
    let call = || {
        s.relay
            .request(reqwest::Method::GET, "/v1/models", &s.token)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    let out = cli_async(&s.env, &["token", "revoke", &s.id, "--yes"]).await;
    assert!(out.status.success());
    let revoked_at = Instant::now();
    loop {
        let r = call().await.unwrap();
        if r.status() == 401 {
            assert_refusal(r, 401, "token_revoked", &[KEY, &s.token]).await;
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still served 1 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_code_and_no_secret() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let up = mock.url.clone();
    let (_, token) = issue_async(&env, KEY, &["--upstream", &up]).await;
    let (revoked_id, revoked) = issue_async(&env, KEY, &["--upstream", &up]).await;
    let (_, expiring) = issue_async(&env, KEY, &["--upstream", &up, "--expires-in", "1s"]).await;
    let (_, one_call) = issue_async(&env, KEY, &["--upstream", &up, "--max-calls", "1"]).await;
    // An upstream nobody listens on: bind, note the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (dead_id, dead) =
        issue_async(&env, KEY, &["--upstream", &closed, "--max-calls", "5"]).await;
    assert!(
        cli_async(&env, &["token", "revoke", &revoked_id, "--yes"])
            .await
            .status
            .success()
    );
    // A token from another installation: sealed with a key this relay does not have.
    let other = TestEnv::sqlite();
    let (_, foreign) = issue_async(&other, KEY, &["--upstream", &up]).await;
    // A token sealed with this relay's key but never registered in the store.
    let ring = relayapi::crypto::KeyRing::load(&env.keys_dir()).unwrap();
    let unregistered = relayapi::token::seal(
        &ring.active_public(),
        &relayapi::token::TokenClaims {
            id: relayapi::token::TokenId::random(),
            api_key: relayapi::secret::SecretString::new(KEY),
        },
    )
    .unwrap();
    let unregistered = unregistered.expose().to_string();

    let config = ServeConfig {
        max_body: 1024,
        upstream_timeout: Duration::from_millis(500),
        ..ServeConfig::default()
    };
    let relay = TestRelay::start(&env, config).await;
    let client = http();
    let post = |token: &str, path: &str, body: String| {
        client
            .post(format!("{}{path}", relay.url))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    let secrets = [
        KEY,
        token.as_str(),
        revoked.as_str(),
        one_call.as_str(),
        dead.as_str(),
    ];

    let r = client
        .post(format!("{}/v1/chat/completions", relay.url))
        .send()
        .await
        .unwrap();
    assert_refusal(r, 401, "missing_token", &secrets).await;
    for bad in [
        "sk-not-ours",
        "rly_garbage",
        foreign.as_str(),
        unregistered.as_str(),
    ] {
        assert_refusal(
            post(bad, "/v1/chat/completions", "{}".into())
                .await
                .unwrap(),
            401,
            "invalid_token",
            &secrets,
        )
        .await;
    }
    assert_refusal(
        post(&revoked, "/v1/chat/completions", "{}".into())
            .await
            .unwrap(),
        401,
        "token_revoked",
        &secrets,
    )
    .await;
    assert_eq!(
        post(&one_call, "/v1/chat/completions", "{}".into())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_refusal(
        post(&one_call, "/v1/chat/completions", "{}".into())
            .await
            .unwrap(),
        429,
        "calls_exhausted",
        &secrets,
    )
    .await;
    assert_refusal(
        post(&token, "/v1/chat/completions", "x".repeat(2048))
            .await
            .unwrap(),
        413,
        "request_too_large",
        &secrets,
    )
    .await;
    assert_refusal(
        post(&dead, "/v1/chat/completions", "{}".into())
            .await
            .unwrap(),
        502,
        "upstream_unreachable",
        &secrets,
    )
    .await;
    assert_eq!(
        used_calls(&env, &dead_id).await,
        0,
        "a call that never reached the provider was kept"
    );
    assert_refusal(
        post(&token, "/v1/chat/completions", r#"{"model":"slow"}"#.into())
            .await
            .unwrap(),
        504,
        "upstream_timeout",
        &secrets,
    )
    .await;
    // An upstream error is the provider's answer: passed through, and counted.
    let r = post(&token, "/v1/chat/completions", r#"{"model":"fail"}"#.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_refusal(
        post(&expiring, "/v1/chat/completions", "{}".into())
            .await
            .unwrap(),
        401,
        "token_expired",
        &secrets,
    )
    .await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_character_change_of_a_token_is_invalid_token() {
    let s = setup(&[]).await;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..s.token.len() {
        let mut bytes = s.token.as_bytes().to_vec();
        let pos = alphabet.iter().position(|&c| c == bytes[i]).unwrap_or(0);
        bytes[i] = alphabet[(pos + 7) % alphabet.len()];
        let mutated = String::from_utf8(bytes).unwrap();
        let r = s
            .relay
            .request(reqwest::Method::GET, "/v1/models", &mutated)
            .send()
            .await
            .unwrap();
        assert_refusal(r, 401, "invalid_token", &[KEY, &s.token]).await;
    }
    assert_eq!(s.mock.count(), 0);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_need_no_token_and_never_count() {
    let s = setup(&["--max-calls", "3"]).await;
    let r = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", s.relay.url),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization, content-type"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-max-age"], "86400");
    assert_eq!(s.mock.count(), 0);
    s.relay.stop().await;
    assert_eq!(used_calls(&s.env, &s.id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_paths_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup(&[]).await;
    let addr = s.relay.url.trim_start_matches("http://").to_string();
    for path in ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/a%2Fb"] {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
            s.token
        );
        socket.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        socket.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains("invalid_path"), "{out}");
    }
    assert_eq!(s.mock.count(), 0);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let env = TestEnv::sqlite();
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let client = http();
    assert_eq!(
        client
            .get(format!("{}/healthz", relay.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{}/readyz", relay.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_lets_a_stream_finish() {
    let mut s = setup(&[]).await;
    let mut stream = s
        .relay
        .stream(&s.token, "/v1/chat/completions", r#"{"stream": true}"#)
        .await;
    stream.next().await.expect("a first event");
    let stopping = s.relay.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the server stopped with a stream in flight"
    );
    // No new connections once stopping.
    let url = s.relay.url.clone();
    assert!(http().get(format!("{url}/healthz")).send().await.is_err());
    s.mock.release();
    assert_eq!(stream.rest().await, REST_EVENTS.as_bytes());
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
}

/// PostgreSQL: the store goes away while serving → 503, nothing forwarded uncounted;
/// it comes back → served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_fails_closed_and_recovers() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let call = || {
        relay
            .request(reqwest::Method::GET, "/v1/models", &token)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);

    let db = url::Url::parse(&env.database_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = std::env::var(common::PG_ENV).unwrap();
    let sql = |q: String| {
        let admin = admin.clone();
        async move {
            use sea_orm::ConnectionTrait;
            let conn = sea_orm::Database::connect(&admin).await.unwrap();
            conn.execute_unprepared(&q).await.unwrap();
            conn.close().await.ok();
        }
    };
    sql(format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")).await;
    sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .await;
    let forwarded_before = mock.count();
    let start = Instant::now();
    loop {
        let r = call().await.unwrap();
        if r.status() == 503 {
            assert_refusal(r, 503, "store_unavailable", &[KEY, &token]).await;
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still served without a store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every call is counted before it is forwarded: none went through uncounted.
    assert_eq!(mock.count(), forwarded_before, "forwarded without a store");
    assert_eq!(
        http()
            .get(format!("{}/readyz", relay.url))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    sql(format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")).await;
    let start = Instant::now();
    loop {
        if call().await.unwrap().status() == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, mock.count() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_cut_but_a_slow_one_is_not() {
    let config = ServeConfig {
        idle_timeout: Duration::from_millis(400),
        ..ServeConfig::default()
    };
    let s = setup_with(config, &[]).await;
    let stream = || {
        s.relay
            .stream(&s.token, "/v1/chat/completions", r#"{"stream": true}"#)
    };

    // Released after 200 ms (< idle timeout): the whole stream arrives.
    let mut slow = stream().await;
    slow.next().await.expect("a first event");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.mock.release();
    assert_eq!(slow.rest().await, REST_EVENTS.as_bytes());

    // Never released: cut after the idle timeout, and the upstream request is dropped.
    let mut idle = stream().await;
    idle.next().await.expect("a first event");
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = idle.0.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the idle stream was not cut");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "cut too early"
    );
    s.relay.stop().await;
}

/// hyper keeps a slot the size of the router's per-request future in every connection, for
/// the connection's whole life. One unboxed 14 KiB database future in a rarely used route
/// (the readiness check's) once made that 15 KiB for every relay connection: ~15 MiB per
/// 1,000 open streams. Large futures belong in a `Box` inside their route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_per_request_future_stays_small() {
    let env = TestEnv::sqlite();
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let router = relayapi::server::router(relay.state.clone());
    // Both of the router's paths: warp's routes, and the relay taken directly.
    for (path, status) in [("/healthz", 200), ("/v1/models", 401)] {
        let request = http::Request::get(path).body(String::new()).unwrap();
        let future = router.call(request);
        let size = std::mem::size_of_val(&future);
        println!("router future for {path}: {size} bytes");
        assert!(size <= 3072, "the router's future is {size} bytes");
        // Still a working future.
        assert_eq!(future.await.status(), status, "{path}");
    }
    relay.stop().await;
}
