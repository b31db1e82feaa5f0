use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// The process is up.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The process accepts new traffic: a config is loaded and shutdown has not begun. With shared
/// state unreachable it still does (requests are served on local state), and says `degraded`.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    let gw = state.gateway();
    let (status, shared) = match gw.tables.state.store.backing() {
        crate::state::Backing::Local => ("ready", json!("memory")),
        crate::state::Backing::Shared(s) => (
            if s.up { "ready" } else { "degraded" },
            json!({"backend": "redis", "reachable": s.up}),
        ),
    };
    Json(json!({"status": status, "tiers": gw.tables.tiers.len(), "models": gw.tables.models.len(), "state": shared}))
        .into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    super::admin::refresh_gauges(&state).await;
    super::admin::refresh_key_gauges(&state);
    let mut resp = state.metrics().render().into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
