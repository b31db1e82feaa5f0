//! Metrics of the server's edge: open connections, connections and requests cut because a client
//! was too slow, requests turned away (draining, over a limit).

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct EdgeMetrics {
    pub open_connections: IntGauge,
    /// By phase: `header` (a request's headers did not arrive in time), `body` (its body did not),
    /// `idle` (a connection sent nothing for that long: a keep-alive connection nobody reused).
    pub client_timeouts: IntCounterVec,
    /// By reason: `draining`, `connection_limit`, `in_flight_limit`.
    pub shed: IntCounterVec,
}

pub const TIMEOUT_PHASES: [&str; 3] = ["header", "body", "idle"];
pub const SHED_REASONS: [&str; 3] = ["draining", "connection_limit", "in_flight_limit"];

impl EdgeMetrics {
    pub(super) fn register(registry: &Registry) -> Result<EdgeMetrics, prometheus::Error> {
        let open_connections = IntGauge::new(
            "switchyard_open_connections",
            "Client connections open now (on the API address).",
        )?;
        registry.register(Box::new(open_connections.clone()))?;
        let client_timeouts = IntCounterVec::new(
            Opts::new(
                "switchyard_client_timeouts_total",
                "Client connections closed because the client was too slow, by phase: header (server.header_read_timeout with part of a request received), body (server.body_read_timeout), idle (header_read_timeout with nothing received).",
            ),
            &["phase"],
        )?;
        registry.register(Box::new(client_timeouts.clone()))?;
        let shed = IntCounterVec::new(
            Opts::new(
                "switchyard_shed_requests_total",
                "Requests answered 503 without being served, by reason: draining (shutdown began), connection_limit (server.max_connections), in_flight_limit (server.max_in_flight_requests).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(shed.clone()))?;
        // Present from the start, so that alerts have a series before the first event.
        for p in TIMEOUT_PHASES {
            client_timeouts.with_label_values(&[p]);
        }
        for r in SHED_REASONS {
            shed.with_label_values(&[r]);
        }
        Ok(EdgeMetrics {
            open_connections,
            client_timeouts,
            shed,
        })
    }
}
