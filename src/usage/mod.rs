//! Usage accounting: what each forwarded call used, read from the provider's own report
//! ([`extract`]), and written to the store in batches off the request path.
//!
//! The queue between the two is bounded: a burst cannot grow memory without limit. When it
//! is full a record is dropped and counted (`usage_records_dropped`, in the metrics and the
//! log); call counts and limits are unaffected, since they do not go through this queue.

pub mod decode;
pub mod extract;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::store::{Store, UsageRecord};

/// Records in one write at most; while records come in, the queue is written this often.
pub const BATCH_MAX: usize = 512;
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
pub const QUEUE_CAPACITY: usize = 65_536;

/// Output tokens assumed for a call that set no limit of its own and whose token has no
/// output cap, when it must be estimated.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;
/// Request bytes per prompt token assumed by the estimate (English text runs at about 4;
/// JSON markup makes a body longer than its prompt, so this errs high).
pub const BYTES_PER_PROMPT_TOKEN: u64 = 4;

/// What a call is charged when it ends without the provider's report (cut short, or never
/// reported): its reservation. The prompt is estimated from the request's size, and the
/// output is the most it could have been: the cap the relay applied, else the request's
/// own limit, else [`DEFAULT_OUTPUT_ESTIMATE`]. Embeddings produce no output.
pub fn estimate(
    operation: crate::providers::Operation,
    request_bytes: u64,
    max_output: Option<u64>,
) -> i64 {
    let prompt = request_bytes.div_ceil(BYTES_PER_PROMPT_TOKEN);
    let output = match operation {
        crate::providers::Operation::Embeddings => 0,
        _ => max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
    };
    i64::try_from(prompt.saturating_add(output)).unwrap_or(i64::MAX)
}

pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    signals: Arc<Signals>,
    dropped: AtomicU64,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl UsageSink {
    /// Starts the writer task.
    pub fn start(store: Store, capacity: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity);
        let signals = Arc::new(Signals {
            idle: AtomicBool::new(false),
            wake: Notify::new(),
            stop: Notify::new(),
        });
        let writer = tokio::spawn(write_loop(store, rx, signals.clone()));
        Arc::new(Self {
            tx,
            signals,
            dropped: AtomicU64::new(0),
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// Queues a record without waiting; a full queue drops it (counted).
    pub fn record(&self, record: UsageRecord) {
        if self.tx.try_send(record).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "usage queue full: records dropped");
            }
            return;
        }
        if self.signals.idle.swap(false, Ordering::SeqCst) {
            self.signals.wake.notify_one();
        }
    }

    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued, then stops the writer.
    pub async fn flush_and_stop(&self) {
        self.signals.stop.notify_one();
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

/// What the sink and its writer signal each other.
struct Signals {
    /// Set by the writer while it waits for a first record; the call that finds it set
    /// wakes the writer. Every other record costs no wake-up: the writer drains the queue
    /// on its own timer.
    idle: AtomicBool,
    wake: Notify,
    stop: Notify,
}

/// Writes what is queued every [`FLUSH_INTERVAL`] while records come in, in batches of up
/// to [`BATCH_MAX`]; sleeps while none do. The queue is only ever drained with `try_recv`,
/// which leaves no waker behind: a record queued under load wakes nobody.
async fn write_loop(store: Store, mut rx: mpsc::Receiver<UsageRecord>, signals: Arc<Signals>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    'serve: loop {
        // Idle first, then look: a record queued in between finds the flag set and wakes us.
        signals.idle.store(true, Ordering::SeqCst);
        if rx.is_empty() {
            tokio::select! {
                biased;
                _ = signals.stop.notified() => break 'serve,
                _ = signals.wake.notified() => {}
            }
        }
        signals.idle.store(false, Ordering::SeqCst);
        // Let records gather for a moment: one write carries all of them.
        tokio::select! {
            biased;
            _ = signals.stop.notified() => break 'serve,
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        while drain(&mut rx, &mut batch) {
            write(&store, &mut batch).await;
        }
    }
    // Stopping: write what is queued.
    while drain(&mut rx, &mut batch) {
        write(&store, &mut batch).await;
    }
}

/// Moves up to [`BATCH_MAX`] queued records into `batch`; whether it holds any.
fn drain(rx: &mut mpsc::Receiver<UsageRecord>, batch: &mut Vec<UsageRecord>) -> bool {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(record) => batch.push(record),
            Err(_) => break,
        }
    }
    !batch.is_empty()
}

/// Writes a batch, retrying a few times; a batch that still fails is logged and dropped
/// (counts and limits do not depend on it).
async fn write(store: &Store, batch: &mut Vec<UsageRecord>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 1..=5u32 {
        match store.insert_usage(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "usage write failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(records = batch.len(), "usage records lost after retries");
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Migrations, UsageFilter, UsageGroup};
    use std::time::Instant;

    fn record(token_id: &str) -> UsageRecord {
        UsageRecord {
            token_id: token_id.to_string(),
            at: chrono::Utc::now(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: None,
            status: 200,
            latency_ms: 1,
            ttfb_ms: 1,
            bytes_in: 1,
            bytes_out: 1,
            prompt_tokens: None,
            completion_tokens: None,
            total_tokens: None,
            stream: false,
            aborted: false,
            estimated: false,
            charged: false,
        }
    }

    async fn written(store: &Store) -> i64 {
        let rows = store
            .usage_report(&UsageFilter::default(), UsageGroup::Token)
            .await
            .unwrap();
        rows.iter().map(|r| r.calls).sum()
    }

    /// Waits (bounded) until the store holds `n` records; the time it took.
    async fn until_written(store: &Store, n: i64) -> Duration {
        let began = Instant::now();
        while written(store).await < n {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "{} of {n} records written",
                written(store).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        began.elapsed()
    }

    /// The writer sleeps while nothing is queued; the first record after a pause wakes it,
    /// and records queued while it gathers or writes are written without the stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_are_written_while_serving_without_a_wake_up_each() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, Migrations::Apply).await.unwrap();
        let sink = UsageSink::start(store.clone(), 4096);
        for round in 1..=3i64 {
            // Idle for longer than a flush, then one record.
            tokio::time::sleep(FLUSH_INTERVAL * 2).await;
            sink.record(record("a"));
            let took = until_written(&store, round).await;
            assert!(took < FLUSH_INTERVAL * 4, "round {round}: {took:?}");
        }
        // A burst from many tasks at once: more than one batch, all written while serving.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for _ in 0..200 {
                        sink.record(record("b"));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        until_written(&store, 3 + 1600).await;
        assert_eq!(sink.dropped(), 0);
        sink.flush_and_stop().await;
        assert_eq!(written(&store).await, 1603);
    }
}
