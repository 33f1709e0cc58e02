//! Resolving a presented token to what the relay needs, without an ECDH or a database read
//! on every request.
//!
//! Opened tokens are cached by fingerprint together with a snapshot of their database row.
//! A snapshot older than `SOFT_TTL` is refreshed in the background; one older than
//! `HARD_TTL` is refreshed before use. So a revocation or a policy change made by any
//! process is seen within `HARD_TTL` (< 1 s), and a database that stops answering turns
//! into refusals within the same bound (fail closed). Refusals are never cached.

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
    ring: Arc<KeyRing>,
    store: Store,
    entries: RwLock<HashMap<String, Arc<ResolvedToken>>>,
    unreadable: UnreadableRows,
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
            ring,
            store,
            entries: RwLock::new(HashMap::new()),
            unreadable: UnreadableRows::default(),
        }
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
        let opened = token::open_any(&self.ring, presented).map_err(|_| ApiError::InvalidToken)?;
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
        new.kid = self.ring.active_kid().to_string();
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
        let (age, refreshing) = {
            let s = entry.snapshot.lock().expect("snapshot lock");
            (s.fetched.elapsed(), s.refreshing)
        };
        if age < SOFT_TTL {
            return Ok(());
        }
        if age < HARD_TTL {
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
                        Ok(Some(record)) => {
                            s.record = Arc::new(record);
                            s.fetched = Instant::now();
                        }
                        // Deleted rows and errors leave the snapshot to age out: the next
                        // request past HARD_TTL asks the store itself.
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
                let mut s = entry.snapshot.lock().expect("snapshot lock");
                s.record = Arc::new(record);
                s.fetched = Instant::now();
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

impl TokenCache {
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.clone()
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
