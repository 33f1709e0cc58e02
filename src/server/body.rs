//! The response body: upstream chunks passed to the client as they arrive, with an idle
//! timeout between chunks and one log line when the call ends (completed, failed, or
//! abandoned by the client — dropping the body drops the upstream request too).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use sync_wrapper::SyncWrapper;

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// What is known about a forwarded call, logged once when it ends.
pub struct CallLog {
    pub token_id: String,
    pub provider: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub started: Instant,
    pub ttfb: Duration,
    pub bytes_out: u64,
    pub end: &'static str,
}

impl Drop for CallLog {
    fn drop(&mut self) {
        tracing::info!(
            token_id = %self.token_id,
            provider = %self.provider,
            method = %self.method,
            path = %self.path,
            status = self.status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1e3,
            ttfb_ms = self.ttfb.as_secs_f64() * 1e3,
            bytes_out = self.bytes_out,
            end = self.end,
            "call"
        );
    }
}

struct State {
    upstream: Upstream,
    idle: Duration,
    last_chunk: Instant,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    log: CallLog,
    done: bool,
}

/// `Sync` (as warp requires) because it is only ever touched through `&mut`.
pub struct RelayBody(SyncWrapper<State>);

impl RelayBody {
    pub fn new(response: reqwest::Response, idle: Duration, mut log: CallLog) -> Self {
        log.end = "client_gone";
        let now = Instant::now();
        RelayBody(SyncWrapper::new(State {
            upstream: Box::pin(response.bytes_stream()),
            idle,
            last_chunk: now,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            log,
            done: false,
        }))
    }
}

impl Stream for RelayBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let s = self.get_mut().0.get_mut();
        if s.done {
            return Poll::Ready(None);
        }
        match s.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                s.last_chunk = Instant::now();
                s.log.bytes_out += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                s.done = true;
                s.log.end = if e.is_timeout() {
                    "upstream_timeout"
                } else {
                    "upstream_error"
                };
                Poll::Ready(Some(Err(std::io::Error::other("upstream response failed"))))
            }
            Poll::Ready(None) => {
                s.done = true;
                s.log.end = "complete";
                Poll::Ready(None)
            }
            Poll::Pending => {
                // The timer is re-armed only when it fires, not on every chunk.
                while s.idle_timer.as_mut().poll(cx).is_ready() {
                    let deadline = s.last_chunk + s.idle;
                    if Instant::now() >= deadline {
                        s.done = true;
                        s.log.end = "idle_timeout";
                        return Poll::Ready(Some(Err(std::io::Error::other(
                            "upstream idle timeout",
                        ))));
                    }
                    s.idle_timer.as_mut().reset(deadline.into());
                }
                Poll::Pending
            }
        }
    }
}
