//! Limits that hold across a fleet: three `serve` processes on one PostgreSQL database,
//! a load spread over all three, counted at the mock upstream. PostgreSQL only: skipped
//! (and said) when `RELAYAPI_TEST_POSTGRES_URL` is unset.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::mock::MockUpstream;
use crate::common::{ServeProcess, TEST_KEY, TestEnv, cell, http, parse_table, stdout};

const ADMIN: &str = "fleet-admin-secret-0123456789abcdef";

struct Fleet {
    env: TestEnv,
    mock: MockUpstream,
    relays: Vec<ServeProcess>,
    _alone: tokio::sync::MutexGuard<'static, ()>,
}

/// One fleet at a time: three relays' connection pools under load, times several tests at
/// once, would exhaust PostgreSQL's connections, and the timings measured here would
/// measure each other.
static ONE_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Fleet {
    /// `n` relays on a fresh PostgreSQL database, or `None` when PostgreSQL is not set up.
    async fn start(n: usize) -> Option<Self> {
        Self::start_with(n, |_| Vec::new()).await
    }

    /// [`start`](Self::start), with more environment variables for relay `i`.
    async fn start_with(
        n: usize,
        vars: impl Fn(usize) -> Vec<(&'static str, String)>,
    ) -> Option<Self> {
        let env = TestEnv::postgres()?;
        let alone = ONE_FLEET.lock().await;
        std::fs::create_dir_all(env.data_dir()).unwrap();
        let mock = MockUpstream::start().await;
        let relays = tokio::task::block_in_place(|| {
            (0..n)
                .map(|i| {
                    let extra = vars(i);
                    let mut env_vars: Vec<(&str, &str)> = vec![
                        ("FLEET_ADMIN", ADMIN),
                        ("RELAYAPI_LOG", "warn,relayapi::server::fleet=info"),
                    ];
                    env_vars.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
                    ServeProcess::spawn_with(
                        &env,
                        &[
                            "--admin-token-env",
                            "FLEET_ADMIN",
                            "--metrics",
                            "--database-connections",
                            "8",
                        ],
                        &env_vars,
                    )
                })
                .collect()
        });
        Some(Fleet {
            env,
            mock,
            relays,
            _alone: alone,
        })
    }

    fn urls(&self) -> Vec<String> {
        self.relays.iter().map(|r| r.url.clone()).collect()
    }

    /// Issues a token through the first relay's admin API: (id, token).
    async fn issue(&self, limits: Value) -> (String, String) {
        let mut body = json!({"api_key": TEST_KEY, "upstream": self.mock.url});
        body.as_object_mut()
            .unwrap()
            .extend(limits.as_object().unwrap().clone());
        let r = http()
            .post(format!("{}/admin/v1/tokens", self.relays[0].url))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }

    /// Revokes through `relay`'s admin API; returns when it has answered.
    async fn revoke(&self, relay: usize, id: &str) {
        let r = http()
            .delete(format!("{}/admin/v1/tokens/{id}", self.relays[relay].url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn sql(&self, statement: &str) {
        use sea_orm::{ConnectionTrait, Database};
        let db = Database::connect(&self.env.database_url).await.unwrap();
        db.execute_unprepared(statement).await.unwrap();
        db.close().await.unwrap();
    }

    async fn metric(&self, relay: usize, name: &str) -> f64 {
        let text = http()
            .get(format!("{}/metrics", self.relays[relay].url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

/// A client that keeps its connections, as a load generator does.
fn client() -> reqwest::Client {
    relayapi::server::install_crypto_provider();
    reqwest::Client::new()
}

/// One chat call; its status and error code (empty on success).
async fn call(client: &reqwest::Client, url: &str, token: &str, model: &str) -> (u16, String) {
    let r = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(json!({"model": model, "messages": []}).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// `workers` clients calling relays in turn, `total` calls in all; the answers by
/// (status, code).
async fn load(
    urls: &[String],
    token: &str,
    model: &str,
    workers: usize,
    total: usize,
) -> HashMap<(u16, String), usize> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = client();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (next, client, urls) = (next.clone(), client.clone(), urls.to_vec());
            let (token, model) = (token.to_string(), model.to_string());
            tokio::spawn(async move {
                let mut seen = HashMap::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= total {
                        return seen;
                    }
                    let answer = call(&client, &urls[i % urls.len()], &token, &model).await;
                    *seen.entry(answer).or_insert(0) += 1;
                }
            })
        })
        .collect();
    let mut all = HashMap::new();
    for task in tasks {
        for (k, v) in task.await.unwrap() {
            *all.entry(k).or_insert(0) += v;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_holds_for_the_fleet_as_one_relay_would_hold_it() {
    let Some(fleet) = Fleet::start(3).await else {
        return;
    };
    let (_, token) = fleet.issue(json!({"rpm": 30})).await;
    let answers = admits_as_one_relay(&fleet, &token).await;
    let admitted = fleet.mock.count();
    assert_eq!(answers.get(&(200, String::new())), Some(&admitted));
    assert!(
        answers[&(429, "rate_limited".to_string())] > 0,
        "{answers:?}"
    );

    // A rate past a request a microsecond is a rate, not a division by zero.
    let (_, fast) = fleet.issue(json!({"rpm": 100_000_000})).await;
    let client = client();
    for url in &fleet.urls() {
        assert_eq!(call(&client, url, &fast, "m").await, (200, String::new()));
    }
}

/// Calls a token with `--rpm 30` through every relay in turn for ~3 s, and checks that the
/// mock saw what one relay would admit under the documented rule (a bucket of 30 refilled
/// at one request every 2 s) ±1. Returns the answers by (status, code).
async fn admits_as_one_relay(fleet: &Fleet, token: &str) -> HashMap<(u16, String), usize> {
    let urls = fleet.urls();
    let client = client();
    let began = Instant::now();
    let mut answers: HashMap<(u16, String), usize> = HashMap::new();
    let mut i = 0;
    while began.elapsed() < Duration::from_millis(3_000) {
        let answer = call(&client, &urls[i % urls.len()], token, "m").await;
        *answers.entry(answer).or_insert(0) += 1;
        i += 1;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let admitted = fleet.mock.count() as i64;
    let expected = 30 + (elapsed / 2.0).floor() as i64;
    assert!(
        (admitted - expected).abs() <= 1,
        "admitted {admitted} in {elapsed:.2} s, one relay would admit {expected}: {answers:?}"
    );
    answers
}

/// libfaketime, which sets a process's clock off (Debian's `libfaketime`; `.ci/run`
/// installs it).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Two relays whose clocks are 40 s apart (one 20 s behind, one 20 s ahead) hold a rate
/// exactly as one relay would: the rate runs on the database's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_holds_when_the_relays_clocks_disagree() {
    if !std::path::Path::new(FAKETIME).exists() {
        eprintln!("clock test skipped: {FAKETIME} is missing (apt-get install libfaketime)");
        return;
    }
    let Some(fleet) = Fleet::start_with(2, |i| {
        vec![
            ("LD_PRELOAD", FAKETIME.to_string()),
            ("FAKETIME", if i == 0 { "-20s" } else { "+20s" }.to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ]
    })
    .await
    else {
        return;
    };
    let (_, token) = fleet.issue(json!({"rpm": 30})).await;
    let urls = fleet.urls();
    let client = client();
    // The clocks really disagree: each relay's `Date` header is its own clock.
    let mut dates = Vec::new();
    for url in &urls {
        let r = client.get(format!("{url}/healthz")).send().await.unwrap();
        let date = r.headers()["date"].to_str().unwrap().to_string();
        dates.push(chrono::DateTime::parse_from_rfc2822(&date).unwrap());
    }
    let apart = (dates[1] - dates[0]).num_seconds();
    assert!((35..=45).contains(&apart), "clocks {apart} s apart");
    admits_as_one_relay(&fleet, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_holds_for_the_fleet_over_2000_calls() {
    let Some(fleet) = Fleet::start(3).await else {
        return;
    };
    let (id, token) = fleet.issue(json!({"concurrency": 5})).await;
    let answers = load(&fleet.urls(), &token, "linger", 24, 2_000).await;
    let most = fleet
        .mock
        .shared
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= 5, "{most} calls in flight at once: {answers:?}");
    assert_eq!(most, 5, "the limit was never reached: {answers:?}");
    let admitted = answers[&(200, String::new())];
    assert_eq!(admitted, fleet.mock.count(), "{answers:?}");
    let refused = answers[&(429, "too_many_concurrent_requests".to_string())];
    assert_eq!(admitted + refused, 2_000, "{answers:?}");
    // Every slot was given back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fleet.in_flight(&id).await != 0 {
        assert!(Instant::now() < deadline, "slots still held after the load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A slot is free again before the call's last bytes reach the client: a client making one
/// call after another, on any relay, never meets its own previous call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_after_another_never_meets_the_last_one() {
    let Some(fleet) = Fleet::start(3).await else {
        return;
    };
    let (_, token) = fleet.issue(json!({"concurrency": 1})).await;
    let client = client();
    let urls = fleet.urls();
    for i in 0..60 {
        let answer = call(&client, &urls[i % 3], &token, "m").await;
        assert_eq!(answer, (200, String::new()), "call {i}");
    }
}

impl Fleet {
    /// The token's calls in flight, as the fleet counts them.
    async fn in_flight(&self, id: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
        let db = Database::connect(&self.env.database_url).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT in_flight::bigint AS n FROM tokens WHERE id = $1",
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        db.close().await.unwrap();
        row.try_get("", "n").unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_budget_overshoots_by_no_more_than_the_prompts_in_flight() {
    let Some(fleet) = Fleet::start(3).await else {
        return;
    };
    // Each call reserves its cap (10) and uses 6 (5 prompt, 1 completion).
    let (id, token) = fleet
        .issue(json!({"max_total_tokens": 200, "max_output_tokens": 10}))
        .await;
    let mut answers = load(&fleet.urls(), &token, "linger", 60, 300).await;
    // Then one at a time until refused: what was reserved came back, so the budget is used
    // up to within one call's cap.
    let client = client();
    for url in fleet.urls().iter().cycle() {
        let answer = call(&client, url, &token, "m").await;
        let refused = answer.0 != 200;
        *answers.entry(answer).or_insert(0) += 1;
        if refused {
            break;
        }
    }
    let admitted = answers[&(200, String::new())] as i64;
    assert_eq!(admitted, fleet.mock.count() as i64);
    let store = fleet.env.store().await;
    let used = store.get_token(&id).await.unwrap().used_tokens;
    // Charged exactly, and within the bound (the calls used less than they reserved, so
    // the bound is the budget itself).
    assert_eq!(used, admitted * 6, "{answers:?}");
    assert!(used <= 200, "used {used} of a budget of 200: {answers:?}");
    assert!(
        used > 200 - 10,
        "refused with {used} of 200 used: {answers:?}"
    );
    assert!(answers[&(429, "token_budget_exhausted".to_string())] > 0);
}

/// The time from each revocation's answer to the first refusal on each other relay.
async fn revocation_delays(fleet: &Fleet, rounds: usize) -> Vec<Duration> {
    let client = client();
    let mut delays = Vec::new();
    for _ in 0..rounds {
        let (id, token) = fleet.issue(json!({})).await;
        // Known to every relay first: each has the token cached.
        for url in &fleet.urls() {
            assert_eq!(call(&client, url, &token, "m").await.0, 200);
        }
        fleet.revoke(0, &id).await;
        let revoked = Instant::now();
        let urls = fleet.urls();
        let waits = urls[1..].iter().map(|url| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            async move {
                loop {
                    let (status, code) = call(&client, &url, &token, "m").await;
                    if status == 401 {
                        assert_eq!(code, "token_revoked");
                        return revoked.elapsed();
                    }
                    assert!(revoked.elapsed() < Duration::from_secs(5), "never refused");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        delays.extend(futures_util::future::join_all(waits).await);
    }
    delays.sort();
    delays
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_is_pushed_to_every_relay_within_100_ms() {
    let Some(fleet) = Fleet::start(3).await else {
        return;
    };
    let delays = revocation_delays(&fleet, 100).await;
    let (p99, max) = (p99(&delays), *delays.last().unwrap());
    eprintln!(
        "revocation to refusal on the other relays, {} samples: p50 {:?}, p99 {p99:?}, max {max:?}",
        delays.len(),
        delays[delays.len() / 2]
    );
    assert!(p99 <= Duration::from_millis(100), "p99 {p99:?}");
    let lag = fleet
        .metric(1, "relayapi_fleet_notification_lag_seconds_count")
        .await;
    assert!(lag >= 100.0, "{lag} changes applied");

    // With the listeners' connections killed, polling holds the old bound while they
    // connect again, and they do.
    fleet
        .sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
            relayapi::server::fleet::LISTENER_NAME
        ))
        .await;
    let delays = revocation_delays(&fleet, 10).await;
    let max = *delays.last().unwrap();
    assert!(max <= Duration::from_millis(900), "max {max:?}");
    for relay in &fleet.relays {
        relay.line_containing("change listener lost: polling until it is back");
        relay.line_containing("change listener connected again");
    }
    assert!(
        fleet
            .metric(2, "relayapi_fleet_listener_reconnects_total")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_revocations_in_one_transaction_leave_no_relay_behind() {
    let Some(fleet) = Fleet::start(2).await else {
        return;
    };
    let client = client();
    let (id, token) = fleet.issue(json!({})).await;
    let (_, other) = fleet.issue(json!({})).await;
    for url in &fleet.urls() {
        assert_eq!(call(&client, url, &token, "m").await.0, 200);
    }
    fleet
        .sql(
            "INSERT INTO tokens (id, provider, fingerprint, kid, key_hint, used_calls, created_at, used_tokens)
             SELECT md5('storm' || i), 'openai', 'storm-' || i, 'k', '…', 0, now(), 0
             FROM generate_series(1, 10000) AS i",
        )
        .await;
    let began = Instant::now();
    fleet
        .sql(&format!(
            "UPDATE tokens SET revoked_at = now() WHERE fingerprint LIKE 'storm-%' OR id = '{id}'"
        ))
        .await;
    for url in &fleet.urls() {
        loop {
            let (status, _) = call(&client, url, &token, "m").await;
            if status == 401 {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(2),
                "not refused after a storm"
            );
        }
        // Nothing else is held up.
        assert_eq!(call(&client, url, &other, "m").await.0, 200);
    }
    // And the next single change is as quick as ever.
    let delays = revocation_delays(&fleet, 5).await;
    assert!(
        *delays.last().unwrap() <= Duration::from_millis(100),
        "{delays:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_relays_slots_are_given_back_within_15_s() {
    let Some(mut fleet) = Fleet::start(2).await else {
        return;
    };
    let (_, token) = fleet.issue(json!({"concurrency": 5})).await;
    let client = client();
    // Five slow calls hold every slot through the first relay.
    let url = fleet.relays[0].url.clone();
    let held: Vec<_> = (0..5)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let _ = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(json!({"model": "slow"}).to_string())
                    .send()
                    .await;
            })
        })
        .collect();
    while fleet.mock.count() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = fleet.relays[1].url.clone();
    assert_eq!(
        call(&client, &other, &token, "m").await,
        (429, "too_many_concurrent_requests".to_string())
    );
    fleet.relays.remove(0).kill_9();
    let killed = Instant::now();
    loop {
        let (status, code) = call(&client, &other, &token, "m").await;
        if status == 200 {
            break;
        }
        assert_eq!(code, "too_many_concurrent_requests");
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "slots never given back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("slots given back {:?} after kill -9", killed.elapsed());
    assert!(fleet.metric(0, "relayapi_fleet_lease_reclaims_total").await >= 5.0);
    for task in held {
        let _ = task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_are_listed_from_their_heartbeats() {
    let Some(mut fleet) = Fleet::start(3).await else {
        return;
    };
    let addresses: Vec<String> = fleet
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("http://").to_string())
        .collect();
    let listed = |json: bool| {
        let mut cmd = fleet.env.cmd();
        cmd.arg("relays");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", crate::common::stderr(&out));
        stdout(&out)
    };
    // Each relay heartbeats when it starts.
    let (header, rows) = parse_table(&listed(false));
    let mut seen: Vec<String> = rows
        .iter()
        .map(|r| cell(&header, r, "address").to_string())
        .collect();
    seen.sort();
    let mut expected = addresses.clone();
    expected.sort();
    assert_eq!(seen, expected);
    for row in &rows {
        assert_eq!(cell(&header, row, "version"), env!("CARGO_PKG_VERSION"));
        assert_eq!(cell(&header, row, "calls in flight"), "0");
        assert_eq!(cell(&header, row, "id").len(), 32);
    }
    let json: Value = serde_json::from_str(&listed(true)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let api = http()
        .get(format!("{}/admin/v1/relays", fleet.relays[1].url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let api: Value = serde_json::from_slice(&api).unwrap();
    assert_eq!(api.as_array().unwrap().len(), 3);
    // A graceful stop leaves the fleet at once.
    let gone = fleet.relays.remove(0);
    let gone_address = gone.url.trim_start_matches("http://").to_string();
    assert!(gone.stop().success());
    let json: Value = serde_json::from_str(&listed(true)).unwrap();
    let left: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&gone_address.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_cut_mid_load_cost_refusals_never_an_extra_call() {
    let Some(fleet) = Fleet::start(2).await else {
        return;
    };
    let (id, token) = fleet
        .issue(json!({"max_calls": 150, "concurrency": 8}))
        .await;
    let urls = fleet.urls();
    let load = tokio::spawn({
        let (urls, token) = (urls.clone(), token.clone());
        async move { load(&urls, &token, "linger", 12, 400).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every connection of the relays to the database, cut: as a restart of PostgreSQL
    // looks to them.
    fleet
        .sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    let answers = load.await.unwrap();
    for (status, code) in answers.keys() {
        assert!(
            [
                (200, ""),
                (503, "store_unavailable"),
                (429, "too_many_concurrent_requests"),
                (429, "calls_exhausted")
            ]
            .contains(&(*status, code.as_str())),
            "{answers:?}"
        );
    }
    let admitted = answers.get(&(200, String::new())).copied().unwrap_or(0);
    assert_eq!(admitted, fleet.mock.count(), "{answers:?}");
    assert!(admitted <= 150);
    // They recover without a restart, and the count is exact.
    let client = client();
    for url in &urls {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, code) = call(&client, url, &token, "m").await;
            if status == 200 || code == "calls_exhausted" {
                break;
            }
            assert!(Instant::now() < deadline, "{url} never recovered: {code}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let used = crate::common::used_calls(&fleet.env, &id).await;
    assert_eq!(used as usize, fleet.mock.count());
}

/// A key rotation is announced: every relay reads its key ring again, and a token sealed
/// with the new key opens everywhere at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotation_reaches_every_relay() {
    let Some(fleet) = Fleet::start(2).await else {
        return;
    };
    let out = crate::common::cli_async(&fleet.env, &["keygen", "--rotate"]).await;
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert!(crate::common::stderr(&out).contains("announced the rotation"));
    let upstream = ["--upstream", fleet.mock.url.as_str()];
    let (_, token) = crate::common::issue_async(&fleet.env, TEST_KEY, &upstream).await;
    let client = client();
    for url in &fleet.urls() {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let (status, code) = call(&client, url, &token, "m").await;
            if status == 200 {
                break;
            }
            assert_eq!(code, "invalid_token");
            assert!(Instant::now() < deadline, "{url} never read the new key");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for relay in &fleet.relays {
        relay.line_containing("key ring read again after a rotation");
    }
    // Announcing alone works too; on SQLite it is a clear error.
    let out = crate::common::cli_async(&fleet.env, &["keygen", "--announce"]).await;
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let sqlite = TestEnv::sqlite();
    let out = crate::common::cli_async(&sqlite, &["keygen", "--announce"]).await;
    assert!(!out.status.success());
    assert!(crate::common::stderr(&out).contains("SQLite"));
}
