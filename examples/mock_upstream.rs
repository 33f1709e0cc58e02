//! A fast OpenAI-style upstream for benchmarks: `POST /v1/chat/completions` answers a
//! `chat.completion` JSON, or with `"stream": true` 20 SSE events (role, 17 words, finish,
//! usage) and `data: [DONE]`. `"model": "mock-paced-<ttft_ms>-<gap_ms>"` waits before the
//! first event and between events, as `../shared/bench`'s mock does.
//!
//! `cargo run --release --example mock_upstream -- 127.0.0.1:19081`

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use warp::Filter;

const CHAT_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

fn events() -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        ))
    };
    let mut out = vec![chunk(r#"{"role":"assistant"}"#, "null")];
    for word in
        "The quick brown fox jumps over the lazy dog and keeps on running far away".split(' ')
    {
        out.push(chunk(&format!("{{\"content\":\"{word} \"}}"), "null"));
    }
    out.push(chunk("{}", "\"stop\""));
    out.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":17,\"total_tokens\":29}}\n\n",
    ));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// `mock-paced-<ttft>-<gap>` → (ttft, gap) in milliseconds.
fn pacing(body: &str) -> Option<(u64, u64)> {
    let start = body.find("mock-paced-")? + "mock-paced-".len();
    let rest = &body[start..];
    let end = rest.find('"')?;
    let (ttft, gap) = rest[..end].split_once('-')?;
    Some((ttft.parse().ok()?, gap.parse().ok()?))
}

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19081".into())
        .parse()
        .expect("an address like 127.0.0.1:19081");
    let route = warp::post()
        .and(warp::path!("v1" / "chat" / "completions"))
        .and(warp::body::bytes())
        .then(|body: Bytes| async move {
            use warp::Reply;
            let text = std::str::from_utf8(&body).unwrap_or("");
            let stream = text.replace(' ', "").contains("\"stream\":true");
            if !stream {
                return warp::reply::with_header(CHAT_JSON, "content-type", "application/json")
                    .into_response();
            }
            let (ttft, gap) = pacing(text).unwrap_or((0, 0));
            let events = events();
            let body =
                futures_util::stream::unfold((0usize, events), move |(i, events)| async move {
                    if i >= events.len() {
                        return None;
                    }
                    let wait = if i == 0 { ttft } else { gap };
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    let item = if wait == 0 && i == 0 {
                        // Unpaced: everything at once, in one chunk.
                        let all: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
                        return Some((
                            Ok::<_, Infallible>(Bytes::from(all)),
                            (events.len(), events),
                        ));
                    } else {
                        events[i].clone()
                    };
                    Some((Ok(item), (i + 1, events)))
                });
            warp::reply::with_header(
                warp::reply::stream(body),
                "content-type",
                "text/event-stream",
            )
            .into_response()
        });
    let health = warp::path!("health").map(|| "ok");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    eprintln!("mock upstream on http://{}", listener.local_addr().unwrap());
    // The relay's own accept loop: TCP_NODELAY on every socket, as a real provider's edge
    // has. With warp::serve (Nagle on) each paced event waited for the client's delayed ACK.
    let routes = health
        .or(route)
        .map(warp::Reply::into_response)
        .recover(|_| async {
            Ok::<_, Infallible>(warp::Reply::into_response(
                warp::http::StatusCode::NOT_FOUND,
            ))
        })
        .unify();
    let config = relayapi::server::ServeConfig::default();
    relayapi::server::listener::serve(
        relayapi::server::listener::Filtered(routes),
        listener,
        std::future::pending(),
        &config,
        None,
    )
    .await;
}
