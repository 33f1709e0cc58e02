//! Fault injection with real processes and sockets: upstreams that refuse, hang, cut off,
//! send garbage, endless streams, gigantic headers or one byte at a time; clients that leave,
//! trickle, or send too much or nonsense; databases that are unreachable, locked or gone;
//! and a relay killed with SIGKILL under load.

use crate::common;
use common::TEST_KEY as KEY;

use std::time::{Duration, Instant};

use common::mock::{CHAT_JSON, MockUpstream};
use common::raw::{Outcome, RawUpstream, SSE_HEAD, chunk, read_until_close, send_paced};
use common::{
    ServeProcess, TestEnv, TestRelay, assert_refusal, http, issue_async, usage_of, used_calls,
};
use relayapi::server::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT_PATH: &str = "/v1/chat/completions";
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn quick() -> ServeConfig {
    ServeConfig {
        upstream_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(2),
        client_timeout: Duration::from_secs(1),
        ..ServeConfig::default()
    }
}

/// [`TestRelay::post`] to a relay known by its URL (a `serve` process, or from a spawned
/// task).
async fn post_at(relay_url: &str, token: &str, body: &str) -> reqwest::Response {
    http()
        .post(format!("{relay_url}/v1/chat/completions"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the relay answers")
}

/// Posts `body` and checks that it is refused with `status` and `code`, with neither the
/// upstream key nor the token anywhere in the answer.
async fn assert_call_refused(relay: &TestRelay, token: &str, body: &str, status: u16, code: &str) {
    assert_refusal(
        relay.post(token, CHAT_PATH, body).await,
        status,
        code,
        &[KEY, token],
    )
    .await;
}

/// A fresh SQLite installation with one token for `upstream` (plus `extra` issue flags),
/// and a relay with short timeouts in front of it: (env, token id, token, relay).
async fn relay_for(upstream: &str, extra: &[&str]) -> (TestEnv, String, String, TestRelay) {
    let env = TestEnv::sqlite();
    let mut args = vec!["--upstream", upstream];
    args.extend_from_slice(extra);
    let (id, token) = issue_async(&env, KEY, &args).await;
    let relay = TestRelay::start(&env, quick()).await;
    (env, id, token, relay)
}

/// Waits (up to 5 s) for `check`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- upstream faults ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upstream_is_502_and_the_call_is_given_back() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (env, id, token, relay) = relay_for(&url, &["--max-calls", "2"]).await;
    for _ in 0..4 {
        assert_call_refused(&relay, &token, CHAT, 502, "upstream_unreachable").await;
    }
    // Four refused connections spent none of the two calls.
    assert_eq!(used_calls(&env, &id).await, 0);
    relay.stop().await;
    assert_eq!(common::usage_records(&env).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_is_504_and_its_connection_is_dropped() {
    let upstream = RawUpstream::start(|mut socket| async move {
        // Never answers; reports whether the relay gives up on the connection.
        if read_until_close(&mut socket, Duration::from_secs(5))
            .await
            .is_some()
        {
            Outcome::RelayGone
        } else {
            Outcome::Done
        }
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &[]).await;
    let start = Instant::now();
    assert_call_refused(&relay, &token, CHAT, 504, "upstream_timeout").await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    eventually("the relay drops the hung connection", || {
        upstream.closed_by_relay() == 1
    })
    .await;
    // It may have reached the provider: counted, and recorded as a 504.
    assert_eq!(used_calls(&env, &id).await, 1);
    let row = usage_of(&env, &id, 1).await;
    assert_eq!(row.errors, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_mid_response_cuts_the_clients_response_too() {
    let upstream = RawUpstream::start(|mut socket| async move {
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
        send_paced(
            &mut socket,
            &[head, br#"{"id":"cut","choices":["#],
            Duration::ZERO,
        )
        .await;
        Outcome::Done // dropping the socket closes it, 970 bytes short
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &[]).await;
    let response = relay.post(&token, CHAT_PATH, CHAT).await;
    assert_eq!(response.status(), 200);
    // The client must see an error, never a short body passed off as complete.
    assert!(
        response.bytes().await.is_err(),
        "a cut body read as complete"
    );
    let row = usage_of(&env, &id, 1).await;
    assert_eq!(row.calls, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sse_passes_through_byte_for_byte_and_counts_nothing_wrong() {
    let long_line = format!("data: {}", "x".repeat(200_000));
    let garbage: Vec<Vec<u8>> = vec![
        b"data: {not json\n\n".to_vec(),
        b"data: \xff\xfe\xfd invalid utf-8\n\n".to_vec(),
        b"data: {\"usage\":\"lots\",\"choices\":[]}\n\n".to_vec(),
        b"data: {\"usage\":{\"prompt_tokens\":-1,\"total_tokens\":\"x\"}}\n\n".to_vec(),
        b"event: \r\nretry: oops\r\n:comment\r\n\r\n".to_vec(),
        long_line.into_bytes(),
        b"\n\ndata: [DONE]\n\n".to_vec(),
    ];
    let sent: Vec<u8> = garbage.concat();
    let upstream = RawUpstream::start(move |mut socket| {
        let garbage = garbage.clone();
        async move {
            let mut parts = vec![SSE_HEAD.to_vec()];
            parts.extend(garbage.iter().map(|g| chunk(g)));
            parts.push(b"0\r\n\r\n".to_vec());
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            send_paced(&mut socket, &refs, Duration::from_millis(5)).await
        }
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &[]).await;
    // Once as a plain stream (the relay asks for usage and filters), once asking for usage.
    for body in [
        r#"{"model":"m","stream":true}"#,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
    ] {
        let response = relay.post(&token, CHAT_PATH, body).await;
        assert_eq!(response.status(), 200);
        let received = response.bytes().await.expect("a whole stream");
        assert!(
            received == sent,
            "the stream was altered ({} vs {} bytes)",
            received.len(),
            sent.len()
        );
    }
    let row = usage_of(&env, &id, 2).await;
    // Negative or mistyped counts are not believed.
    assert!(row.prompt_tokens >= 0 && row.total_tokens >= 0, "{row:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_stream_ends_when_the_client_leaves_and_frees_its_slot() {
    let upstream = RawUpstream::start(|mut socket| async move {
        if send_paced(&mut socket, &[SSE_HEAD], Duration::ZERO)
            .await
            .is_gone()
        {
            return Outcome::RelayGone;
        }
        let event = chunk(b"data: {\"choices\":[{\"delta\":{\"content\":\"la\"}}]}\n\n");
        let started = Instant::now();
        // Endless for the test's purposes, bounded so a broken relay cannot hang the suite.
        while started.elapsed() < Duration::from_secs(20) {
            if send_paced(&mut socket, &[&event], Duration::from_millis(10))
                .await
                .is_gone()
            {
                return Outcome::RelayGone;
            }
        }
        Outcome::Done
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &["--concurrency", "1"]).await;
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
    let mut response = relay.post(&token, CHAT_PATH, body).await;
    let mut got = 0;
    while got < 4096 {
        got += response.chunk().await.unwrap().expect("more events").len();
    }
    // The slot is taken while the stream runs.
    assert_call_refused(&relay, &token, body, 429, "too_many_concurrent_requests").await;
    drop(response);
    eventually("the upstream stream is cancelled", || {
        upstream.closed_by_relay() == 1
    })
    .await;
    let row = usage_of(&env, &id, 1).await;
    assert_eq!(row.aborted, 1);
    // And the slot is free again.
    let again = relay.post(&token, CHAT_PATH, body).await;
    assert_eq!(again.status(), 200);
    drop(again);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigantic_upstream_headers_are_a_502_and_the_relay_stays_up() {
    let upstream = RawUpstream::start(|mut socket| async move {
        let mut head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-huge: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
        head.extend_from_slice(b"\r\n\r\n{}");
        send_paced(&mut socket, &[&head], Duration::ZERO).await
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &[]).await;
    assert_call_refused(&relay, &token, CHAT, 502, "upstream_unreachable").await;
    // The request reached the provider, so it counts.
    assert_eq!(used_calls(&env, &id).await, 1);
    let health = http()
        .get(format!("{}/healthz", relay.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_byte_by_byte_arrives_whole_and_is_read_for_usage() {
    let upstream = RawUpstream::start(|mut socket| async move {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT_JSON}",
            CHAT_JSON.len()
        );
        let bytes: Vec<&[u8]> = response.as_bytes().chunks(1).collect();
        send_paced(&mut socket, &bytes, Duration::from_millis(3)).await
    })
    .await;
    let (env, id, token, relay) = relay_for(&upstream.url, &[]).await;
    let response = relay.post(&token, CHAT_PATH, CHAT).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), CHAT_JSON);
    let row = usage_of(&env, &id, 1).await;
    assert_eq!((row.prompt_tokens, row.completion_tokens), (5, 1));
    relay.stop().await;
}

// ---- client faults ----

/// A raw connection to the relay.
async fn connect(relay: &TestRelay) -> TcpStream {
    TcpStream::connect(relay.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_body_is_neither_forwarded_nor_counted() {
    let mock = MockUpstream::start().await;
    let (env, id, token, relay) = relay_for(&mock.url, &[]).await;
    let mut socket = connect(&relay).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {token}\r\ncontent-length: 1000\r\n\r\n{{\"model\""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.count(), 0);
    assert_eq!(used_calls(&env, &id).await, 0);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_and_bodies_are_cut_at_the_client_timeout() {
    let mock = MockUpstream::start().await;
    let (env, id, token, relay) = relay_for(&mock.url, &[]).await;

    // Headers, one byte every 100 ms: the connection is closed after the 1 s timeout.
    let mut socket = connect(&relay).await;
    let start = Instant::now();
    let trickle = async {
        for b in b"POST /v1/chat/completions HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if socket.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    assert!(
        read_until_close(&mut socket, Duration::from_secs(2))
            .await
            .is_some(),
        "still open"
    );
    assert!(start.elapsed() < Duration::from_secs(4));

    // A whole head, then the body one byte every 100 ms: 408 after the timeout.
    let mut socket = connect(&relay).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {token}\r\ncontent-length: 100\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..40 {
        if socket.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(mock.count(), 0);
    assert_eq!(used_calls(&env, &id).await, 0);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_invalid_and_non_utf8_bodies() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (plain_id, plain) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let (_, modelled) =
        issue_async(&env, KEY, &["--upstream", &mock.url, "--model", "gpt-4o*"]).await;
    let (_, capped) = issue_async(
        &env,
        KEY,
        &["--upstream", &mock.url, "--max-output-tokens", "100"],
    )
    .await;
    let config = ServeConfig {
        max_body: 1024,
        ..quick()
    };
    let relay = TestRelay::start(&env, config).await;
    let client = http();
    let send = |token: &str, body: Vec<u8>| {
        client
            .post(format!("{}/v1/chat/completions", relay.url))
            .bearer_auth(token)
            .body(body)
            .send()
    };

    // Over the limit, announced or streamed without a length. A raw client that stops
    // writing once past the limit, so that the answer is read, not a broken pipe (the
    // relay answers at once and closes, as it should, without reading the rest).
    let chunked_head = chunk(&[b'a'; 2000]);
    for (framing, first_part) in [
        ("content-length: 5000", Vec::new()),
        ("transfer-encoding: chunked", chunked_head),
    ] {
        let mut socket = connect(&relay).await;
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {plain}\r\n{framing}\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&first_part).await.unwrap();
        let answer = read_until_close(&mut socket, Duration::from_secs(5))
            .await
            .expect("the relay answers and closes");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{framing}: {answer}");
        assert!(answer.contains("request_too_large"), "{framing}: {answer}");
        assert!(!answer.contains(KEY) && !answer.contains(&plain));
    }
    // A body nobody needs to read passes untouched, whatever it is.
    let odd = b"\xff\xfe{\"model\": not json".to_vec();
    let r = send(&plain, odd.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.requests().last().unwrap().body.as_ref(),
        odd.as_slice()
    );
    // A policy that must read the body refuses one it cannot read: not JSON, not an
    // object, or a field of the wrong type (which would otherwise slip past the cap).
    for token in [&modelled, &capped] {
        for body in [
            odd.clone(),
            b"[1,2]".to_vec(),
            br#"{"model":"gpt-4o","stream":"yes","max_tokens":9999}"#.to_vec(),
        ] {
            let r = send(token, body).await.unwrap();
            assert_refusal(r, 400, "invalid_request", &[KEY, token]).await;
        }
    }
    assert_eq!(
        mock.count(),
        1,
        "only the body nobody had to read was forwarded"
    );
    assert_eq!(used_calls(&env, &plain_id).await, 1);
    relay.stop().await;
}

// ---- database faults ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_an_unreachable_database_exits_with_a_clear_error() {
    let env = TestEnv::sqlite();
    for (url, expect) in [
        (
            "postgres://relay:pw-SECRET-1@127.0.0.1:1/relayapi",
            "database",
        ),
        (
            "sqlite:///proc/no/such/dir/relayapi.db?mode=rwc",
            "database",
        ),
    ] {
        let out = env
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RELAYAPI_DATABASE_URL", url)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{url}: serve started");
        assert!(err.to_lowercase().contains(expect), "{url}: {err}");
        assert!(
            !err.contains("pw-SECRET-1"),
            "the password was printed: {err}"
        );
        assert!(err.lines().count() <= 3, "not a clear error: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_refuses_with_503_and_nothing_goes_uncounted() {
    use sea_orm::ConnectionTrait;
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (limited, limited_token) =
        issue_async(&env, KEY, &["--upstream", &mock.url, "--max-calls", "100"]).await;
    let (unlimited, unlimited_token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let serve = ServeProcess::spawn(&env, &[]);
    for token in [&limited_token, &unlimited_token] {
        assert_eq!(post_at(&serve.url, token, CHAT).await.status(), 200);
    }

    // Another process takes SQLite's write lock and holds it past the busy timeout.
    let mut options = sea_orm::ConnectOptions::new(env.database_url.clone());
    options.max_connections(1).min_connections(1);
    let locker = sea_orm::Database::connect(options).await.unwrap();
    locker.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
    let forwarded = mock.count();
    let start = Instant::now();
    let (a, b) = tokio::join!(
        post_at(&serve.url, &limited_token, CHAT),
        post_at(&serve.url, &unlimited_token, CHAT)
    );
    for r in [a, b] {
        assert_refusal(r, 503, "store_unavailable", &[KEY]).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        mock.count(),
        forwarded,
        "forwarded while the store could not count"
    );
    locker.execute_unprepared("COMMIT").await.unwrap();
    locker.close().await.ok();

    // Released: served and counted again.
    for token in [&limited_token, &unlimited_token] {
        assert_eq!(post_at(&serve.url, token, CHAT).await.status(), 200);
    }
    assert_eq!(used_calls(&env, &limited).await, 2);
    assert_eq!(used_calls(&env, &unlimited).await, 2);
    assert_eq!(mock.count(), 4);
    assert!(serve.stop().success());
}

/// Takes SQLite's write lock on a thread of its own (as another process would) until told
/// to let go, or for 20 s at most.
fn hold_write_lock(
    path: std::path::PathBuf,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(20));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    (release_tx, holder)
}

// One thread serves everything here: if a count waited for SQLite's lock on the request's
// thread, nothing else could be answered until the lock was let go.
#[tokio::test(flavor = "current_thread")]
async fn a_briefly_locked_sqlite_file_defers_counts_without_stalling_the_relay() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (limited, limited_token) =
        issue_async(&env, KEY, &["--upstream", &mock.url, "--max-calls", "10"]).await;
    let (unlimited, unlimited_token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let stats = || {
        relay
            .state
            .store
            .inline_count_stats()
            .expect("SQLite counts inline")
    };

    // Nothing in the way: counted on the request's thread. The relay's own writers are let
    // finish first, or they would rightly defer a count: its start-up WAL checkpoint (which
    // empties the log) and, before each next call, the usage record of the call before.
    let wal = env.data_dir().join("relayapi.db-wal");
    eventually("the start-up checkpoint", || {
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0)
    })
    .await;
    for (id, token) in [(&limited, &limited_token), (&unlimited, &unlimited_token)] {
        assert_eq!(relay.post(token, CHAT_PATH, CHAT).await.status(), 200);
        usage_of(&env, id, 1).await;
    }
    assert_eq!(stats().inline, 2, "{:?}", stats());
    assert_eq!(stats().deferred, 0);

    // The longest the thread was kept from a 10 ms timer while the lock was held.
    let longest_stall = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = tokio::spawn({
        let longest_stall = longest_stall.clone();
        async move {
            loop {
                let asleep = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                let ms = asleep.elapsed().as_millis() as u64;
                longest_stall.fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let (release, holder) = hold_write_lock(env.data_dir().join("relayapi.db"));
    let calls = {
        let (url, limited_token, unlimited_token) = (
            relay.url.clone(),
            limited_token.clone(),
            unlimited_token.clone(),
        );
        tokio::spawn(async move {
            let (a, b) = tokio::join!(
                post_at(&url, &limited_token, CHAT),
                post_at(&url, &unlimited_token, CHAT)
            );
            (a.status(), b.status())
        })
    };
    // Both calls reach the counter and are deferred; meanwhile the relay still answers.
    eventually("both counts deferred", || stats().deferred == 2).await;
    let health = http()
        .get(format!("{}/healthz", relay.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        !calls.is_finished(),
        "a call went through while the store was locked"
    );
    ticker.abort();
    let stalled = longest_stall.load(std::sync::atomic::Ordering::Relaxed);
    // Generous for a loaded machine; waiting in SQLite's busy handler would be seconds.
    assert!(
        stalled < 1000,
        "the relay's thread was blocked for {stalled} ms"
    );
    assert_eq!(mock.count(), 2, "forwarded before it was counted");

    release.send(()).unwrap();
    holder.join().unwrap();
    let (a, b) = calls.await.unwrap();
    assert_eq!((a.as_u16(), b.as_u16()), (200, 200));
    assert_eq!(used_calls(&env, &limited).await, 2);
    assert_eq!(used_calls(&env, &unlimited).await, 2);
    assert_eq!(mock.count(), 4);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_row_that_does_not_parse_is_refused_clearly_and_logged_once() {
    use sea_orm::ConnectionTrait;
    let mock = MockUpstream::start().await;
    let env = TestEnv::sqlite();
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    // Edited by hand (or by a newer version): an auth style this build does not know.
    let db = sea_orm::Database::connect(env.database_url.clone())
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE tokens SET auth = 'carrier-pigeon' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    db.close().await.ok();

    let serve = ServeProcess::spawn(&env, &[]);
    for _ in 0..3 {
        let response = post_at(&serve.url, &token, CHAT).await;
        assert_refusal(response, 500, "token_record_unreadable", &[KEY, &token]).await;
    }
    assert_eq!(mock.count(), 0, "nothing was forwarded");
    let logged: Vec<String> = serve
        .log()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cannot be read") && l.contains(&id))
        .cloned()
        .collect();
    assert_eq!(logged.len(), 1, "logged once, naming the token: {logged:?}");
    assert!(logged[0].contains("auth"), "names the column: {logged:?}");
    serve.stop();
}

// ---- crash ----

/// Issues one limited and one unlimited token, each with its own key so the mock can tell
/// their calls apart.
async fn kill_9_case(env: TestEnv) {
    let mock = MockUpstream::start().await;
    const LIMIT: i64 = 120;
    let limited_key = "sk-real-LIMITED-key-0123456789";
    let unlimited_key = "sk-real-UNLIMITED-key-0123456789";
    let limit = LIMIT.to_string();
    let (limited, limited_token) = issue_async(
        &env,
        limited_key,
        &["--upstream", &mock.url, "--max-calls", &limit],
    )
    .await;
    let (unlimited, unlimited_token) =
        issue_async(&env, unlimited_key, &["--upstream", &mock.url]).await;
    let serve = ServeProcess::spawn(&env, &[]);
    const CONCURRENCY: usize = 16;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (url, stop) = (serve.url.clone(), stop.clone());
            let token = if i % 2 == 0 {
                limited_token.clone()
            } else {
                unlimited_token.clone()
            };
            tokio::spawn(async move {
                let client = http();
                // Bounded: at most 200 calls per task, and none after the kill.
                for _ in 0..200 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let sent = client
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(&token)
                        .body(CHAT)
                        .send()
                        .await;
                    if sent.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    // Kill once the limited token is used up and the other is well under way.
    let by_key = |key: &str| {
        let bearer = format!("Bearer {key}");
        mock.requests()
            .iter()
            .filter(|r| {
                r.headers
                    .get("authorization")
                    .is_some_and(|v| v == bearer.as_str())
            })
            .count() as i64
    };
    eventually("load is under way", || {
        by_key(unlimited_key) >= 200 && by_key(limited_key) >= LIMIT
    })
    .await;
    let records_before = common::usage_records(&env).await;
    serve.kill_9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let (forwarded_limited, forwarded_unlimited) = (by_key(limited_key), by_key(unlimited_key));
    let (counted_limited, counted_unlimited) = (
        used_calls(&env, &limited).await,
        used_calls(&env, &unlimited).await,
    );
    eprintln!(
        "{:?}: limited forwarded {forwarded_limited} counted {counted_limited}; unlimited forwarded {forwarded_unlimited} counted {counted_unlimited}; {records_before} records before the kill",
        env.backend
    );
    // Never over-served, never under-counted, over-counted by at most the calls in flight.
    assert!(
        forwarded_limited <= LIMIT,
        "{forwarded_limited} forwarded on a limit of {LIMIT}"
    );
    let in_flight = CONCURRENCY as i64;
    for (forwarded, counted) in [
        (forwarded_limited, counted_limited),
        (forwarded_unlimited, counted_unlimited),
    ] {
        assert!(
            forwarded <= counted && counted <= forwarded + in_flight,
            "forwarded {forwarded}, counted {counted}, {:?}",
            env.backend
        );
    }
    // Every usage record committed before the kill is still there.
    assert!(common::usage_records(&env).await >= records_before);
    // And the relay starts again on the same data.
    let serve = ServeProcess::spawn(&env, &[]);
    let r = http()
        .post(format!("{}/v1/chat/completions", serve.url))
        .bearer_auth(&unlimited_token)
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(used_calls(&env, &unlimited).await, counted_unlimited + 1);
    assert!(serve.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_never_over_serves_nor_under_counts() {
    for env in TestEnv::all() {
        kill_9_case(env).await;
    }
}
