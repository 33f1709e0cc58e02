//! A raw TCP upstream for fault injection: each connection runs a script that may answer
//! badly, slowly, partly or never. Also a raw client, for requests no HTTP library sends.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawUpstream {
    pub url: String,
    /// Connections accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Connections whose script saw the relay close or reset the connection.
    pub closed_by_relay: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// What a script reports back: whether the relay went away while it ran.
pub enum Outcome {
    Done,
    RelayGone,
}

impl Outcome {
    pub fn is_gone(&self) -> bool {
        matches!(self, Outcome::RelayGone)
    }
}

impl RawUpstream {
    /// Runs `script` on every accepted connection (after the request head has been read).
    pub async fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_relay = Arc::new(AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed_by_relay.clone());
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (script, c) = (script.clone(), c.clone());
                tokio::spawn(async move {
                    if read_request(&mut socket).await.is_none() {
                        return;
                    }
                    if let Outcome::RelayGone = script(socket).await {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        RawUpstream {
            url,
            accepted,
            closed_by_relay,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn closed_by_relay(&self) -> usize {
        self.closed_by_relay.load(Ordering::SeqCst)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and its `Content-Length` body; `None` if the peer left first.
pub async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

/// Writes `parts` with `pause` between them; `RelayGone` as soon as a write fails.
pub async fn send_paced(socket: &mut TcpStream, parts: &[&[u8]], pause: Duration) -> Outcome {
    for part in parts {
        if socket.write_all(part).await.is_err() || socket.flush().await.is_err() {
            return Outcome::RelayGone;
        }
        tokio::time::sleep(pause).await;
    }
    Outcome::Done
}

/// Reads what the peer sends until it closes or resets the connection (up to `limit`);
/// `None` if it is still open then.
pub async fn read_until_close(socket: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(out)
}

/// One HTTP/1.1 chunk.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A stream's head. A script answers one request and then closes the connection, so the
/// head says so: without `connection: close` the relay keeps the connection for its next
/// call and may send it down a socket that is closing (a test making two calls lost that
/// race about one run in six, and got a 502).
pub const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
    transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
