//! The relay's main path: token → checks → count → forward → stream back.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::{Reply, Response};

use super::body::{CallLog, RelayBody};
use super::counter::Counted;
use super::errors::ApiError;
use super::forward;
use super::{AppState, cors};
use crate::providers::{self, AuthStyle};
use crate::store::TokenStatus;

pub struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
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
            error.into_response()
        }
    };
    cors::allow_origin(&mut response, origin.as_ref());
    response
}

type Refusal = (ApiError, Option<String>);

async fn relay<S, B>(
    state: &AppState,
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
    let resolved = state
        .tokens
        .resolve(&presented)
        .await
        .map_err(|e| (e, None))?;
    let record = resolved.record();
    let id = record.id.clone();
    let refuse = |e: ApiError| (e, Some(id.clone()));
    match record.status(Utc::now()) {
        TokenStatus::Revoked => return Err(refuse(ApiError::TokenRevoked)),
        TokenStatus::Expired => return Err(refuse(ApiError::TokenExpired)),
        // Exhaustion is decided by the atomic count below, not by a snapshot.
        TokenStatus::Exhausted | TokenStatus::Active => {}
    }

    let body = read_body(body, &incoming.headers, state.config.max_body)
        .await
        .map_err(refuse)?;

    let Some(provider) = providers::lookup(&record.provider) else {
        tracing::error!(token_id = %id, provider = %record.provider, "unknown provider in store");
        return Err(refuse(ApiError::UpstreamUnreachable));
    };
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
    let url = forward::upstream_url(
        base,
        &incoming.path,
        incoming.query.as_deref(),
        &auth,
        api_key,
    )
    .map_err(|_| refuse(ApiError::InvalidPath))?;
    let headers =
        forward::upstream_headers(&incoming.headers, &auth, api_key, provider.default_headers)
            .map_err(|_| {
                tracing::error!(token_id = %id, "the sealed API key is not a valid header value");
                refuse(ApiError::UpstreamUnreachable)
            })?;

    // Everything that can refuse has run: from here on the call counts.
    let counted = state.counter.consume(&record).await.map_err(refuse)?;

    let request = state
        .client
        .request(incoming.method.clone(), url)
        .headers(headers)
        .body(body);
    let response = match tokio::time::timeout(state.config.upstream_timeout, request.send()).await {
        Err(_) => return Err(refuse(ApiError::UpstreamTimeout)),
        Ok(Err(e)) => return Err(refuse(upstream_failure(state, &id, counted, e).await)),
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    let mut headers = forward::response_headers(response.headers());
    let log = CallLog {
        token_id: id,
        provider: provider.name.to_string(),
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        status: status.as_u16(),
        started,
        ttfb: started.elapsed(),
        bytes_out: 0,
        end: "",
    };
    let body = RelayBody::new(response, state.config.idle_timeout, log);
    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = status;
    // SSE through proxies: ask intermediaries not to buffer.
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    *reply.headers_mut() = headers;
    Ok(reply)
}

/// Maps a failed send; a call that never reached the provider is given back.
async fn upstream_failure(
    state: &AppState,
    id: &str,
    counted: Counted,
    error: reqwest::Error,
) -> ApiError {
    if error.is_connect() {
        state.counter.give_back(id, counted).await;
        tracing::warn!(token_id = id, "upstream connection failed; call given back");
        ApiError::UpstreamUnreachable
    } else if error.is_timeout() {
        ApiError::UpstreamTimeout
    } else {
        tracing::warn!(token_id = id, "upstream request failed");
        ApiError::UpstreamUnreachable
    }
}

/// Reads the whole request body, refusing past `limit` bytes (early, when the client
/// announced its length).
async fn read_body<S, B>(mut body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError>
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
