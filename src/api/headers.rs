//! Response headers that tell a client what the gateway did with its request.

use http::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TIER: HeaderName = HeaderName::from_static("x-switchyard-tier");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
/// `accepted`, `escalated:<reason>` or `capped:<reason>` for cascaded requests.
pub const CASCADE: HeaderName = HeaderName::from_static("x-switchyard-cascade");
pub const OVERHEAD_MS: HeaderName = HeaderName::from_static("x-switchyard-overhead-ms");
/// What the request cost in USD at the configured prices (non-streaming answers only: a stream's
/// headers leave before its usage is known).
pub const COST_USD: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
/// The same tokens at `routing.counterfactual`'s prices.
pub const COUNTERFACTUAL_USD: HeaderName =
    HeaderName::from_static("x-switchyard-counterfactual-usd");
/// `true` when the provider reported no usage and switchyard counted the tokens itself.
pub const COST_ESTIMATED: HeaderName = HeaderName::from_static("x-switchyard-cost-estimated");
