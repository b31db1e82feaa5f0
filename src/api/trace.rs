//! A finished request's record as an OpenTelemetry span (see `telemetry::Spans`). Kept apart
//! from `record.rs` so that the record only makes one call; nothing here runs unless span export
//! is configured.

use super::AppState;
use super::record::Record;
use crate::telemetry::{ChatSpan, provider_name};
use std::time::{Duration, SystemTime};

pub(super) fn export(
    state: &AppState,
    rec: &Record,
    route: Option<&str>,
    status: u16,
    error: Option<&str>,
    elapsed: Duration,
) {
    let spans = state.spans();
    if !spans.enabled() {
        return;
    }
    // The model that answered, looked up in the current config for its provider and upstream
    // id. After a reload that removed the model the span simply goes without them.
    let gw = state.gateway();
    let served = rec.model.as_ref().and_then(|m| gw.models.get(m));
    let provider = served
        .and_then(|m| gw.config.providers.get(&m.provider_name))
        .map(|p| provider_name(p.kind));
    spans.chat(&ChatSpan {
        request_id: &rec.request_id,
        start: SystemTime::now().checked_sub(elapsed),
        duration: elapsed,
        requested_model: rec.requested_model.as_deref(),
        provider,
        response_model: served.map(|m| m.upstream.as_str()),
        model: rec.model.as_deref(),
        tier: rec.tier.as_deref(),
        route,
        stream: rec.stream,
        attempts: rec.attempts,
        status,
        error,
        input_tokens: rec.usage.map(|u| u.prompt_tokens),
        output_tokens: rec.usage.map(|u| u.completion_tokens),
    });
}
