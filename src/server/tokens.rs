//! Resolving a presented token to what the relay needs, without an ECDH or a database read
//! on every request.
//!
//! Opened tokens are cached by fingerprint together with a snapshot of their database row.
//! A snapshot older than `SOFT_TTL` is refreshed in the background; one older than
//! `HARD_TTL` is refreshed before use. So a revocation or a policy change made by any
//! process is seen within `HARD_TTL` (< 1 s), and a database that stops answering turns
//! into refusals within the same bound (fail closed). Refusals are never cached.
//!
//! On PostgreSQL, changes are also pushed (`server::fleet`): a change marks the token's
//! snapshot stale, so that its next request reads the row first. While the push works,
//! polling relaxes to `PUSHED_SOFT_TTL` / `PUSHED_HARD_TTL`; when it breaks, every snapshot
//! is marked stale and the bounds above hold again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::crypto::KeyRing;
use crate::issuer::SignedRefusal;
use crate::store::{Store, StoreError, TokenRecord};
use crate::token::signed::OpenedSigned;
use crate::token::{self, Opened, TokenClaims, TokenId};

use super::errors::ApiError;

pub const SOFT_TTL: Duration = Duration::from_millis(250);
pub const HARD_TTL: Duration = Duration::from_millis(900);
/// The same bounds while changes are pushed: polling is then only a second line.
pub const PUSHED_SOFT_TTL: Duration = Duration::from_secs(5);
pub const PUSHED_HARD_TTL: Duration = Duration::from_secs(30);
/// Bound on cached tokens; past it the cache starts over (a miss costs one open and one read).
const MAX_ENTRIES: usize = 100_000;

pub struct ResolvedToken {
    pub claims: TokenClaims,
    snapshot: Mutex<Snapshot>,
    /// `used_tokens` when this entry was loaded, and the tokens this process has recorded
    /// for the token since: together a lower bound on its usage that does not wait for the
    /// usage writer or the next refresh.
    base_used_tokens: i64,
    recorded_here: AtomicI64,
    /// Likewise for calls: `used_calls` when loaded, and the calls counted here since.
    base_used_calls: i64,
    counted_here: AtomicI64,
}

#[derive(Clone)]
struct Snapshot {
    record: Arc<TokenRecord>,
    fetched: Instant,
    refreshing: bool,
    /// A change was announced since the row was read: read it again before use.
    stale: bool,
    /// Counts announced changes, so that a read begun before one cannot clear `stale`.
    changes: u64,
}

impl ResolvedToken {
    pub fn record(&self) -> Arc<TokenRecord> {
        self.snapshot.lock().expect("snapshot lock").record.clone()
    }

    /// Counts tokens this process recorded for the token.
    pub fn add_recorded_tokens(&self, tokens: i64) {
        self.recorded_here.fetch_add(tokens, Ordering::AcqRel);
    }

    /// Notes a call this process counted for the token.
    pub fn add_counted_call(&self) {
        self.counted_here.fetch_add(1, Ordering::AcqRel);
    }

    /// Undoes [`add_counted_call`](Self::add_counted_call) for a call given back.
    pub fn give_back_counted_call(&self) {
        self.counted_here.fetch_sub(1, Ordering::AcqRel);
    }

    /// The best lower bound on the calls the token has used: a spent token is refused
    /// before its body is read, also right after its last call.
    pub fn used_calls(&self, snapshot: &TokenRecord) -> i64 {
        snapshot
            .used_calls
            .max(self.base_used_calls + self.counted_here.load(Ordering::Acquire))
    }

    /// The best lower bound on the tokens the token has used.
    pub fn used_tokens(&self, snapshot: &TokenRecord) -> i64 {
        snapshot
            .used_tokens
            .max(self.base_used_tokens + self.recorded_here.load(Ordering::Acquire))
    }
}

pub struct TokenCache {
    ring: RwLock<Arc<KeyRing>>,
    store: Store,
    entries: RwLock<HashMap<String, Arc<ResolvedToken>>>,
    unreadable: UnreadableRows,
    /// Changes are pushed to this relay (PostgreSQL's `LISTEN` is up).
    pushed: std::sync::atomic::AtomicBool,
    /// Bumped whenever changes are announced: realtime sessions look at their token again.
    announced: tokio::sync::watch::Sender<u64>,
}

/// Fingerprints of token rows that did not parse, so that each is logged once, not on
/// every call that presents it.
#[derive(Clone, Default)]
struct UnreadableRows(Arc<Mutex<std::collections::HashSet<String>>>);

impl UnreadableRows {
    /// What a store error means for a call: a row that does not parse is this token's
    /// fault and is refused as such; anything else is the store's.
    fn refusal(&self, fingerprint: &str, error: &StoreError) -> ApiError {
        if let StoreError::Corrupt(_) = error {
            if self
                .0
                .lock()
                .expect("unreadable lock")
                .insert(fingerprint.to_string())
            {
                tracing::error!(%error, "a token record cannot be read; its calls are refused until it is fixed");
            }
            ApiError::TokenRecordUnreadable
        } else {
            tracing::warn!(%error, "token lookup failed");
            ApiError::StoreUnavailable
        }
    }
}

impl TokenCache {
    pub fn new(ring: Arc<KeyRing>, store: Store) -> Self {
        Self {
            ring: RwLock::new(ring),
            store,
            entries: RwLock::new(HashMap::new()),
            unreadable: UnreadableRows::default(),
            pushed: std::sync::atomic::AtomicBool::new(false),
            announced: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Says whether changes are pushed; polling follows the tighter bounds when not. Either
    /// way every snapshot is read again: changes may have been missed in between.
    pub fn set_pushed(&self, pushed: bool) {
        self.pushed.store(pushed, Ordering::Release);
        self.announce(None);
    }

    fn ttls(&self) -> (Duration, Duration) {
        if self.pushed.load(Ordering::Acquire) {
            (PUSHED_SOFT_TTL, PUSHED_HARD_TTL)
        } else {
            (SOFT_TTL, HARD_TTL)
        }
    }

    /// Changes were made to these tokens (by id; `None`: to any): their next request reads
    /// the row first. Returns how many cached tokens it touched.
    pub fn announce(&self, ids: Option<&std::collections::HashSet<String>>) -> usize {
        let mut touched = 0;
        for entry in self.entries.read().expect("cache lock").values() {
            if ids.is_none_or(|ids| ids.contains(&entry.claims.id.to_string())) {
                let mut s = entry.snapshot.lock().expect("snapshot lock");
                s.stale = true;
                s.changes += 1;
                touched += 1;
            }
        }
        self.announced.send_modify(|n| *n += 1);
        touched
    }

    /// Changes when changes are announced.
    pub fn announcements(&self) -> tokio::sync::watch::Receiver<u64> {
        self.announced.subscribe()
    }

    /// Replaces the key ring (a rotation announced by another host, or read again).
    pub fn replace_ring(&self, ring: KeyRing) {
        *self.ring.write().expect("ring lock") = Arc::new(ring);
    }

    /// Resolves a presented token: opened with the key ring, registered in the store, and
    /// its row no older than `HARD_TTL`.
    pub async fn resolve(&self, presented: &str) -> Result<Arc<ResolvedToken>, ApiError> {
        if !token::looks_like_token(presented) {
            return Err(ApiError::InvalidToken);
        }
        let fingerprint = token::fingerprint(presented);
        let cached = self
            .entries
            .read()
            .expect("cache lock")
            .get(&fingerprint)
            .cloned();
        match cached {
            Some(entry) => {
                self.freshen(&entry, &fingerprint).await?;
                Ok(entry)
            }
            None => self.load(presented, fingerprint).await,
        }
    }

    async fn load(
        &self,
        presented: &str,
        fingerprint: String,
    ) -> Result<Arc<ResolvedToken>, ApiError> {
        let ring = self.ring();
        let opened = token::open_any(&ring, presented).map_err(|_| ApiError::InvalidToken)?;
        let (claims, record) = match opened {
            Opened::Registered(claims) => {
                let record = self.fetch(&fingerprint).await?;
                // A token that opens but whose row is missing, or belongs to another id, was
                // not issued through the store.
                if record.id != claims.id.to_string() {
                    return Err(ApiError::InvalidToken);
                }
                (claims, record)
            }
            Opened::Signed(signed) => self.load_signed(presented, &fingerprint, *signed).await?,
        };
        let entry = Arc::new(ResolvedToken {
            claims,
            base_used_tokens: record.used_tokens,
            recorded_here: AtomicI64::new(0),
            base_used_calls: record.used_calls,
            counted_here: AtomicI64::new(0),
            snapshot: Mutex::new(Snapshot {
                record: Arc::new(record),
                fetched: Instant::now(),
                refreshing: false,
                stale: false,
                changes: 0,
            }),
        });
        let mut entries = self.entries.write().expect("cache lock");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(fingerprint, entry.clone());
        Ok(entry)
    }

    /// A signed token: its row if it was used before; otherwise the issuer's signature and
    /// caps are checked and the row is created, so that from now on it is counted like any
    /// other token.
    async fn load_signed(
        &self,
        presented: &str,
        fingerprint: &str,
        signed: OpenedSigned,
    ) -> Result<(TokenClaims, TokenRecord), ApiError> {
        let id = TokenId::parse(&signed.claims.id).ok_or(ApiError::InvalidToken)?;
        let claims = TokenClaims {
            id,
            api_key: signed.api_key(),
        };
        if let Some(record) = self.store.find_by_fingerprint(fingerprint).await? {
            return Ok((claims, record));
        }
        let issuer = self
            .store
            .get_issuer(&signed.claims.iss)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let key = issuer.verifying_key().ok_or(ApiError::InvalidToken)?;
        if !signed.verify(&key) {
            return Err(ApiError::InvalidToken);
        }
        let mut new = crate::issuer::check(&signed.claims, &issuer, presented, chrono::Utc::now())
            .map_err(|refusal| match refusal {
                SignedRefusal::Invalid(why) => {
                    tracing::info!(issuer = %issuer.name, why, "signed token outside its issuer's caps");
                    ApiError::InvalidToken
                }
                SignedRefusal::IssuerRevoked => ApiError::TokenRevoked,
                SignedRefusal::Expired => ApiError::TokenExpired,
            })?;
        new.kid = self.ring().active_kid().to_string();
        let record = self.store.register_signed_token(&new, &issuer.name).await?;
        if self.store.find_by_fingerprint(fingerprint).await?.is_none() {
            // The id belongs to another row: a token revoked before its first use, or a
            // reused id.
            return Err(if record.revoked_at.is_some() {
                ApiError::TokenRevoked
            } else {
                ApiError::InvalidToken
            });
        }
        Ok((claims, record))
    }

    async fn fetch(&self, fingerprint: &str) -> Result<TokenRecord, ApiError> {
        match self.store.find_by_fingerprint(fingerprint).await {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(ApiError::InvalidToken),
            Err(e) => Err(self.unreadable.refusal(fingerprint, &e)),
        }
    }

    async fn freshen(&self, entry: &Arc<ResolvedToken>, fingerprint: &str) -> Result<(), ApiError> {
        let (soft, hard) = self.ttls();
        let (age, refreshing, stale, changes) = {
            let s = entry.snapshot.lock().expect("snapshot lock");
            (s.fetched.elapsed(), s.refreshing, s.stale, s.changes)
        };
        if !stale && age < soft {
            return Ok(());
        }
        if !stale && age < hard {
            if !refreshing {
                entry.snapshot.lock().expect("snapshot lock").refreshing = true;
                let (entry, store, fp, unreadable) = (
                    entry.clone(),
                    self.store.clone(),
                    fingerprint.to_string(),
                    self.unreadable.clone(),
                );
                tokio::spawn(async move {
                    let result = store.find_by_fingerprint(&fp).await;
                    let mut s = entry.snapshot.lock().expect("snapshot lock");
                    s.refreshing = false;
                    match result {
                        Ok(Some(record)) => s.refreshed(record, changes),
                        // Deleted rows and errors leave the snapshot to age out: the next
                        // request past the hard bound asks the store itself.
                        Ok(None) => {}
                        Err(e) => {
                            unreadable.refusal(&fp, &e);
                        }
                    }
                });
            }
            return Ok(());
        }
        match self.fetch(fingerprint).await {
            Ok(record) => {
                entry
                    .snapshot
                    .lock()
                    .expect("snapshot lock")
                    .refreshed(record, changes);
                Ok(())
            }
            Err(e) => {
                if e == ApiError::InvalidToken {
                    self.entries
                        .write()
                        .expect("cache lock")
                        .remove(fingerprint);
                }
                Err(e)
            }
        }
    }
}

impl Snapshot {
    /// A row read when `changes` changes had been announced: it is fresh unless another
    /// was announced while it was read.
    fn refreshed(&mut self, record: TokenRecord, changes: u64) {
        self.record = Arc::new(record);
        self.fetched = Instant::now();
        if self.changes == changes {
            self.stale = false;
        }
    }
}

impl TokenCache {
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("ring lock").clone()
    }

    /// Forgets one token, so that a change this process made is seen at once.
    pub fn invalidate_id(&self, id: &str) {
        self.entries
            .write()
            .expect("cache lock")
            .retain(|_, e| e.claims.id.to_string() != id);
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store error");
        ApiError::StoreUnavailable
    }
}
