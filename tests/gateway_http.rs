//! The HTTP surface against a mock OpenAI-compatible upstream: routes, model names, routing,
//! response headers, what the upstream received, bad input and provider errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

async fn setup() -> (Mock, Gateway) {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    (mock, gw)
}

#[tokio::test]
async fn routes_answer_with_and_without_v1_prefix() {
    let (mock, gw) = setup().await;
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let resp = reqwest::Client::new()
            .post(gw.url(path))
            .json(&chat_body("auto", "hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "answer from cheap-up"
        );
    }
    assert_eq!(mock.requests().len(), 2);
    for path in ["/v1/models", "/models"] {
        let body: Value = reqwest::get(gw.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["object"], "list");
        let ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["auto", "budget", "premium", "cheap", "strong"]);
        assert!(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["object"] == "model")
        );
    }
    let one: Value = reqwest::get(gw.url("/v1/models/strong"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "strong");
    assert_eq!(one["owned_by"], "up");
    let missing = reqwest::get(gw.url("/v1/models/org/nope")).await.unwrap();
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found",
        "ids may contain slashes"
    );
    let missing = reqwest::get(gw.url("/v1/models/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);

    let live = reqwest::get(gw.url("/health/live")).await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = reqwest::get(gw.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        2.0,
    );

    let unknown = reqwest::get(gw.url("/v2/whatever")).await.unwrap();
    assert_eq!(unknown.status(), 404);
    let err: Value = unknown.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v2/whatever")
    );
    let wrong_method = reqwest::get(gw.url("/v1/chat/completions")).await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.json::<Value>().await.unwrap()["error"]["message"].is_string());
}

#[tokio::test]
async fn model_names_select_router_tier_or_model_and_unknown_is_404() {
    let (mock, gw) = setup().await;
    let cases = [
        (
            "auto",
            "please prove this lemma",
            "premium",
            "strong",
            "rules:reasoning",
            "strong-up",
        ),
        (
            "auto",
            "hello there",
            "budget",
            "cheap",
            "default",
            "cheap-up",
        ),
        (
            "premium",
            "hello",
            "premium",
            "strong",
            "tier:premium",
            "strong-up",
        ),
        (
            "cheap",
            "prove it",
            "budget",
            "cheap",
            "model:cheap",
            "cheap-up",
        ),
    ];
    for (model, prompt, tier, served, route, upstream) in cases {
        let resp = post(&gw, &chat_body(model, prompt)).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["x-switchyard-tier"], tier, "{model} {prompt}");
        assert_eq!(h["x-switchyard-model"], served);
        assert_eq!(h["x-switchyard-route"], route);
        assert_eq!(mock.requests().last().unwrap().body["model"], upstream);
    }
    let resp = post(&gw, &chat_body("gpt-5-ultra", "hi")).await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "model_not_found");
    assert_eq!(err["error"]["param"], "model");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("gpt-5-ultra") && msg.contains("auto, budget, premium, cheap, strong"),
        "{msg}"
    );
    assert_eq!(
        mock.requests().len(),
        4,
        "an unknown model must not reach the upstream"
    );
}

#[tokio::test]
async fn rules_on_header_and_task_type_metadata() {
    let (mock, gw) = setup().await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-tier-hint", "Premium")
        .json(&chat_body("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-switchyard-route"], "rules:hinted");

    let body = json!({"model": "auto", "metadata": {"task_type": "extraction"},
                      "messages": [{"role": "user", "content": "get the dates"}]});
    let resp = post(&gw, &body).await;
    assert_eq!(resp.headers()["x-switchyard-route"], "rules:extraction");
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    // metadata steers the gateway; OpenAI rejects it without `store`, so it is not forwarded.
    assert!(
        mock.requests()
            .last()
            .unwrap()
            .body
            .get("metadata")
            .is_none()
    );
    // With `store: true` it labels the stored completion, which is what OpenAI uses it for.
    let stored = json!({"model": "auto", "store": true, "metadata": {"task_type": "extraction"},
                        "messages": [{"role": "user", "content": "get the dates"}]});
    post(&gw, &stored).await;
    assert_eq!(
        mock.requests().last().unwrap().body["metadata"],
        json!({"task_type": "extraction"})
    );

    // Rules read the last user message, not earlier turns.
    let body = json!({"model": "auto", "messages": [
        {"role": "user", "content": "prove it"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "thanks"}]});
    assert_eq!(
        post(&gw, &body).await.headers()["x-switchyard-route"],
        "default"
    );
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_route_decisions_total{layer="rules",tier="premium"}"#,
        3.0,
    );
    assert_metric(
        &text,
        r#"switchyard_route_decisions_total{layer="default",tier="budget"}"#,
        1.0,
    );
}

#[tokio::test]
async fn upstream_receives_the_request_unchanged_but_for_model_and_auth() {
    let (mock, gw) = setup().await;
    let body = json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}], "name": "ann"}
        ],
        "temperature": 0.2,
        "seed": 42,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_object"},
        "a_vendor_field_from_the_future": {"nested": [1, 2, 3]}
    });
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("client-key-not-for-upstream")
        .header("x-request-id", "trace-abc-123")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let overhead: f64 = resp.headers()["x-switchyard-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["system_fingerprint"], "fp_mock",
        "unknown response fields pass through"
    );
    assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 3);

    let got = mock.requests().pop().unwrap();
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {PROVIDER_KEY}")
    );
    assert_eq!(got.headers["openai-organization"], "org-test");
    let mut expected = body.clone();
    expected["model"] = json!("cheap-up");
    assert_eq!(got.body, expected);

    // Without a client id, one is generated.
    let resp = post(&gw, &chat_body("auto", "hi")).await;
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_4xx() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "  max_body_bytes: 2048")).await;
    let client = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    let send = |body: String, ct: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases: Vec<(String, &str, u16, Option<&str>, &str)> = vec![
        (
            "{not json".into(),
            "application/json",
            400,
            None,
            "parse the JSON",
        ),
        (
            r#"{"model":"auto"}"#.into(),
            "application/json",
            400,
            Some("messages"),
            "missing field",
        ),
        (
            r#"{"model":"auto","messages":"hi"}"#.into(),
            "application/json",
            400,
            Some("messages"),
            "invalid type",
        ),
        (
            r#"{"model":7,"messages":[]}"#.into(),
            "application/json",
            400,
            Some("model"),
            "invalid type",
        ),
        (
            r#"{"model":"auto","messages":[{"role":"user","content":{"x":1}}]}"#.into(),
            "application/json",
            400,
            Some("messages[0].content"),
            "expected a string",
        ),
        (
            r#"{"model":"auto","messages":[{"content":"hi"}]}"#.into(),
            "application/json",
            400,
            Some("messages[0].role"),
            "missing field",
        ),
        (
            r#"{"model":"auto","messages":[]}"#.into(),
            "application/json",
            400,
            Some("messages"),
            "at least one",
        ),
        (
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#.into(),
            "text/plain",
            415,
            None,
            "application/json",
        ),
        (
            format!(
                r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(5000)
            ),
            "application/json",
            413,
            None,
            "2048 bytes",
        ),
    ];
    for (body, ct, status, param, needle) in cases {
        let resp = send(body.clone(), ct).await;
        assert_eq!(resp.status(), status, "{body:.80}");
        assert!(resp.headers().contains_key("x-request-id"));
        let err: Value = resp.json().await.unwrap();
        let e = &err["error"];
        assert!(
            e["type"].is_string() && e.get("code").is_some() && e.get("param").is_some(),
            "{err}"
        );
        assert_eq!(e["param"].as_str(), param, "{err}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{err}");
    }
    // A chunked body over the limit (no content-length) is cut off as well.
    let big = format!(
        r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "y".repeat(8000)
    );
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(
        mock.requests().is_empty(),
        "no bad request may reach the upstream"
    );
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="none",status="400",tier="none"}"#,
        7.0,
    );
}

#[tokio::test]
async fn provider_errors_map_to_matching_status_and_never_leak_the_key() {
    let mock = Mock::start().await;
    // One call per case, and no cooldown carried from one case to the next: this test is about
    // how each answer is mapped (retries and cooldowns are tested in tests/reliability.rs).
    let yaml = format!(
        "{}reliability:\n  retries: 0\n  policies:\n    authentication: {{ retries: 0, cooldown: false }}\n    not_found: {{ retries: 0, cooldown: false }}\n    rate_limit: {{ cooldown: false }}\n",
        config_yaml(&mock.url(), "")
    );
    let gw = Gateway::start(&yaml).await;
    let err_body = |msg: String, code: &str| json!({"error": {"message": msg, "type": "invalid_request_error", "param": null, "code": code}});
    let cases = [
        // The provider rejecting switchyard's credentials is the gateway's fault, not the
        // client's: a 502 with a type that says so, never the client's own 401/403.
        (
            401,
            err_body(
                format!("Incorrect API key provided: {PROVIDER_KEY}."),
                "invalid_api_key",
            ),
            502,
            "upstream_authentication_error",
        ),
        (
            403,
            err_body("not allowed".into(), "forbidden"),
            502,
            "upstream_permission_error",
        ),
        (
            400,
            err_body(
                "This model's maximum context length is 8192 tokens".into(),
                "context_length_exceeded",
            ),
            400,
            "invalid_request_error",
        ),
        (
            400,
            err_body("Invalid value for 'temperature'".into(), "invalid_value"),
            400,
            "invalid_request_error",
        ),
        (
            404,
            err_body(
                "The model `strong-up` does not exist".into(),
                "model_not_found",
            ),
            404,
            "not_found_error",
        ),
        (
            422,
            err_body("unprocessable".into(), "bad"),
            422,
            "invalid_request_error",
        ),
    ];
    for (status, body, want, kind) in cases {
        mock.on(
            "strong-up",
            Reply::Json {
                status,
                body,
                headers: vec![],
            },
        );
        let before = mock.calls_for("strong-up");
        let resp = post(&gw, &chat_body("premium", "hi")).await;
        assert_eq!(resp.status(), want);
        assert_eq!(resp.headers()["x-switchyard-model"], "strong");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], kind, "{err}");
        let text = err.to_string();
        assert!(!text.contains(PROVIDER_KEY), "provider key leaked: {text}");
        assert_eq!(
            mock.calls_for("strong-up"),
            before + 1,
            "client errors are not retried: {status}"
        );
    }
    // Upstream 5xx and 429 are passed on with their status when no fallback is left.
    mock.on(
        "strong-up",
        Reply::Json {
            status: 503,
            body: json!({"error": {"message": "overloaded"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("premium", "hi")).await;
    assert_eq!(resp.status(), 503);
    mock.on(
        "strong-up",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down"}}),
            headers: vec![("retry-after", "7".into())],
        },
    );
    let resp = post(&gw, &chat_body("premium", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_error");
    // A 200 with a body that is not a completion is a bad gateway, not a crash.
    mock.on("strong-up", Reply::Garbage("<html>proxy error</html>"));
    let resp = post(&gw, &chat_body("premium", "hi")).await;
    assert_eq!(resp.status(), 502);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_invalid_response");
    mock.on(
        "strong-up",
        Reply::Json {
            status: 200,
            body: json!({"unexpected": true}),
            headers: vec![],
        },
    );
    assert_eq!(post(&gw, &chat_body("premium", "hi")).await.status(), 502);
    let text = gw.metrics().await;
    assert!(!text.contains(PROVIDER_KEY));
    assert_metric(
        &text,
        r#"switchyard_provider_errors_total{class="authentication",model="strong"}"#,
        2.0,
    );
}

#[tokio::test]
async fn retryable_failures_fall_back_to_the_next_tier_and_client_errors_do_not() {
    let mock = Mock::start().await;
    // Without retries within the tier, the first server error moves the request on.
    let gw = Gateway::start(&without_retries(&config_yaml(&mock.url(), ""))).await;
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "boom"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert_eq!(resp.headers()["x-switchyard-model"], "strong");
    assert_eq!(resp.headers()["x-switchyard-route"], "default");
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (1, 1)
    );

    // A content-policy refusal is the same on every model: no escalation to a pricier tier.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 400,
            body: json!({"error": {"message": "blocked", "code": "content_filter"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "content_policy_violation");
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (2, 1)
    );

    // A client that names a model gets that model or its error, never a substitute.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "boom"}}),
            headers: vec![],
        },
    );
    assert_eq!(post(&gw, &chat_body("cheap", "hello")).await.status(), 500);
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (3, 1)
    );

    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="server_error",to_tier="premium"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="strong",status="200",tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn unreachable_provider_is_a_502_naming_the_model() {
    // Bind then drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(&config_yaml(&format!("http://127.0.0.1:{port}/v1"), "")).await;
    let resp = post(&gw, &chat_body("cheap", "hi")).await;
    assert_eq!(resp.status(), 502);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_connection_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cheap:")
    );
}

#[tokio::test]
async fn gateway_keys_are_required_when_configured() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(
        &mock.url(),
        "  api_keys: [\"sy-team-key-1\", \"sy-team-key-2\"]",
    ))
    .await;
    let client = reqwest::Client::new();
    let call = |key: Option<&'static str>| {
        let mut rb = client
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body("auto", "hi"));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send()
    };
    let none = call(None).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.json::<Value>().await.unwrap()["error"]["code"],
        "missing_api_key"
    );
    let wrong = call(Some("sy-wrong")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    assert_eq!(call(Some("sy-team-key-2")).await.unwrap().status(), 200);
    let upper = client
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", "BEARER sy-team-key-1")
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(upper.status(), 200, "the auth scheme is case-insensitive");
    let models = client.get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);
    let via_header = client
        .get(gw.url("/v1/models"))
        .header("x-api-key", "sy-team-key-1")
        .send()
        .await
        .unwrap();
    assert_eq!(via_header.status(), 200);
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(
        client
            .get(gw.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(gw.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(mock.requests().len(), 2);
    // The client's key is never forwarded upstream.
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {PROVIDER_KEY}")
    );
}

#[tokio::test]
async fn azure_uses_api_key_header_and_api_version() {
    let mock = Mock::start().await;
    let yaml = format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  az:
    kind: azure
    base_url: "http://{}/openai/deployments/gpt4o-prod"
    api_key: azure-secret-key-42
    api_version: "2024-10-21"
models:
  - {{ name: gpt4o, provider: az, model: gpt-4o }}
tiers:
  main: {{ models: [gpt4o] }}
routing: {{ default: main }}
"#,
        mock.addr
    );
    let gw = Gateway::start(&yaml).await;
    assert_eq!(post(&gw, &chat_body("auto", "hi")).await.status(), 200);
    let got = mock.requests().pop().unwrap();
    assert_eq!(got.path, "/openai/deployments/gpt4o-prod/chat/completions");
    assert_eq!(got.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(got.headers["api-key"], "azure-secret-key-42");
    assert!(!got.headers.contains_key("authorization"));
}

#[tokio::test]
async fn simulated_provider_answers_and_says_so() {
    let yaml = r#"
server: { listen: "127.0.0.1:0" }
providers:
  sim: { kind: simulated, simulate: { latency: 1ms, output_tokens: 5 } }
  broken: { kind: simulated, simulate: { latency: 1ms, failure_rate: 1.0 } }
models:
  - { name: s, provider: sim, model: sim-1 }
  - { name: b, provider: broken }
tiers:
  t: { models: [s] }
  bad: { models: [b] }
routing: { default: t }
"#;
    let gw = Gateway::start(yaml).await;
    let resp = post(&gw, &json!({"model": "auto", "max_tokens": 3, "messages": [{"role": "user", "content": "hello there"}]})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("[simulated sim-1]")
    );
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let resp = post(&gw, &chat_body("bad", "x")).await;
    assert_eq!(resp.status(), 503);
}

/// The metric helpers themselves: a series that is not exposed (a misspelled name or label) is
/// a failure, never a silent 0.
#[tokio::test]
async fn a_misspelled_series_fails_instead_of_reading_as_zero() {
    let (mock, gw) = setup().await;
    post(&gw, &chat_body("auto", "hello")).await;
    let text = gw.metrics().await;
    let real = r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#;
    assert_eq!(metric(&text, real), Some(1.0));
    assert_eq!(
        metric(
            &text,
            r#"switchyard_request_total{model="cheap",status="200",tier="budget"}"#
        ),
        None
    );
    assert_eq!(
        metric(
            &text,
            r#"switchyard_requests_total{model="cheap",status="200",tier="budgte"}"#
        ),
        None
    );
    let misspelled = std::panic::catch_unwind(|| {
        assert_metric(
            &text,
            r#"switchyard_requests_total{model="cheap",status="200",tier="budgte"}"#,
            0.0,
        )
    });
    assert!(misspelled.is_err(), "an absent series passed as 0");
    let wrong = std::panic::catch_unwind(|| assert_metric(&text, real, 2.0));
    assert!(wrong.is_err(), "a wrong value passed");
    let absent_before = std::panic::catch_unwind(|| assert_metric_delta("", &text, real, 1.0));
    assert!(
        absent_before.is_ok(),
        "a series first exposed after moved from 0"
    );
    assert_eq!(mock.calls(), 1);
}
