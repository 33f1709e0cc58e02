//! Providers are reached over TLS, and where they speak HTTP/2 (ALPN), streams share
//! connections instead of taking one each; through the proxy the environment names, when it
//! names one. A local TLS upstream with a certificate from a test CA, trusted by the relay
//! through `SSL_CERT_FILE`, and a local forward proxy.

use crate::common;
use common::TEST_KEY as KEY;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::mock::CHAT_JSON;
use common::{ServeProcess, TestEnv, http, issue_async};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

const SSE: &str = "data: {\"n\":1}\n\ndata: [DONE]\n\n";

struct TlsUpstream {
    url: String,
    ca_pem: String,
    connections: Arc<AtomicUsize>,
    versions: Arc<Mutex<Vec<http::Version>>>,
}

async fn tls_upstream() -> TlsUpstream {
    relayapi::server::install_crypto_provider();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let (c, v) = (connections.clone(), versions.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (acceptor, v) = (acceptor.clone(), v.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        v.lock().unwrap().push(request.version());
                        async move {
                            use http_body_util::BodyExt;
                            let body = request.into_body().collect().await?.to_bytes();
                            let streaming =
                                String::from_utf8_lossy(&body).contains("\"stream\":true");
                            let (kind, text) = if streaming {
                                ("text/event-stream", SSE)
                            } else {
                                ("application/json", CHAT_JSON)
                            };
                            Ok::<_, hyper::Error>(
                                http::Response::builder()
                                    .header("content-type", kind)
                                    .body(text.to_string())
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsUpstream {
        url,
        ca_pem: ca_cert.pem(),
        connections,
        versions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_provider_speaking_http2_gets_every_call_on_one_connection() {
    let env = TestEnv::sqlite();
    let upstream = tls_upstream().await;
    let ca_file = env.dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &upstream.ca_pem).unwrap();
    let (_, token) = issue_async(&env, KEY, &["--upstream", &upstream.url]).await;
    let serve =
        ServeProcess::spawn_with(&env, &[], &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]);
    let client = http();
    let call = |body: &'static str| {
        client
            .post(format!("{}/v1/chat/completions", serve.url))
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    // One call opens the connection; the rest, at once, share it.
    let first = call(r#"{"model":"m"}"#).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.unwrap(), CHAT_JSON);
    let answers = futures_util::future::join_all((0..16).map(|i| {
        call(if i % 2 == 0 {
            r#"{"model":"m"}"#
        } else {
            r#"{"model":"m","stream":true}"#
        })
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        let text = answer.text().await.unwrap();
        assert_eq!(text, if i % 2 == 0 { CHAT_JSON } else { SSE });
    }
    let versions = upstream.versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 17);
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    assert!(serve.stop().success());
}

/// A forward proxy on 127.0.0.1 that records the head of every request it gets: a CONNECT
/// opens a tunnel to the address it names; any other request (in absolute form, as sent to
/// a plain-HTTP proxy) is answered here with a chat completion.
struct ForwardProxy {
    address: String,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn forward_proxy() -> ForwardProxy {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut read = Vec::new();
                let end = loop {
                    let mut chunk = [0u8; 4096];
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read.extend_from_slice(&chunk[..n]);
                    if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&read[..end]).to_string();
                seen.lock().unwrap().push(head.clone());
                if let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                {
                    let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                    client
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while read.len() < end + length {
                    let mut chunk = [0u8; 4096];
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{CHAT_JSON}",
                    CHAT_JSON.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
            });
        }
    });
    ForwardProxy { address, heads }
}

impl ForwardProxy {
    /// The proxy got one request: a CONNECT to `target`, with the credentials of the proxy
    /// URL the tests give (`relay:s3cret`), and nothing of the API key.
    fn saw_one_tunnel_to(&self, target: &str) {
        let heads = self.heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
            "{heads:?}"
        );
        assert_eq!(
            header_in(&heads[0], "proxy-authorization"),
            Some("Basic cmVsYXk6czNjcmV0")
        );
        assert!(!heads[0].contains(KEY));
    }
}

/// A header's value in a recorded request head.
fn header_in<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_a_tls_provider_through_the_https_proxy_tunnel_unless_no_proxy_names_it() {
    let env = TestEnv::sqlite();
    let upstream = tls_upstream().await;
    let proxy = forward_proxy().await;
    let ca_file = env.dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &upstream.ca_pem).unwrap();
    let (_, token) = issue_async(&env, KEY, &["--upstream", &upstream.url]).await;
    let proxy_url = format!("http://relay:s3cret@{}", proxy.address);
    let ca = ca_file.to_str().unwrap();
    let call = |url: String| {
        let token = token.clone();
        async move {
            let answer = http()
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&token)
                .body(r#"{"model":"m"}"#)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };

    let serve = ServeProcess::spawn_with(
        &env,
        &[],
        &[("SSL_CERT_FILE", ca), ("HTTPS_PROXY", &proxy_url)],
    );
    assert_eq!(call(serve.url.clone()).await, (200, CHAT_JSON.to_string()));
    proxy.saw_one_tunnel_to(upstream.url.trim_start_matches("https://"));
    // The tunnel carried TLS: the provider saw the call.
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    assert!(serve.stop().success());

    let serve = ServeProcess::spawn_with(
        &env,
        &[],
        &[
            ("SSL_CERT_FILE", ca),
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", "127.0.0.1"),
        ],
    );
    assert_eq!(call(serve.url.clone()).await, (200, CHAT_JSON.to_string()));
    assert_eq!(
        proxy.heads.lock().unwrap().len(),
        1,
        "NO_PROXY went around it"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    assert!(serve.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_provider_is_called_through_the_http_proxy_with_the_whole_url() {
    let env = TestEnv::sqlite();
    let proxy = forward_proxy().await;
    // Nothing listens there: only the proxy can answer.
    let provider = "http://127.0.0.1:9";
    let (_, token) = issue_async(&env, KEY, &["--upstream", provider]).await;
    let proxy_url = format!("http://relay:s3cret@{}", proxy.address);
    let serve = ServeProcess::spawn_with(&env, &[], &[("HTTP_PROXY", &proxy_url)]);
    let answer = http()
        .post(format!("{}/v1/chat/completions?x=1", serve.url))
        .bearer_auth(&token)
        .body(r#"{"model":"m"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), CHAT_JSON);
    let heads = proxy.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with("POST http://127.0.0.1:9/v1/chat/completions?x=1 HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert_eq!(
        header_in(&heads[0], "proxy-authorization"),
        Some("Basic cmVsYXk6czNjcmV0")
    );
    assert_eq!(
        header_in(&heads[0], "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(serve.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realtime_session_reaches_its_provider_through_the_proxy_tunnel() {
    use common::realtime_mock::{RealtimeMock, next_event, ws_connect};
    let env = TestEnv::sqlite();
    let proxy = forward_proxy().await;
    let upstream = RealtimeMock::start().await;
    let (_, token) = issue_async(&env, KEY, &["--upstream", &upstream.url]).await;
    let proxy_url = format!("http://relay:s3cret@{}", proxy.address);
    let serve = ServeProcess::spawn_with(&env, &[], &[("HTTP_PROXY", &proxy_url)]);
    let bearer = format!("Bearer {token}");
    let (mut ws, _) = ws_connect(
        &serve.url,
        "/v1/realtime?model=gpt-realtime",
        &[("authorization", &bearer)],
    )
    .await
    .expect("the session opens");
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    // A WebSocket handshake cannot be sent to a proxy in absolute form: it went through a
    // tunnel, with the key only inside it.
    proxy.saw_one_tunnel_to(upstream.url.trim_start_matches("http://"));
    assert_eq!(upstream.handshakes().len(), 1);
    drop(ws);
    assert!(serve.stop().success());
}

#[test]
fn a_proxy_the_relay_cannot_use_stops_serve_at_start_without_showing_its_password() {
    let env = TestEnv::sqlite();
    let out = env
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HTTPS_PROXY", "socks5://relay:s3cret@127.0.0.1:1080")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("HTTPS_PROXY: only http:// proxies are supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
