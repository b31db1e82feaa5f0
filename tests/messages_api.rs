//! `POST /v1/messages` and `/v1/messages/count_tokens` through the real server, against the mock
//! upstream in both wire formats: what the client gets in Anthropic's shape (messages, the event
//! sequence of a stream, errors), what each upstream received (a translation for the
//! OpenAI-compatible one, the client's own request for the Anthropic one), and that the bill,
//! the headers, metrics, spend rows and fallbacks are the ones a chat request gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a spend row may take to be written (it is batched and flushed in the background).
const DEADLINE: Duration = Duration::from_secs(10);

/// `cheap` (budget) and `strong` (premium) on the OpenAI-compatible mock, `sonnet` (tier
/// `claude`) on the Anthropic one; two `claude-*` aliases are routed, one of them by a rule.
fn yaml(mock: &Mock, extra_server: &str, extra: &str) -> String {
    let addr = mock.addr;
    format!(
        r#"
server:
  listen: "127.0.0.1:0"
  drain_timeout: 5s
{extra_server}
providers:
  up: {{ kind: openai, base_url: "http://{addr}/v1", api_key: "{PROVIDER_KEY}" }}
  claude: {{ kind: anthropic, base_url: "http://{addr}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: cheap, provider: up, model: cheap-up, price: {{ input: 0.15, output: 0.6 }} }}
  - {{ name: strong, provider: up, model: strong-up, price: {{ input: 5, output: 15 }} }}
  - {{ name: sonnet, provider: claude, model: claude-sonnet-up, price: {{ input: 3, output: 15 }} }}
tiers:
  budget: {{ models: [cheap] }}
  premium: {{ models: [strong] }}
  claude: {{ models: [sonnet] }}
routing:
  default: budget
  counterfactual: premium
  aliases: [claude-haiku-4-5, claude-opus-4-1]
  rules:
    - {{ name: opus, when: {{ model: [claude-opus-4-1] }}, tier: claude }}
    - {{ name: reasoning, when: {{ regex: '(?i)\bprove\b' }}, tier: premium }}
    - {{ name: review, when: {{ task_type: [review] }}, tier: premium }}
fallbacks:
  budget: [premium]
reliability:
  retries: 0
  cooldown: {{ enabled: false }}
{extra}"#
    )
}

async fn setup() -> (Mock, Gateway) {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock, "", "")).await;
    (mock, gw)
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]})
}

async fn send(gw: &Gateway, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The `(event, data)` pairs of an Anthropic event stream.
fn events_of(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line in {e:?}"));
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data line in {e:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "the data's type names the event");
            (name.to_string(), data)
        })
        .collect()
}

fn names(ev: &[(String, Value)]) -> Vec<&str> {
    ev.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(ev: &[(String, Value)]) -> String {
    ev.iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn answers_in_anthropic_shape_from_an_openai_upstream() {
    let (mock, gw) = setup().await;
    let resp = send(
        &gw,
        &json!({
            "model": "auto", "max_tokens": 64,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": [{"type": "text", "text": "and again"}]}
            ],
            "stop_sequences": ["END"], "temperature": 0.3, "top_k": 4,
            "metadata": {"user_id": "u-1"}
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-tier"), "budget");
    assert_eq!(header(&resp, "x-switchyard-model"), "cheap");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "id": "msg_chatcmpl-mock", "type": "message", "role": "assistant", "model": "cheap-up",
            "content": [{"type": "text", "text": "answer from cheap-up"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 8, "output_tokens": 7, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 0}
        })
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(
        reqs[0].body,
        json!({
            "model": "cheap-up",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": [{"type": "text", "text": "and again"}]}
            ],
            "max_tokens": 64, "stop": ["END"], "temperature": 0.3, "user": "u-1"
        }),
        "OpenAI's names, no top_k or metadata (OpenAI rejects them)"
    );
}

#[tokio::test]
async fn an_anthropic_upstream_receives_the_request_as_sent() {
    let (mock, gw) = setup().await;
    let sent = json!({
        "model": "claude-opus-4-1", "max_tokens": 2000,
        "system": [{"type": "text", "text": "Policy", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}, "citations": {"enabled": true}},
            {"type": "text", "text": "Summarize it"}
        ]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "top_k": 5,
        "metadata": {"user_id": "u-9", "task_type": "summary"},
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}
    });
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-tier"), "claude");
    assert_eq!(header(&resp, "x-switchyard-route"), "rules:opus");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "msg_mock");
    assert_eq!(body["model"], "claude-sonnet-up");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "answer from claude-sonnet-up"}])
    );
    assert_eq!(body["usage"]["input_tokens"], 11);
    assert_eq!(body["usage"]["output_tokens"], 7);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].headers["x-api-key"], PROVIDER_KEY);
    assert_eq!(
        reqs[0].headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    let mut want = sent;
    want["model"] = json!("claude-sonnet-up");
    want["metadata"] = json!({"user_id": "u-9"});
    assert_eq!(
        reqs[0].body, want,
        "only the model and the routing hint differ"
    );
}

/// The same request as chat and as Messages: the same tier, route, cost, counterfactual, metrics
/// and spend rows.
#[tokio::test]
async fn costs_headers_metrics_and_spend_rows_are_those_of_chat() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("spend.db").display());
    let spend = format!(
        "spend_log:\n  url: \"{url}\"\n  table: spend\n  batch_size: 1\n  flush_interval: 20ms\n"
    );
    let gw = Gateway::start(&yaml(&mock, "", &spend)).await;
    let before = gw.metrics().await;
    let chat = post(&gw, &chat_body("auto", "hello")).await;
    let messages = send(&gw, &hello("auto")).await;
    for h in [
        "x-switchyard-tier",
        "x-switchyard-model",
        "x-switchyard-route",
        "x-switchyard-attempts",
        "x-switchyard-cost-usd",
        "x-switchyard-counterfactual-usd",
    ] {
        assert_eq!(header(&chat, h), header(&messages, h), "{h}");
    }
    let cost: f64 = header(&messages, "x-switchyard-cost-usd").parse().unwrap();
    assert!(
        (cost - (11.0 * 0.15 + 7.0 * 0.6) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    let after = gw.metrics().await;
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        2.0,
    );
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_cost_usd_total{model="cheap",tier="budget"}"#,
        2.0 * cost,
    );
    let m = gw.state.metrics().spend_written.clone();
    wait_for("two spend rows", DEADLINE, || {
        let n = m.get();
        async move { if n == 2 { Ok(()) } else { Err(n) } }
    })
    .await;
    let report: Value = reqwest::get(gw.url("/admin/spend?since=1h"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["total"]["requests"], 2, "{report}");
    assert_eq!(report["total"]["input_tokens"], 22);
    assert!((report["total"]["cost_usd"].as_f64().unwrap() - 2.0 * cost).abs() < 1e-12);
}

#[tokio::test]
async fn falls_back_like_chat_and_maps_upstream_errors() {
    let (mock, gw) = setup().await;
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "down", "type": "server_error"}}),
            headers: vec![],
        },
    );
    let resp = send(&gw, &hello("auto")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget->premium");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "answer from strong-up");

    // A rate limit with no fallback left: Anthropic's 429 and error type, Retry-After kept.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
            headers: vec![("retry-after", "3".into())],
        },
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-switchyard-no-fallback", "true")
        .json(&hello("cheap"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slow down")
    );
}

/// Routed requests cascade as chat requests do: a cut-off cheap answer is escalated, and the
/// client sees the stronger tier's answer.
#[tokio::test]
async fn a_truncated_cheap_answer_is_escalated_by_the_cascade() {
    let mock = Mock::start().await;
    let table = yaml(&mock, "", "").replace(
        "  default: budget\n",
        "  default: budget\n  cascade: { from: budget, to: premium, escalate_on: [truncated] }\n",
    );
    let gw = Gateway::start(&table).await;
    let mut cut = completion("cheap-up", "half an ans");
    cut["choices"][0]["finish_reason"] = json!("length");
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 200,
            body: cut,
            headers: vec![],
        },
    );
    let resp = send(&gw, &hello("auto")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cascade"), "escalated:truncated");
    assert_eq!(header(&resp, "x-switchyard-tier"), "premium");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "answer from strong-up");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn streams_text_as_anthropic_events() {
    let (mock, gw) = setup().await;
    let mut body = hello("auto");
    body["stream"] = json!(true);
    let resp = send(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/event-stream");
    assert_eq!(header(&resp, "x-switchyard-tier"), "budget");
    let ev = events_of(&resp.text().await.unwrap());
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &ev[0].1["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "cheap-up");
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(text_of(&ev), "Hello from mock");
    let delta = &ev[7].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["input_tokens"], 11);
    assert_eq!(delta["usage"]["output_tokens"], 3);
    let up = &mock.requests()[0].body;
    assert_eq!(up["stream"], true);
    assert_eq!(up["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn streams_tool_calls_as_input_json_deltas() {
    let (mock, gw) = setup().await;
    let call = |delta: Value| chunk("cheap-up", json!({"tool_calls": [delta]}), None);
    mock.on(
        "cheap-up",
        Reply::Stream {
            events: vec![
                chunk("cheap-up", json!({"role": "assistant", "content": "Let me check."}), None),
                call(json!({"index": 0, "id": "call_7", "type": "function",
                            "function": {"name": "weather", "arguments": ""}})),
                call(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
                call(json!({"index": 0, "function": {"arguments": "\"Paris\"}"}})),
                chunk("cheap-up", json!({}), Some("tool_calls")),
                json!({"id": "x", "object": "chat.completion.chunk", "model": "cheap-up", "choices": [],
                       "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}})
                .to_string(),
                "[DONE]".into(),
            ],
            gate: None,
        },
    );
    let body = json!({
        "model": "auto", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "weather", "description": "Current weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "tool", "name": "weather"}
    });
    let ev = events_of(&send(&gw, &body).await.text().await.unwrap());
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        ev[5].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_7", "name": "weather", "input": {}}})
    );
    let json_text: String = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[9].1["usage"]["output_tokens"], 12);
    let up = &mock.requests()[0].body;
    assert_eq!(
        up["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    );
    assert_eq!(
        up["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
}

#[tokio::test]
async fn a_tool_round_trip_reaches_the_openai_upstream_as_tool_messages() {
    let (mock, gw) = setup().await;
    let body = json!({
        "model": "auto", "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]}
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}]
    });
    assert_eq!(send(&gw, &body).await.status(), 200);
    assert_eq!(
        mock.requests()[0].body["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "content": "18C", "tool_call_id": "toolu_1"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
        ])
    );
}

#[tokio::test]
async fn streams_from_an_anthropic_upstream() {
    let (mock, gw) = setup().await;
    let mut body = hello("claude-opus-4-1");
    body["stream"] = json!(true);
    let before = gw.metrics().await;
    let resp = send(&gw, &body).await;
    assert_eq!(header(&resp, "x-switchyard-tier"), "claude");
    let ev = events_of(&resp.text().await.unwrap());
    let sent: Vec<(String, Value)> = anthropic_stream_events("claude-sonnet-up")
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
    assert_eq!(ev, sent, "the upstream's events, as it sent them");
    assert_eq!(text_of(&ev), "Hello from mock");
    // Billed from the upstream's usage: 11 tokens in, 3 out, at sonnet's prices.
    let after = gw.metrics().await;
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_requests_total{model="sonnet",status="200",tier="claude"}"#,
        1.0,
    );
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_cost_usd_total{model="sonnet",tier="claude"}"#,
        (11.0 * 3.0 + 3.0 * 15.0) / 1e6,
    );
    let up = &mock.requests()[0];
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.body["stream"], true);
    assert_eq!(up.body["model"], "claude-sonnet-up");
}

/// Thinking blocks, signatures and the matched stop sequence have no place in the chat shape; a
/// Messages client still gets them from an Anthropic upstream, as the upstream sent them.
#[tokio::test]
async fn an_anthropic_upstreams_answer_reaches_the_client_whole() {
    let (mock, gw) = setup().await;
    let message = json!({
        "id": "msg_think", "type": "message", "role": "assistant", "model": "claude-sonnet-up",
        "content": [
            {"type": "thinking", "thinking": "Two and two.", "signature": "sig-1"},
            {"type": "text", "text": "4 STOP"}
        ],
        "stop_reason": "stop_sequence", "stop_sequence": "STOP",
        "usage": {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 5}
    });
    mock.on(
        "claude-sonnet-up",
        Reply::Json {
            status: 200,
            body: message.clone(),
            headers: vec![],
        },
    );
    let mut body = hello("claude-opus-4-1");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let resp = send(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), message);

    let events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-up", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Two and two."}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig-1"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "4"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    mock.on(
        "claude-sonnet-up",
        Reply::Raw {
            status: 200,
            content_type: "text/event-stream",
            body: sse_named(&events),
        },
    );
    body["stream"] = json!(true);
    let got = events_of(&send(&gw, &body).await.text().await.unwrap());
    let want: Vec<(String, Value)> = events
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let (mock, gw) = setup().await;
    mock.on("cheap-up", Reply::BrokenStream(3));
    let mut body = hello("auto");
    body["stream"] = json!(true);
    let resp = send(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let ev = events_of(&resp.text().await.unwrap());
    assert_eq!(names(&ev).first(), Some(&"message_start"));
    let (last, data) = ev.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(
        data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    assert!(!names(&ev).contains(&"message_stop"));
}

#[tokio::test]
async fn bad_input_gets_anthropic_errors_naming_the_field() {
    let (mock, gw) = setup().await;
    let raw = |body: &'static str| {
        reqwest::Client::new()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let check = |resp: reqwest::Response, status: u16, kind: &'static str, needle: &'static str| async move {
        assert_eq!(resp.status(), status, "{needle}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should name {needle}");
    };
    check(
        raw("{\"model\": ").await.unwrap(),
        400,
        "invalid_request_error",
        "JSON",
    )
    .await;
    check(raw("[1]").await.unwrap(), 400, "invalid_request_error", "").await;
    let mut v = hello("auto");
    v.as_object_mut().unwrap().remove("max_tokens");
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "max_tokens",
    )
    .await;
    let mut v = hello("auto");
    v["max_tokens"] = json!("ten");
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "max_tokens",
    )
    .await;
    let mut v = hello("auto");
    v.as_object_mut().unwrap().remove("messages");
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "messages",
    )
    .await;
    let mut v = hello("auto");
    v["messages"][0]["role"] = json!("robot");
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "messages[0].role",
    )
    .await;
    let mut v = hello("auto");
    v["messages"][0]["content"] = json!(5);
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "messages[0].content",
    )
    .await;
    let mut v = hello("auto");
    v["tool_choice"] = json!({"type": "sometimes"});
    check(
        send(&gw, &v).await,
        400,
        "invalid_request_error",
        "tool_choice",
    )
    .await;
    check(
        send(&gw, &hello("gpt-9")).await,
        404,
        "not_found_error",
        "gpt-9",
    )
    .await;
    assert_eq!(mock.calls(), 0, "nothing bad reached an upstream");
}

#[tokio::test]
async fn accepts_the_gateway_key_as_x_api_key_or_bearer() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock, "  api_keys: [sk-gw-key-123456]", "")).await;
    let client = reqwest::Client::new();
    let go = |h: Option<(&'static str, &'static str)>| {
        let mut r = client.post(gw.url("/v1/messages")).json(&hello("auto"));
        if let Some((k, v)) = h {
            r = r.header(k, v);
        }
        r.send()
    };
    let resp = go(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-api-key")
    );
    let resp = go(Some(("x-api-key", "sk-wrong-key-000000")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );
    assert_eq!(
        go(Some(("x-api-key", "sk-gw-key-123456")))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        go(Some(("authorization", "Bearer sk-gw-key-123456")))
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = client
        .post(gw.url("/v1/messages/count_tokens"))
        .json(&hello("auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "count_tokens needs the key too");
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn count_tokens_uses_the_gateways_tokenizer() {
    let (mock, gw) = setup().await;
    let count = |body: Value| {
        let url = gw.url("/v1/messages/count_tokens");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"model": "claude-haiku-4-5", "system": "Be brief.",
                      "messages": [{"role": "user", "content": "hello there, how are you?"}]});
    let resp = count(body).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    // The same conversation as a chat request, counted by the library.
    let chat: switchyard::openai::ChatRequest =
        serde_json::from_value(json!({"model": "auto", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there, how are you?"}
        ]}))
        .unwrap();
    assert_eq!(
        got,
        json!({"input_tokens": switchyard::tokens::estimate_prompt(&chat)})
    );
    let resp =
        count(json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    let resp = count(json!({"model": "auto"})).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );
    assert_eq!(mock.calls(), 0, "counting calls no upstream");
}

/// A virtual key works as `x-api-key`, with its rate limit and budget: Anthropic's 429 and 402
/// error types, the key's headers on the answer.
#[tokio::test]
async fn virtual_keys_limit_messages_requests_like_chat() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("keys.db").display());
    let server = "  api_keys: [\"sk-static-client-0001\"]\n  admin_keys: [\"sk-admin-key-0002\"]";
    let gw = Gateway::start(&yaml(
        &mock,
        server,
        &format!("keys: {{ database: \"{db}\" }}\n"),
    ))
    .await;
    let issue = |body: Value| {
        let url = gw.url("/admin/keys");
        async move {
            let v: Value = reqwest::Client::new()
                .post(url)
                .bearer_auth("sk-admin-key-0002")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["key"].as_str().unwrap().to_string()
        }
    };
    let as_key = |key: String| {
        let url = gw.url("/v1/messages");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", key)
                .json(&hello("auto"))
                .send()
                .await
                .unwrap()
        }
    };
    let limited = issue(json!({"name": "one-a-minute", "rpm": 1})).await;
    let r = as_key(limited.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    let r = as_key(limited).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
    let broke = issue(json!({"name": "broke", "budget_usd": 0})).await;
    let r = as_key(broke).await;
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error");
    assert_eq!(mock.calls(), 1);
}
