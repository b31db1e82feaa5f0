//! The spend log: one row per request, appended to SQLite or PostgreSQL by a background writer.
//!
//! A request only ever does a `try_send` into a bounded queue, so a slow or dead database cannot
//! slow or fail it. The writer drains the queue in batches (one transaction each, at most
//! `batch_size` rows or `flush_interval` old), retries a failed batch a few times, and then gives
//! it up. Every row that does not reach the table (queue full, batch failed, log closed) is
//! counted in `switchyard_spend_log_dropped_total{reason}` and written to the log as a warning
//! carrying the whole row, so no record disappears silently and none is lost for good.
//!
//! Must not import `api`, `dispatch` or `gateway`: a row is all it needs.

mod line;
mod store;

pub use line::Line;
pub use store::Store;

pub use crate::config::spend_log::{MAX_BATCH, Settings, Target, check_table, redact_url};
pub use crate::telemetry::SpendCounters as Counters;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// One request's row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpendRecord {
    /// Arrival time, milliseconds since the Unix epoch.
    pub unix_ms: i64,
    pub request_id: String,
    /// The gateway key's last four characters (`…abcd`), when keys are required.
    pub api_key: Option<String>,
    /// The virtual key's name and team, when the caller used one.
    pub key_name: Option<String>,
    pub team: Option<String>,
    /// The caller as the client named it: the request's `user` field, else `metadata.user`.
    pub caller: Option<String>,
    pub task_type: Option<String>,
    pub tier: Option<String>,
    pub model: Option<String>,
    /// `provider/upstream-model` of the deployment that answered.
    pub deployment: Option<String>,
    pub route_layer: Option<String>,
    pub route: Option<String>,
    pub stream: bool,
    /// How a stream ended once its first chunk was sent: `complete`, `cut_off` (the provider ended
    /// it before its final chunk), `failed`, `client_closed`. `None` for non-streaming requests and
    /// for streams that failed before their first chunk.
    pub stream_end: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub counterfactual_usd: f64,
    pub cost_estimated: bool,
    pub latency_ms: f64,
    pub upstream_ms: f64,
    pub attempts: i32,
    pub status: i32,
    /// The API the request came in on: `chat/completions`, `messages` or `embeddings`.
    pub endpoint: Option<String>,
}

/// Attempts per batch before its rows are dropped, and the pause before each retry.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];

/// How long shutdown waits for the queue to be written before giving up on it (and counting it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SpendLog {
    tx: mpsc::Sender<SpendRecord>,
    store: Store,
    settings: Settings,
    counters: Counters,
    stop: std::sync::Arc<Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SpendLog {
    /// Starts the writer. Never fails on an unreachable database: connections are made on first
    /// use, and until the table can be written, rows are dropped, counted and logged.
    pub fn start(settings: Settings, counters: Counters) -> Result<SpendLog, String> {
        let store = Store::connect_lazy(&settings.target, true)?;
        let (tx, rx) = mpsc::channel(settings.queue_size);
        let stop = std::sync::Arc::new(Notify::new());
        let writer = Writer {
            rx,
            store: store.clone(),
            settings: settings.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
            schema_ready: false,
        };
        let task = tokio::spawn(writer.run());
        tracing::info!(target = %settings.target.describe(), table = %settings.table, "spend log on");
        Ok(SpendLog {
            tx,
            store,
            settings,
            counters,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues a row without waiting. A full or closed queue drops it, counted and logged.
    pub fn append(&self, r: SpendRecord) {
        match self.tx.try_send(r) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => self.dropped(&r, "queue_full"),
            Err(mpsc::error::TrySendError::Closed(r)) => self.dropped(&r, "closed"),
        }
    }

    fn dropped(&self, r: &SpendRecord, reason: &'static str) {
        dropped(&self.counters, std::slice::from_ref(r), reason, None);
    }

    /// Writes what is queued and stops the writer; rows appended afterwards are dropped as
    /// `closed`. Waits at most `CLOSE_TIMEOUT`.
    pub async fn close(&self) {
        self.stop.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_TIMEOUT, task).await.is_err() {
                abort.abort();
                tracing::error!(
                    "spend log: the queue could not be written within {}s of shutdown; its rows are lost (see the request log lines)",
                    CLOSE_TIMEOUT.as_secs()
                );
            }
        }
    }
}

/// Counts and logs dropped rows, each as one warning holding the full row so that it can be
/// recovered from the logs.
fn dropped(c: &Counters, rows: &[SpendRecord], reason: &'static str, error: Option<&str>) {
    c.dropped
        .with_label_values(&[reason])
        .inc_by(rows.len() as u64);
    for r in rows {
        let row = serde_json::to_string(r).unwrap_or_default();
        tracing::warn!(request_id = %r.request_id, reason, error, spend_record = %row, "spend log: record dropped");
    }
}

struct Writer {
    rx: mpsc::Receiver<SpendRecord>,
    store: Store,
    settings: Settings,
    counters: Counters,
    stop: std::sync::Arc<Notify>,
    schema_ready: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.settings.batch_size);
        let mut stopping = false;
        loop {
            if !stopping {
                tokio::select! {
                    n = self.rx.recv_many(&mut batch, self.settings.batch_size) => {
                        if n == 0 {
                            break;
                        }
                    }
                    () = self.stop.notified() => stopping = true,
                }
            }
            if stopping {
                // No new rows from now on; what is queued is still written.
                self.rx.close();
                while batch.len() < self.settings.batch_size {
                    match self.rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
            } else {
                let deadline = tokio::time::Instant::now() + self.settings.flush_interval;
                while batch.len() < self.settings.batch_size {
                    let room = self.settings.batch_size - batch.len();
                    tokio::select! {
                        n = self.rx.recv_many(&mut batch, room) => if n == 0 { break },
                        () = tokio::time::sleep_until(deadline) => break,
                        () = self.stop.notified() => { stopping = true; break }
                    }
                }
            }
            self.write(&batch).await;
            batch.clear();
        }
    }

    async fn write(&mut self, rows: &[SpendRecord]) {
        let mut last_error = String::new();
        for attempt in 0..=RETRY_DELAYS.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAYS[attempt - 1]).await;
            }
            match self.try_write(rows).await {
                Ok(()) => {
                    self.counters.written.inc_by(rows.len() as u64);
                    return;
                }
                Err(e) => {
                    self.counters.write_failures.inc();
                    last_error = e.to_string();
                    tracing::warn!(
                        rows = rows.len(),
                        attempt = attempt + 1,
                        error = %last_error,
                        "spend log: writing a batch failed"
                    );
                    // The table may have been dropped or the database replaced: check it again.
                    self.schema_ready = false;
                }
            }
        }
        tracing::error!(
            rows = rows.len(),
            error = %last_error,
            "spend log: batch dropped after {} attempts",
            RETRY_DELAYS.len() + 1
        );
        dropped(&self.counters, rows, "write_failed", Some(&last_error));
    }

    async fn try_write(&mut self, rows: &[SpendRecord]) -> Result<(), sqlx::Error> {
        if !self.schema_ready {
            self.store.ensure_schema(&self.settings.table).await?;
            self.schema_ready = true;
        }
        self.store.insert(&self.settings.table, rows).await
    }
}
