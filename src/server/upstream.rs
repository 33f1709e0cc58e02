//! The client that carries calls to providers: hyper's pooled client over rustls (the
//! platform's roots), HTTP/2 where the provider offers it through ALPN, and the proxy that
//! the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl
//! reads them).
//!
//! Not reqwest: its layers turned each request's URI back into a `Url` twice (its redirect
//! policy, even when off, and the response's `url()`), and with its other per-request work
//! that was ~6 % of the relay's CPU at c64. What the relay used of it is here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
pub use hyper_util::client::legacy::Error as SendError;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::request::json::Spliced;

/// The proxy variables the client reads, in both cases as curl reads them.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("cannot load the platform's TLS roots: {0}")]
    Roots(String),
    /// The variable's value is not shown: a proxy URL may carry a password.
    #[error("{0}: only http:// proxies are supported for upstream calls")]
    UnsupportedProxy(&'static str),
}

/// Sends calls upstream; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<hyper_rustls::HttpsConnector<Connector>, UpstreamBody>,
    /// The connections the client does not pool: realtime sessions' WebSockets.
    connector: Connector,
}

impl UpstreamClient {
    /// A client that gives up connecting after `connect_timeout` and closes connections idle
    /// for 90 s. Fails on a proxy variable that names anything but an http:// proxy.
    pub fn new(connect_timeout: Duration) -> Result<Self, UpstreamSetupError> {
        let proxies = check_proxy_variables(|name| std::env::var(name).ok())?
            .then(|| Arc::new(Matcher::from_env()));
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        // Small SSE writes must not wait for the peer's delayed ACK.
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        use rustls_platform_verifier::ConfigVerifierExt;
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| UpstreamSetupError::Roots(e.to_string()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(Connector {
                tcp: tcp.clone(),
                proxies: proxies.clone(),
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            client,
            connector: Connector { tcp, proxies },
        })
    }

    /// A TCP stream to `destination` (scheme, host and port) for a realtime session's
    /// WebSocket, through the environment's proxy when it names one for the destination:
    /// always by a CONNECT tunnel, since a WebSocket handshake cannot be sent to a proxy in
    /// absolute form.
    pub async fn connect_stream(&self, destination: Uri) -> Result<TcpStream, BoxError> {
        let mut tcp = self.connector.tcp.clone();
        let io = match self.connector.proxy_for(&destination) {
            Some(proxy) => tunnel(&proxy, tcp, destination).await?,
            None => tcp.call(destination).await?,
        };
        Ok(io.into_inner())
    }

    /// Sends a request; the answer comes with its headers, the body still to read.
    pub fn send(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, SendError>> + Send + 'static {
        // Over a plain-HTTP proxy the request itself carries the proxy's credentials (through
        // a tunnel, the CONNECT does).
        if request.uri().scheme() == Some(&Scheme::HTTP)
            && let Some(auth) = self
                .connector
                .proxy_for(request.uri())
                .and_then(|proxy| proxy.basic_auth().cloned())
        {
            request
                .headers_mut()
                .insert(header::PROXY_AUTHORIZATION, auth);
        }
        self.client.request(request)
    }
}

/// Whether the environment names a proxy; an error for one that is not http://.
fn check_proxy_variables(
    read: impl Fn(&str) -> Option<String>,
) -> Result<bool, UpstreamSetupError> {
    let mut named = false;
    for name in PROXY_VARIABLES {
        let Some(value) = read(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        // Like curl, a proxy without a scheme is an http:// one.
        let value = value.trim();
        let scheme = value.split_once("://").map_or("http", |(scheme, _)| scheme);
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UpstreamSetupError::UnsupportedProxy(name));
        }
        named = true;
    }
    Ok(named)
}

/// Connects to the provider, or to the proxy that the environment names for it: through a
/// CONNECT tunnel for HTTPS, or to the proxy itself for plain HTTP (the request then names
/// the whole URL).
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl Connector {
    /// The proxy the environment names for `destination`, if any.
    fn proxy_for(&self, destination: &Uri) -> Option<Intercept> {
        self.proxies.as_ref()?.intercept(destination)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let proxy = self.proxy_for(&destination);
        Box::pin(async move {
            let Some(proxy) = proxy else {
                let io = tcp.call(destination).await?;
                return Ok(Conn {
                    io,
                    via_proxy: false,
                });
            };
            if destination.scheme() == Some(&Scheme::HTTPS) {
                let io = tunnel(&proxy, tcp, destination).await?;
                Ok(Conn {
                    io,
                    via_proxy: false,
                })
            } else {
                let io = tcp.call(proxy.uri().clone()).await?;
                Ok(Conn {
                    io,
                    via_proxy: true,
                })
            }
        })
    }
}

/// A CONNECT tunnel through `proxy` to `destination`, with the proxy's credentials.
async fn tunnel(
    proxy: &Intercept,
    tcp: HttpConnector,
    destination: Uri,
) -> Result<TokioIo<TcpStream>, BoxError> {
    let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
    if let Some(auth) = proxy.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    Ok(tunnel.call(destination).await?)
}

/// A connection to the provider, or to a plain-HTTP proxy (to which requests are sent in
/// absolute form).
pub struct Conn {
    io: TokioIo<TcpStream>,
    via_proxy: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.via_proxy)
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// A request body as the policy phase left it: pieces of the client's body and the parts
/// it rewrote, sent one after the other with their total length, never joined.
pub struct UpstreamBody(Spliced);

impl UpstreamBody {
    pub fn new(body: Spliced) -> Self {
        Self(body)
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut self.get_mut().0;
        if this.pieces.is_empty() {
            return Poll::Ready(None);
        }
        let piece = this.pieces.remove(0);
        this.len -= piece.len();
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::{UpstreamSetupError, check_proxy_variables};

    fn check(vars: &[(&str, &str)]) -> Result<bool, UpstreamSetupError> {
        check_proxy_variables(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn only_plain_http_proxies_are_taken_and_a_refusal_shows_no_credentials() {
        assert!(!check(&[]).unwrap());
        assert!(check(&[("HTTPS_PROXY", "http://user:pw@proxy:3128")]).unwrap());
        assert!(check(&[("https_proxy", "proxy.internal:3128")]).unwrap());
        assert!(!check(&[("HTTP_PROXY", "  ")]).unwrap());
        for (name, value) in [
            ("HTTPS_PROXY", "socks5://user:secret@proxy:1080"),
            ("all_proxy", "https://user:secret@proxy:443"),
        ] {
            let error = check(&[(name, value)]).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with(name), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
