//! CORS: the relay answers preflights itself (no token is sent on a preflight) and marks
//! real responses as readable by the calling origin.

use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const MAX_AGE_SECONDS: &str = "86400";

/// The answer to `OPTIONS`: echoes the origin and the requested headers.
pub fn preflight(headers: &HeaderMap) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    if let Some(origin) = headers.get(header::ORIGIN) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECONDS),
        );
    }
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    response
}

/// Lets the calling origin read a response (success or refusal).
pub fn allow_origin(response: &mut Response, origin: Option<&HeaderValue>) {
    let Some(origin) = origin else { return };
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    out.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
    out.append(header::VARY, HeaderValue::from_static("Origin"));
}
