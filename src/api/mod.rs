//! The HTTP surface: OpenAI-compatible routes (with and without the `/v1` prefix), health, metrics.

mod account;
mod admin;
mod auth;
mod chat;
mod error;
pub mod headers;
mod health;
mod models;
mod record;
mod request;
mod request_id;
mod spend;
mod stream;
mod trace;

pub use error::ApiError;
pub use request_id::RequestId;

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
    metrics: Metrics,
    draining: AtomicBool,
    fallback_alert: crate::telemetry::FallbackAlert,
    /// Opened once at start: unlike the gateway, it survives reloads (a change needs a restart).
    spend_log: std::sync::OnceLock<crate::cost::spend::SpendLog>,
    spans: Spans,
}

impl AppState {
    pub fn new(gateway: Gateway, metrics: Metrics) -> Self {
        Self::with_spans(gateway, metrics, Spans::disabled())
    }

    /// Like `new`, exporting a span per chat request through `spans`.
    pub fn with_spans(gateway: Gateway, metrics: Metrics, spans: Spans) -> Self {
        AppState {
            inner: Arc::new(Shared {
                gateway: ArcSwap::from_pointee(gateway),
                metrics,
                draining: AtomicBool::new(false),
                fallback_alert: Default::default(),
                spend_log: std::sync::OnceLock::new(),
                spans,
            }),
        }
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.inner.gateway.load_full()
    }

    pub fn swap_gateway(&self, mut gateway: Gateway) {
        gateway.inherit(&self.inner.gateway.load());
        self.inner.gateway.store(Arc::new(gateway));
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Counts one dispatched request toward `alerts.fallback_rate`, when the config sets it.
    pub fn fallback_alert(&self, gw: &Gateway, fell_back: bool) {
        if let Some(cfg) = &gw.config.alerts.fallback_rate {
            self.inner.fallback_alert.record(cfg, fell_back);
        }
    }

    /// Set once, when the server starts; a second call is ignored.
    pub fn set_spend_log(&self, log: crate::cost::spend::SpendLog) {
        let _ = self.inner.spend_log.set(log);
    }

    pub fn spend_log(&self) -> Option<&crate::cost::spend::SpendLog> {
        self.inner.spend_log.get()
    }

    pub fn spans(&self) -> &Spans {
        &self.inner.spans
    }

    /// Readiness turns false once shutdown begins, so a load balancer stops sending new traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(chat::completions))
        .route("/models", get(models::list))
        .route("/models/{*id}", get(models::get))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ));
    let admin = Router::new()
        .route("/admin/deployments", get(admin::deployments))
        .route("/admin/spend", get(spend::report))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ));
    Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .merge(admin)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
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
        "Unknown route {}. switchyard serves POST /v1/chat/completions, GET /v1/models, /admin/spend, /health/live, /health/ready and /metrics.",
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
