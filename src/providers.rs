//! The provider registry: where each provider lives and how it wants its API key.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How the real API key is sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY`
    Bearer,
    /// `NAME: KEY` (e.g. `x-api-key`, `x-goog-api-key`, `api-key`)
    Header(Cow<'static, str>),
    /// `?NAME=KEY`
    Query(Cow<'static, str>),
}

impl AuthStyle {
    const fn header(name: &'static str) -> Self {
        AuthStyle::Header(Cow::Borrowed(name))
    }
}

impl fmt::Display for AuthStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthStyle::Bearer => f.write_str("bearer"),
            AuthStyle::Header(name) if name == "x-api-key" => f.write_str("x-api-key"),
            AuthStyle::Header(name) => write!(f, "header:{name}"),
            AuthStyle::Query(name) => write!(f, "query:{name}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid auth style {0:?}: expected bearer, x-api-key, header:NAME or query:NAME")]
pub struct BadAuthStyle(String);

impl FromStr for AuthStyle {
    type Err = BadAuthStyle;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let token_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        let name_ok = |n: &str| !n.is_empty() && n.chars().all(token_char);
        match s {
            "bearer" => Ok(AuthStyle::Bearer),
            "x-api-key" => Ok(AuthStyle::header("x-api-key")),
            _ => match s.split_once(':') {
                Some(("header", name)) if name_ok(name) => {
                    Ok(AuthStyle::Header(Cow::Owned(name.to_ascii_lowercase())))
                }
                Some(("query", name)) if name_ok(name) => {
                    Ok(AuthStyle::Query(Cow::Owned(name.to_string())))
                }
                _ => Err(BadAuthStyle(s.to_string())),
            },
        }
    }
}

impl Serialize for AuthStyle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub name: &'static str,
    /// `None`: the base URL is given when the token is issued (`--upstream`).
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Headers added when the client sent none of that name.
    pub default_headers: &'static [(&'static str, &'static str)],
}

const fn provider(name: &'static str, base_url: &'static str, auth: AuthStyle) -> Provider {
    Provider {
        name,
        base_url: Some(base_url),
        auth,
        default_headers: &[],
    }
}

/// The name of the entry for providers the registry does not know.
pub const CUSTOM: &str = "custom";

static REGISTRY: &[Provider] = &[
    provider("openai", "https://api.openai.com", AuthStyle::Bearer),
    Provider {
        name: "anthropic",
        base_url: Some("https://api.anthropic.com"),
        auth: AuthStyle::header("x-api-key"),
        default_headers: &[("anthropic-version", "2023-06-01")],
    },
    provider(
        "gemini",
        "https://generativelanguage.googleapis.com",
        AuthStyle::header("x-goog-api-key"),
    ),
    Provider {
        name: "azure",
        base_url: None,
        auth: AuthStyle::header("api-key"),
        default_headers: &[],
    },
    provider("deepseek", "https://api.deepseek.com", AuthStyle::Bearer),
    provider("mistral", "https://api.mistral.ai", AuthStyle::Bearer),
    provider("groq", "https://api.groq.com/openai", AuthStyle::Bearer),
    provider("openrouter", "https://openrouter.ai/api", AuthStyle::Bearer),
    provider("xai", "https://api.x.ai", AuthStyle::Bearer),
    provider("together", "https://api.together.xyz", AuthStyle::Bearer),
    provider(
        "fireworks",
        "https://api.fireworks.ai/inference",
        AuthStyle::Bearer,
    ),
    provider("perplexity", "https://api.perplexity.ai", AuthStyle::Bearer),
    provider("moonshot", "https://api.moonshot.ai", AuthStyle::Bearer),
    provider(
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/compatible-mode",
        AuthStyle::Bearer,
    ),
    provider(
        "zhipu",
        "https://open.bigmodel.cn/api/paas",
        AuthStyle::Bearer,
    ),
    provider(
        "siliconflow",
        "https://api.siliconflow.com",
        AuthStyle::Bearer,
    ),
    Provider {
        name: CUSTOM,
        base_url: None,
        auth: AuthStyle::Bearer,
        default_headers: &[],
    },
];

pub fn all() -> &'static [Provider] {
    REGISTRY
}

pub fn lookup(name: &str) -> Option<&'static Provider> {
    REGISTRY.iter().find(|p| p.name == name)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("unknown provider {0:?} (run `relayapi providers` for the list, or use `custom`)")]
    UnknownProvider(String),
    #[error("provider {0} has no fixed base URL: give one with --upstream")]
    UpstreamRequired(&'static str),
    #[error(
        "invalid upstream URL {0:?}: expected http(s)://host[:port][/path], without query or credentials"
    )]
    BadUpstream(String),
}

/// Checks an upstream base URL and returns it without a trailing slash.
pub fn parse_upstream(s: &str) -> Result<String, UpstreamError> {
    let bad = || UpstreamError::BadUpstream(s.to_string());
    let url = url::Url::parse(s).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Validates a provider name with an optional upstream override, for issuing a token.
pub fn resolve(
    provider: &str,
    upstream: Option<&str>,
) -> Result<(&'static Provider, Option<String>), UpstreamError> {
    let entry = lookup(provider).ok_or_else(|| UpstreamError::UnknownProvider(provider.into()))?;
    let upstream = upstream.map(parse_upstream).transpose()?;
    if entry.base_url.is_none() && upstream.is_none() {
        return Err(UpstreamError::UpstreamRequired(entry.name));
    }
    Ok((entry, upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_styles_parse_and_print() {
        for s in ["bearer", "x-api-key", "header:api-key", "query:key"] {
            assert_eq!(s.parse::<AuthStyle>().unwrap().to_string(), s);
        }
        for bad in ["", "basic", "header:", "query:a b", "header:x:y"] {
            assert!(bad.parse::<AuthStyle>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_checks_provider_and_upstream() {
        assert!(resolve("openai", None).is_ok());
        assert_eq!(
            resolve("nope", None).unwrap_err(),
            UpstreamError::UnknownProvider("nope".into())
        );
        assert_eq!(
            resolve("azure", None).unwrap_err(),
            UpstreamError::UpstreamRequired("azure")
        );
        let (_, up) = resolve("custom", Some("http://127.0.0.1:9000/v1/")).unwrap();
        assert_eq!(up.as_deref(), Some("http://127.0.0.1:9000/v1"));
        assert!(resolve("custom", Some("file:///etc/passwd")).is_err());
        assert!(resolve("custom", Some("http://u:p@host")).is_err());
    }
}
