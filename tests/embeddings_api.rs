//! `POST /v1/embeddings` end to end against a mock upstream: what the upstream receives (the
//! client's fields passed through, `model` replaced), the answer, the cost headers, metrics and
//! spend row, fallback to a second deployment, virtual keys' limits, and bad input refused in
//! OpenAI's error shape with the offending field named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// An OpenAI embeddings answer with one 3-dimensional vector per input and `tokens` of usage.
fn embeddings_body(model: &str, inputs: usize, tokens: u64) -> Value {
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, i as f64]}))
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

fn inputs_of(body: &Value) -> usize {
    match &body["input"] {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => items.len(),
        Value::Array(items) if items.first().is_some_and(Value::is_string) => items.len(),
        _ => 1,
    }
}

/// The mock answers every embeddings call with a vector per input and 40 tokens of usage; the
/// model `emb-broken-up` always fails with a 500.
fn answer_embeddings(mock: &Mock) {
    mock.respond(|body| {
        let model = body["model"].as_str()?;
        if model == "emb-broken-up" {
            return Some(Reply::Json {
                status: 500,
                body: json!({"error": {"message": "upstream exploded", "type": "server_error"}}),
                headers: vec![],
            });
        }
        model.starts_with("emb").then(|| Reply::Json {
            status: 200,
            body: embeddings_body(model, inputs_of(body), 40),
            headers: vec![],
        })
    });
}

/// The base table plus embedding models: `emb` (its own tier `vectors`), and the tier `pair`
/// whose first deployment always fails and whose second answers. `extra` adds sections.
fn yaml(mock: &Mock, extra: &str) -> String {
    let base = config_yaml(&mock.url(), "");
    let models = "  - { name: emb, provider: up, model: emb-up, price: { input: 0.02 }, kind: embedding }\n  - { name: emb-broken, provider: up, model: emb-broken-up, price: { input: 0.1 }, kind: embedding }\n  - { name: emb-backup, provider: up, model: emb-backup-up, price: { input: 0.05 }, kind: embedding }\n";
    let base = base.replace("tiers:\n", &format!("{models}tiers:\n"));
    let base = base.replace(
        "  premium: { models: [strong] }\n",
        "  premium: { models: [strong] }\n  vectors: { models: [emb] }\n  pair: { models: [emb-broken, emb-backup], strategy: ordered }\n",
    );
    format!("{base}{extra}")
}

async fn embed(gw: &Gateway, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn fields_pass_through_and_the_answer_is_priced_and_logged() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("spend.db").display());
    let extra = format!(
        "spend_log: {{ url: \"{db}\", table: spend, batch_size: 1, flush_interval: 20ms }}\n"
    );
    let gw = Gateway::start(&yaml(&mock, &extra)).await;
    let before = gw.metrics().await;
    let body = json!({"model": "emb", "input": ["first text", "second text"],
                      "encoding_format": "base64", "dimensions": 3, "user": "alice",
                      "vendor_knob": {"a": 1}});
    let resp = embed(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), Some("emb"));
    assert_eq!(header(&resp, "x-switchyard-tier"), Some("vectors"));
    assert_eq!(header(&resp, "x-switchyard-route"), Some("model:emb"));
    // 40 input tokens at $0.02/M; an embedding is its own counterfactual.
    let cost: f64 = header(&resp, "x-switchyard-cost-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(cost, 40.0 * 0.02 / 1e6), "{cost}");
    let cf: f64 = header(&resp, "x-switchyard-counterfactual-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(cf, cost), "{cf}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 40);

    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].path.ends_with("/v1/embeddings"), "{}", sent[0].path);
    assert_eq!(
        sent[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(
        sent[0].body,
        json!({"model": "emb-up", "input": ["first text", "second text"],
               "encoding_format": "base64", "dimensions": 3, "user": "alice",
               "vendor_knob": {"a": 1}})
    );

    let after = gw.metrics().await;
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_tokens_total{direction="input",model="emb",tier="vectors"}"#,
        40.0,
    );
    let spent = metric_value(
        &after,
        r#"switchyard_cost_usd_total{model="emb",tier="vectors"}"#,
    );
    assert!(close(spent, cost), "{spent}");
    assert_metric_delta(
        &before,
        &after,
        r#"switchyard_requests_total{model="emb",status="200",tier="vectors"}"#,
        1.0,
    );

    let store = sqlx::SqlitePool::connect(&db).await.unwrap();
    type Row = (String, String, String, i64, i64, f64, f64, String, i64);
    let row: Row = wait_for("the spend row", DEADLINE, || {
        let store = store.clone();
        async move {
            sqlx::query_as(
                "SELECT endpoint, model, caller, prompt_tokens, completion_tokens, cost_usd, counterfactual_usd, route, status FROM spend",
            )
            .fetch_one(&store)
            .await
            .map_err(|e| e.to_string())
        }
    })
    .await;
    assert_eq!(
        (
            &row.0[..],
            &row.1[..],
            &row.2[..],
            row.3,
            row.4,
            &row.7[..],
            row.8
        ),
        ("embeddings", "emb", "alice", 40, 0, "model:emb", 200)
    );
    assert!(close(row.5, cost) && close(row.6, cost), "{row:?}");

    // A body refused before it was understood still leaves an embeddings row.
    let resp = embed(&gw, &json!({"model": "emb", "input": 5})).await;
    assert_eq!(resp.status(), 400);
    let refused: i64 = wait_for("the refused request's row", DEADLINE, || {
        let store = store.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM spend WHERE endpoint = 'embeddings' AND status = 400",
            )
            .fetch_one(&store)
            .await
            .map_err(|e| e.to_string())?;
            if n == 1 {
                Ok(n)
            } else {
                Err(format!("{n} rows"))
            }
        }
    })
    .await;
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn token_inputs_and_a_tier_are_served() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let gw = Gateway::start(&yaml(&mock, "")).await;
    for input in [
        json!("one string"),
        json!([1, 2, 3]),
        json!([[1, 2], [3, 4]]),
    ] {
        let resp = embed(&gw, &json!({"model": "vectors", "input": input})).await;
        assert_eq!(resp.status(), 200, "{input}");
        assert_eq!(header(&resp, "x-switchyard-route"), Some("tier:vectors"));
        resp.text().await.unwrap();
    }
    let sent: Vec<Value> = mock
        .requests()
        .into_iter()
        .map(|r| r.body["input"].clone())
        .collect();
    assert_eq!(
        sent,
        [
            json!("one string"),
            json!([1, 2, 3]),
            json!([[1, 2], [3, 4]])
        ]
    );
}

#[tokio::test]
async fn a_failing_deployment_falls_back_to_the_next_one() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let gw = Gateway::start(&yaml(&mock, "")).await;
    let resp = embed(&gw, &json!({"model": "pair", "input": "hello"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), Some("emb-backup"));
    assert_eq!(header(&resp, "x-switchyard-attempts"), Some("2"));
    // Billed at the deployment that answered.
    let cost: f64 = header(&resp, "x-switchyard-cost-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(cost, 40.0 * 0.05 / 1e6), "{cost}");
    let models: Vec<Value> = mock
        .requests()
        .into_iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(models, [json!("emb-broken-up"), json!("emb-backup-up")]);
    let m = gw.metrics().await;
    assert_metric(
        &m,
        r#"switchyard_provider_errors_total{class="server_error",model="emb-broken"}"#,
        1.0,
    );
}

#[tokio::test]
async fn usage_missing_from_the_upstream_is_counted_locally() {
    let mock = Mock::start().await;
    mock.respond(|_| {
        Some(Reply::Json {
            status: 200,
            body: json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}], "model": "emb-up"}),
            headers: vec![],
        })
    });
    let gw = Gateway::start(&yaml(&mock, "")).await;
    // Six token ids: six tokens, whatever the tokenizer.
    let resp = embed(&gw, &json!({"model": "emb", "input": [5, 6, 7, 8, 9, 10]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cost-estimated"), Some("true"));
    let cost: f64 = header(&resp, "x-switchyard-cost-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(cost, 6.0 * 0.02 / 1e6), "{cost}");
}

/// Every refusal is a 4xx in OpenAI's shape naming the field, and no upstream call is made.
#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let gw = Gateway::start(&yaml(&mock, "")).await;
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (json!({"input": "x"}), 400, Some("model")),
        (json!({"model": "emb"}), 400, Some("input")),
        (json!({"model": 7, "input": "x"}), 400, Some("model")),
        (json!({"model": "emb", "input": 7}), 400, Some("input")),
        (json!({"model": "emb", "input": []}), 400, Some("input")),
        (
            json!({"model": "emb", "input": ["a", 2]}),
            400,
            Some("input[1]"),
        ),
        (
            json!({"model": "emb", "input": [[1], [-1]]}),
            400,
            Some("input[1][0]"),
        ),
        (
            json!({"model": "emb", "input": "x", "dimensions": "8"}),
            400,
            Some("dimensions"),
        ),
        (
            json!({"model": "emb", "input": "x", "dimensions": 0}),
            400,
            Some("dimensions"),
        ),
        (
            json!({"model": "emb", "input": "x", "encoding_format": "hex"}),
            400,
            Some("encoding_format"),
        ),
        (
            json!({"model": "emb", "input": "x", "user": 3}),
            400,
            Some("user"),
        ),
        // A chat model or tier, or `auto`, is not an embedding model.
        (json!({"model": "cheap", "input": "x"}), 400, Some("model")),
        (json!({"model": "budget", "input": "x"}), 400, Some("model")),
        (json!({"model": "auto", "input": "x"}), 400, Some("model")),
        // A name that means nothing here is a 404, as for chat.
        (json!({"model": "nope", "input": "x"}), 404, Some("model")),
    ];
    for (body, status, param) in cases {
        let resp = embed(&gw, &body).await;
        assert_eq!(resp.status(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"].as_str(), param, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_json");
    let v: Value = embed(&gw, &json!({"model": "cheap", "input": "x"}))
        .await
        .json()
        .await
        .unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("emb-backup") && message.contains("vectors"),
        "{v}"
    );
    assert_eq!(mock.calls(), 0, "no bad request reached the upstream");
}

/// Chat requests never reach an embedding model: named, it is a 400 naming `model`.
#[tokio::test]
async fn chat_requests_cannot_name_an_embedding_model() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let gw = Gateway::start(&yaml(&mock, "")).await;
    for model in ["emb", "vectors"] {
        let resp = post(&gw, &chat_body(model, "hello")).await;
        assert_eq!(resp.status(), 400, "{model}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], "model", "{v}");
    }
    assert_eq!(mock.calls(), 0);
    // /v1/models lists them, saying what they are.
    let v: Value = reqwest::get(gw.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emb = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "emb")
        .unwrap()
        .clone();
    assert!(
        emb["description"]
            .as_str()
            .unwrap()
            .starts_with("embeddings:"),
        "{emb}"
    );
}

/// An Anthropic provider has no embeddings, which the config says at load time.
#[tokio::test]
async fn an_embedding_model_on_anthropic_is_a_config_error() {
    let mock = Mock::start().await;
    let text = yaml(&mock, "").replace(
        "providers:\n",
        "providers:\n  claude: { kind: anthropic, base_url: \"http://127.0.0.1:9\", api_key: k }\n",
    );
    let text = text.replace(
        "{ name: emb, provider: up,",
        "{ name: emb, provider: claude,",
    );
    let e = switchyard::config::Config::from_yaml(&text, "t.yaml").unwrap_err();
    assert_eq!(e.path, "models[2].provider");
    assert!(e.message.contains("has no embeddings"), "{e}");
}

/// A virtual key's allowed models and budget apply: a key limited to chat models is refused
/// (403 naming `model`), and a budgeted key has its embeddings cost counted against it.
#[tokio::test]
async fn virtual_keys_limits_apply() {
    const ADMIN: &str = "admin-key-for-embeddings-01";
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let dir = tempfile::tempdir().unwrap();
    let keys_db = format!("sqlite://{}", dir.path().join("keys.db").display());
    let text = yaml(
        &mock,
        &format!("keys: {{ database: \"{keys_db}\", refresh: 100ms }}\n"),
    )
    .replace(
        "server:\n",
        &format!("server:\n  admin_keys: [\"{ADMIN}\"]\n"),
    );
    let gw = Gateway::start(&text).await;
    let issue = |body: Value| {
        let url = gw.url("/admin/keys");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            v["key"].as_str().unwrap().to_string()
        }
    };
    let chat_only = issue(json!({"name": "chat-only", "models": ["cheap"]})).await;
    let budgeted = issue(json!({"name": "vec", "budget_usd": 1})).await;
    let as_key = |key: String| {
        let url = gw.url("/v1/embeddings");
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "emb", "input": "hello"}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = as_key(chat_only).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "model", "{v}");
    let r = as_key(budgeted).await;
    assert_eq!(r.status(), 200);
    let spent: f64 = header(&r, "x-switchyard-key-spend-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(close(spent, 40.0 * 0.02 / 1e6), "{spent}");

    // A key is admitted while its period's spend and reservations leave room: the first request
    // (40 tokens × $0.02/M = $0.0000008) spends a $0.0000001 budget, the next is refused.
    let tiny = issue(json!({"name": "tiny", "budget_usd": 0.0000001})).await;
    let send = |input: Value| {
        let (url, key) = (gw.url("/v1/embeddings"), tiny.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "emb", "input": input}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send(json!([1, 2, 3])).await.status(), 200);
    let r = send(json!("hello")).await;
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert_eq!(mock.calls(), 2, "the refused request reached no upstream");
}

/// An input longer than the model's context window is refused before any call, naming `input`;
/// a Messages request naming an embedding model is refused in Anthropic's shape.
#[tokio::test]
async fn each_input_must_fit_the_window_and_messages_cannot_name_one() {
    let mock = Mock::start().await;
    answer_embeddings(&mock);
    let text = yaml(&mock, "").replace(
        "price: { input: 0.02 }, kind: embedding",
        "price: { input: 0.02 }, context_window: 8, kind: embedding",
    );
    let gw = Gateway::start(&text).await;
    // Two short inputs fit even though together they are longer than the window.
    let fits =
        json!({"model": "emb", "input": ["one two three four five", "six seven eight nine ten"]});
    assert_eq!(embed(&gw, &fits).await.status(), 200);
    let long = json!({"model": "emb", "input": ["short", "word ".repeat(40)]});
    let resp = embed(&gw, &long).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
    assert_eq!(v["error"]["param"], "input", "{v}");
    assert_eq!(mock.calls(), 1);

    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .json(&json!({"model": "emb", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(mock.calls(), 1);
}

/// The simulated provider (the demo's embedding model) answers without a network: the same input
/// gets the same unit vector, `dimensions` sets its length, base64 is four bytes a component.
#[tokio::test]
async fn the_simulated_provider_answers_deterministically() {
    let gw = Gateway::start(
        "providers: { sim: { kind: simulated, simulate: { latency: 1ms } } }\nmodels:\n  - { name: chat, provider: sim }\n  - { name: vec, provider: sim, price: { input: 0.02 }, kind: embedding }\ntiers: { t: { models: [chat] } }\nrouting: { default: t }\n",
    )
    .await;
    let vectors = |v: &Value| -> Vec<Vec<f64>> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let body = json!({"model": "vec", "input": ["alpha", "beta"], "dimensions": 16});
    let a: Value = embed(&gw, &body).await.json().await.unwrap();
    let b: Value = embed(&gw, &body).await.json().await.unwrap();
    let (va, vb) = (vectors(&a), vectors(&b));
    assert_eq!(va, vb, "same input, same vectors");
    assert_eq!(va.len(), 2);
    assert_eq!(va[0].len(), 16);
    assert_ne!(va[0], va[1]);
    let norm: f64 = va[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    let resp = embed(
        &gw,
        &json!({"model": "vec", "input": "alpha", "dimensions": 16, "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let text = v["data"][0]["embedding"].as_str().unwrap();
    // 16 f32s are 64 bytes: 88 base64 characters with padding.
    assert_eq!(text.len(), 88, "{text}");
    let resp = embed(
        &gw,
        &json!({"model": "vec", "input": "x", "dimensions": 100000}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "dimensions", "{v}");
}
