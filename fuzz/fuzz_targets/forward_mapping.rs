//! The request-to-upstream mapping: token extraction, path safety, upstream URL and
//! headers, response headers. Whatever the client sends, its token never reaches the
//! provider, the real key goes only where the provider's auth style puts it, and the
//! request stays on the provider's host under its base path.
//!
//! Input: one settings byte (auth style, base path), then a request head as text:
//! `path[?query]` on the first line, `name: value` lines after, so seeds are readable.
#![no_main]

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use relayapi::providers::AuthStyle;
use relayapi::secret::SecretString;
use relayapi::server::forward;

const API_KEY: &str = "sk-real-provider-key-0123456789";
const HEADER_STYLES: [&str; 3] = ["x-api-key", "x-goog-api-key", "api-key"];

struct Input<'a> {
    headers: Vec<(&'a [u8], &'a [u8])>,
    path: String,
    query: Option<String>,
    auth: u8,
    base_prefix: bool,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (&settings, rest) = data.split_first()?;
        let mut lines = rest.split(|&b| b == b'\n');
        let target = String::from_utf8_lossy(lines.next()?).into_owned();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target, None),
        };
        let headers = lines
            .filter_map(|line| {
                let at = line.iter().position(|&b| b == b':')?;
                Some((&line[..at], line[at + 1..].trim_ascii()))
            })
            .collect();
        Some(Input {
            headers,
            path,
            query,
            auth: settings & 0x7f,
            base_prefix: settings & 0x80 != 0,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let mut client = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            client.append(n, v);
        }
    }
    let key = SecretString::new(API_KEY);
    let auth = match input.auth % 5 {
        0 => AuthStyle::Bearer,
        1..=3 => AuthStyle::Header(Cow::Borrowed(
            HEADER_STYLES[usize::from(input.auth % 5) - 1],
        )),
        _ => AuthStyle::Query(Cow::Borrowed("key")),
    };
    let query = input.query.as_deref();
    let token = forward::extract_token(&client, query);
    let _ = forward::client_ip(
        Some("10.0.0.1:1234".parse().unwrap()),
        &client,
        &["10.0.0.0/8".parse().unwrap()],
    );

    let headers =
        forward::upstream_headers(&client, &auth, &key, &[("anthropic-version", "2023-06-01")])
            .expect("the fixed key is a valid header value");
    // The key is where the auth style puts it, and nowhere else.
    for (name, value) in &headers {
        let carries_key = value
            .as_bytes()
            .windows(API_KEY.len())
            .any(|w| w == API_KEY.as_bytes());
        let expected = match &auth {
            AuthStyle::Bearer => name == "authorization",
            AuthStyle::Header(h) => name.as_str() == h,
            AuthStyle::Query(_) => false,
        };
        if expected {
            assert!(carries_key);
        } else {
            assert!(
                !carries_key || client.values().any(|v| v == value),
                "{name} got the key"
            );
        }
        assert!(!matches!(
            name.as_str(),
            "host" | "origin" | "cookie" | "connection" | "transfer-encoding"
        ));
    }
    if let Some(token) = &token {
        // The client's token crosses only if it also sits in a header the relay keeps.
        for (name, value) in &headers {
            if value.as_bytes() == token.as_bytes()
                && !value.to_str().is_ok_and(|v| v.contains(API_KEY))
            {
                assert!(!matches!(
                    name.as_str(),
                    "authorization" | "x-api-key" | "x-goog-api-key" | "api-key"
                ));
            }
        }
    }
    let _ = forward::response_headers(&client);

    if let Some(path) = forward::normalize_path(&input.path) {
        // Normalizing is idempotent: what is matched is what is forwarded.
        assert_eq!(forward::normalize_path(&path).as_deref(), Some(path.as_str()));
        let base: reqwest::Url = if input.base_prefix {
            "https://api.example.test/base/v1".parse().unwrap()
        } else {
            "https://api.example.test".parse().unwrap()
        };
        let url = forward::upstream_url(&base, &path, query, &auth, &key);
        assert_eq!(url.host_str(), Some("api.example.test"));
        assert_eq!(url.scheme(), "https");
        if input.base_prefix {
            assert!(
                url.path().starts_with("/base/v1/"),
                "{} left the base path",
                url.path()
            );
        }
        let key_params: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "key")
            .map(|(_, v)| v.into_owned())
            .collect();
        match &auth {
            AuthStyle::Query(_) => assert_eq!(key_params, vec![API_KEY.to_string()]),
            _ => assert!(key_params.is_empty(), "a token query parameter crossed"),
        }
    }
});
