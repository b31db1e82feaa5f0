//! The one connection to Redis that every shared-state call goes through: a reconnecting
//! connection manager, a short timeout per call, and the up/down flag that sends calls to local
//! state while Redis cannot be reached. A watcher pings every [`WATCH_EVERY`], so an outage is
//! noticed without traffic and the return of Redis is noticed without a request paying for it.
//!
//! Knows nothing about breakers or budgets; must not import anything above `state`.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

pub const WATCH_EVERY: Duration = Duration::from_millis(250);

pub struct Link {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Set while Redis is unreachable: calls go to local state without waiting on it.
    down: AtomicBool,
    errors: AtomicU64,
    /// `on_state_error: deny`: budgets refuse while down instead of counting locally.
    pub deny_budgets: bool,
    /// Where Redis is, for log lines (never a password).
    describe: String,
}

/// What the watcher and the calls saw, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub errors: u64,
}

fn describe(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().unwrap_or(6379)
        ),
        Err(_) => "redis".into(),
    }
}

impl Link {
    /// Connects lazily (Redis may be down when the gateway starts) and starts the watcher, which
    /// ends when the link is dropped.
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        deny_budgets: bool,
    ) -> Result<Arc<Link>, String> {
        // Without TCP_NODELAY a small command written right after another waits for the
        // server's delayed ACK (about 40 ms on Linux): the hot path writes many small ones.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| e.to_string())?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client, cfg).map_err(|e| e.to_string())?;
        let link = Arc::new(Link {
            conn,
            prefix: prefix.to_string(),
            timeout,
            // Unknown until the first ping answers; calls try Redis meanwhile.
            down: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            deny_budgets,
            describe: describe(url),
        });
        tokio::spawn(watch(Arc::downgrade(&link)));
        Ok(link)
    }

    /// `prefix:part:part…`
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn status(&self) -> LinkStatus {
        LinkStatus {
            up: !self.down.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Runs one call under the timeout. `None` when Redis is down, failed or was too slow: the
    /// caller goes on with local state.
    pub async fn run<T, F>(&self, call: F) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if self.down.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    /// Like [`Link::run`] for a write nobody waits on: it runs in the background.
    pub fn spawn<F>(self: &Arc<Self>, call: F)
    where
        F: Future<Output = redis::RedisResult<()>> + Send + 'static,
    {
        let link = self.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            link.run(call).await;
        });
    }

    fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(redis = %self.describe, error, "shared state unreachable; serving on local state until it is back");
        }
    }

    fn recovered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(redis = %self.describe, "shared state reachable again");
        }
    }
}

async fn watch(link: Weak<Link>) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(l) = link.upgrade() else { return };
        let mut conn = l.conn();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(l.timeout.max(Duration::from_millis(200)), ping).await {
            Ok(Ok(_)) => l.recovered(),
            Ok(Err(e)) => l.failed(&e.to_string()),
            Err(_) => l.failed("ping unanswered"),
        }
    }
}
