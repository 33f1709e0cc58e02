//! A real local upstream that records what it receives and answers like a provider.
//!
//! The model in the body picks the behaviour, as with a real provider the path does not:
//! `"model":"slow"` waits 3 s before answering, `"model":"linger"` 25 ms,
//! `"model":"fail"` answers 500,
//! `"model":"no-usage"` reports no usage, `"model":"big"` answers 5 MiB of JSON with its
//! usage at the end. JSON answers are compressed, as providers do, when the request
//! accepts br or gzip (br first). A body with
//! `"stream": true` (or a path ending in `:streamGenerateContent`) gets an SSE stream whose
//! first event is sent at once and the rest only after [`MockUpstream::release`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// What the mock hears in any audio it is sent to transcribe.
pub const TRANSCRIPT: &str = "hello from the mock";
/// The realtime client secret the mock mints.
pub const EPHEMERAL_KEY: &str = "ek_mock_0123456789";
/// The mock's SDP answer to any WebRTC offer.
pub const SDP_ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=mock\r\n";
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// Everything the upstream saw, as one string to search for secrets.
    pub fn everything(&self) -> String {
        let mut s = format!("{} {} {:?}\n", self.method, self.path, self.query);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

#[derive(Default)]
pub struct Shared {
    pub requests: Mutex<Vec<Recorded>>,
    pub release: Notify,
    /// How many times streams were released: a stream waits for this to pass the value it
    /// saw when it was answered, so a release right after the headers is never missed.
    pub releases: AtomicUsize,
    pub streams_dropped: AtomicUsize,
    /// Requests being answered now, and the most there ever were at once.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

/// Counts a request as being answered while it lives.
struct Answering(Arc<Shared>);

impl Answering {
    fn new(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Answering(shared.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct MockUpstream {
    pub url: String,
    pub shared: Arc<Shared>,
    _task: tokio::task::JoinHandle<()>,
}

pub const CHAT_JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
pub const FIRST_EVENT: &str = "data: {\"n\":1}\n\n";
pub const REST_EVENTS: &str = "data: {\"n\":2}\n\ndata: [DONE]\n\n";
/// Sent before `[DONE]` only when the request asked for `stream_options.include_usage`.
pub const USAGE_EVENT: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n";
pub const ANTHROPIC_JSON: &str = r#"{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":10,"output_tokens":20}}"#;
pub const GEMINI_JSON: &str = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":8,"totalTokenCount":15}}"#;
pub const ANTHROPIC_FIRST: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n";
pub const ANTHROPIC_REST: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
pub const GEMINI_FIRST: &str = "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1,\"totalTokenCount\":4}}\n\n";
pub const GEMINI_REST: &str = "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":6,\"totalTokenCount\":9}}\n\n";

struct DropFlag(Arc<Shared>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.streams_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl MockUpstream {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let query = warp::query::raw()
            .map(Some)
            .or(warp::any().map(|| None))
            .unify();
        let route = warp::method()
            .and(warp::path::full())
            .and(query)
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: Option<String>,
                      headers: HeaderMap,
                      body: Bytes| {
                    let shared = state.clone();
                    async move {
                        answer(
                            shared,
                            method,
                            path.as_str().to_string(),
                            query,
                            headers,
                            body,
                        )
                        .await
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(warp::serve(route).incoming(listener).run());
        MockUpstream {
            url,
            shared,
            _task: task,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Lets every waiting stream send the rest of its events.
    pub fn release(&self) {
        self.shared.releases.fetch_add(1, Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }
}

async fn answer(
    shared: Arc<Shared>,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> warp::reply::Response {
    use warp::Reply;
    let text = String::from_utf8_lossy(&body).replace(' ', "");
    let streaming = text.contains("\"stream\":true") || path.ends_with(":streamGenerateContent");
    let _answering = Answering::new(&shared);
    let slow = text.contains("\"model\":\"slow\"");
    if text.contains("\"model\":\"linger\"") {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let no_usage = text.contains("\"model\":\"no-usage\"");
    let big = text.contains("\"model\":\"big\"");
    let accepts = headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let fail = text.contains("\"model\":\"fail\"");
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query,
        headers,
        body: body.clone(),
    });
    if slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if fail {
        return warp::reply::with_status(
            r#"{"error":{"message":"boom"}}"#,
            StatusCode::INTERNAL_SERVER_ERROR,
        )
        .into_response();
    }
    if path.ends_with("/audio/transcriptions") {
        return warp::reply::json(&serde_json::json!({"text": TRANSCRIPT})).into_response();
    }
    if path.ends_with("/realtime/client_secrets") {
        let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return warp::reply::json(&serde_json::json!({
            "value": EPHEMERAL_KEY,
            "expires_at": 0,
            "session": asked["session"],
        }))
        .into_response();
    }
    if path.ends_with("/realtime/calls") {
        let mut answer = warp::reply::Response::new(SDP_ANSWER.into());
        *answer.status_mut() = StatusCode::CREATED;
        let h = answer.headers_mut();
        h.insert("content-type", "application/sdp".parse().unwrap());
        h.insert("location", "/v1/realtime/calls/rtc_mock".parse().unwrap());
        return answer;
    }
    let anthropic = path.ends_with("/v1/messages");
    let gemini = path.contains(":generateContent") || path.contains(":streamGenerateContent");
    if streaming {
        let (first, rest) = if anthropic {
            (ANTHROPIC_FIRST.to_string(), ANTHROPIC_REST.to_string())
        } else if gemini {
            (GEMINI_FIRST.to_string(), GEMINI_REST.to_string())
        } else if text.contains("\"include_usage\":true") {
            (
                FIRST_EVENT.to_string(),
                REST_EVENTS.replace("data: [DONE]", &format!("{USAGE_EVENT}data: [DONE]")),
            )
        } else {
            (FIRST_EVENT.to_string(), REST_EVENTS.to_string())
        };
        let flag = DropFlag(shared.clone());
        let events = async_stream(shared, flag, first, rest);
        let mut response = warp::reply::stream(events).into_response();
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return response;
    }
    let json = if anthropic {
        ANTHROPIC_JSON.to_string()
    } else if gemini {
        GEMINI_JSON.to_string()
    } else if no_usage {
        CHAT_JSON.split(",\"usage\"").next().unwrap().to_string() + "}"
    } else if big {
        big_json()
    } else {
        CHAT_JSON.to_string()
    };
    let (body, encoding) = compress(json.into_bytes(), &accepts);
    let mut response =
        warp::reply::with_header(body, "content-type", "application/json").into_response();
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert("content-encoding", encoding.parse().unwrap());
    }
    response
        .headers_mut()
        .insert("x-upstream", "mock".parse().unwrap());
    response
}

/// First event now; the rest once released. The flag records that the stream was dropped.
fn async_stream(
    shared: Arc<Shared>,
    flag: DropFlag,
    first: String,
    rest: String,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    // Read now, while the request is answered: the headers may reach the client (and the
    // test release the stream) before the task below first runs.
    let seen = shared.releases.load(Ordering::SeqCst);
    tokio::spawn(async move {
        let _flag = flag;
        if tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            let released = shared.release.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if shared.releases.load(Ordering::SeqCst) != seen {
                break;
            }
            tokio::select! {
                _ = released => {}
                _ = tx.closed() => return,
            }
        }
        let _ = tx.send(Bytes::from(rest)).await;
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}

/// Usage of [`big_json`].
pub const BIG_TOTAL_TOKENS: i64 = 101_000;

/// A chat completion of 5 MiB, its usage after the content.
pub fn big_json() -> String {
    let content = "lorem ipsum ".repeat(5 * 1024 * 1024 / 12);
    format!(
        r#"{{"id":"chatcmpl-big","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"length"}}],"usage":{{"prompt_tokens":1000,"completion_tokens":100000,"total_tokens":{BIG_TOTAL_TOKENS}}}}}"#
    )
}

/// Compresses as a provider would for this `Accept-Encoding`: br, else gzip, else not.
pub fn compress(body: Vec<u8>, accepts: &str) -> (Vec<u8>, Option<&'static str>) {
    use std::io::Write;
    if accepts.contains("br") {
        let mut out = Vec::new();
        brotli::BrotliCompress(&mut &body[..], &mut out, &Default::default()).unwrap();
        (out, Some("br"))
    } else if accepts.contains("gzip") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        (gz.finish().unwrap(), Some("gzip"))
    } else {
        (body, None)
    }
}
