//! Limits held for the fleet as a whole, when several relays share one PostgreSQL.
//!
//! - **Admission.** A call of a token with limits is counted by one statement that also
//!   takes a slot of its concurrency, its reservation for the budget and a request of its
//!   rate (`store::fleet`): the database decides for every relay at once, on its own clock.
//! - **Leases.** A call holding a slot or a reservation is written to this relay's lease;
//!   when it ends, what it held is given back (batched, off the request path) together
//!   with the tokens it used. Each relay heartbeats every `HEARTBEAT_EVERY`; a relay silent
//!   for `RELAY_TTL` is presumed dead and its leases are given back by the others, so a
//!   `kill -9` costs its calls' slots for at most `RELAY_TTL + HEARTBEAT_EVERY`. A graceful
//!   stop gives back at once.
//! - **Push.** Changes (revocations, updates, issuers, key rotations) are announced by the
//!   database (`NOTIFY relayapi_changes`) and marked in the token cache as they arrive.
//!   When the listener's connection breaks, the cache polls as it does on SQLite until it
//!   is back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sqlx;
use tokio::sync::{Notify, mpsc};

use super::AppState;
use super::errors::ApiError;
use super::limits::RateLeft;
use crate::store::{FleetAdmission, FleetRefusal, RelayInfo, Release, Store, TokenRecord};

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
pub use crate::store::RELAY_TTL;
/// The channel the database announces changes on (see the migration's triggers).
pub const CHANNEL: &str = "relayapi_changes";
/// The listener connection's name in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "relayapi-listener";
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MOST: Duration = Duration::from_secs(5);
/// Past this many tokens in one burst of changes, every snapshot is marked instead.
const ANNOUNCE_ALL_PAST: usize = 1024;

pub struct Fleet {
    store: Store,
    relay: RelayInfo,
    /// Where clients reach this relay, known once it listens.
    address: std::sync::OnceLock<String>,
    releases: mpsc::UnboundedSender<(String, Release)>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<(String, Release)>>>,
    stop: Notify,
    pushed: AtomicBool,
}

/// A call's hold on the fleet's limits: given back by [`release`](Self::release) as the
/// call ends, or else when dropped.
pub struct Lease {
    fleet: Arc<Fleet>,
    token_id: String,
    reserved: i64,
    charged: i64,
    /// Given back already, by `release`.
    released: bool,
}

impl Lease {
    /// Charges the call's tokens with the lease's release, which gives back its reservation
    /// in the same statement; `false` when the lease reserves nothing (the usage record
    /// charges them as for any call).
    pub fn charge(&mut self, tokens: i64) -> bool {
        if self.reserved == 0 {
            return false;
        }
        if !self.released {
            self.charged = tokens.max(0);
        }
        true
    }

    /// Gives back now, with the call's tokens (see [`charge`](Self::charge)), in a task of
    /// its own that finishes even if its caller leaves. The response's last bytes wait for
    /// it: a client that sends its next call as soon as this one ends must find the slot
    /// free, on every relay. A statement that fails leaves the release to the writer, which
    /// tries again.
    pub fn release(&mut self, tokens: Option<i64>) -> tokio::task::JoinHandle<()> {
        if let Some(tokens) = tokens {
            self.charge(tokens);
        }
        self.released = true;
        let fleet = self.fleet.clone();
        let token_id = self.token_id.clone();
        let release = self.to_release();
        tokio::spawn(async move {
            let batch = [(token_id, release)];
            if fleet
                .store
                .fleet_release(&fleet.relay.id, &batch)
                .await
                .is_err()
            {
                let [(token_id, release)] = batch;
                let _ = fleet.releases.send((token_id, release));
            }
        })
    }

    fn to_release(&self) -> Release {
        Release {
            calls: 1,
            reserved: self.reserved,
            charged: self.charged,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let release = self.to_release();
        // The writer outlives every lease but at the very end of a stop; a release it
        // cannot take is given back by the other relays when this one is gone.
        let _ = self
            .fleet
            .releases
            .send((std::mem::take(&mut self.token_id), release));
    }
}

impl Fleet {
    pub fn new(store: Store) -> Arc<Self> {
        let (releases, receiver) = mpsc::unbounded_channel();
        Arc::new(Fleet {
            store,
            relay: RelayInfo {
                id: crate::token::TokenId::random().to_string(),
                address: String::new(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: Utc::now(),
                last_seen: Utc::now(),
                in_flight: 0,
            },
            address: std::sync::OnceLock::new(),
            releases,
            receiver: Mutex::new(Some(receiver)),
            stop: Notify::new(),
            pushed: AtomicBool::new(false),
        })
    }

    pub fn relay_id(&self) -> &str {
        &self.relay.id
    }

    /// Whether changes are pushed to this relay now.
    pub fn pushed(&self) -> bool {
        self.pushed.load(Ordering::Acquire)
    }

    /// Whether a call of this token must be counted by [`admit`](Self::admit): it has a
    /// limit the fleet shares.
    pub fn governs(record: &TokenRecord) -> bool {
        let limits = &record.limits;
        limits.max_calls.is_some()
            || limits.max_total_tokens.is_some()
            || limits.policy.rpm.is_some()
            || limits.policy.concurrency.is_some()
    }

    /// Counts one call for the fleet, with its slot, reservation and rate; see
    /// `store::fleet`. The statement runs to its end in a task of its own, so that a
    /// caller who leaves meanwhile cannot strand a slot: the lease is then dropped, and
    /// given back, by the task.
    pub async fn admit(
        self: &Arc<Self>,
        state: &AppState,
        record: &TokenRecord,
        reserve: i64,
    ) -> Result<(Option<Lease>, Option<RateLeft>), ApiError> {
        let holds = record.limits.policy.concurrency.is_some() || reserve > 0;
        let fleet = self.clone();
        let token_id = record.id.clone();
        let metrics = state.metrics.clone();
        let admitted = tokio::spawn(async move {
            metrics.fleet.round_trips.inc();
            let admission = fleet
                .store
                .fleet_admit(&token_id, &fleet.relay.id, reserve, holds)
                .await?;
            if matches!(admission, FleetAdmission::Refused(_)) {
                metrics.fleet.round_trips.inc();
            }
            let lease =
                (holds && matches!(admission, FleetAdmission::Admitted { .. })).then(|| Lease {
                    fleet: fleet.clone(),
                    token_id,
                    reserved: reserve,
                    charged: 0,
                    released: false,
                });
            Ok::<_, crate::store::StoreError>((admission, lease))
        })
        .await
        .map_err(|_| ApiError::StoreUnavailable)??;
        match admitted {
            (FleetAdmission::Admitted { rate }, lease) => Ok((lease, rate.map(rate_left))),
            (FleetAdmission::Refused(refusal), _) => Err(match refusal {
                FleetRefusal::Missing => ApiError::InvalidToken,
                FleetRefusal::Revoked => ApiError::TokenRevoked,
                FleetRefusal::Expired => ApiError::TokenExpired,
                FleetRefusal::Exhausted => ApiError::CallsExhausted,
                FleetRefusal::Concurrency | FleetRefusal::Contended => {
                    ApiError::TooManyConcurrentRequests
                }
                FleetRefusal::Budget => ApiError::TokenBudgetExhausted,
                FleetRefusal::Rate { wait_us } => ApiError::RateLimited {
                    retry_after_secs: u64::try_from(wait_us)
                        .unwrap_or(1)
                        .div_ceil(1_000_000)
                        .max(1),
                },
            }),
        }
    }

    /// Starts the heartbeat, the release writer and the change listener; returns the
    /// release writer, for [`leave`](Self::leave), and the others.
    pub fn spawn(
        self: &Arc<Self>,
        state: Arc<AppState>,
        address: String,
    ) -> (
        tokio::task::JoinHandle<()>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let _ = self.address.set(address);
        let receiver = self
            .receiver
            .lock()
            .expect("receiver lock")
            .take()
            .expect("the fleet's tasks start once");
        (
            tokio::spawn(self.clone().write_releases(receiver, state.clone())),
            vec![
                tokio::spawn(self.clone().heartbeats(state.clone())),
                tokio::spawn(self.clone().listen(state)),
            ],
        )
    }

    /// A graceful stop, after the last call ended: writes the releases still queued, then
    /// leaves the fleet, giving back anything its leases still hold.
    pub async fn leave(&self, writer: tokio::task::JoinHandle<()>) {
        self.stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        match self
            .store
            .reclaim_relays(RELAY_TTL, Some(&self.relay.id))
            .await
        {
            Ok(_) => tracing::info!(relay = %self.relay.id, "left the fleet"),
            Err(e) => {
                tracing::warn!(error = %e, "could not leave the fleet; the others reclaim this relay's leases")
            }
        }
    }

    async fn heartbeats(self: Arc<Self>, state: Arc<AppState>) {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        let mut failing = false;
        let relay = RelayInfo {
            address: self.address.get().cloned().unwrap_or_default(),
            ..self.relay.clone()
        };
        loop {
            tick.tick().await;
            let in_flight = i32::try_from(state.limiter.in_flight()).unwrap_or(i32::MAX);
            match self.store.relay_heartbeat(&relay, in_flight).await {
                Ok(inserted) => {
                    if inserted && !first {
                        tracing::warn!(
                            relay = %self.relay.id,
                            "this relay was presumed dead (no heartbeat for {} s); its calls in flight were given back",
                            RELAY_TTL.as_secs()
                        );
                    }
                    if failing {
                        tracing::info!("heartbeat written again");
                    }
                    first = false;
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                    failing = true;
                    continue;
                }
            }
            match self.store.reclaim_relays(RELAY_TTL, None).await {
                Ok((relays, calls)) if relays > 0 => {
                    state
                        .metrics
                        .fleet
                        .lease_reclaims
                        .inc_by(calls.max(0) as u64);
                    tracing::warn!(
                        relays,
                        calls,
                        "relays presumed dead; their calls in flight given back"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "reclaiming dead relays failed"),
            }
        }
    }

    /// Writes releases in batches, one statement per batch; a batch that fails is kept and
    /// tried again, so that no slot is lost to a database hiccup.
    async fn write_releases(
        self: Arc<Self>,
        mut receiver: mpsc::UnboundedReceiver<(String, Release)>,
        state: Arc<AppState>,
    ) {
        let mut pending: HashMap<String, Release> = HashMap::new();
        let mut received = Vec::with_capacity(256);
        let mut backoff = RECONNECT_FIRST;
        let mut stopping = false;
        loop {
            if pending.is_empty() {
                tokio::select! {
                    biased;
                    n = receiver.recv_many(&mut received, 1024) => if n == 0 { stopping = true },
                    _ = self.stop.notified(), if !stopping => stopping = true,
                }
            }
            while let Ok(next) = receiver.try_recv() {
                received.push(next);
            }
            for (token_id, r) in received.drain(..) {
                let sum = pending.entry(token_id).or_default();
                sum.calls += r.calls;
                sum.reserved += r.reserved;
                sum.charged += r.charged;
            }
            if pending.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            let batch: Vec<(String, Release)> = pending
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            state.metrics.fleet.round_trips.inc();
            match self.store.fleet_release(&self.relay.id, &batch).await {
                Ok(()) => {
                    pending.clear();
                    backoff = RECONNECT_FIRST;
                }
                Err(e) => {
                    tracing::warn!(error = %e, tokens = batch.len(), "could not give back calls in flight; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MOST);
                    if stopping {
                        // One more try after the pause, then the others reclaim the rest.
                        if self
                            .store
                            .fleet_release(&self.relay.id, &batch)
                            .await
                            .is_ok()
                        {
                            pending.clear();
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Listens for changes; when the connection breaks, polls (the cache's tight bounds)
    /// and connects again with backoff.
    async fn listen(self: Arc<Self>, state: Arc<AppState>) {
        let mut backoff = RECONNECT_FIRST;
        let mut connected_before = false;
        let mut said_down = false;
        loop {
            match connect_listener(self.store.url()).await {
                Ok(mut listener) => {
                    if connected_before {
                        state.metrics.fleet.listener_reconnects.inc();
                        tracing::info!("change listener connected again: changes are pushed");
                    }
                    connected_before = true;
                    said_down = false;
                    backoff = RECONNECT_FIRST;
                    self.set_pushed(&state, true);
                    // `Ok(None)`: the connection was lost.
                    while let Ok(Some(first)) = listener.try_recv().await {
                        let mut batch = vec![first];
                        while let Some(more) = listener.next_buffered() {
                            batch.push(more);
                        }
                        self.apply(&state, &batch);
                    }
                    self.set_pushed(&state, false);
                    tracing::warn!("change listener lost: polling until it is back");
                }
                Err(e) => {
                    if !said_down {
                        tracing::warn!(error = %e, "change listener cannot connect: polling until it can");
                        said_down = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MOST);
        }
    }

    fn set_pushed(&self, state: &AppState, pushed: bool) {
        self.pushed.store(pushed, Ordering::Release);
        state.metrics.fleet.push_live.set(i64::from(pushed));
        state.tokens.set_pushed(pushed);
    }

    /// Marks what a burst of announcements names; a key rotation also reads the key ring
    /// again.
    fn apply(&self, state: &AppState, batch: &[sqlx::postgres::PgNotification]) {
        let now_us = Utc::now().timestamp_micros();
        let mut ids = HashSet::new();
        let mut all = false;
        for n in batch {
            let change = Change::parse(n.payload());
            if let Some(at_us) = change.at_us {
                let lag = (now_us - at_us).max(0) as f64 / 1e6;
                state.metrics.fleet.notification_lag.observe(lag);
            }
            match change.kind {
                ChangeKind::Token(id) => {
                    ids.insert(id.to_string());
                }
                ChangeKind::Keys => {
                    reload_keys(state);
                    all = true;
                }
                ChangeKind::Issuer | ChangeKind::Unknown => all = true,
            }
        }
        if all || ids.len() > ANNOUNCE_ALL_PAST {
            state.tokens.announce(None);
        } else {
            state.tokens.announce(Some(&ids));
        }
    }
}

/// Reads the key ring again, from this relay's own keys directory.
fn reload_keys(state: &AppState) {
    let Some(dir) = state.config.keys_dir.as_ref() else {
        return;
    };
    match crate::crypto::KeyRing::load(dir) {
        Ok(ring) => {
            tracing::info!(
                keys = ring.list().len(),
                "key ring read again after a rotation"
            );
            state.tokens.replace_ring(ring);
        }
        Err(e) => {
            tracing::warn!(error = %e, "a rotation was announced, but the key ring cannot be read")
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ChangeKind<'a> {
    Token(&'a str),
    Issuer,
    Keys,
    Unknown,
}

#[derive(Debug, PartialEq, Eq)]
struct Change<'a> {
    kind: ChangeKind<'a>,
    at_us: Option<i64>,
}

impl<'a> Change<'a> {
    /// `<kind>:<subject>:<microseconds>`, as the triggers write it (and `keygen --rotate`).
    fn parse(payload: &'a str) -> Self {
        let mut parts = payload.splitn(3, ':');
        let (kind, subject, at) = (parts.next(), parts.next(), parts.next());
        let kind = match (kind, subject) {
            (Some("t"), Some(id)) if !id.is_empty() => ChangeKind::Token(id),
            (Some("i"), _) => ChangeKind::Issuer,
            (Some("k"), _) => ChangeKind::Keys,
            _ => ChangeKind::Unknown,
        };
        Change {
            kind,
            at_us: at.and_then(|t| t.parse().ok()),
        }
    }
}

/// Announces a key rotation to every relay on this database (`keygen --rotate`).
pub async fn announce_rotation(store: &Store) -> Result<(), crate::store::StoreError> {
    store
        .notify(CHANNEL, &format!("k::{}", Utc::now().timestamp_micros()))
        .await
}

async fn connect_listener(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?.application_name(LISTENER_NAME);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// What a token's rate limit leaves, from how far ahead of now its time is.
fn rate_left((rpm, ahead_us): (u32, i64)) -> RateLeft {
    let interval = 60_000_000 / i64::from(rpm.max(1));
    let room = interval * i64::from(rpm) - ahead_us.max(0);
    RateLeft {
        limit: rpm,
        remaining: u32::try_from((room / interval).max(0)).unwrap_or(0),
        reset_secs: u64::try_from(ahead_us.max(0))
            .unwrap_or(0)
            .div_ceil(1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_odd_ones_mean_everything() {
        assert_eq!(
            Change::parse("t:abc:123"),
            Change {
                kind: ChangeKind::Token("abc"),
                at_us: Some(123)
            }
        );
        assert_eq!(Change::parse("i:acme:5").kind, ChangeKind::Issuer);
        assert_eq!(Change::parse("k::5").kind, ChangeKind::Keys);
        assert_eq!(Change::parse("t::5").kind, ChangeKind::Unknown);
        assert_eq!(Change::parse("").kind, ChangeKind::Unknown);
        assert_eq!(Change::parse("t:abc:soon").at_us, None);
    }

    #[test]
    fn rate_left_counts_whole_requests_and_seconds() {
        // rpm 30: one request every 2 s. Just after the first request: 29 left, full in 2 s.
        assert_eq!(
            rate_left((30, 2_000_000)),
            RateLeft {
                limit: 30,
                remaining: 29,
                reset_secs: 2
            }
        );
        // The bucket taken whole: none left, full in a minute.
        assert_eq!(rate_left((30, 60_000_000)).remaining, 0);
        assert_eq!(rate_left((30, 60_000_000)).reset_secs, 60);
        // Half a request's time later, still none.
        assert_eq!(rate_left((30, 59_000_000)).remaining, 0);
    }
}
