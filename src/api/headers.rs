//! Response headers that tell a client what the gateway did with its request.

use http::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TIER: HeaderName = HeaderName::from_static("x-switchyard-tier");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
/// `accepted`, `escalated:<reason>` or `capped:<reason>` for cascaded requests.
pub const CASCADE: HeaderName = HeaderName::from_static("x-switchyard-cascade");
pub const OVERHEAD_MS: HeaderName = HeaderName::from_static("x-switchyard-overhead-ms");
