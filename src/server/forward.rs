//! Mapping a client request onto the upstream one: where the token is found, which headers
//! pass, where the request goes. Pure functions, so they can be tested (and fuzzed) alone.

use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::providers::AuthStyle;
use crate::secret::SecretString;

/// Headers SDKs put an API key in; all are removed before forwarding.
const TOKEN_HEADERS: [&str; 3] = ["x-api-key", "x-goog-api-key", "api-key"];
/// The query parameter Gemini SDKs put an API key in.
const TOKEN_QUERY_PARAM: &str = "key";
/// A browser cannot set headers on a WebSocket, so OpenAI's browser form carries the key
/// as one of the offered subprotocols: `openai-insecure-api-key.<key>`.
const TOKEN_PROTOCOL_PREFIX: &str = "openai-insecure-api-key.";

/// Hop-by-hop headers (RFC 9110 §7.6.1) and others that must not cross the relay.
const DROPPED_REQUEST_HEADERS: [&str; 19] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    // The browser's context is the relay's business, not the provider's: some providers
    // treat a request carrying Origin as a direct browser call.
    "origin",
    "referer",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    // They pick who pays (OpenAI bills the organization or project named here, when the
    // key may act for several): the key's owner decides that, not the page.
    "openai-organization",
    "openai-project",
    // Chosen by the relay for each call (see `upstream_accept_encoding`).
    "accept-encoding",
];

const DROPPED_RESPONSE_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
];

/// Is this a WebSocket handshake (`Upgrade: websocket`)?
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
}

/// The subprotocols a WebSocket client offers, in its order.
fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// The subprotocols passed on to the provider: all that were offered but the one carrying
/// the token.
pub fn upstream_protocols(headers: &HeaderMap) -> Vec<&str> {
    offered_protocols(headers)
        .filter(|p| !p.starts_with(TOKEN_PROTOCOL_PREFIX))
        .collect()
}

/// Finds the token wherever an SDK puts an API key. Order: Authorization, x-api-key,
/// x-goog-api-key, api-key, the WebSocket subprotocol form, then `?key=`.
pub fn extract_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        let bearer = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, rest)| rest.trim());
        if let Some(token) = bearer.filter(|t| !t.is_empty()) {
            return Some(token.to_string());
        }
    }
    for name in TOKEN_HEADERS {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    if let Some(token) = offered_protocols(headers)
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_string());
    }
    query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, v)| k == TOKEN_QUERY_PARAM && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    })
}

/// The client's address. `X-Forwarded-For` is believed only when the connection comes from
/// a trusted proxy: then the rightmost address that is not itself a trusted proxy is the
/// client. An unparseable entry on that walk gives `None` (treated as unknown).
pub fn client_ip(
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = peer?.ip().to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let ip: std::net::IpAddr = hop.parse().ok()?;
        let ip = ip.to_canonical();
        if !is_trusted(&ip) {
            return Some(ip);
        }
    }
    // Every hop is a trusted proxy: the first one is the closest thing to a client.
    match hops.first() {
        Some(first) => first
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical()),
        None => Some(peer),
    }
}

/// The path as policy sees it and as it is forwarded: one form for each request, so that
/// no spelling (`/v1/chat/completion%73`, `/v1/chat/completions/`, `//v1`) can be matched
/// one way and routed another.
///
/// - Percent-escapes of characters that may stand unescaped in a path segment (letters,
///   digits, `-._~`, `!$&'()*+,=:@`) are decoded; any other escape (`%2F`, `%5C`, `%25`,
///   `%00`, non-ASCII…) is refused.
/// - Empty segments are dropped (`//`, a trailing `/`).
/// - `.` and `..` segments, `;` (which some servers read as `..;/`), backslashes, control
///   characters and anything else outside a path segment's alphabet are refused.
pub fn normalize_path(raw: &str) -> Option<String> {
    fn segment_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b)
    }
    let rest = raw.strip_prefix('/')?;
    let mut out = String::with_capacity(raw.len());
    for segment in rest.split('/') {
        let mut decoded = String::with_capacity(segment.len());
        let mut bytes = segment.bytes();
        while let Some(b) = bytes.next() {
            let c = if b == b'%' {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()?
            } else {
                b
            };
            if !segment_char(c) {
                return None;
            }
            decoded.push(c as char);
        }
        match decoded.as_str() {
            "" => continue,
            "." | ".." => return None,
            _ => {
                out.push('/');
                out.push_str(&decoded);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The upstream URL: base (which may carry a path prefix) + path + the client's query
/// without token parameters, plus the key when the provider takes it in the query.
pub fn upstream_url(
    base: &url::Url,
    path: &str,
    query: Option<&str>,
    auth: &AuthStyle,
    api_key: &SecretString,
) -> url::Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    let key_param = match auth {
        AuthStyle::Query(name) => Some(name.as_ref()),
        _ => None,
    };
    // The URL parser drops tabs and newlines; drop them first, so that what is checked for
    // token parameters is what is sent (`k\tey=` would otherwise become `key=`).
    let query = query.map(|q| {
        if q.contains(['\t', '\n', '\r']) {
            std::borrow::Cow::Owned(q.replace(['\t', '\n', '\r'], ""))
        } else {
            std::borrow::Cow::Borrowed(q)
        }
    });
    let query = query.as_deref();
    let carries_token = |q: &str| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(k, _)| k == TOKEN_QUERY_PARAM || Some(k.as_ref()) == key_param)
    };
    match query {
        // The common case: nothing to remove or add, the query passes as sent.
        Some(q) if key_param.is_none() && !carries_token(q) => url.set_query(Some(q)),
        None if key_param.is_none() => url.set_query(None),
        _ => {
            let kept: Vec<(String, String)> = query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .filter(|(k, _)| k != TOKEN_QUERY_PARAM && Some(k.as_ref()) != key_param)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            url.set_query(None);
            if !kept.is_empty() || key_param.is_some() {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in &kept {
                    pairs.append_pair(k, v);
                }
                if let Some(name) = key_param {
                    pairs.append_pair(name, api_key.expose());
                }
            }
        }
    }
    url
}

/// The headers sent upstream: the client's, minus token carriers and hop-by-hop headers,
/// plus the real key in the provider's style and the provider's default headers.
pub fn upstream_headers(
    client: &HeaderMap,
    auth: &AuthStyle,
    api_key: &SecretString,
    defaults: &[(&'static str, &'static str)],
) -> Result<HeaderMap, warp::http::header::InvalidHeaderValue> {
    let connection_listed: Vec<String> = client
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        let n = name.as_str();
        if n == "authorization"
            || TOKEN_HEADERS.contains(&n)
            || DROPPED_REQUEST_HEADERS.contains(&n)
            || n.starts_with("sec-fetch-")
            // A WebSocket's own handshake headers: the relay makes its own upstream.
            || n.starts_with("sec-websocket-")
            || connection_listed.iter().any(|c| c == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    match auth {
        AuthStyle::Bearer => {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))?;
            value.set_sensitive(true);
            out.insert(header::AUTHORIZATION, value);
        }
        AuthStyle::Header(name) => {
            let mut value = HeaderValue::from_str(api_key.expose())?;
            value.set_sensitive(true);
            let name = HeaderName::from_bytes(name.as_bytes()).expect("validated at issue");
            out.insert(name, value);
        }
        AuthStyle::Query(_) => {}
    }
    for (name, value) in defaults {
        if !out.contains_key(*name) {
            out.insert(*name, HeaderValue::from_static(value));
        }
    }
    Ok(out)
}

/// The content codings the relay can decode (to read usage from a compressed response).
const DECODABLE: [&str; 4] = ["gzip", "br", "zstd", "deflate"];

/// What to ask the upstream for: the codings the client accepts that the relay can also
/// decode, so the client gets the upstream's bytes unchanged and the relay can still read
/// them; `identity` for streams (their events are read, and sometimes filtered, as they
/// pass) and when nothing else is shared.
pub fn upstream_accept_encoding(client: &HeaderMap, stream: bool) -> HeaderValue {
    let identity = HeaderValue::from_static("identity");
    if stream {
        return identity;
    }
    let mut accepted: Vec<&str> = Vec::new();
    for item in client
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        // `q=0` (however written) means "not acceptable".
        let refused = parts.any(|p| {
            p.replace(' ', "")
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                == Some(0.0)
        });
        if let Some(known) = DECODABLE.iter().find(|k| k.eq_ignore_ascii_case(coding))
            && !refused
            && !accepted.contains(known)
        {
            accepted.push(known);
        }
    }
    if accepted.is_empty() {
        identity
    } else {
        HeaderValue::from_str(&accepted.join(", ")).unwrap_or(identity)
    }
}

/// The upstream's response headers the client may see: hop-by-hop and the upstream's own
/// CORS headers (the relay sets its own) are dropped.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len() + 3);
    for (name, value) in upstream {
        let n = name.as_str();
        if DROPPED_RESPONSE_HEADERS.contains(&n) || n.starts_with("access-control-") {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_the_token_where_each_sdk_puts_it() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 6] = [
            (&[("authorization", "Bearer rly_a")], None),
            (
                &[(
                    "sec-websocket-protocol",
                    "realtime, openai-insecure-api-key.rly_a, openai-beta.realtime-v1",
                )],
                None,
            ),
            (&[("x-api-key", "rly_a")], None),
            (&[("x-goog-api-key", "rly_a")], None),
            (&[("api-key", "rly_a")], None),
            (&[], Some("alt=sse&key=rly_a")),
        ];
        for (pairs, query) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                extract_token(&h, query).as_deref(),
                Some("rly_a"),
                "{pairs:?} {query:?}"
            );
        }
        assert_eq!(
            extract_token(&headers(&[("authorization", "Basic abc")]), None),
            None
        );
        assert_eq!(
            extract_token(&headers(&[("authorization", "Bearer ")]), None),
            None
        );
        let browser = headers(&[(
            "sec-websocket-protocol",
            "realtime, openai-insecure-api-key.rly_a, openai-beta.realtime-v1",
        )]);
        assert_eq!(
            upstream_protocols(&browser),
            ["realtime", "openai-beta.realtime-v1"]
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 127.0.0.2")]);
        let from = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 1));
        assert_eq!(
            client_ip(from("127.0.0.1"), &h, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(from("198.51.100.1"), &h, &trusted),
            Some("198.51.100.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(from("127.0.0.1"), &h, &[]),
            Some("127.0.0.1".parse().unwrap())
        );
        let bad = headers(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(client_ip(from("127.0.0.1"), &bad, &trusted), None);
        assert_eq!(
            client_ip(from("127.0.0.1"), &HeaderMap::new(), &trusted),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn a_token_parameter_hidden_by_tabs_or_newlines_is_still_removed() {
        let base: url::Url = "https://api.example.test/v1".parse().unwrap();
        let key = SecretString::new("sk-real");
        for query in ["k\tey=rly_x&a=1", "ke\ry=rly_x&a=1", "a=1&\nkey=rly_x"] {
            let url = upstream_url(&base, "/chat", Some(query), &AuthStyle::Bearer, &key);
            assert!(
                url.query_pairs().all(|(k, _)| k != "key"),
                "{query:?} gave {url}"
            );
            assert!(
                url.query_pairs().any(|(k, v)| k == "a" && v == "1"),
                "{url}"
            );
        }
    }

    #[test]
    fn paths_are_normalized_once_or_refused() {
        for bad in [
            "/v1/../admin",
            "/v1/%2e%2e/admin",
            "/v1/%2E./x",
            "/v1/a%2fb",
            "/v1/a%5Cb",
            "/v1/a\\b",
            "/.",
            "v1",
            // Found by fuzzing: the URL parser drops tabs and newlines after the check.
            "/v1/.\t./.\n./admin",
            "/v1/%00x",
            "/v1/a%09b",
            "/v1/a%20b",
            "/v1/a%25b",
            "/v1/a%zz",
            "/v1/a%4",
            "/v1/%C3%A9",
            // Read as `..` by servers that strip matrix parameters.
            "/v1/models/..;/files",
            "/v1/x;a=b",
        ] {
            assert_eq!(normalize_path(bad), None, "{bad:?}");
        }
        for (raw, normal) in [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1/chat/completion%73", "/v1/chat/completions"),
            ("/v1/chat/completions/", "/v1/chat/completions"),
            ("//v1//chat/completions", "/v1/chat/completions"),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "/v1beta/models/gemini-2.0-flash:generateContent",
            ),
            ("/v1/models/ft%3Agpt-4o%3Aacme", "/v1/models/ft:gpt-4o:acme"),
            ("/v1/a.b/c..d", "/v1/a.b/c..d"),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Some(normal), "{raw}");
        }
    }

    #[test]
    fn the_upstream_is_asked_only_for_codings_the_relay_can_read() {
        let ask = |accept: &'static str, stream| {
            upstream_accept_encoding(&headers(&[("accept-encoding", accept)]), stream)
        };
        assert_eq!(
            ask("gzip, deflate, br, zstd", false),
            "gzip, deflate, br, zstd"
        );
        assert_eq!(ask("gzip, deflate, br, zstd", true), "identity");
        assert_eq!(ask("compress, x-gzip;q=0.5, br;q=0", false), "identity");
        assert_eq!(ask("GZIP;q=0.8", false), "gzip");
        assert_eq!(
            upstream_accept_encoding(&HeaderMap::new(), false),
            "identity"
        );
    }

    #[test]
    fn urls_keep_the_base_prefix_and_drop_the_token() {
        let key = SecretString::new("sk-real");
        let base = |s: &str| url::Url::parse(s).unwrap();
        let bearer = AuthStyle::Bearer;
        let url = upstream_url(
            &base("http://h:1/prefix"),
            "/v1/x",
            Some("a=1&key=rly_t&b=2"),
            &bearer,
            &key,
        );
        assert_eq!(url.as_str(), "http://h:1/prefix/v1/x?a=1&b=2");
        let url = upstream_url(
            &base("http://h:1/prefix/"),
            "/v1/x",
            Some("a=%20b"),
            &bearer,
            &key,
        );
        assert_eq!(url.as_str(), "http://h:1/prefix/v1/x?a=%20b");
        let url = upstream_url(
            &base("http://h:1"),
            "/v1/x",
            Some("key=rly_t"),
            &bearer,
            &key,
        );
        assert_eq!(url.as_str(), "http://h:1/v1/x");
        let url = upstream_url(&base("http://h:1"), "/v1/a~b:gen", None, &bearer, &key);
        assert_eq!(url.as_str(), "http://h:1/v1/a~b:gen");
        let q = "query:key".parse::<AuthStyle>().unwrap();
        let url = upstream_url(
            &base("http://h:1"),
            "/m",
            Some("key=rly_t&alt=sse"),
            &q,
            &key,
        );
        assert_eq!(url.as_str(), "http://h:1/m?alt=sse&key=sk-real");
    }

    #[test]
    fn headers_carry_the_real_key_in_the_provider_style_only() {
        let client = headers(&[
            ("authorization", "Bearer rly_t"),
            ("x-api-key", "rly_t"),
            ("content-type", "application/json"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("origin", "https://app.example"),
            ("cookie", "session=1"),
            ("openai-organization", "org-other"),
            ("openai-project", "proj_other"),
            ("accept-encoding", "gzip"),
        ]);
        let key = SecretString::new("sk-real");
        let out = upstream_headers(
            &client,
            &"x-api-key".parse().unwrap(),
            &key,
            &[("anthropic-version", "2023-06-01")],
        )
        .unwrap();
        assert_eq!(out.get("x-api-key").unwrap(), "sk-real");
        assert!(out.get("authorization").is_none());
        assert!(
            out.get("x-hop").is_none()
                && out.get("origin").is_none()
                && out.get("cookie").is_none()
        );
        for chosen_by_relay in ["openai-organization", "openai-project", "accept-encoding"] {
            assert!(out.get(chosen_by_relay).is_none(), "{chosen_by_relay}");
        }
        assert_eq!(out.get("content-type").unwrap(), "application/json");
        assert_eq!(out.get("anthropic-version").unwrap(), "2023-06-01");
        let out = upstream_headers(&client, &AuthStyle::Bearer, &key, &[]).unwrap();
        assert_eq!(out.get("authorization").unwrap(), "Bearer sk-real");
        assert!(out.get("x-api-key").is_none());
    }
}
