//! Accepting connections: our own loop over hyper (rather than `warp::serve`) so that each
//! socket gets TCP_NODELAY (small SSE writes must not wait for the peer's delayed ACK), the
//! client's address travels with the request, a slow client cannot hold a connection
//! forever while sending headers, and a stop drains in-flight requests for a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service;
use warp::Filter;
use warp::reply::Response;

/// The client's address, in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `filter` on `listener` until `shutdown`; then stops accepting and gives open
/// connections up to the grace period to finish. Returns whether they all finished in time.
/// A client gets `client_timeout` to send a request's headers (its body is bounded by the
/// handler that reads it).
pub async fn serve<F>(
    filter: F,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    config: &super::ServeConfig,
) -> bool
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let service = warp::service(filter);
    // Set at the stop; each connection holds a receiver, so the sender sees the last one
    // end. (hyper-util's GracefulShutdown cannot watch a connection that allows upgrades.)
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
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
        let service = service.clone();
        let per_request =
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                let mut service = service.clone();
                async move {
                    Ok::<_, Infallible>(
                        service
                            .call(request)
                            .await
                            .unwrap_or_else(|never| match never {}),
                    )
                }
            });
        // HTTP/1.1 only, as browsers and SDKs speak it over plain TCP (TLS and HTTP/2 end
        // at the proxy in front). hyper-util's version-sniffing builder read the first 24
        // bytes on their own, and that short first read made hyper double every
        // connection's read buffer to 16 KiB. Upgrades on: realtime sessions are
        // WebSockets.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(config.client_timeout)
            .serve_connection(TokioIo::new(stream), per_request)
            .with_upgrades();
        // Boxed, so that the task's future holds a pointer to the connection rather than
        // the connection twice (as its capture and as the future it awaits).
        let mut connection = Box::pin(connection);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
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
