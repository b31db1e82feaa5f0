//! Response headers that tell a client what the gateway did with its request.

use crate::cost::{Cost, format_usd};
use http::{HeaderMap, HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TIER: HeaderName = HeaderName::from_static("x-switchyard-tier");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
/// `accepted`, `escalated:<reason>` or `capped:<reason>` for cascaded requests.
pub const CASCADE: HeaderName = HeaderName::from_static("x-switchyard-cascade");
/// The gateway's own time: the request's time without upstream calls and without `WAIT_MS`.
pub const OVERHEAD_MS: HeaderName = HeaderName::from_static("x-switchyard-overhead-ms");
/// Time the request waited before retries: backoffs, a cooldown ending, a provider's Retry-After.
pub const WAIT_MS: HeaderName = HeaderName::from_static("x-switchyard-wait-ms");
/// Upstream calls the request made (retries, fallbacks and cascade escalation included).
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
/// The tiers the request went through, `budget->mid` after a fallback or escalation.
pub const FALLBACKS: HeaderName = HeaderName::from_static("x-switchyard-fallbacks");
/// Request header: `true` keeps the request on the tier it was routed to.
pub const NO_FALLBACK: HeaderName = HeaderName::from_static("x-switchyard-no-fallback");

/// A boolean request header: `true`, `1` or `yes`, in any case.
pub fn flag(h: &http::HeaderMap, name: &HeaderName) -> bool {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}
/// What the request cost in USD at the configured prices (non-streaming answers only: a stream's
/// headers leave before its usage is known).
pub const COST_USD: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
/// The same tokens at `routing.counterfactual`'s prices.
pub const COUNTERFACTUAL_USD: HeaderName =
    HeaderName::from_static("x-switchyard-counterfactual-usd");
/// `true` when the provider reported no usage and switchyard counted the tokens itself.
pub const COST_ESTIMATED: HeaderName = HeaderName::from_static("x-switchyard-cost-estimated");

/// `x-switchyard-cost-usd`, `x-switchyard-counterfactual-usd` and, for an estimate,
/// `x-switchyard-cost-estimated`.
pub fn cost_headers(h: &mut HeaderMap, cost: Option<&Cost>) {
    let Some(c) = cost else { return };
    if let Ok(v) = HeaderValue::from_str(&format_usd(c.usd)) {
        h.insert(COST_USD, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format_usd(c.counterfactual_usd)) {
        h.insert(COUNTERFACTUAL_USD, v);
    }
    if c.estimated {
        h.insert(COST_ESTIMATED, HeaderValue::from_static("true"));
    }
}

/// Milliseconds with microsecond precision, as the timing headers carry them.
pub fn format_ms(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// A JSON body. Encoding a JSON value cannot fail; should it, the client gets a 502 in OpenAI's
/// shape rather than an empty 200.
pub fn json(body: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::to_vec(body) {
        Ok(b) => {
            let mut resp = axum::response::Response::new(axum::body::Body::from(b));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(_) => super::ApiError::new(
            http::StatusCode::BAD_GATEWAY,
            "api_error",
            "the provider's answer could not be encoded",
        )
        .into_response(),
    }
}
