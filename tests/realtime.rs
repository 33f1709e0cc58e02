//! Realtime through the relay: WebSocket sessions (OpenAI Realtime, Gemini Live), WebRTC
//! call setup (`/v1/realtime/calls`) and ephemeral client secrets, with the real key only
//! upstream.

use crate::common;
use common::TEST_KEY as KEY;

use std::time::Duration;

use common::mock::{EPHEMERAL_KEY, MockUpstream, SDP_ANSWER};
use common::realtime_mock::{
    RESPONSE_TOKENS, RealtimeMock, TURN_TOKENS, close_of, next_event, one_response, refusal_of,
    ws_connect,
};
use common::{TestEnv, TestRelay, assert_refusal, python, used_calls};
use futures_util::{SinkExt, StreamExt};
use relayapi::server::ServeConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

/// The browser's form: the SDP offer and the session, as `fetch` with `FormData` sends it.
fn call_form(model: &str) -> (String, String) {
    let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let session = json!({"type": "realtime", "model": model}).to_string();
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\n{OFFER}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{session}\r\n\
         --{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_call_is_set_up_with_the_real_key_and_the_model_list() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&["--upstream", &mock.url, "--model", "gpt-realtime*"])
        .await;
    let call = |(content_type, body): (String, String)| {
        relay
            .request(reqwest::Method::POST, "/v1/realtime/calls", &token)
            .header("content-type", content_type)
            .header("origin", "https://app.example.com")
            .body(body)
            .send()
    };

    let answer = call(call_form("gpt-realtime")).await.unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["location"], "/v1/realtime/calls/rtc_mock");
    assert_eq!(answer.headers()["access-control-expose-headers"], "*");
    assert_eq!(answer.text().await.unwrap(), SDP_ANSWER);
    let seen = &mock.requests()[0];
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    assert_eq!(seen.body, call_form("gpt-realtime").1.as_bytes());

    let refused = call(call_form("gpt-4o-realtime-preview")).await.unwrap();
    assert_refusal(refused, 403, "model_not_allowed", &[KEY, &token]).await;
    // A bare SDP offer names no model: the model list cannot be applied to it.
    let bare = call(("application/sdp".into(), OFFER.into()))
        .await
        .unwrap();
    assert_refusal(bare, 400, "invalid_request", &[KEY, &token]).await;
    assert_eq!(mock.count(), 1);
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secrets_are_opt_in_and_never_outlive_their_token() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let (_, plain) = relay.issue(&["--upstream", &mock.url]).await;
    let (id, token) = relay
        .issue(&[
            "--upstream",
            &mock.url,
            "--endpoint",
            "/v1/realtime/client_secrets",
            "--model",
            "gpt-realtime",
            "--expires-in",
            "5m",
        ])
        .await;
    let ask = json!({
        "expires_after": {"anchor": "created_at", "seconds": 7200},
        "session": {"type": "realtime", "model": "gpt-realtime"}
    })
    .to_string();
    let path = "/v1/realtime/client_secrets";
    // Not among the default endpoints: a token must name it.
    let r = relay.post(&plain, path, &ask).await;
    assert_refusal(r, 403, "endpoint_not_allowed", &[KEY, &plain]).await;

    let r = relay.post(&token, path, &ask).await;
    assert_eq!(r.status(), 200);
    let minted: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(minted["value"], EPHEMERAL_KEY);
    let sent: Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    let seconds = sent["expires_after"]["seconds"].as_u64().unwrap();
    assert!(
        (290..=300).contains(&seconds),
        "a secret for a token with 5 minutes left lives {seconds} s"
    );
    assert_eq!(sent["session"]["model"], "gpt-realtime");

    let other = json!({"session": {"type": "realtime", "model": "gpt-4o-realtime-preview"}});
    let r = relay.post(&token, path, &other.to_string()).await;
    assert_refusal(r, 403, "model_not_allowed", &[KEY, &token]).await;

    // The official SDK's call, as a page's backend-for-frontend would make it.
    let script = r#"
import os, openai
client = openai.OpenAI(api_key=os.environ["TOKEN"], base_url=os.environ["RELAY"] + "/v1", max_retries=0)
secret = client.realtime.client_secrets.create(
    session={"type": "realtime", "model": "gpt-realtime"},
    expires_after={"anchor": "created_at", "seconds": 3600})
print(secret.value)
"#;
    let vars = vec![("RELAY", relay.url.clone()), ("TOKEN", token.clone())];
    if let Some(out) = python(script, vars).await {
        assert_eq!(out.trim(), EPHEMERAL_KEY);
        let sent: Value = serde_json::from_slice(&mock.requests()[1].body).unwrap();
        assert!(sent["expires_after"]["seconds"].as_u64().unwrap() <= 300);
    }
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, mock.count() as i64);
}

/// Sends a request on a raw socket, as a WebSocket handshake when `upgrade`; returns the
/// status line and the JSON body.
async fn raw_request(
    relay: &TestRelay,
    token: &str,
    target: &str,
    upgrade: bool,
) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = relay.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let upgrade = if upgrade {
        "connection: Upgrade\r\nupgrade: websocket\r\n"
    } else {
        ""
    };
    let request = format!(
        "{target} HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {token}\r\n{upgrade}\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         content-length: 0\r\norigin: https://app.example.com\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a content length");
            if body.len() >= length {
                let status = head.lines().next().unwrap().to_string();
                return (status, serde_json::from_str(&body[..length]).unwrap());
            }
        }
        assert!(std::time::Instant::now() < deadline, "no answer: {text}");
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .expect("the relay answers")
            .unwrap();
        assert!(n > 0, "closed without an answer: {text}");
        answer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_relayed_only_on_a_realtime_path_and_that_path_only_as_one() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&["--upstream", &mock.url, "--endpoint", "* /v1/*"])
        .await;
    // An upgrade on an HTTP path would reach the provider as a plain GET.
    let (status, misplaced) = raw_request(&relay, &token, "POST /v1/chat/completions", true).await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert_eq!(misplaced["error"]["code"], "websocket_not_supported");
    // And the realtime path means nothing without one.
    let (status, plain) = raw_request(&relay, &token, "GET /v1/realtime", false).await;
    assert!(status.starts_with("HTTP/1.1 426"), "{status}");
    assert_eq!(plain["error"]["code"], "websocket_required");
    for body in [misplaced.to_string(), plain.to_string()] {
        assert!(!body.contains(KEY) && !body.contains(&token), "{body}");
    }
    assert_eq!(mock.count(), 0, "nothing reached the provider");
    relay.stop().await;
    assert_eq!(
        used_calls(&env, &id).await,
        0,
        "a refused handshake is not a call"
    );
}

const REALTIME: &str = "/v1/realtime?model=gpt-realtime";

/// A relay on SQLite, and a realtime provider for its tokens' `--upstream`.
async fn realtime_relay(config: ServeConfig) -> (TestEnv, RealtimeMock, TestRelay) {
    let env = TestEnv::sqlite();
    let upstream = RealtimeMock::start().await;
    let relay = TestRelay::start(&env, config).await;
    (env, upstream, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_relays_every_frame_both_ways_and_counts_once() {
    let (env, upstream, relay) = realtime_relay(ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&[
            "--upstream",
            &upstream.url,
            "--model",
            "gpt-realtime",
            "--concurrency",
            "1",
        ])
        .await;
    let bearer = format!("Bearer {token}");
    let (mut ws, answer) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
        .await
        .expect("the session opens");
    assert_eq!(answer.status(), 101);
    assert_eq!(next_event(&mut ws).await["type"], "session.created");

    // The session holds the token's one concurrent call.
    let busy = relay.post(&token, "/v1/chat/completions", "{}").await;
    assert_refusal(busy, 429, "too_many_concurrent_requests", &[KEY, &token]).await;

    let text = json!({"type": "conversation.item.create", "n": 1}).to_string();
    ws.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(
        next_event(&mut ws).await,
        serde_json::from_str::<Value>(&text).unwrap()
    );
    let audio: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(audio.clone())).await.unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let (mut binary, mut pong) = (None, false);
    while binary.is_none() || !pong {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Binary(bytes))) => binary = Some(bytes),
            Some(Ok(Message::Pong(payload))) => pong |= &payload[..] == b"are you there",
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(binary.unwrap(), audio, "binary frames pass unchanged");

    one_response(&mut ws).await;
    // The client's close code and reason reach the provider, and its answer comes back.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    assert_eq!(close_of(&mut ws).await, (1000, "bye".to_string()));

    let seen = &upstream.handshakes()[0];
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(seen.uri.ends_with(REALTIME), "{}", seen.uri);
    assert!(
        !seen.everything().contains(&token),
        "the token went upstream: {seen:?}"
    );
    let usage = common::usage_of(&env, &id, 1).await;
    assert_eq!((usage.total_tokens, usage.aborted), (RESPONSE_TOKENS, 0));
    // Metrics: frames and bytes each way, the session's length by how it ended.
    let metrics = relay.state.metrics.render(0, 0, None);
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    // Up: the text, the audio, the ping, response.create and the close.
    assert_eq!(
        value("relayapi_realtime_frames_total{direction=\"up\"}"),
        5.0
    );
    assert!(value("relayapi_realtime_bytes_total{direction=\"up\"}") > audio.len() as f64);
    assert!(value("relayapi_realtime_frames_total{direction=\"down\"}") >= 6.0);
    assert_eq!(value("relayapi_realtime_sessions_open"), 0.0);
    assert_eq!(
        value("relayapi_realtime_session_duration_seconds_count{end=\"client_closed\"}"),
        1.0
    );
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 1, "a session is one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_and_so_is_one_whose_token_expires() {
    let (_env, upstream, relay) = realtime_relay(ServeConfig {
        idle_timeout: Duration::from_secs(1),
        ..ServeConfig::default()
    })
    .await;
    let (_, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let bearer = format!("Bearer {token}");
    let (mut ws, _) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    assert_eq!(
        close_of(&mut ws).await,
        (1001, "the session was idle too long".to_string())
    );
    let (_, expiring) = relay
        .issue(&["--upstream", &upstream.url, "--expires-in", "2s"])
        .await;
    let bearer = format!("Bearer {expiring}");
    let (ws, _) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
        .await
        .unwrap();
    // Kept busy, so only the expiry can end it.
    let busy = tokio::spawn(async move {
        let (mut sink, mut stream) = futures_util::StreamExt::split(ws);
        let pinger = async {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        };
        let closed = async {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        break (u16::from(frame.code), frame.reason.to_string());
                    }
                    Some(Ok(_)) => {}
                    other => panic!("ended without a close frame: {other:?}"),
                }
            }
        };
        tokio::select! {
            closed = closed => closed,
            _ = pinger => panic!("the pings stopped first"),
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(8), busy)
        .await
        .expect("closed within 8 s")
        .unwrap();
    assert_eq!(closed, (1008, "the token has expired".to_string()));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_handshake_is_checked_before_anything_is_dialled() {
    let (env, upstream, relay) = realtime_relay(ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&[
            "--upstream",
            &upstream.url,
            "--model",
            "gpt-realtime",
            "--origin",
            "https://app.example.com",
        ])
        .await;
    // A page's WebSocket cannot set headers: the token rides in a subprotocol.
    let protocols = format!("realtime, openai-insecure-api-key.{token}, openai-beta.realtime-v1");
    let browser = |origin: &'static str, target: &'static str| {
        let protocols = protocols.clone();
        let relay = &relay;
        async move {
            ws_connect(
                &relay.url,
                target,
                &[("sec-websocket-protocol", &protocols), ("origin", origin)],
            )
            .await
        }
    };
    let (mut ws, answer) = browser("https://app.example.com", REALTIME)
        .await
        .expect("opens");
    assert_eq!(answer.headers()["sec-websocket-protocol"], "realtime");
    assert!(
        !format!("{:?}", answer.headers()).contains(&token),
        "the token was echoed"
    );
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    ws.close(None).await.unwrap();
    let seen = &upstream.handshakes()[0];
    assert_eq!(
        seen.header("sec-websocket-protocol"),
        Some("realtime, openai-beta.realtime-v1")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen.header("origin"), None);
    assert!(!seen.everything().contains(&token));

    // Cross-site WebSocket hijacking: CORS does not guard a WebSocket, the origin check does.
    let (status, body) = refusal_of(browser("https://evil.example", REALTIME).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let (status, body) = refusal_of(
        browser(
            "https://app.example.com",
            "/v1/realtime?model=gpt-4o-realtime",
        )
        .await,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let (status, _) = refusal_of(browser("https://app.example.com", "/v1/realtime").await);
    assert_eq!(status, 403, "no model named: the list cannot be applied");
    assert_eq!(upstream.handshakes().len(), 1, "refusals dial nothing");

    // The provider's own refusal reaches the page as it was sent.
    let (_, open_token) = relay.issue(&["--upstream", &upstream.url]).await;
    let bearer = format!("Bearer {open_token}");
    let (status, body) = refusal_of(
        ws_connect(
            &relay.url,
            "/v1/realtime?model=refused-by-provider",
            &[("authorization", &bearer)],
        )
        .await,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 1, "refusals are not calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_end_live_sessions_with_a_close_code_and_a_reason() {
    let (env, upstream, relay) = realtime_relay(ServeConfig::default()).await;
    let open = |token: String| {
        let relay = &relay;
        async move {
            let bearer = format!("Bearer {token}");
            let (mut ws, _) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
                .await
                .expect("opens");
            assert_eq!(next_event(&mut ws).await["type"], "session.created");
            ws
        }
    };

    // Revoked while open: closed within the bound revocation meets for HTTP calls.
    let (revoked_id, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let mut ws = open(token.clone()).await;
    let store = env.store().await;
    store.revoke(&revoked_id).await.unwrap();
    assert_eq!(
        close_of(&mut ws).await,
        (1008, "the token has been revoked".to_string())
    );

    // The budget runs out mid-session: the response that spends it arrives, then the close.
    let budget = (RESPONSE_TOKENS + 1).to_string();
    let (budget_id, token) = relay
        .issue(&["--upstream", &upstream.url, "--max-total-tokens", &budget])
        .await;
    let mut ws = open(token.clone()).await;
    for _ in 0..2 {
        one_response(&mut ws).await;
    }
    assert_eq!(
        close_of(&mut ws).await,
        (1008, "the token has used its token budget".to_string())
    );
    let refused = relay.post(&token, "/v1/chat/completions", "{}").await;
    assert_refusal(refused, 429, "token_budget_exhausted", &[KEY, &token]).await;

    // The provider drops the connection: the client hears 1011, the session is aborted.
    let (dropped_id, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let mut ws = open(token).await;
    ws.send(Message::text(json!({"type": "mock.die"}).to_string()))
        .await
        .unwrap();
    assert_eq!(
        close_of(&mut ws).await,
        (1011, "the provider's connection was lost".to_string())
    );

    // A provider's own close code and reason reach the client.
    let (_, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let mut ws = open(token).await;
    let close = json!({"type": "mock.close", "code": 4002, "reason": "provider says bye"});
    ws.send(Message::text(close.to_string())).await.unwrap();
    assert_eq!(
        close_of(&mut ws).await,
        (4002, "provider says bye".to_string())
    );

    // A 20 MiB message is over the 16 MiB cap: 1009, never relayed.
    let (_, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let mut ws = open(token).await;
    let (mut sink, mut stream) = futures_util::StreamExt::split(ws);
    let big = tokio::spawn(async move {
        let _ = sink
            .send(Message::binary(vec![7u8; 20 * 1024 * 1024]))
            .await;
        sink
    });
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(closed, 1009);
    big.abort();
    ws = open(relay.issue(&["--upstream", &upstream.url]).await.1).await;
    ws.close(None).await.unwrap();

    let dropped = common::usage_of(&env, &dropped_id, 1).await;
    assert_eq!(dropped.aborted, 1, "a session the provider cut is aborted");
    let spent = common::usage_of(&env, &budget_id, 1).await;
    assert_eq!(spent.total_tokens, 2 * RESPONSE_TOKENS);
    relay.stop().await;
    store.close().await;
    assert_eq!(used_calls(&env, &revoked_id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_the_length_limit_and_when_the_relay_stops() {
    let (env, upstream, mut relay) = realtime_relay(ServeConfig {
        max_session: Duration::from_secs(3),
        ..ServeConfig::default()
    })
    .await;
    // The token's own limit, then the relay's, whichever is shorter.
    let (short_id, short) = relay
        .issue(&["--upstream", &upstream.url, "--max-session", "1s"])
        .await;
    let (_, token) = relay.issue(&["--upstream", &upstream.url]).await;
    for (token, at_least, under) in [(&short, 900, 2500), (&token, 2900, 6000)] {
        let bearer = format!("Bearer {token}");
        let (mut ws, _) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(
            (code, reason.as_str()),
            (1008, "the session reached its length limit")
        );
        let took = started.elapsed().as_millis();
        assert!((at_least..under).contains(&took), "closed after {took} ms");
    }
    // Raised past the relay's limit, the relay's still holds; cleared, likewise.
    let update = |args: &'static [&'static str]| {
        let env = &env;
        let id = short_id.clone();
        async move {
            let mut all = vec!["token", "update", id.as_str()];
            all.extend_from_slice(args);
            let out = common::cli_async(env, &all).await;
            assert!(out.status.success(), "{}", common::stderr(&out));
        }
    };
    update(&["--max-session", "2h"]).await;
    let shown = common::cli_async(&env, &["token", "show", &short_id, "--json"]).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["policy"]["max_session_secs"], 7200, "{shown}");
    update(&["--clear-max-session"]).await;
    let shown = common::cli_async(&env, &["token", "show", &short_id, "--json"]).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(shown["policy"]["max_session_secs"].is_null(), "{shown}");
    let refused =
        common::cli_async(&env, &["token", "update", &short_id, "--max-session", "0s"]).await;
    assert!(
        common::stderr(&refused).contains("max_session"),
        "{}",
        common::stderr(&refused)
    );
    let bearer = format!("Bearer {token}");

    let (mut ws, _) = ws_connect(&relay.url, REALTIME, &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    let stopping = relay.begin_stop();
    assert_eq!(
        close_of(&mut ws).await,
        (1001, "the relay is shutting down".to_string())
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the relay stops once its sessions have closed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_sessions_take_the_token_in_api_key_and_check_the_deployment() {
    let (env, upstream, relay) = realtime_relay(ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&[
            "--provider",
            "azure",
            "--upstream",
            &upstream.url,
            "--model",
            "rt-prod",
        ])
        .await;
    let header = [("api-key", token.as_str())];
    let path = "/openai/realtime?api-version=2025-04-01-preview&deployment=rt-prod";
    let (mut ws, _) = ws_connect(&relay.url, path, &header).await.expect("opens");
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    ws.close(None).await.unwrap();
    let seen = &upstream.handshakes()[0];
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert!(seen.uri.ends_with(path), "{}", seen.uri);
    assert!(!seen.everything().contains(&token));
    let other = "/openai/v1/realtime?model=rt-staging";
    let (status, body) = refusal_of(ws_connect(&relay.url, other, &header).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_live_checks_the_model_in_its_setup_message() {
    let (env, upstream, relay) = realtime_relay(ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&[
            "--provider",
            "gemini",
            "--upstream",
            &upstream.url,
            "--model",
            "gemini-live-*",
        ])
        .await;
    let live = format!(
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent?key={token}"
    );
    let (mut ws, _) = ws_connect(&relay.url, &live, &[]).await.expect("opens");
    let setup = json!({"setup": {"model": "models/gemini-live-2.5-flash"}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    assert!(next_event(&mut ws).await.get("setupComplete").is_some());
    let turn = json!({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}], "turnComplete": true}});
    ws.send(Message::text(turn.to_string())).await.unwrap();
    assert_eq!(
        next_event(&mut ws).await["usageMetadata"]["totalTokenCount"],
        TURN_TOKENS
    );
    ws.close(None).await.unwrap();
    let seen = &upstream.handshakes()[0];
    assert_eq!(seen.header("x-goog-api-key"), Some(KEY));
    assert!(!seen.everything().contains(&token) && !seen.uri.contains("key="));

    // The header form, on the v1alpha path.
    let alpha = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent";
    let (mut ws, _) = ws_connect(&relay.url, alpha, &[("x-goog-api-key", &token)])
        .await
        .expect("opens");
    let setup = json!({"setup": {"model": "models/gemini-2.5-pro"}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    assert_eq!(
        close_of(&mut ws).await,
        (1008, "this token may not use that model".to_string())
    );
    let seen = &upstream.handshakes()[1];
    assert!(seen.uri.ends_with(alpha), "{}", seen.uri);
    assert_eq!(seen.header("x-goog-api-key"), Some(KEY));

    let usage = common::usage_of(&env, &id, 2).await;
    assert_eq!(usage.total_tokens, TURN_TOKENS);
    relay.stop().await;
}

const SDK_SESSIONS: &str = r#"
import asyncio, json, os, openai, websockets
from google import genai

async def main():
    relay, token = os.environ["RELAY"], os.environ["TOKEN"]
    client = openai.AsyncOpenAI(api_key=token, base_url=relay + "/v1", max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.send({"type": "response.create"})
        async for event in conn:
            if event.type == "response.done":
                print("sdk", event.response.usage.total_tokens)
                break
    # A page's WebSocket, as the browser opens it: the token in a subprotocol.
    protocols = ["realtime", "openai-insecure-api-key." + os.environ["BROWSER_TOKEN"]]
    url = relay.replace("https", "wss", 1) + "/v1/realtime?model=gpt-realtime"
    async with websockets.connect(url, subprotocols=protocols, origin="https://app.example.com") as ws:
        print("protocol", ws.subprotocol)
        print("first", json.loads(await ws.recv())["type"])
    gemini = genai.Client(api_key=os.environ["GEMINI_TOKEN"], http_options={"base_url": relay})
    async with gemini.aio.live.connect(model="gemini-live-2.5-flash", config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]}, turn_complete=True)
        async for message in session.receive():
            if message.usage_metadata:
                print("gemini", message.usage_metadata.total_token_count)
                break

asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_open_sessions_through_the_relay() {
    // Over HTTPS, as the SDKs dial a real provider (google-genai always uses wss://), the
    // relay's certificate trusted through SSL_CERT_FILE.
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = common::certs::relay_tls(dir.path(), &common::certs::certs());
    let (env, upstream, relay) = realtime_relay(ServeConfig {
        tls: Some(tls),
        ..ServeConfig::default()
    })
    .await;
    assert!(relay.url.starts_with("https://"));
    let (id, token) = relay.issue(&["--upstream", &upstream.url]).await;
    let (browser_id, browser_token) = relay
        .issue(&[
            "--upstream",
            &upstream.url,
            "--origin",
            "https://app.example.com",
        ])
        .await;
    let (_, gemini_token) = relay
        .issue(&["--provider", "gemini", "--upstream", &upstream.url])
        .await;
    let vars = vec![
        ("RELAY", relay.url.clone()),
        ("TOKEN", token.clone()),
        ("BROWSER_TOKEN", browser_token.clone()),
        ("GEMINI_TOKEN", gemini_token),
        ("SSL_CERT_FILE", ca.to_str().unwrap().to_string()),
    ];
    let Some(out) = python(SDK_SESSIONS, vars).await else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("sdk {RESPONSE_TOKENS}").as_str(),
            "protocol realtime",
            "first session.created",
            format!("gemini {TURN_TOKENS}").as_str(),
        ]
    );
    let seen = upstream.handshakes();
    assert_eq!(seen.len(), 3);
    for secret in [&token, &browser_token] {
        assert!(
            seen.iter()
                .all(|h| !h.everything().contains(secret.as_str()))
        );
    }
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 1);
    assert_eq!(used_calls(&env, &browser_id).await, 1);
}

/// On PostgreSQL a revocation is pushed: a live session on another relay closes at once,
/// not at its next look (every 500 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_revocation_closes_a_session_on_another_relay_at_once() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let upstream = RealtimeMock::start().await;
    let (here, there) = (
        TestRelay::start(&env, ServeConfig::default()).await,
        TestRelay::start(&env, ServeConfig::default()).await,
    );
    // The listener is up once a change reaches the relay: wait for the push to be live.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !there
        .state
        .fleet
        .as_ref()
        .expect("a fleet on PostgreSQL")
        .pushed()
    {
        assert!(std::time::Instant::now() < deadline, "no LISTEN connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (id, token) = here.issue(&["--upstream", &upstream.url]).await;
    let bearer = format!("Bearer {token}");
    let (mut ws, _) = ws_connect(&there.url, REALTIME, &[("authorization", &bearer)])
        .await
        .expect("opens");
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    // Just after a look at the token: the next is ~500 ms away.
    tokio::time::sleep(Duration::from_millis(520)).await;
    let store = env.store().await;
    store.revoke(&id).await.unwrap();
    let revoked = std::time::Instant::now();
    assert_eq!(
        close_of(&mut ws).await,
        (1008, "the token has been revoked".to_string())
    );
    let took = revoked.elapsed();
    assert!(
        took < Duration::from_millis(250),
        "closed {took:?} after the revocation"
    );
    here.stop().await;
    there.stop().await;
}
