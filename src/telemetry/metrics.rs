//! Metric definitions. Names and labels are part of switchyard's interface (dashboards and alerts
//! depend on them). Label values only ever come from the config or from small fixed sets, never
//! from request content, so cardinality is bounded by the routing table.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub overhead: Histogram,
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
    pub config_reloads: IntCounterVec,
    pub stream_errors: IntCounterVec,
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
            "Chat requests answered, by the tier and model that served them and the HTTP status.",
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
                "Time spent inside the gateway outside upstream calls (parsing, routing, serialization).",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(overhead.clone()))?;
        let in_flight = IntGauge::new(
            "switchyard_in_flight_requests",
            "Chat requests being processed now.",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let tokens = counter(
            "switchyard_tokens_total",
            "Tokens reported by providers, by direction (input or output).",
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
        let config_reloads = counter(
            "switchyard_config_reloads_total",
            "Config reload attempts, by result (success or failure).",
            &["result"],
        )?;
        let stream_errors = counter(
            "switchyard_stream_errors_total",
            "Streams that failed after the first byte was sent, by model and error class.",
            &["model", "class"],
        )?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            overhead,
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
            config_reloads,
            stream_errors,
        })
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
