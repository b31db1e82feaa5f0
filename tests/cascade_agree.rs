//! The cascade's agreement signal through the real server: the cheap tier and a second cheap
//! model answer the same request in parallel; agreeing answers return the first (both billed),
//! disagreeing ones escalate, the escalation cap holds, and a stream is never cascaded on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Two upstreams, as a team with two cheap providers would have: the cheap tier and the strong
/// model on one, the second opinion on the other. Prices (USD per million tokens) are chosen so
/// that each call's cost can be told apart in the bill.
fn table(first: &str, second: &str, cascade: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  one: {{ kind: openai, base_url: "{first}", api_key: "{PROVIDER_KEY}" }}
  two: {{ kind: openai, base_url: "{second}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: cheap, provider: one, model: cheap-up, price: {{ input: 1, output: 2 }} }}
  - {{ name: other, provider: two, model: other-up, price: {{ input: 10, output: 20 }} }}
  - {{ name: strong, provider: one, model: strong-up, price: {{ input: 100, output: 100 }} }}
tiers:
  budget: {{ models: [cheap] }}
  spare: {{ models: [other] }}
  premium: {{ models: [strong] }}
routing:
  default: budget
  counterfactual: premium
  cascade:
{cascade}
reliability: {{ retries: 0 }}
"#
    )
}

const AGREE: &str =
    "    { from: budget, to: premium, escalate_on: [error, agree], agreement: { model: other } }";

/// A completion of 5 prompt and 2 completion tokens: 9 µ$ on `cheap`, 90 µ$ on `other`, 700 µ$ on
/// `strong`.
fn says(model: &str, text: &str) -> Reply {
    Reply::Json {
        status: 200,
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
        headers: vec![],
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

const QUESTION: &str = "Which is a mammal? (A) trout (B) whale (C) shark. Answer with the letter.";

struct Setup {
    one: Mock,
    two: Mock,
    gw: Gateway,
}

async fn setup(cascade: &str) -> Setup {
    let one = Mock::start().await;
    let two = Mock::start().await;
    let gw = Gateway::start(&table(&one.url(), &two.url(), cascade)).await;
    Setup { one, two, gw }
}

fn cost(text: &str, tier: &str, model: &str) -> f64 {
    metric_value(
        text,
        &format!(r#"switchyard_cost_usd_total{{model="{model}",tier="{tier}"}}"#),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn agreeing_answers_return_the_first_and_bill_both() {
    let s = setup(AGREE).await;
    s.one.on("cheap-up", says("cheap-up", "The answer is (B)."));
    s.two.on("other-up", says("other-up", "B"));
    let resp = post(&s.gw, &chat_body("auto", QUESTION)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    assert_eq!(header(&resp, "x-switchyard-tier"), "budget");
    assert_eq!(header(&resp, "x-switchyard-model"), "cheap");
    assert_eq!(header(&resp, "x-switchyard-route"), "default");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    // 9 µ$ for the answer returned + 90 µ$ for the second opinion; "everything on premium"
    // would have been one premium call.
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), "0.0000990000");
    assert_eq!(
        header(&resp, "x-switchyard-counterfactual-usd"),
        "0.0007000000"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The answer is (B)."
    );
    assert_eq!(
        (
            s.one.calls_for("cheap-up"),
            s.two.calls_for("other-up"),
            s.one.calls_for("strong-up")
        ),
        (1, 1, 0)
    );
    // The second model was asked exactly what the client asked.
    let asked = &s.two.requests()[0].body;
    assert_eq!(
        asked["messages"],
        json!([{"role": "user", "content": QUESTION}])
    );
    assert_eq!(asked["model"], "other-up");

    let text = s.gw.metrics().await;
    assert!(close(cost(&text, "budget", "cheap"), 9e-6), "{text}");
    assert!(close(cost(&text, "spare", "other"), 90e-6), "{text}");
    assert_metric(
        &text,
        r#"switchyard_tokens_total{direction="output",model="other",tier="spare"}"#,
        2.0,
    );
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="accepted",reason="none",to_tier="premium"}"#,
        1.0,
    );
    // Only the answer returned counts as a request served.
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        1.0,
    );
}

#[tokio::test]
async fn the_second_model_is_asked_while_the_cheap_one_is_still_answering() {
    let s = setup(AGREE).await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    s.one.on(
        "cheap-up",
        Reply::After(gate.clone(), Box::new(says("cheap-up", "B"))),
    );
    s.two.on("other-up", says("other-up", "B"));
    let url = s.gw.url("/v1/chat/completions");
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat_body("auto", QUESTION))
            .send()
            .await
            .unwrap()
    });
    // The cheap answer is held back; the second opinion is requested all the same.
    eventually(
        "the second model is called",
        std::time::Duration::from_secs(5),
        || s.two.calls() == 1,
    )
    .await;
    assert_eq!(s.one.calls_for("cheap-up"), 1);
    gate.notify_one();
    let resp = pending.await.unwrap();
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
}

#[tokio::test]
async fn disagreeing_answers_escalate_and_every_call_is_billed() {
    let s = setup(AGREE).await;
    s.one.on("cheap-up", says("cheap-up", "The answer is (A)."));
    s.two.on("other-up", says("other-up", "B"));
    s.one.on("strong-up", says("strong-up", "(B) whale"));
    let resp = post(&s.gw, &chat_body("auto", QUESTION)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cascade"), "escalated:agree");
    assert_eq!(
        header(&resp, "x-switchyard-route"),
        "cascade:budget->premium"
    );
    assert_eq!(header(&resp, "x-switchyard-tier"), "premium");
    assert_eq!(header(&resp, "x-switchyard-model"), "strong");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), "0.0007990000");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "(B) whale");
    let text = s.gw.metrics().await;
    assert!(close(cost(&text, "budget", "cheap"), 9e-6), "{text}");
    assert!(close(cost(&text, "spare", "other"), 90e-6), "{text}");
    assert!(close(cost(&text, "premium", "strong"), 700e-6), "{text}");
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="escalated",reason="agree",to_tier="premium"}"#,
        1.0,
    );

    // Numbers are compared as numbers, whatever the wording around them.
    s.one.on(
        "cheap-up",
        says("cheap-up", "She has 3 + 4 = 7 apples.\n#### 7"),
    );
    s.two.on("other-up", says("other-up", "7"));
    let resp = post(
        &s.gw,
        &chat_body("auto", "Ann has 3 apples and gets 4. How many?"),
    )
    .await;
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    s.one.on("cheap-up", says("cheap-up", "#### 12"));
    s.two.on("other-up", says("other-up", "The total is 7."));
    let resp = post(
        &s.gw,
        &chat_body("auto", "Ann has 3 apples and gets 4. How many?"),
    )
    .await;
    assert_eq!(header(&resp, "x-switchyard-cascade"), "escalated:agree");
    assert_eq!(s.one.calls_for("strong-up"), 2);
}

#[tokio::test]
async fn a_failing_second_model_keeps_the_cheap_answer() {
    let s = setup(AGREE).await;
    s.one.on("cheap-up", says("cheap-up", "positive"));
    s.two.on(
        "other-up",
        Reply::Json {
            status: 503,
            body: json!({"error": {"message": "overloaded"}}),
            headers: vec![],
        },
    );
    let resp = post(&s.gw, &chat_body("auto", "Sentiment of: I love it")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    // Only the answer that exists is billed.
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), "0.0000090000");
    assert_eq!(s.one.calls_for("strong-up"), 0);
    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_provider_errors_total{class="server_error",model="other"}"#,
        1.0,
    );
}

#[tokio::test]
async fn the_escalation_cap_holds_for_disagreements() {
    let cascade = "    { from: budget, to: premium, escalate_on: [agree], agreement: { model: other, compare: exact }, max_escalation_rate: 0.5, min_requests: 2, window: 60s }";
    let s = setup(cascade).await;
    let pairs = [
        ("positive", "Positive."),
        ("positive", "negative"),
        ("negative", "neutral"),
        ("neutral", "positive"),
    ];
    let mut seen = Vec::new();
    for (first, second) in pairs {
        s.one.on("cheap-up", says("cheap-up", first));
        s.two.on("other-up", says("other-up", second));
        s.one
            .on("strong-up", says("strong-up", "neutral, leaning positive"));
        let resp = post(&s.gw, &chat_body("auto", "Sentiment of: fine, I guess")).await;
        assert_eq!(resp.status(), 200);
        let cascade = header(&resp, "x-switchyard-cascade");
        let cost = header(&resp, "x-switchyard-cost-usd");
        let body: Value = resp.json().await.unwrap();
        seen.push((
            cascade,
            cost,
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    let strong = "neutral, leaning positive".to_string();
    assert_eq!(
        seen,
        [
            ("accepted".into(), "0.0000990000".into(), "positive".into()),
            (
                "escalated:agree".into(),
                "0.0007990000".into(),
                strong.clone()
            ),
            ("escalated:agree".into(), "0.0007990000".into(), strong),
            // Over the cap: the cheap answer is kept, and the second opinion was still paid for.
            (
                "capped:agree".into(),
                "0.0000990000".into(),
                "neutral".into()
            ),
        ]
    );
    assert_eq!(s.one.calls_for("strong-up"), 2);
    assert_eq!(s.two.calls_for("other-up"), 4);
    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_cascade_total{from_tier="budget",outcome="capped",reason="agree",to_tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_stream_is_not_cascaded_on_agreement() {
    let s = setup(AGREE).await;
    let resp = post(
        &s.gw,
        &json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": QUESTION}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-tier"), "budget");
    assert_eq!(header(&resp, "x-switchyard-cascade"), "");
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("Hello") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    // No second opinion was asked for, and nothing escalated.
    assert_eq!(s.two.calls(), 0);
    assert_eq!(s.one.calls_for("strong-up"), 0);
    assert_eq!(s.one.calls_for("cheap-up"), 1);
}

#[tokio::test]
async fn code_answers_agree_by_similarity() {
    let s = setup(AGREE).await;
    let code = |body: &str| format!("Here it is:\n```python\n{body}\n```");
    s.one.on(
        "cheap-up",
        says("cheap-up", &code("def add(a, b):\n    return a + b")),
    );
    s.two.on(
        "other-up",
        says("other-up", &code("def add(a, b):\n    return a + b  # sum")),
    );
    let resp = post(&s.gw, &chat_body("auto", "Write add(a, b) in Python")).await;
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    s.one.on(
        "cheap-up",
        says("cheap-up", &code("def add(a, b):\n    return a + b")),
    );
    s.two.on(
        "other-up",
        says("other-up", &code("import operator\nadd = operator.add")),
    );
    let resp = post(&s.gw, &chat_body("auto", "Write add(a, b) in Python")).await;
    assert_eq!(header(&resp, "x-switchyard-cascade"), "escalated:agree");
}

#[test]
fn agree_needs_a_known_second_model() {
    let load = |cascade: &str| {
        switchyard::config::Config::from_yaml(
            &table("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", cascade),
            "t.yaml",
        )
    };
    assert!(load(AGREE).is_ok());
    let e = load("    { from: budget, to: premium, escalate_on: [agree] }").unwrap_err();
    assert_eq!(e.path, "routing.cascade.agreement", "{e}");
    assert!(e.message.contains("agreement.model"), "{e}");
    let e = load(
        "    { from: budget, to: premium, escalate_on: [agree], agreement: { model: nobody } }",
    )
    .unwrap_err();
    assert_eq!(e.path, "routing.cascade.agreement.model", "{e}");
    assert!(e.message.contains("unknown model `nobody`"), "{e}");
    assert!(e.line.is_some(), "{e}");
    let e = load("    { from: budget, to: premium, escalate_on: [agree], agreement: { model: other, compare: fuzzy } }").unwrap_err();
    assert!(e.message.contains("fuzzy"), "{e}");
    let e = load(
        "    { from: budget, to: premium, escalate_on: [agree], agreement: { compare: exact } }",
    )
    .unwrap_err();
    assert_eq!(e.path, "routing.cascade.agreement", "{e}");
    assert!(e.message.contains("agreement.learned: true"), "{e}");
    // The learned layer's choice needs a learned layer.
    let e = load(
        "    { from: budget, to: premium, escalate_on: [agree], agreement: { learned: true } }",
    )
    .unwrap_err();
    assert_eq!(e.path, "routing.cascade.agreement.learned", "{e}");
    assert!(e.message.contains("needs routing.learned"), "{e}");
}

/// Recorded outcomes of multiple-choice prompts like `QUESTION`: every model right but the one
/// named `wrong`, so the learned layer ranks the other cheap tier first for the second opinion.
fn mc_outcomes(wrong: &str) -> String {
    let prompts = [
        "Which is a bird? (A) bat (B) penguin (C) dolphin. Answer with the letter.",
        "Which is a fish? (A) trout (B) whale (C) seal. Answer with the letter.",
        "Which is a reptile? (A) frog (B) lizard (C) otter. Answer with the letter.",
        "Which is a mammal? (A) eel (B) bat (C) crab. Answer with the letter.",
        "Which is an insect? (A) spider (B) ant (C) snail. Answer with the letter.",
        "Which is a planet? (A) Sirius (B) Mars (C) Vega. Answer with the letter.",
    ];
    let mut out = String::new();
    for (i, p) in prompts.iter().enumerate() {
        let mut scores = json!({"cheap": 1.0, "other": 1.0, "middle": 1.0, "strong": 1.0});
        scores[wrong] = json!(0.0);
        out.push_str(
            &json!({"id": format!("q{i}"), "messages": [{"role": "user", "content": p}], "scores": scores})
                .to_string(),
        );
        out.push('\n');
    }
    out
}

/// Four tiers, cheapest first: budget (cheap), spare (other, on the second upstream), mid
/// (middle) and premium (strong). The learned layer decides; the cascade asks the second opinion
/// of the tier it predicts best after budget.
fn learned_table(first: &str, second: &str, outcomes: &std::path::Path, agreement: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  one: {{ kind: openai, base_url: "{first}", api_key: "{PROVIDER_KEY}" }}
  two: {{ kind: openai, base_url: "{second}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: cheap, provider: one, model: cheap-up, price: {{ input: 1, output: 2 }} }}
  - {{ name: other, provider: two, model: other-up, price: {{ input: 10, output: 20 }} }}
  - {{ name: middle, provider: one, model: middle-up, price: {{ input: 20, output: 40 }} }}
  - {{ name: strong, provider: one, model: strong-up, price: {{ input: 100, output: 100 }} }}
tiers:
  budget: {{ models: [cheap] }}
  spare: {{ models: [other] }}
  mid: {{ models: [middle] }}
  premium: {{ models: [strong] }}
routing:
  default: premium
  learned:
    outcomes: ["{}"]
    embedder: {{ kind: hashed-ngrams }}
    bar: 0.5
    k: 4
    cache: false
  cascade: {{ from: budget, to: premium, escalate_on: [error, agree], agreement: {agreement} }}
reliability: {{ retries: 0 }}
"#,
        outcomes.display()
    )
}

/// Upstreams scripted for the learned-table tests (every model answers `B`, `middle` answers
/// `middle_says`) and the gateway on `learned_table`, whose outcomes say `wrong` got these
/// prompts wrong; `rules` is inserted before the learned layer. The folder holds the outcomes.
async fn learned_setup(
    wrong: &str,
    middle_says: &str,
    agreement: &str,
    rules: &str,
) -> (Setup, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outcomes.jsonl");
    std::fs::write(&file, mc_outcomes(wrong)).unwrap();
    let one = Mock::start().await;
    let two = Mock::start().await;
    one.on("cheap-up", says("cheap-up", "B"));
    one.on("middle-up", says("middle-up", middle_says));
    one.on("strong-up", says("strong-up", "B"));
    two.on("other-up", says("other-up", "B"));
    let table = learned_table(&one.url(), &two.url(), &file, agreement)
        .replace("  learned:\n", &format!("{rules}  learned:\n"));
    let gw = Gateway::start(&table).await;
    (Setup { one, two, gw }, dir)
}

/// Calls made to (cheap, other, middle, strong).
fn learned_calls(s: &Setup) -> (usize, usize, usize, usize) {
    (
        s.one.calls_for("cheap-up"),
        s.two.calls_for("other-up"),
        s.one.calls_for("middle-up"),
        s.one.calls_for("strong-up"),
    )
}

#[tokio::test]
async fn the_learned_layer_chooses_who_gives_the_second_opinion() {
    // `middle` was wrong on these prompts: the second opinion comes from `spare`.
    let (s, _dir) = learned_setup("middle", "C", "{ learned: true }", "").await;
    let resp = post(&s.gw, &chat_body("auto", QUESTION)).await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "x-switchyard-route").starts_with("learned:budget@"));
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    assert_eq!(learned_calls(&s), (1, 1, 0, 0));
    drop(s);

    // Now `other` was the one that got them wrong: `mid` is asked, disagrees, and the request
    // escalates to premium; all three calls are billed.
    let (s, _dir) = learned_setup("other", "C", "{ learned: true }", "").await;
    let resp = post(&s.gw, &chat_body("auto", QUESTION)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cascade"), "escalated:agree");
    assert_eq!(header(&resp, "x-switchyard-tier"), "premium");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    // 9 µ$ cheap + 180 µ$ middle + 700 µ$ strong.
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), "0.0008890000");
    assert_eq!(learned_calls(&s), (1, 0, 1, 1));
}

#[tokio::test]
async fn without_a_learned_decision_the_configured_model_gives_the_second_opinion() {
    let rules = "  rules:\n    - { name: quiz, when: { keywords: [mammal] }, tier: budget }\n";
    let (s, _dir) = learned_setup("middle", "B", "{ learned: true, model: middle }", rules).await;
    let resp = post(&s.gw, &chat_body("auto", QUESTION)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-route"), "rules:quiz");
    assert_eq!(header(&resp, "x-switchyard-cascade"), "accepted");
    assert_eq!(learned_calls(&s), (1, 0, 1, 0));
}
