//! Accepting connections: our own loop over hyper (rather than `warp::serve`) so that each
//! socket gets TCP_NODELAY (small SSE writes must not wait for the peer's delayed ACK), the
//! client's address travels with the request, a slow client cannot hold a connection
//! forever while sending headers, and a stop drains in-flight requests for a bounded time.
//! With TLS, ALPN decides between HTTP/2 and HTTP/1.1 (which carries WebSocket upgrades).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower_service::Service;
use warp::Filter;
use warp::reply::Response;

/// What answers a listener's requests.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Response> + Send + use<Self>;
}

/// A warp filter that answers every request (its rejections recovered into answers).
pub trait Routes:
    Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
}

impl<F> Routes for F where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
}

/// A warp filter as a handler: the metrics and admin listeners, and the main listener's
/// routes other than the relay (`server::Router`).
#[derive(Clone)]
pub struct Filtered<F>(pub F);

impl<F: Routes> Handler for Filtered<F> {
    fn handle(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Response> + Send + use<F> {
        self.call(request)
    }
}

impl<F: Routes> Filtered<F> {
    /// Answers one request through the filter.
    pub fn call<B>(
        &self,
        request: hyper::Request<B>,
    ) -> impl Future<Output = Response> + Send + use<F, B>
    where
        B: http_body::Body + Send + Sync + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let answer = warp::service(self.0.clone()).call(request);
        futures_util::FutureExt::map(answer, |answer| {
            answer.unwrap_or_else(|never| match never {})
        })
    }
}

/// The client's address, in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// HTTP/2's limits per connection: enough streams for a page's parallel calls, a header
/// list as large as any SDK sends, windows that keep a long stream moving without letting
/// one connection buffer without bound, and a cap on streams a client opens and resets at
/// once (the "rapid reset" attack).
const H2_MAX_STREAMS: u32 = 256;
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
const H2_MAX_PENDING_RESETS: usize = 20;

/// Serves `handler` on `listener` until `shutdown`; then stops accepting and gives open
/// connections up to the grace period to finish. Returns whether they all finished in time.
/// A client gets `client_timeout` to send a request's headers (its body is bounded by the
/// handler that reads it), and as long again for a TLS handshake.
pub async fn serve<H: Handler>(
    handler: H,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    config: &super::ServeConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> bool {
    // Set at the stop; each connection holds a receiver, so the sender sees the last one
    // end. (hyper-util's GracefulShutdown cannot watch a connection that allows upgrades.)
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(config.client_timeout);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .keep_alive_interval(Duration::from_secs(30));
    let handshake_timeout = config.client_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let per_request =
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                futures_util::FutureExt::map(handler.handle(request), Ok::<_, Infallible>)
            });
        let stop = stop_rx.clone();
        let Some(tls) = tls.clone() else {
            // Plain HTTP/1.1, as browsers and SDKs speak it over TCP. hyper-util's
            // version-sniffing builder read the first 24 bytes on their own, and that short
            // first read made hyper double every connection's read buffer to 16 KiB.
            // Upgrades on: realtime sessions are WebSockets.
            let connection = h1
                .serve_connection(TokioIo::new(stream), per_request)
                .with_upgrades();
            tokio::spawn(drive(Box::pin(connection), |c| c.graceful_shutdown(), stop));
            continue;
        };
        let (h1, h2) = (h1.clone(), h2.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                let connection = h2.serve_connection(TokioIo::new(stream), per_request);
                drive(Box::pin(connection), |c| c.graceful_shutdown(), stop).await;
            } else {
                let connection = h1
                    .serve_connection(TokioIo::new(stream), per_request)
                    .with_upgrades();
                drive(Box::pin(connection), |c| c.graceful_shutdown(), stop).await;
            }
        });
    }
    drop(listener);
    drop(stop_rx);
    stopping.send_replace(true);
    tokio::time::timeout(config.grace_period, stopping.closed())
        .await
        .is_ok()
}

/// Runs one connection until it ends; when the stop comes, asks it to finish what it is
/// doing and close. Boxed, so that the task's future holds a pointer to the connection
/// rather than the connection twice (as its capture and as the future it awaits).
async fn drive<C>(
    mut connection: Pin<Box<C>>,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
            graceful_shutdown(connection.as_mut());
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
