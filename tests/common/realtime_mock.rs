//! A realtime provider of our own: a WebSocket server speaking enough of OpenAI Realtime and
//! Gemini Live for the relay's sessions to be tested end to end.
//!
//! - On connect it sends `session.created` (OpenAI) or nothing until `setup` (Gemini, which
//!   answers `setupComplete`).
//! - `response.create` (OpenAI) answers a text delta and a `response.done` with
//!   [`RESPONSE_TOKENS`]; Gemini's `clientContent` answers a turn with `usageMetadata` of
//!   [`TURN_TOKENS`], as binary JSON like the real service.
//! - `mock.close` closes with the code and reason given; `mock.die` drops the connection
//!   without a close frame; anything else is echoed back as it came.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, http};

pub const RESPONSE_TOKENS: i64 = 30;
pub const TURN_TOKENS: i64 = 14;

/// A handshake as the mock received it.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub uri: String,
    pub headers: http::HeaderMap,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Everything the mock saw of it, for searching for a secret.
    pub fn everything(&self) -> String {
        format!("{} {:?}", self.uri, self.headers)
    }
}

pub struct RealtimeMock {
    /// `http://…`, as a token's `--upstream`.
    pub url: String,
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
}

impl RealtimeMock {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut gemini = false;
                    // tungstenite's callback answers a refusal with a whole response.
                    #[allow(clippy::result_large_err)]
                    let callback = |request: &Request, mut response: Response| {
                        let uri = request.uri().to_string();
                        gemini = uri.contains("BidiGenerateContent");
                        seen.lock().unwrap().push(Handshake {
                            uri: uri.clone(),
                            headers: request.headers().clone(),
                        });
                        if uri.contains("model=refused-by-provider") {
                            let mut refusal = ErrorResponse::new(Some(
                                r#"{"error":{"code":"model_not_found"}}"#.to_string(),
                            ));
                            *refusal.status_mut() = http::StatusCode::NOT_FOUND;
                            return Err(refusal);
                        }
                        let offered = request
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if offered.split(',').any(|p| p.trim() == "realtime") {
                            response.headers_mut().insert(
                                "sec-websocket-protocol",
                                http::HeaderValue::from_static("realtime"),
                            );
                        }
                        Ok(response)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                        return;
                    };
                    serve(ws, gemini).await;
                });
            }
        });
        RealtimeMock { url, handshakes }
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}

async fn serve(ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, gemini: bool) {
    let (mut tx, mut rx) = ws.split();
    if !gemini {
        let created = json!({"type": "session.created", "session": {"id": "sess_mock"}});
        let _ = tx.send(Message::text(created.to_string())).await;
    }
    while let Some(Ok(message)) = rx.next().await {
        let text = match &message {
            Message::Text(text) => Some(text.as_str().to_string()),
            Message::Binary(bytes) if gemini => String::from_utf8(bytes.to_vec()).ok(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => None,
        };
        let event: Value = text
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let replies: Vec<Message> = if event["type"] == "response.create" {
            vec![
                Message::text(
                    json!({"type": "response.output_text.delta", "delta": "hi"}).to_string(),
                ),
                Message::text(
                    json!({"type": "response.done", "response": {"id": "resp_mock", "usage": {
                        "total_tokens": RESPONSE_TOKENS, "input_tokens": 10, "output_tokens": 20}}})
                    .to_string(),
                ),
            ]
        } else if event["type"] == "mock.close" {
            let frame = CloseFrame {
                code: CloseCode::from(event["code"].as_u64().unwrap() as u16),
                reason: event["reason"].as_str().unwrap().to_string().into(),
            };
            let _ = tx.send(Message::Close(Some(frame))).await;
            // Wait for the other side's close.
            while let Some(Ok(_)) = rx.next().await {}
            return;
        } else if event["type"] == "mock.die" {
            return;
        } else if gemini && event.get("setup").is_some() {
            vec![Message::binary(
                json!({"setupComplete": {}}).to_string().into_bytes(),
            )]
        } else if gemini && (event.get("clientContent").or(event.get("client_content"))).is_some() {
            // Protobuf JSON: the SDK writes `client_content`, the docs `clientContent`.
            vec![Message::binary(
                json!({"serverContent": {"turnComplete": true}, "usageMetadata": {
                    "promptTokenCount": 5, "responseTokenCount": 9, "totalTokenCount": TURN_TOKENS}})
                .to_string()
                .into_bytes(),
            )]
        } else {
            vec![message]
        };
        for reply in replies {
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    }
}

// The client side, as the tests drive a session.

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
pub type ClientHandshake = Result<(Ws, http::Response<Option<Vec<u8>>>), WsError>;

/// Opens a WebSocket to the relay at `base` (`http://…`) with these headers.
pub async fn ws_connect(base: &str, target: &str, headers: &[(&str, &str)]) -> ClientHandshake {
    let addr = base.trim_start_matches("http://");
    let mut request = format!("ws://{addr}{target}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp).await
}

/// The next data message (text or binary JSON), skipping pings and pongs.
pub async fn next_event<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the session is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the close frame: its code and reason.
pub async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(8), ws.next())
            .await
            .expect("a close within 8 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    }
}

pub fn refusal_of(handshake: ClientHandshake) -> (u16, Value) {
    match handshake {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Ok(_) => panic!("the handshake was accepted"),
        Err(e) => panic!("no HTTP answer: {e}"),
    }
}

/// Asks the mock for one response (`response.create`): its text delta, then its
/// `response.done`, which is returned.
pub async fn one_response(ws: &mut Ws) -> Value {
    use futures_util::SinkExt;
    let create = json!({"type": "response.create"}).to_string();
    ws.send(Message::text(create)).await.unwrap();
    assert_eq!(next_event(ws).await["type"], "response.output_text.delta");
    let done = next_event(ws).await;
    assert_eq!(done["type"], "response.done");
    done
}
