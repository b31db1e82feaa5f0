//! `/admin/keys`: the `switchyard keys` operations over HTTP, for an admin key only. `POST`
//! issues a key (its secret is in that answer and nowhere else), `GET` lists or shows, `PATCH`
//! changes settings, `DELETE` revokes. A malformed body is a 400 whose `param` names the field.

use super::AppState;
use super::error::ApiError;
use crate::keys::{Change, Keys, OpError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

fn store(state: &AppState) -> Result<&Arc<Keys>, Box<Response>> {
    state.keys().ok_or_else(|| {
        Box::new(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "this gateway has no key store",
            )
            .with_code("key_store_unavailable")
            .into_response(),
        )
    })
}

fn failed(e: OpError) -> Response {
    match e {
        OpError::Invalid(i) => ApiError::invalid_request(i.message, Some(i.field))
            .with_code("invalid_key_setting")
            .into_response(),
        OpError::NotFound(n) => ApiError::not_found(format!("There is no key named {n:?}."))
            .with_code("key_not_found")
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
    }
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
    .map_err(|i| Box::new(failed(OpError::Invalid(i))))
}

pub async fn list(State(state): State<AppState>) -> Response {
    let keys = match store(&state) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match keys.list().await {
        Ok(all) => {
            let data: Vec<Value> = all.iter().map(|k| k.to_json()).collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => failed(e),
    }
}

pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let keys = match store(&state) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match keys.show(&name).await {
        Ok(k) => Json(k.to_json()).into_response(),
        Err(e) => failed(e),
    }
}

pub async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    let keys = match store(&state) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let c = match change(&state, &body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match keys.create(&c).await {
        Ok((k, secret)) => {
            let mut v = k.to_json();
            v["key"] = json!(secret);
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => failed(e),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let keys = match store(&state) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let c = match change(&state, &body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match keys.update(&name, &c).await {
        Ok(k) => Json(k.to_json()).into_response(),
        Err(e) => failed(e),
    }
}

pub async fn revoke(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let keys = match store(&state) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match keys.revoke(&name).await {
        Ok(k) => Json(k.to_json()).into_response(),
        Err(e) => failed(e),
    }
}
