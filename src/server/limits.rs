//! Per-token limits held by each relay process: requests per minute (token bucket),
//! requests in flight, and output tokens reserved by calls in flight (for the token budget).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::errors::ApiError;

/// Past this many tracked tokens, idle entries are dropped.
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
struct TokenState {
    in_flight: AtomicU32,
    reserved_tokens: AtomicI64,
    bucket: Mutex<Option<Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Default)]
pub struct Limiter {
    tokens: RwLock<HashMap<String, Arc<TokenState>>>,
    /// Calls in flight on this relay, of every token.
    in_flight: Arc<AtomicI64>,
}

/// Held while a call is in flight (until its response body ends); releases on drop.
pub struct Permit {
    state: Arc<TokenState>,
    all_in_flight: Arc<AtomicI64>,
    reserved: i64,
    /// The token's requests-per-minute bucket after this call took from it.
    pub rate: Option<RateLeft>,
    /// On PostgreSQL, the call's hold on the limits the fleet shares.
    pub lease: Option<super::fleet::Lease>,
}

impl Permit {
    /// Charges the call's tokens to the budget as its lease is given back; `false` when
    /// the usage record is to charge them (see [`super::fleet::Lease::charge`]).
    pub fn charge(&mut self, tokens: i64) -> bool {
        self.lease
            .as_mut()
            .is_some_and(|lease| lease.charge(tokens))
    }

    /// Gives back the call's hold on the fleet's limits now, charging `tokens`; `None`
    /// without one (see [`super::fleet::Lease::release`]).
    pub fn release_now(&mut self, tokens: Option<i64>) -> Option<super::fleet::Released> {
        self.lease
            .as_mut()
            .map(|lease| Box::pin(lease.release(tokens)) as super::fleet::Released)
    }
}

/// What a page may read of its rate limit: the bucket's size, the requests left in it,
/// and the seconds until it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLeft {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.all_in_flight.fetch_sub(1, Ordering::AcqRel);
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.state
            .reserved_tokens
            .fetch_sub(self.reserved, Ordering::AcqRel);
    }
}

impl Limiter {
    fn state(&self, id: &str) -> Arc<TokenState> {
        if let Some(s) = self.tokens.read().expect("limiter lock").get(id) {
            return s.clone();
        }
        let mut map = self.tokens.write().expect("limiter lock");
        if map.len() >= MAX_TRACKED {
            map.retain(|_, s| s.in_flight.load(Ordering::Acquire) > 0);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    /// Calls in flight on this relay.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Output tokens reserved by this process's calls in flight for a token.
    pub fn reserved_tokens(&self, id: &str) -> i64 {
        self.tokens
            .read()
            .expect("limiter lock")
            .get(id)
            .map_or(0, |s| s.reserved_tokens.load(Ordering::Acquire))
    }

    /// Admits one call, or says which limit refused it. Checks concurrency first, so a call
    /// refused for concurrency does not spend a request of the minute.
    pub fn admit(
        &self,
        id: &str,
        rpm: Option<u32>,
        concurrency: Option<u32>,
        reserve_tokens: i64,
    ) -> Result<Permit, ApiError> {
        let state = self.state(id);
        let in_flight = state.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        state
            .reserved_tokens
            .fetch_add(reserve_tokens, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut permit = Permit {
            state: state.clone(),
            all_in_flight: self.in_flight.clone(),
            reserved: reserve_tokens,
            rate: None,
            lease: None,
        };
        if concurrency.is_some_and(|max| in_flight > max) {
            return Err(ApiError::TooManyConcurrentRequests);
        }
        if let Some(rpm) = rpm {
            permit.rate = Some(take_from_bucket(&state, rpm)?);
        }
        Ok(permit)
    }
}

/// A bucket of `rpm` requests refilled at `rpm` per minute.
fn take_from_bucket(state: &TokenState, rpm: u32) -> Result<RateLeft, ApiError> {
    let capacity = f64::from(rpm);
    let per_second = capacity / 60.0;
    let now = Instant::now();
    let mut guard = state.bucket.lock().expect("bucket lock");
    let bucket = guard.get_or_insert(Bucket {
        tokens: capacity,
        updated: now,
    });
    let elapsed = now.duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
    bucket.updated = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(RateLeft {
            limit: rpm,
            remaining: bucket.tokens.floor() as u32,
            reset_secs: ((capacity - bucket.tokens) / per_second).ceil() as u64,
        })
    } else {
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
        Err(ApiError::RateLimited {
            retry_after_secs: wait as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_allows_a_burst_of_n_then_refuses_with_retry_after() {
        let limiter = Limiter::default();
        let permits: Vec<_> = (0..3)
            .map(|_| limiter.admit("t", Some(3), None, 0).unwrap())
            .collect();
        match limiter.admit("t", Some(3), None, 0) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs))
            }
            other => panic!("expected rate_limited, got {:?}", other.err()),
        }
        assert_eq!(
            permits[2].rate,
            Some(RateLeft {
                limit: 3,
                remaining: 0,
                reset_secs: 60
            })
        );
        assert_eq!(permits[0].rate.map(|r| r.remaining), Some(2));
        drop(permits);
        // Another token has its own bucket.
        assert!(limiter.admit("u", Some(3), None, 0).is_ok());
    }

    #[test]
    fn concurrency_counts_permits_in_flight() {
        let limiter = Limiter::default();
        let a = limiter.admit("t", None, Some(2), 10).unwrap();
        let _b = limiter.admit("t", None, Some(2), 10).unwrap();
        assert_eq!(limiter.reserved_tokens("t"), 20);
        assert!(matches!(
            limiter.admit("t", None, Some(2), 10),
            Err(ApiError::TooManyConcurrentRequests)
        ));
        drop(a);
        assert!(limiter.admit("t", None, Some(2), 10).is_ok());
        assert_eq!(limiter.reserved_tokens("t"), 10);
    }
}
