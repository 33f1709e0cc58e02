//! Providers are reached over TLS, and where they speak HTTP/2 (ALPN), streams share
//! connections instead of taking one each. A local TLS upstream with a certificate from a
//! test CA, trusted by the relay through `SSL_CERT_FILE`.

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
