//! Where finished accounts go, shared by every request of the process: the metrics registry, the
//! fallback-rate alert, the spend log (opened once at start) and the span exporter. They outlive
//! config reloads.

use crate::cost::spend::SpendLog;
use crate::gateway::Gateway;
use crate::telemetry::{FallbackAlert, Metrics, Spans};
use std::sync::OnceLock;

pub struct Sinks {
    metrics: Metrics,
    fallback_alert: FallbackAlert,
    spend_log: OnceLock<SpendLog>,
    spans: Spans,
}

impl Sinks {
    pub fn new(metrics: Metrics, spans: Spans) -> Sinks {
        Sinks {
            metrics,
            fallback_alert: FallbackAlert::default(),
            spend_log: OnceLock::new(),
            spans,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts one dispatched request toward `alerts.fallback_rate`, when the config sets it.
    pub fn fallback_alert(&self, gw: &Gateway, fell_back: bool) {
        if let Some(cfg) = &gw.config.alerts.fallback_rate {
            self.fallback_alert.record(cfg, fell_back);
        }
    }

    /// Set once, when the server starts; a second call is ignored.
    pub fn set_spend_log(&self, log: SpendLog) {
        let _ = self.spend_log.set(log);
    }

    pub fn spend_log(&self) -> Option<&SpendLog> {
        self.spend_log.get()
    }

    pub fn spans(&self) -> &Spans {
        &self.spans
    }
}
