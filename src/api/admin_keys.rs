//! `/admin/keys`: the `switchyard keys` operations over HTTP, for an admin key only. `POST`
//! issues a key (its secret is in that answer and nowhere else), `GET` lists or shows, `PATCH`
//! changes settings, `DELETE` revokes. A malformed body is a 400 whose `param` names the field.

use super::AppState;
use super::error::ApiError;
use crate::keys::{Change, Keys, OpError, VirtualKey};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// Runs one operation on the key store and answers with what it returns or why it failed; a
/// gateway without a key store says so before anything else is read.
pub(super) async fn with_keys(
    state: &AppState,
    op: impl AsyncFnOnce(&Keys) -> Result<Response, Box<Response>>,
) -> Response {
    let Some(keys) = state.keys() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "this gateway has no key store",
        )
        .with_code("key_store_unavailable")
        .into_response();
    };
    op(keys).await.unwrap_or_else(|r| *r)
}

/// The key an operation left, as `show` prints it.
fn shown(r: Result<VirtualKey, OpError>) -> Result<Response, Box<Response>> {
    Ok(Json(r.map_err(failed)?.to_json()).into_response())
}

pub(super) fn failed(e: OpError) -> Box<Response> {
    Box::new(match e {
        OpError::Invalid(i) => ApiError::invalid_request(i.message, Some(i.field))
            .with_code("invalid_key_setting")
            .into_response(),
        OpError::NotFound(n) => ApiError::not_found(format!("There is no key named {n:?}."))
            .with_code("key_not_found")
            .into_response(),
        OpError::NoTeam(n) => ApiError::not_found(format!("There is no team named {n:?}."))
            .with_code("team_not_found")
            .into_response(),
        OpError::Duplicate(n) => {
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                format!("A key named {n:?} already exists."),
            )
            .with_code("key_exists");
            e.body.error.param = Some("name".into());
            e.into_response()
        }
        OpError::Store(m) => {
            tracing::error!(error = %m, "key store operation failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "the key store could not be used; see the gateway's log",
            )
            .with_code("key_store_unavailable")
            .into_response()
        }
    })
}

/// The body as a change, against the running config's tiers and models.
fn change(state: &AppState, body: &Bytes) -> Result<Change, Box<Response>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| {
            ApiError::invalid_request(format!("the body is not JSON: {e}"), Some("body".into()))
                .with_code("invalid_json")
                .into_response()
        })
        .map_err(Box::new)?;
    let gw = state.gateway();
    Change::parse(
        &v,
        &crate::keys::cli::known(&gw.config),
        crate::keys::now_ms(),
    )
    .map_err(|i| failed(OpError::Invalid(i)))
}

pub async fn list(State(state): State<AppState>) -> Response {
    with_keys(&state, async |keys| {
        let all = keys.list().await.map_err(failed)?;
        let data: Vec<Value> = all.iter().map(|k| k.to_json()).collect();
        Ok(Json(json!({"object": "list", "data": data})).into_response())
    })
    .await
}

pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    with_keys(&state, async |keys| shown(keys.show(&name).await)).await
}

pub async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    with_keys(&state, async |keys| {
        let c = change(&state, &body)?;
        let (k, secret) = keys.create(&c).await.map_err(failed)?;
        let mut v = k.to_json();
        v["key"] = json!(secret);
        Ok((StatusCode::CREATED, Json(v)).into_response())
    })
    .await
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    with_keys(&state, async |keys| {
        let c = change(&state, &body)?;
        shown(keys.update(&name, &c).await)
    })
    .await
}

pub async fn revoke(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    with_keys(&state, async |keys| shown(keys.revoke(&name).await)).await
}
