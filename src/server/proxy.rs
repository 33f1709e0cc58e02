//! The relay's request path, as named phases that fill one per-call context:
//!
//! admit (token, path, checks that need no body, rate and concurrency) → read body (bounded
//! in size, time and, across all calls, memory) → policy (what the body asks for, checked
//! and rewritten) → count (exact and durable) → forward → stream back and account.
//!
//! Every refusal becomes an OpenAI-shaped error in [`handle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::{Reply, Response};

use super::body::{CallRecord, End, Inspect, RelayBody};
use super::errors::ApiError;
use super::limits::Permit;
use super::metrics::{ProviderLabel, ProviderStatus};
use super::tokens::ResolvedToken;
use super::upstream::UpstreamBody;
use super::{AppState, cors, forward};
use crate::providers::{self, Operation, Route};
use crate::request::{self, Prepared, json::Spliced};
use crate::store::{TokenRecord, TokenStatus, UsageRecord};
use crate::usage::decode::{Decoded, Scan};
use crate::usage::extract::{JsonUsage, SseScanner};

pub struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
    /// Where the connection is handed over once a WebSocket handshake is answered.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// Answers one relayed request; every refusal becomes an OpenAI-shaped error here.
pub async fn handle<S, B, E>(state: Arc<AppState>, incoming: Incoming, body: S) -> Response
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: Buf,
{
    let started = Instant::now();
    let origin = incoming.headers.get(header::ORIGIN).cloned();
    let mut response = match relay(&state, &incoming, body, started).await {
        Ok(response) => response,
        Err((error, token_id)) => {
            tracing::info!(
                token_id = token_id.as_deref().unwrap_or("-"),
                method = %incoming.method,
                path = %incoming.path,
                status = error.status().as_u16(),
                code = error.code(),
                latency_ms = started.elapsed().as_secs_f64() * 1e3,
                "refused"
            );
            state.metrics.refused(error.code());
            if error == ApiError::InvalidToken {
                // Every invalid token is answered at the same time, however far it got
                // (malformed, or opened and looked up): the answer's timing tells nothing.
                tokio::time::sleep_until((started + INVALID_TOKEN_ANSWER).into()).await;
            }
            // Every refusal is readable by the calling page, the refused origin's too: it
            // learns only that this token is not for it, and can show why.
            error.into_response()
        }
    };
    cors::allow_origin(&mut response, origin.as_ref());
    response
}

pub(super) type Refusal = (ApiError, Option<String>);

/// When an invalid token is answered, counted from the request's arrival: longer than an
/// open and a store lookup take.
const INVALID_TOKEN_ANSWER: std::time::Duration = std::time::Duration::from_millis(5);

/// What the phases learn about a call, filled in as it goes.
pub(super) struct Call {
    /// The token as presented: a realtime session resolves it again as it runs.
    pub presented: String,
    pub resolved: Arc<ResolvedToken>,
    pub record: Arc<TokenRecord>,
    /// Where the call goes: the record's route, known to be there.
    pub route: Arc<Route>,
    /// The normalized path: what policy matched and what is forwarded.
    pub path: String,
    pub operation: Operation,
    /// Rate and concurrency: held until the response (or the session) ends.
    pub permit: Permit,
    /// Output tokens the call reserves against the token's budget while in flight.
    pub reserve: i64,
}

impl Call {
    pub(super) fn refuse(&self, error: ApiError) -> Refusal {
        (error, Some(self.record.id.clone()))
    }

    /// Gives back a counted call that cannot have reached the provider: in the store, and
    /// in what this relay knows the token has used.
    pub(super) async fn give_back(&self, state: &AppState) {
        // Boxed: the store's future would widen every call's.
        Box::pin(state.counter.give_back(&self.record.id)).await;
        self.resolved.give_back_counted_call();
    }
}

async fn relay<S, B, E>(
    state: &Arc<AppState>,
    incoming: &Incoming,
    body: S,
    started: Instant,
) -> Result<Response, Refusal>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: Buf,
{
    let call = admit(state, incoming).await?;
    if call.operation == Operation::RealtimeSession {
        // Boxed: a handshake's future (the dial) would otherwise size every call's.
        return Box::pin(super::realtime::open(state, incoming, call, started)).await;
    }
    let config = &state.config;
    let (body, body_memory) = read_body(
        body,
        &incoming.headers,
        config.max_body,
        config.client_timeout,
        &state.body_memory,
    )
    .await
    .map_err(|e| call.refuse(e))?;
    let bytes_in = body.len() as u64;
    let prepared = apply_policy(&call, incoming, body, config.client_secret_lifetime)
        .await
        .map_err(|e| call.refuse(e))?;

    // Everything that can refuse has run: from here on the call counts.
    let mut call = call;
    count(state, &mut call).await?;
    forward(
        state,
        incoming,
        call,
        prepared,
        bytes_in,
        body_memory,
        started,
    )
    .await
}

/// The checks that need no body, in order of cost, then the per-process limits: a caller
/// without a valid token, or with no calls left, costs no body read and no parse.
async fn admit(state: &AppState, incoming: &Incoming) -> Result<Call, Refusal> {
    let presented = forward::extract_token(&incoming.headers, incoming.query.as_deref())
        .ok_or((ApiError::MissingToken, None))?;
    let path = forward::normalize_path(&incoming.path).ok_or((ApiError::InvalidPath, None))?;
    // The store's futures are large and awaited only briefly: boxed, they do not widen
    // this future, which lives (and is moved through the server's layers) for every call.
    let resolved = Box::pin(state.tokens.resolve(&presented))
        .await
        .map_err(|e| (e, None))?;
    let record = resolved.record();
    let refuse = |e: ApiError| (e, Some(record.id.clone()));
    match record.status(Utc::now()) {
        TokenStatus::Revoked => return Err(refuse(ApiError::TokenRevoked)),
        TokenStatus::Expired => return Err(refuse(ApiError::TokenExpired)),
        TokenStatus::Exhausted | TokenStatus::Active => {}
    }
    // Only a revoked placeholder row has no route, and it was refused just above.
    let Some(route) = record.route.clone() else {
        return Err(refuse(ApiError::TokenRevoked));
    };
    let provider = route.provider();
    let operation = Operation::of(provider.family, &incoming.method, &path);
    // A WebSocket handshake anywhere but a realtime path would reach the provider as a
    // plain GET it cannot answer, and a realtime path means nothing without one.
    match (
        operation == Operation::RealtimeSession,
        forward::is_websocket_upgrade(&incoming.headers),
    ) {
        (true, true) if provider.realtime.is_some() => {}
        (true, false) => return Err(refuse(ApiError::WebSocketRequired)),
        (true, true) | (false, true) => return Err(refuse(ApiError::WebSocketNotRelayed)),
        (false, false) => {}
    }
    // The atomic count decides exactly; what is known here to be spent already (a lower
    // bound) refuses before the body is read.
    if record
        .limits
        .max_calls
        .is_some_and(|max| resolved.used_calls(&record) >= max)
    {
        return Err(refuse(ApiError::CallsExhausted));
    }
    let policy = record.policy();
    if !policy.endpoint_allowed(provider.family, &incoming.method, &path) {
        return Err(refuse(ApiError::EndpointNotAllowed));
    }
    let origin = incoming
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !policy.origin_allowed(origin) {
        return Err(refuse(ApiError::OriginNotAllowed));
    }
    if !policy.ips.is_empty() {
        let ip = forward::client_ip(
            incoming.peer,
            &incoming.headers,
            &state.config.trusted_proxies,
        );
        if !policy.ip_allowed(ip) {
            return Err(refuse(ApiError::IpNotAllowed));
        }
    }
    let reserve = match (record.limits.max_total_tokens, policy.max_output_tokens) {
        (Some(_), Some(cap)) => i64::from(cap),
        _ => 0,
    };
    if let Some(max) = record.limits.max_total_tokens {
        // Tokens recorded plus output reserved by calls in flight here.
        let used = resolved
            .used_tokens(&record)
            .saturating_add(state.limiter.reserved_tokens(&record.id));
        if used >= max {
            return Err(refuse(ApiError::TokenBudgetExhausted));
        }
    }
    // On PostgreSQL the fleet's count decides the rate; concurrency here is a first,
    // local check before the body is read.
    let local_rpm = policy.rpm.filter(|_| state.fleet.is_none());
    let permit = state
        .limiter
        .admit(&record.id, local_rpm, policy.concurrency, reserve)
        .map_err(refuse)?;
    Ok(Call {
        presented,
        resolved,
        record,
        route,
        path,
        operation,
        permit,
        reserve,
    })
}

/// The count phase: the call is counted, exactly and durably, before it is forwarded; on
/// PostgreSQL a token with limits is counted for the whole fleet, with its rate,
/// concurrency and budget (`fleet`).
pub(super) async fn count(state: &AppState, call: &mut Call) -> Result<(), Refusal> {
    match &state.fleet {
        Some(fleet) if super::fleet::Fleet::governs(&call.record) => {
            let (lease, rate) = Box::pin(fleet.admit(&call.record, call.reserve))
                .await
                .map_err(|e| call.refuse(e))?;
            call.permit.lease = lease;
            call.permit.rate = rate.or(call.permit.rate);
        }
        _ => Box::pin(
            state
                .counter
                .consume(&call.record, state.limiter.in_flight() > 1),
        )
        .await
        .map_err(|e| call.refuse(e))?,
    }
    call.resolved.add_counted_call();
    Ok(())
}

/// Bodies larger than this are read for policy on the blocking pool, not on a worker
/// that other connections wait for.
const PARSE_INLINE_MAX: usize = 64 * 1024;

/// What the body asks for, checked against the token's policy and rewritten where the
/// policy caps it.
async fn apply_policy(
    call: &Call,
    incoming: &Incoming,
    body: Bytes,
    secret_max: std::time::Duration,
) -> Result<Prepared, ApiError> {
    let provider = call.route.provider();
    let operation = call.operation;
    let path_model = providers::model_in_path(provider.family, &call.path).map(str::to_string);
    // A clone shares the header's bytes: no copy per call.
    let content_type = incoming.headers.get(header::CONTENT_TYPE).cloned();
    let record = call.record.clone();
    let body_len = body.len();
    let secret_lifetime = match operation {
        Operation::RealtimeClientSecret => {
            let relay_max = secret_max.as_secs();
            let token_left = record.limits.expires_at.map_or(u64::MAX, |at| {
                u64::try_from((at - Utc::now()).num_seconds()).unwrap_or(0)
            });
            relay_max.min(token_left)
        }
        _ => 0,
    };
    let prepare = move || {
        request::prepare(
            body,
            &request::Call {
                provider,
                operation,
                path_model: path_model.as_deref(),
                content_type: content_type.as_ref().and_then(|v| v.to_str().ok()),
                policy: record.policy(),
                secret_lifetime,
            },
        )
    };
    let prepared = if body_len > PARSE_INLINE_MAX {
        tokio::task::spawn_blocking(prepare)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading a request body failed");
                Err(request::BodyRefusal::NotAnObject)
            })
    } else {
        prepare()
    };
    prepared.map_err(ApiError::from)
}

async fn forward(
    state: &Arc<AppState>,
    incoming: &Incoming,
    call: Call,
    prepared: Prepared,
    bytes_in: u64,
    body_memory: Option<OwnedSemaphorePermit>,
    started: Instant,
) -> Result<Response, Refusal> {
    let record = &call.record;
    let id = record.id.clone();
    let refuse = |e: ApiError| (e, Some(id.clone()));
    let provider = call.route.provider();
    let auth = call.route.auth();
    let api_key = &call.resolved.claims.api_key;
    let url = forward::upstream_url(
        call.route.base_url(),
        &call.path,
        incoming.query.as_deref(),
        auth,
        api_key,
    );
    let mut headers =
        forward::upstream_headers(&incoming.headers, auth, api_key, provider.default_headers)
            .map_err(|_| {
                tracing::error!(token_id = %id, "the sealed API key is not a valid header value");
                refuse(ApiError::UpstreamUnreachable)
            })?;
    headers.insert(
        header::ACCEPT_ENCODING,
        forward::upstream_accept_encoding(&incoming.headers, prepared.stream),
    );

    let started_at = Utc::now();
    let Prepared {
        body,
        model,
        stream,
        hide_usage,
        max_output,
    } = prepared;
    let estimate = crate::usage::estimate(call.operation, bytes_in, max_output);
    let Ok(request) = upstream_request(&incoming.method, url, headers, body) else {
        // Never sent, so given back. (A serialized `Url` is a valid URI: kept for safety.)
        tracing::error!(token_id = %id, "the upstream URL is not a valid URI; call given back");
        call.give_back(state).await;
        return Err(refuse(ApiError::UpstreamUnreachable));
    };
    let sent =
        tokio::time::timeout(state.config.upstream_timeout, state.client.send(request)).await;
    // The body has been sent (or never will be): its memory is free for other calls.
    drop(body_memory);
    let record_failure = |status: u16| {
        state.usage.record(UsageRecord {
            token_id: id.clone(),
            at: started_at,
            method: incoming.method.to_string(),
            path: call.path.clone(),
            model: model.clone(),
            status,
            latency_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            ttfb_ms: 0,
            bytes_in,
            bytes_out: 0,
            prompt_tokens: None,
            completion_tokens: None,
            total_tokens: None,
            stream,
            aborted: false,
            estimated: false,
            charged: false,
        })
    };
    let response = match sent {
        Err(_) => {
            record_failure(ApiError::UpstreamTimeout.status().as_u16());
            return Err(refuse(ApiError::UpstreamTimeout));
        }
        Ok(Err(e)) => {
            // A call whose connection failed cannot have reached the provider: given back.
            if e.is_connect() {
                tracing::warn!(token_id = %id, "upstream connection failed; call given back");
                call.give_back(state).await;
            } else {
                tracing::warn!(token_id = %id, "upstream request failed");
                record_failure(ApiError::UpstreamUnreachable.status().as_u16());
            }
            return Err(refuse(ApiError::UpstreamUnreachable));
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    let ttfb = started.elapsed();
    let provider_label = ProviderLabel {
        provider: provider.name,
    };
    state
        .metrics
        .ttfb
        .get_or_create(&provider_label)
        .observe(ttfb.as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&ProviderStatus {
            provider: provider.name,
            status: status.as_u16(),
        })
        .inc();
    let mut headers = forward::response_headers(response.headers());
    let calls_left = record
        .limits
        .max_calls
        .map(|max| max.saturating_sub(call.resolved.used_calls(record)).max(0));
    limit_headers(&mut headers, call.permit.rate, calls_left);
    let (inspect, is_sse) = inspect_for(&headers, hide_usage);
    if is_sse {
        // SSE through proxies: ask intermediaries not to buffer.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    if matches!(&inspect, Inspect::Sse(_)) && hide_usage {
        // The body may shrink by the hidden event.
        headers.remove(header::CONTENT_LENGTH);
    }
    let has_body = incoming.method != Method::HEAD
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let record = CallRecord {
        token_id: id,
        provider: provider.name,
        method: incoming.method.to_string(),
        path: call.path,
        model,
        status: status.as_u16(),
        started,
        started_at,
        ttfb,
        bytes_in,
        bytes_out: 0,
        stream: stream || is_sse,
        tally: Default::default(),
        metered: call.operation.metered(),
        estimate,
        estimated: false,
        end: End::Complete,
        usage: state.usage.clone(),
        metrics: state.metrics.clone(),
        permit: call.permit,
        resolved: call.resolved,
    };
    let body = RelayBody::new(
        response,
        inspect,
        state.config.idle_timeout,
        record,
        has_body,
    );
    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = status;
    *reply.headers_mut() = headers;
    Ok(reply)
}

/// What a page may want to know of its token's limits, on every forwarded answer (CORS
/// exposes them): the rpm bucket after this call, and the calls left (at most: on a fleet
/// other relays may have counted some since this one last read the token).
fn limit_headers(
    headers: &mut HeaderMap,
    rate: Option<super::limits::RateLeft>,
    calls_left: Option<i64>,
) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    if let Some(rate) = rate {
        set("x-relay-ratelimit-limit", rate.limit.to_string());
        set("x-relay-ratelimit-remaining", rate.remaining.to_string());
        set("x-relay-ratelimit-reset", rate.reset_secs.to_string());
    }
    if let Some(left) = calls_left {
        set("x-relay-calls-remaining", left.to_string());
    }
}

/// How a response is read for usage, and whether it is an event stream. A compressed body
/// is passed on as it came and a copy is decoded; an event stream is filtered (to hide the
/// usage report the relay asked for) only when it is not compressed.
fn inspect_for(headers: &HeaderMap, hide_usage: bool) -> (Inspect, bool) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_ascii_lowercase())
        .unwrap_or_default();
    let is_sse = content_type.starts_with(b"text/event-stream");
    let is_json = content_type.windows(4).any(|w| w == b"json");
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    let scan = if is_sse {
        Scan::Sse(SseScanner::new(false))
    } else if is_json {
        Scan::Json(JsonUsage::default())
    } else {
        return (Inspect::None, false);
    };
    let inspect = match (encoding, scan) {
        (Some(encoding), scan) => Decoded::new(encoding, scan)
            .map(|d| Inspect::Decoded(Box::new(d)))
            .unwrap_or(Inspect::None),
        (None, Scan::Sse(_)) => Inspect::Sse(SseScanner::new(hide_usage)),
        (None, Scan::Json(scanner)) => Inspect::Json(scanner),
    };
    (inspect, is_sse)
}

/// The request for the provider: the client's method, the upstream URL, the headers as
/// `forward` made them and the body as policy left it.
fn upstream_request(
    method: &Method,
    url: url::Url,
    headers: HeaderMap,
    body: Spliced,
) -> Result<http::Request<UpstreamBody>, http::Error> {
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(http::Uri::try_from(String::from(url))?)
        .body(UpstreamBody::new(body))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Memory is reserved for bodies in KiB units: a `u32` of them covers any body size.
const KIB: u64 = 1024;

fn reserve(
    memory: &Arc<tokio::sync::Semaphore>,
    held: &mut Option<OwnedSemaphorePermit>,
    bytes: u64,
) -> Result<(), ApiError> {
    let units = u32::try_from(bytes.div_ceil(KIB)).map_err(|_| ApiError::RequestTooLarge)?;
    if units == 0 {
        return Ok(());
    }
    let permit = memory
        .clone()
        .try_acquire_many_owned(units)
        .map_err(|_| ApiError::RelayBusy)?;
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

/// Reads the whole request body, refusing past `limit` bytes (early, when the client
/// announced its length), when it takes longer than `timeout` (a client that trickles its
/// body must not hold a connection and a task forever), and when the bodies of all calls
/// in flight would hold more memory than the relay allows (503, retryable). Returns the
/// body and its share of that memory, to be released once it has been forwarded.
pub(super) async fn read_body<S, B, E>(
    body: S,
    headers: &HeaderMap,
    limit: u64,
    timeout: std::time::Duration,
    memory: &Arc<tokio::sync::Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: Buf,
{
    tokio::time::timeout(timeout, read_all(body, headers, limit, memory))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

async fn read_all<S, B, E>(
    mut body: S,
    headers: &HeaderMap,
    limit: u64,
    memory: &Arc<tokio::sync::Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: Buf,
{
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::RequestTooLarge);
    }
    let mut held = None;
    let mut reserved = announced.unwrap_or(0);
    reserve(memory, &mut held, reserved)?;
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::BadRequest)?;
        let len = buf.len() as u64 + chunk.remaining() as u64;
        if len > limit {
            return Err(ApiError::RequestTooLarge);
        }
        if len > reserved {
            // A body of unannounced length: reserved as it grows, in steps (its buffer
            // doubles as it grows, too).
            let want = len.max(reserved.saturating_mul(2)).min(limit);
            reserve(memory, &mut held, want - reserved)?;
            reserved = want;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok((buf.freeze(), held))
}
