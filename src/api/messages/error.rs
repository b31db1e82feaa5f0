//! Errors in Anthropic's shape for the Messages routes. Every refusal on the way (a missing key,
//! a body that is not JSON, an unknown model, an upstream's 429) is built once, as an
//! [`ApiError`](super::super::ApiError), and its response carries the error; this layer rewrites
//! that response's body as `{"type": "error", "error": {"type", "message"}}` with the type
//! Anthropic's SDKs expect for the status, and keeps the status and headers (`retry-after`,
//! `www-authenticate`, the request id).

use super::super::error::Refused;
use crate::anthropic::{error_body, error_type};
use crate::openai::ErrorBody;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

/// The error in Anthropic's shape. Anthropic has no `param`: the offending field is named in
/// the message instead, when the message does not name it already.
pub fn body(e: &ErrorBody, status: u16) -> Value {
    let d = &e.error;
    let message = match d.param.as_deref() {
        Some(p) if !p.is_empty() && !d.message.contains(p) => format!("{p}: {}", d.message),
        _ => d.message.clone(),
    };
    error_body(error_type(status), &message)
}

pub async fn layer(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let Some(Refused(e)) = resp.extensions_mut().remove::<Refused>() else {
        return resp;
    };
    let status = resp.status().as_u16();
    let Ok(bytes) = serde_json::to_vec(&body(&e, status)) else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_field_in_the_message() {
        let e = ErrorBody::new(
            "Field required",
            "invalid_request_error",
            Some("max_tokens".into()),
            None,
        );
        assert_eq!(
            body(&e, 400),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
        );
        let e = ErrorBody::new(
            "model: bad",
            "invalid_request_error",
            Some("model".into()),
            None,
        );
        assert_eq!(
            body(&e, 404)["error"],
            json!({"type": "not_found_error", "message": "model: bad"})
        );
    }
}
