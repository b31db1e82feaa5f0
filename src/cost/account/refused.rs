//! The account of a request refused before any handler read it (a missing or wrong key, a key
//! without the right to the route): a log line and a request count, never a spend row.

use super::Sinks;
use super::status_label;

/// A request refused before any handler read it: a missing or wrong key, or a key without the
/// right to the route.
pub struct Refusal<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub peer: Option<std::net::SocketAddr>,
    pub status: u16,
    pub code: &'a str,
}

/// One access line for a refused request (it never carries the key), and, for a chat request, a
/// count in `switchyard_requests_total` like every other answered chat request. No spend row: the
/// caller is unknown, and a flood of bad keys must not fill the spend log.
pub fn refused(sinks: &Sinks, r: Refusal<'_>) {
    if r.path.ends_with("/chat/completions") {
        sinks
            .metrics()
            .requests
            .with_label_values(&["none", "none", status_label(r.status)])
            .inc();
    }
    tracing::info!(
        request_id = r.request_id,
        status = r.status,
        method = r.method,
        path = r.path,
        peer = r.peer.map(tracing::field::display),
        error = r.code,
        "request refused"
    );
}
