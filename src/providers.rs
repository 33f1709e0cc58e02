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

/// The API shape a provider speaks: decides default endpoints, where the output-token cap
/// goes and how usage is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// OpenAI and OpenAI-compatible APIs.
    OpenAi,
    Anthropic,
    Gemini,
    /// Azure OpenAI: OpenAI's API under `/openai/deployments/NAME` or `/openai/v1`.
    Azure,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub name: &'static str,
    pub family: Family,
    /// Accepts `stream_options.include_usage` on chat streams (so the relay can count tokens).
    pub stream_usage_option: bool,
    /// `None`: the base URL is given when the token is issued (`--upstream`).
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Headers added when the client sent none of that name.
    pub default_headers: &'static [(&'static str, &'static str)],
}

/// An OpenAI-compatible provider with bearer auth.
const fn compatible(name: &'static str, base_url: &'static str, stream_usage: bool) -> Provider {
    Provider {
        name,
        family: Family::OpenAi,
        stream_usage_option: stream_usage,
        base_url: Some(base_url),
        auth: AuthStyle::Bearer,
        default_headers: &[],
    }
}

/// The name of the entry for providers the registry does not know.
pub const CUSTOM: &str = "custom";

static REGISTRY: &[Provider] = &[
    compatible("openai", "https://api.openai.com", true),
    Provider {
        name: "anthropic",
        family: Family::Anthropic,
        stream_usage_option: false,
        base_url: Some("https://api.anthropic.com"),
        auth: AuthStyle::header("x-api-key"),
        default_headers: &[("anthropic-version", "2023-06-01")],
    },
    Provider {
        name: "gemini",
        family: Family::Gemini,
        stream_usage_option: false,
        base_url: Some("https://generativelanguage.googleapis.com"),
        auth: AuthStyle::header("x-goog-api-key"),
        default_headers: &[],
    },
    Provider {
        name: "azure",
        family: Family::Azure,
        stream_usage_option: true,
        base_url: None,
        auth: AuthStyle::header("api-key"),
        default_headers: &[],
    },
    compatible("deepseek", "https://api.deepseek.com", true),
    compatible("mistral", "https://api.mistral.ai", false),
    compatible("groq", "https://api.groq.com/openai", true),
    compatible("openrouter", "https://openrouter.ai/api", true),
    compatible("xai", "https://api.x.ai", true),
    compatible("together", "https://api.together.xyz", true),
    compatible("fireworks", "https://api.fireworks.ai/inference", true),
    compatible("perplexity", "https://api.perplexity.ai", false),
    compatible("moonshot", "https://api.moonshot.ai", true),
    compatible(
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/compatible-mode",
        true,
    ),
    compatible("zhipu", "https://open.bigmodel.cn/api/paas", false),
    compatible("siliconflow", "https://api.siliconflow.com", true),
    Provider {
        name: CUSTOM,
        family: Family::OpenAi,
        stream_usage_option: true,
        base_url: None,
        auth: AuthStyle::Bearer,
        default_headers: &[],
    },
];

/// Inference endpoints of the OpenAI API, after its version segment.
const OPENAI_EXACT: &[&str] = &[
    "/chat/completions",
    "/responses",
    "/completions",
    "/embeddings",
    "/moderations",
    "/models",
];
const OPENAI_PREFIXES: &[&str] = &["/images/", "/audio/", "/models/"];
const ANTHROPIC_EXACT: &[&str] = &[
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/complete",
    "/v1/models",
];
const GEMINI_ACTIONS: &[&str] = &[
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
];

/// Strips a leading version segment (`/v1`, `/v4`, `/v1beta`) if there is one.
fn strip_version(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let first = rest.split('/').next().unwrap_or("");
    let is_version = first.len() >= 2
        && first.starts_with('v')
        && first[1..].starts_with(|c: char| c.is_ascii_digit());
    if is_version {
        &rest[first.len()..]
    } else {
        path
    }
}

fn openai_inference(path: &str) -> bool {
    let rest = strip_version(path);
    OPENAI_EXACT.contains(&rest) || OPENAI_PREFIXES.iter().any(|p| rest.starts_with(p))
}

/// Is `path` one of the provider's inference endpoints, which a token may call without an
/// explicit `--endpoint`? Files, fine-tuning, batches, assistants, vector stores and admin
/// APIs are not.
pub fn default_endpoint_allowed(family: Family, path: &str) -> bool {
    match family {
        Family::OpenAi => openai_inference(path),
        Family::Azure => {
            if let Some(rest) = path.strip_prefix("/openai/deployments/") {
                rest.split_once('/')
                    .is_some_and(|(_, tail)| openai_inference(&format!("/v1/{tail}")))
            } else {
                path.strip_prefix("/openai").is_some_and(openai_inference)
            }
        }
        Family::Anthropic => ANTHROPIC_EXACT.contains(&path) || path.starts_with("/v1/models/"),
        Family::Gemini => {
            let rest = strip_version(path);
            match rest.strip_prefix("/models") {
                Some("") => true,
                Some(model) => {
                    let model = model.trim_start_matches('/');
                    match model.split_once(':') {
                        Some((name, action)) => {
                            !name.is_empty()
                                && !name.contains('/')
                                && GEMINI_ACTIONS.contains(&action)
                        }
                        None => !model.is_empty() && !model.contains('/'),
                    }
                }
                None => false,
            }
        }
    }
}

/// The model named in a Gemini-style path (`/v1beta/models/MODEL:action`).
pub fn model_in_path(family: Family, path: &str) -> Option<&str> {
    if family != Family::Gemini {
        return None;
    }
    let rest = strip_version(path).strip_prefix("/models/")?;
    let model = rest.split(':').next().unwrap_or(rest);
    (!model.is_empty()).then_some(model)
}

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
    fn default_endpoints_are_inference_only() {
        use Family::*;
        for ok in [
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/audio/speech",
            "/v1/models",
            "/chat/completions",
            "/v4/chat/completions",
            "/v1/responses",
        ] {
            assert!(default_endpoint_allowed(OpenAi, ok), "{ok}");
        }
        for no in [
            "/v1/files",
            "/v1/fine_tuning/jobs",
            "/v1/batches",
            "/v1/assistants",
            "/v1/vector_stores",
            "/v1/organization/users",
            "/v1/chat/completions/x/../y",
        ] {
            assert!(!default_endpoint_allowed(OpenAi, no), "{no}");
        }
        assert!(default_endpoint_allowed(Anthropic, "/v1/messages"));
        assert!(!default_endpoint_allowed(Anthropic, "/v1/messages/batches"));
        assert!(default_endpoint_allowed(
            Gemini,
            "/v1beta/models/gemini-2.0-flash:generateContent"
        ));
        assert!(default_endpoint_allowed(Gemini, "/v1beta/models"));
        assert!(!default_endpoint_allowed(Gemini, "/v1beta/files"));
        assert!(!default_endpoint_allowed(
            Gemini,
            "/v1beta/tunedModels/x:generateContent"
        ));
        assert!(!default_endpoint_allowed(Gemini, "/v1beta/models/x:delete"));
        assert!(default_endpoint_allowed(
            Azure,
            "/openai/deployments/gpt4/chat/completions"
        ));
        assert!(default_endpoint_allowed(
            Azure,
            "/openai/v1/chat/completions"
        ));
        assert!(!default_endpoint_allowed(
            Azure,
            "/openai/deployments/gpt4/files"
        ));
        assert_eq!(
            model_in_path(
                Gemini,
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Some("gemini-2.0-flash")
        );
        assert_eq!(model_in_path(OpenAi, "/v1beta/models/x:y"), None);
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
