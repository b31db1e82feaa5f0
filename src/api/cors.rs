//! Cross-origin access for browser clients (`server.cors`): preflights from a listed origin are
//! answered with what the OpenAI SDKs send, and responses name that origin and expose the
//! `x-switchyard-*` headers to page scripts. Other origins get no CORS headers, so the browser
//! blocks the page from reading anything.

use super::headers;
use crate::config::CorsConfig;
use http::{HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub fn layer(c: &CorsConfig) -> CorsLayer {
    // Checked when the config was loaded, so every origin is a valid header value.
    let origins: Vec<HeaderValue> = c
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // The SDKs add their own telemetry headers (`x-stainless-*`) and may add more in any
        // release; the origin check is what protects, so whatever a listed page asks for is allowed.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            headers::REQUEST_ID,
            headers::TIER,
            headers::MODEL,
            headers::ROUTE,
            headers::CASCADE,
            headers::OVERHEAD_MS,
            headers::ATTEMPTS,
            headers::FALLBACKS,
            headers::COST_USD,
            headers::COUNTERFACTUAL_USD,
            headers::COST_ESTIMATED,
            http::header::RETRY_AFTER,
        ])
        .max_age(c.max_age.0)
}
