//! Reading what a call asked for and what it used, from JSON bodies and SSE streams.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

use crate::providers::Family;

/// Token counts reported by a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub prompt: Option<i64>,
    pub completion: Option<i64>,
    pub total: Option<i64>,
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.prompt.is_none() && self.completion.is_none() && self.total.is_none()
    }

    /// The total, reported or derived.
    pub fn total(&self) -> Option<i64> {
        self.total.or(match (self.prompt, self.completion) {
            (None, None) => None,
            (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
        })
    }

    /// Takes in what one JSON document reports: OpenAI's `usage` (chat and responses),
    /// Anthropic's `usage` (also inside `message_start`'s `message`), Gemini's
    /// `usageMetadata`. Later reports replace earlier ones field by field, which fits all
    /// three (Anthropic and Gemini report cumulative counts).
    fn absorb(&mut self, doc: &UsageDoc) {
        for counts in [
            doc.usage.as_ref(),
            nested(&doc.message),
            nested(&doc.response),
            doc.usage_metadata.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(p) = counts
                .prompt_tokens
                .or(counts.input_tokens)
                .or(counts.prompt_token_count)
            {
                self.prompt = Some(p);
            }
            if let Some(c) = counts
                .completion_tokens
                .or(counts.output_tokens)
                .or(counts.candidates_token_count)
            {
                self.completion = Some(c);
            }
            if let Some(t) = counts.total_tokens.or(counts.total_token_count) {
                self.total = Some(t);
            }
        }
    }
}

fn nested(field: &Option<Lenient<Nested>>) -> Option<&Counts> {
    match field {
        Some(Lenient::Parsed(n)) => n.usage.as_ref(),
        _ => None,
    }
}

/// The token counts of any of the three report styles.
#[derive(Deserialize)]
struct Counts {
    prompt_tokens: Option<i64>,
    input_tokens: Option<i64>,
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<i64>,
    completion_tokens: Option<i64>,
    output_tokens: Option<i64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<i64>,
    total_tokens: Option<i64>,
    #[serde(rename = "totalTokenCount")]
    total_token_count: Option<i64>,
}

#[derive(Deserialize)]
struct Nested {
    usage: Option<Counts>,
}

/// A field that may hold something else than expected (a string `message`, say): ignored
/// then, instead of failing the whole document.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Parsed(T),
    Other(serde::de::IgnoredAny),
}

/// The parts of a response document that carry usage; everything else is skipped unparsed.
#[derive(Deserialize)]
struct UsageDoc {
    usage: Option<Counts>,
    message: Option<Lenient<Nested>>,
    response: Option<Lenient<Nested>>,
    #[serde(rename = "usageMetadata")]
    usage_metadata: Option<Counts>,
    choices: Option<Lenient<Vec<serde::de::IgnoredAny>>>,
}

impl UsageDoc {
    /// OpenAI's usage-only stream chunk: `choices: []` and a `usage` object.
    fn is_usage_only(&self) -> bool {
        matches!(&self.choices, Some(Lenient::Parsed(c)) if c.is_empty()) && self.usage.is_some()
    }
}

/// What the relay needs to know about a request body. Read with a typed, borrowing parse
/// that skips everything else: a full `Value` is built only when the body is rewritten.
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// The body is a JSON object.
    pub is_object: bool,
    pub model: Option<String>,
    pub stream: bool,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

impl RequestInfo {
    pub fn parse(body: &[u8]) -> Self {
        if !body.trim_ascii_start().starts_with(b"{") {
            return Self::default();
        }
        match serde_json::from_slice::<Peek>(body) {
            Ok(peek) => RequestInfo {
                is_object: true,
                model: peek.model.map(|m| m.into_owned()),
                stream: peek.stream.unwrap_or(false),
            },
            // Not an object, or `model`/`stream` of another type: treated as unreadable.
            Err(_) => Self::default(),
        }
    }

    /// The body as a JSON object, for rewriting.
    pub fn object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} must be a non-negative integer")]
pub struct BadField(pub &'static str);

/// Caps the output tokens a request asks for: set when absent, lowered when higher.
/// Returns whether the body changed.
pub fn cap_output_tokens(
    body: &mut serde_json::Map<String, Value>,
    family: Family,
    provider: &str,
    path: &str,
    cap: u32,
) -> Result<bool, BadField> {
    let cap = u64::from(cap);
    if family == Family::Gemini {
        let config = body
            .entry("generationConfig")
            .or_insert_with(|| Value::Object(Default::default()));
        let Value::Object(config) = config else {
            return Err(BadField("generationConfig"));
        };
        return lower_or_set(config, "maxOutputTokens", cap, true);
    }
    let fields: &[&'static str] = match family {
        Family::Anthropic => &["max_tokens"],
        _ if path.ends_with("/responses") => &["max_output_tokens"],
        _ if path.ends_with("/chat/completions") => &["max_completion_tokens", "max_tokens"],
        _ if path.ends_with("/completions") => &["max_tokens"],
        _ => return Ok(false),
    };
    let mut changed = false;
    let mut present = false;
    for field in fields {
        if body.contains_key(*field) {
            present = true;
            changed |= lower_or_set(body, field, cap, false)?;
        }
    }
    if !present {
        // OpenAI's own API wants the newer field (reasoning models refuse `max_tokens`);
        // compatible servers generally know only `max_tokens`.
        let field = match fields {
            [newer, _] if matches!(provider, "openai" | "azure") => newer,
            [_, older] => older,
            [only] => only,
            _ => unreachable!("one or two fields"),
        };
        body.insert(field.to_string(), Value::from(cap));
        changed = true;
    }
    Ok(changed)
}

fn lower_or_set(
    map: &mut serde_json::Map<String, Value>,
    field: &'static str,
    cap: u64,
    set_when_absent: bool,
) -> Result<bool, BadField> {
    match map.get(field) {
        None | Some(Value::Null) if set_when_absent => {
            map.insert(field.to_string(), Value::from(cap));
            Ok(true)
        }
        None | Some(Value::Null) => Ok(false),
        Some(v) => match v.as_u64() {
            Some(n) if n > cap => {
                map.insert(field.to_string(), Value::from(cap));
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(BadField(field)),
        },
    }
}

/// For OpenAI-style chat streams: asks the provider to report usage. Returns `true` when the
/// client had not asked for it itself (so the usage-only event is to be hidden from it).
pub fn request_stream_usage(body: &mut serde_json::Map<String, Value>) -> bool {
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(options) = options else {
        return false;
    };
    if options.get("include_usage").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    options.insert("include_usage".to_string(), Value::Bool(true));
    true
}

/// Usage from a whole JSON response body.
pub fn json_usage(body: &[u8]) -> Tally {
    let mut tally = Tally::default();
    if let Ok(doc) = serde_json::from_slice::<UsageDoc>(body) {
        tally.absorb(&doc);
    }
    tally
}

/// Scans an SSE stream as it passes: takes usage from events, and optionally removes the
/// usage-only chunk of an OpenAI chat stream. Events are passed on as soon as they are
/// complete; only an incomplete event's bytes are held back (and only when filtering).
pub struct SseScanner {
    hide_usage_only: bool,
    pending: BytesMut,
    tally: Tally,
}

impl SseScanner {
    pub fn new(hide_usage_only: bool) -> Self {
        Self {
            hide_usage_only,
            pending: BytesMut::new(),
            tally: Tally::default(),
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Takes a chunk from upstream; returns what to send to the client now.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if !self.hide_usage_only {
            // Scan line by line, keeping only a partial line; pass the chunk on untouched.
            self.pending.extend_from_slice(&chunk);
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line = self.pending.split_to(end + 1);
                self.scan_line(&line);
            }
            return chunk;
        }
        self.pending.extend_from_slice(&chunk);
        let mut out = BytesMut::new();
        while let Some((end, sep)) = event_end(&self.pending) {
            let event = self.pending.split_to(end + sep).freeze();
            if !self.scan_event(&event) {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// At the end of the stream: whatever is left over.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        if self.hide_usage_only {
            rest.freeze()
        } else {
            self.scan_line(&rest);
            Bytes::new()
        }
    }

    fn scan_line(&mut self, line: &[u8]) {
        if let Some(doc) = data_payload(line).and_then(usage_doc) {
            self.tally.absorb(&doc);
        }
    }

    /// Scans one complete event; returns whether it is a usage-only chunk to hide.
    fn scan_event(&mut self, event: &[u8]) -> bool {
        let mut hide = false;
        for line in event.split(|&b| b == b'\n') {
            if let Some(doc) = data_payload(line).and_then(usage_doc) {
                self.tally.absorb(&doc);
                hide |= doc.is_usage_only();
            }
        }
        hide
    }
}

/// The end of the first complete event (index, separator length), if any.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn data_payload(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let data = line.strip_prefix(b"data:")?;
    Some(data.strip_prefix(b" ").unwrap_or(data))
}

/// Parses an event's data only when it can carry usage (a cheap check first).
fn usage_doc(data: &[u8]) -> Option<UsageDoc> {
    let mentions = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if !(mentions(b"\"usage\"") || mentions(b"\"usageMetadata\"")) {
        return None;
    }
    serde_json::from_slice(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_anthropic_gemini_json_usage() {
        let t =
            json_usage(br#"{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#);
        assert_eq!(
            (t.prompt, t.completion, t.total()),
            (Some(5), Some(7), Some(12))
        );
        let t = json_usage(br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}"#);
        assert_eq!(
            (t.prompt, t.completion, t.total()),
            (Some(3), Some(4), Some(7))
        );
        let t = json_usage(br#"{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":8,"totalTokenCount":10}}"#);
        assert_eq!(t.total(), Some(10));
        assert!(json_usage(b"not json").is_empty());
    }

    #[test]
    fn anthropic_stream_usage_accumulates() {
        let mut s = SseScanner::new(false);
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        // Split at awkward places: the scanner must not care.
        for piece in stream.as_bytes().chunks(7) {
            let out = s.push(Bytes::copy_from_slice(piece));
            assert_eq!(out.as_ref(), piece, "observing never changes the stream");
        }
        s.finish();
        let t = s.tally();
        assert_eq!(
            (t.prompt, t.completion, t.total()),
            (Some(11), Some(9), Some(20))
        );
    }

    #[test]
    fn the_usage_only_chunk_is_hidden_and_counted() {
        let events = [
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n",
            "data: [DONE]\n\n",
        ];
        let all = events.concat();
        let mut s = SseScanner::new(true);
        let mut out = Vec::new();
        for piece in all.as_bytes().chunks(5) {
            out.extend_from_slice(&s.push(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&s.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{}{}", events[0], events[2])
        );
        assert_eq!(s.tally().total(), Some(6));
    }

    #[test]
    fn output_caps_per_provider() {
        let mut body = serde_json::json!({"model":"m","max_tokens":5000})
            .as_object()
            .unwrap()
            .clone();
        assert!(
            cap_output_tokens(
                &mut body,
                Family::OpenAi,
                "deepseek",
                "/v1/chat/completions",
                100
            )
            .unwrap()
        );
        assert_eq!(body["max_tokens"], 100);
        let mut body = serde_json::Map::new();
        cap_output_tokens(
            &mut body,
            Family::OpenAi,
            "openai",
            "/v1/chat/completions",
            100,
        )
        .unwrap();
        assert_eq!(body["max_completion_tokens"], 100);
        let mut body = serde_json::json!({"max_tokens":10})
            .as_object()
            .unwrap()
            .clone();
        assert!(
            !cap_output_tokens(
                &mut body,
                Family::Anthropic,
                "anthropic",
                "/v1/messages",
                100
            )
            .unwrap()
        );
        let mut body = serde_json::Map::new();
        cap_output_tokens(&mut body, Family::OpenAi, "openai", "/v1/responses", 64).unwrap();
        assert_eq!(body["max_output_tokens"], 64);
        let mut body = serde_json::Map::new();
        cap_output_tokens(
            &mut body,
            Family::Gemini,
            "gemini",
            "/v1beta/models/m:generateContent",
            64,
        )
        .unwrap();
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);
        let mut body = serde_json::json!({"max_tokens":"lots"})
            .as_object()
            .unwrap()
            .clone();
        assert!(cap_output_tokens(&mut body, Family::OpenAi, "x", "/v1/completions", 1).is_err());
    }

    #[test]
    fn stream_usage_is_requested_once() {
        let mut body = serde_json::json!({"stream":true})
            .as_object()
            .unwrap()
            .clone();
        assert!(request_stream_usage(&mut body));
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(
            !request_stream_usage(&mut body),
            "a client that asked keeps the event"
        );
    }
}
