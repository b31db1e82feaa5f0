//! Streaming through the gateway: chunks pass as they arrive, usage is captured, a client that
//! leaves cancels the upstream, failures before the first byte fall back, failures after it end the
//! stream with an error event. Also an Anthropic upstream end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn stream_body(model: &str, include_usage: Option<bool>) -> Value {
    let mut b =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = include_usage {
        b["stream_options"] = json!({"include_usage": u});
    }
    b
}

/// Reads SSE `data:` payloads until the stream ends.
async fn read_events(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn content(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn streams_chunks_with_headers_and_done() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let resp = post(&gw, &stream_body("auto", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-switchyard-tier"], "budget");
    assert_eq!(resp.headers()["x-switchyard-model"], "cheap");
    assert_eq!(resp.headers()["x-switchyard-route"], "default");
    assert!(resp.headers().contains_key("x-switchyard-overhead-ms"));
    assert!(resp.headers().contains_key("x-request-id"));
    let events = read_events(resp).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(content(&events), "Hello from mock");
    // The client did not ask for usage: no chunk carries it...
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );
    // ...but the gateway asked upstream for it and counted it.
    let got = mock.requests().pop().unwrap();
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["stream_options"]["include_usage"], true);
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_tokens_total{direction="output",model="cheap",tier="budget"}"#,
        3.0,
    );
    assert_metric(
        &text,
        r#"switchyard_tokens_total{direction="input",model="cheap",tier="budget"}"#,
        11.0,
    );
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        1.0,
    );
}

#[tokio::test]
async fn usage_chunk_reaches_clients_that_ask_for_it() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let events = read_events(post(&gw, &stream_body("auto", Some(true))).await).await;
    let usage: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter(|v| v["usage"].is_object())
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 3);
    assert_eq!(usage[0]["choices"], json!([]));
}

#[tokio::test]
async fn chunks_reach_the_client_before_the_upstream_finishes() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    // The upstream sends role + "Hello", then holds the rest until the test releases it.
    let gate = mock.held_stream("cheap-up", 2);
    let resp = post(&gw, &stream_body("auto", None)).await;
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("Hello") {
        let next = tokio::time::timeout(Duration::from_secs(10), body.next()).await;
        let chunk = next
            .expect("the first chunks must arrive while the upstream is still generating")
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        !seen.contains(r#""content":" from""#),
        "later chunks cannot have arrived yet: {seen}"
    );
    gate.notify_one();
    while let Some(c) = body.next().await {
        seen.push_str(std::str::from_utf8(&c.unwrap()).unwrap());
    }
    assert!(seen.contains(r#""content":" mock""#) && seen.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let _held = mock.held_stream("cheap-up", 2);
    let resp = post(&gw, &stream_body("auto", None)).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("data: "));
    drop(body);
    let state = mock.state.clone();
    eventually(
        "the upstream stream is dropped",
        Duration::from_secs(10),
        || state.stream_cancelled.load(Ordering::SeqCst),
    )
    .await;
    let gw_state = gw.state.clone();
    eventually(
        "the in-flight gauge returns to zero",
        Duration::from_secs(10),
        || gw_state.metrics().in_flight.get() == 0,
    )
    .await;
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="499",tier="budget"}"#,
        1.0,
    );
}

#[tokio::test]
async fn failure_before_the_first_byte_falls_back_like_any_request() {
    let mock = Mock::start().await;
    // No retries within the tier, so the first failure moves the stream on.
    let gw = Gateway::start(&without_retries(&config_yaml(&mock.url(), ""))).await;
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 503,
            body: json!({"error": {"message": "busy"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &stream_body("auto", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert_eq!(content(&read_events(resp).await), "Hello from mock");
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (1, 1)
    );

    // No fallback left: the error is an ordinary JSON error response, status included.
    mock.on(
        "strong-up",
        Reply::Json {
            status: 400,
            body: json!({"error": {"message": "bad temperature", "param": "temperature"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &stream_body("premium", None)).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["param"], "temperature");
}

#[tokio::test]
async fn failure_after_bytes_were_sent_ends_with_an_error_event() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let events = vec![
        chunk(
            "strong-up",
            json!({"role": "assistant", "content": "Partial"}),
            None,
        ),
        "this is not json".to_string(),
    ];
    mock.on("strong-up", Reply::Stream { events, gate: None });
    let resp = post(&gw, &stream_body("premium", None)).await;
    assert_eq!(resp.status(), 200);
    let events = read_events(resp).await;
    assert_eq!(content(&events[..1]), "Partial");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    assert!(
        !events.contains(&"[DONE]".to_string()),
        "a broken stream must not look complete"
    );
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="strong",status="502",tier="premium"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="server_error",model="strong",reason="invalid_response"}"#,
        1.0,
    );
}

/// An Anthropic upstream behind the gateway: an OpenAI client streams and calls tools through it.
#[tokio::test]
async fn anthropic_upstream_end_to_end() {
    use axum::response::IntoResponse;
    let seen: Arc<std::sync::Mutex<Vec<(http::HeaderMap, Value)>>> = Arc::default();
    let rec = seen.clone();
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |headers: http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let rec = rec.clone();
            async move {
                let stream = body["stream"] == true;
                rec.lock().unwrap().push((headers, body));
                if !stream {
                    return axum::Json(json!({
                        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                        "content": [{"type": "text", "text": "Let me check."},
                                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}],
                        "stop_reason": "tool_use", "stop_sequence": null,
                        "usage": {"input_tokens": 20, "output_tokens": 9}
                    }))
                    .into_response();
                }
                let events = [
                    ("message_start", json!({"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}})),
                    ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                    ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})),
                    ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}})),
                    ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                    ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2}})),
                    ("message_stop", json!({"type": "message_stop"})),
                ];
                let body: String = events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect();
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let yaml = format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  claude: {{ kind: anthropic, base_url: "http://{addr}", api_key: sk-ant-test-key-999 }}
models:
  - {{ name: sonnet, provider: claude, model: claude-test, max_output_tokens: 1000 }}
tiers:
  mid: {{ models: [sonnet] }}
routing: {{ default: mid }}
"#
    );
    let gw = Gateway::start(&yaml).await;
    let req = json!({
        "model": "auto",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto"
    });
    let resp = post(&gw, &req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "sonnet");
    let body: Value = resp.json().await.unwrap();
    let msg = &body["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check.");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(
        serde_json::from_str::<Value>(
            msg["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        )
        .unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["prompt_tokens"], 20);
    {
        let seen = seen.lock().unwrap();
        let (headers, sent) = &seen[0];
        assert_eq!(headers["x-api-key"], "sk-ant-test-key-999");
        assert_eq!(sent["system"], "Be terse.");
        assert_eq!(sent["max_tokens"], 1000);
        assert_eq!(
            sent["messages"],
            json!([{"role": "user", "content": "Weather in Oslo?"}])
        );
        assert_eq!(
            sent["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(sent["tool_choice"], json!({"type": "auto"}));
    }
    let resp = post(&gw, &json!({"model": "sonnet", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 200);
    let events = read_events(resp).await;
    assert_eq!(content(&events), "Hi there");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 12);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 2);
}

fn with_stream_timeouts(mock: &Mock) -> String {
    config_yaml(&mock.url(), "").replace(
        "headers: { OpenAI-Organization: org-test }",
        "headers: { OpenAI-Organization: org-test }\n    timeout: 400ms\n    stream_idle_timeout: 300ms",
    )
}

#[tokio::test]
async fn a_stream_that_never_starts_times_out_and_falls_back() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&without_retries(&with_stream_timeouts(&mock))).await;
    // Headers are sent, then nothing: the first chunk never comes.
    let _never_released = mock.held_stream("cheap-up", 0);
    let resp = post(&gw, &stream_body("auto", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert_eq!(content(&read_events(resp).await), "Hello from mock");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="timeout",to_tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_stream_that_stalls_midway_ends_with_a_timeout_event() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&with_stream_timeouts(&mock)).await;
    let _never_released = mock.held_stream("strong-up", 2);
    let resp = post(&gw, &stream_body("premium", None)).await;
    assert_eq!(resp.status(), 200);
    let events = tokio::time::timeout(Duration::from_secs(10), read_events(resp))
        .await
        .expect("the stall was not cut off");
    assert_eq!(content(&events[..2]), "Hello");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "timeout");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sent nothing for 0.3s"),
        "{last}"
    );
    let state = mock.state.clone();
    eventually(
        "the stalled upstream is released",
        Duration::from_secs(10),
        || state.stream_cancelled.load(Ordering::SeqCst),
    )
    .await;
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="strong",status="504",tier="premium"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="timeout",model="strong",reason="timeout"}"#,
        1.0,
    );
}

/// `config_yaml` with `providers.up.stream_end` set.
fn with_stream_end(mock: &Mock, rule: &str) -> String {
    config_yaml(&mock.url(), "").replace(
        "headers: { OpenAI-Organization: org-test }",
        &format!("headers: {{ OpenAI-Organization: org-test }}\n    stream_end: {rule}"),
    )
}

/// The events of a whole answer (finish_reason and usage included) without the final `[DONE]`,
/// as some OpenAI-compatible servers send them.
fn without_done(model: &str) -> Reply {
    let mut events = stream_events(model, true);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"));
    Reply::Stream { events, gate: None }
}

#[tokio::test]
async fn a_stream_that_ends_cleanly_before_its_final_chunk_is_a_cut_off_answer() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    mock.on("strong-up", cut_stream("strong-up", 3));
    let resp = post(&gw, &stream_body("premium", Some(true))).await;
    assert_eq!(resp.status(), 200);
    let events = read_events(resp).await;
    assert_eq!(content(&events[..3]), "Hello from");
    assert!(
        !events.contains(&"[DONE]".to_string()),
        "a cut-off answer must not look complete: {events:?}"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "cut_off");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cut off"),
        "{last}"
    );
    // A failure on the deployment's breaker, and a stream error with its reason.
    let all: Value = reqwest::get(gw.url("/admin/deployments"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let strong = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deployment"] == "strong")
        .unwrap();
    assert_eq!(strong["window"]["failures"], 1, "{strong}");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="server_error",model="strong",reason="cut_off"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_provider_errors_total{class="server_error",model="strong"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="strong",status="502",tier="premium"}"#,
        1.0,
    );
    // No usage arrived: the streamed text is billed, marked estimated.
    assert_metric(
        &text,
        r#"switchyard_cost_estimated_total{model="strong",tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_final_finish_reason_is_enough_unless_the_provider_requires_done() {
    // Default (`stream_end: finish_reason`): a server that never sends [DONE] still finishes
    // each answer with a finish_reason, so the answer is complete and the client gets [DONE].
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    mock.on("strong-up", without_done("strong-up"));
    let events = read_events(post(&gw, &stream_body("premium", Some(true))).await).await;
    assert_eq!(content(&events), "Hello from mock");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="strong",status="200",tier="premium"}"#,
        1.0,
    );
    assert!(!text.contains("switchyard_stream_errors_total{"), "{text}");

    // `stream_end: done`: only [DONE] ends a stream, so the same answer is reported as cut off.
    let mock = Mock::start().await;
    let gw = Gateway::start(&with_stream_end(&mock, "done")).await;
    mock.on("strong-up", without_done("strong-up"));
    let events = read_events(post(&gw, &stream_body("premium", Some(true))).await).await;
    assert_eq!(content(&events[..events.len() - 1]), "Hello from mock");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "cut_off", "{last}");
    assert!(!events.contains(&"[DONE]".to_string()));
    // ...while a stream that does end with [DONE] is complete under it too.
    let events = read_events(post(&gw, &stream_body("premium", None)).await).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="server_error",model="strong",reason="cut_off"}"#,
        1.0,
    );

    // `stream_end: eof`: any clean end is complete (for servers that send neither marker);
    // a cut-off answer then goes unnoticed, which is why it is not the default.
    let mock = Mock::start().await;
    let gw = Gateway::start(&with_stream_end(&mock, "eof")).await;
    mock.on("strong-up", cut_stream("strong-up", 3));
    let events = read_events(post(&gw, &stream_body("premium", None)).await).await;
    assert_eq!(content(&events), "Hello from");
    assert_eq!(events.last().unwrap(), "[DONE]");

    // Not a value the key takes: a config error naming the key.
    let err = switchyard::config::Config::from_yaml(&with_stream_end(&mock, "never"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("stream_end"), "{err}");
}

#[tokio::test]
async fn a_stream_that_ends_before_its_first_chunk_falls_back() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&without_retries(&config_yaml(&mock.url(), ""))).await;
    // Headers, then a clean end with nothing at all: nothing reached the client yet.
    mock.on(
        "cheap-up",
        Reply::Stream {
            events: vec![],
            gate: None,
        },
    );
    let resp = post(&gw, &stream_body("auto", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert_eq!(resp.headers()["x-switchyard-fallbacks"], "budget->premium");
    let events = read_events(resp).await;
    assert_eq!(content(&events), "Hello from mock");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="server_error",to_tier="premium"}"#,
        1.0,
    );
    assert!(!text.contains("switchyard_stream_errors_total{"));
}
