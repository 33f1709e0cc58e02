//! Every refusal the relay makes, and the one place that turns it into an HTTP status and
//! an OpenAI-shaped body. Messages are fixed text: never a secret, never internal detail.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(
        "no API token: send it as `Authorization: Bearer <token>`, `x-api-key`, `x-goog-api-key`, `api-key` or `?key=`"
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
    #[error("the request path is not allowed")]
    InvalidPath,
    #[error("the request could not be read")]
    BadRequest,
    #[error("the model could not be read from the request body")]
    ModelUnreadable,
    #[error("the request body has an invalid output-token field")]
    BadOutputTokens,
    #[error("the upstream provider could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream provider did not answer in time")]
    UpstreamTimeout,
    #[error("the token store is unavailable; try again shortly")]
    StoreUnavailable,
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
            InvalidPath | BadRequest | ModelUnreadable | BadOutputTokens => StatusCode::BAD_REQUEST,
            UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            StoreUnavailable | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
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
            InvalidPath => "invalid_path",
            BadRequest | ModelUnreadable | BadOutputTokens => "invalid_request",
            UpstreamUnreachable => "upstream_unreachable",
            UpstreamTimeout => "upstream_timeout",
            StoreUnavailable => "store_unavailable",
            ShuttingDown => "shutting_down",
            NotFound => "not_found",
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
            RequestTooLarge | InvalidPath | BadRequest | ModelUnreadable | BadOutputTokens
            | NotFound => "invalid_request_error",
            UpstreamUnreachable | UpstreamTimeout | StoreUnavailable | ShuttingDown => "api_error",
        }
    }

    pub fn body(self) -> String {
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "code": self.code(),
            }
        })
        .to_string()
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::new(self.body().into());
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let ApiError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
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
}
