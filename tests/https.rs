//! HTTPS served by the relay itself (`serve --tls-cert --tls-key`): HTTP/2 where the client
//! chooses it by ALPN, HTTP/1.1 otherwise (WebSockets included), the certificate reloaded
//! on SIGHUP, bad files refused at start. Certificates come from throwaway CAs made here.

use crate::common;
use common::TEST_KEY as KEY;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::certs::{Certs, certs};
use common::mock::{CHAT_JSON, MockUpstream};
use common::realtime_mock::{RealtimeMock, next_event};
use common::{ServeProcess, TestEnv, cli_async, issue_async};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Writes the certificate and key where `serve` reads them: (cert path, key path).
fn install(env: &TestEnv, certs: &Certs) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        env.dir.path().join("cert.pem"),
        env.dir.path().join("key.pem"),
    );
    std::fs::write(&cert, &certs.cert_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    (cert, key)
}

/// A client that trusts only `ca`; HTTP/1.1 only when asked.
fn client(ca: &str, http1_only: bool) -> reqwest::Client {
    relayapi::server::install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(std::time::Duration::from_secs(10));
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().unwrap()
}

fn serve_tls(env: &TestEnv, cert: &Path, key: &Path) -> ServeProcess {
    ServeProcess::spawn_with(
        env,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--admin-token-env",
            "ADMIN",
        ],
        &[("RELAYAPI_LOG", "info"), ("ADMIN", ADMIN_SECRET)],
    )
}

const ADMIN_SECRET: &str = "admin-secret-for-the-https-tests-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http2_and_http1_and_carries_websockets() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let realtime = RealtimeMock::start().await;
    let (_, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let (_, session_token) = issue_async(&env, KEY, &["--upstream", &realtime.url]).await;
    let certs = certs();
    let (cert, key) = install(&env, &certs);
    let serve = serve_tls(&env, &cert, &key);
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let chat = format!("{}/v1/chat/completions", serve.url);

    for (http1_only, version) in [
        (false, http::Version::HTTP_2),
        (true, http::Version::HTTP_11),
    ] {
        let client = client(&certs.ca_pem, http1_only);
        let answer = client
            .post(&chat)
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.version(), version);
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), CHAT_JSON);
        // A refusal, and a preflight, read the same way over either.
        let refused = client
            .post(&chat)
            .bearer_auth("rly_nope")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (refused.version(), refused.status().as_u16()),
            (version, 401)
        );
        let preflight = client
            .request(reqwest::Method::OPTIONS, &chat)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.version(), version);
        assert!(preflight.status().is_success());
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
    }
    // The admin API, over HTTP/2 too.
    let tokens = client(&certs.ca_pem, false)
        .get(format!("{}/admin/v1/tokens", serve.url))
        .bearer_auth(ADMIN_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (tokens.version(), tokens.status().as_u16()),
        (http::Version::HTTP_2, 200)
    );
    let listed: serde_json::Value = serde_json::from_slice(&tokens.bytes().await.unwrap()).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Nothing but TLS on that port.
    let plain = common::http()
        .post(chat.replace("https://", "http://"))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");

    // A realtime session over wss:// (an HTTP/1.1 upgrade inside TLS).
    let addr = serve.url.trim_start_matches("https://").to_string();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let ca =
        tokio_rustls::rustls::pki_types::CertificateDer::from_pem_slice(certs.ca_pem.as_bytes());
    roots.add(ca.unwrap()).unwrap();
    let mut tls = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut request = format!("wss://{addr}/v1/realtime?model=gpt-realtime")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {session_token}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    ws.close(None).await.unwrap();
    assert!(serve.stop().success());
}

use tokio_rustls::rustls::pki_types::pem::PemObject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_reloaded_on_sighup_and_a_bad_one_never_replaces_it() {
    let env = TestEnv::sqlite();
    let mock = MockUpstream::start().await;
    let (_, token) = issue_async(&env, KEY, &["--upstream", &mock.url]).await;
    let (first, second) = (certs(), certs());
    let (cert, key) = install(&env, &first);
    let serve = serve_tls(&env, &cert, &key);
    let chat = format!("{}/v1/chat/completions", serve.url);
    let call = async |client: &reqwest::Client| {
        client
            .post(&chat)
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .map(|r| r.status())
    };
    // A connection made under the first certificate, kept open across the reload.
    let kept = client(&first.ca_pem, false);
    assert_eq!(call(&kept).await.unwrap(), 200);

    install(&env, &second);
    serve.signal("HUP");
    let reloaded = serve.line_containing("TLS certificate reloaded");
    assert!(!reloaded.is_empty());
    assert_eq!(call(&client(&second.ca_pem, false)).await.unwrap(), 200);
    assert!(
        call(&client(&first.ca_pem, false)).await.is_err(),
        "the old certificate is gone"
    );
    assert_eq!(
        call(&kept).await.unwrap(),
        200,
        "an open connection was dropped"
    );

    // A broken renewal: the certificate in use stays, and the log says why.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    serve.signal("HUP");
    let failed = serve.line_containing("TLS certificate reload failed");
    assert!(failed.contains("--tls-cert"), "{failed}");
    assert_eq!(call(&client(&second.ca_pem, false)).await.unwrap(), 200);
    assert!(serve.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_fail_at_start_with_one_clear_line() {
    let env = TestEnv::sqlite();
    let (good, other) = (certs(), certs());
    let (cert, key) = install(&env, &good);
    let other_key = env.dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let missing = env.dir.path().join("missing.pem");
    let (cert, key, other_key, missing) = (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
        other_key.to_str().unwrap().to_string(),
        missing.to_str().unwrap().to_string(),
    );
    for (args, expected) in [
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "--tls-cert",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &missing],
            "--tls-key",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            "does not belong",
        ),
        (vec!["--tls-cert", &key, "--tls-key", &key], "--tls-cert"),
        (vec!["--tls-cert", &cert], "--tls-key"),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend(args.iter().copied());
        let out = cli_async(&env, &all).await;
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.iter().any(|l| l.contains(expected)),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("BEGIN"),
            "a PEM file's contents were printed: {err}"
        );
    }
}
