//! Gives every request an id (the client's `x-request-id` when it sent a sane one) and echoes it on
//! every response, errors included, so a client can quote it when something goes wrong.

use super::headers::REQUEST_ID;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use std::sync::Arc;

#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

fn acceptable(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The client's id when it sent an acceptable one, else a new one.
pub fn assign(headers: &http::HeaderMap) -> Arc<str> {
    match headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(v) if acceptable(v) => v.into(),
        _ => format!("req_{}", uuid::Uuid::new_v4().simple()).into(),
    }
}

pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = assign(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
