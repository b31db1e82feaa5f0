//! Who may call what. Client keys (`server.api_keys`) open the API routes; admin keys
//! (`server.admin_keys`) open `/admin/*`; `server.metrics.keys` (or an admin key) open `/metrics`
//! when set. Keys are sent the way OpenAI SDKs send them (`Authorization: Bearer …`) or as
//! `x-api-key`. Every refusal is logged (never with the key) and counted when it was a chat request.

use super::AppState;
use super::error::ApiError;
use super::request_id::RequestId;
use crate::keys::VirtualKey;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// The accepted client key: its last characters for the spend log (see
/// `cost::account::key_suffix`), and the virtual key when switchyard issued it.
#[derive(Clone)]
pub struct CallerKey {
    pub suffix: String,
    pub key: Option<Arc<VirtualKey>>,
}

/// The key as sent: `Authorization: Bearer …` (scheme case-insensitive, RFC 9110 §11.1) or
/// `x-api-key`.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let gw = state.gateway();
    if !state.auth_required() {
        return next.run(req).await;
    }
    let caller = match presented(req.headers()) {
        Some(key) if gw.key_is_valid(key) => CallerKey {
            suffix: crate::cost::account::key_suffix(key),
            key: None,
        },
        Some(key) => match state.keys().and_then(|k| k.lookup(key)) {
            Some(vk) => match vk.unusable(crate::keys::now_ms()) {
                Some(why) => {
                    let team = vk.team.as_deref().unwrap_or("none");
                    state
                        .metrics()
                        .key_refusals
                        .with_label_values(&[team, why.as_str()])
                        .inc();
                    return refuse(&state, &req, unusable_key(&vk, why));
                }
                None => CallerKey {
                    suffix: crate::cost::account::key_suffix(key),
                    key: Some(vk),
                },
            },
            None if state.keys().is_some_and(|k| k.any()) => {
                return refuse(&state, &req, unknown_key());
            }
            None => return refuse(&state, &req, wrong_key("server.api_keys")),
        },
        None => return refuse(&state, &req, missing_key()),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `/admin/keys`: an admin key only, and only where admin keys are configured. A loopback client
/// without one could otherwise mint keys for itself.
pub async fn admin_only_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let gw = state.gateway();
    if !gw.admin_keys_set() {
        let e = forbidden(
            "/admin/keys needs server.admin_keys to be configured; without them, manage keys with `switchyard keys`.",
            "admin_keys_not_configured",
        );
        return refuse(&state, &req, e);
    }
    admin_key_only(&state, req, next).await
}

/// Lets an admin key through; a client key (configured or issued) is told it is the wrong kind.
async fn admin_key_only(state: &AppState, req: Request, next: Next) -> Response {
    let gw = state.gateway();
    match presented(req.headers()) {
        Some(k) if gw.is_admin_key(k) => next.run(req).await,
        Some(k) if gw.key_is_valid(k) || state.keys().and_then(|s| s.lookup(k)).is_some() => {
            let e = forbidden(
                "This is a client key: /admin/* needs one of the gateway's server.admin_keys.",
                "admin_key_required",
            );
            refuse(state, &req, e)
        }
        Some(_) => refuse(state, &req, wrong_key("server.admin_keys")),
        None => refuse(state, &req, missing_key()),
    }
}

/// A 403: the caller is known, or its key is beside the point, but this route is not for it.
fn forbidden(message: &str, code: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "permission_error", message).with_code(code)
}

/// A key switchyard issued that may not be used now. The message names the key by its name and
/// hint, never by its secret.
fn unusable_key(k: &VirtualKey, why: crate::keys::Unusable) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        format!("The API key {} ({}) is {}.", k.name, k.hint, why.as_str()),
    )
    .with_code(match why {
        crate::keys::Unusable::Revoked => "key_revoked",
        crate::keys::Unusable::Disabled => "key_disabled",
        crate::keys::Unusable::Expired => "key_expired",
    })
}

fn unknown_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "Incorrect API key provided: it is neither one of the gateway's server.api_keys nor a key it issued.",
    )
    .with_code("invalid_api_key")
}

/// `/admin/*`: with `server.admin_keys`, an admin key from anywhere; without, loopback clients
/// only (and, when `server.api_keys` is set, with a client key, as for `/v1`).
pub async fn admin_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let gw = state.gateway();
    if gw.admin_keys_set() {
        return admin_key_only(&state, req, next).await;
    }
    if !from_loopback(&req) {
        let e = forbidden(
            "/admin/* answers only clients on this host while no server.admin_keys are configured; set admin keys to reach it from elsewhere.",
            "admin_loopback_only",
        );
        return refuse(&state, &req, e);
    }
    if !gw.auth_required() {
        return next.run(req).await;
    }
    match presented(req.headers()) {
        Some(k) if gw.key_is_valid(k) => next.run(req).await,
        Some(_) => refuse(&state, &req, wrong_key("server.api_keys")),
        None => refuse(&state, &req, missing_key()),
    }
}

/// `/metrics`: open unless `server.metrics.keys` is set; then one of them or an admin key.
pub async fn metrics_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let gw = state.gateway();
    if !gw.metrics_keys_set() {
        return next.run(req).await;
    }
    match presented(req.headers()) {
        Some(k) if gw.is_metrics_key(k) => next.run(req).await,
        Some(_) => refuse(&state, &req, wrong_key("server.metrics.keys")),
        None => refuse(&state, &req, missing_key()),
    }
}

/// The TCP peer, not a forwarded-for header: a proxy on this host makes every client look local,
/// which is why admin keys are the way to expose `/admin/*` behind one.
fn from_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(a)| a.ip().to_canonical().is_loopback())
}

fn missing_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'.",
    )
    .with_code("missing_api_key")
}

fn wrong_key(list: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        format!("Incorrect API key provided. Use one of the keys listed in the gateway's {list}."),
    )
    .with_code("invalid_api_key")
}

fn refuse(state: &AppState, req: &Request, e: ApiError) -> Response {
    let request_id = req.extensions().get::<RequestId>().map_or("", |r| &*r.0);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    crate::cost::account::refused(
        &state.sinks(),
        crate::cost::account::Refusal {
            request_id,
            method: req.method().as_str(),
            path: req
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| req.uri().path(), |u| u.0.path()),
            peer,
            status: e.status.as_u16(),
            code: e.body.error.code.as_deref().unwrap_or(""),
        },
    );
    let unauthorized = e.status == StatusCode::UNAUTHORIZED;
    let mut resp = e.into_response();
    if unauthorized {
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchyard\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_key_is_trimmed() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer  k-9876 "));
        assert_eq!(presented(&h), Some("k-9876"));
    }
}
