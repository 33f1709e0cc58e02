//! Realtime through the relay: WebRTC call setup (`/v1/realtime/calls`) and ephemeral
//! client secrets, with the real key only upstream.

use crate::common;
use common::TEST_KEY as KEY;

use common::mock::{EPHEMERAL_KEY, MockUpstream, SDP_ANSWER};
use common::{TestEnv, TestRelay, assert_refusal, python, used_calls};
use relayapi::server::ServeConfig;
use serde_json::{Value, json};

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

/// Sends a WebSocket handshake on a raw socket; returns the status line and the JSON body.
async fn websocket_handshake(relay: &TestRelay, token: &str) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = relay.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {token}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         origin: https://app.example.com\r\n\r\n"
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
async fn a_websocket_handshake_is_refused_plainly_and_never_sent_on_as_a_get() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    // Even a token allowed to GET the realtime path: the provider must not see a GET.
    let (id, token) = relay
        .issue(&["--upstream", &mock.url, "--endpoint", "GET /v1/realtime"])
        .await;
    let (status, body) = websocket_handshake(&relay, &token).await;
    assert!(status.starts_with("HTTP/1.1 501"), "{status}");
    assert_eq!(body["error"]["code"], "websocket_not_supported", "{body}");
    assert!(!body.to_string().contains(KEY) && !body.to_string().contains(&token));
    assert_eq!(mock.count(), 0, "nothing reached the provider");
    relay.stop().await;
    assert_eq!(
        used_calls(&env, &id).await,
        0,
        "a refused handshake is not a call"
    );
}
