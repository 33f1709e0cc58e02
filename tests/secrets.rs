//! Nothing the system writes holds a secret: the CLI's outputs, the relay's log at the most
//! verbose level, every response body (refusals included), metrics, and the database dump
//! are searched for every API key, every token and the admin secret used.
//!
//! Tokens are expected in exactly two places: the output of the command or admin call
//! that issued them (that is how they are handed over). Nothing else may hold one.

use crate::common;

use std::time::Duration;

use common::mock::MockUpstream;
use common::realtime_mock::{RealtimeMock, close_of, next_event, refusal_of, ws_connect};
use common::{ServeProcess, TestEnv, http};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const OPENAI_KEY: &str = "sk-proj-SECRET-openai-0123456789abcdefXYZ";
const ANTHROPIC_KEY: &str = "sk-ant-SECRET-anthropic-0123456789abcdef";
const GEMINI_KEY: &str = "AIzaSECRET-gemini-0123456789abcdefghij";
const SIGNED_KEY: &str = "sk-proj-SECRET-signed-0123456789abcdef";
const ADMIN_ISSUED_KEY: &str = "sk-proj-SECRET-admin-issued-0123456789";
const ADMIN_SECRET: &str = "admin-SECRET-0123456789abcdef-0123456789";

/// What the system wrote, labelled, and which tokens a piece may legitimately hold.
#[derive(Default)]
struct Written {
    pieces: Vec<(String, Vec<u8>, Vec<String>)>,
}

impl Written {
    fn add(&mut self, label: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.pieces.push((label.into(), bytes.into(), Vec::new()));
    }

    fn add_issuing(&mut self, label: impl Into<String>, bytes: impl Into<Vec<u8>>, token: &str) {
        self.pieces
            .push((label.into(), bytes.into(), vec![token.to_string()]));
    }

    fn cli(&mut self, label: &str, out: std::process::Output) {
        assert!(out.status.success(), "{label}: {}", common::stderr(&out));
        self.add(format!("{label} (stdout)"), out.stdout);
        self.add(format!("{label} (stderr)"), out.stderr);
    }

    /// Every key and the admin secret nowhere; every token only where it was issued. Middle
    /// parts are searched too, so that a truncated or re-wrapped secret is found as well.
    fn assert_clean(&self, keys: &[&str], tokens: &[String]) {
        let fragments = |s: &str| vec![s.to_string(), s[4..s.len() - 4].to_string()];
        let total: usize = self.pieces.iter().map(|(_, b, _)| b.len()).sum();
        assert!(
            total > 10_000,
            "too little was written to make the search meaningful: {total}"
        );
        for (label, bytes, allowed) in &self.pieces {
            for key in keys {
                for f in fragments(key) {
                    assert!(
                        !common::contains(bytes, &f),
                        "{label} holds the secret {key}"
                    );
                }
            }
            for token in tokens.iter().filter(|t| !allowed.contains(t)) {
                for f in fragments(token) {
                    assert!(!common::contains(bytes, &f), "{label} holds a token");
                }
            }
        }
    }
}

async fn cli(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = env.cmd();
    cmd.args(args).env("RELAYAPI_LOG", "trace");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run CLI"))
        .await
        .unwrap()
}

fn token_of(out: &std::process::Output) -> (String, String) {
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    (
        v["id"].as_str().unwrap().into(),
        v["token"].as_str().unwrap().into(),
    )
}

async fn case(env: TestEnv) {
    let mock = MockUpstream::start().await;
    let mut written = Written::default();
    let mut tokens: Vec<String> = Vec::new();

    written.cli("keygen", cli(&env, &["keygen"], &[]).await);
    let mut issue = async |label: &str, key: &str, args: &[&str]| {
        let mut all = vec![
            "token",
            "issue",
            "--api-key-env",
            "K",
            "--json",
            "--upstream",
            &mock.url,
        ];
        all.extend_from_slice(args);
        let out = cli(&env, &all, &[("K", key)]).await;
        assert!(out.status.success(), "{label}: {}", common::stderr(&out));
        let (id, token) = token_of(&out);
        written.add_issuing(format!("{label} (stdout)"), out.stdout, &token);
        written.add(format!("{label} (stderr)"), out.stderr);
        tokens.push(token.clone());
        (id, token)
    };
    let (openai_id, openai) = issue("issue openai", OPENAI_KEY, &["--model", "gpt-4o*"]).await;
    let (_, anthropic) = issue(
        "issue anthropic",
        ANTHROPIC_KEY,
        &["--provider", "anthropic"],
    )
    .await;
    let (_, gemini) = issue("issue gemini", GEMINI_KEY, &["--provider", "gemini"]).await;
    // Also the table form, whose token line must be the only place the token shows.
    let table = cli(
        &env,
        &[
            "token",
            "issue",
            "--api-key-env",
            "K",
            "--upstream",
            &mock.url,
        ],
        &[("K", OPENAI_KEY)],
    )
    .await;
    let table_token = common::stdout(&table)
        .split_whitespace()
        .find(|w| w.starts_with("rly_"))
        .expect("the table shows the token")
        .to_string();
    written.add_issuing("issue table (stdout)", table.stdout, &table_token);
    written.add("issue table (stderr)", table.stderr);
    tokens.push(table_token);

    // Realtime sessions, against a WebSocket provider of their own.
    let realtime = RealtimeMock::start().await;
    let mut realtime_tokens = Vec::new();
    for (key, provider) in [(OPENAI_KEY, "openai"), (GEMINI_KEY, "gemini")] {
        let args = [
            "token",
            "issue",
            "--api-key-env",
            "K",
            "--json",
            "--upstream",
            &realtime.url,
            "--provider",
            provider,
            "--model",
            "gpt-realtime",
            "--model",
            "gemini-live*",
        ];
        let out = cli(&env, &args, &[("K", key)]).await;
        assert!(out.status.success(), "{}", common::stderr(&out));
        let (_, token) = token_of(&out);
        written.add_issuing(format!("issue realtime {provider}"), out.stdout, &token);
        written.add(format!("issue realtime {provider} (stderr)"), out.stderr);
        tokens.push(token.clone());
        realtime_tokens.push(token);
    }

    // An issuer, and a token it signs.
    let pem_path = env.dir.path().join("issuer.pem");
    let pem = pem_path.to_str().unwrap();
    written.cli(
        "issuer add",
        cli(
            &env,
            &[
                "issuer",
                "add",
                "web",
                "--provider",
                "openai",
                "--upstream",
                &mock.url,
                "--max-lifetime",
                "1h",
                "--private-key-out",
                pem,
            ],
            &[],
        )
        .await,
    );
    let issuer_pem = std::fs::read_to_string(&pem_path).unwrap();
    let issuer = relayapi::sdk::Issuer::new(
        "web",
        &issuer_pem,
        &hex::encode(relayapi::crypto::ecies::compressed(
            &relayapi::crypto::KeyRing::load(&env.keys_dir())
                .unwrap()
                .active_public(),
        )),
    )
    .expect("issuer");
    let signed = issuer
        .mint(
            SIGNED_KEY,
            &relayapi::sdk::MintOptions {
                upstream: Some(mock.url.clone()),
                ttl: Duration::from_secs(600),
                ..Default::default()
            },
        )
        .expect("mint")
        .expose()
        .to_string();
    tokens.push(signed.clone());

    // The relay, at the most verbose log level, with the admin API.
    let serve = ServeProcess::spawn_with(
        &env,
        &["--admin-token-env", "ADMIN", "--metrics"],
        &[("RELAYAPI_LOG", "trace"), ("ADMIN", ADMIN_SECRET)],
    );
    let log = serve.log();
    let client = http();
    let base = serve.url.clone();
    let bodies: std::cell::RefCell<Vec<(String, String)>> = Default::default();
    // Sends a request, keeps its answer's body for the search, checks its status.
    let call = async |label: &str, request: reqwest::RequestBuilder, expected: u16| {
        let r = request.send().await.expect("relay answers");
        let status = r.status().as_u16();
        let text = String::from_utf8_lossy(&r.bytes().await.unwrap_or_default()).into_owned();
        assert_eq!(status, expected, "{label}: {text}");
        bodies
            .borrow_mut()
            .push((format!("{label} ({status})"), text.clone()));
        text
    };
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let url = |p: &str| format!("{base}{p}");
    let chat_with = |token: &str| {
        client
            .post(url("/v1/chat/completions"))
            .bearer_auth(token)
            .body(chat.to_string())
    };
    call("openai json", chat_with(&openai), 200).await;
    let stream = json!({"model": "gpt-4o-mini", "stream": true, "messages": []});
    let streamed = tokio::spawn(
        client
            .post(url("/v1/chat/completions"))
            .bearer_auth(&openai)
            .body(stream.to_string())
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    mock.release();
    let streamed = streamed.await.unwrap().unwrap();
    let streamed = streamed.text().await.unwrap();
    bodies.borrow_mut().push(("openai stream".into(), streamed));
    let anthropic_body = json!({"model": "claude-3-5-haiku", "max_tokens": 5, "messages": []});
    let anthropic_call = client
        .post(url("/v1/messages"))
        .header("x-api-key", &anthropic)
        .body(anthropic_body.to_string());
    call("anthropic", anthropic_call, 200).await;
    let gemini_path = format!("/v1beta/models/gemini-2.0-flash:generateContent?key={gemini}");
    let gemini_call = client
        .post(url(&gemini_path))
        .body(json!({"contents": []}).to_string());
    call("gemini", gemini_call, 200).await;
    call("signed", chat_with(&signed), 200).await;

    // Sessions: the browser's subprotocol form, Gemini's `?key=`, a refusal, a provider
    // that drops: every message, header and close reason the client gets is searched.
    let mut heard = Vec::new();
    let protocols = format!("realtime, openai-insecure-api-key.{}", realtime_tokens[0]);
    let browser = [("sec-websocket-protocol", protocols.as_str())];
    let (mut ws, answer) = ws_connect(&base, "/v1/realtime?model=gpt-realtime", &browser)
        .await
        .expect("the session opens");
    heard.push(format!("{:?}", answer.headers()));
    heard.push(next_event(&mut ws).await.to_string());
    ws.send(Message::text(
        json!({"type": "response.create"}).to_string(),
    ))
    .await
    .unwrap();
    heard.push(next_event(&mut ws).await.to_string());
    heard.push(next_event(&mut ws).await.to_string());
    ws.send(Message::text(json!({"type": "mock.die"}).to_string()))
        .await
        .unwrap();
    heard.push(format!("{:?}", close_of(&mut ws).await));
    let refused = ws_connect(&base, "/v1/realtime?model=o1", &browser).await;
    heard.push(refusal_of(refused).1.to_string());
    let live = format!(
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent?key={}",
        realtime_tokens[1]
    );
    let (mut ws, _) = ws_connect(&base, &live, &[])
        .await
        .expect("the session opens");
    let setup = json!({"setup": {"model": "models/gemini-2.5-pro"}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    heard.push(format!("{:?}", close_of(&mut ws).await));
    written.add(
        "realtime sessions (what the clients heard)",
        heard.join("\n"),
    );

    // Refusals that know the token: wrong model, a mutated token, a revoked one.
    let wrong_model = client
        .post(url("/v1/chat/completions"))
        .bearer_auth(&openai)
        .body(json!({"model": "o1"}).to_string());
    call("wrong model", wrong_model, 403).await;
    let mut mutated = openai.clone().into_bytes();
    let last = mutated.len() - 10;
    mutated[last] = if mutated[last] == b'A' { b'B' } else { b'A' };
    let mutated = String::from_utf8(mutated).unwrap();
    tokens.push(mutated.clone());
    call("mutated token", chat_with(&mutated), 401).await;
    call("key as token", chat_with(OPENAI_KEY), 401).await;
    let files = client
        .post(url("/v1/files"))
        .bearer_auth(&openai)
        .body(chat.to_string());
    call("endpoint not allowed", files, 403).await;

    // The admin API: a wrong secret, then issue, read, report, revoke.
    let admin = |method: reqwest::Method, path: &str| {
        client.request(method, url(path)).bearer_auth(ADMIN_SECRET)
    };
    let wrong = &ADMIN_SECRET[..ADMIN_SECRET.len() - 1];
    let wrong_secret = client.get(url("/admin/v1/tokens")).bearer_auth(wrong);
    call("admin wrong secret", wrong_secret, 401).await;
    let fields =
        json!({"api_key": ADMIN_ISSUED_KEY, "upstream": mock.url, "name": "from a backend"});
    let issue_call = admin(reqwest::Method::POST, "/admin/v1/tokens").body(fields.to_string());
    let created: Value = serde_json::from_str(&call("admin issue", issue_call, 201).await).unwrap();
    let admin_token = created["token"].as_str().unwrap().to_string();
    let admin_id = created["id"].as_str().unwrap().to_string();
    // That body is where this token is handed over; record it as such.
    let (label, text) = bodies.borrow_mut().pop().unwrap();
    written.add_issuing(label, text, &admin_token);
    tokens.push(admin_token.clone());
    call("admin-issued use", chat_with(&admin_token), 200).await;
    for (label, path) in [
        ("admin list", "/admin/v1/tokens?all=true".to_string()),
        ("admin show", format!("/admin/v1/tokens/{admin_id}")),
        ("admin usage", "/admin/v1/usage?by=model".to_string()),
    ] {
        call(label, admin(reqwest::Method::GET, &path), 200).await;
    }
    let revoke_path = format!("/admin/v1/tokens/{admin_id}");
    call(
        "admin revoke",
        admin(reqwest::Method::DELETE, &revoke_path),
        200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    call("revoked use", chat_with(&admin_token), 401).await;
    call("metrics", client.get(url("/metrics")), 200).await;
    assert!(serve.stop().success());
    written.add("serve log (trace)", log.lock().unwrap().join("\n"));
    for (label, text) in bodies.into_inner() {
        written.add(format!("response: {label}"), text);
    }

    // Every other command, in every output format, at the most verbose log level.
    for args in [
        vec!["token", "list", "--all"],
        vec!["token", "list", "--all", "--json"],
        vec!["token", "show", &openai_id],
        vec!["token", "show", &openai_id, "--json"],
        vec!["token", "update", &openai_id, "--rpm", "600"],
        vec!["usage"],
        vec!["usage", "--json"],
        vec!["usage", "--csv", "--by", "model"],
        vec!["issuer", "list", "--json"],
        vec!["migrate"],
        vec!["providers"],
        vec!["token", "revoke", &openai_id, "--yes"],
    ] {
        written.cli(&args.join(" "), cli(&env, &args, &[]).await);
    }
    written.add("database dump", env.dump_database());
    // The search can find what it looks for: the keys did reach the provider.
    let upstream_saw: String = mock
        .requests()
        .iter()
        .map(|r| r.everything())
        .chain(realtime.handshakes().iter().map(|h| h.everything()))
        .collect();
    for key in [
        OPENAI_KEY,
        ANTHROPIC_KEY,
        GEMINI_KEY,
        SIGNED_KEY,
        ADMIN_ISSUED_KEY,
    ] {
        assert!(
            common::contains(upstream_saw.as_bytes(), key),
            "{key} never reached the provider"
        );
    }
    // The log was written at trace level and holds the relay's line for each call.
    let log = &written
        .pieces
        .iter()
        .find(|p| p.0.starts_with("serve log"))
        .unwrap()
        .1;
    assert!(
        common::contains(log, "TRACE"),
        "the log is not at trace level"
    );
    let call_lines = String::from_utf8_lossy(log)
        .lines()
        .filter(|l| l.contains("token_id="))
        .count();
    assert!(call_lines >= 8, "only {call_lines} call lines in the log");
    written.assert_clean(
        &[
            OPENAI_KEY,
            ANTHROPIC_KEY,
            GEMINI_KEY,
            SIGNED_KEY,
            ADMIN_ISSUED_KEY,
            ADMIN_SECRET,
        ],
        &tokens,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_written_anywhere_holds_a_secret() {
    for env in TestEnv::all() {
        case(env).await;
    }
}
