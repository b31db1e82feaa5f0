//! OpenTelemetry spans for chat requests, exported over OTLP/HTTP (protobuf) when the binary is
//! built with the `otlp` feature and the config has a `telemetry.otlp` section.
//!
//! One span per chat request, written when the request's record is finished, with the GenAI
//! semantic-convention attributes that LLM observability tools (Langfuse and other OTLP
//! receivers) read: operation, provider, requested and answering model, token usage. Prompts and
//! answers are never exported: a gateway sits in front of every application's data, and what a
//! trace should hold is the applications' call to make.
//!
//! Spans are handed to the SDK's batch processor, which queues them in memory and exports them
//! from its own thread; the request path only builds the span. A full queue drops spans rather
//! than slowing requests down.

use crate::config::TelemetryConfig;
use std::time::{Duration, SystemTime};

/// What one finished chat request says about itself; borrowed from the request's record.
#[derive(Debug, Default)]
pub struct ChatSpan<'a> {
    pub request_id: &'a str,
    /// When the request arrived and how long it took to the last byte (or to the failure).
    pub start: Option<SystemTime>,
    pub duration: Duration,
    /// The `model` the client sent: `auto`, an alias, a tier or a model name.
    pub requested_model: Option<&'a str>,
    /// The `gen_ai.provider.name` of the provider that answered (see [`provider_name`]).
    pub provider: Option<&'static str>,
    /// The provider's own id of the model that answered.
    pub response_model: Option<&'a str>,
    /// The configured model name that answered.
    pub model: Option<&'a str>,
    pub tier: Option<&'a str>,
    /// The `x-switchyard-route` value: which layer and rule decided.
    pub route: Option<&'a str>,
    pub stream: bool,
    pub attempts: u32,
    pub status: u16,
    pub error: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// `gen_ai.provider.name` for a provider kind: the well-known values of the GenAI conventions,
/// and a switchyard-specific one for the simulated provider, which is no real system.
pub fn provider_name(kind: crate::config::ProviderKind) -> &'static str {
    use crate::config::ProviderKind;
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Azure => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Simulated => "switchyard.simulated",
    }
}

/// The span exporter, or nothing when spans are not configured (or not built in).
#[derive(Default)]
pub struct Spans {
    #[cfg(feature = "otlp")]
    inner: Option<otlp::Exporter>,
}

impl Spans {
    pub fn disabled() -> Spans {
        Spans::default()
    }

    /// Starts the exporter the config asks for. Changing `telemetry` takes a restart: the
    /// exporter owns a thread and a queue, and swapping it on every reload could drop spans.
    pub fn from_config(config: &TelemetryConfig) -> Result<Spans, String> {
        #[cfg(feature = "otlp")]
        {
            Ok(Spans {
                inner: match &config.otlp {
                    Some(o) => Some(otlp::Exporter::start(&o.value)?),
                    None => None,
                },
            })
        }
        #[cfg(not(feature = "otlp"))]
        {
            // Validation refuses `telemetry.otlp` in a binary without the feature.
            match &config.otlp {
                Some(_) => Err("telemetry.otlp: built without the `otlp` feature".into()),
                None => Ok(Spans::default()),
            }
        }
    }

    /// Whether a span would go anywhere; callers skip building one when not.
    pub fn enabled(&self) -> bool {
        #[cfg(feature = "otlp")]
        {
            self.inner.is_some()
        }
        #[cfg(not(feature = "otlp"))]
        {
            false
        }
    }

    /// Sends the spans still queued; blocks until they are sent or the export timeout passes,
    /// so call it off the async workers (`spawn_blocking`). Used on shutdown, where the queue
    /// would otherwise be lost with the process.
    pub fn flush(&self) {
        #[cfg(feature = "otlp")]
        if let Some(e) = &self.inner {
            e.flush();
        }
    }

    pub fn chat(&self, span: &ChatSpan<'_>) {
        #[cfg(feature = "otlp")]
        if let Some(e) = &self.inner {
            e.chat(span);
        }
        #[cfg(not(feature = "otlp"))]
        let _ = span;
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use super::ChatSpan;
    use crate::config::OtlpConfig;
    use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
    };
    use std::time::SystemTime;

    pub struct Exporter {
        /// Both are `Some` until `drop` moves them to the thread that shuts the provider down
        /// (the tracer holds the provider too).
        tracer: Option<SdkTracer>,
        provider: Option<SdkTracerProvider>,
    }

    impl Exporter {
        pub fn start(c: &OtlpConfig) -> Result<Exporter, String> {
            let headers = c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.value.0.clone()))
                .collect();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(c.endpoint.value.as_str())
                .with_timeout(c.timeout())
                .with_headers(headers)
                .build()
                .map_err(|e| format!("telemetry.otlp: cannot build the span exporter: {e}"))?;
            let batch = BatchConfigBuilder::default()
                .with_scheduled_delay(c.flush_interval())
                .build();
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build();
            let resource = Resource::builder()
                .with_service_name(c.service_name.0.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build();
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource)
                .build();
            let tracer = provider.tracer("switchyard");
            Ok(Exporter {
                tracer: Some(tracer),
                provider: Some(provider),
            })
        }

        pub fn chat(&self, s: &ChatSpan<'_>) {
            let Some(tracer) = &self.tracer else {
                return;
            };
            let end = s
                .start
                .and_then(|t| t.checked_add(s.duration))
                .unwrap_or_else(SystemTime::now);
            let start = s.start.unwrap_or(end);
            let requested = s.requested_model.unwrap_or("unknown");
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", requested.to_string()),
                KeyValue::new("http.response.status_code", i64::from(s.status)),
                KeyValue::new("switchyard.request_id", s.request_id.to_string()),
                KeyValue::new("switchyard.stream", s.stream),
                KeyValue::new("switchyard.attempts", i64::from(s.attempts)),
            ];
            let mut text = |key: &'static str, v: Option<&str>| {
                if let Some(v) = v {
                    attrs.push(KeyValue::new(key, v.to_string()));
                }
            };
            // Both names: `gen_ai.provider.name` is the current convention, `gen_ai.system`
            // the one receivers built on earlier versions still read.
            text("gen_ai.provider.name", s.provider);
            text("gen_ai.system", s.provider);
            text("gen_ai.response.model", s.response_model);
            text("switchyard.model", s.model);
            text("switchyard.tier", s.tier);
            text("switchyard.route", s.route);
            let error_type = (s.status >= 400).then(|| s.status.to_string());
            text("error.type", error_type.as_deref());
            for (key, v) in [
                ("gen_ai.usage.input_tokens", s.input_tokens),
                ("gen_ai.usage.output_tokens", s.output_tokens),
            ] {
                if let Some(v) = v.and_then(|v| i64::try_from(v).ok()) {
                    attrs.push(KeyValue::new(key, v));
                }
            }
            // The GenAI span name: "{operation} {requested model}".
            let mut span = tracer
                .span_builder(format!("chat {requested}"))
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .with_attributes(attrs)
                .start_with_context(tracer, &Context::new());
            if s.status >= 400 {
                span.set_status(Status::error(
                    s.error
                        .map_or_else(|| format!("HTTP {}", s.status), str::to_string),
                ));
            } else {
                span.set_status(Status::Ok);
            }
            span.end_with_timestamp(end);
        }
    }

    impl Exporter {
        pub fn flush(&self) {
            if let Some(p) = &self.provider {
                if let Err(e) = p.force_flush() {
                    tracing::warn!("could not send the last spans: {e}");
                }
            }
        }
    }

    impl Drop for Exporter {
        fn drop(&mut self) {
            // Shutting down joins the export thread after a last flush; done from a plain thread
            // so that dropping the exporter inside the async runtime never blocks a worker.
            let (tracer, provider) = (self.tracer.take(), self.provider.take());
            let _ = std::thread::Builder::new()
                .name("otlp-shutdown".into())
                .spawn(move || {
                    drop(tracer);
                    if let Some(p) = provider {
                        let _ = p.shutdown();
                    }
                });
        }
    }
}
