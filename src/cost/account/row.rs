//! The parts of a request's account that come from the request itself (caller, task type,
//! expected tier) and the spend log row it leaves.

use super::Account;
use crate::cost::spend::SpendRecord;
use crate::gateway::Gateway;
use crate::openai::{ChatRequest, EmbeddingRequest, Usage};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Client-supplied strings are stored, never used as metric labels; this bounds their size.
const MAX_TEXT: usize = 128;

/// The label for an `expected_tier` that names no configured tier, so clients cannot mint series.
pub const UNKNOWN_TIER: &str = "unknown";

#[derive(Debug, Default)]
pub struct RequestFacts {
    pub unix_ms: i64,
    pub api_key: Option<String>,
    /// The virtual key's name and team, when the caller used one.
    pub key_name: Option<String>,
    pub team: Option<String>,
    pub caller: Option<String>,
    pub task_type: Option<String>,
    /// A configured tier name, or [`UNKNOWN_TIER`].
    pub expected_tier: Option<Arc<str>>,
    /// Usage counted locally for a non-streaming answer without usage.
    pub estimated: Option<Usage>,
    /// The API the request came in on (the spend row's `endpoint`).
    pub endpoint: Option<&'static str>,
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

impl RequestFacts {
    pub fn arrived() -> RequestFacts {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        RequestFacts {
            unix_ms,
            ..RequestFacts::default()
        }
    }

    pub fn read(&mut self, req: &ChatRequest, gw: &Gateway) {
        self.endpoint = Some(if req.anthropic.is_some() {
            "messages"
        } else {
            "chat/completions"
        });
        self.task_type = req.metadata_str("task_type").map(clip);
        self.caller = req
            .extra
            .get("user")
            .and_then(serde_json::Value::as_str)
            .or_else(|| req.metadata_str("user"))
            .map(clip);
        self.expected_tier = req.metadata_str("expected_tier").map(|t| {
            gw.tables
                .tiers
                .get_key_value(t)
                .map_or_else(|| Arc::from(UNKNOWN_TIER), |(k, _)| k.clone())
        });
    }
}

impl RequestFacts {
    /// An embeddings request has no metadata: its caller is its `user`.
    pub fn read_embedding(&mut self, req: &EmbeddingRequest) {
        self.endpoint = Some(super::EMBEDDINGS);
        self.caller = req.user.as_deref().map(clip);
    }
}

/// `…abcd`: enough to tell keys apart in a report, too little to use one.
pub fn key_suffix(k: &str) -> String {
    crate::redact::tail(k)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The spend log's row for a finished account. `finish` passes what it worked out on the way
/// (the route label, the billed usage, the times and the status); the rest is read off the account,
/// so a new column is one line here.
pub(super) fn spend_record(
    rec: &Account,
    route: Option<&str>,
    usage: Option<Usage>,
    latency: Duration,
    upstream: Duration,
    status: u16,
) -> SpendRecord {
    let f = &rec.facts;
    let usage = usage.unwrap_or_default();
    let cost = rec.cost.unwrap_or_default();
    SpendRecord {
        unix_ms: f.unix_ms,
        request_id: rec.request_id.to_string(),
        api_key: f.api_key.clone(),
        key_name: f.key_name.clone(),
        team: f.team.clone(),
        caller: f.caller.clone(),
        task_type: f.task_type.clone(),
        tier: rec.tier.as_deref().map(str::to_string),
        model: rec.model.as_deref().map(str::to_string),
        deployment: rec
            .served
            .as_deref()
            .map(|d| format!("{}/{}", d.provider_name, d.upstream)),
        route_layer: rec.decision.as_ref().map(|d| d.layer.as_str().to_string()),
        route: route.map(str::to_string),
        stream: rec.stream,
        stream_end: rec.stream_end.map(|e| e.as_str().to_string()),
        prompt_tokens: tokens(usage.prompt_tokens),
        completion_tokens: tokens(usage.completion_tokens),
        cached_tokens: tokens(usage.cached_tokens),
        cost_usd: cost.usd,
        counterfactual_usd: cost.counterfactual_usd,
        cost_estimated: cost.estimated,
        latency_ms: ms(latency),
        upstream_ms: ms(upstream),
        attempts: i32::try_from(rec.attempts).unwrap_or(i32::MAX),
        status: i32::from(status),
        endpoint: f.endpoint.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_clipped_and_keys_shortened() {
        assert_eq!(clip(&"é".repeat(300)).chars().count(), MAX_TEXT);
        assert_eq!(key_suffix("sk-gateway-1234"), "…1234");
        assert_eq!(key_suffix("ab"), "…ab");
    }
}
