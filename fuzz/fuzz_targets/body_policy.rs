//! The request body under policy (`relayapi::request::prepare`): whatever the body, the
//! relay either refuses it or forwards valid JSON in which no output limit exceeds the cap
//! and every model named is allowed; and usage read from a response body never panics.
//!
//! Input: cap (4 bytes, little-endian), family, path, provider (1 byte each), then the
//! body, so seeds are plain JSON behind a 7-byte prefix.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use relayapi::policy::Policy;
use relayapi::providers::{Operation, lookup, model_in_path};
use relayapi::request::{Call, prepare};
use relayapi::usage::extract::json_usage;
use serde_json::Value;

const PATHS: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/gemini-pro:generateContent",
    "/openai/deployments/gpt-4o/chat/completions",
];
const PROVIDERS: [&str; 5] = ["openai", "groq", "anthropic", "gemini", "azure"];

struct Input<'a> {
    cap: u32,
    provider: u8,
    path: u8,
    models: bool,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (head, body) = data.split_at_checked(7)?;
        Some(Input {
            cap: u32::from_le_bytes(head[..4].try_into().ok()?),
            provider: head[4],
            path: head[5],
            models: head[6] & 1 == 1,
            body,
        })
    }
}

/// Every output limit anywhere in the sent body is within the cap.
fn limits_within(value: &Value, cap: u64) -> bool {
    const LIMITS: [&str; 5] = [
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens_to_sample",
        "maxOutputTokens",
    ];
    match value {
        Value::Object(map) => map.iter().all(|(k, v)| {
            if LIMITS.contains(&k.as_str()) {
                v.as_u64().is_some_and(|n| n <= cap)
            } else {
                !matches!(k.as_str(), "generationConfig" | "generation_config")
                    || v.is_null()
                    || limits_within(v, cap)
            }
        }),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let _ = json_usage(input.body);
    let provider = lookup(PROVIDERS[usize::from(input.provider) % PROVIDERS.len()]).unwrap();
    let path = PATHS[usize::from(input.path) % PATHS.len()];
    let policy = Policy {
        max_output_tokens: (input.cap > 0).then_some(input.cap),
        models: if input.models { vec!["gpt-4o*".into()] } else { vec![] },
        ..Policy::default()
    };
    let call = Call {
        provider,
        operation: Operation::of(provider.family, &http::Method::POST, path),
        path_model: model_in_path(provider.family, path),
        content_type: None,
        secret_lifetime: 600,
        policy: &policy,
    };
    let Ok(prepared) = prepare(Bytes::copy_from_slice(input.body), &call) else {
        return;
    };
    let sent = prepared.body.to_vec();
    assert_eq!(sent.len(), prepared.body.len);
    if sent.is_empty() {
        return;
    }
    let capped = policy.max_output_tokens.is_some() && call.operation != Operation::Other;
    match serde_json::from_slice::<Value>(&sent) {
        Ok(value) => {
            if capped {
                assert!(limits_within(&value, u64::from(input.cap)), "{value}");
            }
            if input.models {
                if let Some(model) = value.get("model").and_then(Value::as_str) {
                    assert!(model.starts_with("gpt-4o") || call.path_model.is_some());
                }
            }
        }
        // Only a body forwarded untouched may be something else than JSON, and never
        // under a cap.
        Err(_) => {
            assert!(!capped);
            assert_eq!(sent, input.body);
        }
    }
});
