//! Realtime WebSocket sessions: OpenAI Realtime (and Azure's), Gemini Live.
//!
//! The handshake is a call like any other. The same phases admit it (token, path, endpoint,
//! origin, IP, rpm, concurrency); then its model is checked, it is counted once and the
//! provider is dialled, all before the client's socket is upgraded, so that every refusal
//! is an HTTP error in the usual shape. Then messages are relayed both ways as they
//! arrive, the provider's read on the way for usage, until one side closes or a limit ends
//! the session with a close frame and a reason to both sides (never a cut connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::errors::ApiError;
use super::limits::Permit;
use super::metrics::{DirectionLabel, EndLabel, Metrics};
use super::proxy::{Call, Incoming, Refusal};
use super::tokens::ResolvedToken;
use super::{AppState, forward};
use crate::providers::{self, Family};
use crate::store::{TokenStatus, UsageRecord};
use crate::usage::extract::{Tally, realtime_usage};

/// Anything a WebSocket can run over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type ClientWs = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type UpstreamWs = WebSocketStream<Box<dyn Io>>;

/// How often a session looks at its token again (revocation, expiry, budget) and at its
/// idle time: within the bound the cache keeps for HTTP calls.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long the closing handshakes may take once a session is over.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Per connection and side: small, so that idle sessions cost little; large messages
/// grow it as they need.
const READ_BUFFER: usize = 16 * 1024;

/// Answers a realtime handshake: checks what only a session needs, counts it, dials the
/// provider, and hands the upgraded socket to the session.
pub(super) async fn open(
    state: &Arc<AppState>,
    incoming: &Incoming,
    mut call: Call,
    started: Instant,
) -> Result<Response, Refusal> {
    let accept = incoming
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| {
            incoming
                .headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13")
        })
        .map(|key| derive_accept_key(key.as_bytes()));
    let (Some(accept), Some(upgrade)) = (accept, incoming.upgrade.clone()) else {
        return Err(call.refuse(ApiError::BadHandshake));
    };
    let family = call.route.provider().family;
    let record = call.record.clone();
    let policy = record.policy();
    let model = providers::realtime_model(family, incoming.query.as_deref());
    // Gemini names its model in the first message, checked when it comes.
    if family != Family::Gemini
        && !policy.models.is_empty()
        && !model.as_deref().is_some_and(|m| policy.model_allowed(m))
    {
        return Err(call.refuse(ApiError::ModelNotAllowed));
    }

    // Everything that can refuse before dialling has run: from here on the session counts.
    super::proxy::count(state, &mut call).await?;
    let config = ws_config(state.config.max_message);
    let dialled = dial(state, incoming, &call, config).await;
    let started_at = Utc::now();
    let record = SessionRecord {
        token_id: call.record.id.clone(),
        provider: call.route.provider().name,
        path: call.path.clone(),
        model,
        started: Some(started),
        started_at,
        handshake: started.elapsed(),
        status: StatusCode::SWITCHING_PROTOCOLS.as_u16(),
        ..SessionRecord::default()
    };
    let (upstream, protocol) = match dialled {
        Ok(dialled) => dialled,
        Err(Dial::Unreachable) => {
            call.give_back(state).await;
            tracing::warn!(token_id = %call.record.id, "realtime upstream unreachable; call given back");
            return Err(call.refuse(ApiError::UpstreamUnreachable));
        }
        Err(Dial::Failed(error)) => {
            state
                .usage
                .record(record.usage(error.status().as_u16(), false));
            return Err(call.refuse(error));
        }
        Err(Dial::Refused(response)) => {
            // The provider's own refusal (a bad model, its rate limit) reaches the client
            // as it was sent.
            let status = response.status();
            state.usage.record(record.usage(status.as_u16(), false));
            let mut headers = forward::response_headers(response.headers());
            headers.remove(header::CONTENT_LENGTH);
            let mut reply = response.into_body().unwrap_or_default().into_response();
            *reply.status_mut() = status;
            *reply.headers_mut() = headers;
            return Ok(reply);
        }
    };
    // The browser needs one of the subprotocols it offered back: the provider's choice,
    // or `realtime` (OpenAI's) when the provider named none. Never the token's.
    let offered = forward::upstream_protocols(&incoming.headers);
    let protocol = protocol
        .filter(|p| p.to_str().is_ok_and(|p| offered.contains(&p)))
        .or_else(|| {
            offered
                .contains(&"realtime")
                .then(|| HeaderValue::from_static("realtime"))
        });

    let session = Session {
        state: state.clone(),
        presented: call.presented,
        resolved: call.resolved,
        family,
        models: policy.models.clone(),
        _permit: call.permit,
        record,
        stopping: state.stopping.subscribe(),
    };
    tokio::spawn(async move {
        let client = match upgrade.await {
            Ok(upgraded) => {
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                    .await
            }
            Err(_) => {
                // The client left between the answer and the switch.
                let mut session = session;
                session.record.aborted = true;
                session.finish("client_gone");
                return;
            }
        };
        session.run(client, upstream).await;
    });

    let mut reply = warp::reply().into_response();
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Ok(reply)
}

fn ws_config(max_message: u64) -> WebSocketConfig {
    let max = usize::try_from(max_message).unwrap_or(usize::MAX);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Each message is written as it is relayed: no batching behind a latency.
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Why the provider could not be reached, or what it answered instead of a session.
enum Dial {
    /// No connection was made: the call cannot have reached the provider.
    Unreachable,
    /// The connection was made, then failed or timed out.
    Failed(ApiError),
    /// The provider answered the handshake with an HTTP response.
    Refused(warp::http::Response<Option<Vec<u8>>>),
}

/// Opens the provider's side: the client's query without the token, the real key in the
/// provider's style, the client's headers as for any call, and the subprotocols it
/// offered but the one carrying the token. Returns the provider's chosen subprotocol.
async fn dial(
    state: &AppState,
    incoming: &Incoming,
    call: &Call,
    config: WebSocketConfig,
) -> Result<(UpstreamWs, Option<HeaderValue>), Dial> {
    let route = &call.route;
    let auth = route.auth();
    let api_key = &call.resolved.claims.api_key;
    let mut url = forward::upstream_url(
        route.base_url(),
        &call.path,
        incoming.query.as_deref(),
        auth,
        api_key,
    );
    let secure = url.scheme() == "https";
    let _ = url.set_scheme(if secure { "wss" } else { "ws" });
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(Dial::Unreachable);
    };
    // Errors below are never printed whole: a URL may hold the key (query-style auth).
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|_| Dial::Unreachable)?;
    let headers = forward::upstream_headers(
        &incoming.headers,
        auth,
        api_key,
        route.provider().default_headers,
    )
    .map_err(|_| {
        tracing::error!(token_id = %call.record.id, "the sealed API key is not a valid header value");
        Dial::Unreachable
    })?;
    for (name, value) in &headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    let protocols = forward::upstream_protocols(&incoming.headers);
    if !protocols.is_empty() {
        let value = HeaderValue::from_str(&protocols.join(", ")).map_err(|_| Dial::Unreachable)?;
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }

    let settings = &state.config;
    // Directly, or through the proxy the environment names, as every other call.
    let destination = format!("{}://{host}:{port}", if secure { "https" } else { "http" })
        .parse::<http::Uri>()
        .map_err(|_| Dial::Unreachable)?;
    let tcp = tokio::time::timeout(
        settings.connect_timeout,
        state.client.connect_stream(destination),
    )
    .await
    .map_err(|_| Dial::Unreachable)?
    .map_err(|_| Dial::Unreachable)?;
    let io: Box<dyn Io> = if secure {
        let tls = state.realtime_tls().map_err(|e| {
            tracing::error!(error = e, "no TLS roots for realtime upstreams");
            Dial::Unreachable
        })?;
        let name = tls_server_name(&url).ok_or(Dial::Unreachable)?;
        let stream = tokio::time::timeout(settings.connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| Dial::Unreachable)?
            .map_err(|_| Dial::Unreachable)?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let handshake = tokio_tungstenite::client_async_with_config(request, io, Some(config));
    match tokio::time::timeout(settings.upstream_timeout, handshake).await {
        Err(_) => Err(Dial::Failed(ApiError::UpstreamTimeout)),
        Ok(Ok((ws, response))) => {
            let protocol = response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .cloned();
            Ok((ws, protocol))
        }
        Ok(Err(WsError::Http(response))) => Err(Dial::Refused(*response)),
        Ok(Err(_)) => {
            tracing::warn!(token_id = %call.record.id, "realtime upstream handshake failed");
            Err(Dial::Failed(ApiError::UpstreamUnreachable))
        }
    }
}

/// The name the provider's certificate must carry: the URL's host, an IP address without
/// the brackets a URL puts around IPv6.
fn tls_server_name(url: &url::Url) -> Option<ServerName<'static>> {
    match url.host()? {
        url::Host::Domain(name) => ServerName::try_from(name.to_string()).ok(),
        url::Host::Ipv4(ip) => Some(ServerName::from(std::net::IpAddr::V4(ip))),
        url::Host::Ipv6(ip) => Some(ServerName::from(std::net::IpAddr::V6(ip))),
    }
}

/// Everything recorded about a session; written once, when it ends.
#[derive(Default)]
struct SessionRecord {
    token_id: String,
    provider: &'static str,
    path: String,
    model: Option<String>,
    started: Option<Instant>,
    started_at: DateTime<Utc>,
    handshake: Duration,
    status: u16,
    bytes_up: u64,
    bytes_down: u64,
    tally: Tally,
    aborted: bool,
}

impl SessionRecord {
    fn usage(&self, status: u16, aborted: bool) -> UsageRecord {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        UsageRecord {
            token_id: self.token_id.clone(),
            at: self.started_at,
            method: "GET".to_string(),
            path: self.path.clone(),
            model: self.model.clone(),
            status,
            latency_ms: ms(self.started.map_or(Duration::ZERO, |s| s.elapsed())),
            ttfb_ms: ms(self.handshake),
            bytes_in: self.bytes_up,
            bytes_out: self.bytes_down,
            prompt_tokens: self.tally.prompt,
            completion_tokens: self.tally.completion,
            total_tokens: self.tally.total(),
            stream: true,
            aborted,
            estimated: false,
            charged: false,
        }
    }
}

struct Session {
    state: Arc<AppState>,
    presented: String,
    resolved: Arc<ResolvedToken>,
    family: Family,
    /// The token's model list, held to the models the session's messages name.
    models: Vec<String>,
    /// Rate and concurrency: held for as long as the session is open.
    _permit: Permit,
    record: SessionRecord,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Which side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Provider,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    /// A side sent a close frame; it has been passed to the other side.
    Closed(Side, Option<CloseCode>),
    /// A side's connection ended without a close frame, or failed.
    Gone(Side),
    /// A side sent a message over the size cap.
    TooBig(Side),
    /// The relay ends it: both sides get this close frame.
    Limit(Limit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Revoked,
    Expired,
    Budget,
    Model,
    MaxSession,
    Idle,
    Stopping,
}

impl Limit {
    fn frame(self) -> CloseFrame {
        let (code, reason) = match self {
            Limit::Revoked => (CloseCode::Policy, ApiError::TokenRevoked.to_string()),
            Limit::Expired => (CloseCode::Policy, ApiError::TokenExpired.to_string()),
            Limit::Budget => (
                CloseCode::Policy,
                ApiError::TokenBudgetExhausted.to_string(),
            ),
            Limit::Model => (CloseCode::Policy, ApiError::ModelNotAllowed.to_string()),
            Limit::MaxSession => (
                CloseCode::Policy,
                "the session reached its length limit".to_string(),
            ),
            Limit::Idle => (CloseCode::Away, "the session was idle too long".to_string()),
            Limit::Stopping => (CloseCode::Away, ApiError::ShuttingDown.to_string()),
        };
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Limit::Revoked => "revoked",
            Limit::Expired => "expired",
            Limit::Budget => "budget",
            Limit::Model => "model_not_allowed",
            Limit::MaxSession => "max_session",
            Limit::Idle => "idle_timeout",
            Limit::Stopping => "shutting_down",
        }
    }
}

impl Ending {
    fn name(&self) -> &'static str {
        match self {
            Ending::Closed(Side::Client, _) => "client_closed",
            Ending::Closed(Side::Provider, _) => "provider_closed",
            Ending::Gone(Side::Client) => "client_gone",
            Ending::Gone(Side::Provider) => "provider_gone",
            Ending::TooBig(_) => "message_too_big",
            Ending::Limit(limit) => limit.name(),
        }
    }

    /// Did the session end before either side meant it to?
    fn aborted(&self) -> bool {
        match self {
            Ending::Closed(_, code) => {
                !matches!(code, None | Some(CloseCode::Normal) | Some(CloseCode::Away))
            }
            _ => true,
        }
    }
}

/// One direction's counters, and the session's last activity (ms since it began), which
/// both directions move.
struct Flow {
    frames: Counter,
    bytes: Counter,
    total: u64,
}

impl Flow {
    fn new(metrics: &Metrics, direction: &'static str) -> Self {
        let label = DirectionLabel { direction };
        Flow {
            frames: metrics.session_frames.get_or_create(&label).clone(),
            bytes: metrics.session_bytes.get_or_create(&label).clone(),
            total: 0,
        }
    }

    fn count(&mut self, message: &Message, activity: &AtomicU64, begun: Instant) {
        let len = message.len() as u64;
        self.total = self.total.saturating_add(len);
        self.frames.inc();
        self.bytes.inc_by(len);
        activity.store(begun.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Session {
    async fn run(mut self, client: ClientWs, upstream: UpstreamWs) {
        let metrics = self.state.metrics.clone();
        metrics.sessions_open.inc();
        let begun = Instant::now();
        let activity = AtomicU64::new(0);
        let (mut client_tx, mut client_rx) = client.split();
        let (mut upstream_tx, mut upstream_rx) = upstream.split();
        let mut up = Flow::new(&metrics, "up");
        let mut down = Flow::new(&metrics, "down");
        let mut tally = Tally::default();
        let ending = {
            let mut checker = SetupCheck::new(self.family, &self.models);
            let client_to_provider = relay_up(
                &mut client_rx,
                &mut upstream_tx,
                &mut up,
                &mut checker,
                &activity,
                begun,
            );
            let provider_to_client = relay_down(
                &mut upstream_rx,
                &mut client_tx,
                &mut down,
                &mut tally,
                &self.resolved,
                &activity,
                begun,
            );
            let limits = watch(
                &self.state,
                &mut self.stopping,
                &self.presented,
                &self.resolved,
                &activity,
                begun,
            );
            tokio::select! {
                ending = client_to_provider => ending,
                ending = provider_to_client => ending,
                limit = limits => Ending::Limit(limit),
            }
        };
        self.record.tally = tally;
        self.record.bytes_up = up.total;
        self.record.bytes_down = down.total;

        // Close what is still open, then let both closing handshakes finish (briefly).
        let too_big = || CloseFrame {
            code: CloseCode::Size,
            reason: format!(
                "a message was larger than the relay's limit of {} bytes",
                self.state.config.max_message
            )
            .into(),
        };
        match &ending {
            Ending::Closed(..) => {}
            Ending::Gone(Side::Client) => {
                let away = CloseFrame {
                    code: CloseCode::Away,
                    reason: "the client went away".into(),
                };
                let _ = upstream_tx.send(Message::Close(Some(away))).await;
            }
            Ending::Gone(Side::Provider) => {
                let lost = CloseFrame {
                    code: CloseCode::Error,
                    reason: "the provider's connection was lost".into(),
                };
                let _ = client_tx.send(Message::Close(Some(lost))).await;
            }
            Ending::TooBig(_) => {
                let _ = client_tx.send(Message::Close(Some(too_big()))).await;
                let _ = upstream_tx.send(Message::Close(Some(too_big()))).await;
            }
            Ending::Limit(limit) => {
                let _ = client_tx.send(Message::Close(Some(limit.frame()))).await;
                let _ = upstream_tx.send(Message::Close(Some(limit.frame()))).await;
            }
        }
        let drain = futures_util::future::join(
            client_rx.for_each(|_| async {}),
            upstream_rx.for_each(|_| async {}),
        );
        let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
        metrics.sessions_open.dec();
        metrics
            .session_duration
            .get_or_create(&EndLabel { end: ending.name() })
            .observe(begun.elapsed().as_secs_f64());
        self.record.aborted = ending.aborted();
        self.finish(ending.name());
    }

    /// Logs the session and queues its usage record: one per session, with its totals.
    fn finish(&mut self, end: &'static str) {
        let record = &self.record;
        tracing::info!(
            token_id = %record.token_id,
            provider = record.provider,
            path = %record.path,
            model = record.model.as_deref().unwrap_or("-"),
            duration_ms = record.started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3),
            bytes_up = record.bytes_up,
            bytes_down = record.bytes_down,
            total_tokens = record.tally.total(),
            end,
            "session"
        );
        self.state
            .usage
            .record(record.usage(record.status, record.aborted));
    }
}

/// Ends the session when a limit does: the relay stopping, the length limit or the
/// token's expiry, and, looked at every `CHECK_EVERY`, revocation, the budget and the idle
/// timeout.
async fn watch(
    state: &AppState,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
    presented: &str,
    resolved: &ResolvedToken,
    activity: &AtomicU64,
    begun: Instant,
) -> Limit {
    let config = &state.config;
    let record = resolved.record();
    let longest = record
        .policy()
        .max_session_secs
        .map_or(config.max_session, |s| {
            config.max_session.min(Duration::from_secs(s.into()))
        });
    let mut deadline = (begun + longest, Limit::MaxSession);
    if let Some(at) = record.limits.expires_at {
        let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if begun + left < deadline.0 {
            deadline = (begun + left, Limit::Expired);
        }
    }
    let idle = config.idle_timeout;
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tokens = &state.tokens;
    // A change pushed to this relay (a revocation, say) is looked at at once.
    let mut announced = tokens.announcements();
    tokio::select! {
        _ = stopping.wait_for(|stopping| *stopping) => Limit::Stopping,
        _ = tokio::time::sleep_until(deadline.0.into()) => deadline.1,
        limit = async {
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    Ok(()) = announced.changed() => {}
                }
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if begun.elapsed().saturating_sub(last) >= idle {
                    return Limit::Idle;
                }
                if let Some(limit) = token_limit(tokens, presented, resolved).await {
                    return limit;
                }
            }
        } => limit,
    }
}

/// What the token's current record says of a live session: `None` to go on. A store
/// that does not answer does not end a session (the record last read still holds).
async fn token_limit(
    tokens: &super::tokens::TokenCache,
    presented: &str,
    resolved: &ResolvedToken,
) -> Option<Limit> {
    let current = match Box::pin(tokens.resolve(presented)).await {
        Ok(current) => current.record(),
        Err(ApiError::TokenRevoked) => return Some(Limit::Revoked),
        Err(ApiError::TokenExpired) => return Some(Limit::Expired),
        Err(_) => resolved.record(),
    };
    match current.status(Utc::now()) {
        TokenStatus::Revoked => return Some(Limit::Revoked),
        TokenStatus::Expired => return Some(Limit::Expired),
        TokenStatus::Exhausted | TokenStatus::Active => {}
    }
    budget_spent(resolved).then_some(Limit::Budget)
}

fn budget_spent(resolved: &ResolvedToken) -> bool {
    let record = resolved.record();
    record
        .limits
        .max_total_tokens
        .is_some_and(|max| resolved.used_tokens(&record) >= max)
}

/// The next message from one side, counted; how the session ends when there is none.
async fn next_message<S>(
    from: &mut S,
    side: Side,
    flow: &mut Flow,
    activity: &AtomicU64,
    begun: Instant,
) -> Result<Message, Ending>
where
    S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let message = match from.next().await {
        Some(Ok(message)) => message,
        Some(Err(WsError::Capacity(_))) => return Err(Ending::TooBig(side)),
        Some(Err(_)) | None => return Err(Ending::Gone(side)),
    };
    flow.count(&message, activity, begun);
    Ok(message)
}

/// Passes one side's close frame to the other: the session is over.
async fn pass_close<S>(to: &mut S, frame: Option<CloseFrame>, from: Side) -> Ending
where
    S: futures_util::Sink<Message> + Unpin,
{
    let code = frame.as_ref().map(|f| f.code);
    let _ = to.send(Message::Close(frame)).await;
    Ending::Closed(from, code)
}

/// Client to provider: every message as it comes, the model a message names held to the
/// token's list.
async fn relay_up(
    from: &mut SplitStream<ClientWs>,
    to: &mut SplitSink<UpstreamWs, Message>,
    flow: &mut Flow,
    checker: &mut SetupCheck<'_>,
    activity: &AtomicU64,
    begun: Instant,
) -> Ending {
    loop {
        let message = match next_message(from, Side::Client, flow, activity, begun).await {
            Ok(Message::Close(frame)) => return pass_close(to, frame, Side::Client).await,
            Ok(message) => message,
            Err(ending) => return ending,
        };
        if !checker.allows(&message) {
            return Ending::Limit(Limit::Model);
        }
        if to.send(message).await.is_err() {
            return Ending::Gone(Side::Provider);
        }
    }
}

/// Provider to client: every message as it comes, its usage reports added to the
/// session's and to the token's budget at once.
async fn relay_down(
    from: &mut SplitStream<UpstreamWs>,
    to: &mut SplitSink<ClientWs, Message>,
    flow: &mut Flow,
    tally: &mut Tally,
    resolved: &ResolvedToken,
    activity: &AtomicU64,
    begun: Instant,
) -> Ending {
    loop {
        let message = match next_message(from, Side::Provider, flow, activity, begun).await {
            Ok(Message::Close(frame)) => return pass_close(to, frame, Side::Provider).await,
            Ok(message) => message,
            Err(ending) => return ending,
        };
        let report = match &message {
            Message::Text(text) => realtime_usage(text.as_bytes()),
            // Gemini Live sends its JSON as binary messages.
            Message::Binary(bytes) => realtime_usage(bytes),
            _ => None,
        };
        if to.send(message).await.is_err() {
            return Ending::Gone(Side::Client);
        }
        if let Some(report) = report {
            if let Some(total) = report.total() {
                resolved.add_recorded_tokens(total);
            }
            tally.add(&report);
            if budget_spent(resolved) {
                return Ending::Limit(Limit::Budget);
            }
        }
    }
}

/// Holds the models a session's messages name to the token's list: Gemini Live's first
/// message (`setup.model`, which must come first and name an allowed model) and OpenAI's
/// `session.update` (`session.model`). Messages that cannot name a model pass unread.
struct SetupCheck<'a> {
    family: Family,
    models: &'a [String],
    first: bool,
}

impl<'a> SetupCheck<'a> {
    fn new(family: Family, models: &'a [String]) -> Self {
        SetupCheck {
            family,
            models,
            first: true,
        }
    }

    fn allows(&mut self, message: &Message) -> bool {
        let first = std::mem::replace(&mut self.first, false);
        if self.models.is_empty() {
            return true;
        }
        let bytes: &[u8] = match message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => return true,
        };
        let allowed = |model: &str| {
            let model = model.strip_prefix("models/").unwrap_or(model);
            self.models
                .iter()
                .any(|p| crate::policy::pattern_matches(p, model))
        };
        match self.family {
            Family::Gemini if first => {
                #[derive(serde::Deserialize)]
                struct First {
                    setup: Setup,
                }
                #[derive(serde::Deserialize)]
                struct Setup {
                    model: String,
                }
                serde_json::from_slice::<First>(bytes).is_ok_and(|m| allowed(&m.setup.model))
            }
            Family::OpenAi | Family::Azure
                if memchr::memmem::find(bytes, b"\"session.update\"").is_some() =>
            {
                #[derive(serde::Deserialize)]
                struct Update {
                    session: Option<SessionModel>,
                }
                #[derive(serde::Deserialize)]
                struct SessionModel {
                    model: Option<String>,
                }
                match serde_json::from_slice::<Update>(bytes) {
                    Ok(Update {
                        session: Some(SessionModel { model: Some(model) }),
                    }) => allowed(&model),
                    _ => true,
                }
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_name_of_an_upstream_is_its_host_without_brackets() {
        let name = |url: &str| tls_server_name(&url::Url::parse(url).unwrap());
        assert_eq!(
            name("wss://api.openai.com/v1/realtime"),
            Some(ServerName::try_from("api.openai.com").unwrap())
        );
        assert_eq!(
            name("wss://10.0.0.7:8443/v1/realtime"),
            Some(ServerName::from(std::net::IpAddr::from([10, 0, 0, 7])))
        );
        // `host_str` gives `[::1]`, which is no server name.
        assert_eq!(
            name("wss://[::1]:8443/v1/realtime"),
            Some(ServerName::from(std::net::IpAddr::from(
                std::net::Ipv6Addr::LOCALHOST
            )))
        );
    }

    #[test]
    fn models_named_in_messages_are_held_to_the_list() {
        let models = vec!["gemini-live-*".to_string(), "gpt-realtime".to_string()];
        let text = |s: &str| Message::text(s.to_string());
        let mut gemini = SetupCheck::new(Family::Gemini, &models);
        assert!(gemini.allows(&text(r#"{"setup":{"model":"models/gemini-live-2.5"}}"#)));
        assert!(
            gemini.allows(&text(r#"{"setup":{"model":"models/other"}}"#)),
            "only the first"
        );
        let mut gemini = SetupCheck::new(Family::Gemini, &models);
        assert!(!gemini.allows(&text(r#"{"setup":{"model":"models/gemini-pro"}}"#)));
        let mut gemini = SetupCheck::new(Family::Gemini, &models);
        assert!(
            !gemini.allows(&text(r#"{"realtimeInput":{}}"#)),
            "setup comes first"
        );
        let mut gemini = SetupCheck::new(Family::Gemini, &models);
        let binary = Message::binary(br#"{"setup":{"model":"gemini-live-x"}}"#.to_vec());
        assert!(gemini.allows(&binary));

        let mut openai = SetupCheck::new(Family::OpenAi, &models);
        assert!(openai.allows(&text(
            r#"{"type":"session.update","session":{"instructions":"hi"}}"#
        )));
        assert!(openai.allows(&text(
            r#"{"type":"session.update","session":{"model":"gpt-realtime"}}"#
        )));
        assert!(!openai.allows(&text(
            r#"{"type":"session.update","session":{"model":"gpt-4o-realtime"}}"#
        )));
        assert!(openai.allows(&text(
            r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#
        )));

        let mut open = SetupCheck::new(Family::Gemini, &[]);
        assert!(open.allows(&text("not json")));
    }

    #[test]
    fn endings_say_whether_the_session_was_cut_short() {
        assert!(!Ending::Closed(Side::Client, Some(CloseCode::Normal)).aborted());
        assert!(!Ending::Closed(Side::Provider, None).aborted());
        assert!(Ending::Closed(Side::Provider, Some(CloseCode::Error)).aborted());
        assert!(Ending::Gone(Side::Provider).aborted());
        assert!(Ending::Limit(Limit::Budget).aborted());
        for limit in [
            Limit::Revoked,
            Limit::Budget,
            Limit::MaxSession,
            Limit::Model,
        ] {
            let frame = limit.frame();
            assert_eq!(frame.code, CloseCode::Policy);
            // A close reason must fit in a control frame.
            assert!(frame.reason.len() <= 123, "{limit:?}");
        }
    }
}
