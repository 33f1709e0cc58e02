//! Traffic that real clients send and attackers try: compressed responses, dropped streams,
//! duplicate keys, nulls, odd paths and methods, huge bodies. Each test reproduces a way a
//! limit once slipped (docs/security.md, "Findings") and checks it now holds.

use crate::common;
use common::TEST_KEY as KEY;

use std::io::Read;
use std::time::Duration;

use common::mock::{BIG_TOTAL_TOKENS, CHAT_JSON, MockUpstream};
use common::*;
use relayapi::server::ServeConfig;
use serde_json::{Value, json};

struct Setup {
    env: TestEnv,
    mock: MockUpstream,
    relay: TestRelay,
}

async fn setup(config: ServeConfig) -> Setup {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, config).await;
    Setup { env, mock, relay }
}

impl Setup {
    async fn issue(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["--upstream", self.mock.url.as_str()];
        all.extend_from_slice(args);
        issue_async(&self.env, KEY, &all).await
    }

    fn post(&self, token: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        http()
            .post(format!("{}{path}", self.relay.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    async fn used_tokens(&self, id: &str) -> i64 {
        let store = self.env.store().await;
        let used = store.get_token(id).await.expect("token").used_tokens;
        store.close().await;
        used
    }

    /// The last body the upstream received, as JSON.
    fn last_body(&self) -> Value {
        let requests = self.mock.requests();
        serde_json::from_slice(&requests.last().expect("a request").body).expect("JSON")
    }
}

async fn code_of(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("x-should-retry")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON refusal");
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        retry,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_responses_are_counted_and_reach_the_client_intact() {
    let s = setup(ServeConfig::default()).await;
    // 6 tokens a call: the budget of 15 admits three calls (the third starts at 12).
    let (id, token) = s.issue(&["--max-total-tokens", "15"]).await;
    let mut statuses = Vec::new();
    for accept in ["gzip, deflate, br, zstd", "gzip", "br", "gzip, br"] {
        let r = s
            .post(&token, "/v1/chat/completions", json!({"model":"m"}))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 200 {
            let encoding = r.headers()["content-encoding"]
                .to_str()
                .unwrap()
                .to_string();
            let bytes = r.bytes().await.unwrap();
            let mut plain = String::new();
            match encoding.as_str() {
                "gzip" => flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut plain)
                    .unwrap(),
                "br" => brotli::Decompressor::new(&bytes[..], 4096)
                    .read_to_string(&mut plain)
                    .unwrap(),
                other => panic!("unexpected coding {other}"),
            };
            assert_eq!(plain, CHAT_JSON, "the client gets the upstream's bytes");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    usage_of(&s.env, &id, 3).await;
    assert_eq!(s.used_tokens(&id).await, 18);
    // The upstream is asked only for codings the relay reads, never for what it cannot.
    let asked: Vec<String> = s
        .mock
        .requests()
        .iter()
        .map(|r| r.headers["accept-encoding"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(asked[0], "gzip, deflate, br, zstd");
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_calls_are_recorded_complete() {
    let s = setup(ServeConfig::default()).await;
    let (id, token) = s.issue(&[]).await;
    for _ in 0..3 {
        let r = s.post(&token, "/v1/chat/completions", json!({"model":"m"}));
        assert_eq!(r.send().await.unwrap().text().await.unwrap(), CHAT_JSON);
    }
    let row = usage_of(&s.env, &id, 3).await;
    assert_eq!((row.aborted, row.estimated, row.total_tokens), (0, 0, 18));
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_that_succeeds_goes_uncharged() {
    let s = setup(ServeConfig::default()).await;
    let (id, token) = s
        .issue(&[
            "--max-total-tokens",
            "100000000",
            "--max-output-tokens",
            "50",
        ])
        .await;

    // A 5 MiB answer with its usage at the end is read to the end.
    let r = s.post(&token, "/v1/chat/completions", json!({"model":"big"}));
    assert_eq!(
        r.send().await.unwrap().bytes().await.unwrap().len(),
        common::mock::big_json().len()
    );
    usage_of(&s.env, &id, 1).await;
    assert_eq!(s.used_tokens(&id).await, BIG_TOTAL_TOKENS);

    // An answer without usage is charged its reservation: the prompt's estimate and the cap.
    let body = json!({"model":"no-usage"});
    let r = s.post(&token, "/v1/chat/completions", body.clone());
    assert_eq!(r.send().await.unwrap().status(), 200);
    let row = usage_of(&s.env, &id, 2).await;
    assert_eq!(row.estimated, 1);
    let sent = body.to_string().len() as i64;
    let charged = s.used_tokens(&id).await - BIG_TOTAL_TOKENS;
    assert_eq!(charged, (sent + 3) / 4 + 50);

    // A stream the client drops after its first event, before the usage report.
    let before = s.used_tokens(&id).await;
    let mut r = s
        .post(
            &token,
            "/v1/chat/completions",
            json!({"model":"m","stream":true}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    let row = usage_of(&s.env, &id, 3).await;
    assert_eq!((row.aborted, row.estimated), (1, 2));
    assert!(
        s.used_tokens(&id).await - before >= 50,
        "charged at least the cap"
    );

    // Legacy completions streams ask for usage too, and it is counted.
    let before = s.used_tokens(&id).await;
    let r = s.post(
        &token,
        "/v1/completions",
        json!({"model":"m","prompt":"x","stream":true}),
    );
    let r = r.send().await.unwrap();
    s.mock.release();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("\"usage\""),
        "the report the relay asked for is hidden"
    );
    assert_eq!(
        s.last_body()["stream_options"],
        json!({"include_usage":true})
    );
    usage_of(&s.env, &id, 4).await;
    assert_eq!(s.used_tokens(&id).await - before, 6);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_relay_reads_cannot_be_doubled_nulled_or_multiplied() {
    let s = setup(ServeConfig::default()).await;
    let (_, token) = s.issue(&["--max-output-tokens", "100"]).await;
    let raw = |body: &'static str| {
        http()
            .post(format!("{}/v1/chat/completions", s.relay.url))
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    let r = raw(r#"{"model":"m","stream":false,"stream":true}"#)
        .await
        .unwrap();
    assert_eq!(
        code_of(r).await,
        (400, "invalid_request".into(), Some("false".into()))
    );
    let r = raw(r#"{"model":"m","max_tokens":5,"max_tokens":null}"#)
        .await
        .unwrap();
    assert_eq!(code_of(r).await.0, 400);

    let r = s.post(
        &token,
        "/v1/chat/completions",
        json!({"model":"m","max_completion_tokens":null,"max_tokens":null}),
    );
    assert_eq!(r.send().await.unwrap().status(), 200);
    let sent = s.last_body();
    assert_eq!(sent["max_completion_tokens"], 100);
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    let r = s.post(
        &token,
        "/v1/responses",
        json!({"model":"m","max_output_tokens":null}),
    );
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(s.last_body()["max_output_tokens"], 100);
    let r = s.post(&token, "/v1/chat/completions", json!({"model":"m","n":4}));
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(s.last_body()["max_completion_tokens"], 25);
    let r = s.post(
        &token,
        "/v1/chat/completions",
        json!({"model":"m","n":1000}),
    );
    assert_eq!(code_of(r.send().await.unwrap()).await.0, 400);
    assert_eq!(s.mock.count(), 3);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_matched_as_they_are_forwarded() {
    let s = setup(ServeConfig::default()).await;
    let (_, token) = s
        .issue(&["--endpoint", "/v1/*", "--max-output-tokens", "10"])
        .await;
    for path in [
        "/v1/chat/completion%73",
        "/v1/chat/completions/",
        "//v1/chat//completions",
    ] {
        let r = s.post(&token, path, json!({"model":"m","max_tokens":5000}));
        assert_eq!(r.send().await.unwrap().status(), 200, "{path}");
        let seen = s.mock.requests().last().unwrap().clone();
        assert_eq!(seen.path, "/v1/chat/completions", "{path}");
        assert_eq!(s.last_body()["max_tokens"], 10, "{path}: capped");
    }
    for path in [
        "/v1/models/..;/files",
        "/v1/chat/completions%2f..",
        "/v1/a%00",
    ] {
        let r = s.post(&token, path, json!({}));
        assert_eq!(
            code_of(r.send().await.unwrap()).await.1,
            "invalid_path",
            "{path}"
        );
    }
    assert_eq!(s.mock.count(), 3);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_pays_and_which_model_runs_are_not_the_clients_choice() {
    let s = setup(ServeConfig::default()).await;
    let (_, token) = s.issue(&["--model", "gpt-4o*"]).await;
    let r = s
        .post(&token, "/v1/chat/completions", json!({"model":"gpt-4o"}))
        .header("openai-organization", "org-victim")
        .header("openai-project", "proj_victim");
    assert_eq!(r.send().await.unwrap().status(), 200);
    let seen = s.mock.requests().last().unwrap().clone();
    assert!(seen.headers.get("openai-organization").is_none());
    assert!(seen.headers.get("openai-project").is_none());
    // OpenRouter's fallback list names models too.
    let r = s.post(
        &token,
        "/v1/chat/completions",
        json!({"model":"gpt-4o","models":["gpt-4o-mini","openai/o1-pro"]}),
    );
    assert_eq!(
        code_of(r.send().await.unwrap()).await.1,
        "model_not_allowed"
    );

    // Azure runs the deployment the path names.
    let env = &s.env;
    let (_, azure) = issue_async(
        env,
        KEY,
        &[
            "--provider",
            "azure",
            "--upstream",
            &s.mock.url,
            "--model",
            "gpt-4o*",
        ],
    )
    .await;
    let deployment = |name: &str| {
        http()
            .post(format!(
                "{}/openai/deployments/{name}/chat/completions?api-version=2024-10-21",
                s.relay.url
            ))
            .header("api-key", &azure)
            .body(json!({"model":"gpt-4o","messages":[]}).to_string())
            .send()
    };
    assert_eq!(
        code_of(deployment("o1-pro").await.unwrap()).await.1,
        "model_not_allowed"
    );
    assert_eq!(deployment("gpt-4o-prod").await.unwrap().status(), 200);
    assert_eq!(s.mock.count(), 2);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_nothing_left_costs_no_body_and_bodies_share_a_memory_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup(ServeConfig {
        max_body: 1024 * 1024,
        max_body_memory: 1024 * 1024,
        ..ServeConfig::default()
    })
    .await;
    let (_, spent) = s.issue(&["--max-calls", "1"]).await;
    let (_, open) = s.issue(&[]).await;
    let r = s.post(&spent, "/v1/chat/completions", json!({"model":"m"}));
    assert_eq!(r.send().await.unwrap().status(), 200);
    let addr = s.relay.url.trim_start_matches("http://").to_string();
    let head = |token: &str, len: usize| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    let answer = |mut socket: tokio::net::TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("answered before the body was sent")
            .unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), socket)
    };

    // A spent token is refused on its headers: its (never sent) 1 MiB body is not awaited.
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(head(&spent, 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let (text, _) = answer(socket).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("calls_exhausted"), "{text}");

    // One body holds the whole budget while it arrives; another is refused, retryably.
    let mut first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    first
        .write_all(head(&open, 1024 * 1024).as_bytes())
        .await
        .unwrap();
    first.write_all(b"{\"model\":\"m\",\"x\":\"").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    second
        .write_all(head(&open, 600 * 1024).as_bytes())
        .await
        .unwrap();
    let (text, _) = answer(second).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("relay_busy") && text.contains("x-should-retry: true"),
        "{text}"
    );
    drop(first);
    // Once it is gone, its memory is free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = json!({"model":"m","x":"y".repeat(600 * 1024)});
    let r = s.post(&open, "/v1/chat/completions", body);
    assert_eq!(r.send().await.unwrap().status(), 200);
    s.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_are_counted_through_compression_and_do_not_retry_refusals() {
    let s = setup(ServeConfig::default()).await;
    let (id, budget) = s.issue(&["--max-total-tokens", "15"]).await;
    let (_, one_call) = s.issue(&["--max-calls", "1"]).await;
    let (_, claude) = issue_async(
        &s.env,
        KEY,
        &[
            "--provider",
            "anthropic",
            "--upstream",
            &s.mock.url,
            "--max-calls",
            "1",
        ],
    )
    .await;
    let script = r#"
import os, json, anthropic, openai
url = os.environ["RELAY"]
sent = []
hooks = {"request": [lambda request: sent.append(request.headers.get("accept-encoding"))]}
def gpt(token):
    return openai.OpenAI(api_key=token, base_url=url + "/v1", max_retries=2,
                         http_client=openai.DefaultHttpxClient(event_hooks=hooks))
def ask(client):
    try:
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        return r.choices[0].message.content
    except openai.APIStatusError as e:
        return "%d %s" % (e.status_code, e.code)
answers = [ask(gpt(os.environ["BUDGET"])) for _ in range(4)]
before = len(sent)
once = gpt(os.environ["ONE_CALL"])
answers += [ask(once), ask(once)]
tries = len(sent) - before
claude = anthropic.Anthropic(api_key=os.environ["CLAUDE"], base_url=url, max_retries=2,
                             http_client=anthropic.DefaultHttpxClient(event_hooks=hooks))
def ask_claude():
    try:
        r = claude.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        return r.content[0].text
    except anthropic.APIStatusError as e:
        return "%d" % e.status_code
before = len(sent)
answers += [ask_claude(), ask_claude()]
print(json.dumps({"answers": answers, "tries": tries, "claude_tries": len(sent) - before,
                  "encodings": sorted(set(sent))}))
"#;
    let vars = vec![
        ("RELAY", s.relay.url.clone()),
        ("BUDGET", budget),
        ("ONE_CALL", one_call),
        ("CLAUDE", claude),
    ];
    let Some(out) = python(script, vars).await else {
        return;
    };
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["answers"],
        json!([
            "hi",
            "hi",
            "hi",
            "429 token_budget_exhausted",
            "hi",
            "429 calls_exhausted",
            "hi",
            "429"
        ]),
        "{v}"
    );
    assert!(
        v["encodings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.as_str().unwrap().contains("gzip")),
        "the SDKs asked for compressed answers: {v}"
    );
    usage_of(&s.env, &id, 3).await;
    assert_eq!(s.used_tokens(&id).await, 18);
    // A refusal no retry can fix is sent once, not three times.
    assert_eq!(
        (v["tries"].as_i64(), v["claude_tries"].as_i64()),
        (Some(2), Some(2)),
        "{v}"
    );
    s.relay.stop().await;
}
