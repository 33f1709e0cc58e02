//! The relay server (warp): routes, state, start and graceful stop.

pub mod admin;
mod body;
mod cors;
pub mod counter;
pub mod errors;
pub mod fleet;
pub mod forward;
pub mod limits;
pub mod listener;
pub mod metrics;
mod proxy;
mod realtime;
pub mod tls;
pub mod tokens;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use warp::Filter;
use warp::http::{HeaderMap, Method};
use warp::reply::{Reply, Response};

use crate::crypto::KeyRing;
use crate::secret::SecretString;
use crate::store::Store;
use crate::usage::UsageSink;
use counter::CallCounter;
use errors::ApiError;
use limits::Limiter;
use metrics::Metrics;
use tokens::TokenCache;

/// Settings of a running relay.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// Most memory the bodies of all requests in flight may hold together, in bytes.
    pub max_body_memory: u64,
    /// Time to connect to the upstream.
    pub connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers.
    pub upstream_timeout: Duration,
    /// Longest pause between two chunks of a response body.
    pub idle_timeout: Duration,
    /// Time a client has to send a request's headers, and again its body.
    pub client_timeout: Duration,
    /// How long in-flight requests may run after a stop signal.
    pub grace_period: Duration,
    /// The longest life of a realtime client secret minted through the relay (never past
    /// the token's own expiry).
    pub client_secret_lifetime: Duration,
    /// The largest WebSocket message a realtime session relays, in bytes.
    pub max_message: u64,
    /// The longest a realtime session may stay open.
    pub max_session: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve `/metrics` on the main listener.
    pub metrics_route: bool,
    /// Capacity of the usage queue.
    pub usage_queue: usize,
    /// The admin API's secret; without one there is no admin API.
    pub admin_secret: Option<Arc<SecretString>>,
    /// Serve the admin API on the main listener (rather than its own).
    pub admin_route: bool,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) on the main listener with this certificate.
    pub tls: Option<Arc<tls::ReloadableCert>>,
    /// The key ring's directory, read again when a rotation is announced.
    pub keys_dir: Option<std::path::PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_body: 32 * 1024 * 1024,
            max_body_memory: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            client_timeout: Duration::from_secs(30),
            grace_period: Duration::from_secs(30),
            client_secret_lifetime: Duration::from_secs(600),
            // Audio arrives as base64 in large frames.
            max_message: 16 * 1024 * 1024,
            // As long as OpenAI's own longest realtime session.
            max_session: Duration::from_secs(60 * 60),
            trusted_proxies: Vec::new(),
            metrics_route: false,
            usage_queue: crate::usage::QUEUE_CAPACITY,
            admin_secret: None,
            admin_route: false,
            tls: None,
            keys_dir: None,
        }
    }
}

pub struct AppState {
    pub config: ServeConfig,
    pub store: Store,
    pub tokens: TokenCache,
    pub counter: Arc<CallCounter>,
    pub limiter: Limiter,
    /// On PostgreSQL: limits held for every relay on the database together.
    pub fleet: Option<Arc<fleet::Fleet>>,
    pub usage: Arc<UsageSink>,
    pub metrics: Arc<Metrics>,
    pub client: upstream::UpstreamClient,
    /// The memory request bodies may hold, in KiB (see `proxy::read_body`).
    pub body_memory: Arc<tokio::sync::Semaphore>,
    /// Set when the relay stops: open realtime sessions close. Each session holds a
    /// receiver, so the sender sees when the last one has ended.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// TLS for realtime sessions' upstream connections, made on first use.
    realtime_tls: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl AppState {
    /// Builds the state; starts the usage writer, so it must run inside a Tokio runtime.
    pub fn new(
        config: ServeConfig,
        store: Store,
        ring: KeyRing,
    ) -> Result<Self, upstream::UpstreamSetupError> {
        install_crypto_provider();
        let client = upstream::UpstreamClient::new(config.connect_timeout)?;
        let metrics = Arc::new(Metrics::default());
        Ok(Self {
            tokens: TokenCache::new(Arc::new(ring), store.clone()),
            counter: Arc::new(CallCounter::new(store.clone())),
            limiter: Limiter::default(),
            fleet: store
                .is_postgres()
                .then(|| fleet::Fleet::new(store.clone(), metrics.clone())),
            usage: UsageSink::start(store.clone(), config.usage_queue),
            metrics,
            body_memory: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(config.max_body_memory / 1024)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            store,
            client,
            config,
            stopping: tokio::sync::watch::Sender::new(false),
            realtime_tls: std::sync::OnceLock::new(),
        })
    }

    /// The TLS client for realtime upstreams: the platform's roots (as calls use), and
    /// HTTP/1.1 only, which a WebSocket handshake needs.
    fn realtime_tls(&self) -> Result<&tokio_rustls::TlsConnector, &str> {
        self.realtime_tls
            .get_or_init(|| {
                use rustls_platform_verifier::ConfigVerifierExt;
                let mut config =
                    rustls::ClientConfig::with_platform_verifier().map_err(|e| e.to_string())?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// rustls is built without a default crypto backend: the relay picks ring, as the SDK
/// does.
pub use relayapi_sdk::install_crypto_provider;

/// All routes: health checks, CORS preflights, and the relay for everything else.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get().or(warp::head()).unify())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let ready_state = state.clone();
    let readyz = warp::path!("readyz")
        .and(warp::get().or(warp::head()).unify())
        .then(move || {
            let state = ready_state.clone();
            async move {
                // Boxed: sqlx's pool acquire makes `ping` a ~14 KiB future, and inline it
                // would size the router's future, of which hyper keeps one per connection.
                match Box::pin(state.store.ping()).await {
                    Ok(()) => {
                        warp::reply::json(&serde_json::json!({"status": "ready"})).into_response()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "readiness check failed");
                        ApiError::StoreUnavailable.into_response()
                    }
                }
            }
        });
    let metrics_route = enabled_only(state.config.metrics_route).and(metrics_filter(state.clone()));
    // Without a secret (or when it has its own listener) the admin filter refuses every
    // request, so `/admin/...` reaches the relay like any path and is refused there.
    let admin_secret = state
        .config
        .admin_secret
        .clone()
        .filter(|_| state.config.admin_route);
    let admin = enabled_only(admin_secret.is_some()).and(admin::routes(
        state.clone(),
        admin_secret.unwrap_or_else(|| Arc::new(SecretString::default())),
    ));
    let preflight = warp::options()
        .and(warp::header::headers_cloned())
        .map(|headers: HeaderMap| cors::preflight(&headers));
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    // Reached only by requests the router sends here: those under another route's path
    // that this route did not take (`/admin/...` without an admin API, say).
    let relay = warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<listener::PeerAddr>())
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: Option<String>,
                  headers: HeaderMap,
                  peer: Option<listener::PeerAddr>,
                  upgrade: Option<hyper::upgrade::OnUpgrade>,
                  body| {
                let state = state.clone();
                let incoming = proxy::Incoming {
                    method,
                    path: path.as_str().to_string(),
                    query,
                    headers,
                    peer: peer.map(|p| p.0),
                    upgrade,
                };
                async move { proxy::handle(state, incoming, Box::pin(body)).await }
            },
        );
    healthz
        .or(readyz)
        .unify()
        .or(metrics_route)
        .unify()
        .or(admin)
        .unify()
        .or(preflight)
        .unify()
        .or(relay)
        .unify()
        .recover(|_| async {
            Ok::<_, std::convert::Infallible>(ApiError::NotFound.into_response())
        })
        .unify()
}

/// The main listener's handler. A request that can only be the relay's (the great
/// majority) goes to it directly: its header map is moved, not cloned, and it skips warp's
/// chain of routes, which every relayed call used to walk to its end. The rest (health,
/// metrics, admin, preflights) go through [`routes`], which still ends in the relay.
#[derive(Clone)]
pub struct Router<F> {
    state: Arc<AppState>,
    filtered: listener::Filtered<F>,
}

/// The main listener's router for `state`.
pub fn router(state: Arc<AppState>) -> Router<impl listener::Routes> {
    Router {
        filtered: listener::Filtered(routes(state.clone())),
        state,
    }
}

impl<F: listener::Routes> Router<F> {
    /// Answers one request.
    pub fn call<B>(
        &self,
        request: http::Request<B>,
    ) -> impl Future<Output = Response> + Send + use<F, B>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        use futures_util::future::Either;
        if may_be_filtered(request.method(), request.uri().path()) {
            return Either::Left(self.filtered.call(request));
        }
        let (mut parts, body) = request.into_parts();
        let incoming = proxy::Incoming {
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            peer: parts.extensions.get::<listener::PeerAddr>().map(|p| p.0),
            upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
            method: parts.method,
            headers: parts.headers,
        };
        let body = http_body_util::BodyDataStream::new(body);
        Either::Right(proxy::handle(self.state.clone(), incoming, body))
    }
}

impl<F: listener::Routes> listener::Handler for Router<F> {
    fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Response> + Send + use<F> {
        self.call(request)
    }
}

/// Whether a request might be for a route other than the relay: every preflight, and
/// every path whose first segment names one (a superset: what warp's routes do not take
/// still reaches the relay at the end of their chain).
fn may_be_filtered(method: &Method, path: &str) -> bool {
    if method == Method::OPTIONS {
        return true;
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "healthz" | "readyz" | "metrics" | "admin")
}

/// Passes when `enabled`, rejects as not found otherwise: a route that is switched off
/// costs nothing and lets the request fall through.
fn enabled_only(enabled: bool) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::any()
        .and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

/// `GET /metrics`: Prometheus text.
pub fn metrics_filter(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).map(move || {
        let text = state.metrics.render(
            state.usage.depth(),
            state.usage.dropped(),
            state.store.inline_count_stats(),
        );
        warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
    })
}

async fn not_found(_: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    Ok(ApiError::NotFound.into_response())
}

/// Serves only `/metrics` on its own listener (`--metrics-listen`), until `shutdown`.
pub async fn run_metrics(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = metrics_filter(state.clone()).recover(not_found).unify();
    serve_only(routes, &state, listener, shutdown).await;
}

/// Serves only the admin API on its own listener (`--admin-listen`), until `shutdown`.
pub async fn run_admin(
    state: Arc<AppState>,
    secret: Arc<SecretString>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = admin::routes(state.clone(), secret)
        .recover(not_found)
        .unify();
    serve_only(routes, &state, listener, shutdown).await;
}

/// Serves one side listener's routes (plain HTTP) until `shutdown`.
async fn serve_only(
    routes: impl listener::Routes,
    state: &AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = listener::Filtered(routes);
    listener::serve(routes, listener, shutdown, &state.config, None).await;
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
/// up to the grace period and writes the last usage records.
pub async fn run(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let counter = state.counter.spawn_writer();
    let maintenance = state.store.spawn_maintenance();
    let fleet = state.fleet.as_ref().map(|fleet| {
        let (releases, others) = fleet.spawn(state.clone(), advertised_address(&listener));
        (fleet.clone(), releases, others)
    });
    let grace = state.config.grace_period;
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        // Realtime sessions close (with a reason) while requests drain.
        stopping.stopping.send_replace(true);
    };
    let tls = state.config.tls.as_ref().map(|cert| cert.server_config());
    let drained = listener::serve(
        router(state.clone()),
        listener,
        shutdown,
        &state.config,
        tls,
    )
    .await;
    // Told to close when the stop began, sessions have mostly ended by now.
    let sessions_closed = tokio::time::timeout(grace, state.stopping.closed())
        .await
        .is_ok();
    if !drained || !sessions_closed {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "grace period over; closing the remaining connections"
        );
    }
    counter.abort();
    maintenance.abort();
    if let Some((fleet, releases, others)) = fleet {
        others.iter().for_each(|task| task.abort());
        fleet.leave(releases).await;
    }
    state.usage.flush_and_stop().await;
}

/// How other relays and `relayapi relays` name this one: its listening address, with the
/// host's name in place of an unspecified IP.
fn advertised_address(listener: &tokio::net::TcpListener) -> String {
    let Ok(addr) = listener.local_addr() else {
        return String::new();
    };
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| addr.ip().to_string());
    format!("{host}:{}", addr.port())
}
