#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Anthropic adapter against a mock Messages API on loopback: what the mock received (path,
//! headers, translated body) and what the adapter made of the answer.

mod common;

use common::{Mock, Reply, sse_named};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use switchyard::config::Config;
use switchyard::openai::{ChatRequest, Usage};
use switchyard::providers::{Call, ErrorKind, Provider, ProviderError};

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Json {
        status,
        body,
        headers: vec![],
    }
}

fn sse_reply(events: &[(&str, Value)]) -> Reply {
    Reply::Raw {
        status: 200,
        content_type: "text/event-stream",
        body: sse_named(events),
    }
}

/// The shared mock upstream with `replies` queued in order, and the adapter pointed at it.
async fn start(replies: Vec<Reply>, provider_extra: &str) -> (Provider, Mock) {
    let mock = Mock::start().await;
    for r in replies {
        mock.on("*", r);
    }
    let addr = mock.addr;
    let yaml = format!(
        "providers:
  claude:
    kind: anthropic
    base_url: http://{addr}/
    api_key: sk-ant-test-key
{provider_extra}
models:
  - name: sonnet
    provider: claude
    model: claude-sonnet-4-5
tiers:
  premium:
    models: [sonnet]
routing:
  default: premium
"
    );
    let config = Config::from_yaml(&yaml, "test.yaml").unwrap();
    let provider = Provider::build(
        "claude",
        &config.providers["claude"],
        reqwest::Client::new(),
    )
    .unwrap();
    (provider, mock)
}

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn call(req: &ChatRequest) -> Call<'_> {
    Call {
        request: req,
        model: "claude-sonnet-4-5",
        max_output_tokens: Some(2048),
        stream_usage: true,
    }
}

fn hello() -> ChatRequest {
    request(json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}
        ]
    }))
}

fn message(content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({
        "id": "msg_test_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage
    })
}

#[tokio::test]
async fn plain_text() {
    let answer = message(
        json!([{"type": "text", "text": "Hello!"}]),
        "end_turn",
        json!({"input_tokens": 12, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0, "output_tokens": 4}),
    );
    let (provider, mock) = start(vec![json_reply(200, answer)], "").await;
    let req = request(json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}
        ],
        "temperature": 0.3,
        "stop": ["\n\nHuman:"],
        "user": "user-7",
        "metadata": {"task_type": "chat"}
    }));
    let resp = provider.chat(&call(&req)).await.unwrap();

    {
        let received = mock.requests();
        assert_eq!(received.len(), 1);
        let r = &received[0];
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.headers["x-api-key"], "sk-ant-test-key");
        assert_eq!(r.headers["anthropic-version"], "2023-06-01");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(
            r.body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 2048,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Say hello"}],
                "stop_sequences": ["\n\nHuman:"],
                "temperature": 0.3,
                "metadata": {"user_id": "user-7"}
            })
        );
    }

    assert_eq!(
        resp.usage,
        Some(Usage {
            prompt_tokens: 42,
            completion_tokens: 4,
            cached_tokens: 30
        })
    );
    let b = &resp.body;
    assert_eq!(b["id"], "msg_test_1");
    assert_eq!(b["object"], "chat.completion");
    assert!(b["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(b["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(
        b["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        b["usage"],
        json!({"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46, "prompt_tokens_details": {"cached_tokens": 30}})
    );
}

#[tokio::test]
async fn configured_version_and_headers_are_sent() {
    let answer = message(
        json!([{"type": "text", "text": "ok"}]),
        "end_turn",
        json!({"input_tokens": 1, "output_tokens": 1}),
    );
    let extra = "    anthropic_version: \"2099-01-01\"\n    headers:\n      anthropic-beta: prompt-caching-2024-07-31";
    let (provider, mock) = start(vec![json_reply(200, answer)], extra).await;
    provider.chat(&call(&hello())).await.unwrap();
    let received = mock.requests();
    assert_eq!(received[0].headers["anthropic-version"], "2099-01-01");
    assert_eq!(
        received[0].headers["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
}

#[tokio::test]
async fn tools_round_trip() {
    let tool_answer = message(
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}
        ]),
        "tool_use",
        json!({"input_tokens": 300, "output_tokens": 40}),
    );
    let final_answer = message(
        json!([{"type": "text", "text": "18 degrees in Paris."}]),
        "end_turn",
        json!({"input_tokens": 360, "output_tokens": 9}),
    );
    let (provider, mock) = start(
        vec![json_reply(200, tool_answer), json_reply(200, final_answer)],
        "",
    )
    .await;

    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}
    }}]);
    let first = request(json!({
        "model": "auto",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": tools,
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_tokens": 500
    }));
    let resp = provider.chat(&call(&first)).await.unwrap();
    let choice = &resp.body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    let tool_calls = choice["message"]["tool_calls"].clone();
    assert_eq!(
        tool_calls,
        json!([{"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}])
    );

    // The client answers the call the OpenAI way and sends the conversation back.
    let second = request(json!({
        "model": "auto",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C, sunny"}
        ],
        "tools": tools
    }));
    let resp = provider.chat(&call(&second)).await.unwrap();
    assert_eq!(
        resp.body["choices"][0]["message"]["content"],
        "18 degrees in Paris."
    );
    assert_eq!(resp.body["choices"][0]["finish_reason"], "stop");
    assert_eq!(resp.usage.unwrap().prompt_tokens, 360);

    let received = mock.requests();
    assert_eq!(received.len(), 2);
    let expected_tools = json!([{
        "name": "get_weather", "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}
    }]);
    assert_eq!(
        received[0].body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": expected_tools,
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })
    );
    assert_eq!(
        received[1].body["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C, sunny"}]}
        ])
    );
    assert_eq!(received[1].body["max_tokens"], 2048);
    assert!(received[1].body.get("tool_choice").is_none());
}

fn streamed_events() -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_stream_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 50, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 5, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Looking"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " it up."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\": \"ru"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "st\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 27}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test]
async fn streaming_text_and_tool_call_deltas() {
    let (provider, mock) = start(vec![sse_reply(&streamed_events())], "").await;
    let mut req = hello();
    req.stream = Some(true);
    let stream = provider.chat_stream(&call(&req)).await.unwrap();
    let chunks: Vec<Value> = stream.map(|c| c.unwrap()).collect().await;

    {
        let received = mock.requests();
        assert_eq!(received[0].path, "/v1/messages");
        assert_eq!(received[0].body["stream"], true);
        assert_eq!(received[0].body["system"], "Be brief.");
    }

    let created = chunks[0]["created"].clone();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "msg_stream_1", "object": "chat.completion.chunk", "created": created, "model": "claude-sonnet-4-5-20250929",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let expected = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Looking"}), Value::Null),
        chunk(json!({"content": " it up."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "toolu_9", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\": \"ru"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "st\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "msg_stream_1", "object": "chat.completion.chunk", "created": created, "model": "claude-sonnet-4-5-20250929",
               "choices": [], "usage": {"prompt_tokens": 65, "completion_tokens": 27, "total_tokens": 92,
                                        "prompt_tokens_details": {"cached_tokens": 10}}}),
    ];
    assert_eq!(chunks, expected);
}

fn assert_error(e: &ProviderError, kind: ErrorKind, status: Option<u16>) {
    assert_eq!((e.kind, e.status), (kind, status), "{e}");
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let body = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}});
    let reply = Reply::Json {
        status: 429,
        body,
        headers: vec![("retry-after", "7".into())],
    };
    let (provider, _mock) = start(vec![reply], "").await;
    let e = provider.chat(&call(&hello())).await.unwrap_err();
    assert_error(&e, ErrorKind::RateLimit, Some(429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.message.contains("rate limit"));
}

#[tokio::test]
async fn overloaded_is_a_rate_limit_for_chat_and_stream() {
    let body =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let (provider, _mock) = start(
        vec![json_reply(529, body.clone()), json_reply(529, body)],
        "",
    )
    .await;
    let e = provider.chat(&call(&hello())).await.unwrap_err();
    assert_error(&e, ErrorKind::RateLimit, Some(529));
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));
    // A non-2xx before the stream starts fails the call itself, not the first stream item.
    let e = provider.chat_stream(&call(&hello())).await.err().unwrap();
    assert_error(&e, ErrorKind::RateLimit, Some(529));
}

#[tokio::test]
async fn prompt_too_long_is_a_context_window_error() {
    let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 215000 tokens > 200000 maximum"}});
    let (provider, _mock) = start(vec![json_reply(400, body)], "").await;
    let e = provider.chat(&call(&hello())).await.unwrap_err();
    assert_error(&e, ErrorKind::ContextWindow, Some(400));
    // Not retried on the same tier by default: only a bigger window helps.
    let policy = switchyard::dispatch::policy::Policies::default().for_kind(e.kind);
    assert_eq!(policy.retries, 0);
}

#[tokio::test]
async fn garbage_success_bodies_are_invalid_responses() {
    let garbage = Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: "<html>oops".into(),
    };
    let not_a_message = json_reply(200, json!({"choices": []}));
    let (provider, _mock) = start(vec![garbage, not_a_message], "").await;
    let e = provider.chat(&call(&hello())).await.unwrap_err();
    assert_error(&e, ErrorKind::InvalidResponse, None);
    let e = provider.chat(&call(&hello())).await.unwrap_err();
    assert_error(&e, ErrorKind::InvalidResponse, None);
}

#[tokio::test]
async fn error_event_mid_stream_ends_the_stream() {
    let mut events = streamed_events()[..4].to_vec();
    events.push((
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let (provider, _mock) = start(vec![sse_reply(&events)], "").await;
    let stream = provider.chat_stream(&call(&hello())).await.unwrap();
    let items: Vec<Result<Value, ProviderError>> = stream.collect().await;
    assert_eq!(items.len(), 3, "role chunk, one text chunk, then the error");
    assert_eq!(
        items[1].as_ref().unwrap()["choices"][0]["delta"]["content"],
        "Looking"
    );
    let e = items[2].as_ref().unwrap_err();
    assert_error(e, ErrorKind::RateLimit, None);
    assert_eq!(e.message, "Overloaded");
}

#[tokio::test]
async fn untranslatable_requests_never_reach_the_provider() {
    let (provider, mock) = start(vec![], "").await;
    let req =
        request(json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "n": 3}));
    let e = provider.chat(&call(&req)).await.unwrap_err();
    assert_error(&e, ErrorKind::BadRequest, None);
    assert_eq!(e.param.as_deref(), Some("n"));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn stream_that_never_starts_times_out() {
    let (provider, _mock) = start(vec![Reply::Hang], "    timeout: 200ms").await;
    let e = provider.chat_stream(&call(&hello())).await.err().unwrap();
    assert_error(&e, ErrorKind::Timeout, None);
}

/// The shared mock's default answers on the Messages path are in the Messages shape, so a
/// gateway test can put an Anthropic deployment behind the same mock as an OpenAI one.
#[tokio::test]
async fn the_gateway_answers_openai_clients_from_a_messages_upstream() {
    let mock = Mock::start().await;
    let yaml = format!(
        "server: {{ listen: \"127.0.0.1:0\" }}\nproviders:\n  claude: {{ kind: anthropic, base_url: \"http://{}/\", api_key: sk-ant-test-key }}\nmodels:\n  - {{ name: sonnet, provider: claude, model: claude-sonnet-4-5 }}\ntiers:\n  premium: {{ models: [sonnet] }}\nrouting: {{ default: premium }}\n",
        mock.addr
    );
    let gw = common::Gateway::start(&yaml).await;
    let resp = common::post(&gw, &common::chat_body("auto", "hi")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "answer from claude-sonnet-4-5"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 7);

    let mut body = common::chat_body("auto", "hi");
    body["stream"] = json!(true);
    let text = common::post(&gw, &body).await.text().await.unwrap();
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(content, "Hello from mock", "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/messages", "/v1/messages"]);
}
