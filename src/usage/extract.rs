//! Reading what a call asked for and what it used, from JSON bodies and SSE streams.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

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

    /// Adds another report's counts to these (a realtime session's responses).
    pub fn add(&mut self, other: &Tally) {
        let sum = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        // The total first: it is derived from the counts while it is unset.
        self.total = sum(self.total(), other.total());
        self.prompt = sum(self.prompt, other.prompt);
        self.completion = sum(self.completion, other.completion);
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
            self.absorb_counts(counts);
        }
    }

    fn absorb_counts(&mut self, counts: &Counts) {
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
    // Gemini Live names the output `responseTokenCount`.
    #[serde(rename = "candidatesTokenCount", alias = "responseTokenCount")]
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

/// Longest SSE line (or, when filtering, event) held back to be scanned. Usage reports are
/// small; a longer line is passed on unscanned, so a huge event cannot grow memory.
const MAX_HELD: usize = 1024 * 1024;
/// Longest `usage` object captured from a JSON body.
const MAX_USAGE_OBJECT: usize = 64 * 1024;

/// Reads usage from a JSON response of any size as it passes, holding only the `usage` or
/// `usageMetadata` member of the top-level object (where all three providers put it),
/// never the body. Strings are tracked, so text the model wrote cannot pose as a report.
#[derive(Default)]
pub struct JsonUsage {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1: reading a key (`Some`, its first bytes), or waiting for one.
    key: Option<KeyPrefix>,
    expecting_key: bool,
    /// The last top-level key read is one that carries usage.
    usage_key: bool,
    /// The usage object being captured, and whether it outgrew its bound.
    capture: Option<Vec<u8>>,
    tally: Tally,
}

impl JsonUsage {
    pub fn push(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            if self.in_string && !self.escaped && self.key.is_none() {
                // Inside a string that is not a key only its end or an escape matters: jump
                // there (most of a response is the model's text).
                let run = memchr::memchr2(b'"', b'\\', &bytes[at..]).unwrap_or(bytes.len() - at);
                self.keep(&bytes[at..at + run]);
                at += run;
                if at == bytes.len() {
                    break;
                }
            }
            self.step(bytes[at]);
            at += 1;
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Bytes of the usage object being captured, up to its bound.
    fn keep(&mut self, bytes: &[u8]) {
        if let Some(capture) = &mut self.capture {
            let room = MAX_USAGE_OBJECT.saturating_sub(capture.len());
            capture.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn step(&mut self, b: u8) {
        self.keep(&[b]);
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if let Some(key) = self.key.take() {
                    self.usage_key = matches!(key.read(), b"usage" | b"usageMetadata");
                    self.expecting_key = false;
                }
            } else if let Some(key) = &mut self.key {
                key.push(b);
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expecting_key {
                    self.key = Some(KeyPrefix::default());
                }
            }
            b'{' | b'[' => {
                if self.depth == 1 && self.usage_key && b == b'{' && self.capture.is_none() {
                    // Room for a usage object with its details (~300 bytes at OpenAI's).
                    let mut capture = Vec::with_capacity(512);
                    capture.push(b'{');
                    self.capture = Some(capture);
                }
                self.depth += 1;
                if self.depth == 1 {
                    self.expecting_key = true;
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 1
                    && let Some(object) = self.capture.take()
                    && let Ok(counts) = serde_json::from_slice::<Counts>(&object)
                {
                    self.tally.absorb_counts(&counts);
                }
            }
            b',' if self.depth == 1 => {
                self.expecting_key = true;
                self.usage_key = false;
            }
            _ => {}
        }
    }
}

/// The first bytes of a key: enough to tell `usage` and `usageMetadata` from the rest,
/// without an allocation per key.
#[derive(Default)]
struct KeyPrefix {
    bytes: [u8; 16],
    len: usize,
}

impl KeyPrefix {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn read(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Usage from a whole JSON response body.
pub fn json_usage(body: &[u8]) -> Tally {
    let mut scanner = JsonUsage::default();
    scanner.push(body);
    scanner.tally()
}

/// The tokens one realtime message reports: OpenAI's `response.done` (its response's
/// usage) or a Gemini Live `usageMetadata` (one turn's). Each such report counts a separate
/// response, so a session adds them up. Any other message, however large (audio arrives
/// in megabyte frames), is passed over by a substring search, unparsed.
pub fn realtime_usage(message: &[u8]) -> Option<Tally> {
    let reports = memchr::memmem::find(message, b"\"response.done\"").is_some()
        || memchr::memmem::find(message, b"\"usageMetadata\"").is_some();
    if !reports {
        return None;
    }
    let doc: UsageDoc = serde_json::from_slice(message).ok()?;
    let mut tally = Tally::default();
    tally.absorb(&doc);
    (!tally.is_empty()).then_some(tally)
}

/// Scans an SSE stream as it passes: takes usage from events, and optionally removes the
/// usage-only chunk of an OpenAI chat stream. Events are passed on as soon as they are
/// complete; only an incomplete event's bytes are held back (and only when filtering).
pub struct SseScanner {
    hide_usage_only: bool,
    pending: BytesMut,
    /// The current line outgrew `MAX_HELD` and is skipped to its end.
    skipping: bool,
    tally: Tally,
}

impl SseScanner {
    pub fn new(hide_usage_only: bool) -> Self {
        Self {
            hide_usage_only,
            pending: BytesMut::new(),
            skipping: false,
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
            self.scan_lines(&chunk);
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
        if self.pending.len() > MAX_HELD {
            // Too long to be a usage report: passed on as it is.
            out.extend_from_slice(&std::mem::take(&mut self.pending));
        }
        out.freeze()
    }

    /// Scans whole lines, holding only a partial one (and not past `MAX_HELD`: the rest
    /// of such a line is skipped).
    pub fn scan_lines(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(end + 1);
            rest = tail;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.pending.is_empty() {
                self.scan_line(line);
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                self.scan_line(&whole);
            }
        }
        if !self.skipping {
            self.pending.extend_from_slice(rest);
            if self.pending.len() > MAX_HELD {
                self.pending.clear();
                self.skipping = true;
            }
        }
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
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i, 2));
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, 4));
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
    let mentions = |needle: &[u8]| memchr::memmem::find(data, needle).is_some();
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
    fn realtime_reports_are_read_from_their_messages_only() {
        let done = br#"{"type":"response.done","event_id":"e","response":{"id":"r","usage":{"total_tokens":30,"input_tokens":12,"output_tokens":18}}}"#;
        let t = realtime_usage(done).unwrap();
        assert_eq!(
            (t.prompt, t.completion, t.total()),
            (Some(12), Some(18), Some(30))
        );
        let live = br#"{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":5,"responseTokenCount":9,"totalTokenCount":14}}"#;
        let t = realtime_usage(live).unwrap();
        assert_eq!(
            (t.prompt, t.completion, t.total()),
            (Some(5), Some(9), Some(14))
        );
        // A model's words that mention a report are not one.
        let delta = br#"{"type":"response.output_text.delta","delta":"\"response.done\" usage"}"#;
        assert!(realtime_usage(delta).is_none());
        assert!(realtime_usage(b"\x00\x01 binary audio").is_none());
        let mut session = Tally::default();
        session.add(&realtime_usage(done).unwrap());
        session.add(&realtime_usage(live).unwrap());
        assert_eq!(
            (session.prompt, session.completion, session.total()),
            (Some(17), Some(27), Some(44))
        );
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
    fn json_usage_does_not_depend_on_where_the_body_is_split() {
        // Escapes and quotes inside the model's text, in keys and in the usage object's own
        // strings; a decoy report in the text; the real one last.
        let body = br#"{"id":"c\"1","choices":[{"message":{"content":"say \"usage\":{\"total_tokens\":99} \\"}}],"us\u0061ge":1,"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"details":[{"modality":"TE\"XT","tokenCount":5}]}}"#;
        let whole = json_usage(body);
        assert_eq!((whole.prompt, whole.completion), (Some(5), Some(7)));
        for size in 1..body.len() {
            let mut scanner = JsonUsage::default();
            for piece in body.chunks(size) {
                scanner.push(piece);
            }
            let t = scanner.tally();
            assert_eq!(
                (t.prompt, t.completion, t.total()),
                (whole.prompt, whole.completion, whole.total()),
                "split every {size} bytes"
            );
        }
    }

    #[test]
    fn usage_is_found_at_the_end_of_a_body_of_any_size_without_holding_it() {
        let filler = "x".repeat(5 * 1024 * 1024);
        let body = format!(
            r#"{{"id":"c","choices":[{{"message":{{"content":"{filler} \"usage\":{{\"total_tokens\":1}}"}}}}],"usage":{{"prompt_tokens":5,"completion_tokens":9000,"total_tokens":9005}}}}"#
        );
        let mut scanner = JsonUsage::default();
        for piece in body.as_bytes().chunks(8191) {
            scanner.push(piece);
        }
        assert_eq!(scanner.tally().total(), Some(9005));
        assert!(scanner.capture.is_none());
        // Text the model wrote, or a nested `usage`, is not the report.
        assert!(
            json_usage(
                br#"{"a":{"usage":{"total_tokens":3}},"b":"\"usage\":{\"total_tokens\":4}"}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn a_huge_sse_line_is_passed_on_and_not_held() {
        let mut s = SseScanner::new(false);
        let huge = format!("data: {}", "y".repeat(3 * MAX_HELD));
        s.push(Bytes::from(huge));
        assert!(s.pending.len() <= MAX_HELD);
        s.push(Bytes::from_static(
            b"\ndata: {\"usage\":{\"total_tokens\":8}}\n\n",
        ));
        assert_eq!(s.tally().total(), Some(8));
        let mut hiding = SseScanner::new(true);
        let out = hiding.push(Bytes::from(format!("data: {}", "z".repeat(2 * MAX_HELD))));
        assert_eq!(out.len(), 2 * MAX_HELD + 6, "passed on, not held");
    }
}
