//! Prometheus metrics, OTLP spans (feature `otlp`) and log setup.
//!
//! Metric definitions only: must not import `cost`, `dispatch` or `api` (they import it).

mod alerts;
mod connections;
mod metrics;
mod spans;

pub use alerts::FallbackAlert;
pub use connections::EdgeMetrics;
pub use metrics::{Metrics, SpendCounters};
pub use spans::{ChatSpan, Spans, provider_name};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stdout through a writer thread, so a slow log collector delays log lines, not
/// responses. Lines are never dropped: when the buffer is full, writers wait. Keep the returned
/// guard alive until exit; dropping it flushes what is buffered. `RUST_LOG` overrides `info`.
pub fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}
