//! Shared test helpers: a data dir per test, the real binary, and a fresh database on each
//! backend (SQLite always; PostgreSQL when `RELAYAPI_TEST_POSTGRES_URL` is set).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use assert_cmd::Command;
use rand_core::{OsRng, RngCore};
use sea_orm::{ConnectionTrait, Database};

pub const PG_ENV: &str = "RELAYAPI_TEST_POSTGRES_URL";

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
        let mut cmd = Command::cargo_bin("relayapi").expect("binary built");
        for (key, _) in std::env::vars() {
            if key.starts_with("RELAYAPI_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("RELAYAPI_DATA_DIR", self.data_dir())
            .env("RELAYAPI_DATABASE_URL", &self.database_url)
            .env("RELAYAPI_LOG", "warn")
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// Issues a token through the CLI and returns (id, token).
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
            v["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
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

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Does `haystack` contain `needle` anywhere?
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
