//! `relayapi serve` as users run it: the real binary, its signals, and several processes
//! sharing one PostgreSQL database.

use crate::common;
use common::TEST_KEY as KEY;

use common::mock::MockUpstream;
use common::{ServeProcess, TestEnv, cli_async, http, issue_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_alone_works_on_a_fresh_machine_and_stops_cleanly() {
    let env = TestEnv::sqlite();
    assert!(!env.data_dir().exists());
    let serve = ServeProcess::spawn(&env, &[]);
    let r = http()
        .get(format!("{}/healthz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{}/readyz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        env.keys_dir().join("keyring.json").exists(),
        "no key was created"
    );
    assert!(
        env.data_dir().join("relayapi.db").exists(),
        "no database was created"
    );
    let status = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success(), "serve exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_serve_settings_are_clear_errors() {
    let env = TestEnv::sqlite();
    for (args, expected) in [
        (vec!["serve", "--listen", "nowhere"], "--listen"),
        (vec!["serve", "--max-body", "lots"], "--max-body"),
        (vec!["serve", "--idle-timeout", "0s"], "--idle-timeout"),
    ] {
        let out = cli_async(&env, &args).await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let serve = ServeProcess::spawn(&env, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics_url = serve.line_after("relayapi metrics on ");
    // The start-up WAL checkpoint (it empties the log) would rightly defer a count.
    let wal = env.data_dir().join("relayapi.db-wal");
    for _ in 0..100 {
        if std::fs::metadata(&wal).map_or(true, |m| m.len() == 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let call = http()
        .post(format!("{}/v1/chat/completions", serve.url))
        .bearer_auth(&token)
        .body(r#"{"model":"gpt-4o-mini","messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let text = http()
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("relayapi_usage_queue_depth"), "{text}");
    // The binary counts on the request's thread when nothing is in the way.
    assert!(text.contains("relayapi_call_counts_inline 1\n"), "{text}");
    assert!(text.contains("relayapi_call_counts_deferred 0\n"), "{text}");
    assert!(text.contains("relayapi_call_count_commits 1\n"), "{text}");
    // Not on the main listener.
    let r = http()
        .get(format!("{}/metrics", serve.url))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    let status = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success());
}

/// Two relays, one PostgreSQL database: exactly max_calls are forwarded between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_forward_exactly_max_calls() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let (id, token) = issue_async(&env, KEY, &["--upstream", &mock.url, "--max-calls", "50"]).await;
    let a = ServeProcess::spawn(&env, &[]);
    let b = ServeProcess::spawn(&env, &[]);
    let statuses =
        common::concurrent_statuses(&[a.url.clone(), b.url.clone()], &token, 200, None).await;
    assert_eq!(statuses.get(&200), Some(&50), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&150), "{statuses:?}");
    assert_eq!(mock.count(), 50);
    for serve in [a, b] {
        let status = tokio::task::spawn_blocking(move || serve.stop())
            .await
            .unwrap();
        assert!(status.success());
    }
    let out = cli_async(&env, &["token", "show", &id, "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["used_calls"], 50);
    assert_eq!(v["status"], "exhausted");
}
