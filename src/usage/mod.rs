//! Usage accounting: what each forwarded call used, read from the provider's own report
//! ([`extract`]), and written to the store in batches off the request path.
//!
//! The queue between the two is bounded: a burst cannot grow memory without limit. When it
//! is full a record is dropped and counted (`usage_records_dropped`, in the metrics and the
//! log); call counts and limits are unaffected, since they do not go through this queue.

pub mod decode;
pub mod extract;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::store::{Store, UsageRecord};

/// Records a full batch; writes happen at least this often.
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
    dropped: AtomicU64,
    stop: Arc<Notify>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl UsageSink {
    /// Starts the writer task.
    pub fn start(store: Store, capacity: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity);
        let stop = Arc::new(Notify::new());
        let writer = tokio::spawn(write_loop(store, rx, stop.clone()));
        Arc::new(Self {
            tx,
            dropped: AtomicU64::new(0),
            stop,
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
        self.stop.notify_one();
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<UsageRecord>, stop: Arc<Notify>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        tokio::select! {
            biased;
            _ = stop.notified() => break,
            received = rx.recv_many(&mut batch, BATCH_MAX) => {
                if received == 0 {
                    break;
                }
            }
        }
        // Let a batch fill for a moment under load, bounded by the flush interval.
        if batch.len() < BATCH_MAX {
            let deadline = tokio::time::sleep(FLUSH_INTERVAL);
            tokio::pin!(deadline);
            while batch.len() < BATCH_MAX {
                let room = BATCH_MAX - batch.len();
                tokio::select! {
                    _ = &mut deadline => break,
                    received = rx.recv_many(&mut batch, room) => {
                        if received == 0 { break; }
                    }
                }
            }
        }
        write(&store, &mut batch).await;
    }
    // Stopping: drain what is queued.
    while let Ok(record) = rx.try_recv() {
        batch.push(record);
        if batch.len() >= BATCH_MAX {
            write(&store, &mut batch).await;
        }
    }
    write(&store, &mut batch).await;
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
