//! Running the gateway: bind, serve, reload the config in place, drain on shutdown. How each
//! connection is served (timeouts, limits, the drain) is in `conn.rs`.
//!
//! Must not import `cli`: commands start the server, not the other way round.

mod conn;

use crate::api::AppState;
use crate::config::ConfigError;
use crate::gateway::Gateway;
use crate::telemetry::{Metrics, Spans};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

/// One HTTP client for every provider, so connections to the same host are pooled and kept alive
/// across requests and config reloads.
/// The providers' HTTP client, for callers that build a gateway to serve.
pub use crate::providers::http::client as http_client;

/// How long start-up waits for the key store before serving with the keys it has (none).
const KEYS_AT_START: Duration = Duration::from_secs(2);

pub struct Server {
    listener: TcpListener,
    /// `server.metrics.listen`, when `/metrics` has an address of its own.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    addr: SocketAddr,
}

impl Server {
    /// Binds the config's `server.listen` address (port 0 picks a free port; see `local_addr`),
    /// and `server.metrics.listen` when it is set.
    pub async fn bind(gateway: Gateway) -> io::Result<Server> {
        let parse = |key: &str, v: &str| -> io::Result<SocketAddr> {
            v.parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{key}: {e}")))
        };
        let listen = parse("server.listen", gateway.config.server.listen.as_str())?;
        let metrics_listen = match &gateway.config.server.metrics.listen {
            Some(m) => Some(parse("server.metrics.listen", m.as_str())?),
            None => None,
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let metrics_listener = match metrics_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let metrics = Metrics::new().map_err(io::Error::other)?;
        let spend_log = match &gateway.spend_log {
            Some(s) => Some(
                crate::cost::spend::SpendLog::start(s.clone(), metrics.spend_counters())
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        let spans = Spans::from_config(&gateway.config.telemetry).map_err(io::Error::other)?;
        let keys = std::sync::Arc::new(
            crate::keys::Keys::open(
                &gateway.keys_db,
                crate::keys::cli::table(&gateway.config),
                gateway.config.keys.database.is_some(),
            )
            .map_err(io::Error::other)?,
        );
        // Read before the first request, so that a gateway with issued keys never answers one
        // as if it had none.
        match tokio::time::timeout(KEYS_AT_START, keys.refresh()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(store = %keys.describe, error = %e, "key store unreadable at start; retrying in the background");
            }
            Err(_) => {
                tracing::warn!(store = %keys.describe, "key store did not answer at start; retrying in the background");
            }
        }
        if let Some(link) = gateway.tables.state.store.link() {
            keys.share_changes(link);
        }
        keys.spawn_refresher(gateway.keys_refresh);
        let state = AppState::with_spans(gateway, metrics, spans);
        if let Some(log) = spend_log {
            state.set_spend_log(log);
        }
        if let Some(log) = state.spend_log() {
            let cached = keys.cached();
            let seeded = crate::cost::budget::seed_from_log(state.ledger(), &cached, log);
            match tokio::time::timeout(KEYS_AT_START, seeded).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(keys = n, "budgets resumed from the spend log")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "budgets could not be resumed from the spend log; they start from zero")
                }
                Err(_) => tracing::warn!(
                    "budgets could not be resumed from the spend log in time; they start from zero"
                ),
            }
            let seeder = std::sync::Arc::new(crate::cost::budget::TeamSeeder::new(
                state.ledger().clone(),
                log,
            ));
            let teams = keys.cached_teams();
            match tokio::time::timeout(KEYS_AT_START, seeder.seed(&teams)).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(teams = n, "team budgets resumed from the spend log")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "team budgets could not be resumed from the spend log; they start from zero")
                }
                Err(_) => tracing::warn!(
                    "team budgets could not be resumed from the spend log in time; they start from zero"
                ),
            }
            // A team given a budget later resumes what its keys spent this period, too.
            keys.on_new_teams(Box::new(move |teams| {
                let seeder = seeder.clone();
                tokio::spawn(async move {
                    if let Err(e) = seeder.seed(&teams).await {
                        tracing::warn!(error = %e, "a new team budget could not be resumed from the spend log; it counts from now");
                    }
                });
            }));
        }
        state.set_keys(keys);
        Ok(Server {
            listener,
            metrics_listener,
            state,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served when `server.metrics.listen` gives it an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then drains (see [`conn::serve`]): in-flight requests and
    /// streams finish, new ones are answered 503, idle and half-sent connections are closed at
    /// once; returns when no request is left or once `server.drain_timeout` has passed, after
    /// writing the spend log's queue and sending any spans still queued for export.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let spans_state = self.state.clone();
        let spend = self.state.clone();
        let result = conn::serve(
            self.listener,
            self.metrics_listener,
            self.state,
            Box::pin(shutdown),
        )
        .await;
        if let Some(log) = spend.spend_log() {
            log.close().await;
        }
        if spans_state.spans().enabled() {
            let _ = tokio::task::spawn_blocking(move || spans_state.spans().flush()).await;
        }
        result
    }
}

/// Loads the file and, if it is valid, makes it the config for new requests. An invalid file is
/// rejected with the message `switchyard check` would print, and the running config stays.
pub async fn reload(
    state: &AppState,
    path: &Path,
    http: &reqwest::Client,
) -> Result<(), ConfigError> {
    let metrics = state.metrics();
    match Gateway::load(path, http).await {
        Ok(gw) => {
            let old = state.gateway();
            if old.config.server.listen != gw.config.server.listen {
                tracing::warn!(
                    "server.listen changed; the new address takes effect only after a restart"
                );
            }
            if old.config.server.metrics.listen != gw.config.server.metrics.listen {
                tracing::warn!(
                    "server.metrics.listen changed; the new address takes effect only after a restart"
                );
            }
            if old.config.server.cors != gw.config.server.cors {
                tracing::warn!(
                    "server.cors changed; CORS settings take effect only after a restart"
                );
            }
            if old.keys_db != gw.keys_db {
                tracing::warn!(
                    "the key store's database changed; it takes effect only after a restart"
                );
            }
            if old.spend_log != gw.spend_log {
                tracing::warn!(
                    "spend_log changed; the new settings take effect only after a restart"
                );
            }
            if !old.config.telemetry.same_export(&gw.config.telemetry) {
                tracing::warn!(
                    "telemetry changed; span export settings take effect only after a restart"
                );
            }
            state.swap_gateway(gw);
            metrics.config_reloads.with_label_values(&["success"]).inc();
            tracing::info!(config = %path.display(), "config reloaded");
            Ok(())
        }
        Err(e) => {
            metrics.config_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(config = %path.display(), "config reload rejected, the previous config keeps serving: {e}");
            Err(e)
        }
    }
}

/// Reloads on SIGHUP, and on changes to the file when `watch` is set.
pub fn spawn_reloader(state: AppState, path: PathBuf, http: reqwest::Client, watch: bool) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
    #[cfg(unix)]
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; reload on signal is off");
                return;
            };
            while hup.recv().await.is_some() {
                if tx.send("SIGHUP").await.is_err() {
                    break;
                }
            }
        });
    }
    let watcher = if watch { watch_file(&path, tx) } else { None };
    tokio::spawn(async move {
        let _watcher = watcher;
        while let Some(why) = rx.recv().await {
            // Editors write a file in several steps; let them finish and coalesce the events.
            if why == "change" {
                tokio::time::sleep(Duration::from_millis(150)).await;
                while rx.try_recv().is_ok() {}
            }
            tracing::info!(trigger = why, "reloading config");
            let _ = reload(&state, &path, &http).await;
        }
    });
}

fn watch_file(
    path: &Path,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let file = std::fs::canonicalize(path).ok()?;
    let dir = file.parent()?.to_path_buf();
    let target = file.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let ours = ev
                .paths
                .iter()
                .any(|p| p == &target || p.file_name() == target.file_name());
            if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
                let _ = tx.try_send("change");
            }
        }
    })
    .map_err(|e| tracing::warn!("cannot watch the config file: {e}"))
    .ok()?;
    // The directory, not the file: editors replace the file by renaming a new one over it.
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| tracing::warn!("cannot watch {}: {e}", dir.display()))
        .ok()?;
    tracing::info!(config = %file.display(), "watching the config file for changes");
    Some(watcher)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
