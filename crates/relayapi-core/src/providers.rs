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
    /// The WebSocket path of its realtime API, where it has one (as listed by
    /// `relayapi providers`).
    pub realtime: Option<&'static str>,
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
        realtime: None,
    }
}

impl Provider {
    const fn with_realtime(mut self, path: &'static str) -> Self {
        self.realtime = Some(path);
        self
    }
}

/// The name of the entry for providers the registry does not know.
pub const CUSTOM: &str = "custom";

/// OpenAI's realtime WebSocket path, which OpenAI-compatible servers copy.
const OPENAI_REALTIME: &str = "/v1/realtime";
/// Gemini Live's WebSocket path (also under `v1beta` and `v1alpha`).
const GEMINI_LIVE: &str =
    "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent";

static REGISTRY: &[Provider] = &[
    compatible("openai", "https://api.openai.com", true).with_realtime(OPENAI_REALTIME),
    Provider {
        name: "anthropic",
        family: Family::Anthropic,
        stream_usage_option: false,
        base_url: Some("https://api.anthropic.com"),
        auth: AuthStyle::header("x-api-key"),
        default_headers: &[("anthropic-version", "2023-06-01")],
        realtime: None,
    },
    Provider {
        name: "gemini",
        family: Family::Gemini,
        stream_usage_option: false,
        base_url: Some("https://generativelanguage.googleapis.com"),
        auth: AuthStyle::header("x-goog-api-key"),
        default_headers: &[],
        realtime: Some(GEMINI_LIVE),
    },
    Provider {
        name: "azure",
        family: Family::Azure,
        stream_usage_option: true,
        base_url: None,
        auth: AuthStyle::header("api-key"),
        default_headers: &[],
        realtime: Some("/openai/v1/realtime"),
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
        realtime: Some(OPENAI_REALTIME),
    },
];

/// Inference endpoints of the OpenAI API, after its version segment: all take POST.
const OPENAI_EXACT: &[&str] = &[
    "/chat/completions",
    "/responses",
    "/completions",
    "/embeddings",
    "/moderations",
    // WebRTC call setup: the SDP offer goes through the relay, the media does not.
    "/realtime/calls",
];
const OPENAI_PREFIXES: &[&str] = &["/images/", "/audio/"];
const ANTHROPIC_EXACT: &[&str] = &["/v1/messages", "/v1/messages/count_tokens", "/v1/complete"];
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

/// An Azure path as the OpenAI path it stands for: `/openai/deployments/NAME/chat/completions`
/// and `/openai/v1/chat/completions` are both `/chat/completions`. `None`: not an Azure
/// OpenAI path.
fn azure_tail(path: &str) -> Option<&str> {
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (name, tail) = rest.split_once('/')?;
        return (!name.is_empty()).then_some(&path[path.len() - tail.len() - 1..]);
    }
    path.strip_prefix("/openai").map(strip_version)
}

/// The path after the provider's prefix and version, as the OpenAI API names it, for the
/// OpenAI-shaped families.
fn openai_tail(family: Family, path: &str) -> Option<&str> {
    match family {
        Family::OpenAi => Some(strip_version(path)),
        Family::Azure => azure_tail(path),
        _ => None,
    }
}

/// A model-listing path: `GET` on it is allowed by default, nothing else.
fn is_model_listing(family: Family, path: &str) -> bool {
    let one_model = |rest: &str| {
        rest.strip_prefix('/')
            .is_some_and(|m| !m.is_empty() && !m.contains('/'))
    };
    match family {
        Family::OpenAi | Family::Azure => openai_tail(family, path)
            .and_then(|t| t.strip_prefix("/models"))
            .is_some_and(|rest| rest.is_empty() || one_model(rest)),
        Family::Anthropic => path
            .strip_prefix("/v1/models")
            .is_some_and(|rest| rest.is_empty() || one_model(rest)),
        Family::Gemini => strip_version(path)
            .strip_prefix("/models")
            .is_some_and(|rest| rest.is_empty() || (one_model(rest) && !rest.contains(':'))),
    }
}

/// An inference path: `POST` on it is allowed by default.
fn is_inference(family: Family, path: &str) -> bool {
    match family {
        Family::OpenAi | Family::Azure => openai_tail(family, path).is_some_and(|rest| {
            OPENAI_EXACT.contains(&rest) || OPENAI_PREFIXES.iter().any(|p| rest.starts_with(p))
        }),
        Family::Anthropic => ANTHROPIC_EXACT.contains(&path),
        Family::Gemini => strip_version(path)
            .strip_prefix("/models/")
            .and_then(|m| m.split_once(':'))
            .is_some_and(|(name, action)| {
                !name.is_empty() && !name.contains('/') && GEMINI_ACTIONS.contains(&action)
            }),
    }
}

/// A realtime WebSocket path: OpenAI's `/v1/realtime` (Azure's `/openai/realtime` and
/// `/openai/v1/realtime`), Gemini Live's `BidiGenerateContent` under `v1`, `v1beta` or
/// `v1alpha`.
pub fn is_realtime_session(family: Family, path: &str) -> bool {
    match family {
        Family::OpenAi | Family::Azure => openai_tail(family, path) == Some("/realtime"),
        Family::Gemini => path
            .strip_prefix("/ws/google.ai.generativelanguage.")
            .and_then(|rest| rest.strip_suffix(".GenerativeService.BidiGenerateContent"))
            .is_some_and(|version| matches!(version, "v1" | "v1beta" | "v1alpha")),
        Family::Anthropic => false,
    }
}

/// The model a realtime session asks for in its URL: OpenAI's `?model=`, Azure's
/// `?deployment=` or `?model=`. Gemini names it in its first message instead.
pub fn realtime_model(family: Family, query: Option<&str>) -> Option<String> {
    let names: &[&str] = match family {
        Family::OpenAi => &["model"],
        Family::Azure => &["deployment", "model"],
        Family::Gemini | Family::Anthropic => return None,
    };
    let pairs: Vec<_> = url::form_urlencoded::parse(query?.as_bytes()).collect();
    names.iter().find_map(|name| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.to_string())
    })
}

/// The method a path is used with for inference: `GET` on model listings and realtime
/// sessions, `POST` elsewhere. An endpoint rule written without a method allows this one
/// (and `HEAD` with `GET`).
pub fn inference_method(family: Family, path: &str) -> &'static http::Method {
    if is_model_listing(family, path) || is_realtime_session(family, path) {
        &http::Method::GET
    } else {
        &http::Method::POST
    }
}

/// May a token without an explicit `--endpoint` make this call? Only inference: `POST` to
/// the provider's inference endpoints and `GET` on its model listing. Files, fine-tuning,
/// batches, assistants, vector stores, stored completions, deleting models and admin APIs
/// are not.
pub fn default_endpoint_allowed(family: Family, method: &http::Method, path: &str) -> bool {
    match *method {
        http::Method::POST => is_inference(family, path),
        http::Method::GET => is_model_listing(family, path) || is_realtime_session(family, path),
        http::Method::HEAD => is_model_listing(family, path),
        _ => false,
    }
}

/// The model a path names: Gemini's `/v1beta/models/MODEL:action`, and Azure's deployment
/// (`/openai/deployments/NAME/…`), which picks the model there.
pub fn model_in_path(family: Family, path: &str) -> Option<&str> {
    match family {
        Family::Gemini => {
            let rest = strip_version(path).strip_prefix("/models/")?;
            let model = rest.split(':').next().unwrap_or(rest);
            (!model.is_empty()).then_some(model)
        }
        Family::Azure => {
            let rest = path.strip_prefix("/openai/deployments/")?;
            let name = rest.split('/').next().unwrap_or(rest);
            (!name.is_empty()).then_some(name)
        }
        _ => None,
    }
}

/// What a call does, as far as the relay's policy and accounting care: where the output
/// cap goes, whether usage is asked for on a stream, and whether the provider reports
/// tokens for it. Decided once per call from the family and the normalized path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI `/chat/completions`.
    ChatCompletions,
    /// OpenAI's legacy `/completions`.
    Completions,
    /// OpenAI `/responses`.
    Responses,
    /// OpenAI `/embeddings`: tokens reported, no output.
    Embeddings,
    /// Anthropic `/v1/messages`.
    Messages,
    /// Anthropic's legacy `/v1/complete`.
    Complete,
    /// Gemini `:generateContent` and `:streamGenerateContent`.
    GenerateContent { stream: bool },
    /// OpenAI `/realtime/client_secrets`: an ephemeral key for a browser's realtime
    /// session, whose model and lifetime the token bounds.
    RealtimeClientSecret,
    /// A realtime WebSocket session: one call, however long, its tokens reported in
    /// OpenAI's `response.done` events or Gemini's `usageMetadata`.
    RealtimeSession,
    /// Anything else: no output cap, no token report expected.
    Other,
}

impl Operation {
    pub fn of(family: Family, method: &http::Method, path: &str) -> Operation {
        if *method == http::Method::GET && is_realtime_session(family, path) {
            return Operation::RealtimeSession;
        }
        if *method != http::Method::POST {
            return Operation::Other;
        }
        match family {
            Family::OpenAi | Family::Azure => match openai_tail(family, path) {
                Some("/chat/completions") => Operation::ChatCompletions,
                Some("/completions") => Operation::Completions,
                Some("/responses") => Operation::Responses,
                Some("/embeddings") => Operation::Embeddings,
                Some("/realtime/client_secrets") => Operation::RealtimeClientSecret,
                _ => Operation::Other,
            },
            Family::Anthropic => match path {
                "/v1/messages" => Operation::Messages,
                "/v1/complete" => Operation::Complete,
                _ => Operation::Other,
            },
            Family::Gemini => match path.rsplit_once(':') {
                Some((_, "generateContent")) if model_in_path(family, path).is_some() => {
                    Operation::GenerateContent { stream: false }
                }
                Some((_, "streamGenerateContent")) if model_in_path(family, path).is_some() => {
                    Operation::GenerateContent { stream: true }
                }
                _ => Operation::Other,
            },
        }
    }

    /// Does the provider report the tokens of a successful call? A call of such an
    /// operation that ends without a report is charged an estimate instead.
    pub fn metered(self) -> bool {
        !matches!(self, Operation::Other | Operation::RealtimeClientSecret)
    }
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

/// Where a token's calls go: its provider, the base URL and how the key is sent. Built once
/// when a token is issued or its row is read, so that the request path finds every part
/// already parsed.
#[derive(Debug, Clone)]
pub struct Route {
    provider: &'static Provider,
    /// The base URL set at issue, replacing the provider's, without a trailing slash.
    upstream: Option<String>,
    /// The auth style set at issue (custom providers only).
    auth: Option<AuthStyle>,
    /// The base URL calls go to: `upstream`, or the provider's own.
    base_url: url::Url,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Auth(#[from] BadAuthStyle),
    #[error("only a custom provider takes an auth style; {0} uses {1}")]
    AuthNotTaken(&'static str, AuthStyle),
}

impl Route {
    /// Validates a provider name with an optional upstream and auth style.
    pub fn new(
        provider: &str,
        upstream: Option<&str>,
        auth: Option<&str>,
    ) -> Result<Route, RouteError> {
        let entry =
            lookup(provider).ok_or_else(|| UpstreamError::UnknownProvider(provider.into()))?;
        let upstream = upstream.map(parse_upstream).transpose()?;
        let auth = auth.map(str::parse::<AuthStyle>).transpose()?;
        if auth.is_some() && entry.name != CUSTOM {
            return Err(RouteError::AuthNotTaken(entry.name, entry.auth.clone()));
        }
        let base = upstream
            .as_deref()
            .or(entry.base_url)
            .ok_or(UpstreamError::UpstreamRequired(entry.name))?;
        let base_url =
            url::Url::parse(base).map_err(|_| UpstreamError::BadUpstream(base.to_string()))?;
        Ok(Route {
            provider: entry,
            upstream,
            auth,
            base_url,
        })
    }

    pub fn provider(&self) -> &'static Provider {
        self.provider
    }

    /// The base URL set at issue, if any.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// The auth style set at issue, if any.
    pub fn auth_override(&self) -> Option<&AuthStyle> {
        self.auth.as_ref()
    }

    /// How the key is sent: the style set at issue, or the provider's.
    pub fn auth(&self) -> &AuthStyle {
        self.auth.as_ref().unwrap_or(&self.provider.auth)
    }

    pub fn base_url(&self) -> &url::Url {
        &self.base_url
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.provider.name == other.provider.name
            && self.upstream == other.upstream
            && self.auth == other.auth
    }
}

impl Eq for Route {}

/// As tokens have always shown it: `provider`, `upstream` and `auth`, the last two `null`
/// when the provider's own apply.
impl Serialize for Route {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Route", 3)?;
        st.serialize_field("provider", self.provider.name)?;
        st.serialize_field("upstream", &self.upstream)?;
        st.serialize_field("auth", &self.auth)?;
        st.end()
    }
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
        use http::Method;
        let post = |family, path| default_endpoint_allowed(family, &Method::POST, path);
        let get = |family, path| default_endpoint_allowed(family, &Method::GET, path);
        for ok in [
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/audio/speech",
            "/chat/completions",
            "/v4/chat/completions",
            "/v1/responses",
        ] {
            assert!(post(OpenAi, ok), "{ok}");
            assert!(!get(OpenAi, ok), "GET {ok}");
        }
        for no in [
            "/v1/files",
            "/v1/fine_tuning/jobs",
            "/v1/batches",
            "/v1/assistants",
            "/v1/vector_stores",
            "/v1/organization/users",
            "/v1/chat/completions/x/../y",
            "/v1/models",
        ] {
            assert!(!post(OpenAi, no), "{no}");
        }
        // Model listing is GET only: DELETE /v1/models/ID deletes a fine-tuned model.
        assert!(get(OpenAi, "/v1/models") && get(OpenAi, "/v1/models/ft:gpt-4o:acme:x"));
        assert!(default_endpoint_allowed(
            OpenAi,
            &Method::HEAD,
            "/v1/models"
        ));
        assert!(!default_endpoint_allowed(
            OpenAi,
            &Method::DELETE,
            "/v1/models/ft:gpt-4o:acme:x"
        ));
        assert!(!get(OpenAi, "/v1/models/a/b"));
        assert!(post(Anthropic, "/v1/messages"));
        assert!(get(Anthropic, "/v1/models") && !post(Anthropic, "/v1/models"));
        assert!(!post(Anthropic, "/v1/messages/batches"));
        assert!(post(
            Gemini,
            "/v1beta/models/gemini-2.0-flash:generateContent"
        ));
        assert!(get(Gemini, "/v1beta/models") && get(Gemini, "/v1beta/models/gemini-2.0-flash"));
        assert!(!get(
            Gemini,
            "/v1beta/models/gemini-2.0-flash:generateContent"
        ));
        assert!(!post(Gemini, "/v1beta/files"));
        assert!(!post(Gemini, "/v1beta/tunedModels/x:generateContent"));
        assert!(!post(Gemini, "/v1beta/models/x:delete"));
        assert!(post(Azure, "/openai/deployments/gpt4/chat/completions"));
        assert!(post(Azure, "/openai/v1/chat/completions"));
        assert!(!post(Azure, "/openai/deployments/gpt4/files"));
        assert!(get(Azure, "/openai/models") && !post(Azure, "/openai/models"));
        assert_eq!(
            model_in_path(
                Gemini,
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Some("gemini-2.0-flash")
        );
        assert_eq!(model_in_path(OpenAi, "/v1beta/models/x:y"), None);
        assert_eq!(
            model_in_path(Azure, "/openai/deployments/gpt-4o-prod/chat/completions"),
            Some("gpt-4o-prod")
        );
        assert_eq!(model_in_path(Azure, "/openai/v1/chat/completions"), None);
    }

    #[test]
    fn operations_are_classified_once_per_family() {
        use Family::*;
        use Operation::*;
        let post = http::Method::POST;
        assert_eq!(
            Operation::of(OpenAi, &post, "/v1/chat/completions"),
            ChatCompletions
        );
        assert_eq!(Operation::of(OpenAi, &post, "/v1/completions"), Completions);
        assert_eq!(Operation::of(OpenAi, &post, "/v1/responses"), Responses);
        assert_eq!(
            Operation::of(Azure, &post, "/openai/deployments/d/chat/completions"),
            ChatCompletions
        );
        assert_eq!(Operation::of(Anthropic, &post, "/v1/complete"), Complete);
        assert_eq!(
            Operation::of(Gemini, &post, "/v1beta/models/m:streamGenerateContent"),
            GenerateContent { stream: true }
        );
        assert_eq!(
            Operation::of(OpenAi, &http::Method::GET, "/v1/chat/completions"),
            Other
        );
        assert!(!Other.metered() && Embeddings.metered());
    }

    #[test]
    fn realtime_sessions_are_found_on_each_providers_path() {
        use Family::*;
        use http::Method;
        let session = |family, path| Operation::of(family, &Method::GET, path);
        for (family, path) in [
            (OpenAi, "/v1/realtime"),
            (Azure, "/openai/realtime"),
            (Azure, "/openai/v1/realtime"),
            (
                Gemini,
                "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
            ),
            (
                Gemini,
                "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent",
            ),
        ] {
            assert_eq!(session(family, path), Operation::RealtimeSession, "{path}");
            assert!(
                default_endpoint_allowed(family, &Method::GET, path),
                "{path}"
            );
            assert!(
                !default_endpoint_allowed(family, &Method::POST, path),
                "{path}"
            );
        }
        for (family, path) in [
            (OpenAi, "/v1/realtime/calls"),
            (OpenAi, "/v1/realtimes"),
            (Anthropic, "/v1/realtime"),
            (
                Gemini,
                "/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent",
            ),
        ] {
            assert_ne!(session(family, path), Operation::RealtimeSession, "{path}");
        }
        assert_eq!(
            realtime_model(OpenAi, Some("model=gpt-realtime&x=1")).as_deref(),
            Some("gpt-realtime")
        );
        assert_eq!(
            realtime_model(Azure, Some("api-version=2025-04-01&deployment=rt")).as_deref(),
            Some("rt")
        );
        assert_eq!(realtime_model(OpenAi, Some("model=")), None);
        assert_eq!(realtime_model(Gemini, Some("model=x")), None);
        let with_realtime: Vec<_> = all()
            .iter()
            .filter(|p| p.realtime.is_some())
            .map(|p| p.name)
            .collect();
        assert_eq!(with_realtime, ["openai", "gemini", "azure", "custom"]);
        for p in all() {
            if let Some(path) = p.realtime {
                assert!(is_realtime_session(p.family, path), "{}", p.name);
            }
        }
    }

    #[test]
    fn a_route_checks_provider_upstream_and_auth() {
        let openai = Route::new("openai", None, None).unwrap();
        assert_eq!(openai.base_url().as_str(), "https://api.openai.com/");
        assert_eq!(openai.auth(), &AuthStyle::Bearer);
        assert!(matches!(
            Route::new("nope", None, None),
            Err(RouteError::Upstream(UpstreamError::UnknownProvider(p))) if p == "nope"
        ));
        assert!(matches!(
            Route::new("azure", None, None),
            Err(RouteError::Upstream(UpstreamError::UpstreamRequired(
                "azure"
            )))
        ));
        let custom = Route::new(
            "custom",
            Some("http://127.0.0.1:9000/v1/"),
            Some("x-api-key"),
        )
        .unwrap();
        assert_eq!(custom.upstream(), Some("http://127.0.0.1:9000/v1"));
        assert_eq!(
            custom.auth_override(),
            Some(&AuthStyle::Header("x-api-key".into()))
        );
        assert!(Route::new("custom", Some("file:///etc/passwd"), None).is_err());
        assert!(Route::new("custom", Some("http://u:p@host"), None).is_err());
        assert!(matches!(
            Route::new("custom", Some("http://h"), Some("carrier-pigeon")),
            Err(RouteError::Auth(_))
        ));
        assert!(matches!(
            Route::new("openai", None, Some("x-api-key")),
            Err(RouteError::AuthNotTaken("openai", AuthStyle::Bearer))
        ));
    }
}
