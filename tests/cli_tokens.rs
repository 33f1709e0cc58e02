//! The admin half end to end: the real binary against SQLite and, when configured,
//! PostgreSQL.

use crate::common;
use common::TEST_KEY as API_KEY;

use std::os::unix::fs::PermissionsExt;

use common::{TestEnv, cell, contains, parse_table, stderr, stdout};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "command failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

#[test]
fn keygen_creates_a_private_key_refuses_twice_and_rotates() {
    let env = TestEnv::sqlite();
    let out = env.cmd().arg("keygen").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("BEGIN PUBLIC KEY"), "{text}");
    assert!(
        !text.contains("PRIVATE"),
        "the private key is never printed"
    );

    let pems: Vec<_> = std::fs::read_dir(env.keys_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pem"))
        .collect();
    assert_eq!(pems.len(), 1);
    let mode = pems[0].metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let again = env.cmd().arg("keygen").output().unwrap();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--rotate"), "{}", stderr(&again));

    assert!(
        env.cmd()
            .args(["keygen", "--rotate"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let keys = json(
        &env.cmd()
            .args(["keygen", "--list", "--json"])
            .output()
            .unwrap(),
    );
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["active"] == true).count(), 1);
    assert_eq!(keys[1]["active"], true, "the newest key is active");
    let table = stdout(&env.cmd().args(["keygen", "--list"]).output().unwrap());
    let (header, rows) = parse_table(&table);
    assert_eq!(rows.len(), 2);
    for (row, key) in rows.iter().zip(keys) {
        assert_eq!(cell(&header, row, "kid"), key["kid"].as_str().unwrap());
        let active = if key["active"] == true { "yes" } else { "" };
        assert_eq!(cell(&header, row, "active"), active);
        assert!(cell(&header, row, "created").ends_with("UTC"));
    }
}

#[test]
fn the_provider_table_matches_the_registry() {
    let env = TestEnv::sqlite();
    let registry = json(&env.cmd().args(["providers", "--json"]).output().unwrap());
    let registry = registry.as_array().unwrap();
    let table = stdout(&env.cmd().arg("providers").output().unwrap());
    let (header, rows) = parse_table(&table);
    assert_eq!(rows.len(), registry.len());
    for (row, p) in rows.iter().zip(registry) {
        assert_eq!(cell(&header, row, "provider"), p["name"].as_str().unwrap());
        assert_eq!(cell(&header, row, "auth"), p["auth"].as_str().unwrap());
        let base = p["base_url"].as_str().unwrap_or("(given with --upstream)");
        assert_eq!(cell(&header, row, "base URL"), base);
    }
    let anthropic = rows.iter().find(|r| r[0] == "anthropic").unwrap();
    assert_eq!(
        cell(&header, anthropic, "added headers"),
        "anthropic-version: 2023-06-01"
    );
}

#[test]
fn issue_creates_the_first_key_and_says_so() {
    let env = TestEnv::sqlite();
    let out = env
        .cmd()
        .args(["token", "issue", "--api-key-env", "K", "--quiet"])
        .env("K", API_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("created the server key"));
    let token = stdout(&out);
    assert!(token.trim().starts_with("rly_"));
    assert_eq!(token.lines().count(), 1, "--quiet prints the token alone");
}

#[test]
fn token_lifecycle_on_every_backend() {
    for env in TestEnv::all() {
        lifecycle(&env);
    }
}

fn lifecycle(env: &TestEnv) {
    let out = env
        .cmd()
        .args([
            "token",
            "issue",
            "--api-key-env",
            "K",
            "--json",
            "--name",
            "demo",
            "--max-calls",
            "100",
            "--expires-in",
            "7d",
            "--model",
            "gpt-4o*",
            "--origin",
            "https://App.example.com/",
            "--ip",
            "10.0.0.0/8",
            "--endpoint",
            "/v1/chat/*",
            "--rpm",
            "60",
            "--concurrency",
            "4",
            "--max-total-tokens",
            "5000",
            "--max-output-tokens",
            "256",
        ])
        .env("K", API_KEY)
        .output()
        .unwrap();
    let issued = json(&out);
    let id = issued["id"].as_str().unwrap().to_string();
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rly_"));
    assert_eq!(issued["name"], "demo");
    assert_eq!(issued["provider"], "openai");
    assert_eq!(issued["max_calls"], 100);
    assert_eq!(issued["used_calls"], 0);
    assert_eq!(issued["status"], "active");
    assert_eq!(issued["key_hint"], "sk-…cdef");
    assert_eq!(issued["policy"]["origins"][0], "https://app.example.com");
    assert!(issued["expires_at"].is_string());
    assert!(!stdout(&out).contains(API_KEY) && !stderr(&out).contains(API_KEY));

    // Nothing secret in the database: no key, no token.
    let dump = env.dump_database();
    assert!(
        contains(&dump, &id[..16]),
        "the dump is readable (sanity check)"
    );
    assert!(!contains(&dump, API_KEY), "the API key is in the database");
    assert!(!contains(&dump, &token), "the token is in the database");
    assert!(
        !contains(&dump, &token[4..40]),
        "part of the token is in the database"
    );

    let list = json(
        &env.cmd()
            .args(["token", "list", "--json"])
            .output()
            .unwrap(),
    );
    let row = &list.as_array().unwrap()[0];
    for field in [
        "id",
        "name",
        "provider",
        "used_calls",
        "max_calls",
        "expires_at",
        "status",
        "last_used_at",
    ] {
        assert!(row.get(field).is_some(), "list --json lacks {field}");
    }
    assert_eq!(row["status"], "active");

    let table = stdout(&env.cmd().args(["token", "list"]).output().unwrap());
    let (header, rows) = parse_table(&table);
    assert_eq!(rows.len(), 1, "{table}");
    let row = &rows[0];
    assert_eq!(cell(&header, row, "id"), &id[..12]);
    assert_eq!(cell(&header, row, "name"), "demo");
    assert_eq!(cell(&header, row, "provider"), "openai");
    assert_eq!(cell(&header, row, "calls"), "0/100");
    assert_eq!(cell(&header, row, "tokens used"), "0/5000");
    assert_eq!(cell(&header, row, "status"), "active");
    assert_eq!(cell(&header, row, "last used"), "—");
    assert!(cell(&header, row, "expires").ends_with("UTC"), "{table}");

    let shown = json(
        &env.cmd()
            .args(["token", "show", &id[..8], "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(shown["id"], id.as_str());
    let shown = stdout(
        &env.cmd()
            .args(["token", "show", &id[..8]])
            .output()
            .unwrap(),
    );
    let (header, rows) = parse_table(&shown);
    assert_eq!(header, ["field", "value"]);
    let field = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no {name} in {shown}"))[1]
            .clone()
    };
    assert_eq!(field("models"), "gpt-4o*");
    assert_eq!(field("client IPs"), "10.0.0.0/8");
    assert_eq!(field("key"), "sk-…cdef");
    assert_eq!(field("calls"), "0/100");
    assert_eq!(field("tokens used"), "0/5000");
    assert_eq!(field("output cap"), "256 tokens per call");

    // No terminal and no --yes: refuse, and leave the token alone.
    let refused = env.cmd().args(["token", "revoke", &id]).output().unwrap();
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    let shown = json(
        &env.cmd()
            .args(["token", "show", &id, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(shown["status"], "active");

    let revoked = json(
        &env.cmd()
            .args(["token", "revoke", &id[..10], "--yes", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    let again = env
        .cmd()
        .args(["token", "revoke", &id, "--yes"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(stdout(&again).contains("already revoked"));

    let list = json(
        &env.cmd()
            .args(["token", "list", "--json"])
            .output()
            .unwrap(),
    );
    assert!(
        list.as_array().unwrap().is_empty(),
        "revoked tokens are hidden by default"
    );
    let all = json(
        &env.cmd()
            .args(["token", "list", "--all", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(all[0]["status"], "revoked");
}

#[test]
fn api_key_from_stdin_and_custom_upstream() {
    let env = TestEnv::sqlite();
    let out = env
        .cmd()
        .args([
            "token",
            "issue",
            "--api-key-stdin",
            "--json",
            "--provider",
            "custom",
            "--upstream",
            "http://127.0.0.1:9/v1/",
            "--auth",
            "header:x-key",
        ])
        .write_stdin(format!("{API_KEY}\n"))
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["provider"], "custom");
    assert_eq!(v["upstream"], "http://127.0.0.1:9/v1");
    assert_eq!(v["auth"], "header:x-key");
    assert_eq!(
        v["key_hint"], "sk-…cdef",
        "the trailing newline is not part of the key"
    );
}

fn fails_with(env: &TestEnv, args: &[&str], expected: &str) {
    let out = env.cmd().args(args).env("K", API_KEY).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = stderr(&out);
    assert!(
        err.contains(expected),
        "{args:?}: expected {expected:?} in {err:?}"
    );
    assert!(!err.contains(API_KEY), "an error printed the API key");
    assert!(
        err.lines().filter(|l| !l.trim().is_empty()).count() <= 2,
        "not a short error: {err}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let env = TestEnv::sqlite();
    let issue = ["token", "issue", "--api-key-env", "K"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        issue.iter().chain(extra.iter()).copied().collect()
    };
    fails_with(&env, &with(&["--provider", "nope"]), "unknown provider");
    fails_with(&env, &with(&["--expires-in", "soon"]), "not a duration");
    fails_with(
        &env,
        &with(&["--expires-at", "2001-01-01T00:00:00Z"]),
        "in the past",
    );
    fails_with(&env, &with(&["--ip", "10.0.0.0/99"]), "invalid IP range");
    fails_with(&env, &with(&["--origin", "example.com"]), "invalid origin");
    fails_with(&env, &with(&["--max-calls", "0"]), "at least 1");
    fails_with(&env, &with(&["--provider", "azure"]), "--upstream");
    fails_with(
        &env,
        &with(&["--provider", "custom", "--upstream", "ftp://x"]),
        "invalid upstream",
    );
    fails_with(&env, &with(&["--auth", "bearer"]), "only a custom provider");
    fails_with(
        &env,
        &["token", "issue", "--api-key-env", "UNSET_VARIABLE_XYZ"],
        "UNSET_VARIABLE_XYZ",
    );
    fails_with(&env, &["token", "issue"], "--api-key-env");
    fails_with(&env, &["token", "show", "0123abcd"], "no token");
    fails_with(&env, &["token", "show", "xyz%"], "hex");

    let list = json(
        &env.cmd()
            .args(["token", "list", "--all", "--json"])
            .output()
            .unwrap(),
    );
    assert!(
        list.as_array().unwrap().is_empty(),
        "a refused issue wrote a token"
    );
}

#[test]
fn ambiguous_prefixes_are_refused() {
    let env = TestEnv::sqlite();
    // 17 random ids: two must share their first hex digit.
    let ids: Vec<String> = (0..17).map(|_| env.issue(API_KEY, &[]).0).collect();
    let digit = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|id| id.starts_with(d.as_str())).count() >= 2)
        .unwrap();
    fails_with(&env, &["token", "show", &digit], "matches");
}

#[test]
fn unreadable_or_exposed_key_files_are_clear_errors() {
    let env = TestEnv::sqlite();
    env.issue(API_KEY, &[]);
    let pem = std::fs::read_dir(env.keys_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "pem"))
        .unwrap()
        .path();
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails_with(&env, &["token", "issue", "--api-key-env", "K"], "chmod 600");
    std::fs::write(&pem, "not a key").unwrap();
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    fails_with(
        &env,
        &["token", "issue", "--api-key-env", "K"],
        "not a P-256 PKCS#8 private key",
    );
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let env = TestEnv::sqlite();
    let out = env
        .cmd()
        .args(["token", "list"])
        .env(
            "RELAYAPI_DATABASE_URL",
            "postgres://relay:pw-SECRET@127.0.0.1:1/relayapi",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(
        !err.contains("pw-SECRET"),
        "the database password was printed: {err}"
    );
    fails_with(
        &env,
        &["--database-url", "mysql://x", "token", "list"],
        "unsupported database URL",
    );
}

#[test]
fn migrate_applies_then_reports_up_to_date() {
    for env in TestEnv::all() {
        let status = stdout(&env.cmd().args(["migrate", "--status"]).output().unwrap());
        assert!(
            status.contains("pending") && status.contains("create_tokens"),
            "{status}"
        );
        let first = stdout(&env.cmd().arg("migrate").output().unwrap());
        assert!(
            first.contains("applied m20261126_000001_create_tokens"),
            "{first}"
        );
        let second = stdout(&env.cmd().arg("migrate").output().unwrap());
        assert!(second.contains("up to date"), "{second}");
        let status = stdout(&env.cmd().args(["migrate", "--status"]).output().unwrap());
        assert!(
            status.contains("applied") && !status.contains("pending"),
            "{status}"
        );
    }
}

#[test]
fn config_file_env_and_flags_layer_in_order() {
    let env = TestEnv::sqlite();
    let file_dir = env.dir.path().join("from-file");
    let env_dir = env.dir.path().join("from-env");
    let flag_dir = env.dir.path().join("from-flag");
    std::fs::write(
        env.dir.path().join("relayapi.toml"),
        format!("data_dir = \"{}\"\n", file_dir.display()),
    )
    .unwrap();
    // The test environment sets RELAYAPI_DATA_DIR; take it away to see the file's value.
    let keygen = |data_dir_env: Option<&std::path::Path>, flag: Option<&std::path::Path>| {
        let mut cmd = env.cmd();
        cmd.env_remove("RELAYAPI_DATA_DIR");
        if let Some(dir) = data_dir_env {
            cmd.env("RELAYAPI_DATA_DIR", dir);
        }
        if let Some(dir) = flag {
            cmd.arg("--data-dir").arg(dir);
        }
        let out = cmd.args(["keygen", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    keygen(None, None);
    assert!(file_dir.join("keys").exists(), "relayapi.toml was not read");
    keygen(Some(&env_dir), None);
    assert!(
        env_dir.join("keys").exists(),
        "the environment does not beat the file"
    );
    keygen(Some(&env_dir), Some(&flag_dir));
    assert!(
        flag_dir.join("keys").exists(),
        "the flag does not beat the environment"
    );

    std::fs::write(env.dir.path().join("relayapi.toml"), "data_dri = 1\n").unwrap();
    fails_with(&env, &["keygen"], "unknown field");
    fails_with(
        &env,
        &["--config", "/nonexistent/relayapi.toml", "keygen"],
        "cannot read config file",
    );
}

/// `serve --print-config`, read back as TOML.
fn effective_config(cmd: &mut assert_cmd::Command) -> toml::Table {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    toml::from_str(&stdout(&out)).expect("print-config prints TOML")
}

#[test]
fn serve_settings_layer_defaults_file_environment_flags() {
    let env = TestEnv::sqlite();
    let defaults = effective_config(env.cmd().args(["serve", "--print-config"]));
    std::fs::write(
        env.dir.path().join("relayapi.toml"),
        "max_body = \"1MiB\"\nidle_timeout = \"5s\"\nlisten = \"127.0.0.1:9999\"\n\
         trusted_proxies = [\"10.0.0.1\"]\n",
    )
    .unwrap();
    let layered = effective_config(
        env.cmd()
            .env("RELAYAPI_IDLE_TIMEOUT", "7s")
            .env("RELAYAPI_LISTEN", "127.0.0.1:8888")
            .args(["serve", "--print-config", "--listen", "127.0.0.1:7777"]),
    );
    let value = |t: &toml::Table, key: &str| t.get(key).map(|v| v.to_string());
    assert_eq!(
        value(&layered, "max_body").as_deref(),
        Some("\"1MiB\""),
        "the file"
    );
    assert_eq!(
        value(&layered, "idle_timeout").as_deref(),
        Some("\"7s\""),
        "the environment"
    );
    assert_eq!(
        value(&layered, "listen").as_deref(),
        Some("\"127.0.0.1:7777\""),
        "the flag"
    );
    assert_eq!(
        value(&layered, "trusted_proxies").as_deref(),
        Some("[\"10.0.0.1/32\"]")
    );
    assert_eq!(
        value(&layered, "client_timeout"),
        value(&defaults, "client_timeout"),
        "the default"
    );

    // Every default `--help` names is the one in effect without a file.
    let help = stdout(&env.cmd().args(["serve", "--help"]).output().unwrap());
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut checked = 0;
    // (The data dir and database are set by the test environment, not defaults.)
    for (key, value) in defaults.iter().filter(|(k, _)| !k.starts_with("data")) {
        let Some(value) = value.as_str() else {
            continue;
        };
        let flag = format!("--{} <", key.replace('_', "-"));
        let Some(at) = help.find(&flag) else { continue };
        let text = &help[at..];
        let end = text[2..].find(" --").map_or(text.len(), |i| i + 2);
        assert!(
            text[..end].contains(&format!("[default: {value}]")),
            "{key}: {}",
            &text[..end]
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} defaults found in --help");

    std::fs::write(
        env.dir.path().join("relayapi.toml"),
        "max_body = \"lots\"\n",
    )
    .unwrap();
    fails_with(&env, &["serve", "--print-config"], "max_body (from");
    std::fs::write(env.dir.path().join("relayapi.toml"), "listne = 1\n").unwrap();
    fails_with(&env, &["serve"], "listne");
}

#[test]
fn providers_lists_the_registry() {
    let env = TestEnv::sqlite();
    let v = json(&env.cmd().args(["providers", "--json"]).output().unwrap());
    let anthropic = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "anthropic")
        .unwrap();
    assert_eq!(anthropic["auth"], "x-api-key");
    let table = stdout(&env.cmd().arg("providers").output().unwrap());
    let (header, rows) = parse_table(&table);
    let realtime_of = |name: &str| {
        let row = rows
            .iter()
            .find(|r| cell(&header, r, "provider") == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{table}"));
        cell(&header, row, "realtime (WebSocket)").to_string()
    };
    for (name, realtime) in [
        ("openai", "/v1/realtime"),
        ("azure", "/openai/v1/realtime"),
        (
            "gemini",
            "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        ),
        ("custom", "/v1/realtime"),
        ("anthropic", "-"),
        ("deepseek", "-"),
        ("siliconflow", "-"),
    ] {
        assert_eq!(realtime_of(name), realtime, "{name}");
        let listed = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        assert_eq!(
            listed["realtime"].as_str().unwrap_or("-"),
            realtime,
            "{name}"
        );
    }
    assert_eq!(rows.len(), v.as_array().unwrap().len());
}

/// On SQLite there is no fleet: `relays` says so on stderr and lists nothing, in either
/// form; a pool size of zero is refused.
#[test]
fn relays_on_sqlite_are_an_empty_list_and_a_reason() {
    let env = TestEnv::sqlite();
    let out = env.cmd().args(["relays", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out), serde_json::json!([]));
    assert!(stderr(&out).contains("PostgreSQL only"), "{}", stderr(&out));
    let out = env.cmd().arg("relays").output().unwrap();
    let (header, rows) = parse_table(&stdout(&out));
    assert_eq!(
        header,
        [
            "id",
            "address",
            "version",
            "started",
            "last seen",
            "calls in flight"
        ]
    );
    assert!(rows.is_empty());
    let out = env
        .cmd()
        .args(["relays", "--database-connections", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--database-connections"),
        "{}",
        stderr(&out)
    );
}
