//! Every refusal the relay makes, and the one place that turns it into an HTTP status and
//! an OpenAI-shaped body. Messages are fixed text: never a secret, never internal detail.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(
        "no API token: send it as `Authorization: Bearer <token>`, `x-api-key`, `x-goog-api-key`, `api-key`, `?key=` or, on a WebSocket, the subprotocol `openai-insecure-api-key.<token>`"
    )]
    MissingToken,
    #[error("the token is not valid")]
    InvalidToken,
    #[error("the token has been revoked")]
    TokenRevoked,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token has no calls left")]
    CallsExhausted,
    #[error("the token has used its token budget")]
    TokenBudgetExhausted,
    #[error("this token may not use that model")]
    ModelNotAllowed,
    #[error("this token may not be used from this origin")]
    OriginNotAllowed,
    #[error("this token may not be used from this address")]
    IpNotAllowed,
    #[error("this token may not call that endpoint")]
    EndpointNotAllowed,
    #[error("too many requests for this token; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("too many requests in flight for this token")]
    TooManyConcurrentRequests,
    #[error("the request body is larger than this relay accepts")]
    RequestTooLarge,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("the request path is not allowed")]
    InvalidPath,
    #[error("the request could not be read")]
    BadRequest,
    #[error("the model could not be read from the request body")]
    ModelUnreadable,
    #[error("the request body must be a JSON object for this token")]
    BodyUnreadable,
    #[error("the request body's field {0} appears more than once")]
    DuplicateField(&'static str),
    #[error("the request body's field {0} is invalid")]
    InvalidField(&'static str),
    #[error("this token's output cap cannot cover that many choices; ask for fewer")]
    TooManyChoices,
    #[error("the multipart form could not be read: check its boundary and parts")]
    FormUnreadable,
    #[error(
        "WebSocket sessions are relayed only on a provider's realtime path (run `relayapi providers`)"
    )]
    WebSocketNotRelayed,
    #[error("this is a realtime path: open it as a WebSocket")]
    WebSocketRequired,
    #[error("the WebSocket handshake is invalid: it needs Sec-WebSocket-Key and version 13")]
    BadHandshake,
    #[error("the relay is holding as many request bodies as it may; retry shortly")]
    RelayBusy,
    #[error("the upstream provider could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream provider did not answer in time")]
    UpstreamTimeout,
    #[error("the token store is unavailable; try again shortly")]
    StoreUnavailable,
    #[error("the relay cannot read this token's record; ask its admin to fix or reissue it")]
    TokenRecordUnreadable,
    #[error("the relay is shutting down")]
    ShuttingDown,
    #[error("not found")]
    NotFound,
}

impl ApiError {
    pub fn status(self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingToken | InvalidToken | TokenRevoked | TokenExpired => StatusCode::UNAUTHORIZED,
            CallsExhausted
            | TokenBudgetExhausted
            | RateLimited { .. }
            | TooManyConcurrentRequests => StatusCode::TOO_MANY_REQUESTS,
            ModelNotAllowed | OriginNotAllowed | IpNotAllowed | EndpointNotAllowed => {
                StatusCode::FORBIDDEN
            }
            RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            InvalidPath | BadRequest | ModelUnreadable | BodyUnreadable | DuplicateField(_)
            | InvalidField(_) | TooManyChoices | FormUnreadable | WebSocketNotRelayed
            | BadHandshake => StatusCode::BAD_REQUEST,
            WebSocketRequired => StatusCode::UPGRADE_REQUIRED,
            UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            StoreUnavailable | ShuttingDown | RelayBusy => StatusCode::SERVICE_UNAVAILABLE,
            TokenRecordUnreadable => StatusCode::INTERNAL_SERVER_ERROR,
            NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// The stable code clients can match on.
    pub fn code(self) -> &'static str {
        use ApiError::*;
        match self {
            MissingToken => "missing_token",
            InvalidToken => "invalid_token",
            TokenRevoked => "token_revoked",
            TokenExpired => "token_expired",
            CallsExhausted => "calls_exhausted",
            TokenBudgetExhausted => "token_budget_exhausted",
            ModelNotAllowed => "model_not_allowed",
            OriginNotAllowed => "origin_not_allowed",
            IpNotAllowed => "ip_not_allowed",
            EndpointNotAllowed => "endpoint_not_allowed",
            RateLimited { .. } => "rate_limited",
            TooManyConcurrentRequests => "too_many_concurrent_requests",
            RequestTooLarge => "request_too_large",
            RequestTimeout => "request_timeout",
            InvalidPath => "invalid_path",
            BadRequest | ModelUnreadable | BodyUnreadable | DuplicateField(_) | InvalidField(_)
            | TooManyChoices | FormUnreadable => "invalid_request",
            UpstreamUnreachable => "upstream_unreachable",
            UpstreamTimeout => "upstream_timeout",
            StoreUnavailable => "store_unavailable",
            TokenRecordUnreadable => "token_record_unreadable",
            ShuttingDown => "shutting_down",
            RelayBusy => "relay_busy",
            NotFound => "not_found",
            WebSocketNotRelayed => "websocket_not_supported",
            WebSocketRequired => "websocket_required",
            BadHandshake => "invalid_handshake",
        }
    }

    /// OpenAI's `type` field.
    fn kind(self) -> &'static str {
        use ApiError::*;
        match self {
            MissingToken | InvalidToken | TokenRevoked | TokenExpired => "authentication_error",
            CallsExhausted
            | TokenBudgetExhausted
            | RateLimited { .. }
            | TooManyConcurrentRequests => "rate_limit_error",
            ModelNotAllowed | OriginNotAllowed | IpNotAllowed | EndpointNotAllowed => {
                "permission_error"
            }
            RequestTooLarge | RequestTimeout | InvalidPath | BadRequest | ModelUnreadable
            | BodyUnreadable | DuplicateField(_) | InvalidField(_) | TooManyChoices
            | FormUnreadable | NotFound | WebSocketNotRelayed | WebSocketRequired
            | BadHandshake => "invalid_request_error",
            UpstreamUnreachable
            | UpstreamTimeout
            | StoreUnavailable
            | TokenRecordUnreadable
            | ShuttingDown
            | RelayBusy => "api_error",
        }
    }

    /// Can the same request succeed if sent again? The official SDKs retry 408, 409, 429
    /// and 5xx by default, and follow `x-should-retry` over the status: a refusal that no
    /// retry can fix says so, so that a spent or revoked token is not asked three times.
    pub fn retryable(self) -> bool {
        use ApiError::*;
        matches!(
            self,
            RateLimited { .. }
                | TooManyConcurrentRequests
                | RequestTimeout
                | UpstreamUnreachable
                | UpstreamTimeout
                | StoreUnavailable
                | ShuttingDown
                | RelayBusy
        )
    }

    /// How long to wait before a retry can succeed, when the relay knows.
    fn retry_after_secs(self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(retry_after_secs),
            ApiError::TooManyConcurrentRequests | ApiError::RelayBusy => Some(1),
            _ => None,
        }
    }

    /// The field a refusal is about, as OpenAI's `param`.
    fn param(self) -> Option<&'static str> {
        match self {
            ApiError::DuplicateField(name) | ApiError::InvalidField(name) => Some(name),
            _ => None,
        }
    }

    pub fn body(self) -> String {
        error_body(self.kind(), self.code(), &self.to_string(), self.param())
    }

    pub fn into_response(self) -> Response {
        let mut response = json_response(self.status(), self.body());
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        headers.insert(
            "x-should-retry",
            HeaderValue::from_static(if self.retryable() { "true" } else { "false" }),
        );
        response
    }
}

/// `{"error": {"message", "type", "code", "param"?}}`: OpenAI's error shape.
fn error_body(kind: &str, code: &str, message: &str, param: Option<&str>) -> String {
    let mut error = serde_json::json!({ "message": message, "type": kind, "code": code });
    if let Some(param) = param {
        error["param"] = param.into();
    }
    serde_json::json!({ "error": error }).to_string()
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Errors of the admin API. A message may name a field and say what is wrong with it; it
/// never holds a secret (validation quotes only non-secret inputs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NoRoute(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("the token store is unavailable; try again shortly")]
    StoreUnavailable,
}

impl From<crate::request::BodyRefusal> for ApiError {
    fn from(refusal: crate::request::BodyRefusal) -> Self {
        use crate::request::BodyRefusal as R;
        match refusal {
            R::ModelNotAllowed => ApiError::ModelNotAllowed,
            R::ModelUnreadable => ApiError::ModelUnreadable,
            R::NotAnObject => ApiError::BodyUnreadable,
            R::Duplicate(name) => ApiError::DuplicateField(name),
            R::InvalidField(name) => ApiError::InvalidField(name),
            R::TooManyChoices => ApiError::TooManyChoices,
            R::MalformedForm => ApiError::FormUnreadable,
        }
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) | AdminError::NoRoute(_) => StatusCode::NOT_FOUND,
            AdminError::Ambiguous(_) => StatusCode::CONFLICT,
            AdminError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthorized => "invalid_admin_token",
            AdminError::Invalid { .. } => "invalid_request",
            AdminError::NotFound(_) => "token_not_found",
            AdminError::NoRoute(_) => "not_found",
            AdminError::Ambiguous(_) => "ambiguous_id",
            AdminError::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn into_response(self) -> Response {
        let kind = match self {
            AdminError::Unauthorized => "authentication_error",
            AdminError::StoreUnavailable => "api_error",
            _ => "invalid_request_error",
        };
        let param = match &self {
            AdminError::Invalid { param, .. } => Some(param.as_str()),
            _ => None,
        };
        json_response(
            self.status(),
            error_body(kind, self.code(), &self.to_string(), param),
        )
    }
}

impl From<crate::service::ServiceError> for AdminError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError;
        use crate::store::StoreError;
        match e {
            ServiceError::Invalid { field, message } => AdminError::Invalid {
                param: field.to_string(),
                message: format!("{field}: {message}"),
            },
            ServiceError::Store(StoreError::NotFound(id)) => {
                AdminError::NotFound(format!("no token with id {id}"))
            }
            ServiceError::Store(e @ StoreError::AmbiguousId { .. }) => {
                AdminError::Ambiguous(e.to_string())
            }
            ServiceError::Store(StoreError::BadId(id)) => AdminError::Invalid {
                param: "id".into(),
                message: format!("an id must be hex characters: {id}"),
            },
            ServiceError::Store(e) => {
                tracing::warn!(error = %e, "admin API store error");
                AdminError::StoreUnavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_openai_shape() {
        let v: serde_json::Value = serde_json::from_str(&ApiError::CallsExhausted.body()).unwrap();
        assert_eq!(v["error"]["code"], "calls_exhausted");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no calls left")
        );
        assert_eq!(
            ApiError::CallsExhausted.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn refusals_no_retry_can_fix_say_so() {
        let header = |e: ApiError| {
            let r = e.into_response();
            (
                r.headers()["x-should-retry"].to_str().unwrap().to_string(),
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        };
        for permanent in [
            ApiError::CallsExhausted,
            ApiError::TokenBudgetExhausted,
            ApiError::TokenRevoked,
            ApiError::TokenExpired,
            ApiError::InvalidToken,
            ApiError::ModelNotAllowed,
            ApiError::OriginNotAllowed,
            ApiError::EndpointNotAllowed,
            ApiError::RequestTooLarge,
        ] {
            assert_eq!(header(permanent), ("false".into(), None), "{permanent:?}");
        }
        assert_eq!(
            header(ApiError::RateLimited {
                retry_after_secs: 7
            }),
            ("true".into(), Some("7".into()))
        );
        assert_eq!(
            header(ApiError::TooManyConcurrentRequests),
            ("true".into(), Some("1".into()))
        );
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::DuplicateField("stream").body()).unwrap();
        assert_eq!(v["error"]["param"], "stream");
    }
}
