//! Cost accounting end to end against the mock upstream: the cost headers for a known usage
//! (cached tokens included), estimates when the provider reports no usage, streaming usage in
//! the metrics, and exact counter deltas after a known sequence of requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use switchyard::tokens;

/// The harness's table with a cached-input price on `cheap`: $0.15 in, $0.075 cached, $0.60 out;
/// `strong` (premium, the counterfactual) is $5 in, $15 out.
fn yaml(mock: &Mock) -> String {
    config_yaml(&mock.url(), "").replace(
        "price: { input: 0.15, output: 0.6 }",
        "price: { input: 0.15, output: 0.6, cached_input: 0.075 }",
    )
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn headers_carry_cost_and_counterfactual_for_a_known_usage() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock)).await;
    // The mock reports 11 prompt tokens (3 of them cached) and 7 completion tokens.
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    // 8 × 0.15 + 3 × 0.075 + 7 × 0.60 = 5.625 µ$; premium: 11 × 5 + 7 × 15 = 160 µ$.
    assert_eq!(
        header(&resp, "x-switchyard-cost-usd").as_deref(),
        Some("0.0000056250")
    );
    assert_eq!(
        header(&resp, "x-switchyard-counterfactual-usd").as_deref(),
        Some("0.0001600000")
    );
    assert_eq!(header(&resp, "x-switchyard-cost-estimated"), None);

    // Served on the counterfactual tier: the counterfactual is the cost itself.
    let resp = post(&gw, &chat_body("auto", "prove it")).await;
    assert_eq!(
        header(&resp, "x-switchyard-tier").as_deref(),
        Some("premium")
    );
    assert_eq!(
        header(&resp, "x-switchyard-cost-usd").as_deref(),
        Some("0.0001600000")
    );
    assert_eq!(
        header(&resp, "x-switchyard-counterfactual-usd").as_deref(),
        Some("0.0001600000")
    );

    // A failed request cost nothing and says nothing about cost.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 400,
            body: json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), None);
}

#[tokio::test]
async fn answers_without_usage_are_estimated_with_the_tokenizer() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock)).await;
    let mut body = completion("cheap-up", "four score and seven years ago");
    body.as_object_mut().unwrap().remove("usage");
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 200,
            body,
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hello there")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-switchyard-cost-estimated").as_deref(),
        Some("true")
    );
    // Prompt: 3 + 4 per message + the text; completion: the answer's text.
    let prompt = 3 + 4 + tokens::count("hello there");
    let completion = tokens::count("four score and seven years ago");
    let expected = (prompt as f64 * 0.15 + completion as f64 * 0.6) / 1e6;
    let got: f64 = header(&resp, "x-switchyard-cost-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(got, expected), "{got} vs {expected}");

    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cost_estimated_total{model="cheap",tier="budget"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_tokens_total{direction="input",model="cheap",tier="budget"}"#,
        prompt as f64,
    );
}

fn stream_body(prompt: &str) -> Value {
    json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn streamed_usage_is_billed_in_metrics_and_streams_without_usage_are_estimated() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock)).await;
    let resp = post(&gw, &stream_body("hello")).await;
    assert_eq!(resp.status(), 200);
    // Headers leave before the usage is known: no cost headers on streams.
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), None);
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    // The stream's usage chunk: 11 prompt, 3 completion tokens, no cache.
    let want = (11.0 * 0.15 + 3.0 * 0.6) / 1e6;
    let want_cf = (11.0 * 5.0 + 3.0 * 15.0) / 1e6;
    let state = gw.state.clone();
    eventually(
        "the stream is accounted",
        std::time::Duration::from_secs(5),
        || state.metrics().in_flight.get() == 0,
    )
    .await;
    let text = gw.metrics().await;
    let cost = metric_value(
        &text,
        r#"switchyard_cost_usd_total{model="cheap",tier="budget"}"#,
    );
    assert!(close(cost, want), "{cost} vs {want}");
    let cf = metric_value(
        &text,
        r#"switchyard_counterfactual_cost_usd_total{tier="budget"}"#,
    );
    assert!(close(cf, want_cf), "{cf} vs {want_cf}");
    assert_metric(
        &text,
        r#"switchyard_time_to_first_token_seconds_count{model="cheap",tier="budget"}"#,
        1.0,
    );

    // A provider that sends no usage in its stream: the streamed text is counted instead.
    mock.on(
        "cheap-up",
        Reply::Stream {
            events: stream_events("cheap-up", false),
            gate: None,
        },
    );
    let resp = post(&gw, &stream_body("hello")).await;
    resp.text().await.unwrap();
    eventually(
        "the second stream is accounted",
        std::time::Duration::from_secs(5),
        || state.metrics().in_flight.get() == 0,
    )
    .await;
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cost_estimated_total{model="cheap",tier="budget"}"#,
        1.0,
    );
    let prompt = 3 + 4 + tokens::count("hello");
    let completion = tokens::count("Hello from mock");
    let second = (prompt as f64 * 0.15 + completion as f64 * 0.6) / 1e6;
    let cost = metric_value(
        &text,
        r#"switchyard_cost_usd_total{model="cheap",tier="budget"}"#,
    );
    assert!(close(cost, want + second), "{cost} vs {}", want + second);
}

#[tokio::test]
async fn a_known_sequence_moves_every_counter_by_exactly_its_share() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock)).await;
    let before = gw.metrics().await;
    let with_meta = |prompt: &str, meta: Value| json!({"model": "auto", "metadata": meta, "messages": [{"role": "user", "content": prompt}]});
    // 1–2: budget by default, 3: premium by rule, 4: budget stream with usage,
    // 5: expected premium but routed to budget, 6: expected a tier that does not exist,
    // 7: unknown model (404, never routed).
    for body in [
        chat_body("auto", "hello"),
        chat_body("auto", "summarize this"),
        chat_body("auto", "prove it"),
        json!({"model": "auto", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}]}),
        with_meta(
            "hello",
            json!({"expected_tier": "premium", "task_type": "chat"}),
        ),
        with_meta("hello", json!({"expected_tier": "gold-plated"})),
        chat_body("no-such-model", "hello"),
    ] {
        let resp = post(&gw, &body).await;
        resp.text().await.unwrap();
    }
    let state = gw.state.clone();
    eventually(
        "all requests accounted",
        std::time::Duration::from_secs(5),
        || state.metrics().in_flight.get() == 0,
    )
    .await;
    let after = gw.metrics().await;
    let delta = |series: &str| metric_value(&after, series) - metric_or_zero(&before, series);

    let cases: &[(&str, f64)] = &[
        (
            r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
            5.0,
        ),
        (
            r#"switchyard_requests_total{model="strong",status="200",tier="premium"}"#,
            1.0,
        ),
        (
            r#"switchyard_requests_total{model="none",status="404",tier="none"}"#,
            1.0,
        ),
        // Non-streaming answers report 11 in / 7 out; the stream 11 in / 3 out.
        (
            r#"switchyard_tokens_total{direction="input",model="cheap",tier="budget"}"#,
            55.0,
        ),
        (
            r#"switchyard_tokens_total{direction="output",model="cheap",tier="budget"}"#,
            31.0,
        ),
        (
            r#"switchyard_tokens_total{direction="input",model="strong",tier="premium"}"#,
            11.0,
        ),
        (
            r#"switchyard_tokens_total{direction="output",model="strong",tier="premium"}"#,
            7.0,
        ),
        (
            r#"switchyard_route_decisions_total{layer="default",tier="budget"}"#,
            4.0,
        ),
        (
            r#"switchyard_route_decisions_total{layer="rules",tier="budget"}"#,
            1.0,
        ),
        (
            r#"switchyard_route_decisions_total{layer="rules",tier="premium"}"#,
            1.0,
        ),
        (
            r#"switchyard_routing_expected_total{actual="budget",expected="premium"}"#,
            1.0,
        ),
        (
            r#"switchyard_routing_expected_total{actual="budget",expected="unknown"}"#,
            1.0,
        ),
        (
            r#"switchyard_time_to_first_token_seconds_count{model="cheap",tier="budget"}"#,
            1.0,
        ),
        (
            r#"switchyard_request_duration_seconds_count{tier="budget"}"#,
            5.0,
        ),
        (
            r#"switchyard_request_duration_seconds_count{tier="premium"}"#,
            1.0,
        ),
        (
            r#"switchyard_upstream_duration_seconds_count{model="cheap"}"#,
            5.0,
        ),
        (r#"switchyard_gateway_overhead_seconds_count"#, 7.0),
        (r#"switchyard_in_flight_requests"#, 0.0),
    ];
    for (series, want) in cases {
        assert_metric_delta(&before, &after, series, *want);
    }
    // Every answer reported its usage: nothing was estimated. The series appears on first use,
    // so "absent in both scrapes" and "unchanged" are both right.
    let estimated = r#"switchyard_cost_estimated_total{model="cheap",tier="budget"}"#;
    assert_eq!(
        metric_or_zero(&after, estimated),
        metric_or_zero(&before, estimated),
        "{estimated}"
    );
    // Four non-streaming budget answers (8 fresh + 3 cached in, 7 out) and the stream (11 in, 3 out).
    let budget = 4.0 * 5.625e-6 + (11.0 * 0.15 + 3.0 * 0.6) / 1e6;
    let budget_cf = 4.0 * 160e-6 + (11.0 * 5.0 + 3.0 * 15.0) / 1e6;
    let got = delta(r#"switchyard_cost_usd_total{model="cheap",tier="budget"}"#);
    assert!(close(got, budget), "{got} vs {budget}");
    let got = delta(r#"switchyard_counterfactual_cost_usd_total{tier="budget"}"#);
    assert!(close(got, budget_cf), "{got} vs {budget_cf}");
    let got = delta(r#"switchyard_cost_usd_total{model="strong",tier="premium"}"#);
    assert!(close(got, 160e-6), "{got}");
    let got = delta(r#"switchyard_counterfactual_cost_usd_total{tier="premium"}"#);
    assert!(close(got, 160e-6), "{got}");
    // No label carries request text: the unknown tier and the unknown model never became labels.
    assert!(!after.contains("gold-plated") && !after.contains("no-such-model"));
}

#[tokio::test]
async fn a_cascade_bills_the_cheap_answer_it_discarded() {
    let mock = Mock::start().await;
    // The harness's table, with a cascade from budget to premium on truncated answers.
    let table = yaml(&mock).replace(
        "fallbacks:",
        "  cascade: { from: budget, to: premium, escalate_on: [truncated] }\nfallbacks:",
    );
    let gw = Gateway::start(&table).await;
    // A truncated cheap answer (11 in, 3 cached, 7 out) escalates to premium (11 in, 7 out).
    let mut cut = completion("cheap-up", "The capital of");
    cut["choices"][0]["finish_reason"] = json!("length");
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 200,
            body: cut,
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-switchyard-cascade").as_deref(),
        Some("escalated:truncated")
    );
    // 5.625 µ$ for the discarded cheap answer + 160 µ$ for the premium one; the counterfactual
    // (everything on premium) never paid for the cheap one.
    assert_eq!(
        header(&resp, "x-switchyard-cost-usd").as_deref(),
        Some("0.0001656250")
    );
    assert_eq!(
        header(&resp, "x-switchyard-counterfactual-usd").as_deref(),
        Some("0.0001600000")
    );
    let text = gw.metrics().await;
    assert!(close(
        metric_value(
            &text,
            r#"switchyard_cost_usd_total{model="cheap",tier="budget"}"#
        ),
        0.000005625
    ));
    assert!(close(
        metric_value(
            &text,
            r#"switchyard_cost_usd_total{model="strong",tier="premium"}"#
        ),
        0.00016
    ));
    assert_metric(
        &text,
        r#"switchyard_tokens_total{direction="output",model="cheap",tier="budget"}"#,
        7.0,
    );
}
