//! The response body: upstream chunks passed to the client as they arrive, read on the way
//! for usage, with an idle timeout between chunks. When the call ends — completed, failed,
//! or abandoned by the client (dropping the body drops the upstream request too) — it is
//! logged once and its usage record is queued.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use sync_wrapper::SyncWrapper;

use super::limits::Permit;
use super::metrics::{Metrics, ProviderLabel, StreamGauge};
use super::tokens::ResolvedToken;
use crate::store::UsageRecord;
use crate::usage::UsageSink;
use crate::usage::decode::Decoded;
use crate::usage::extract::{JsonUsage, SseScanner, Tally};

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Complete,
    ClientGone,
    UpstreamError,
    IdleTimeout,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::ClientGone => "client_gone",
            End::UpstreamError => "upstream_error",
            End::IdleTimeout => "idle_timeout",
        }
    }
}

/// Everything known about a forwarded call; logged and recorded once, on drop.
pub struct CallRecord {
    pub token_id: String,
    pub provider: &'static str,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub status: u16,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
    pub ttfb: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub stream: bool,
    pub tally: Tally,
    /// The provider reports tokens for this kind of call: one that ends without a report
    /// is charged `estimate` instead of nothing.
    pub metered: bool,
    /// What the call is charged when unreported: its reservation (see `docs/design.md`).
    pub estimate: i64,
    pub estimated: bool,
    pub end: End,
    pub usage: Arc<UsageSink>,
    pub metrics: Arc<Metrics>,
    /// Released when the record drops: the call is no longer in flight.
    pub permit: Permit,
    /// Told the tokens this call used, for the token budget.
    pub resolved: Arc<ResolvedToken>,
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        tracing::info!(
            token_id = %self.token_id,
            provider = self.provider,
            method = %self.method,
            path = %self.path,
            status = self.status,
            latency_ms = latency.as_secs_f64() * 1e3,
            ttfb_ms = self.ttfb.as_secs_f64() * 1e3,
            bytes_out = self.bytes_out,
            total_tokens = self.tally.total(),
            estimated = self.estimated,
            end = self.end.as_str(),
            "call"
        );
        self.metrics
            .upstream_latency
            .get_or_create(&ProviderLabel {
                provider: self.provider,
            })
            .observe(latency.as_secs_f64());
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let charged = self
            .tally
            .total()
            .is_some_and(|total| self.permit.charge(total));
        self.usage.record(UsageRecord {
            token_id: std::mem::take(&mut self.token_id),
            at: self.started_at,
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            model: self.model.take(),
            status: self.status,
            latency_ms: ms(latency),
            ttfb_ms: ms(self.ttfb),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            prompt_tokens: self.tally.prompt,
            completion_tokens: self.tally.completion,
            total_tokens: self.tally.total(),
            stream: self.stream,
            aborted: self.end == End::ClientGone,
            estimated: self.estimated,
            charged,
        });
    }
}

/// How the body is read for usage on its way through.
pub enum Inspect {
    None,
    Json(JsonUsage),
    Sse(SseScanner),
    /// A compressed body: a copy is decoded for usage, the bytes pass unchanged.
    Decoded(Box<Decoded>),
}

struct State {
    upstream: Upstream,
    inspect: Inspect,
    idle: Duration,
    last_chunk: Instant,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    record: CallRecord,
    _stream_gauge: Option<StreamGauge>,
    /// The body's announced length, less what has arrived: at zero the call is complete,
    /// whether or not the server polls the body once more (hyper stops at the length).
    remaining: Option<u64>,
    done: bool,
    /// The call's release of the fleet's limits, which its last bytes wait for.
    release: Option<super::fleet::Released>,
    /// The last item, held until the release is written.
    held: Option<Option<Bytes>>,
}

impl State {
    /// Ends the call: takes the final usage, and counts its tokens toward the budget at once
    /// (before the client can send its next request).
    fn finish(&mut self, end: End) {
        self.done = true;
        let record = &mut self.record;
        record.end = end;
        record.tally = match &mut self.inspect {
            Inspect::Sse(scanner) => scanner.tally(),
            Inspect::Json(scanner) => scanner.tally(),
            Inspect::Decoded(decoded) => decoded.finish(),
            Inspect::None => Tally::default(),
        };
        // No call that succeeded goes uncharged: one that ended without the provider's
        // report (cut short, or never reported) is charged its reservation.
        let reported = end == End::Complete && !record.tally.is_empty();
        if record.metered && (200..300).contains(&record.status) && !reported {
            let charged = record.tally.total().unwrap_or(0).max(record.estimate);
            record.tally.total = Some(charged);
            record.estimated = true;
        }
        if let Some(total) = self.record.tally.total() {
            self.record.resolved.add_recorded_tokens(total);
        }
        self.release = self.record.permit.release_now(self.record.tally.total());
    }

    /// Ends the stream with `last` (bytes, or none), once the release is written.
    fn end_with(&mut self, last: Bytes) {
        self.held = Some((!last.is_empty()).then_some(last));
    }
}

/// `Sync` (as warp requires) because it is only ever touched through `&mut`.
pub struct RelayBody(SyncWrapper<State>);

impl RelayBody {
    /// `has_body`: false for answers that carry none (to `HEAD`, 204, 304), which are
    /// complete as they start.
    pub fn new(
        response: http::Response<hyper::body::Incoming>,
        inspect: Inspect,
        idle: Duration,
        record: CallRecord,
        has_body: bool,
    ) -> Self {
        let stream_gauge =
            matches!(inspect, Inspect::Sse(_)).then(|| StreamGauge::new(record.metrics.clone()));
        let now = Instant::now();
        let remaining = if has_body {
            http_body::Body::size_hint(response.body()).exact()
        } else {
            Some(0)
        };
        let mut state = State {
            upstream: Box::pin(http_body_util::BodyDataStream::new(response.into_body())),
            inspect,
            idle,
            last_chunk: now,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            record,
            _stream_gauge: stream_gauge,
            remaining,
            done: false,
            release: None,
            held: None,
        };
        if remaining == Some(0) {
            state.finish(End::Complete);
        }
        RelayBody(SyncWrapper::new(state))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Whatever was seen so far counts, also for an aborted stream.
        if !self.done {
            self.finish(End::ClientGone);
        }
    }
}

impl Stream for RelayBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let s = self.get_mut().0.get_mut();
        loop {
            if let Some(release) = &mut s.release {
                if release.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                s.release = None;
            }
            if let Some(last) = s.held.take() {
                return Poll::Ready(last.map(Ok));
            }
            if s.done {
                return Poll::Ready(None);
            }
            match s.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    s.last_chunk = Instant::now();
                    let arrived = chunk.len() as u64;
                    let mut out = match &mut s.inspect {
                        Inspect::None => chunk,
                        Inspect::Json(scanner) => {
                            scanner.push(&chunk);
                            chunk
                        }
                        Inspect::Decoded(decoded) => {
                            decoded.push(&chunk);
                            chunk
                        }
                        Inspect::Sse(scanner) => scanner.push(chunk),
                    };
                    if let Some(remaining) = &mut s.remaining {
                        *remaining = remaining.saturating_sub(arrived);
                        if *remaining == 0 {
                            if let Inspect::Sse(scanner) = &mut s.inspect {
                                out = [out, scanner.finish()].concat().into();
                            }
                            s.record.bytes_out += out.len() as u64;
                            s.finish(End::Complete);
                            s.end_with(out);
                            continue;
                        }
                    }
                    s.record.bytes_out += out.len() as u64;
                    if out.is_empty() {
                        continue; // held back (a usage-only event, or part of an event)
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
                Poll::Ready(Some(Err(_))) => {
                    s.finish(End::UpstreamError);
                    s.release = None; // runs on; the client's answer is broken anyway
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "upstream response failed",
                    ))));
                }
                Poll::Ready(None) => {
                    let rest = match &mut s.inspect {
                        Inspect::Sse(scanner) => scanner.finish(),
                        _ => Bytes::new(),
                    };
                    s.record.bytes_out += rest.len() as u64;
                    s.finish(End::Complete);
                    s.end_with(rest);
                    continue;
                }
                Poll::Pending => {
                    // The timer is re-armed only when it fires, not on every chunk.
                    while s.idle_timer.as_mut().poll(cx).is_ready() {
                        let deadline = s.last_chunk + s.idle;
                        if Instant::now() >= deadline {
                            s.finish(End::IdleTimeout);
                            s.release = None;
                            return Poll::Ready(Some(Err(std::io::Error::other(
                                "upstream idle timeout",
                            ))));
                        }
                        s.idle_timer.as_mut().reset(deadline.into());
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
