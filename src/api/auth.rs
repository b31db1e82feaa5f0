//! Gateway keys: when the config lists `server.api_keys`, every API route needs one of them, sent
//! the way OpenAI SDKs send keys (`Authorization: Bearer …`) or as `x-api-key`.

use super::AppState;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let gw = state.gateway();
    if !gw.auth_required() {
        return next.run(req).await;
    }
    let headers = req.headers();
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme name is case-insensitive (RFC 9110 §11.1).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    match presented {
        Some(key) if gw.key_is_valid(key) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided. Use one of the keys listed in the gateway's server.api_keys.",
        )
        .with_code("invalid_api_key")
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
        )
        .with_code("missing_api_key")
        .into_response(),
    }
}
