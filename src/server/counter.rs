//! Counting calls: exact and durable before anything is forwarded.
//!
//! - On SQLite the call is first counted on the calling thread, by the same conditional
//!   `UPDATE` as below, when that can be done without waiting (`store::inline`). Only
//!   when it cannot does a call take one of the two paths below.
//! - A token with a call limit is counted by one conditional `UPDATE` in the store before the
//!   call is forwarded. The database decides, so however many requests and relay processes
//!   race, at most `max_calls` are forwarded.
//! - A token without a limit has nothing to over-serve, so its calls are group-committed:
//!   every call waiting to be counted joins the next batch, one statement writes the whole
//!   batch, and only then are its calls forwarded. Under load one write counts many calls;
//!   a crash never loses a count of a call that was forwarded, and a failed write refuses
//!   the batch's calls (fail closed) instead of forwarding them uncounted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::errors::ApiError;
use crate::store::{Consume, Store, TokenRecord};

/// Calls waiting for the next write, and the channel their outcome is announced on.
struct Batch {
    calls: HashMap<String, i64>,
    written: watch::Sender<Option<bool>>,
}

impl Batch {
    fn new() -> Self {
        Self {
            calls: HashMap::new(),
            written: watch::Sender::new(None),
        }
    }
}

pub struct CallCounter {
    store: Store,
    batch: Mutex<Batch>,
    /// Wakes the writer; `notify_one` keeps a permit, so no call is missed.
    wake: Arc<Notify>,
}

impl CallCounter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            batch: Mutex::new(Batch::new()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Counts one call durably, or says why it may not be made.
    pub async fn consume(&self, record: &TokenRecord) -> Result<(), ApiError> {
        let consumed = match self.store.try_consume_now(&record.id) {
            Some(consumed) => consumed?,
            None if record.limits.max_calls.is_some() => self.store.try_consume(&record.id).await?,
            None => return self.join_batch(record).await,
        };
        match consumed {
            Consume::Counted => Ok(()),
            Consume::Exhausted => Err(ApiError::CallsExhausted),
            Consume::Revoked => Err(ApiError::TokenRevoked),
            Consume::Missing => Err(ApiError::InvalidToken),
        }
    }

    /// Counts a call of a token without a limit in the next group commit.
    async fn join_batch(&self, record: &TokenRecord) -> Result<(), ApiError> {
        let mut written = {
            let mut batch = self.batch.lock().expect("counter lock");
            *batch.calls.entry(record.id.clone()).or_default() += 1;
            batch.written.subscribe()
        };
        self.wake.notify_one();
        match written.wait_for(Option::is_some).await.as_deref() {
            Ok(Some(true)) => Ok(()),
            // The write failed, or the writer is gone: the call was not counted.
            _ => Err(ApiError::StoreUnavailable),
        }
    }

    /// Gives back a call that never reached the provider.
    pub async fn give_back(&self, id: &str) {
        let given = match self.store.give_back_now(id) {
            Some(given) => given,
            None => self.store.give_back(id).await,
        };
        if let Err(e) = given {
            tracing::warn!(error = %e, token_id = id, "could not give back a call");
        }
    }

    /// Writes waiting batches, one at a time, until the counter is dropped by everyone else.
    /// While one batch is being written the next one fills, so under load one write counts
    /// many calls.
    pub fn spawn_writer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                let Some(counter) = weak.upgrade() else { break };
                if counter.batch.lock().expect("counter lock").calls.is_empty() {
                    drop(counter);
                    // A call joining after the check leaves a permit: no wake-up is lost.
                    wake.notified().await;
                    continue;
                }
                counter.write_batch().await;
            }
        })
    }

    async fn write_batch(&self) {
        let batch = std::mem::replace(&mut *self.batch.lock().expect("counter lock"), Batch::new());
        let calls: Vec<(String, i64)> = batch.calls.into_iter().collect();
        let ok = match self.store.add_calls(&calls, Utc::now()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, calls = calls.len(), "could not count calls; refused");
                false
            }
        };
        batch.written.send_replace(Some(ok));
    }
}
