//! OTLP span export (feature `otlp`): requests through the in-process gateway arrive as spans at a
//! loopback OTLP/HTTP receiver, with the GenAI attributes set.
//! Run with `cargo test --features otlp --test otlp_export`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST the receiver got.
struct Export {
    headers: http::HeaderMap,
    body: ExportTraceServiceRequest,
}

#[derive(Clone, Default)]
struct Receiver {
    exports: Arc<Mutex<Vec<Export>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (r, addr)
    }

    /// Every span received so far, with the resource attributes of its batch.
    fn spans(&self) -> Vec<(HashMap<String, Value>, Span)> {
        let exports = self.exports.lock().unwrap();
        let mut out = Vec::new();
        for e in exports.iter() {
            for rs in &e.body.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| attrs(&r.attributes))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((resource.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }
}

async fn receive(State(r): State<Receiver>, headers: http::HeaderMap, body: Bytes) -> Vec<u8> {
    let body =
        ExportTraceServiceRequest::decode(body).expect("a protobuf ExportTraceServiceRequest");
    r.exports.lock().unwrap().push(Export { headers, body });
    // An empty ExportTraceServiceResponse: everything accepted.
    Vec::new()
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Other,
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, Value> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v: &AnyValue| v.value.clone()) {
                Some(any_value::Value::StringValue(s)) => Value::Str(s),
                Some(any_value::Value::IntValue(i)) => Value::Int(i),
                Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
                _ => Value::Other,
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

async fn setup() -> (Mock, Gateway, Receiver) {
    setup_with("50ms").await
}

async fn setup_with(flush_interval: &str) -> (Mock, Gateway, Receiver) {
    let mock = Mock::start().await;
    let (receiver, addr) = Receiver::start().await;
    let yaml = format!(
        "{}\ntelemetry:\n  otlp:\n    endpoint: \"http://{addr}/v1/traces\"\n    service_name: switchyard-test\n    headers: {{ Authorization: \"Basic dGVzdDp0ZXN0\" }}\n    flush_interval: {flush_interval}\n",
        config_yaml(&mock.url(), "")
    );
    let gw = Gateway::start(&yaml).await;
    (mock, gw, receiver)
}

async fn send(gw: &Gateway, id: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits for the span of request `id`, without fixed sleeps.
async fn span_for(
    r: &Receiver,
    id: &str,
) -> (HashMap<String, Value>, Span, HashMap<String, Value>) {
    let want = s(id);
    let find = || {
        r.spans().into_iter().find_map(|(res, span)| {
            let a = attrs(&span.attributes);
            (a.get("switchyard.request_id") == Some(&want)).then_some((res, span, a))
        })
    };
    eventually(
        &format!("the span of {id}"),
        Duration::from_secs(20),
        || find().is_some(),
    )
    .await;
    find().unwrap()
}

#[tokio::test]
async fn a_chat_request_becomes_a_span_with_genai_attributes() {
    let (_mock, gw, receiver) = setup().await;
    let resp = send(
        &gw,
        "req-otlp-json",
        chat_body("auto", "please prove this lemma"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await.unwrap();

    let (resource, span, a) = span_for(&receiver, "req-otlp-json").await;
    assert_eq!(resource.get("service.name"), Some(&s("switchyard-test")));
    assert_eq!(span.name, "chat auto");
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Ok as i32);
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    assert_eq!(span.trace_id.len(), 16);
    let expected = [
        ("gen_ai.operation.name", s("chat")),
        ("gen_ai.provider.name", s("openai")),
        ("gen_ai.system", s("openai")),
        ("gen_ai.request.model", s("auto")),
        ("gen_ai.response.model", s("strong-up")),
        ("gen_ai.usage.input_tokens", Value::Int(11)),
        ("gen_ai.usage.output_tokens", Value::Int(7)),
        ("switchyard.tier", s("premium")),
        ("switchyard.model", s("strong")),
        ("switchyard.route", s("rules:reasoning")),
        ("switchyard.stream", Value::Bool(false)),
        ("switchyard.attempts", Value::Int(1)),
        ("http.response.status_code", Value::Int(200)),
    ];
    for (key, value) in expected {
        assert_eq!(a.get(key), Some(&value), "{key} in {a:?}");
    }
    assert!(!a.contains_key("error.type"), "{a:?}");
    // No prompt or answer text leaves the gateway in a span.
    let all = format!("{a:?}");
    assert!(
        !all.contains("lemma") && !all.contains("answer from"),
        "{all}"
    );

    let exports = receiver.exports.lock().unwrap();
    let h = &exports[0].headers;
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert_eq!(h["authorization"], "Basic dGVzdDp0ZXN0");
}

#[tokio::test]
async fn streams_and_failures_are_spans_too() {
    let (mock, gw, receiver) = setup().await;
    let resp = send(
        &gw,
        "req-otlp-stream",
        json!({"model": "budget", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("[DONE]"));

    mock.on(
        "strong-up",
        Reply::Json {
            status: 401,
            body: json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
            headers: vec![],
        },
    );
    // The provider rejected the gateway's key: the client gets a 502, not its own 401.
    let resp = send(&gw, "req-otlp-401", chat_body("strong", "hello")).await;
    assert_eq!(resp.status(), 502);

    let (_, span, a) = span_for(&receiver, "req-otlp-stream").await;
    assert_eq!(span.name, "chat budget");
    assert_eq!(a.get("switchyard.stream"), Some(&Value::Bool(true)));
    assert_eq!(a.get("switchyard.route"), Some(&s("tier:budget")));
    assert_eq!(a.get("gen_ai.response.model"), Some(&s("cheap-up")));
    assert_eq!(a.get("gen_ai.usage.input_tokens"), Some(&Value::Int(11)));
    assert_eq!(a.get("gen_ai.usage.output_tokens"), Some(&Value::Int(3)));
    assert_eq!(a.get("http.response.status_code"), Some(&Value::Int(200)));

    let (_, span, a) = span_for(&receiver, "req-otlp-401").await;
    assert_eq!(span.name, "chat strong");
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(status.message.contains("strong"), "{}", status.message);
    assert_eq!(a.get("http.response.status_code"), Some(&Value::Int(502)));
    assert_eq!(a.get("error.type"), Some(&s("502")));
    assert_eq!(a.get("gen_ai.request.model"), Some(&s("strong")));
    assert!(!a.contains_key("gen_ai.usage.input_tokens"), "{a:?}");
    // The provider key never reaches the trace receiver.
    assert!(!format!("{a:?}{status:?}").contains(PROVIDER_KEY));
}

#[tokio::test]
async fn spans_still_queued_are_sent_on_shutdown() {
    // Spans would wait a minute to be batched; shutting down must not lose them.
    let (_mock, mut gw, receiver) = setup_with("60s").await;
    let resp = send(&gw, "req-otlp-last", chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await.unwrap();
    assert!(receiver.spans().is_empty());
    gw.shutdown();
    (&mut gw.handle).await.unwrap().unwrap();
    let (_, span, _) = span_for(&receiver, "req-otlp-last").await;
    assert_eq!(span.name, "chat auto");
}

#[test]
fn bad_otlp_settings_are_config_errors_with_their_line() {
    let base = config_yaml("http://127.0.0.1:9/v1", "");
    let with = |otlp: &str| format!("{base}\ntelemetry:\n  otlp:\n{otlp}");
    let err = switchyard::config::Config::from_yaml(
        &with("    endpoint: \"127.0.0.1:4318/v1/traces\"\n"),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    let line = base.lines().count() + 4;
    assert!(
        err.starts_with(&format!("t.yaml:{line}:")) && err.contains("telemetry.otlp.endpoint"),
        "{err}"
    );
    let err = switchyard::config::Config::from_yaml(
        &with("    endpoint: \"http://127.0.0.1:4318/v1/traces\"\n    flush_interval: 0s\n"),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("telemetry.otlp.flush_interval: must be greater than 0"),
        "{err}"
    );
    let err = switchyard::config::Config::from_yaml(
        &with("    endpoint: \"http://127.0.0.1:4318/v1/traces\"\n    sample: 0.5\n"),
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sample"), "{err}");
}
