//! The spend log: one row per request, appended to SQLite or PostgreSQL by a background writer.
//!
//! A request only ever does a `try_send` into a bounded queue, so a slow or dead database cannot
//! slow or fail it. The writer drains the queue in batches (one transaction each, at most
//! `batch_size` rows or `flush_interval` old), retries a failed batch a few times, and then gives
//! it up. Every row that does not reach the table (queue full, batch failed, log closed) is
//! counted in `switchyard_spend_log_dropped_total{reason}` and written to the log as a warning
//! carrying the whole row, so no record disappears silently and none is lost for good.

mod store;

pub use store::{Store, Totals};

use crate::config::SpendLogConfig;
use prometheus::{IntCounter, IntCounterVec};
use serde::Serialize;
use std::path::{Path, PathBuf};
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
}

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// `sqlite://rel.db`, `sqlite:///abs.db`, `sqlite:rel.db` or `postgres(ql)://…`; relative SQLite
    /// paths resolve against `base_dir` (the config file's folder, or the working directory for
    /// `report --database`).
    pub fn parse(url: &str, base_dir: &Path) -> Result<Target, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Parsed now so that a malformed URL is a config error, not a failure at start.
            return url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .map(|_| Target::Postgres(url.to_string()))
                .map_err(|e| format!("{}: {e}", redact_url(url)));
        }
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(format!(
                "{:?} is not a spend log URL: write sqlite://spend.db or postgres://user@host/db",
                redact_url(url)
            ));
        };
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path.contains('?') || path == ":memory:" {
            return Err(format!(
                "{url:?}: give a database file path (query parameters and :memory: are not supported)"
            ));
        }
        let path = Path::new(path);
        Ok(Target::Sqlite(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }))
    }

    /// For log lines and errors: never the password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("sqlite {}", p.display()),
            Target::Postgres(u) => format!("postgres {}", redact_url(u)),
        }
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `spend_log:` after validation, with the target resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub target: Target,
    pub table: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_size: usize,
}

/// The most rows one INSERT carries: 22 columns each stays far below both databases' limits on
/// bound parameters (SQLite 32766, PostgreSQL 65535).
pub const MAX_BATCH: usize = 1000;

impl Settings {
    pub fn from_config(c: &SpendLogConfig, base_dir: &Path) -> Result<Settings, String> {
        Ok(Settings {
            target: Target::parse(c.url.value.as_str(), base_dir)?,
            table: c.table.value.clone(),
            batch_size: c.batch_size,
            flush_interval: c.flush_interval.0,
            queue_size: c.queue_size,
        })
    }
}

/// Checks what serde cannot; returns the offending key (under `spend_log.`) and a message.
pub fn check_config(c: &SpendLogConfig) -> Result<(), (&'static str, String)> {
    Target::parse(c.url.value.as_str(), Path::new(".")).map_err(|m| ("url", m))?;
    check_table(&c.table.value).map_err(|m| ("table", m))?;
    if !(1..=MAX_BATCH).contains(&c.batch_size) {
        return Err(("batch_size", format!("must be within 1–{MAX_BATCH}")));
    }
    if c.queue_size == 0 {
        return Err(("queue_size", "must be at least 1".into()));
    }
    if c.flush_interval.0.is_zero() {
        return Err(("flush_interval", "must be greater than 0".into()));
    }
    Ok(())
}

/// Table names are spliced into SQL, so only plain identifiers are accepted.
pub fn check_table(t: &str) -> Result<(), String> {
    let mut chars = t.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 50;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a plain SQL identifier (letters, digits, _; at most 50 characters)"
        ))
    }
}

/// The spend log's counters, shared with the metrics registry.
#[derive(Clone)]
pub struct Counters {
    pub written: IntCounter,
    pub dropped: IntCounterVec,
    pub write_failures: IntCounter,
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

    /// The report over this log. The table is created first if the writer has not yet, so a
    /// gateway that has served nothing reports zeros rather than an error.
    pub async fn report(
        &self,
        since: &crate::cost::report::Since,
    ) -> Result<crate::cost::report::Report, sqlx::Error> {
        self.store.ensure_schema(&self.settings.table).await?;
        crate::cost::report::Report::load(&self.store, &self.settings.table, since).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let base = Path::new("/etc/sy");
        assert_eq!(
            Target::parse("sqlite://spend.db", base).unwrap(),
            Target::Sqlite("/etc/sy/spend.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/spend.db", base).unwrap(),
            Target::Sqlite("/var/lib/spend.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:data/s.db", base).unwrap(),
            Target::Sqlite("/etc/sy/data/s.db".into())
        );
        assert!(matches!(
            Target::parse("postgresql://u:pw@h/db", base).unwrap(),
            Target::Postgres(_)
        ));
        for bad in [
            "postgres://h:notaport/db",
            "mysql://x",
            "sqlite://",
            "sqlite::memory:",
            "spend.db",
            "sqlite://a.db?mode=ro",
        ] {
            assert!(Target::parse(bad, base).is_err(), "{bad}");
        }
        assert_eq!(
            Target::Postgres("postgres://u:secret@h:5432/db".into()).describe(),
            "postgres postgres://u:***@h:5432/db"
        );
    }

    #[test]
    fn table_names() {
        assert!(check_table("switchyard_spend").is_ok());
        assert!(check_table("_t2").is_ok());
        for bad in ["", "2t", "a-b", "a;drop table x", "s.t", &"x".repeat(51)] {
            assert!(check_table(bad).is_err(), "{bad}");
        }
    }
}
