//! Routing quality of config/example.yaml on the labelled prompts in tests/data/routing_labels.yaml:
//! accuracy of the full table and of each layer alone, per embedder. Prints a report (the figures
//! in the README come from it) and fails if accuracy drops below the floors.
//!
//! Embedders beyond the built-in one run when their model is available: `SWITCHYARD_STATIC_MODEL`
//! (a model2vec folder) and, with `--features bert`, `SWITCHYARD_BERT_MODEL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use switchyard::config::Config;
use switchyard::gateway::Gateway;
use switchyard::openai::ChatRequest;

#[derive(Deserialize)]
struct Label {
    kind: String,
    tier: String,
    prompt: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn labels() -> Vec<Label> {
    let text = std::fs::read_to_string("tests/data/routing_labels.yaml").unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// The example table with its secrets filled in and, optionally, layers removed or the embedder swapped.
fn example(rules: bool, semantic: bool, embedder: &str) -> Config {
    let text = std::fs::read_to_string("config/example.yaml")
        .unwrap()
        .replace("${OPENAI_API_KEY}", "sk-test")
        .replace("${ANTHROPIC_API_KEY}", "sk-ant-test")
        .replace("embedder: { kind: hashed-ngrams }", embedder);
    let mut c = Config::from_yaml(&text, "config/example.yaml").unwrap_or_else(|e| panic!("{e}"));
    if !rules {
        c.routing.rules.clear();
        c.routing.cascade = None;
    }
    if !semantic {
        c.routing.semantic = None;
    }
    c
}

struct Score {
    correct: usize,
    total: usize,
    /// layer → (decided, correct)
    layers: BTreeMap<&'static str, (usize, usize)>,
    misses: Vec<String>,
}

async fn score(config: Config) -> Score {
    let gw = Gateway::build(
        config,
        &reqwest::Client::new(),
        std::path::Path::new("config"),
    )
    .await
    .unwrap();
    let mut s = Score {
        correct: 0,
        total: 0,
        layers: BTreeMap::new(),
        misses: Vec::new(),
    };
    for l in labels() {
        let mut body =
            json!({"model": "auto", "messages": [{"role": "user", "content": l.prompt}]});
        if !l.metadata.is_empty() {
            body["metadata"] = json!(l.metadata);
        }
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        let mut headers = http::HeaderMap::new();
        for (k, v) in &l.headers {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let d = gw.router.decide(&req, &headers).await.unwrap();
        let ok = *d.tier == *l.tier;
        s.total += 1;
        s.correct += usize::from(ok);
        let e = s.layers.entry(d.layer.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
        if !ok {
            s.misses.push(format!(
                "  [{}] want {} got {} via {d}: {:.70}",
                l.kind, l.tier, d.tier, l.prompt
            ));
        }
    }
    s
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

fn report(name: &str, s: &Score) -> f64 {
    let layers: Vec<String> = s
        .layers
        .iter()
        .map(|(l, (n, c))| format!("{l} {c}/{n} ({:.0}%)", pct(*c, *n)))
        .collect();
    println!(
        "{name:<34} {:>3}/{} = {:5.1}%   by layer: {}",
        s.correct,
        s.total,
        pct(s.correct, s.total),
        layers.join(", ")
    );
    pct(s.correct, s.total)
}

#[tokio::test]
async fn example_table_routes_the_labelled_prompts() {
    let n = labels().len();
    assert!(
        n >= 60,
        "the suite needs at least 60 labelled prompts, has {n}"
    );
    let mut embedders = vec![(
        "hashed-ngrams",
        "embedder: { kind: hashed-ngrams }".to_string(),
    )];
    if let Ok(p) = std::env::var("SWITCHYARD_STATIC_MODEL") {
        embedders.push((
            "static",
            format!("embedder: {{ kind: static, path: \"{p}\" }}"),
        ));
    }
    if cfg!(feature = "bert") {
        let p = std::env::var("SWITCHYARD_BERT_MODEL")
            .expect("--features bert needs SWITCHYARD_BERT_MODEL");
        embedders.push(("bert", format!("embedder: {{ kind: bert, path: \"{p}\" }}")));
    }
    println!("\nrouting quality on {n} labelled prompts (config/example.yaml)");
    let rules_only = score(example(true, false, "")).await;
    let rules_acc = report("rules + default", &rules_only);
    let mut full_hashed = 0.0;
    for (name, line) in &embedders {
        let sem = score(example(false, true, line)).await;
        report(&format!("semantic ({name}) + default"), &sem);
        let full = score(example(true, true, line)).await;
        let acc = report(&format!("full table ({name})"), &full);
        if *name == "hashed-ngrams" {
            full_hashed = acc;
            for m in &full.misses {
                println!("{m}");
            }
        }
        assert!(
            acc >= rules_acc,
            "{name}: adding the semantic layer made routing worse ({acc:.1}% < {rules_acc:.1}%)"
        );
    }
    assert!(
        full_hashed >= 85.0,
        "full table with the default embedder: {full_hashed:.1}% < 85%"
    );
}
