//! The learned routing layer through the real server: requests go to the cheapest tier that
//! recorded outcomes of similar prompts predict will clear the bar; a reload with new outcome
//! data changes the decision; bad outcome data is a config error that says where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const TRANSLATE: &[&str] = &[
    "Translate 'good morning' into Spanish",
    "Translate this sentence into French: the train leaves at noon",
    "Translate 'where is the station' into German",
    "Translate the word 'library' into Italian",
    "Translate 'thank you very much' into Portuguese",
    "Translate this phrase into Dutch: see you tomorrow",
];
const PROVE: &[&str] = &[
    "Prove that the square root of two is irrational",
    "Prove that there are infinitely many prime numbers",
    "Prove by induction that the sum of the first n odd numbers is n squared",
    "Prove that every bounded monotone sequence of reals converges",
    "Prove that a group of prime order is cyclic",
    "Prove the triangle inequality for complex numbers",
];

/// Outcome rows: translations scored `translate` on the cheap model, proofs `prove`; the strong
/// model gets everything right.
fn outcomes(translate: f64, prove: f64) -> String {
    let mut out = String::new();
    for (i, p) in TRANSLATE.iter().enumerate() {
        out.push_str(
            &json!({"id": format!("t{i}"), "category": "translation",
                    "messages": [{"role": "user", "content": p}],
                    "scores": {"cheap": translate, "strong": 1.0}})
            .to_string(),
        );
        out.push('\n');
    }
    for (i, p) in PROVE.iter().enumerate() {
        out.push_str(
            &json!({"id": format!("p{i}"), "category": "proof",
                    "messages": [{"role": "user", "content": p}],
                    "scores": {"cheap": prove, "strong": 1.0}})
            .to_string(),
        );
        out.push('\n');
    }
    out
}

fn table(upstream: &str, outcomes: &Path, extra: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0" }}
providers:
  up: {{ kind: openai, base_url: "{upstream}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: cheap, provider: up, model: cheap-up, price: {{ input: 0.15, output: 0.6 }} }}
  - {{ name: strong, provider: up, model: strong-up, price: {{ input: 5, output: 15 }} }}
tiers:
  budget: {{ models: [cheap] }}
  premium: {{ models: [strong] }}
routing:
  default: premium
  learned:
    outcomes: ["{}"]
    bar: 0.9
    k: 4
    cache: false
{extra}
"#,
        outcomes.display()
    )
}

async fn tier_of(gw: &Gateway, prompt: &str) -> (String, String) {
    let resp = post(gw, &chat_body("auto", prompt)).await;
    assert_eq!(resp.status(), 200);
    (
        resp.headers()["x-switchyard-tier"]
            .to_str()
            .unwrap()
            .to_string(),
        resp.headers()["x-switchyard-route"]
            .to_str()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test]
async fn neighbours_that_succeed_cheaply_keep_a_request_cheap_and_failures_send_it_up() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outcomes.jsonl");
    std::fs::write(&file, outcomes(1.0, 0.0)).unwrap();
    let gw = Gateway::start(&table(&mock.url(), &file, "")).await;

    let (tier, route) = tier_of(&gw, "Translate 'good night' into Spanish").await;
    assert_eq!(tier, "budget");
    assert!(route.starts_with("learned:budget@"), "{route}");
    let (tier, route) = tier_of(&gw, "Prove that the square root of three is irrational").await;
    assert_eq!(tier, "premium");
    assert!(route.starts_with("learned:premium@"), "{route}");
    assert_eq!(
        (mock.calls_for("cheap-up"), mock.calls_for("strong-up")),
        (1, 1)
    );
    let m = gw.metrics().await;
    for tier in ["budget", "premium"] {
        assert_metric(
            &m,
            &format!(r#"switchyard_route_decisions_total{{layer="learned",tier="{tier}"}}"#),
            1.0,
        );
    }
}

#[tokio::test]
async fn the_ensemble_method_and_the_category_weight_route_by_the_outcomes() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outcomes.jsonl");
    std::fs::write(&file, outcomes(1.0, 0.0)).unwrap();
    let yaml = table(&mock.url(), &file, "").replace(
        "    k: 4\n",
        "    k: 4\n    method: ensemble\n    category_weight: 1.0\n",
    );
    let gw = Gateway::start(&yaml).await;
    let (tier, route) = tier_of(&gw, "Translate 'good night' into Spanish").await;
    assert_eq!(tier, "budget", "{route}");
    let (tier, route) = tier_of(&gw, "Prove that the square root of three is irrational").await;
    assert_eq!(tier, "premium", "{route}");
    // With the category's record alone deciding, a translation sent as a proof goes up.
    let body = json!({"model": "auto",
        "messages": [{"role": "user", "content": "Translate 'good night' into Spanish"}],
        "metadata": {"task_type": "proof"}});
    let resp = post(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-tier"], "premium");
}

#[tokio::test]
async fn a_reload_with_new_outcomes_changes_the_decision() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outcomes.jsonl");
    std::fs::write(&file, outcomes(1.0, 0.0)).unwrap();
    let config = dir.path().join("table.yaml");
    std::fs::write(&config, table(&mock.url(), &file, "")).unwrap();
    let bin = Binary::serve(&config, &[]);
    let client = reqwest::Client::new();
    let ask = |prompt: &'static str| {
        let client = client.clone();
        let url = bin.url("/v1/chat/completions");
        async move {
            let resp = client
                .post(url)
                .json(&chat_body("auto", prompt))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.headers()["x-switchyard-tier"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(ask("Translate 'good night' into Spanish").await, "budget");

    // Now the cheap model is recorded failing translations: the same request goes up.
    std::fs::write(&file, outcomes(0.0, 0.0)).unwrap();
    bin.signal("HUP");
    wait_for(
        "the reload to change the decision",
        Duration::from_secs(20),
        || async {
            let tier = ask("Translate 'good night' into Spanish").await;
            if tier == "premium" {
                Ok(())
            } else {
                Err(format!(
                    "routed to {tier}; log: {:?}",
                    bin.lines.lock().unwrap()
                ))
            }
        },
    )
    .await;
    assert!(bin.log_contains("config reloaded"));
}

async fn build_error(yaml: &str) -> String {
    let config =
        switchyard::config::Config::from_yaml(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    match switchyard::gateway::Gateway::build(
        config,
        &switchyard::server::http_client(),
        Path::new("."),
    )
    .await
    {
        Ok(_) => panic!("the table was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_malformed_outcomes_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let mut text = outcomes(1.0, 0.0);
    text.push_str("{\"id\": \"x\", \"messages\": [], \"scores\": {\"cheap\": 2.0}}\n");
    std::fs::write(&file, text).unwrap();
    let err = build_error(&table("http://127.0.0.1:9/v1", &file, "")).await;
    let expected = format!("{}:13: scores.cheap", file.display());
    assert!(err.contains(&expected), "{err}");
}

#[tokio::test]
async fn models_in_the_outcomes_that_no_tier_serves_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("o.jsonl");
    let text = outcomes(1.0, 0.0).replace("\"strong\":1.0", "\"strong\":1.0,\"gpt-9\":0.5");
    assert!(text.contains("gpt-9"));
    std::fs::write(&file, text).unwrap();
    let err = build_error(&table("http://127.0.0.1:9/v1", &file, "")).await;
    assert!(
        err.contains("models no tier stands for: gpt-9") && err.contains("ignore_models"),
        "{err}"
    );

    // Listed on purpose: accepted.
    let mock = Mock::start().await;
    let yaml = table(&mock.url(), &file, "").replace(
        "    cache: false\n",
        "    cache: false\n    ignore_models: [gpt-9]\n",
    );
    let gw = Gateway::start(&yaml).await;
    assert_eq!(
        tier_of(&gw, "Translate 'yes' into Spanish").await.0,
        "budget"
    );

    // A mapping that names a model the files do not have is an error too.
    let yaml = table("http://127.0.0.1:9/v1", &file, "").replace(
        "    cache: false\n",
        "    cache: false\n    ignore_models: [gpt-9]\n    tiers: { budget: [chaep] }\n",
    );
    let err = build_error(&yaml).await;
    assert!(
        err.contains("routing.learned.tiers.budget") && err.contains("`chaep`"),
        "{err}"
    );
}

#[tokio::test]
async fn config_errors_name_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("o.jsonl");
    std::fs::write(&file, outcomes(1.0, 0.0)).unwrap();
    let yaml = table("http://127.0.0.1:9/v1", &file, "").replace("bar: 0.9", "bar: 1.5");
    let err = switchyard::config::Config::from_yaml(&yaml, "t.yaml").unwrap_err();
    assert_eq!(err.path, "routing.learned.bar");
    assert_eq!(err.line, Some(15), "{err}");

    let missing = dir.path().join("nowhere.jsonl");
    let err = switchyard::config::Config::from_yaml(
        &table("http://127.0.0.1:9/v1", &missing, ""),
        "t.yaml",
    )
    .unwrap_err();
    assert_eq!(err.path, "routing.learned.outcomes[0]");
    assert!(err.message.contains("does not exist"), "{err}");

    let yaml = table("http://127.0.0.1:9/v1", &file, "")
        .replace("    k: 4\n", "    k: 4\n    tiers: { mid: [cheap] }\n");
    let err = switchyard::config::Config::from_yaml(&yaml, "t.yaml").unwrap_err();
    assert_eq!(err.path, "routing.learned.tiers.mid");
    assert!(err.message.contains("unknown tier `mid`"), "{err}");

    // `auto` is for `switchyard eval`, which prints the method to write here.
    let yaml = table("http://127.0.0.1:9/v1", &file, "")
        .replace("    k: 4\n", "    k: 4\n    method: auto\n");
    let err = switchyard::config::Config::from_yaml(&yaml, "t.yaml").unwrap_err();
    assert!(err.to_string().contains("method"), "{err}");
    assert!(err.to_string().contains("ensemble"), "{err}");
}
