//! The admin HTTP API against the real server, store and mock upstream.

use crate::common;
use common::TEST_KEY as KEY;

use std::sync::Arc;

use common::mock::MockUpstream;
use common::{TestEnv, TestRelay, cli_async, http, issue_async};
use relayapi::secret::SecretString;
use relayapi::server::ServeConfig;
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret-0123456789abcdef-XYZ";

fn admin_config() -> ServeConfig {
    ServeConfig {
        admin_secret: Some(Arc::new(SecretString::new(ADMIN))),
        admin_route: true,
        ..ServeConfig::default()
    }
}

async fn call(
    method: reqwest::Method,
    url: String,
    secret: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http().request(method, url);
    if let Some(s) = secret {
        r = r.bearer_auth(s);
    }
    if let Some(b) = body {
        r = r.json_body(&b);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains(ADMIN), "a response holds the admin secret");
    assert!(!text.contains(KEY), "a response holds the API key");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_through_the_admin_api() {
    use reqwest::Method;
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, admin_config()).await;
    let base = format!("{}/admin/v1", relay.url);

    // Authentication.
    for secret in [None, Some("wrong"), Some(&ADMIN[..ADMIN.len() - 1])] {
        let (s, v) = call(Method::GET, format!("{base}/tokens"), secret, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("invalid_admin_token")),
            "{secret:?}"
        );
    }

    // Issue.
    let (s, issued) = call(
        Method::POST,
        format!("{base}/tokens"),
        Some(ADMIN),
        Some(json!({"upstream": mock.url, "api_key": KEY, "name": "web session", "max_calls": 5,
                    "expires_in": "10m", "models": ["gpt-4o*"], "origins": ["https://app.example.com"]})),
    )
    .await;
    assert_eq!(s, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_string();
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rly_"));
    assert_eq!(issued["status"], "active");
    assert_eq!(issued["max_calls"], 5);

    // The token works on the relay, with the real key upstream.
    let r = http()
        .post(format!("{}/v1/chat/completions", relay.url))
        .bearer_auth(&token)
        .header("origin", "https://app.example.com")
        .body(r#"{"model":"gpt-4o-mini"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );

    // The CLI sees the same store.
    let out = cli_async(&env, &["token", "show", &id, "--json"]).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["name"], "web session");
    assert_eq!(shown["used_calls"], 1);

    // Validation: one field-level message in the relay's error shape.
    let bad = [
        (json!({"api_key": KEY, "ips": ["10.0.0.0/99"]}), "ip"),
        (json!({"api_key": KEY, "provider": "nope"}), "provider"),
        (json!({"api_key": KEY, "max_calls": 0}), "max_calls"),
        (json!({"api_key": KEY, "expires_in": "soon"}), "expires_in"),
        (json!({"api_key": KEY, "colour": "blue"}), "body"),
        (json!({"provider": "openai"}), "body"),
        (json!({"api_key": ""}), "api_key"),
    ];
    for (body, param) in bad {
        let (s, v) = call(
            Method::POST,
            format!("{base}/tokens"),
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(v["error"]["code"], "invalid_request", "{body}");
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
    }

    // List and show.
    let (s, list) = call(Method::GET, format!("{base}/tokens"), Some(ADMIN), None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let (s, one) = call(
        Method::GET,
        format!("{base}/tokens/{}", &id[..8]),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, one["id"].as_str()), (200, Some(id.as_str())));
    let (s, v) = call(
        Method::GET,
        format!("{base}/tokens/0123456789"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("token_not_found"))
    );

    // Update: effective at once in this process.
    let (s, updated) = call(
        Method::PATCH,
        format!("{base}/tokens/{id}"),
        Some(ADMIN),
        Some(json!({"models": ["o3"], "origins": [], "max_calls": null, "name": "renamed"})),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["policy"]["models"], json!(["o3"]));
    assert!(updated["max_calls"].is_null());
    assert_eq!(updated["name"], "renamed");
    let model_call = |model: &'static str| {
        http()
            .post(format!("{}/v1/chat/completions", relay.url))
            .bearer_auth(&token)
            .body(format!(r#"{{"model":"{model}"}}"#))
            .send()
    };
    assert_eq!(model_call("gpt-4o-mini").await.unwrap().status(), 403);
    assert_eq!(model_call("o3").await.unwrap().status(), 200);

    // Usage.
    let (s, usage) = call(
        Method::GET,
        format!("{base}/usage?by=model"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let mut waited = 0;
    let mut usage = usage;
    while usage.as_array().map_or(0, |a| a.len()) < 2 && waited < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
        usage = call(
            Method::GET,
            format!("{base}/usage?by=model"),
            Some(ADMIN),
            None,
        )
        .await
        .1;
    }
    let models: Vec<&str> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"o3") && models.contains(&"gpt-4o-mini"),
        "{usage}"
    );
    let (s, v) = call(
        Method::GET,
        format!("{base}/usage?by=week"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("by")));

    // Revoke: refused at once by this process.
    let (s, revoked) = call(
        Method::DELETE,
        format!("{base}/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, revoked["status"].as_str()), (200, Some("revoked")));
    let r = model_call("o3").await.unwrap();
    assert_eq!(r.status(), 401);
    let (s, v) = call(Method::GET, format!("{base}/nothing"), Some(ADMIN), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));

    // Every listed route is served (the OpenAPI test checks the list against the document).
    for (method, path) in relayapi::server::admin::ROUTES {
        let url = format!("{}{}", relay.url, path.replace("{id}", &id));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
        let (_, v) = call(method.clone(), url, Some(ADMIN), body).await;
        assert_ne!(
            v["error"]["code"], "not_found",
            "{method} {path} is not served"
        );
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_admin_client() {
    use relayapi::sdk::{AdminClient, SdkError};
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let relay = TestRelay::start(&env, admin_config()).await;
    let admin = AdminClient::new(&relay.url, SecretString::new(ADMIN)).unwrap();
    assert!(!format!("{admin:?}").contains(ADMIN));
    let issued = admin
        .issue(&json!({"api_key": KEY, "upstream": mock.url, "max_calls": 2}))
        .await
        .unwrap();
    let id = issued["id"].as_str().unwrap();
    assert_eq!(admin.get(id).await.unwrap()["max_calls"], 2);
    assert_eq!(
        admin.update(id, &json!({"max_calls": 3})).await.unwrap()["max_calls"],
        3
    );
    assert_eq!(
        admin.list(false).await.unwrap().as_array().unwrap().len(),
        1
    );
    assert_eq!(admin.revoke(id).await.unwrap()["status"], "revoked");
    assert!(admin.usage("by=day").await.unwrap().is_array());
    match admin.issue(&json!({"api_key": KEY, "rpm": 0})).await {
        Err(SdkError::Admin {
            status: 400, param, ..
        }) => assert_eq!(param.as_deref(), Some("rpm")),
        other => panic!("expected a 400, got {other:?}"),
    }
    let wrong = AdminClient::new(&relay.url, SecretString::new("nope")).unwrap();
    assert!(matches!(
        wrong.list(true).await,
        Err(SdkError::Admin { status: 401, .. })
    ));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_there_is_no_admin_api() {
    let env = TestEnv::sqlite();
    let (_, _token) = issue_async(&env, KEY, &["--upstream", "http://127.0.0.1:9"]).await;
    let relay = TestRelay::start(&env, ServeConfig::default()).await;
    let r = http()
        .get(format!("{}/admin/v1/tokens", relay.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_ne!(status, 200);
    assert!(!body.contains("rly_") && !body.contains("\"id\""), "{body}");
    relay.stop().await;
}

/// docs/openapi.yaml describes exactly the routes the server has.
#[test]
fn the_openapi_document_matches_the_routes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    let mut in_paths = false;
    let mut current = None;
    for line in doc.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.is_empty() {
            in_paths = false;
        }
        if !in_paths {
            continue;
        }
        if let Some(path) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            current = Some(format!("/{path}"));
        } else if let Some(method) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "post", "patch", "delete", "put"].contains(&method)
        {
            documented.insert((method.to_string(), current.clone().unwrap()));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = relayapi::server::admin::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}
