//! Counting calls: exact and durable, without a database round trip where none is needed.
//!
//! - A token with a call limit is counted by one conditional `UPDATE` in the store before the
//!   call is forwarded. The database decides, so however many requests and relay processes
//!   race, at most `max_calls` are forwarded.
//! - A token without a limit has nothing to over-serve, so its calls are counted in memory
//!   and written in batches every `FLUSH_INTERVAL` and at shutdown. A crash loses at most
//!   the calls of the last interval from the count; a failed write is retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::errors::ApiError;
use crate::store::{Consume, Store, StoreError, TokenRecord};

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How a call was counted, so that it can be given back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    InStore,
    InMemory,
}

#[derive(Default)]
struct Pending {
    calls: i64,
    last_used_at: Option<DateTime<Utc>>,
}

pub struct CallCounter {
    store: Store,
    pending: Mutex<HashMap<String, Pending>>,
}

impl CallCounter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one call, or says why it may not be made.
    pub async fn consume(&self, record: &TokenRecord) -> Result<Counted, ApiError> {
        if record.max_calls.is_none() {
            let mut pending = self.pending.lock().expect("counter lock");
            let entry = pending.entry(record.id.clone()).or_default();
            entry.calls += 1;
            entry.last_used_at = Some(Utc::now());
            return Ok(Counted::InMemory);
        }
        match self.store.try_consume(&record.id).await? {
            Consume::Counted => Ok(Counted::InStore),
            Consume::Exhausted => Err(ApiError::CallsExhausted),
            Consume::Revoked => Err(ApiError::TokenRevoked),
            Consume::Missing => Err(ApiError::InvalidToken),
        }
    }

    /// Gives back a call that never reached the provider.
    pub async fn give_back(&self, id: &str, counted: Counted) {
        match counted {
            Counted::InMemory => {
                if let Some(entry) = self.pending.lock().expect("counter lock").get_mut(id) {
                    entry.calls -= 1;
                }
            }
            Counted::InStore => {
                if let Err(e) = self.store.give_back(id).await {
                    tracing::warn!(error = %e, token_id = id, "could not give back a call");
                }
            }
        }
    }

    /// Writes the calls counted in memory. What cannot be written stays for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let batch: Vec<(String, Pending)> = {
            let mut pending = self.pending.lock().expect("counter lock");
            if pending.is_empty() {
                return Ok(());
            }
            std::mem::take(&mut *pending).into_iter().collect()
        };
        let mut result = Ok(());
        let mut unwritten = Vec::new();
        for (id, p) in batch {
            let Some(last_used_at) = p.last_used_at else {
                continue;
            };
            if p.calls == 0 {
                continue;
            }
            if result.is_ok() {
                match self.store.add_calls(&id, p.calls, last_used_at).await {
                    Ok(()) => continue,
                    Err(e) => result = Err(e),
                }
            }
            unwritten.push((id, p));
        }
        if !unwritten.is_empty() {
            let mut pending = self.pending.lock().expect("counter lock");
            for (id, p) in unwritten {
                let entry = pending.entry(id).or_default();
                entry.calls += p.calls;
                entry.last_used_at = entry.last_used_at.max(p.last_used_at);
            }
        }
        result
    }

    /// Flushes every `FLUSH_INTERVAL` until the counter is dropped by everyone else.
    pub fn spawn_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(counter) = weak.upgrade() else { break };
                if let Err(e) = counter.flush().await {
                    tracing::warn!(error = %e, "could not write call counts; will retry");
                }
            }
        })
    }
}
