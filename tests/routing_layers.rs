//! Routing through the gateway: aliases, rules v2, the cascade (judge the cheap answer, escalate
//! once, cap the escalation rate) and, with the default embedder, the semantic layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn cascade_config(upstream: &str, cascade: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  up: {{ kind: openai, base_url: "{upstream}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: cheap, provider: up, model: cheap-up }}
  - {{ name: strong, provider: up, model: strong-up }}
  - {{ name: grader, provider: up, model: judge-up }}
tiers:
  budget: {{ models: [cheap] }}
  premium: {{ models: [strong] }}
routing:
  default: budget
  aliases: [gpt-4o]
  rules:
    - {{ name: hard, when: {{ keywords: [prove] }}, tier: premium }}
    - {{ name: alias-long, when: {{ all: [{{ model: [gpt-4o] }}, {{ prompt_tokens: {{ min: 30 }} }}] }}, tier: premium }}
  cascade:
{cascade}
"#
    )
}

const CASCADE: &str = "    { from: budget, to: premium, escalate_on: [error, empty, truncated, refusal, invalid_json] }";

fn answer(content: Value, finish: &str) -> Reply {
    Reply::Json {
        status: 200,
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": "cheap-up",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
        headers: vec![],
    }
}

#[tokio::test]
async fn a_good_cheap_answer_is_kept() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&cascade_config(&mock.url(), CASCADE)).await;
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "budget");
    assert_eq!(resp.headers()["x-switchyard-route"], "default");
    assert_eq!(resp.headers()["x-switchyard-cascade"], "accepted");
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (1, 0)
    );
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="accepted",reason="none",to_tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn short_answers_escalate_once_and_say_why() {
    let mock = Mock::start().await;
    // No retries within the cheap tier: its first error is what the cascade sees.
    let gw = Gateway::start(&without_retries(&cascade_config(&mock.url(), CASCADE))).await;
    let cases = [
        (
            answer(json!("The capital of"), "length"),
            "escalated:truncated",
        ),
        (answer(json!(""), "stop"), "escalated:empty"),
        (
            answer(json!("I'm sorry, but I can't help with that."), "stop"),
            "escalated:refusal",
        ),
        (
            Reply::Json {
                status: 503,
                body: json!({"error": {"message": "busy"}}),
                headers: vec![],
            },
            "escalated:error",
        ),
    ];
    for (i, (reply, header)) in cases.into_iter().enumerate() {
        mock.on("cheap-up", reply);
        let resp = post(&gw, &chat_body("auto", "hello")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-cascade"], header);
        assert_eq!(
            resp.headers()["x-switchyard-route"],
            "cascade:budget->premium"
        );
        assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
        assert_eq!(resp.headers()["x-switchyard-model"], "strong");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "answer from strong-up"
        );
        assert_eq!(
            (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
            (i + 1, i + 1),
            "exactly one escalation"
        );
    }
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="escalated",reason="truncated",to_tier="premium"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="escalated",reason="error",to_tier="premium"}"#,
        1.0,
    );
    assert!(
        !text.contains("switchyard_fallbacks_total{"),
        "cascade escalations are not fallbacks:\n{text}"
    );
    // A client error is not escalated: no bigger model fixes it.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 400,
            body: json!({"error": {"message": "bad param", "param": "top_p"}}),
            headers: vec![],
        },
    );
    assert_eq!(post(&gw, &chat_body("auto", "hello")).await.status(), 400);
    assert_eq!(mock.calls_for("strong-up"), 4);
}

#[tokio::test]
async fn json_answers_are_checked_against_the_requested_schema() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&cascade_config(&mock.url(), CASCADE)).await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "age of the dog?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema":
            {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}}}});
    mock.on("cheap-up", answer(json!("{\"age\": 4}"), "stop"));
    let resp = post(&gw, &body).await;
    assert_eq!(resp.headers()["x-switchyard-cascade"], "accepted");
    mock.on("cheap-up", answer(json!("The dog is four."), "stop"));
    let resp = post(&gw, &body).await;
    assert_eq!(
        resp.headers()["x-switchyard-cascade"],
        "escalated:invalid_json"
    );
}

#[tokio::test]
async fn the_cap_keeps_cheap_answers_when_too_many_escalate() {
    let mock = Mock::start().await;
    let cascade =
        "    { from: budget, to: premium, max_escalation_rate: 0.5, min_requests: 2, window: 60s }";
    let gw = Gateway::start(&cascade_config(&mock.url(), cascade)).await;
    mock.on("cheap-up", answer(json!("ok"), "stop"));
    mock.on("cheap-up", answer(json!("cut"), "length"));
    mock.on("cheap-up", answer(json!("cut"), "length"));
    mock.on("cheap-up", answer(json!("cut"), "length"));
    let headers: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = post(&gw, &chat_body("auto", "hello")).await;
            v.push(
                r.headers()["x-switchyard-cascade"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
        v
    };
    // 1 accepted, 1 escalated (rate 1/2, not over 0.5), 1 escalated (rate now 2/3 > 0.5 only after
    // it), then capped: the cheap answer is kept.
    assert_eq!(
        headers,
        [
            "accepted",
            "escalated:truncated",
            "escalated:truncated",
            "capped:truncated"
        ]
    );
    assert_eq!(mock.calls_for("strong-up"), 2);
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="capped",reason="truncated",to_tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_judge_model_can_send_answers_up() {
    let mock = Mock::start().await;
    let cascade = "    { from: budget, to: premium, escalate_on: [judge], judge: { model: grader, min_score: 7 } }";
    let gw = Gateway::start(&cascade_config(&mock.url(), cascade)).await;
    mock.on("judge-up", answer(json!("9"), "stop"));
    let resp = post(&gw, &chat_body("auto", "what is 2+2")).await;
    assert_eq!(resp.headers()["x-switchyard-cascade"], "accepted");
    let judged = mock
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == "judge-up")
        .unwrap();
    let prompt = judged.body["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("what is 2+2") && prompt.contains("answer from cheap-up"),
        "{prompt}"
    );
    mock.on("judge-up", answer(json!("3"), "stop"));
    let resp = post(&gw, &chat_body("auto", "what is 2+2")).await;
    assert_eq!(resp.headers()["x-switchyard-cascade"], "escalated:judge");
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    // A judge that fails keeps the cheap answer.
    mock.on(
        "judge-up",
        Reply::Json {
            status: 500,
            body: json!({}),
            headers: vec![],
        },
    );
    let resp = post(&gw, &chat_body("auto", "what is 2+2")).await;
    assert_eq!(resp.headers()["x-switchyard-cascade"], "accepted");
}

#[tokio::test]
async fn low_confidence_uses_logprobs_the_client_never_sees() {
    let mock = Mock::start().await;
    let cascade =
        "    { from: budget, to: premium, escalate_on: [low_confidence], min_mean_logprob: -1.0 }";
    let gw = Gateway::start(&cascade_config(&mock.url(), cascade)).await;
    let with_lp = |lp: f64| Reply::Json {
        status: 200,
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": "cheap-up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "maybe"}, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": "maybe", "logprob": lp, "top_logprobs": []}]}}]}),
        headers: vec![],
    };
    mock.on("cheap-up", with_lp(-0.2));
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.headers()["x-switchyard-cascade"], "accepted");
    assert_eq!(
        mock.requests().last().unwrap().body["logprobs"],
        true,
        "the gateway asked for log-probs"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["logprobs"],
        Value::Null,
        "…and hid them from a client that did not"
    );
    mock.on("cheap-up", with_lp(-3.0));
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(
        resp.headers()["x-switchyard-cascade"],
        "escalated:low_confidence"
    );
}

#[tokio::test]
async fn only_routed_requests_cascade_and_streams_escalate_only_on_early_errors() {
    let mock = Mock::start().await;
    // No retries within the cheap tier: its first error is what the cascade sees.
    let gw = Gateway::start(&without_retries(&cascade_config(&mock.url(), CASCADE))).await;
    // Naming the tier means exactly that tier.
    mock.on("cheap-up", answer(json!("cut"), "length"));
    let resp = post(&gw, &chat_body("budget", "hello")).await;
    assert!(resp.headers().get("x-switchyard-cascade").is_none());
    assert_eq!(resp.headers()["x-switchyard-tier"], "budget");
    // A stream is not judged, but a failure before its first byte goes to the cascade's tier.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "x"}}),
            headers: vec![],
        },
    );
    let resp = post(
        &gw,
        &json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn aliases_run_the_router_and_rules_can_test_them() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&cascade_config(&mock.url(), CASCADE)).await;
    let resp = post(&gw, &chat_body("gpt-4o", "short question")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "budget");
    let long = "please explain in detail ".repeat(10);
    let resp = post(&gw, &chat_body("gpt-4o", &long)).await;
    assert_eq!(resp.headers()["x-switchyard-route"], "rules:alias-long");
    let resp = post(&gw, &chat_body("auto", &long)).await;
    assert_eq!(
        resp.headers()["x-switchyard-route"],
        "default",
        "the alias rule does not fire for `auto`"
    );
    let models: Value = reqwest::get(gw.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o")
    );
}

fn semantic_config(upstream: &str) -> String {
    base_yaml(
        upstream,
        "",
        r#"routing:
  default: budget
  rules:
    - { name: tagged, when: { tags: [vip] }, tier: premium }
  semantic:
    embedder: { kind: hashed-ngrams }
    threshold: 0.2
    margin: 0.02
    utterances:
      budget: ["summarize this article", "translate this sentence into French"]
      premium: ["prove this theorem rigorously", "analyze the trade-offs between these designs"]
"#,
    )
}

#[tokio::test]
async fn the_semantic_layer_routes_paraphrases_and_abstains_on_unclear_prompts() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&semantic_config(&mock.url())).await;
    let resp = post(
        &gw,
        &chat_body("auto", "please prove that this theorem holds"),
    )
    .await;
    let route = resp.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(route.starts_with("semantic:premium@"), "{route}");
    let score: f64 = route.rsplit('@').next().unwrap().parse().unwrap();
    assert!((0.2..=1.0).contains(&score), "{route}");
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
    assert_eq!(mock.requests().last().unwrap().body["model"], "strong-up");
    // Nothing like any utterance: the layer abstains and the default decides.
    let resp = post(&gw, &chat_body("auto", "qwxz plmk")).await;
    assert_eq!(resp.headers()["x-switchyard-route"], "default");
    // Rules still come first.
    let tagged = json!({"model": "auto", "metadata": {"tags": ["vip"]}, "messages": [{"role": "user", "content": "summarize this article"}]});
    assert_eq!(
        post(&gw, &tagged).await.headers()["x-switchyard-route"],
        "rules:tagged"
    );
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_route_decisions_total{layer="semantic",tier="premium"}"#,
        1.0,
    );
    assert!(
        metric_value(
            &text,
            r#"switchyard_route_decision_seconds_count{layer="semantic"}"#
        ) >= 1.0
    );
}
