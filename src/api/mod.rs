//! The HTTP surface: OpenAI-compatible routes (chat completions, embeddings, models) and Anthropic's Messages API (with and without the
//! `/v1` prefix), health, metrics.
//!
//! It translates and sequences: routing decides, dispatch calls, `cost::account` prices and
//! records. Nothing below imports `api`.
//!
//! Must not import `server` or `cli`, nor price anything itself: it calls the account.

mod admin;
mod admin_keys;
mod admin_teams;
mod auth;
mod chat;
mod cors;
mod embeddings;
mod error;
pub mod headers;
mod health;
mod messages;
mod models;
mod pipeline;
mod request;
mod request_id;
mod spend;
mod sse;

pub use error::ApiError;
pub use request_id::RequestId;

use crate::cost::account::Sinks;
use crate::gateway::Gateway;
use crate::telemetry::{Metrics, Spans};
use arc_swap::ArcSwap;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every handler shares. The gateway sits behind an `ArcSwap` so a reload replaces it for new
/// requests while in-flight ones keep the `Arc` they started with.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    gateway: ArcSwap<Gateway>,
    /// Where requests' accounts go; unlike the gateway, they survive reloads.
    sinks: Arc<Sinks>,
    draining: AtomicBool,
    /// Woken when shutdown begins, so requests still reading their body can stop waiting.
    drain_started: tokio::sync::Notify,
    /// Virtual keys, opened once at start (like the spend log, they outlive reloads).
    keys: std::sync::OnceLock<Arc<crate::keys::Keys>>,
    /// Per-key counters and budget reservations.
    ledger: Arc<crate::state::ledger::Ledger>,
}

impl AppState {
    pub fn new(gateway: Gateway, metrics: Metrics) -> Self {
        Self::with_spans(gateway, metrics, Spans::disabled())
    }

    /// Like `new`, exporting a span per chat request through `spans`.
    pub fn with_spans(gateway: Gateway, metrics: Metrics, spans: Spans) -> Self {
        // The ledger reaches Redis through the gateway's state store when it is shared; like the
        // store, it is kept across reloads.
        let ledger = match gateway.tables.state.store.link() {
            Some(link) => crate::state::ledger::Ledger::shared(link),
            None => crate::state::ledger::Ledger::default(),
        };
        AppState {
            inner: Arc::new(Shared {
                gateway: ArcSwap::from_pointee(gateway),
                sinks: Arc::new(Sinks::new(metrics, spans)),
                draining: AtomicBool::new(false),
                drain_started: tokio::sync::Notify::new(),
                keys: std::sync::OnceLock::new(),
                ledger: Arc::new(ledger),
            }),
        }
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.inner.gateway.load_full()
    }

    /// The current gateway without taking a reference count, for a quick look at a setting.
    pub fn gateway_ref(&self) -> arc_swap::Guard<Arc<Gateway>> {
        self.inner.gateway.load()
    }

    pub fn swap_gateway(&self, mut gateway: Gateway) {
        gateway.inherit(&self.inner.gateway.load());
        self.inner.gateway.store(Arc::new(gateway));
    }

    pub fn metrics(&self) -> &Metrics {
        self.inner.sinks.metrics()
    }

    /// What the accounting stage writes to, for a request's account.
    pub fn sinks(&self) -> Arc<Sinks> {
        self.inner.sinks.clone()
    }

    /// Set once, when the server starts; a second call is ignored.
    pub fn set_spend_log(&self, log: crate::cost::spend::SpendLog) {
        self.inner.sinks.set_spend_log(log);
    }

    pub fn spend_log(&self) -> Option<&crate::cost::spend::SpendLog> {
        self.inner.sinks.spend_log()
    }

    /// Set once, when the server starts; a second call is ignored.
    pub fn set_keys(&self, keys: Arc<crate::keys::Keys>) {
        let _ = self.inner.keys.set(keys);
    }

    pub fn keys(&self) -> Option<&Arc<crate::keys::Keys>> {
        self.inner.keys.get()
    }

    pub fn ledger(&self) -> &Arc<crate::state::ledger::Ledger> {
        &self.inner.ledger
    }

    /// Requests need a key: static keys are configured, or a virtual key was ever issued.
    pub fn auth_required(&self) -> bool {
        self.gateway_ref().auth_required() || self.keys().is_some_and(|k| k.any())
    }

    pub fn spans(&self) -> &Spans {
        self.inner.sinks.spans()
    }

    /// Readiness turns false once shutdown begins, so a load balancer stops sending new traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.inner.drain_started.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown has begun (at once if it has).
    pub async fn drain_started(&self) {
        let notified = self.inner.drain_started.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_draining() {
            return;
        }
        notified.await;
    }
}

/// Why the server turned a request away before any handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Shutdown began; another replica should take it.
    Draining,
    /// The connection is over `server.max_connections`.
    ConnectionLimit,
    /// `server.max_in_flight_requests` are being served.
    InFlightLimit,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Draining => "draining",
            Shed::ConnectionLimit => "connection_limit",
            Shed::InFlightLimit => "in_flight_limit",
        }
    }
}

/// The answer to a shed request: a 503 in OpenAI's shape that the SDKs retry (after
/// `Retry-After`), and `connection: close`, so the retry opens a new connection (which a load
/// balancer can send elsewhere).
pub fn shed_response(reason: Shed, request: &http::HeaderMap) -> axum::response::Response {
    let (code, message) = match reason {
        Shed::Draining => (
            "gateway_draining",
            "This gateway is shutting down and takes no new requests; retry (another replica will answer).".to_string(),
        ),
        Shed::ConnectionLimit => (
            "gateway_overloaded",
            "This gateway has too many open connections (server.max_connections); retry shortly.".to_string(),
        ),
        Shed::InFlightLimit => (
            "gateway_overloaded",
            "This gateway is serving as many requests as it is allowed to (server.max_in_flight_requests); retry shortly.".to_string(),
        ),
    };
    let mut e =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message).with_code(code);
    e.retry_after = Some(std::time::Duration::from_secs(1));
    let mut resp = e.into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&request_id::assign(request)) {
        h.insert(headers::REQUEST_ID, v);
    }
    resp
}

/// Every route of the API address. `/metrics` is among them unless `server.metrics.listen` moves
/// it to its own address; CORS is answered when `server.cors` is set (both read at start-up).
pub fn router(state: AppState) -> Router {
    let gw = state.gateway();
    let api = Router::new()
        .route("/chat/completions", post(chat::completions))
        .route("/embeddings", post(embeddings::create))
        .route("/models", get(models::list))
        .route("/models/{*id}", get(models::get))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ));
    // Anthropic's wire format: its refusals, the key check's included, in Anthropic's shape.
    let messages = Router::new()
        .route("/messages", post(messages::create))
        .route("/messages/count_tokens", post(messages::count_tokens))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ))
        .route_layer(axum::middleware::from_fn(messages::error::layer));
    let api = api.merge(messages);
    let admin = Router::new()
        .route("/admin/deployments", get(admin::deployments))
        .route("/admin/spend", get(spend::report))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::admin_layer,
        ));
    let keys = Router::new()
        .route(
            "/admin/keys",
            get(admin_keys::list).post(admin_keys::create),
        )
        .route(
            "/admin/keys/{name}",
            get(admin_keys::show)
                .patch(admin_keys::update)
                .delete(admin_keys::revoke),
        )
        .route("/admin/teams", get(admin_teams::list))
        .route(
            "/admin/teams/{name}",
            get(admin_teams::show)
                .put(admin_teams::set)
                .delete(admin_teams::remove),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::admin_only_layer,
        ));
    let mut app = Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .merge(admin)
        .merge(keys)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready));
    if gw.config.server.metrics.listen.is_none() {
        app = app.merge(metrics_routes(&state));
    }
    let app = finish(app, state);
    match &gw.config.server.cors {
        Some(c) => app.layer(cors::layer(c)),
        None => app,
    }
}

/// The routes of `server.metrics.listen`, when it is set: `/metrics` and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    let app = metrics_routes(&state);
    finish(app, state)
}

fn metrics_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::metrics_layer,
        ))
}

fn finish(app: Router<AppState>, state: AppState) -> Router {
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_id::layer))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal error in the gateway",
            )
            .into_response()
        }))
        .with_state(state)
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "Unknown route {}. switchyard serves POST /v1/chat/completions, POST /v1/embeddings, POST /v1/messages, GET /v1/models, /admin/spend, /health/live, /health/ready and /metrics.",
        uri.path()
    ))
    .with_code("unknown_url")
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .with_code("method_not_allowed")
}
