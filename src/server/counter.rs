//! Counting calls: exact and durable before anything is forwarded.
//!
//! - On SQLite the call is first counted on the calling thread, by the same conditional
//!   `UPDATE` as below, when that can be done without waiting (`store::inline`). Calls
//!   that reach this phase in the same turn of the runtime are counted together: each
//!   yields once, and the first to run again counts them all in one transaction, so
//!   SQLite's file locks and its WAL write are paid once per turn instead of once per call.
//!   Only when the inline count cannot be done does a call take one of the two paths below.
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

/// What an inline count answers each call of a turn (`None`: it could not be done
/// without waiting); a call that left before the count is `None` in the list.
type TurnOutcome = Option<Result<Vec<Option<Consume>>, ApiError>>;

/// Calls of this turn of the runtime waiting to be counted inline together.
struct Turn {
    number: u64,
    /// A call's token id, or `None` once the call has left.
    ids: Vec<Option<String>>,
    counted: watch::Sender<Option<Arc<TurnOutcome>>>,
}

impl Turn {
    fn new(number: u64) -> Self {
        Self {
            number,
            ids: Vec::new(),
            counted: watch::Sender::new(None),
        }
    }
}

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
    turn: Mutex<Turn>,
    batch: Mutex<Batch>,
    /// Wakes the writer; `notify_one` keeps a permit, so no call is missed.
    wake: Arc<Notify>,
}

impl CallCounter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            turn: Mutex::new(Turn::new(0)),
            batch: Mutex::new(Batch::new()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Counts one call durably, or says why it may not be made. `company`: whether other
    /// calls are in flight, which might join this one's turn.
    pub async fn consume(&self, record: &TokenRecord, company: bool) -> Result<(), ApiError> {
        let consumed = match self.count_this_turn(&record.id, company).await {
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

    /// Counts the call inline with every other call that reaches this point in the same
    /// turn of the runtime; `None` when the store cannot count inline, or not without
    /// waiting.
    async fn count_this_turn(&self, id: &str, company: bool) -> Option<Result<Consume, ApiError>> {
        if !self.store.counts_inline() {
            return None;
        }
        if !company {
            // Nobody could join: count at once, without giving the turn away.
            return self
                .store
                .try_consume_now(&[id])
                .map(|counted| Ok(counted?[0]));
        }
        let (number, index, mut counted) = {
            let mut turn = self.turn.lock().expect("turn lock");
            turn.ids.push(Some(id.to_string()));
            (turn.number, turn.ids.len() - 1, turn.counted.subscribe())
        };
        let leaving = Leaving {
            counter: self,
            number,
            index,
        };
        // Every call that is ready runs before this one runs again: they join the turn.
        tokio::task::yield_now().await;
        let taken = {
            let mut turn = self.turn.lock().expect("turn lock");
            (turn.number == number).then(|| std::mem::replace(&mut *turn, Turn::new(number + 1)))
        };
        // From here the call is counted (or refused) with its turn: it cannot leave it.
        std::mem::forget(leaving);
        let outcome = match taken {
            // The first call of the turn to run again counts the whole turn.
            Some(turn) => {
                let outcome = Arc::new(self.count_inline(&turn.ids));
                turn.counted.send_replace(Some(outcome.clone()));
                outcome
            }
            None => match counted.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone().expect("announced"),
                // The counting call panicked: this call was not counted.
                Err(_) => return Some(Err(ApiError::StoreUnavailable)),
            },
        };
        single(&outcome, index)
    }

    fn count_inline(&self, ids: &[Option<String>]) -> TurnOutcome {
        let present: Vec<&str> = ids.iter().flatten().map(String::as_str).collect();
        let counted = match self.store.try_consume_now(&present)? {
            Ok(counted) => counted,
            Err(e) => return Some(Err(e.into())),
        };
        let mut counted = counted.into_iter();
        Some(Ok(ids
            .iter()
            .map(|id| id.as_ref().and_then(|_| counted.next()))
            .collect()))
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

/// One call's answer from its turn's.
fn single(outcome: &TurnOutcome, index: usize) -> Option<Result<Consume, ApiError>> {
    match outcome.as_ref()? {
        Err(e) => Some(Err(*e)),
        Ok(outcomes) => Some(Ok(outcomes[index].expect("this call was counted"))),
    }
}

/// A call that leaves (its client went away) before its turn is counted is taken out of
/// the turn: a call never forwarded is never counted.
struct Leaving<'a> {
    counter: &'a CallCounter,
    number: u64,
    index: usize,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut turn = self.counter.turn.lock().expect("turn lock");
        if turn.number == self.number {
            turn.ids[self.index] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{new_token, sqlite_with_inline_counts};
    use futures_util::FutureExt;

    async fn counter() -> (tempfile::TempDir, Store, CallCounter) {
        let (dir, store) = sqlite_with_inline_counts().await;
        (dir, store.clone(), CallCounter::new(store))
    }

    /// Calls that reach the count in one turn of the runtime share one commit, and each is
    /// still decided by the count rule (a token with 3 calls left admits 3 of 5).
    #[tokio::test(flavor = "current_thread")]
    async fn calls_of_one_turn_share_one_commit() {
        let (_dir, store, counter) = counter().await;
        let counter = Arc::new(counter);
        let open = store.insert_token(&new_token(None)).await.unwrap();
        let limited = store.insert_token(&new_token(Some(3))).await.unwrap();
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let record = if i % 2 == 0 { &open } else { &limited }.clone();
                let counter = counter.clone();
                tokio::spawn(async move { counter.consume(&record, true).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let exhausted = answers
            .iter()
            .filter(|a| **a == Err(ApiError::CallsExhausted))
            .count();
        assert_eq!(exhausted, 2, "{answers:?}");
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 8);
        assert_eq!(store.get_token(&open.id).await.unwrap().used_calls, 5);
        assert_eq!(store.get_token(&limited.id).await.unwrap().used_calls, 3);
        let stats = store.inline_count_stats().unwrap();
        assert_eq!((stats.inline, stats.commits), (10, 1), "{stats:?}");

        // Alone in the relay, a call counts at once: its first poll answers.
        let alone = counter.consume(&open, false).now_or_never();
        assert_eq!(alone, Some(Ok(())));
        assert_eq!(store.inline_count_stats().unwrap().commits, 2);
    }

    /// A call whose client leaves while its turn gathers is not counted; the others are.
    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_leaves_before_its_turn_is_not_counted() {
        let (_dir, store, counter) = counter().await;
        let token = store.insert_token(&new_token(None)).await.unwrap();
        let mut first = Box::pin(counter.consume(&token, true));
        let mut leaving = Box::pin(counter.consume(&token, true));
        let mut last = Box::pin(counter.consume(&token, true));
        // Each joins the turn and yields.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for call in [&mut first, &mut leaving, &mut last] {
            assert!(call.as_mut().poll(&mut cx).is_pending());
        }
        drop(leaving);
        assert_eq!(first.await, Ok(()));
        assert_eq!(last.await, Ok(()));
        assert_eq!(store.get_token(&token.id).await.unwrap().used_calls, 2);
    }
}
