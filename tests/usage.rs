//! Usage accounting, the token budget, the usage report and the metrics endpoint.

use crate::common;
use common::TEST_KEY as KEY;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::mock::{ANTHROPIC_FIRST, FIRST_EVENT, MockUpstream, REST_EVENTS, USAGE_EVENT};
use common::{TestEnv, TestRelay, cell, cli_async, http, issue_async, parse_table, usage_of};
use relayapi::server::ServeConfig;
use relayapi::store::UsageRecord;
use serde_json::Value;

async fn read_all(mut r: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_responses_are_recorded_with_the_providers_token_counts() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let up = mock.url.as_str();
    let (openai, ot) = issue_async(&env, KEY, &["--upstream", up]).await;
    let (anthropic, at) =
        issue_async(&env, KEY, &["--provider", "anthropic", "--upstream", up]).await;
    let (gemini, gt) = issue_async(&env, KEY, &["--provider", "gemini", "--upstream", up]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let r = relay
        .post(&ot, "/v1/chat/completions", r#"{"model":"gpt-4o-mini"}"#)
        .await;
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/v1/messages", relay.url))
        .header("x-api-key", &at)
        .body(r#"{"model":"claude"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent",
            relay.url
        ))
        .header("x-goog-api-key", &gt)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let o = usage_of(&env, &openai, 1).await;
    assert_eq!(
        (o.prompt_tokens, o.completion_tokens, o.total_tokens),
        (5, 1, 6)
    );
    let a = usage_of(&env, &anthropic, 1).await;
    assert_eq!(
        (a.prompt_tokens, a.completion_tokens, a.total_tokens),
        (10, 20, 30)
    );
    let g = usage_of(&env, &gemini, 1).await;
    assert_eq!(
        (g.prompt_tokens, g.completion_tokens, g.total_tokens),
        (7, 8, 15)
    );
    relay.stop().await;

    // The models were recorded: the report by model names them.
    let out = cli_async(&env, &["usage", "--by", "model", "--json"]).await;
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let models: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    for m in ["gpt-4o-mini", "claude", "gemini-2.0-flash"] {
        assert!(models.contains(&m), "{m} missing from {models:?}");
    }
    // token show includes the tokens used.
    let out = cli_async(&env, &["token", "show", &anthropic, "--json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["used_tokens"], 30);
    assert!(v["last_used_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_only_event_is_hidden_unless_the_client_asked_for_it() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (hidden_id, hidden) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let (asked_id, asked) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;

    let r = relay
        .post(
            &hidden,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true}"#,
        )
        .await;
    mock.release();
    let body = read_all(r).await;
    assert_eq!(
        body,
        format!("{FIRST_EVENT}{REST_EVENTS}"),
        "the client sees the stream it asked for"
    );
    // The relay asked the provider for usage on the client's behalf.
    let sent: Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let u = usage_of(&env, &hidden_id, 1).await;
    assert_eq!(u.total_tokens, 6);

    let r = relay
        .post(
            &asked,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .await;
    mock.release();
    let body = read_all(r).await;
    assert!(
        body.contains(USAGE_EVENT),
        "a client that asked keeps the usage event: {body}"
    );
    assert_eq!(usage_of(&env, &asked_id, 1).await.total_tokens, 6);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_gemini_streams_are_counted_and_aborts_recorded() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (anthropic, at) = issue_async(
        &env,
        KEY,
        &["--provider", "anthropic", "--upstream", &mock.url],
    )
    .await;
    let (gemini, gt) = issue_async(
        &env,
        KEY,
        &["--provider", "gemini", "--upstream", &mock.url],
    )
    .await;
    let (aborted, abt) = issue_async(
        &env,
        KEY,
        &["--provider", "anthropic", "--upstream", &mock.url],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();

    let r = c
        .post(format!("{}/v1/messages", relay.url))
        .header("x-api-key", &at)
        .body(r#"{"model":"claude","stream":true}"#)
        .send()
        .await
        .unwrap();
    mock.release();
    read_all(r).await;
    let a = usage_of(&env, &anthropic, 1).await;
    assert_eq!(
        (
            a.prompt_tokens,
            a.completion_tokens,
            a.total_tokens,
            a.aborted
        ),
        (11, 9, 20, 0)
    );

    let r = c
        .post(format!(
            "{}/v1beta/models/g:streamGenerateContent?alt=sse",
            relay.url
        ))
        .header("x-goog-api-key", &gt)
        .body("{}")
        .send()
        .await
        .unwrap();
    mock.release();
    read_all(r).await;
    let g = usage_of(&env, &gemini, 1).await;
    assert_eq!(
        (g.prompt_tokens, g.completion_tokens, g.total_tokens),
        (3, 6, 9)
    );

    // The client leaves after the first event: recorded as aborted, with what was seen.
    let mut r = c
        .post(format!("{}/v1/messages", relay.url))
        .header("x-api-key", &abt)
        .body(r#"{"model":"claude","stream":true}"#)
        .send()
        .await
        .unwrap();
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(first, ANTHROPIC_FIRST.as_bytes());
    drop(r);
    let u = usage_of(&env, &aborted, 1).await;
    assert_eq!((u.aborted, u.prompt_tokens), (1, 11));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_over_a_graceful_restart() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    for round in 0..2 {
        let relay = TestRelay::start(&env, ServeConfig::default()).await;
        let c = http();
        let mut tasks = Vec::new();
        for _ in 0..25 {
            let (c, url, token) = (c.clone(), relay.url.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                c.post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(token)
                    .body("{\"model\":\"m\"}")
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        // Stop at once: the usage queue must be written by the stop itself.
        relay.stop().await;
        let store = env.store().await;
        let rows = store
            .usage_report(
                &relayapi::store::UsageFilter {
                    token_id: Some(id.clone()),
                    ..Default::default()
                },
                relayapi::store::UsageGroup::Token,
            )
            .await
            .unwrap();
        assert_eq!(rows[0].calls, 25 * (round + 1));
        assert_eq!(rows[0].total_tokens, 6 * 25 * (round + 1));
        let record = store.get_token(&id).await.unwrap();
        assert_eq!(record.used_calls, 25 * (round + 1));
        assert_eq!(record.used_tokens, 6 * 25 * (round + 1));
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_budget_refuses_once_reached() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    // Each call uses 6 tokens: the third call finds 12 ≥ 10 — without waiting for the usage
    // writer or a cache refresh, since this process recorded them itself.
    let (_, token) = issue_async(
        &env,
        KEY,
        &["--upstream", &mock.url, "--max-total-tokens", "10"],
    )
    .await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let c = http();
    let call = || {
        c.post(format!("{}/v1/chat/completions", relay.url))
            .bearer_auth(&token)
            .body(r#"{"model":"m"}"#)
            .send()
    };
    let mut statuses = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let r = call().await.unwrap();
        let status = r.status().as_u16();
        statuses.push(status);
        if status == 429 {
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(v["error"]["code"], "token_budget_exhausted");
            break;
        }
        r.text().await.unwrap();
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_in_table_json_and_csv() {
    let env = TestEnv::sqlite();
    let (a, _) = issue_async(
        &env,
        KEY,
        &["--name", "alpha", "--upstream", "http://127.0.0.1:9"],
    )
    .await;
    let (b, _) = issue_async(
        &env,
        KEY,
        &[
            "--name",
            "beta, with comma",
            "--upstream",
            "http://127.0.0.1:9",
        ],
    )
    .await;
    let day1 = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
    let day2 = Utc.with_ymd_and_hms(2026, 11, 2, 23, 59, 0).unwrap();
    let rec =
        |token: &str, at, model: &str, status: u16, p: i64, c: i64, aborted: bool| UsageRecord {
            token_id: token.to_string(),
            at,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some(model.into()),
            status,
            latency_ms: 10,
            ttfb_ms: 5,
            bytes_in: 100,
            bytes_out: 200,
            prompt_tokens: Some(p),
            completion_tokens: Some(c),
            total_tokens: Some(p + c),
            stream: false,
            // An aborted call is charged an estimate: the report must count it as one.
            estimated: aborted,
            aborted,
            charged: false,
        };
    let store = env.store().await;
    store
        .insert_usage(&[
            rec(&a, day1, "gpt-4o", 200, 10, 5, false),
            rec(&a, day2, "gpt-4o-mini", 200, 1, 2, false),
            rec(&b, day2, "gpt-4o", 500, 100, 0, false),
            rec(&b, day2, "gpt-4o", 200, 7, 3, true),
        ])
        .await
        .unwrap();
    store.close().await;

    async fn json(env: &TestEnv, args: &[&str]) -> Value {
        let mut all = vec!["usage", "--json"];
        all.extend_from_slice(args);
        let out = cli_async(env, &all).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    }
    let by_token = json(&env, &[]).await;
    let row = |v: &Value, key: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap()
    };
    let ra = row(&by_token, &a);
    assert_eq!(
        (
            ra["calls"].as_i64(),
            ra["total_tokens"].as_i64(),
            ra["name"].as_str()
        ),
        (Some(2), Some(18), Some("alpha"))
    );
    let rb = row(&by_token, &b);
    assert_eq!(
        (
            rb["calls"].as_i64(),
            rb["errors"].as_i64(),
            rb["aborted"].as_i64(),
            rb["prompt_tokens"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(107))
    );

    let by_model = json(&env, &["--by", "model"]).await;
    assert_eq!(row(&by_model, "gpt-4o")["calls"], 3);
    assert_eq!(row(&by_model, "gpt-4o-mini")["total_tokens"], 3);

    let by_day = json(&env, &["--by", "day"]).await;
    assert_eq!(row(&by_day, "2026-11-01")["calls"], 1);
    assert_eq!(row(&by_day, "2026-11-02")["calls"], 3);

    let only_a = json(&env, &["--token", &a[..10]]).await;
    assert_eq!(only_a.as_array().unwrap().len(), 1);
    let since = json(&env, &["--since", "2026-11-02T00:00:00Z"]).await;
    assert_eq!(row(&since, &a)["calls"], 1);
    let until = json(&env, &["--until", "2026-11-02T00:00:00Z"]).await;
    assert_eq!(until.as_array().unwrap().len(), 1);

    let csv = cli_async(&env, &["usage", "--csv"]).await;
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("token,name,calls,errors,aborted,estimated,prompt_tokens"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 3);
    assert!(
        csv.contains(&format!("{b},\"beta, with comma\",2,1,1,1,107,3,110,400,")),
        "{csv}"
    );

    // Each view's table holds, under each header, what its JSON says.
    for by in ["token", "model", "day"] {
        let table = cli_async(&env, &["usage", "--by", by]).await;
        let table = String::from_utf8(table.stdout).unwrap();
        let (header, rows) = parse_table(&table);
        let expected = json(&env, &["--by", by]).await;
        let expected = expected.as_array().unwrap();
        assert_eq!(rows.len(), expected.len(), "{table}");
        for (row, v) in rows.iter().zip(expected) {
            assert_eq!(
                cell(&header, row, by),
                v["key"].as_str().unwrap(),
                "{table}"
            );
            for (column, field) in [
                ("calls", "calls"),
                ("errors", "errors"),
                ("aborted", "aborted"),
                ("estimated", "estimated"),
                ("prompt", "prompt_tokens"),
                ("completion", "completion_tokens"),
                ("total", "total_tokens"),
            ] {
                assert_eq!(
                    cell(&header, row, column),
                    v[field].to_string(),
                    "{by} {column}"
                );
            }
            if by == "token" {
                assert_eq!(cell(&header, row, "name"), v["name"].as_str().unwrap_or(""));
            }
        }
    }
    let bad = cli_async(&env, &["usage", "--since", "yesterday-ish"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("since: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_and_carry_no_token_ids() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let r = http()
        .get(format!("{}/metrics", relay.url))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "metrics are served without --metrics");
    relay.stop().await;

    let config = ServeConfig {
        metrics_route: true,
        ..ServeConfig::default()
    };
    let relay = TestRelay::start(&env, config).await;
    let c = http();
    assert_eq!(
        relay
            .post(&token, "/v1/chat/completions", "{}")
            .await
            .status(),
        200
    );
    assert_eq!(
        c.post(format!("{}/v1/chat/completions", relay.url))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let text = c
        .get(format!("{}/metrics", relay.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("relayapi_requests_total{provider=\"openai\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("relayapi_refusals_total{code=\"missing_token\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("relayapi_upstream_ttfb_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("relayapi_streams_in_flight"), "{text}");
    assert!(text.contains("relayapi_usage_queue_depth"), "{text}");
    assert!(!text.contains(&id) && !text.contains(&token) && !text.contains(KEY));
    relay.stop().await;
}
