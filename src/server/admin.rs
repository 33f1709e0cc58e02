//! The admin HTTP API (`serve --admin-token-env VAR`): the same operations as the CLI,
//! through the same service layer, for backends that mint tokens.
//!
//! Routes under `/admin/v1`; every one needs `Authorization: Bearer <admin secret>`,
//! compared in constant time. `docs/admin-api.md` and `docs/openapi.yaml` describe them.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::reply::{Reply, Response};

use super::AppState;
use super::errors::AdminError;
use super::proxy::read_body;
use crate::secret::SecretString;
use crate::service::{self, IssueRequest, LimitsChange, UsageQuery};
use crate::store::{TokenRecord, UsageGroup};

/// Largest admin request body.
const MAX_BODY: u64 = 64 * 1024;

/// Every admin route: method and path, as `docs/openapi.yaml` must list them.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/admin/v1/tokens"),
    ("get", "/admin/v1/tokens"),
    ("get", "/admin/v1/tokens/{id}"),
    ("patch", "/admin/v1/tokens/{id}"),
    ("delete", "/admin/v1/tokens/{id}"),
    ("get", "/admin/v1/usage"),
    ("get", "/admin/v1/relays"),
];

/// `POST /admin/v1/tokens`: the fields of `token issue`.
#[derive(Debug, Deserialize)]
struct IssueBody {
    #[serde(default = "default_provider")]
    provider: String,
    upstream: Option<String>,
    auth: Option<String>,
    name: Option<String>,
    api_key: String,
    #[serde(flatten)]
    limits: LimitsChange,
    #[serde(flatten)]
    unknown: Unknown,
}

fn default_provider() -> String {
    "openai".into()
}

/// `PATCH /admin/v1/tokens/{id}`: a field left out stays; `null` clears it; a value sets it.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(default, deserialize_with = "service::present")]
    name: Option<Option<String>>,
    #[serde(flatten)]
    limits: LimitsChange,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The fields no flattened part took: serde's `deny_unknown_fields` does not work with
/// `flatten`, so they are collected and refused by name.
type Unknown = serde_json::Map<String, serde_json::Value>;

fn refuse_unknown(unknown: &Unknown) -> Result<(), AdminError> {
    match unknown.keys().next() {
        None => Ok(()),
        Some(key) => Err(AdminError::Invalid {
            param: "body".into(),
            message: format!("invalid JSON body: unknown field `{key}`"),
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    by: Option<String>,
    token: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn view(record: &TokenRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(record).expect("records serialize");
    v["status"] = serde_json::to_value(record.status(Utc::now())).expect("status serializes");
    v
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::Invalid {
        param: "body".into(),
        message: format!("invalid JSON body: {e}"),
    })
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AdminError> {
    serde_urlencoded::from_str(query).map_err(|e| AdminError::Invalid {
        param: "query".into(),
        message: format!("invalid query: {e}"),
    })
}

fn authorized(headers: &HeaderMap, secret: &SecretString) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    secret.ct_eq(presented.trim())
}

/// The admin routes. They answer every path under `/admin/`, so nothing there reaches the
/// relay.
pub fn routes(
    state: Arc<AppState>,
    secret: Arc<SecretString>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("admin")
        .and(warp::path::tail())
        .and(warp::method())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |tail: warp::path::Tail,
                  method: Method,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let state = state.clone();
                let secret = secret.clone();
                // Boxed: with every admin handler's state this future is several KiB, and
                // inline it would size the router's future, of which hyper keeps one per
                // connection (relay connections included).
                Box::pin(async move {
                    let path = tail.as_str().to_string();
                    if !authorized(&headers, &secret) {
                        tracing::warn!(method = %method, path = %path, "admin request with a missing or wrong admin token");
                        return AdminError::Unauthorized.into_response();
                    }
                    let body = match read_body(Box::pin(body), &headers, MAX_BODY, state.config.client_timeout, &state.body_memory).await {
                        Ok((body, _memory)) => body,
                        Err(_) => {
                            return AdminError::Invalid {
                                param: "body".into(),
                                message: format!("the body is unreadable or over {MAX_BODY} bytes"),
                            }
                            .into_response();
                        }
                    };
                    match dispatch(&state, &method, &path, &query, &body).await {
                        Ok(response) => response,
                        Err(e) => {
                            tracing::info!(method = %method, path = %path, code = e.code(), "admin request refused");
                            e.into_response()
                        }
                    }
                })
            },
        )
}

async fn dispatch(
    state: &AppState,
    method: &Method,
    path: &str,
    query: &str,
    body: &Bytes,
) -> Result<Response, AdminError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let store = &state.store;
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "tokens"]) => {
            let b: IssueBody = parse_body(body)?;
            refuse_unknown(&b.unknown)?;
            let request = IssueRequest {
                provider: b.provider,
                upstream: b.upstream,
                auth: b.auth,
                name: b.name,
                api_key: SecretString::new(b.api_key),
                limits: b.limits,
            };
            let ring = state.tokens.ring();
            let issued = service::issue(store, &ring, request).await?;
            let mut v = view(&issued.record);
            v["token"] = issued.token.expose().into();
            tracing::info!(token_id = %issued.record.id, "token issued through the admin API");
            Ok(json(StatusCode::CREATED, &v))
        }
        ("GET", ["v1", "tokens"]) => {
            let q: ListQuery = parse_query(query)?;
            let records = service::list(store, q.all).await?;
            let views: Vec<_> = records.iter().map(view).collect();
            Ok(json(StatusCode::OK, &views))
        }
        ("GET", ["v1", "tokens", id]) => Ok(json(
            StatusCode::OK,
            &view(&service::show(store, id).await?),
        )),
        ("PATCH", ["v1", "tokens", id]) => {
            let b: UpdateBody = parse_body(body)?;
            refuse_unknown(&b.unknown)?;
            let updated =
                service::update(store, id, b.name.map(Option::unwrap_or_default), &b.limits)
                    .await?;
            state.tokens.invalidate_id(&updated.id);
            Ok(json(StatusCode::OK, &view(&updated)))
        }
        ("DELETE", ["v1", "tokens", id]) => {
            let revoked = service::revoke(store, id).await?;
            // Seen at once by this process, not after the refresh bound.
            state.tokens.invalidate_id(&revoked.id);
            tracing::info!(token_id = %revoked.id, "token revoked through the admin API");
            Ok(json(StatusCode::OK, &view(&revoked)))
        }
        ("GET", ["v1", "usage"]) => {
            let q: UsageParams = parse_query(query)?;
            let by = match q.by.as_deref() {
                None | Some("token") => UsageGroup::Token,
                Some("model") => UsageGroup::Model,
                Some("day") => UsageGroup::Day,
                Some(other) => {
                    return Err(AdminError::Invalid {
                        param: "by".into(),
                        message: format!("by: {other:?} is not one of token, model, day"),
                    });
                }
            };
            let rows = service::usage(
                store,
                &UsageQuery {
                    by,
                    token: q.token,
                    since: q.since,
                    until: q.until,
                },
            )
            .await?;
            Ok(json(StatusCode::OK, &rows))
        }
        ("GET", ["v1", "relays"]) => Ok(json(StatusCode::OK, &service::relays(store).await?)),
        _ => Err(AdminError::NoRoute(format!(
            "no admin route {method} /admin/{path}"
        ))),
    }
}
