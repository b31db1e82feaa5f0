//! One request's account: what was decided, who served it, how long it took. Written to the
//! metrics and the request log line exactly once, when the answer is complete, when it failed, or
//! when the client went away (the guard's `Drop`).

use super::AppState;
use crate::dispatch::Outcome;
use crate::openai::Usage;
use crate::routing::Decision;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Record {
    state: AppState,
    pub request_id: Arc<str>,
    start: Instant,
    pub decision: Option<Decision>,
    pub tier: Option<Arc<str>>,
    pub model: Option<Arc<str>>,
    pub attempts: u32,
    pub upstream: Duration,
    pub usage: Option<Usage>,
    pub stream: bool,
    pub route: Option<String>,
    /// The `model` the client asked for (`auto`, an alias, a tier or a model), for the span.
    pub requested_model: Option<String>,
    overhead: Option<Duration>,
    finished: bool,
}

/// Status recorded for a stream the client abandoned (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

impl Record {
    pub fn start(state: AppState, request_id: Arc<str>, start: Instant) -> Self {
        state.metrics().in_flight.inc();
        Record {
            state,
            request_id,
            start,
            decision: None,
            tier: None,
            model: None,
            attempts: 0,
            upstream: Duration::ZERO,
            usage: None,
            stream: false,
            route: None,
            requested_model: None,
            overhead: None,
            finished: false,
        }
    }

    pub fn decided(&mut self, d: &Decision) {
        self.state
            .metrics()
            .route_decision_seconds
            .with_label_values(&[d.layer.as_str()])
            .observe(d.elapsed.as_secs_f64());
        self.state
            .metrics()
            .route_decisions
            .with_label_values(&[d.layer.as_str(), &d.tier])
            .inc();
        self.tier = Some(d.tier.clone());
        self.decision = Some(d.clone());
    }

    pub fn dispatched(&mut self, o: &Outcome) {
        let m = self.state.metrics();
        if let Some(c) = &o.served {
            self.tier = Some(c.tier.clone());
            self.model = Some(c.model.name.clone());
        }
        self.attempts = o.attempts;
        if let Some(d) = &self.decision {
            self.route = Some(super::chat::route_label(d, Some(o)));
        }
        self.upstream = o.upstream;
        for f in &o.failures {
            m.provider_errors
                .with_label_values(&[&f.model, f.kind.as_str()])
                .inc();
        }
        // A cascade escalation is a routing decision, counted in switchyard_cascade_total; only
        // hops forced by failures count as fallbacks (they drive the fallback-rate alert).
        let cascade_hop = o
            .cascade
            .as_ref()
            .filter(|c| c.outcome == "escalated")
            .map(|c| (c.from.clone(), c.to.clone()));
        let mut from = self.decision.as_ref().map(|d| d.tier.clone());
        for to in &o.fallbacks {
            let is_cascade = cascade_hop
                .as_ref()
                .is_some_and(|(cf, ct)| Some(cf) == from.as_ref() && ct == to);
            if let Some(f) = from.as_ref().filter(|_| !is_cascade) {
                let reason = o
                    .failures
                    .iter()
                    .rev()
                    .find(|x| &x.tier == f)
                    .map_or("unknown", |x| x.kind.as_str());
                m.fallbacks.with_label_values(&[f, to, reason]).inc();
            }
            from = Some(to.clone());
        }
        if let Some(c) = &o.cascade {
            m.cascade
                .with_label_values(&[&c.from, &c.to, c.outcome, c.reason.unwrap_or("none")])
                .inc();
        }
        if let Some(model) = &self.model {
            m.upstream_duration
                .with_label_values(&[model])
                .observe(o.upstream.as_secs_f64());
        }
    }

    /// Time inside the gateway so far, upstream waits excluded. Fixed at the moment headers are
    /// sent, since that is what the `x-switchyard-overhead-ms` header can report.
    pub fn overhead(&mut self) -> Duration {
        let o = self.start.elapsed().saturating_sub(self.upstream);
        self.overhead = Some(o);
        o
    }

    /// A stream broke after its first byte: the status was already sent, so this is where it shows.
    pub fn stream_failed(&self, class: &str) {
        let model = self.model.as_deref().unwrap_or("none");
        self.state
            .metrics()
            .stream_errors
            .with_label_values(&[model, class])
            .inc();
    }

    pub fn finish(&mut self, status: u16, error: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let m = self.state.metrics();
        let tier = self.tier.as_deref().unwrap_or("none");
        let model = self.model.as_deref().unwrap_or("none");
        let elapsed = self.start.elapsed();
        let overhead = self
            .overhead
            .unwrap_or_else(|| elapsed.saturating_sub(self.upstream));
        m.requests
            .with_label_values(&[tier, model, status_label(status)])
            .inc();
        m.request_duration
            .with_label_values(&[tier])
            .observe(elapsed.as_secs_f64());
        m.overhead.observe(overhead.as_secs_f64());
        if let Some(u) = self.usage {
            m.tokens
                .with_label_values(&[tier, model, "input"])
                .inc_by(u.prompt_tokens);
            m.tokens
                .with_label_values(&[tier, model, "output"])
                .inc_by(u.completion_tokens);
        }
        let route = self
            .route
            .clone()
            .or_else(|| self.decision.as_ref().map(ToString::to_string));
        super::trace::export(&self.state, self, route.as_deref(), status, error, elapsed);
        tracing::info!(
            request_id = %self.request_id,
            status,
            tier,
            model,
            route = route.as_deref().unwrap_or("none"),
            stream = self.stream,
            attempts = self.attempts,
            latency_ms = ms(elapsed),
            upstream_ms = ms(self.upstream),
            overhead_ms = ms(overhead),
            prompt_tokens = self.usage.map(|u| u.prompt_tokens),
            completion_tokens = self.usage.map(|u| u.completion_tokens),
            error,
            "chat completion"
        );
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish(
            CLIENT_CLOSED,
            Some("the client closed the connection before the answer was complete"),
        );
        self.state.metrics().in_flight.dec();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Status labels come from this fixed set so that a misbehaving provider cannot mint new series.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

pub fn format_ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}
