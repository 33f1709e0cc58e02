//! The JSON body policy reader: model and stream peek, output-token caps for every API
//! family, the stream-usage request, and usage read from a response body.
//!
//! Input: cap (4 bytes, little-endian), family, path, provider (1 byte each), then the
//! body, so seeds are plain JSON behind a 7-byte prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relayapi::providers::Family;
use relayapi::usage::extract::{RequestInfo, cap_output_tokens, json_usage, request_stream_usage};
use serde_json::Value;

const PATHS: [&str; 5] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/gemini-pro:generateContent",
];

struct Input<'a> {
    cap: u32,
    family: u8,
    path: u8,
    openai_provider: bool,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (head, body) = data.split_at_checked(7)?;
        Some(Input {
            cap: u32::from_le_bytes(head[..4].try_into().ok()?),
            family: head[4],
            path: head[5],
            openai_provider: head[6] & 1 == 1,
            body,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let info = RequestInfo::parse(input.body);
    let object = RequestInfo::object(input.body);
    // The cheap peek and the full parse agree on what a readable body asked for.
    if let (Some(map), true) = (&object, info.is_object) {
        assert_eq!(
            info.model.as_deref(),
            map.get("model").and_then(Value::as_str)
        );
    }
    let _ = json_usage(input.body);

    let Some(mut map) = object else { return };
    let family = match input.family % 4 {
        0 => Family::OpenAi,
        1 => Family::Anthropic,
        2 => Family::Gemini,
        _ => Family::Azure,
    };
    let path = PATHS[usize::from(input.path) % PATHS.len()];
    let provider = if input.openai_provider {
        "openai"
    } else {
        "groq"
    };
    let mut stream_map = map.clone();
    if cap_output_tokens(&mut map, family, provider, path, input.cap).is_ok() {
        // After a successful cap, no output-token field asks for more than the cap.
        let cap = u64::from(input.cap);
        // The fields each API reads its output limit from.
        let fields: &[&str] = match (family, path) {
            (Family::Anthropic, _) => &["max_tokens"],
            (_, p) if p.ends_with("/responses") => &["max_output_tokens"],
            (_, p) if p.ends_with("/chat/completions") => &["max_completion_tokens", "max_tokens"],
            (_, p) if p.ends_with("/completions") => &["max_tokens"],
            _ => &[],
        };
        let capped = |m: &serde_json::Map<String, Value>, f: &str| {
            m.get(f)
                .is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|n| n <= cap))
        };
        if family == Family::Gemini {
            let config = map["generationConfig"].as_object().expect("object");
            // Gemini's limit is set even when the client sent none.
            let limit = config.get("maxOutputTokens").and_then(Value::as_u64);
            assert!(limit.is_some_and(|n| n <= cap));
        } else {
            assert!(fields.iter().all(|f| capped(&map, f)));
        }
    }
    if request_stream_usage(&mut stream_map) {
        assert_eq!(
            stream_map["stream_options"]["include_usage"],
            Value::Bool(true)
        );
    }
});
