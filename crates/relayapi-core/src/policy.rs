//! What a token may do. This module holds the policy type and the parsing of its parts; the
//! relay asks it whether a request is allowed.

use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Everything that limits a token, as stored and enforced: its counts, its lifetime and
/// its policy. Tokens show it flattened, with the policy under `policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Most calls; `None`: unlimited.
    pub max_calls: Option<i64>,
    /// Budget of total (prompt + completion) tokens; `None`: unlimited.
    pub max_total_tokens: Option<i64>,
    /// When the token stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    pub policy: Policy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Allowed models; a trailing `*` matches a prefix. Empty: any model.
    pub models: Vec<String>,
    /// Allowed `Origin` values, exactly. Empty: any origin, or none.
    pub origins: Vec<String>,
    /// Allowed client networks. Empty: any address.
    pub ips: Vec<IpNet>,
    /// Allowed endpoints, `[METHODS ]PATH` (see [`parse_endpoint`]); a trailing `*` matches a
    /// prefix. Empty: the provider's defaults.
    pub endpoints: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: Option<u32>,
    /// Cap on the output tokens a request may ask for.
    pub max_output_tokens: Option<u32>,
    /// Longest a realtime session may stay open, in seconds (within the relay's own limit).
    pub max_session_secs: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("invalid model pattern {0:?}: must be non-empty, with `*` only at the end")]
    Model(String),
    #[error("invalid origin {0:?}: expected scheme://host[:port], e.g. https://app.example.com")]
    Origin(String),
    #[error("invalid IP range {0:?}: expected a CIDR such as 203.0.113.0/24 or an address")]
    Ip(String),
    #[error(
        "invalid endpoint {0:?}: expected [METHOD[,METHOD…]|*] /PATH, with `*` only at the end of the path"
    )]
    Endpoint(String),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl Policy {
    /// A token with origins refuses requests without `Origin`.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.origins.is_empty() || origin.is_some_and(|o| self.origins.iter().any(|a| a == o))
    }

    /// `None` (an address that could not be determined) passes only when no range is set.
    pub fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        self.ips.is_empty() || ip.is_some_and(|ip| self.ips.iter().any(|net| net.contains(&ip)))
    }

    /// Without explicit endpoints, only the provider's inference endpoints. `path` is the
    /// normalized path, the one that is forwarded.
    pub fn endpoint_allowed(
        &self,
        family: crate::providers::Family,
        method: &http::Method,
        path: &str,
    ) -> bool {
        if self.endpoints.is_empty() {
            return crate::providers::default_endpoint_allowed(family, method, path);
        }
        self.endpoints.iter().any(|rule| {
            let (methods, pattern) = split_endpoint(rule);
            pattern_matches(pattern, path)
                && match methods {
                    Some("*") => true,
                    Some(list) => list.split(',').any(|m| {
                        m == method.as_str() || (m == "GET" && method == http::Method::HEAD)
                    }),
                    // No method written: the one inference uses on that path.
                    None => {
                        let usual = crate::providers::inference_method(family, path);
                        method == usual
                            || (usual == http::Method::GET && method == http::Method::HEAD)
                    }
                }
        })
    }

    pub fn model_allowed(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| pattern_matches(p, model))
    }
}

/// An endpoint rule's methods (if written) and path pattern.
fn split_endpoint(rule: &str) -> (Option<&str>, &str) {
    match rule.split_once(' ') {
        Some((methods, pattern)) => (Some(methods), pattern),
        None => (None, rule),
    }
}

/// Does a model pattern allow every model (`*`)? Such a pattern does not meet an issuer's
/// `--require model`.
pub fn model_pattern_is_catch_all(pattern: &str) -> bool {
    pattern == "*"
}

/// Does an endpoint rule allow every path (`/*`, with any methods)? Such a rule does not
/// meet an issuer's `--require endpoint`.
pub fn endpoint_rule_is_catch_all(rule: &str) -> bool {
    split_endpoint(rule).1 == "/*"
}

/// Does `value` match `pattern`, where a trailing `*` matches any suffix?
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn valid_pattern(p: &str) -> bool {
    let body = p.strip_suffix('*').unwrap_or(p);
    !p.is_empty() && !body.contains('*') && !p.chars().any(char::is_whitespace)
}

pub fn parse_model(s: &str) -> Result<String, PolicyError> {
    if valid_pattern(s) {
        Ok(s.to_string())
    } else {
        Err(PolicyError::Model(s.to_string()))
    }
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// An endpoint rule: `[METHODS ]PATH`. METHODS is `*` (any) or a comma-separated list such
/// as `GET,DELETE`; without it the rule allows the method inference uses on the path (`GET`
/// on model listings, `POST` elsewhere). Returned in canonical form (methods upper-case).
pub fn parse_endpoint(s: &str) -> Result<String, PolicyError> {
    let bad = || PolicyError::Endpoint(s.to_string());
    let s = s.trim();
    let (methods, path) = match s.split_once(char::is_whitespace) {
        Some((methods, path)) => (Some(methods), path.trim_start()),
        None => (None, s),
    };
    let path_ok = path.starts_with('/')
        && valid_pattern(path)
        && !path.contains("..")
        && !path.contains(['?', '#', '%', ';']);
    if !path_ok {
        return Err(bad());
    }
    let Some(methods) = methods else {
        return Ok(path.to_string());
    };
    if methods == "*" {
        return Ok(format!("* {path}"));
    }
    let mut list: Vec<&str> = Vec::new();
    for m in methods.split(',') {
        let m = METHODS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(m.trim()))
            .ok_or_else(bad)?;
        if !list.contains(m) {
            list.push(m);
        }
    }
    Ok(format!("{} {path}", list.join(",")))
}

/// Origins are compared exactly as browsers send them: `scheme://host[:port]`, lowercase,
/// without a path. The parser normalizes what a person types (`https://App.example.com/`).
pub fn parse_origin(s: &str) -> Result<String, PolicyError> {
    let bad = || PolicyError::Origin(s.to_string());
    let url = url::Url::parse(s).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// A CIDR, or a single address (taken as /32 or /128).
pub fn parse_ip_range(s: &str) -> Result<IpNet, PolicyError> {
    IpNet::from_str(s)
        .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| PolicyError::Ip(s.to_string()))
}

pub fn parse_positive(name: &'static str, value: u32) -> Result<u32, PolicyError> {
    if value == 0 {
        Err(PolicyError::Zero(name))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("gpt-4o*", "gpt-4o-mini"));
        assert!(pattern_matches("gpt-4o", "gpt-4o"));
        assert!(!pattern_matches("gpt-4o", "gpt-4o-mini"));
        assert!(parse_model("gp*t").is_err());
        assert!(parse_model("").is_err());
        assert!(parse_endpoint("/v1/chat/*").is_ok());
        assert!(parse_endpoint("v1/chat").is_err());
        assert!(parse_endpoint("/v1/../admin").is_err());
        assert_eq!(
            parse_endpoint("get,delete  /v1/files/*").unwrap(),
            "GET,DELETE /v1/files/*"
        );
        assert_eq!(parse_endpoint("* /v1/*").unwrap(), "* /v1/*");
        for bad in [
            "FETCH /v1/x",
            "GET v1/x",
            "GET,, /v1",
            "/v1/a%2fb",
            "/v1/x;y",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert!(endpoint_rule_is_catch_all("/*") && endpoint_rule_is_catch_all("* /*"));
        assert!(!endpoint_rule_is_catch_all("/v1/*") && model_pattern_is_catch_all("*"));
    }

    #[test]
    fn endpoint_rules_carry_methods() {
        use crate::providers::Family::OpenAi;
        use http::Method;
        let rules = |r: &[&str]| Policy {
            endpoints: r.iter().map(|e| parse_endpoint(e).unwrap()).collect(),
            ..Policy::default()
        };
        // A path alone allows what inference does there, nothing more.
        let p = rules(&["/v1/*"]);
        assert!(p.endpoint_allowed(OpenAi, &Method::POST, "/v1/chat/completions"));
        assert!(!p.endpoint_allowed(OpenAi, &Method::GET, "/v1/chat/completions"));
        assert!(p.endpoint_allowed(OpenAi, &Method::GET, "/v1/models"));
        assert!(!p.endpoint_allowed(OpenAi, &Method::DELETE, "/v1/models/ft:x"));
        let p = rules(&["GET,DELETE /v1/files/*", "* /v1/batches"]);
        assert!(p.endpoint_allowed(OpenAi, &Method::DELETE, "/v1/files/f1"));
        assert!(p.endpoint_allowed(OpenAi, &Method::HEAD, "/v1/files/f1"));
        assert!(!p.endpoint_allowed(OpenAi, &Method::POST, "/v1/files/f1"));
        assert!(p.endpoint_allowed(OpenAi, &Method::PUT, "/v1/batches"));
    }

    #[test]
    fn request_checks() {
        let p = Policy {
            origins: vec!["https://a.example".into()],
            ips: vec![
                parse_ip_range("10.0.0.0/8").unwrap(),
                parse_ip_range("2001:db8::/32").unwrap(),
            ],
            models: vec!["gpt-4o*".into()],
            endpoints: vec!["/v1/chat/*".into()],
            ..Policy::default()
        };
        assert!(p.origin_allowed(Some("https://a.example")));
        assert!(!p.origin_allowed(Some("https://b.example")));
        assert!(!p.origin_allowed(None));
        assert!(p.ip_allowed(Some("10.2.3.4".parse().unwrap())));
        assert!(p.ip_allowed(Some("2001:db8::5".parse().unwrap())));
        assert!(!p.ip_allowed(Some("11.0.0.1".parse().unwrap())));
        assert!(!p.ip_allowed(None));
        assert!(p.model_allowed("gpt-4o-mini") && !p.model_allowed("o1"));
        use crate::providers::Family::OpenAi;
        let post = http::Method::POST;
        assert!(p.endpoint_allowed(OpenAi, &post, "/v1/chat/completions"));
        assert!(!p.endpoint_allowed(OpenAi, &post, "/v1/embeddings"));
        let open = Policy::default();
        assert!(open.origin_allowed(None) && open.ip_allowed(None) && open.model_allowed("x"));
        assert!(open.endpoint_allowed(OpenAi, &post, "/v1/embeddings"));
        assert!(!open.endpoint_allowed(OpenAi, &post, "/v1/files"));
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            parse_origin("https://App.Example.com/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert_eq!(
            parse_origin("https://example.com:443").unwrap(),
            "https://example.com"
        );
        for bad in [
            "example.com",
            "ftp://x.y",
            "https://x.y/path",
            "https://u@x.y",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_ranges() {
        assert_eq!(
            parse_ip_range("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_range("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(parse_ip_range("10.0.0.0/33").is_err());
        assert!(parse_ip_range("nope").is_err());
    }
}
