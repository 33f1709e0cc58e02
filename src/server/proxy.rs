//! The relay's main path: token → checks → count → forward → stream back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::{Reply, Response};

use super::body::{CallRecord, End, Inspect, RelayBody};
use super::errors::ApiError;
use super::metrics::{ProviderLabel, ProviderStatus};
use super::tokens::ResolvedToken;
use super::{AppState, cors, forward};
use crate::providers::{self, AuthStyle, Family, Provider};
use crate::store::{TokenRecord, TokenStatus, UsageRecord};
use crate::usage::extract::{self, RequestInfo, SseScanner};

pub struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
}

/// Answers one relayed request; every refusal becomes an OpenAI-shaped error here.
pub async fn handle<S, B>(state: Arc<AppState>, incoming: Incoming, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
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
            if error == ApiError::OriginNotAllowed {
                // No Access-Control-Allow-Origin: the refused origin's page reads nothing.
                return error.into_response();
            }
            error.into_response()
        }
    };
    cors::allow_origin(&mut response, origin.as_ref());
    response
}

type Refusal = (ApiError, Option<String>);

/// The checks that need no body: cheap, and run before the body is read.
fn check_request(
    state: &AppState,
    incoming: &Incoming,
    resolved: &ResolvedToken,
    record: &TokenRecord,
    provider: &Provider,
) -> Result<(), ApiError> {
    match record.status(Utc::now()) {
        TokenStatus::Revoked => return Err(ApiError::TokenRevoked),
        TokenStatus::Expired => return Err(ApiError::TokenExpired),
        // Exhausted calls are decided by the atomic count, not by a snapshot.
        TokenStatus::Exhausted | TokenStatus::Active => {}
    }
    let policy = &record.policy;
    if !policy.endpoint_allowed(provider.family, &incoming.path) {
        return Err(ApiError::EndpointNotAllowed);
    }
    let origin = incoming
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !policy.origin_allowed(origin) {
        return Err(ApiError::OriginNotAllowed);
    }
    if !policy.ips.is_empty() {
        let ip = forward::client_ip(
            incoming.peer,
            &incoming.headers,
            &state.config.trusted_proxies,
        );
        if !policy.ip_allowed(ip) {
            return Err(ApiError::IpNotAllowed);
        }
    }
    if let Some(max) = record.max_total_tokens {
        // Tokens recorded plus output reserved by calls in flight here.
        if resolved.used_tokens(record) + state.limiter.reserved_tokens(&record.id) >= max {
            return Err(ApiError::TokenBudgetExhausted);
        }
    }
    Ok(())
}

/// What the body says, checked against the policy and rewritten where the policy caps it.
/// Returns the body to send, the model, whether it streams, and whether the usage-only
/// event must be hidden from the client.
fn prepare_body(
    incoming: &Incoming,
    record: &TokenRecord,
    provider: &Provider,
    body: Bytes,
) -> Result<(Bytes, Option<String>, bool, bool), ApiError> {
    let policy = &record.policy;
    let mut info = RequestInfo::parse(&body);
    let path_model = providers::model_in_path(provider.family, &incoming.path).map(str::to_string);
    let stream = info.stream || incoming.path.ends_with(":streamGenerateContent");
    if !policy.models.is_empty() {
        let mut seen = false;
        for model in [path_model.as_deref(), info.model.as_deref()]
            .into_iter()
            .flatten()
        {
            seen = true;
            if !policy.model_allowed(model) {
                return Err(ApiError::ModelNotAllowed);
            }
        }
        if !seen && !body.is_empty() {
            return Err(ApiError::ModelUnreadable);
        }
    }
    let chat_stream = info.stream
        && provider.stream_usage_option
        && matches!(provider.family, Family::OpenAi | Family::Azure)
        && incoming.path.ends_with("/chat/completions");
    let mut hide_usage = false;
    let mut rewritten = None;
    // The full JSON tree is built only when the body is to be rewritten.
    let object = if policy.max_output_tokens.is_some() || chat_stream {
        info.is_object.then(|| RequestInfo::object(&body)).flatten()
    } else {
        None
    };
    // A cap that cannot be applied refuses the call: a body the relay cannot read (not
    // JSON, not an object, `stream` of another type) must not carry an uncapped request.
    if policy.max_output_tokens.is_some() && object.is_none() && !body.is_empty() {
        return Err(ApiError::BodyUnreadable);
    }
    if let Some(mut json) = object {
        let mut changed = false;
        if let Some(cap) = policy.max_output_tokens {
            changed |= extract::cap_output_tokens(
                &mut json,
                provider.family,
                provider.name,
                &incoming.path,
                cap,
            )
            .map_err(|_| ApiError::BadOutputTokens)?;
        }
        if chat_stream {
            hide_usage = extract::request_stream_usage(&mut json);
            changed |= hide_usage;
        }
        if changed {
            rewritten = Some(Bytes::from(
                serde_json::to_vec(&json).expect("JSON re-serializes"),
            ));
        }
    }
    let model = path_model.or(info.model.take());
    let body = rewritten.unwrap_or(body);
    Ok((body, model, stream, hide_usage))
}

async fn relay<S, B>(
    state: &Arc<AppState>,
    incoming: &Incoming,
    body: S,
    started: Instant,
) -> Result<Response, Refusal>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let presented = forward::extract_token(&incoming.headers, incoming.query.as_deref())
        .ok_or((ApiError::MissingToken, None))?;
    if !forward::path_is_safe(&incoming.path) {
        return Err((ApiError::InvalidPath, None));
    }
    // The store's futures are large and awaited only briefly: boxed, they do not widen
    // this future, which lives (and is moved through the server's layers) for every call.
    let resolved = Box::pin(state.tokens.resolve(&presented))
        .await
        .map_err(|e| (e, None))?;
    let record = resolved.record();
    let id = record.id.clone();
    let refuse = |e: ApiError| (e, Some(id.clone()));
    let Some(provider) = providers::lookup(&record.provider) else {
        tracing::error!(token_id = %id, provider = %record.provider, "unknown provider in store");
        return Err(refuse(ApiError::UpstreamUnreachable));
    };
    check_request(state, incoming, &resolved, &record, provider).map_err(refuse)?;

    let config = &state.config;
    let body = read_body(
        body,
        &incoming.headers,
        config.max_body,
        config.client_timeout,
    )
    .await
    .map_err(refuse)?;
    let (body, model, stream, hide_usage) =
        prepare_body(incoming, &record, provider, body).map_err(refuse)?;

    let Some(base) = record.upstream.as_deref().or(provider.base_url) else {
        tracing::error!(token_id = %id, "token has no upstream");
        return Err(refuse(ApiError::UpstreamUnreachable));
    };
    let auth = match &record.auth {
        Some(style) => style.parse::<AuthStyle>().map_err(|_| {
            tracing::error!(token_id = %id, "invalid auth style in store");
            refuse(ApiError::UpstreamUnreachable)
        })?,
        None => provider.auth.clone(),
    };
    let api_key = &resolved.claims.api_key;
    let Some(base_url) = resolved.base_url(base) else {
        tracing::error!(token_id = %id, "invalid upstream URL in store");
        return Err(refuse(ApiError::UpstreamUnreachable));
    };
    let url = forward::upstream_url(
        base_url,
        &incoming.path,
        incoming.query.as_deref(),
        &auth,
        api_key,
    );
    let headers =
        forward::upstream_headers(&incoming.headers, &auth, api_key, provider.default_headers)
            .map_err(|_| {
                tracing::error!(token_id = %id, "the sealed API key is not a valid header value");
                refuse(ApiError::UpstreamUnreachable)
            })?;

    // Per-process limits last among the refusals, so a refused call spends none of them.
    let policy = &record.policy;
    let reserve = match (record.max_total_tokens, policy.max_output_tokens) {
        (Some(_), Some(cap)) => i64::from(cap),
        _ => 0,
    };
    let permit = state
        .limiter
        .admit(&id, policy.rpm, policy.concurrency, reserve)
        .map_err(refuse)?;

    // Everything that can refuse has run: from here on the call counts.
    Box::pin(state.counter.consume(&record))
        .await
        .map_err(refuse)?;

    let started_at = Utc::now();
    let bytes_in = body.len() as u64;
    let request = state
        .client
        .request(incoming.method.clone(), url)
        .headers(headers)
        .body(body);
    let sent = tokio::time::timeout(state.config.upstream_timeout, request.send()).await;
    let record_failure = |status: u16| {
        state.usage.record(UsageRecord {
            token_id: id.clone(),
            at: started_at,
            method: incoming.method.to_string(),
            path: incoming.path.clone(),
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
        })
    };
    let response = match sent {
        Err(_) => {
            record_failure(ApiError::UpstreamTimeout.status().as_u16());
            return Err(refuse(ApiError::UpstreamTimeout));
        }
        Ok(Err(e)) => {
            let (error, reached_provider) = Box::pin(upstream_failure(state, &id, e)).await;
            if reached_provider {
                record_failure(error.status().as_u16());
            }
            return Err(refuse(error));
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    let ttfb = started.elapsed();
    let provider_label = ProviderLabel {
        provider: provider.name.to_string(),
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
            provider: provider.name.to_string(),
            status: status.as_u16(),
        })
        .inc();
    let mut headers = forward::response_headers(response.headers());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_ascii_lowercase())
        .unwrap_or_default();
    let is_sse = content_type.starts_with(b"text/event-stream");
    let inspect = if is_sse {
        // SSE through proxies: ask intermediaries not to buffer.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Inspect::Sse(SseScanner::new(hide_usage))
    } else if content_type.windows(4).any(|w| w == b"json") {
        Inspect::Json(BytesMut::new())
    } else {
        Inspect::None
    };
    if hide_usage && is_sse {
        // The body may shrink by the hidden event.
        headers.remove(header::CONTENT_LENGTH);
    }
    let call = CallRecord {
        token_id: id,
        provider: provider.name,
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        model,
        status: status.as_u16(),
        started,
        started_at,
        ttfb,
        bytes_in,
        bytes_out: 0,
        stream: stream || is_sse,
        tally: Default::default(),
        end: End::Complete,
        usage: state.usage.clone(),
        metrics: state.metrics.clone(),
        _permit: permit,
        resolved: resolved.clone(),
    };
    let body = RelayBody::new(response, inspect, state.config.idle_timeout, call);
    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = status;
    *reply.headers_mut() = headers;
    Ok(reply)
}

/// Maps a failed send, and says whether the call may have reached the provider. One that
/// cannot have (the connection failed) is given back.
async fn upstream_failure(state: &AppState, id: &str, error: reqwest::Error) -> (ApiError, bool) {
    if error.is_connect() {
        state.counter.give_back(id).await;
        tracing::warn!(token_id = id, "upstream connection failed; call given back");
        (ApiError::UpstreamUnreachable, false)
    } else if error.is_timeout() {
        (ApiError::UpstreamTimeout, true)
    } else {
        tracing::warn!(token_id = id, "upstream request failed");
        (ApiError::UpstreamUnreachable, true)
    }
}

/// Reads the whole request body, refusing past `limit` bytes (early, when the client
/// announced its length) and when it takes longer than `timeout` (a client that trickles
/// its body must not hold a connection and a task forever).
pub(super) async fn read_body<S, B>(
    body: S,
    headers: &HeaderMap,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    tokio::time::timeout(timeout, read_all(body, headers, limit))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

async fn read_all<S, B>(mut body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::RequestTooLarge);
    }
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::BadRequest)?;
        if buf.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::RequestTooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}
