//! Shared test helpers: a data dir per test, the real binary, and a fresh database on each
//! backend (SQLite always; PostgreSQL when `RELAYAPI_TEST_POSTGRES_URL` is set).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use assert_cmd::Command;
use rand_core::{OsRng, RngCore};
use sea_orm::{ConnectionTrait, Database};

pub const PG_ENV: &str = "RELAYAPI_TEST_POSTGRES_URL";

/// The upstream API key tokens are issued with, unless a test needs one of its own. No
/// answer, log or upstream-bound token may ever contain it.
pub const TEST_KEY: &str = "sk-real-UPSTREAMKEY-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One isolated relayapi installation: its own data dir, working dir and database.
pub struct TestEnv {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pg_db: Option<(String, String)>,
}

impl TestEnv {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("data").join("relayapi.db").display()
        );
        TestEnv {
            backend: Backend::Sqlite,
            dir,
            database_url,
            pg_db: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (said once on stderr) when not configured.
    pub fn postgres() -> Option<Self> {
        let base = match std::env::var(PG_ENV) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                static SAID: Once = Once::new();
                SAID.call_once(|| {
                    eprintln!("PostgreSQL tests skipped: {PG_ENV} is not set");
                });
                return None;
            }
        };
        let name = format!("relayapi_test_{:016x}", OsRng.next_u64());
        block_on(async {
            let db = Database::connect(&base)
                .await
                .expect("connect to PostgreSQL");
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            db.close().await.ok();
        });
        let mut url = url::Url::parse(&base).expect("PostgreSQL URL");
        url.set_path(&name);
        Some(TestEnv {
            backend: Backend::Postgres,
            dir: tempfile::tempdir().expect("temp dir"),
            database_url: url.to_string(),
            pg_db: Some((base, name)),
        })
    }

    /// SQLite, plus PostgreSQL when configured.
    pub fn all() -> Vec<Self> {
        let mut envs = vec![Self::sqlite()];
        envs.extend(Self::postgres());
        envs
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir().join("keys")
    }

    /// The real binary, pointed at this installation, with no stray settings from outside.
    pub fn cmd(&self) -> Command {
        TestEnvHandle::from(self).cmd()
    }

    /// Issues a token through the CLI and returns (id, token).
    pub fn issue(&self, api_key: &str, args: &[&str]) -> (String, String) {
        TestEnvHandle::from(self).issue(api_key, args)
    }

    /// The environment's store, through the real migrations.
    pub async fn store(&self) -> Store {
        Store::connect(&self.database_url, Migrations::Apply)
            .await
            .expect("store")
    }

    /// Everything the database holds, as bytes a dump would contain.
    pub fn dump_database(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let db = self.data_dir().join("relayapi.db");
                let mut bytes = std::fs::read(&db).expect("read SQLite file");
                for suffix in ["-wal", "-shm"] {
                    let mut p = db.clone().into_os_string();
                    p.push(suffix);
                    if let Ok(more) = std::fs::read(Path::new(&p)) {
                        bytes.extend(more);
                    }
                }
                bytes
            }
            Backend::Postgres => {
                let out = std::process::Command::new("pg_dump")
                    .arg("--data-only")
                    .arg(&self.database_url)
                    .output()
                    .expect("pg_dump runs");
                assert!(
                    out.status.success(),
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg_db.take() {
            // Best effort: a leftover database is harmless, a panic in drop is not.
            let _ = std::thread::spawn(move || {
                block_on(async {
                    if let Ok(db) = Database::connect(&base).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                })
            })
            .join();
        }
    }
}

/// Runs a future to completion on a thread of its own, so that sync helpers work from sync
/// and async tests alike.
pub fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(f)
            })
            .join()
            .expect("helper thread")
    })
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A table the CLI printed (comfy-table's condensed UTF-8 preset), as its header and rows
/// of cells. Panics when a row has another number of cells than the header, so that a
/// column added without its header (or the other way round) is caught.
pub fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split(['│', '┆'])
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "no table in {text:?}");
    let header = rows.remove(0);
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{header:?} over {row:?}\n{text}");
    }
    (header, rows)
}

/// The cell of `row` under `column`.
pub fn cell<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column:?} in {header:?}"));
    &row[i]
}

/// Does `haystack` contain `needle` anywhere?
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub mod certs;
pub mod mock;
pub mod raw;
pub mod realtime_mock;

use std::sync::Arc;

use relayapi::crypto::KeyRing;
use relayapi::server::{AppState, ServeConfig};
use relayapi::store::{Migrations, Store};

/// A relay running in this process on 127.0.0.1:0, against a test environment's key ring
/// and database.
pub struct TestRelay {
    pub url: String,
    pub state: Arc<AppState>,
    env: TestEnvHandle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestRelay {
    pub async fn start(env: &TestEnv, config: ServeConfig) -> Self {
        std::fs::create_dir_all(env.data_dir()).expect("data dir");
        // As `serve` opens it: counts written inline where the store allows.
        let store = env
            .store()
            .await
            .with_inline_counts()
            .expect("inline counts");
        let (ring, _) = KeyRing::load_or_create(&env.keys_dir()).expect("key ring");
        let state = Arc::new(AppState::new(config, store, ring).expect("state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let scheme = if state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relayapi::server::run(state.clone(), listener, async {
            let _ = rx.await;
        }));
        TestRelay {
            url,
            state,
            env: TestEnvHandle::from(env),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Issues a token for [`TEST_KEY`] with `token issue` flags: (id, token).
    pub async fn issue(&self, args: &[&str]) -> (String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env = self.env.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            env.issue(TEST_KEY, &refs)
        })
        .await
        .expect("issue task")
    }

    /// A request to `path` on this relay, with the token as a bearer.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        http()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    /// POSTs a JSON body to `path` with the token as a bearer; returns the answer.
    pub async fn post(&self, token: &str, path: &str, body: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the relay answers")
    }

    /// [`post`](Self::post), for an answer read chunk by chunk as it arrives.
    pub async fn stream(&self, token: &str, path: &str, body: &str) -> Streamed {
        Streamed(self.post(token, path, body).await)
    }

    /// Signals a graceful stop and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("server stops within 30 s")
                .expect("server task");
        }
    }

    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }
}

/// A response body read as it arrives.
pub struct Streamed(pub reqwest::Response);

impl Streamed {
    pub fn status(&self) -> u16 {
        self.0.status().as_u16()
    }

    pub fn header(&self, name: &str) -> &str {
        self.0.headers()[name].to_str().expect("a text header")
    }

    /// The next chunk, which must arrive within 5 s; `None` at the end.
    pub async fn next(&mut self) -> Option<bytes::Bytes> {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.0.chunk())
            .await
            .expect("a chunk within 5 s")
            .expect("the body reads")
    }

    /// Everything left, to the end.
    pub async fn rest(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next().await {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

pub fn http() -> reqwest::Client {
    relayapi::server::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Issues through the CLI without blocking the async runtime.
pub async fn issue_async(env: &TestEnv, api_key: &str, args: &[&str]) -> (String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let key = api_key.to_string();
    let cmd_env = TestEnvHandle::from(env);
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        cmd_env.issue(&key, &refs)
    })
    .await
    .expect("issue task")
}

/// Runs a CLI command without blocking the async runtime; returns the output.
pub async fn cli_async(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let cmd_env = TestEnvHandle::from(env);
    tokio::task::spawn_blocking(move || cmd_env.cmd().args(&args).output().expect("run CLI"))
        .await
        .expect("cli task")
}

/// What a blocking task needs to run the CLI against an environment.
#[derive(Clone)]
pub struct TestEnvHandle {
    data_dir: PathBuf,
    database_url: String,
    work_dir: PathBuf,
}

impl From<&TestEnv> for TestEnvHandle {
    fn from(env: &TestEnv) -> Self {
        TestEnvHandle {
            data_dir: env.data_dir(),
            database_url: env.database_url.clone(),
            work_dir: env.dir.path().to_path_buf(),
        }
    }
}

impl TestEnvHandle {
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("relayapi").expect("binary built");
        for (key, _) in std::env::vars() {
            if key.starts_with("RELAYAPI_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(&self.work_dir)
            .env("RELAYAPI_DATA_DIR", &self.data_dir)
            .env("RELAYAPI_DATABASE_URL", &self.database_url)
            .env("RELAYAPI_LOG", "warn")
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    pub fn issue(&self, api_key: &str, args: &[&str]) -> (String, String) {
        let out = self
            .cmd()
            .args(["token", "issue", "--api-key-env", "TEST_API_KEY", "--json"])
            .args(args)
            .env("TEST_API_KEY", api_key)
            .output()
            .expect("run token issue");
        assert!(
            out.status.success(),
            "token issue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        (
            v["id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }
}

/// `relayapi serve` as a real process on 127.0.0.1:0; killed on drop unless stopped.
pub struct ServeProcess {
    pub url: String,
    child: Option<std::process::Child>,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    pub fn spawn(env: &TestEnv, extra: &[&str]) -> Self {
        Self::spawn_with(env, extra, &[])
    }

    /// [`spawn`](Self::spawn) with more environment variables (they win over the defaults).
    pub fn spawn_with(env: &TestEnv, extra: &[&str], vars: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let bin = assert_cmd::cargo::cargo_bin("relayapi");
        let mut cmd = std::process::Command::new(bin);
        for (key, _) in std::env::vars() {
            if key.starts_with("RELAYAPI_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .current_dir(env.dir.path())
            .env("RELAYAPI_DATA_DIR", env.data_dir())
            .env("RELAYAPI_DATABASE_URL", &env.database_url)
            .env("RELAYAPI_LOG", "warn")
            .envs(vars.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn relayapi serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !sent && let Some(url) = line.strip_prefix("relayapi listening on ") {
                    let _ = tx.send(url.to_string());
                    sent = true;
                } else {
                    eprintln!("[serve] {line}");
                }
                seen.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("relayapi serve printed its address");
        ServeProcess {
            url,
            child: Some(child),
            lines,
        }
    }

    /// Waits (up to 10 s) for a stderr line starting with `prefix`; returns the rest of it.
    pub fn line_after(&self, prefix: &str) -> String {
        self.wait_for_line(&format!("starting with {prefix:?}"), |l| {
            l.strip_prefix(prefix).map(str::to_string)
        })
    }

    /// Waits (up to 10 s) for a stderr line containing `needle`; returns it.
    pub fn line_containing(&self, needle: &str) -> String {
        self.wait_for_line(&format!("containing {needle:?}"), |l| {
            l.contains(needle).then(|| l.to_string())
        })
    }

    fn wait_for_line(&self, what: &str, pick: impl Fn(&str) -> Option<String>) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find_map(|l| pick(l)) {
                return found;
            }
            assert!(std::time::Instant::now() < deadline, "no line {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Everything the process has written to stderr so far.
    pub fn log(&self) -> Arc<std::sync::Mutex<Vec<String>>> {
        self.lines.clone()
    }

    /// Sends a signal by name (`HUP`, `TERM`…).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts an OpenAI-shaped refusal with the given status and code, and no secret in it.
pub async fn assert_refusal(
    response: reqwest::Response,
    status: u16,
    code: &str,
    secrets: &[&str],
) {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let body = response.text().await.unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["error"]["code"], code, "{body}");
    assert!(
        v["error"]["message"].is_string() && v["error"]["type"].is_string(),
        "{body}"
    );
    for secret in secrets {
        assert!(!body.contains(secret), "a refusal leaked a secret: {body}");
    }
}

/// A token's `used_calls`, read from the store.
pub async fn used_calls(env: &TestEnv, id: &str) -> i64 {
    let store = env.store().await;
    let used = store.get_token(id).await.expect("token").used_calls;
    store.close().await;
    used
}

/// How many usage records the store holds, over all tokens.
pub async fn usage_records(env: &TestEnv) -> i64 {
    let store = env.store().await;
    let rows = store
        .usage_report(
            &relayapi::store::UsageFilter::default(),
            relayapi::store::UsageGroup::Token,
        )
        .await
        .expect("report");
    store.close().await;
    rows.iter().map(|r| r.calls).sum()
}

/// The usage report row of one token, waiting (up to 5 s) until it shows `calls` calls.
pub async fn usage_of(env: &TestEnv, token_id: &str, calls: i64) -> relayapi::store::UsageRow {
    let store = env.store().await;
    let filter = relayapi::store::UsageFilter {
        token_id: Some(token_id.to_string()),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let rows = store
            .usage_report(&filter, relayapi::store::UsageGroup::Token)
            .await
            .expect("report");
        if let Some(row) = rows.into_iter().next().filter(|r| r.calls >= calls) {
            assert_eq!(row.calls, calls, "more usage records than calls");
            store.close().await;
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage for {token_id} never reached {calls} calls"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends `n` chat requests at once, to `urls` in turn, and counts the answers by status.
pub async fn concurrent_statuses(
    urls: &[String],
    token: &str,
    n: usize,
    origin: Option<&str>,
) -> std::collections::HashMap<u16, usize> {
    let client = http();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut request = client
                .post(format!("{}/v1/chat/completions", urls[i % urls.len()]))
                .bearer_auth(token)
                .body("{}");
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = std::collections::HashMap::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_insert(0) += 1;
    }
    statuses
}

/// Runs a Python script with the relay's URL and tokens in its environment; returns its
/// stdout. Skipped (and said) when the official SDKs are not installed.
pub async fn python(script: &'static str, vars: Vec<(&'static str, String)>) -> Option<String> {
    let check = std::process::Command::new("python3")
        .args(["-c", "import openai, anthropic, websockets, google.genai"])
        .output();
    if !check.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SDK test skipped: python3 with tests/requirements.txt installed is needed \
             (pip install -r tests/requirements.txt)"
        );
        return None;
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script])
            .envs(vars)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}
