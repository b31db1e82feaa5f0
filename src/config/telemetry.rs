//! The `telemetry:` section: where request spans go. Optional as a whole; a config without it
//! exports nothing.
//!
//! ```yaml
//! telemetry:
//!   otlp:
//!     endpoint: "http://127.0.0.1:4318/v1/traces"   # the full traces URL, path included
//!     service_name: switchyard
//!     headers: { Authorization: "Basic ${LANGFUSE_AUTH}" }
//! ```

use super::duration::Dur;
use super::env::EnvString;
use super::error::ConfigError;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Export one OpenTelemetry span per chat request over OTLP/HTTP (protobuf). Needs a binary
    /// built with the `otlp` feature.
    #[serde(default)]
    pub otlp: Option<Spanned<OtlpConfig>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The full URL spans are POSTed to, e.g. `http://collector:4318/v1/traces`. Used as written:
    /// no `/v1/traces` is appended, because some receivers (Langfuse) serve traces elsewhere.
    pub endpoint: Spanned<EnvString>,
    /// The `service.name` resource attribute.
    #[serde(default = "default_service_name")]
    pub service_name: EnvString,
    /// Sent with every export, e.g. `Authorization` for a hosted receiver.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<EnvString>>,
    /// Limit on one export request (default 10s).
    #[serde(default)]
    pub timeout: Option<Spanned<Dur>>,
    /// How long finished spans may wait before they are sent as a batch (default 5s). Spans
    /// never wait on the request path; a longer interval means fewer, larger exports.
    #[serde(default)]
    pub flush_interval: Option<Spanned<Dur>>,
}

impl TelemetryConfig {
    /// Whether two configs export spans the same way (spans in the file may differ), so a
    /// reload can say when a change needs a restart.
    pub fn same_export(&self, other: &TelemetryConfig) -> bool {
        match (&self.otlp, &other.otlp) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                let (a, b) = (&a.value, &b.value);
                let headers = |o: &OtlpConfig| -> Vec<(String, String)> {
                    o.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value.0.clone()))
                        .collect()
                };
                a.endpoint.value == b.endpoint.value
                    && a.service_name == b.service_name
                    && headers(a) == headers(b)
                    && a.timeout() == b.timeout()
                    && a.flush_interval() == b.flush_interval()
            }
            _ => false,
        }
    }
}

impl OtlpConfig {
    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_ref()
            .map_or(Duration::from_secs(10), |t| t.value.0)
    }

    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
            .as_ref()
            .map_or(Duration::from_secs(5), |t| t.value.0)
    }
}

fn default_service_name() -> EnvString {
    EnvString("switchyard".into())
}

/// Whether this binary can export spans; the section is refused when it cannot, so that a config
/// asking for traces never runs silently without them.
pub const OTLP_BUILT_IN: bool = cfg!(feature = "otlp");

pub(super) fn validate(t: &TelemetryConfig, file: &str, text: &str) -> Result<(), ConfigError> {
    let Some(otlp) = &t.otlp else {
        return Ok(());
    };
    let at = |loc: Location, path: &str, message: String| {
        let line = u32::try_from(loc.line()).ok().filter(|&l| l > 0);
        let col = u32::try_from(loc.column()).ok().filter(|&c| c > 0);
        ConfigError::at(file, text, line, col, path, message)
    };
    if !OTLP_BUILT_IN {
        return Err(at(
            otlp.referenced,
            "telemetry.otlp",
            "this switchyard binary was built without the `otlp` feature, so it cannot export \
             spans; rebuild with `cargo build --release --features otlp` or remove the section"
                .into(),
        ));
    }
    let o = &otlp.value;
    let endpoint = o.endpoint.value.as_str();
    match reqwest::Url::parse(endpoint) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
        _ => {
            return Err(at(
                o.endpoint.referenced,
                "telemetry.otlp.endpoint",
                format!(
                    "{endpoint:?} is not an http(s) URL (write e.g. http://127.0.0.1:4318/v1/traces)"
                ),
            ));
        }
    }
    for (name, value) in &o.headers {
        let path = format!("telemetry.otlp.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(at(
                value.referenced,
                &path,
                format!("{name:?} is not a valid HTTP header name"),
            ));
        }
        if http::HeaderValue::from_str(value.value.as_str()).is_err() {
            return Err(at(
                value.referenced,
                &path,
                "the value is not a valid HTTP header value (control characters or non-ASCII)"
                    .into(),
            ));
        }
    }
    for (key, d) in [
        ("timeout", &o.timeout),
        ("flush_interval", &o.flush_interval),
    ] {
        if let Some(d) = d.as_ref().filter(|d| d.value.0.is_zero()) {
            return Err(at(
                d.referenced,
                &format!("telemetry.otlp.{key}"),
                "must be greater than 0".into(),
            ));
        }
    }
    Ok(())
}
