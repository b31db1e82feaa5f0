//! A finished request's account as an OpenTelemetry span (see `telemetry::Spans`). Kept apart
//! so that the account only makes one call; nothing here runs unless span export is configured.

use super::{Account, Sinks};
use crate::telemetry::{ChatSpan, provider_name};
use std::time::{Duration, SystemTime};

pub(super) fn export(
    sinks: &Sinks,
    rec: &Account,
    route: Option<&str>,
    status: u16,
    error: Option<&str>,
    elapsed: Duration,
) {
    let spans = sinks.spans();
    if !spans.enabled() {
        return;
    }
    // The model that answered, in the config the request ran on, for its provider and upstream id.
    let gw = &rec.gw;
    let served = rec.served.as_deref();
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
