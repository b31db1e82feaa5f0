//! `GET /admin/spend?since=7d`: the `switchyard report` numbers as JSON, from the running gateway's
//! spend log. Rows still queued for the writer (at most `flush_interval` old) are not in it yet.

use super::AppState;
use super::error::ApiError;
use crate::cost::report::{Report, Since};
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use std::collections::HashMap;

pub async fn report(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(log) = state.spend_log() else {
        return ApiError::not_found(
            "This gateway keeps no spend log: add a `spend_log:` section to its config.",
        )
        .with_code("spend_log_disabled")
        .into_response();
    };
    if let Some(k) = q.keys().find(|k| *k != "since") {
        return ApiError::invalid_request(
            format!("unknown query parameter `{k}`; /admin/spend takes `since`"),
            Some(k.clone()),
        )
        .into_response();
    }
    let since = match Since::parse(q.get("since").map_or("7d", String::as_str)) {
        Ok(s) => s,
        Err(m) => {
            return ApiError::invalid_request(m, Some("since".into()))
                .with_code("invalid_since")
                .into_response();
        }
    };
    match Report::of_log(log, &since).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "spend report failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "the spend log database could not be read; see the gateway's log",
            )
            .with_code("spend_log_unavailable")
            .into_response()
        }
    }
}
