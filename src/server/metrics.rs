//! Prometheus metrics. Labels are bounded sets (provider names from the registry, HTTP
//! statuses, refusal codes): never a token id, never a secret.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::InlineCountStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderStatus {
    pub provider: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `up` (client to provider) or `down`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndLabel {
    pub end: &'static str,
}

type HistogramFamily = Family<ProviderLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<ProviderStatus, Counter>,
    pub refusals: Family<CodeLabel, Counter>,
    pub upstream_latency: HistogramFamily,
    pub ttfb: HistogramFamily,
    pub streams_in_flight: Gauge,
    pub sessions_open: Gauge,
    pub session_duration: Family<EndLabel, Histogram, fn() -> Histogram>,
    pub session_frames: Family<DirectionLabel, Counter>,
    pub session_bytes: Family<DirectionLabel, Counter>,
    usage_queue_depth: Gauge,
    usage_dropped: Gauge,
    counts_inline: Gauge,
    counts_deferred: Gauge,
    count_commits: Gauge,
    pub fleet: FleetMetrics,
}

/// How a relay of a fleet (PostgreSQL) keeps its shared limits.
pub struct FleetMetrics {
    /// Statements run for the fleet's limits (admissions, refusal reasons, releases).
    pub round_trips: Counter,
    /// Calls in flight given back because their relay stopped heartbeating.
    pub lease_reclaims: Counter,
    /// From a change's statement (the database's clock) to this relay applying it.
    pub notification_lag: Histogram,
    pub listener_reconnects: Counter,
    /// 1 while changes are pushed to this relay, 0 while it polls.
    pub push_live: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("relayapi");
        let requests = Family::<ProviderStatus, Counter>::default();
        let refusals = Family::<CodeLabel, Counter>::default();
        let upstream_latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let ttfb: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let streams_in_flight = Gauge::default();
        let sessions_open = Gauge::default();
        let session_duration: Family<EndLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.1, 2.0, 16)));
        let session_frames = Family::<DirectionLabel, Counter>::default();
        let session_bytes = Family::<DirectionLabel, Counter>::default();
        let usage_queue_depth = Gauge::default();
        let usage_dropped = Gauge::default();
        let counts_inline = Gauge::default();
        let counts_deferred = Gauge::default();
        let count_commits = Gauge::default();
        let fleet = FleetMetrics {
            round_trips: Counter::default(),
            lease_reclaims: Counter::default(),
            // 0.5 ms to ~4 s.
            notification_lag: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            listener_reconnects: Counter::default(),
            push_live: Gauge::default(),
        };
        registry.register(
            "fleet_round_trips",
            "PostgreSQL: statements run for limits shared by the fleet (admit, release)",
            fleet.round_trips.clone(),
        );
        registry.register(
            "fleet_lease_reclaims",
            "PostgreSQL: calls in flight given back after their relay stopped heartbeating",
            fleet.lease_reclaims.clone(),
        );
        registry.register(
            "fleet_notification_lag_seconds",
            "PostgreSQL: time from a change's statement to this relay applying it",
            fleet.notification_lag.clone(),
        );
        registry.register(
            "fleet_listener_reconnects",
            "PostgreSQL: times the change listener's connection was made again",
            fleet.listener_reconnects.clone(),
        );
        registry.register(
            "fleet_push_live",
            "PostgreSQL: 1 while changes are pushed to this relay, 0 while it polls",
            fleet.push_live.clone(),
        );
        registry.register(
            "requests",
            "Calls forwarded to a provider, by provider and upstream status",
            requests.clone(),
        );
        registry.register(
            "refusals",
            "Requests refused by the relay, by error code",
            refusals.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time from receiving a call to the end of the provider's response",
            upstream_latency.clone(),
        );
        registry.register(
            "upstream_ttfb_seconds",
            "Time from receiving a call to the provider's response headers",
            ttfb.clone(),
        );
        registry.register(
            "streams_in_flight",
            "Responses being streamed to clients",
            streams_in_flight.clone(),
        );
        registry.register(
            "realtime_sessions_open",
            "Realtime WebSocket sessions open",
            sessions_open.clone(),
        );
        registry.register(
            "realtime_session_duration_seconds",
            "Length of realtime sessions, by how they ended",
            session_duration.clone(),
        );
        registry.register(
            "realtime_frames",
            "WebSocket messages relayed, by direction (up: to the provider)",
            session_frames.clone(),
        );
        registry.register(
            "realtime_bytes",
            "WebSocket payload bytes relayed, by direction (up: to the provider)",
            session_bytes.clone(),
        );
        registry.register(
            "usage_queue_depth",
            "Usage records waiting to be written",
            usage_queue_depth.clone(),
        );
        registry.register(
            "usage_records_dropped",
            "Usage records dropped because the queue was full",
            usage_dropped.clone(),
        );
        registry.register(
            "call_counts_inline",
            "SQLite: calls counted on the request's own thread since start",
            counts_inline.clone(),
        );
        registry.register(
            "call_counts_deferred",
            "SQLite: calls whose count had to wait for the database, off the request's thread",
            counts_deferred.clone(),
        );
        registry.register(
            "call_count_commits",
            "SQLite: commits that counted calls on a request's thread (calls of one turn of \
             the runtime share one)",
            count_commits.clone(),
        );
        Self {
            registry,
            requests,
            refusals,
            upstream_latency,
            ttfb,
            streams_in_flight,
            sessions_open,
            session_duration,
            session_frames,
            session_bytes,
            usage_queue_depth,
            usage_dropped,
            counts_inline,
            counts_deferred,
            count_commits,
            fleet,
        }
    }
}

impl Metrics {
    pub fn refused(&self, code: &str) {
        self.refusals
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// The text exposition, with the usage queue's and the store's current state.
    pub fn render(
        &self,
        queue_depth: usize,
        dropped: u64,
        counts: Option<InlineCountStats>,
    ) -> String {
        self.usage_queue_depth.set(queue_depth as i64);
        self.usage_dropped.set(dropped as i64);
        if let Some(counts) = counts {
            self.counts_inline.set(counts.inline as i64);
            self.counts_deferred.set(counts.deferred as i64);
            self.count_commits.set(counts.commits as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Decrements the in-flight streams gauge when a stream ends.
pub struct StreamGauge(Arc<Metrics>);

impl StreamGauge {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.streams_in_flight.inc();
        StreamGauge(metrics)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.streams_in_flight.dec();
    }
}
