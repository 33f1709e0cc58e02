//! Per-token policies, enforced by the real relay against a recording mock upstream.

use crate::common;
use common::TEST_KEY as KEY;

use std::time::{Duration, Instant};

use common::mock::{MockUpstream, TRANSCRIPT};
use common::{TestEnv, TestRelay, cli_async, http, issue_async, python};
use relayapi::server::ServeConfig;
use serde_json::Value;

async fn refusal(r: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().await.unwrap();
    assert!(!body.contains(KEY), "a refusal leaked the key");
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, code, headers)
}

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[]}}"#)
}

async fn used_calls(env: &TestEnv, id: &str) -> i64 {
    let out = cli_async(env, &["token", "show", id, "--json"]).await;
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["used_calls"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_checked_in_the_body_and_in_gemini_paths() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(
        &env,
        KEY,
        &[
            "--upstream",
            &mock.url,
            "--model",
            "gpt-4o*",
            "--model",
            "o3",
        ],
    )
    .await;
    let (_, gemini) = issue_async(
        &env,
        KEY,
        &[
            "--provider",
            "gemini",
            "--upstream",
            &mock.url,
            "--model",
            "gemini-2.0*",
        ],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let post = |token: &str, path: &str, body: String| {
        c.post(format!("{}{path}", relay.url))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    let chat_path = "/v1/chat/completions";
    assert_eq!(
        post(&token, chat_path, chat("gpt-4o-mini"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(&token, chat_path, chat("o3")).await.unwrap().status(),
        200
    );
    let (s, code, _) = refusal(post(&token, chat_path, chat("o3-pro")).await.unwrap()).await;
    assert_eq!((s, code.as_str()), (403, "model_not_allowed"));
    let (s, code, _) = refusal(post(&token, chat_path, "not json".into()).await.unwrap()).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    let (s, code, _) = refusal(
        post(&token, chat_path, r#"{"messages":[]}"#.into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    // Listing models carries no body and no model: allowed.
    assert_eq!(
        c.get(format!("{}/v1/models", relay.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let ok = post(
        &gemini,
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "{}".into(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let (s, code, _) = refusal(
        post(
            &gemini,
            "/v1beta/models/gemini-1.5-pro:generateContent",
            "{}".into(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_str()), (403, "model_not_allowed"));

    assert_eq!(mock.count(), 4, "a refused request reached the upstream");
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 3, "refusals were counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_must_match_exactly_and_their_refusals_are_readable() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, token) = issue_async(
        &env,
        KEY,
        &[
            "--upstream",
            &mock.url,
            "--origin",
            "https://app.example.com",
        ],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let call = |origin: Option<&str>| {
        let mut r = c
            .post(format!("{}/v1/chat/completions", relay.url))
            .bearer_auth(&token)
            .body(chat("m"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let ok = call(Some("https://app.example.com")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    for origin in [
        Some("https://evil.example.com"),
        Some("https://app.example.com.evil.io"),
        None,
    ] {
        let (s, code, headers) = refusal(call(origin).await.unwrap()).await;
        assert_eq!(
            (s, code.as_str()),
            (403, "origin_not_allowed"),
            "{origin:?}"
        );
        // The page can read why it was refused (the body holds nothing secret).
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            origin,
            "{origin:?}"
        );
    }
    assert_eq!(mock.count(), 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_networks_and_trusted_proxies() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, local) =
        issue_async(&env, KEY, &["--upstream", &mock.url, "--ip", "127.0.0.0/8"]).await;
    let (_, remote) = issue_async(
        &env,
        KEY,
        &[
            "--upstream",
            &mock.url,
            "--ip",
            "203.0.113.0/24",
            "--ip",
            "2001:db8::/32",
        ],
    )
    .await;
    let call = |url: String, token: String, xff: Option<&'static str>| async move {
        let mut r = http()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(token)
            .body(chat("m"));
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send().await.unwrap()
    };

    // No trusted proxy: X-Forwarded-For is ignored, the peer (127.0.0.1) counts.
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    assert_eq!(
        call(relay.url.clone(), local.clone(), None).await.status(),
        200
    );
    let (s, code, _) =
        refusal(call(relay.url.clone(), remote.clone(), Some("203.0.113.7")).await).await;
    assert_eq!((s, code.as_str()), (403, "ip_not_allowed"));
    relay.stop().await;

    // Loopback is a trusted proxy: the forwarded address counts.
    let config = ServeConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..ServeConfig::default()
    };
    let relay = TestRelay::start(&env, config).await;
    assert_eq!(
        call(relay.url.clone(), remote.clone(), Some("203.0.113.7"))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(
            relay.url.clone(),
            remote.clone(),
            Some("2001:db8::7, 127.0.0.5")
        )
        .await
        .status(),
        200
    );
    let (s, code, _) =
        refusal(call(relay.url.clone(), remote.clone(), Some("198.51.100.1")).await).await;
    assert_eq!((s, code.as_str()), (403, "ip_not_allowed"));
    let (s, _, _) =
        refusal(call(relay.url.clone(), local.clone(), Some("198.51.100.1")).await).await;
    assert_eq!(
        s, 403,
        "behind a trusted proxy the proxy's own address is not the client's"
    );
    relay.stop().await;
    assert_eq!(mock.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_default_to_inference_and_can_be_listed() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, default) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let (_, files) = issue_async(
        &env,
        KEY,
        &["--upstream", &mock.url, "--endpoint", "GET /v1/files*"],
    )
    .await;
    let (_, wide) = issue_async(&env, KEY, &["--upstream", &mock.url, "--endpoint", "/v1/*"]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let get = |token: &str, path: &str| {
        c.get(format!("{}{path}", relay.url))
            .bearer_auth(token)
            .send()
    };
    for path in [
        "/v1/files",
        "/v1/fine_tuning/jobs",
        "/v1/batches",
        "/v1/assistants",
        "/v1/organization/users",
    ] {
        let (s, code, _) = refusal(get(&default, path).await.unwrap()).await;
        assert_eq!((s, code.as_str()), (403, "endpoint_not_allowed"), "{path}");
    }
    assert_eq!(get(&default, "/v1/models").await.unwrap().status(), 200);
    assert_eq!(get(&files, "/v1/files").await.unwrap().status(), 200);
    assert_eq!(
        get(&files, "/v1/files/file-1/content")
            .await
            .unwrap()
            .status(),
        200
    );
    let (s, code, _) = refusal(get(&files, "/v1/models").await.unwrap()).await;
    assert_eq!((s, code.as_str()), (403, "endpoint_not_allowed"));
    assert_eq!(mock.count(), 3);
    // Methods are part of the rule: deleting a fine-tuned model and listing stored
    // completions use inference paths with other methods, and are refused, also under a
    // path-only wildcard rule.
    for token in [&default, &wide] {
        let delete = c
            .delete(format!("{}/v1/models/ft:gpt-4o:acme:x1", relay.url))
            .bearer_auth(token)
            .send();
        let (s, code, _) = refusal(delete.await.unwrap()).await;
        assert_eq!((s, code.as_str()), (403, "endpoint_not_allowed"));
        let (s, code, _) =
            refusal(get(token, "/v1/chat/completions?limit=100").await.unwrap()).await;
        assert_eq!((s, code.as_str()), (403, "endpoint_not_allowed"));
        let post = c
            .post(format!("{}/v1/files", relay.url))
            .bearer_auth(&files)
            .body("{}")
            .send();
        let (s, code, _) = refusal(post.await.unwrap()).await;
        assert_eq!((s, code.as_str()), (403, "endpoint_not_allowed"));
    }
    assert_eq!(get(&wide, "/v1/models").await.unwrap().status(), 200);
    assert_eq!(mock.count(), 4);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_with_retry_after_and_what_is_left_in_headers() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let limited = ["--upstream", &mock.url, "--rpm", "3", "--max-calls", "5"];
    let (id, token) = issue_async(&env, KEY, &limited).await;
    let (_, unlimited) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    for n in 0..3u64 {
        let r = relay.post(&token, "/v1/chat/completions", &chat("m")).await;
        assert_eq!(r.status(), 200);
        // What a page reads of its limits (CORS exposes every header).
        assert_eq!(header(&r, "x-relay-ratelimit-limit"), Some(3));
        assert_eq!(header(&r, "x-relay-ratelimit-remaining"), Some(2 - n));
        let reset = header(&r, "x-relay-ratelimit-reset").unwrap();
        assert!(
            (20 * (n + 1) - 1..=20 * (n + 1)).contains(&reset),
            "reset {reset}"
        );
        assert_eq!(header(&r, "x-relay-calls-remaining"), Some(4 - n));
    }
    let r = relay
        .post(&unlimited, "/v1/chat/completions", &chat("m"))
        .await;
    assert_eq!(r.status(), 200);
    for name in ["x-relay-ratelimit-limit", "x-relay-calls-remaining"] {
        assert!(
            r.headers().get(name).is_none(),
            "{name} on an unlimited token"
        );
    }
    let r = relay.post(&token, "/v1/chat/completions", &chat("m")).await;
    let (s, code, headers) = refusal(r).await;
    assert_eq!((s, code.as_str()), (429, "rate_limited"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_counts_streams_until_they_end() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, token) = issue_async(&env, KEY, &["--upstream", &mock.url, "--concurrency", "1"]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let mut stream = relay
        .stream(
            &token,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true}"#,
        )
        .await;
    stream.next().await.expect("a first event");
    let second = relay.post(&token, "/v1/chat/completions", &chat("m")).await;
    let (s, code, _) = refusal(second).await;
    assert_eq!((s, code.as_str()), (429, "too_many_concurrent_requests"));
    mock.release();
    stream.rest().await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = relay.post(&token, "/v1/chat/completions", &chat("m")).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not freed when the stream ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_tokens_are_capped_in_each_provider_style() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let up = mock.url.as_str();
    let (_, openai) =
        issue_async(&env, KEY, &["--upstream", up, "--max-output-tokens", "100"]).await;
    let (_, compat) = issue_async(
        &env,
        KEY,
        &[
            "--provider",
            "deepseek",
            "--upstream",
            up,
            "--max-output-tokens",
            "100",
        ],
    )
    .await;
    let (_, anthropic) = issue_async(
        &env,
        KEY,
        &[
            "--provider",
            "anthropic",
            "--upstream",
            up,
            "--max-output-tokens",
            "100",
        ],
    )
    .await;
    let (_, gemini) = issue_async(
        &env,
        KEY,
        &[
            "--provider",
            "gemini",
            "--upstream",
            up,
            "--max-output-tokens",
            "100",
        ],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let post = |token: &str, path: &str, body: &str| {
        c.post(format!("{}{path}", relay.url))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
    };
    let cases = [
        (
            &openai,
            "/v1/chat/completions",
            r#"{"model":"m","max_completion_tokens":5000}"#,
        ),
        (&openai, "/v1/chat/completions", r#"{"model":"m"}"#),
        (
            &openai,
            "/v1/chat/completions",
            r#"{"model":"m","max_tokens":50}"#,
        ),
        (&openai, "/v1/responses", r#"{"model":"m","input":"hi"}"#),
        (&compat, "/chat/completions", r#"{"model":"m"}"#),
        (
            &anthropic,
            "/v1/messages",
            r#"{"model":"m","max_tokens":4096}"#,
        ),
        (
            &gemini,
            "/v1beta/models/g:generateContent",
            r#"{"generationConfig":{"maxOutputTokens":9000,"temperature":0.5}}"#,
        ),
    ];
    for (token, path, body) in cases {
        assert_eq!(
            post(token, path, body).await.unwrap().status(),
            200,
            "{path} {body}"
        );
    }
    let (s, code, _) = refusal(
        post(
            &openai,
            "/v1/chat/completions",
            r#"{"model":"m","max_tokens":"lots"}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));

    let sent: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent[0]["max_completion_tokens"], 100);
    assert_eq!(sent[1]["max_completion_tokens"], 100);
    assert_eq!(sent[2]["max_tokens"], 50, "a lower value is kept");
    assert!(sent[2].get("max_completion_tokens").is_none());
    assert_eq!(sent[3]["max_output_tokens"], 100);
    assert_eq!(sent[4]["max_tokens"], 100);
    assert_eq!(sent[5]["max_tokens"], 100);
    assert_eq!(sent[6]["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(sent[6]["generationConfig"]["temperature"], 0.5);
    assert_eq!(mock.count(), 7);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_update_takes_effect_while_serving() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url, "--model", "a"]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let status = |model: &'static str| {
        let (relay, token) = (&relay, &token);
        async move {
            let body = chat(model);
            relay
                .post(token, "/v1/chat/completions", &body)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("a").await, 200);
    assert_eq!(status("b").await, 403);
    let out = cli_async(
        &env,
        &[
            "token",
            "update",
            &id[..8],
            "--model",
            "b",
            "--max-calls",
            "100",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"]["models"], serde_json::json!(["b"]));
    assert_eq!(v["max_calls"], 100);
    let changed = Instant::now();
    while status("b").await != 200 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the update was not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status("a").await, 403);
    let out = cli_async(
        &env,
        &[
            "token",
            "update",
            &id,
            "--clear-models",
            "--clear-max-calls",
            "--json",
        ],
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"]["models"], serde_json::json!([]));
    assert!(v["max_calls"].is_null());
    let bad = cli_async(&env, &["token", "update", &id, "--ip", "nope"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid IP range"));
    relay.stop().await;
}

/// A `multipart/form-data` body: `(name, filename, bytes)` parts.
fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, value) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_held_to_the_model_list_and_not_to_the_output_cap() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let (id, token) = relay
        .issue(&[
            "--upstream",
            &mock.url,
            "--model",
            "whisper-1",
            "--max-output-tokens",
            "100",
        ])
        .await;
    // Several MiB of "audio", every byte value in it, before the model field.
    let audio: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let upload = |body: Vec<u8>, boundary: &str| {
        relay
            .request(reqwest::Method::POST, "/v1/audio/transcriptions", &token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    let allowed = form(
        "b0und4ry",
        &[
            ("file", Some("a.wav"), &audio),
            ("model", None, b"whisper-1"),
        ],
    );
    let r = upload(allowed.clone(), "b0und4ry").await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].body == allowed,
        "the form reached the provider as it was sent"
    );

    let mut refused = Vec::new();
    for (body, boundary) in [
        (
            form(
                "b",
                &[
                    ("file", Some("a.wav"), &audio),
                    ("model", None, b"gpt-4o-transcribe"),
                ],
            ),
            "b",
        ),
        (form("b", &[("file", Some("a.wav"), &audio)]), "b"),
        (
            form(
                "b",
                &[
                    ("model", None, b"whisper-1"),
                    ("model", None, b"gpt-4o-transcribe"),
                ],
            ),
            "b",
        ),
        (
            form("b", &[("model", None, b"whisper-1")]),
            "not-the-boundary",
        ),
    ] {
        let r = upload(body, boundary).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        refused.push((status, v["error"]["code"].as_str().unwrap().to_string()));
    }
    assert_eq!(
        refused,
        [
            (403, "model_not_allowed".to_string()),
            (400, "invalid_request".to_string()),
            (400, "invalid_request".to_string()),
            (400, "invalid_request".to_string()),
        ]
    );
    assert_eq!(mock.count(), 1, "no refused form was forwarded");

    // The official SDK's upload, as a page's backend or a script would send it.
    let script = r#"
import os, openai
client = openai.OpenAI(api_key=os.environ["TOKEN"], base_url=os.environ["RELAY"] + "/v1", max_retries=0)
audio = bytes(range(256)) * 8192
print(client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio)).text)
try:
    client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", audio))
except openai.PermissionDeniedError as e:
    print(e.code)
"#;
    let vars = vec![("RELAY", relay.url.clone()), ("TOKEN", token.clone())];
    if let Some(out) = python(script, vars).await {
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [TRANSCRIPT, "model_not_allowed"]
        );
        assert_eq!(mock.count(), 2);
    }
    relay.stop().await;
    assert_eq!(used_calls(&env, &id).await, mock.count() as i64);
}
