//! A deployment: one model of one provider, with its price, limits and timeouts, as tiers list
//! them and dispatch calls them.

use crate::config::Price;
use crate::providers::Provider;
use std::sync::Arc;
use std::time::Duration;

pub struct Deployment {
    pub name: Arc<str>,
    /// The id the provider knows the model by.
    pub upstream: String,
    pub provider: Arc<Provider>,
    pub provider_name: String,
    pub price: Price,
    pub context_window: Option<u64>,
    pub weight: f64,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_output_tokens: Option<u32>,
    pub stream_usage: bool,
    /// Limit to the full answer, or to the first chunk of a stream.
    pub timeout: Duration,
    /// Limit on the silence between two chunks of a stream.
    pub idle_timeout: Duration,
}

/// Between chunks a healthy stream is rarely silent for long; two minutes leaves room for slow
/// reasoning models while still freeing a connection to a provider that hung.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
