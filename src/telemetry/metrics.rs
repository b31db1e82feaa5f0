//! Metric definitions. Names and labels are part of switchyard's interface (dashboards and alerts
//! depend on them). Label values only ever come from the config or from small fixed sets, never
//! from request content, so cardinality is bounded by the routing table.

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The spend log's counters: handles into this registry that the spend log's writer keeps.
#[derive(Clone)]
pub struct SpendCounters {
    pub written: IntCounter,
    pub dropped: IntCounterVec,
    pub write_failures: IntCounter,
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub overhead: Histogram,
    pub retry_wait: Histogram,
    pub in_flight: IntGauge,
    pub tokens: IntCounterVec,
    pub route_decisions: IntCounterVec,
    pub route_decision_seconds: HistogramVec,
    pub cascade: IntCounterVec,
    pub provider_errors: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub retries: IntCounterVec,
    pub cooldowns: IntCounterVec,
    pub deployment_healthy: IntGaugeVec,
    /// 1 while `state.backend: redis` is unreachable and requests are served on local state.
    pub state_degraded: IntGauge,
    /// Shared-state calls that failed or timed out (set from the store at each scrape).
    pub state_errors: IntCounter,
    /// Virtual keys' requests turned away, by team and why; never by key.
    pub key_refusals: IntCounterVec,
    /// What a team may still spend this period: its own budget's remainder when it has one, else
    /// what its keys' budgets have left, summed (set at each scrape).
    pub team_budget_remaining: prometheus::GaugeVec,
    pub config_reloads: IntCounterVec,
    pub stream_errors: IntCounterVec,
    pub cost: CounterVec,
    pub counterfactual_cost: CounterVec,
    pub cost_estimated: IntCounterVec,
    pub time_to_first_token: HistogramVec,
    pub routing_expected: IntCounterVec,
    pub spend_written: IntCounter,
    pub spend_dropped: IntCounterVec,
    pub spend_write_failures: IntCounter,
    /// Connections, slow clients and shed requests (see `connections.rs`).
    pub edge: super::EdgeMetrics,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Gateway overhead is expected in the tens of microseconds; the buckets resolve that range.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

/// Rules decide in microseconds, local embedders in tens of microseconds, remote ones in milliseconds.
const DECISION_BUCKETS: &[f64] = &[
    0.000_001, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.005, 0.025,
    0.1, 0.5,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram = |name: &str,
                         help: &str,
                         labels: &[&str],
                         buckets: &[f64]|
         -> Result<HistogramVec, prometheus::Error> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let requests = counter(
            "switchyard_requests_total",
            "Requests answered (chat, Messages and embeddings), by the tier and model that served them and the HTTP status.",
            &["tier", "model", "status"],
        )?;
        let request_duration = histogram(
            "switchyard_request_duration_seconds",
            "Time from request arrival to the last byte of the answer.",
            &["tier"],
            LATENCY_BUCKETS,
        )?;
        let upstream_duration = histogram(
            "switchyard_upstream_duration_seconds",
            "Time waiting on providers: to the full answer, or to the first chunk of a stream.",
            &["model"],
            LATENCY_BUCKETS,
        )?;
        let overhead = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_gateway_overhead_seconds",
                "The gateway's own work per request (parsing, routing, serialization): its time without upstream calls and without waits before retries.",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(overhead.clone()))?;
        let retry_wait = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_retry_wait_seconds",
                "Time requests spent waiting before a retry (backoff, a cooldown ending, a provider's Retry-After), for requests that waited.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(retry_wait.clone()))?;
        let in_flight = IntGauge::new(
            "switchyard_in_flight_requests",
            "Requests (chat, Messages and embeddings) being processed now.",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let tokens = counter(
            "switchyard_tokens_total",
            "Tokens billed, by direction (input or output): as the provider reported them, else as switchyard counted them.",
            &["tier", "model", "direction"],
        )?;
        let route_decisions = counter(
            "switchyard_route_decisions_total",
            "Routing decisions, by the layer that decided and the tier chosen.",
            &["layer", "tier"],
        )?;
        let route_decision_seconds = histogram(
            "switchyard_route_decision_seconds",
            "Time to decide a request's tier, by the layer that decided (semantic includes embedding).",
            &["layer"],
            DECISION_BUCKETS,
        )?;
        let cascade = counter(
            "switchyard_cascade_total",
            "Cascaded requests by outcome (accepted, escalated, capped) and the reason to escalate.",
            &["from_tier", "to_tier", "outcome", "reason"],
        )?;
        let provider_errors = counter(
            "switchyard_provider_errors_total",
            "Failed upstream calls, by model and error class.",
            &["model", "class"],
        )?;
        let fallbacks = counter(
            "switchyard_fallbacks_total",
            "Requests moved to another tier, by the tier left, the tier entered and the error class.",
            &["from_tier", "to_tier", "reason"],
        )?;
        let retries = counter(
            "switchyard_retries_total",
            "Retries within a tier, by the deployment the retry went to and the error class that caused it.",
            &["deployment", "class"],
        )?;
        let cooldowns = counter(
            "switchyard_deployment_cooldowns_total",
            "Times a deployment was taken out of rotation (circuit opened), by the error class that did it.",
            &["deployment", "class"],
        )?;
        let deployment_healthy = IntGaugeVec::new(
            Opts::new(
                "switchyard_deployment_healthy",
                "1 while a deployment takes traffic, 0 while it cools down or waits on its probe.",
            ),
            &["deployment"],
        )?;
        registry.register(Box::new(deployment_healthy.clone()))?;
        let state_degraded = IntGauge::new(
            "switchyard_state_degraded",
            "1 while the shared state store (state.backend: redis) is unreachable and requests are served on this replica's local state; 0 otherwise.",
        )?;
        registry.register(Box::new(state_degraded.clone()))?;
        let state_errors = IntCounter::new(
            "switchyard_state_errors_total",
            "Calls to the shared state store that failed or timed out (each outage is also logged once).",
        )?;
        registry.register(Box::new(state_errors.clone()))?;
        let key_refusals = counter(
            "switchyard_key_refusals_total",
            "Requests with a virtual key turned away, by the key's team (none without one) and reason (revoked, disabled, expired, rate_limit, parallel_limit, budget, team_budget, state_unavailable, not_allowed).",
            &["team", "reason"],
        )?;
        let team_budget_remaining = prometheus::GaugeVec::new(
            Opts::new(
                "switchyard_team_budget_remaining_usd",
                "Dollars a team may still spend this period: what its own budget has left when it has one (switchyard teams), else what the budgets of its active keys have left, summed (team none: keys without a team).",
            ),
            &["team"],
        )?;
        registry.register(Box::new(team_budget_remaining.clone()))?;
        let config_reloads = counter(
            "switchyard_config_reloads_total",
            "Config reload attempts, by result (success or failure).",
            &["result"],
        )?;
        let stream_errors = counter(
            "switchyard_stream_errors_total",
            "Streams that failed after the first byte was sent, by model, error class and reason (e.g. cut_off: the provider ended the stream before its final chunk).",
            &["model", "class", "reason"],
        )?;
        let usd =
            |name: &str, help: &str, labels: &[&str]| -> Result<CounterVec, prometheus::Error> {
                let c = CounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let cost = usd(
            "switchyard_cost_usd_total",
            "Spend in USD at the configured prices, by the tier and model that served the request.",
            &["tier", "model"],
        )?;
        let counterfactual_cost = usd(
            "switchyard_counterfactual_cost_usd_total",
            "What the same tokens would have cost at routing.counterfactual's prices, by the tier that served the request.",
            &["tier"],
        )?;
        let cost_estimated = counter(
            "switchyard_cost_estimated_total",
            "Requests whose provider reported no usage, so their tokens were counted by switchyard's tokenizer.",
            &["tier", "model"],
        )?;
        let time_to_first_token = histogram(
            "switchyard_time_to_first_token_seconds",
            "Streams: time from request arrival to the first chunk sent to the client.",
            &["tier", "model"],
            LATENCY_BUCKETS,
        )?;
        let routing_expected = counter(
            "switchyard_routing_expected_total",
            "Requests whose metadata.expected_tier was set, by that tier (unknown if it is not a configured tier) and the tier the router chose.",
            &["expected", "actual"],
        )?;
        let spend_written = IntCounter::new(
            "switchyard_spend_log_written_total",
            "Spend log records written to the database.",
        )?;
        registry.register(Box::new(spend_written.clone()))?;
        let spend_dropped = counter(
            "switchyard_spend_log_dropped_total",
            "Spend log records not written, by reason (queue_full, write_failed, closed); each is also logged.",
            &["reason"],
        )?;
        // Present from the start, so an alert on drops has a series to watch before the first one.
        for reason in ["queue_full", "write_failed", "closed"] {
            spend_dropped.with_label_values(&[reason]);
        }
        let spend_write_failures = IntCounter::new(
            "switchyard_spend_log_write_failures_total",
            "Failed attempts to write a batch of spend log records (a batch is retried before it is dropped).",
        )?;
        registry.register(Box::new(spend_write_failures.clone()))?;
        let edge = super::EdgeMetrics::register(&registry)?;
        Ok(Metrics {
            state_degraded,
            state_errors,
            edge,
            cost,
            counterfactual_cost,
            cost_estimated,
            time_to_first_token,
            routing_expected,
            spend_written,
            spend_dropped,
            spend_write_failures,
            registry,
            requests,
            request_duration,
            upstream_duration,
            overhead,
            retry_wait,
            in_flight,
            tokens,
            route_decisions,
            route_decision_seconds,
            cascade,
            provider_errors,
            fallbacks,
            retries,
            cooldowns,
            deployment_healthy,
            key_refusals,
            team_budget_remaining,
            config_reloads,
            stream_errors,
        })
    }

    pub fn spend_counters(&self) -> SpendCounters {
        SpendCounters {
            written: self.spend_written.clone(),
            dropped: self.spend_dropped.clone(),
            write_failures: self.spend_write_failures.clone(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
