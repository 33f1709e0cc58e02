//! Limits held for the fleet as a whole, when several relays share one PostgreSQL.
//!
//! - **Admission.** A call of a token with limits is counted by one statement that also
//!   takes a slot of its concurrency, its reservation for the budget and a request of its
//!   rate (`store::fleet`): the database decides for every relay at once, on its own clock.
//!   Calls of one token waiting at the same time are admitted by one statement: a hot
//!   token's row is locked once per batch, not once per call.
//! - **Leases.** A call holding a slot or a reservation is written to this relay's lease;
//!   when it ends, what it held is given back together with the tokens it used, in a
//!   batch that the response's last bytes wait for. Each relay heartbeats every `HEARTBEAT_EVERY`; a relay silent
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
use tokio::sync::{Notify, oneshot, watch};

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
    metrics: Arc<super::metrics::Metrics>,
    /// Calls waiting to be admitted, by token.
    admissions: Mutex<HashMap<String, Waiting>>,
    admit_wake: Notify,
    /// Releases waiting to be written.
    releases: Mutex<ReleaseBatch>,
    release_wake: Notify,
    stop: Notify,
    pushed: AtomicBool,
}

/// A release being written, which a response's last bytes wait for.
pub type Released = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a call admitted for the fleet takes away: its lease (when it holds a slot or a
/// reservation) and what its rate limit leaves.
type Admitted = (Option<Lease>, Option<RateLeft>);

/// The calls of one token waiting for the next admission.
struct Waiting {
    reserve: i64,
    lease: bool,
    waiters: Vec<oneshot::Sender<Result<Admitted, ApiError>>>,
}

/// Releases waiting for the next write, by token, and the channel that tells when it was
/// written.
struct ReleaseBatch {
    releases: HashMap<String, Release>,
    written: watch::Sender<bool>,
}

impl Default for ReleaseBatch {
    fn default() -> Self {
        Self {
            releases: HashMap::new(),
            written: watch::Sender::new(false),
        }
    }
}

impl ReleaseBatch {
    fn add(&mut self, token_id: String, release: &Release) {
        let sum = self.releases.entry(token_id).or_default();
        sum.calls += release.calls;
        sum.reserved += release.reserved;
        sum.charged += release.charged;
    }
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

    /// Gives back now, with the call's tokens (see [`charge`](Self::charge)); the future
    /// ends when the release is written (or failed, and was left to be tried again). The
    /// response's last bytes wait for it: a client that sends its next call as soon as
    /// this one ends must find the slot free, on every relay.
    pub fn release(
        &mut self,
        tokens: Option<i64>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        if let Some(tokens) = tokens {
            self.charge(tokens);
        }
        self.released = true;
        let mut written = self.fleet.join_release(&self.token_id, &self.to_release());
        async move {
            let _ = written.wait_for(|written| *written).await;
        }
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
        if !self.released {
            self.fleet.join_release(&self.token_id, &self.to_release());
        }
    }
}

impl Fleet {
    pub fn new(store: Store, metrics: Arc<super::metrics::Metrics>) -> Arc<Self> {
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
            metrics,
            admissions: Mutex::new(HashMap::new()),
            admit_wake: Notify::new(),
            releases: Mutex::new(ReleaseBatch::default()),
            release_wake: Notify::new(),
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

    /// Counts one call for the fleet, with its slot, reservation and rate, in the next
    /// admission of its token (see `store::fleet`). A caller who leaves meanwhile strands
    /// nothing: the admission writer finds no one to hand the lease to, and drops it.
    pub async fn admit(&self, record: &TokenRecord, reserve: i64) -> Result<Admitted, ApiError> {
        let lease = record.limits.policy.concurrency.is_some() || reserve > 0;
        let (tx, rx) = oneshot::channel();
        {
            let mut admissions = self.admissions.lock().expect("admissions lock");
            let waiting = admissions
                .entry(record.id.clone())
                .or_insert_with(|| Waiting {
                    reserve,
                    lease,
                    waiters: Vec::new(),
                });
            // A policy changed between two calls: the larger hold serves both.
            waiting.reserve = waiting.reserve.max(reserve);
            waiting.lease |= lease;
            waiting.waiters.push(tx);
        }
        self.admit_wake.notify_one();
        rx.await.unwrap_or(Err(ApiError::StoreUnavailable))
    }

    /// Adds a release to the next batch; the receiver says when it was written.
    fn join_release(&self, token_id: &str, release: &Release) -> watch::Receiver<bool> {
        let written = {
            let mut batch = self.releases.lock().expect("releases lock");
            batch.add(token_id.to_string(), release);
            batch.written.subscribe()
        };
        self.release_wake.notify_one();
        written
    }

    /// Starts the admission and release writers, the heartbeat and the change listener;
    /// returns the release writer, for [`leave`](Self::leave), and the others.
    pub fn spawn(
        self: &Arc<Self>,
        state: Arc<AppState>,
        address: String,
    ) -> (
        tokio::task::JoinHandle<()>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let _ = self.address.set(address);
        (
            tokio::spawn(self.clone().write_releases()),
            vec![
                tokio::spawn(self.clone().admit_waiting()),
                tokio::spawn(self.clone().heartbeats(state.clone())),
                tokio::spawn(self.clone().listen(state)),
            ],
        )
    }

    /// A graceful stop, after the last call ended: writes the releases still waiting, then
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

    /// Admits the calls waiting, a statement per token, the tokens side by side; calls
    /// arriving meanwhile wait for the next round.
    async fn admit_waiting(self: Arc<Self>) {
        loop {
            let waiting = std::mem::take(&mut *self.admissions.lock().expect("admissions lock"));
            if waiting.is_empty() {
                // A call joining after the take leaves a permit: no wake-up is lost.
                self.admit_wake.notified().await;
                continue;
            }
            let rounds = waiting
                .into_iter()
                .map(|(token_id, waiting)| self.admit_token(token_id, waiting));
            futures_util::future::join_all(rounds).await;
        }
    }

    /// Admits one token's waiting calls, in the order they came: as many as its limits
    /// allow, in as few statements as it takes (a partial admission is asked again for the
    /// rest, which then get in or get the limit that refused them).
    async fn admit_token(self: &Arc<Self>, token_id: String, waiting: Waiting) {
        let Waiting {
            reserve,
            lease,
            mut waiters,
        } = waiting;
        while !waiters.is_empty() {
            self.metrics.fleet.round_trips.inc();
            let asked = i32::try_from(waiters.len()).unwrap_or(i32::MAX);
            let answer = self
                .store
                .fleet_admit(&token_id, &self.relay.id, asked, reserve, lease)
                .await;
            let (admitted, rate) = match answer {
                Ok(FleetAdmission::Admitted { calls, rate }) => (calls, rate),
                Ok(FleetAdmission::Refused(refusal)) => {
                    let error = refused(refusal);
                    for waiter in waiters {
                        let _ = waiter.send(Err(error));
                    }
                    return;
                }
                Err(e) => {
                    let error = ApiError::from(e);
                    for waiter in waiters {
                        let _ = waiter.send(Err(error));
                    }
                    return;
                }
            };
            let admitted = usize::try_from(admitted).unwrap_or(0).min(waiters.len());
            let rest = waiters.split_off(admitted);
            for waiter in waiters {
                let held = lease.then(|| Lease {
                    fleet: self.clone(),
                    token_id: token_id.clone(),
                    reserved: reserve,
                    charged: 0,
                    released: false,
                });
                // A caller gone meanwhile: its lease drops here and is given back.
                let _ = waiter.send(Ok((held, rate.map(rate_left))));
            }
            waiters = rest;
        }
    }

    /// Writes releases in batches, one statement per batch; a batch that fails is kept and
    /// tried again, so that no slot is lost to a database hiccup. Waiters are let go either
    /// way: a response is not held for a database that does not answer.
    async fn write_releases(self: Arc<Self>) {
        let mut backoff = RECONNECT_FIRST;
        let mut stopping = false;
        loop {
            let batch = std::mem::take(&mut *self.releases.lock().expect("releases lock"));
            if batch.releases.is_empty() {
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = self.release_wake.notified() => {}
                    _ = self.stop.notified() => stopping = true,
                }
                continue;
            }
            let list: Vec<(String, Release)> = batch.releases.into_iter().collect();
            self.metrics.fleet.round_trips.inc();
            let written = self.store.fleet_release(&self.relay.id, &list).await;
            batch.written.send_replace(true);
            match written {
                Ok(()) => backoff = RECONNECT_FIRST,
                Err(e) => {
                    tracing::warn!(error = %e, tokens = list.len(), "could not give back calls in flight; trying again");
                    {
                        let mut next = self.releases.lock().expect("releases lock");
                        for (token_id, release) in &list {
                            next.add(token_id.clone(), release);
                        }
                    }
                    if stopping {
                        // The other relays reclaim what is left once this one is gone.
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MOST);
                }
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

/// The refusal a call gets for the limit that refused it.
fn refused(refusal: FleetRefusal) -> ApiError {
    match refusal {
        FleetRefusal::Missing => ApiError::InvalidToken,
        FleetRefusal::Revoked => ApiError::TokenRevoked,
        FleetRefusal::Expired => ApiError::TokenExpired,
        FleetRefusal::Exhausted => ApiError::CallsExhausted,
        FleetRefusal::Concurrency => ApiError::TooManyConcurrentRequests,
        FleetRefusal::Budget => ApiError::TokenBudgetExhausted,
        FleetRefusal::Rate { wait_us } => ApiError::RateLimited {
            retry_after_secs: u64::try_from(wait_us)
                .unwrap_or(1)
                .div_ceil(1_000_000)
                .max(1),
        },
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
    let interval = crate::store::rate_interval_us(i32::try_from(rpm).unwrap_or(i32::MAX));
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
        // A rate past a request a microsecond: no division by zero, the bucket its size.
        let huge = rate_left((100_000_000, 1));
        assert_eq!(
            (huge.limit, huge.remaining, huge.reset_secs),
            (100_000_000, 99_999_999, 1)
        );
        assert_eq!(rate_left((u32::MAX, 1)).reset_secs, 1);
    }
}
