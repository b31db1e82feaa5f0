//! Every error a client sees, in OpenAI's shape, so SDKs raise their own exception types for them
//! (`/v1/messages` rewrites it in Anthropic's, see `messages::error`).

use crate::dispatch::UNAVAILABLE_CODE as NO_DEPLOYMENT;
use crate::openai::ErrorBody;
use crate::providers::{ErrorKind, ProviderError};
use crate::redact::Redactor;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use std::time::Duration;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel in `Result`s on the request path, which stay small this way.
    pub body: Box<ErrorBody>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody::new(message, kind, None, None)),
            retry_after: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>, param: Option<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: Box::new(ErrorBody::new(
                message,
                "invalid_request_error",
                param,
                None,
            )),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.body.error.code = Some(code.to_string());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// Maps a provider failure to the status an OpenAI client expects for it. The message names the
    /// model that failed and is scrubbed of configured secrets.
    ///
    /// A provider that rejects switchyard's own credentials (401/403) is a fault on the gateway's
    /// side, so it is a `502`: passed through as a 401, SDKs would raise `AuthenticationError` as
    /// if the client's key were wrong. A client's own 401 is only ever about its gateway key.
    pub fn from_provider(e: &ProviderError, model: &str, redactor: &Redactor) -> Self {
        let upstream = e.status.and_then(|s| StatusCode::from_u16(s).ok());
        let (status, kind, code) = match e.kind {
            ErrorKind::RateLimit => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            ErrorKind::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "upstream_timeout",
            ),
            ErrorKind::Server if e.code.as_deref() == Some(NO_DEPLOYMENT) => {
                (StatusCode::SERVICE_UNAVAILABLE, "api_error", NO_DEPLOYMENT)
            }
            ErrorKind::Server => (
                upstream
                    .filter(StatusCode::is_server_error)
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                "api_error",
                "upstream_error",
            ),
            ErrorKind::Connect => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_connection_error",
            ),
            ErrorKind::InvalidResponse => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_invalid_response",
            ),
            ErrorKind::CutOff => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_stream_cut_off",
            ),
            ErrorKind::ContextWindow => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            ErrorKind::ContentPolicy => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "content_policy_violation",
            ),
            ErrorKind::Auth if e.status == Some(403) => (
                StatusCode::BAD_GATEWAY,
                "upstream_permission_error",
                "upstream_permission_denied",
            ),
            ErrorKind::Auth => (
                StatusCode::BAD_GATEWAY,
                "upstream_authentication_error",
                "upstream_authentication_failed",
            ),
            ErrorKind::BadRequest => (
                upstream
                    .filter(StatusCode::is_client_error)
                    .unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "upstream_bad_request",
            ),
            ErrorKind::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found_error",
                "upstream_not_found",
            ),
        };
        // The unavailability message names the tier or model itself.
        let message = if e.code.as_deref() == Some(NO_DEPLOYMENT) {
            redactor.redact(&e.message)
        } else {
            redactor.redact(&format!("{model}: {}", e.message))
        };
        let code = e
            .code
            .as_deref()
            .filter(|_| matches!(e.kind, ErrorKind::BadRequest | ErrorKind::ContextWindow))
            .unwrap_or(code);
        ApiError {
            status,
            body: Box::new(ErrorBody::new(message, kind, e.param.clone(), Some(code))),
            retry_after: e.retry_after,
        }
    }
}

/// The error a response was built from, kept on it so that a route with another wire format
/// (`/v1/messages`) can write the same refusal in its own shape.
#[derive(Clone)]
pub struct Refused(pub Box<ErrorBody>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(&self.body)).into_response();
        resp.extensions_mut().insert(Refused(self.body));
        if let Some(d) = self.retry_after {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
