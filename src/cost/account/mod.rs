//! The accounting stage: one request's account, from what was decided and who served it to the
//! bill (usage, cost, counterfactual, answers paid for and discarded) and where it goes: the
//! metrics, the request's log line, its span and its spend row, each written exactly once, when
//! the answer is complete, when it failed, or when the client went away (the guard's `Drop`).
//! Handlers drive it and read the cost back for their headers; it must not import `api`.

mod refused;
mod row;
mod sinks;
mod span;

pub use refused::{Refusal, refused};
pub use row::{UNKNOWN_TIER, key_suffix};
pub use sinks::Sinks;

use crate::config::EscalateOn;
use crate::cost::Cost;
use crate::dispatch::Deployment;
use crate::dispatch::{Outcome, Progress};
use crate::gateway::Gateway;
use crate::openai::{ChatRequest, EmbeddingRequest, Usage};
use crate::routing::Decision;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Account {
    sinks: Arc<Sinks>,
    /// The config the request started on: its prices bill it, even if a reload happens meanwhile.
    gw: Arc<Gateway>,
    pub request_id: Arc<str>,
    start: Instant,
    pub decision: Option<Decision>,
    pub tier: Option<Arc<str>>,
    pub model: Option<Arc<str>>,
    /// The deployment that answered (or was being called), carried rather than looked up again.
    served: Option<Arc<Deployment>>,
    pub attempts: u32,
    /// Where dispatch's time went (upstream calls, waits before retries); shared with the walk,
    /// so it is known even when the client left mid-call and the walk was dropped.
    progress: Arc<Progress>,
    /// Whether dispatch returned (else the request was dropped while it ran, or never got there).
    dispatched: bool,
    pub usage: Option<Usage>,
    pub stream: bool,
    /// How a stream that started ended; `None` while it runs and for non-streaming requests.
    pub stream_end: Option<StreamEnd>,
    pub route: Option<String>,
    /// The `model` the client asked for (`auto`, an alias, a tier or a model), for the span.
    pub requested_model: Option<String>,
    overhead: Option<Duration>,
    finished: bool,
    /// What the spend log and the accounting need from the request itself.
    facts: row::RequestFacts,
    /// Kept for streams, to count the prompt's tokens if the provider never reports usage.
    request: Option<ChatRequest>,
    /// Text streamed so far, for the same reason.
    streamed: String,
    /// An answer (or a stream's first chunk) arrived, so the provider did bill something.
    answered: bool,
    ttft_seen: bool,
    /// Set by `finish`.
    pub cost: Option<Cost>,
    /// Answers paid for but not returned.
    discarded: Vec<Bill>,
    /// The caller's key's reservation and parallel slot, settled when the account closes.
    hold: Option<crate::cost::budget::Hold>,
    /// An embeddings request: it is its own counterfactual (see [`Account::embedding_request`]).
    embedding: bool,
}

/// One answer paid for but not returned (a cascade's cheap answer that was escalated).
struct Bill {
    tier: Arc<str>,
    model: Arc<Deployment>,
    usage: Usage,
    estimated: bool,
    usd: f64,
}

/// How a stream ended once its first chunk was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// With `[DONE]` (or, where the provider's `stream_end` allows, a final `finish_reason`).
    Complete,
    /// The provider ended the body cleanly before the answer's end: the answer is cut off.
    CutOff,
    /// The provider broke off (connection lost, idle timeout, an error event, a garbled chunk).
    Failed,
    /// The client went away first.
    ClientClosed,
}

impl StreamEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::CutOff => "cut_off",
            StreamEnd::Failed => "failed",
            StreamEnd::ClientClosed => "client_closed",
        }
    }

    /// Why a stream that ended like this has its tokens counted by switchyard.
    fn estimated_reason(self) -> &'static str {
        match self {
            StreamEnd::Complete => "no_usage_reported",
            StreamEnd::CutOff => "stream_cut_off",
            StreamEnd::Failed => "stream_failed",
            StreamEnd::ClientClosed => "client_closed",
        }
    }
}

/// The `endpoint` of an embeddings request's spend row.
pub const EMBEDDINGS: &str = "embeddings";

/// Status recorded for a stream the client abandoned (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

impl Account {
    pub fn start(
        sinks: Arc<Sinks>,
        gw: Arc<Gateway>,
        request_id: Arc<str>,
        start: Instant,
    ) -> Self {
        sinks.metrics().in_flight.inc();
        Account {
            sinks,
            gw,
            facts: row::RequestFacts::arrived(),
            request: None,
            streamed: String::new(),
            answered: false,
            ttft_seen: false,
            cost: None,
            discarded: Vec::new(),
            hold: None,
            embedding: false,
            request_id,
            start,
            decision: None,
            tier: None,
            model: None,
            served: None,
            attempts: 0,
            progress: Arc::default(),
            dispatched: false,
            usage: None,
            stream: false,
            stream_end: None,
            route: None,
            requested_model: None,
            overhead: None,
            finished: false,
        }
    }

    /// The timing dispatch fills in for this request.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// The accepted client key, known before the body is read, so that a request refused for its
    /// body still names its key in the spend log.
    pub fn caller_key(&mut self, suffix: Option<String>) {
        self.facts.api_key = suffix;
    }

    /// The virtual key that was admitted: its name and team go on the spend row.
    pub fn virtual_key(&mut self, name: &str, team: Option<&str>) {
        self.facts.key_name = Some(name.to_string());
        self.facts.team = team.map(str::to_string);
    }

    /// What the request holds of its key's limits; settled to the real cost in `finish`.
    pub fn hold(&mut self, h: crate::cost::budget::Hold) {
        match &mut self.hold {
            Some(held) => {
                if h.slot.is_some() {
                    held.slot = h.slot;
                }
                if h.reservation.is_some() {
                    held.reservation = h.reservation;
                }
                if h.team.is_some() {
                    held.team = h.team;
                }
            }
            None => self.hold = Some(h),
        }
    }

    /// Notes the request's caller and metadata (task type, expected tier) for the account.
    pub fn request(&mut self, req: &ChatRequest) {
        self.facts.read(req, &self.gw);
    }

    /// The API the request came in on, known before its body is read (the spend row's
    /// `endpoint`, also for a body that is refused).
    pub fn endpoint(&mut self, endpoint: &'static str) {
        self.facts.endpoint = Some(endpoint);
        self.embedding = endpoint == EMBEDDINGS;
    }

    /// Notes an embeddings request. Its counterfactual is its own cost: the counterfactual tier
    /// is a chat tier, which cannot produce vectors, and no other embedding model's vectors are
    /// a substitute for the ones asked for, so there is no cheaper or dearer way it could have
    /// been served and nothing routing saved.
    pub fn embedding_request(&mut self, req: &EmbeddingRequest) {
        self.embedding = true;
        self.requested_model = Some(req.model.clone());
        self.facts.read_embedding(req);
    }

    /// An embeddings answer: its usage, or, when the provider reported none, `input_tokens`
    /// (switchyard's count of the input).
    pub fn answered_embedding(&mut self, usage: Option<Usage>, input_tokens: u64) {
        self.answered = true;
        self.usage = usage;
        if usage.is_none() {
            self.facts.estimated = Some(Usage {
                prompt_tokens: input_tokens,
                ..Usage::default()
            });
        }
    }

    /// A non-streaming answer: its usage, or, when the provider reported none, an estimate.
    pub fn answered(&mut self, usage: Option<Usage>, req: &ChatRequest, body: &serde_json::Value) {
        self.answered = true;
        self.usage = usage;
        if usage.is_none() {
            let text = crate::cost::estimate::answer_text(body);
            self.facts.estimated = Some(crate::cost::estimate::usage(req, &text));
        }
    }

    /// Keeps a streamed request for a possible token estimate at the end.
    pub fn keep_request(&mut self, req: ChatRequest) {
        self.request = Some(req);
    }

    /// One chunk on its way to the client.
    pub fn streamed(&mut self, chunk: &serde_json::Value) {
        self.answered = true;
        if !self.ttft_seen {
            self.ttft_seen = true;
            self.sinks
                .metrics()
                .time_to_first_token
                .with_label_values(&[
                    self.tier.as_deref().unwrap_or("none"),
                    self.model.as_deref().unwrap_or("none"),
                ])
                .observe(self.start.elapsed().as_secs_f64());
        }
        if self.usage.is_none() {
            crate::cost::estimate::push_delta_text(chunk, &mut self.streamed);
        }
    }

    /// What the request cost, once `finish` has priced it (for `x-switchyard-cost-usd` and friends).
    pub fn cost(&self) -> Option<&Cost> {
        self.cost.as_ref()
    }

    pub fn decided(&mut self, d: &Decision) {
        self.sinks
            .metrics()
            .route_decision_seconds
            .with_label_values(&[d.layer.as_str()])
            .observe(d.elapsed.as_secs_f64());
        self.sinks
            .metrics()
            .route_decisions
            .with_label_values(&[d.layer.as_str(), &d.tier])
            .inc();
        if let Some(expected) = &self.facts.expected_tier {
            self.sinks
                .metrics()
                .routing_expected
                .with_label_values(&[expected, &d.tier])
                .inc();
        }
        self.tier = Some(d.tier.clone());
        self.decision = Some(d.clone());
    }

    /// Prices the answers a cascade paid for and discarded, so the request's cost is what was
    /// spent, not only what was returned. Their tokens and cost count under their own tier and
    /// model; the counterfactual (everything on one tier) never had them.
    pub fn bill_discarded(&mut self, o: &Outcome, req: &ChatRequest) {
        for d in &o.discarded {
            let (usage, estimated) = match d.usage {
                Some(u) => (u, false),
                None => (crate::cost::estimate::usage(req, &d.text), true),
            };
            self.discarded.push(Bill {
                tier: d.tier.clone(),
                model: d.model.clone(),
                usage,
                estimated,
                usd: crate::cost::usd(&d.model.price, &usage),
            });
        }
    }

    pub fn dispatched(&mut self, o: &Outcome) {
        let m = self.sinks.metrics();
        if let Some(c) = &o.served {
            self.tier = Some(c.tier.clone());
            self.model = Some(c.model.name.clone());
            self.served = Some(c.model.clone());
        }
        self.attempts = o.attempts;
        self.dispatched = true;
        if let Some(d) = &self.decision {
            self.route = Some(crate::dispatch::route_label(d, Some(o)));
        }
        for f in &o.failures {
            m.provider_errors
                .with_label_values(&[&f.model, f.kind.as_str()])
                .inc();
        }
        // A cascade escalation is a routing decision, counted in switchyard_cascade_total; only
        // hops forced by failures count as fallbacks (they drive the fallback-rate alert).
        for h in &o.hops {
            m.fallbacks
                .with_label_values(&[&h.from, &h.to, h.reason.as_str()])
                .inc();
        }
        for (deployment, kind) in &o.retries {
            m.retries
                .with_label_values(&[deployment, kind.as_str()])
                .inc();
        }
        for (deployment, class) in &o.cooldowns {
            m.cooldowns.with_label_values(&[&**deployment, class]).inc();
        }
        self.sinks.fallback_alert(&self.gw, !o.hops.is_empty());
        if let Some(c) = &o.cascade {
            m.cascade
                .with_label_values(&[
                    &*c.tiers.from,
                    &*c.tiers.to,
                    c.outcome.as_str(),
                    c.reason.map_or("none", EscalateOn::as_str),
                ])
                .inc();
        }
    }

    /// The gateway's own time so far: the request's time without upstream calls and without waits
    /// before retries. Fixed at the moment headers are sent, since that is what the
    /// `x-switchyard-overhead-ms` header can report. Returns (overhead, waited).
    pub fn overhead(&mut self) -> (Duration, Duration) {
        let waited = self.progress.waited();
        let o = self
            .start
            .elapsed()
            .saturating_sub(self.progress.upstream() + waited);
        self.overhead = Some(o);
        (o, waited)
    }

    /// A stream broke after its first byte: the status was already sent, so this is where it shows.
    pub fn stream_failed(
        &mut self,
        e: &crate::providers::ProviderError,
        cooled: Option<&'static str>,
    ) {
        let (class, reason) = (e.kind.as_str(), e.kind.reason());
        self.stream_end = Some(if e.kind == crate::providers::ErrorKind::CutOff {
            StreamEnd::CutOff
        } else {
            StreamEnd::Failed
        });
        let model = self.model.as_deref().unwrap_or("none");
        let m = self.sinks.metrics();
        m.stream_errors
            .with_label_values(&[model, class, reason])
            .inc();
        m.provider_errors.with_label_values(&[model, class]).inc();
        if let Some(c) = cooled {
            m.cooldowns.with_label_values(&[model, c]).inc();
        }
    }

    pub fn finish(&mut self, status: u16, error: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !self.dispatched {
            // Dropped while dispatch ran (the client left): what it was doing is all there is.
            let (calling, attempts) = self.progress.calling();
            if let Some(c) = calling {
                self.tier = Some(c.tier);
                self.model = Some(c.model.name.clone());
                self.served = Some(c.model.clone());
            }
            self.attempts = attempts;
        }
        if self.stream && self.answered && self.stream_end.is_none() {
            self.stream_end = Some(StreamEnd::ClientClosed);
        }
        let m = self.sinks.metrics();
        let tier = self.tier.as_deref().unwrap_or("none");
        let model = self.model.as_deref().unwrap_or("none");
        let elapsed = self.start.elapsed();
        let upstream = self.progress.upstream();
        let waited = self.progress.waited();
        let overhead = self
            .overhead
            .unwrap_or_else(|| elapsed.saturating_sub(upstream + waited));
        if self.attempts > 0 {
            m.upstream_duration
                .with_label_values(&[model])
                .observe(upstream.as_secs_f64());
        }
        if !waited.is_zero() {
            m.retry_wait.observe(waited.as_secs_f64());
        }
        m.requests
            .with_label_values(&[tier, model, status_label(status)])
            .inc();
        m.request_duration
            .with_label_values(&[tier])
            .observe(elapsed.as_secs_f64());
        m.overhead.observe(overhead.as_secs_f64());
        let (usage, estimated) = self.billed_usage();
        let cost = usage.map(|u| {
            let price = self.served.as_ref().map(|d| d.price).unwrap_or_default();
            crate::cost::bill(
                &u,
                estimated,
                &price,
                self.tier.as_deref(),
                self.model.as_deref(),
                self.gw.counterfactual.as_ref().filter(|_| !self.embedding),
            )
        });
        // Metrics carry each model's own share; the request's cost (headers, log, spend log)
        // includes the answers it paid for and discarded.
        let mut total = cost;
        for b in &self.discarded {
            if let Some(t) = total.as_mut() {
                t.usd += b.usd;
                t.estimated |= b.estimated;
            }
            let (t, name) = (&*b.tier, &*b.model.name);
            m.cost.with_label_values(&[t, name]).inc_by(b.usd);
            m.tokens
                .with_label_values(&[t, name, "input"])
                .inc_by(b.usage.prompt_tokens);
            m.tokens
                .with_label_values(&[t, name, "output"])
                .inc_by(b.usage.completion_tokens);
        }
        self.cost = total;
        if let Some(c) = cost {
            m.cost.with_label_values(&[tier, model]).inc_by(c.usd);
            m.counterfactual_cost
                .with_label_values(&[tier])
                .inc_by(c.counterfactual_usd);
            if c.estimated {
                m.cost_estimated.with_label_values(&[tier, model]).inc();
            }
        }
        if let Some(u) = usage {
            m.tokens
                .with_label_values(&[tier, model, "input"])
                .inc_by(u.prompt_tokens);
            m.tokens
                .with_label_values(&[tier, model, "output"])
                .inc_by(u.completion_tokens);
        }
        let cost = total;
        if let Some(h) = self.hold.take() {
            h.settle(
                cost.map_or(0.0, |c| c.usd),
                usage.map_or(0, |u| u.completion_tokens),
            );
        }
        let estimated_reason = estimated.then(|| match self.stream_end {
            Some(end) => end.estimated_reason(),
            None => "no_usage_reported",
        });
        let stream_end = self.stream_end.map(StreamEnd::as_str);
        let route = self
            .route
            .clone()
            .or_else(|| self.decision.as_ref().map(ToString::to_string));
        span::export(&self.sinks, self, route.as_deref(), status, error, elapsed);
        tracing::info!(
            request_id = %self.request_id,
            status,
            tier,
            model,
            route = route.as_deref().unwrap_or("none"),
            stream = self.stream,
            attempts = self.attempts,
            latency_ms = ms(elapsed),
            upstream_ms = ms(upstream),
            wait_ms = ms(waited),
            overhead_ms = ms(overhead),
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            completion_tokens = usage.map(|u| u.completion_tokens),
            cached_tokens = usage.map(|u| u.cached_tokens),
            cost_usd = cost.map(|c| c.usd),
            counterfactual_usd = cost.map(|c| c.counterfactual_usd),
            cost_estimated = estimated,
            estimated_reason,
            stream_end,
            error,
            "{}",
            if self.embedding {
                "embeddings"
            } else {
                "chat completion"
            }
        );
        if let Some(log) = self.sinks.spend_log() {
            log.append(row::spend_record(
                self,
                route.as_deref(),
                usage,
                elapsed,
                upstream,
                status,
            ));
        }
    }

    /// The provider's usage when it sent one; otherwise, when it did answer, a local count.
    fn billed_usage(&self) -> (Option<Usage>, bool) {
        if self.usage.is_some() {
            return (self.usage, false);
        }
        if let Some(u) = self.facts.estimated {
            return (Some(u), true);
        }
        match (&self.request, self.answered) {
            (Some(req), true) => (
                Some(crate::cost::estimate::usage(req, &self.streamed)),
                true,
            ),
            _ => (None, false),
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.finish(
            CLIENT_CLOSED,
            Some("the client closed the connection before the answer was complete"),
        );
        self.sinks.metrics().in_flight.dec();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Status labels come from this fixed set so that a misbehaving provider cannot mint new series.
pub(crate) fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
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
