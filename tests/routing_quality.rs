//! Routing quality of the shipped tables on labelled prompts, measured honestly: the tables'
//! thresholds and margins are chosen on `tests/data/routing_labels/tuning.yaml` (the `tune` test
//! below prints the sweep), and `heldout.yaml` only measures. Prints a report per configuration
//! (rules only; the semantic layer alone with each embedder; the full table), on both parts, and
//! fails when the held-out accuracy drops below the floors.
//!
//!     cargo test --test routing_quality -- --nocapture
//!     cargo test --test routing_quality -- --ignored tune --nocapture     # the threshold sweep
//!     cargo test --test routing_quality -- --ignored instruction_cv --nocapture
//!
//! Embedders beyond the built-in one and hashed n-grams run when their model is available:
//! `SWITCHYARD_STATIC_MODEL` (a model2vec folder) and, with `--features bert`,
//! `SWITCHYARD_BERT_MODEL` (the encoder the built-in model was distilled from).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use switchyard::config::{Config, EmbedderConfig, SemanticConfig};
use switchyard::gateway::Gateway;
use switchyard::openai::ChatRequest;
use switchyard::routing::Decision;

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

fn labels(part: &str) -> Vec<Label> {
    let path = format!("tests/data/routing_labels/{part}.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Clone, Copy, PartialEq)]
enum Layers {
    RulesOnly,
    SemanticOnly,
    Full,
}

/// A shipped table with its secrets filled in, layers removed as asked, and the embedder replaced
/// when `embedder` is given (YAML of `routing.semantic.embedder`).
fn table(file: &str, layers: Layers, embedder: Option<&str>) -> Config {
    let text = std::fs::read_to_string(file)
        .unwrap()
        .replace("${OPENAI_API_KEY}", "sk-test")
        .replace("${ANTHROPIC_API_KEY}", "sk-ant-test");
    let mut c = Config::from_yaml(&text, file).unwrap_or_else(|e| panic!("{e}"));
    if layers == Layers::SemanticOnly {
        c.routing.rules.clear();
        c.routing.cascade = None;
    }
    if layers == Layers::RulesOnly {
        c.routing.semantic = None;
    }
    if let (Some(sem), Some(e)) = (c.routing.semantic.as_mut(), embedder) {
        sem.embedder = serde_saphyr::from_str::<EmbedderConfig>(e).unwrap();
    }
    c
}

fn request(l: &Label) -> (ChatRequest, http::HeaderMap) {
    let mut body = json!({"model": "auto", "messages": [{"role": "user", "content": l.prompt}]});
    if !l.metadata.is_empty() {
        body["metadata"] = json!(l.metadata);
    }
    let mut headers = http::HeaderMap::new();
    for (k, v) in &l.headers {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    (serde_json::from_value(body).unwrap(), headers)
}

async fn decisions(config: Config, labels: &[Label]) -> Vec<Decision> {
    let gw = Gateway::build(
        config,
        &reqwest::Client::new(),
        std::path::Path::new("config"),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for l in labels {
        let (req, headers) = request(l);
        out.push(gw.router.decide(&req, &headers).await.unwrap());
    }
    out
}

struct Score {
    correct: usize,
    total: usize,
    /// layer → (decided, correct)
    layers: BTreeMap<&'static str, (usize, usize)>,
    misses: Vec<String>,
}

fn score(labels: &[Label], ds: &[Decision]) -> Score {
    let mut s = Score {
        correct: 0,
        total: 0,
        layers: BTreeMap::new(),
        misses: Vec::new(),
    };
    for (l, d) in labels.iter().zip(ds) {
        let ok = *d.tier == *l.tier;
        s.total += 1;
        s.correct += usize::from(ok);
        let e = s.layers.entry(d.layer.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
        if !ok {
            s.misses.push(format!(
                "    [{}] want {} got {} via {d}: {:.80}",
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

fn line(name: &str, s: &Score) -> String {
    let layers: Vec<String> = s
        .layers
        .iter()
        .map(|(l, (n, c))| format!("{l} {c}/{n}"))
        .collect();
    format!(
        "{name:<38} {:>3}/{:<3} = {:5.1}%   {}",
        s.correct,
        s.total,
        pct(s.correct, s.total),
        layers.join(", ")
    )
}

/// The embedders to compare: always the built-in model and hashed n-grams; the others when
/// their model is there.
/// `builtin` is the table's own embedder (the built-in model, with the n-grams the table adds
/// to it); `builtin alone` is the model without them.
fn embedders() -> Vec<(&'static str, Option<String>)> {
    let mut e = vec![
        ("builtin", None),
        ("builtin alone", Some("kind: builtin".to_string())),
        ("hashed-ngrams", Some("kind: hashed-ngrams".to_string())),
    ];
    if let Ok(p) = std::env::var("SWITCHYARD_STATIC_MODEL") {
        e.push(("static", Some(format!("{{ kind: static, path: \"{p}\" }}"))));
    }
    if cfg!(feature = "bert") {
        let p = std::env::var("SWITCHYARD_BERT_MODEL")
            .expect("--features bert needs SWITCHYARD_BERT_MODEL");
        e.push(("bert", Some(format!("{{ kind: bert, path: \"{p}\" }}"))));
    }
    e
}

/// Accuracy of one table on one part, per configuration; prints the report and returns
/// (configuration → accuracy).
async fn report(file: &str, part: &str, show_misses: bool) -> BTreeMap<String, f64> {
    let labels = labels(part);
    println!(
        "\n{file} on {part}.yaml ({} labelled prompts)",
        labels.len()
    );
    let mut acc = BTreeMap::new();
    let rules = score(
        &labels,
        &decisions(table(file, Layers::RulesOnly, None), &labels).await,
    );
    println!("  {}", line("rules + default", &rules));
    acc.insert("rules".to_string(), pct(rules.correct, rules.total));
    for (name, e) in embedders() {
        let sem = score(
            &labels,
            &decisions(table(file, Layers::SemanticOnly, e.as_deref()), &labels).await,
        );
        println!("  {}", line(&format!("semantic ({name}) + default"), &sem));
        acc.insert(format!("semantic {name}"), pct(sem.correct, sem.total));
        let full = score(
            &labels,
            &decisions(table(file, Layers::Full, e.as_deref()), &labels).await,
        );
        println!("  {}", line(&format!("full table ({name})"), &full));
        acc.insert(format!("full {name}"), pct(full.correct, full.total));
        if show_misses && name == "builtin" {
            println!("  misses of the full table (builtin):");
            for m in &full.misses {
                println!("{m}");
            }
        }
    }
    acc
}

#[tokio::test]
async fn shipped_tables_route_the_labelled_prompts() {
    assert!(
        labels("tuning").len() >= 60,
        "the tuning part needs at least 60 prompts"
    );
    assert!(
        labels("heldout").len() >= 100,
        "the held-out part needs at least 100 prompts"
    );
    // No prompt may be in both parts.
    let tuning: std::collections::HashSet<String> =
        labels("tuning").into_iter().map(|l| l.prompt).collect();
    for l in labels("heldout") {
        assert!(!tuning.contains(&l.prompt), "in both parts: {}", l.prompt);
    }

    report("config/example.yaml", "tuning", true).await;
    let held = report("config/example.yaml", "heldout", true).await;
    for (name, acc) in &held {
        if let Some(e) = name.strip_prefix("full ") {
            assert!(
                *acc >= held["rules"],
                "{e}: adding the semantic layer made held-out routing worse ({acc:.1}% < {:.1}%)",
                held["rules"]
            );
        }
    }
    // The targets are 90% (full table) and 80% (semantic layer alone) on held-out
    // prompts, with `scoring: linear` chosen by `scoring_cv`, `instruction_weight` by
    // `instruction_cv` and the embedder's `ngrams` by `ngrams_cv` on the tuning part. The floors
    // sit just below what the shipped tables reach now (the figures are deterministic), so that
    // a change that routes even one more held-out prompt wrong fails.
    for (what, key, floor, target) in [
        ("full example table", "full builtin", 94.0, 90.0),
        (
            "semantic layer alone (built-in model)",
            "semantic builtin",
            81.0,
            80.0,
        ),
    ] {
        let acc = held[key];
        println!("  {what}, held-out: {acc:.1}% (target {target:.0}%, floor {floor:.1}%)");
        assert!(acc >= floor, "{what}, held-out: {acc:.1}% < {floor:.1}%");
    }
    // The demo table has no `local` tier, so the prompts marked confidential cannot be right
    // there; its floor is its own figure less a fraction of a prompt.
    let demo = report("config/demo.yaml", "heldout", false).await;
    let acc = demo["full builtin"];
    println!("  full demo table, held-out: {acc:.1}% (floor 88.0%)");
    assert!(acc >= 88.0, "full demo table, held-out: {acc:.1}% < 88.0%");
}

/// The sweep the shipped thresholds and margins come from: tuning data only. For each table and
/// each global threshold × margin (and a separate premium threshold), the accuracy of the full
/// table and of the semantic layer alone on tuning.yaml, best first.
#[tokio::test]
#[ignore = "prints the tuning sweep; run with --ignored tune --nocapture"]
async fn tune() {
    let labels = labels("tuning");
    for file in ["config/example.yaml", "config/demo.yaml"] {
        let full = decisions(table(file, Layers::Full, None), &labels).await;
        let sem = decisions(table(file, Layers::SemanticOnly, None), &labels).await;
        let default = table(file, Layers::Full, None)
            .routing
            .default
            .value
            .clone();
        let mut rows = Vec::new();
        for t in (0..=70).step_by(2) {
            for tp in (0..=70).step_by(2) {
                for m in 0..=10 {
                    let (t, tp, m) = (t as f32 / 100.0, tp as f32 / 100.0, m as f32 / 100.0);
                    let acc = |ds: &[Decision]| {
                        let ok = labels
                            .iter()
                            .zip(ds)
                            .filter(|(l, d)| replay(d, t, tp, m, &default) == l.tier)
                            .count();
                        pct(ok, labels.len())
                    };
                    rows.push((acc(&full), acc(&sem), t, tp, m));
                }
            }
        }
        // Full table first; the layer alone breaks ties; then the least permissive setting.
        rows.sort_by(|a, b| {
            (b.0 + b.1 / 100.0)
                .total_cmp(&(a.0 + a.1 / 100.0))
                .then(b.2.total_cmp(&a.2))
                .then(b.4.total_cmp(&a.4))
        });
        println!(
            "\n{file} on tuning.yaml: full %, semantic alone %, threshold, premium threshold, margin"
        );
        for r in rows.iter().take(
            std::env::var("TUNE_ROWS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(15),
        ) {
            println!(
                "  {:5.1} {:5.1}   {:.2} {:.2} {:.2}",
                r.0, r.1, r.2, r.3, r.4
            );
        }
    }
}

/// What the router would have decided with other semantic settings, from a decision that holds
/// every tier's similarity.
fn replay(d: &Decision, t: f32, t_premium: f32, margin: f32, default: &str) -> String {
    if d.layer.as_str() == "rules" {
        return d.tier.to_string();
    }
    match d.scores.as_slice() {
        [(tier, s), rest @ ..] => {
            let th = if &**tier == "premium" { t_premium } else { t };
            if *s >= th && rest.first().is_none_or(|r| s - r.1 >= margin) {
                tier.to_string()
            } else {
                default.to_string()
            }
        }
        [] => default.to_string(),
    }
}

/// How `scoring` was chosen, on the tuning part only: 5-fold cross-validation of the threshold
/// choice (repeated over 4 fold assignments). For each scoring, the threshold, premium threshold
/// and margin are picked on four folds (full table counted twice, the layer alone once) and the
/// fifth is routed with them; the accuracy over the held-back folds is printed.
#[tokio::test]
#[ignore = "prints the scoring cross-validation; run with --ignored scoring_cv --nocapture"]
async fn scoring_cv() {
    let labels = labels("tuning");
    let file = "config/example.yaml";
    let grid: Vec<(f32, f32, f32)> = (0..=30)
        .flat_map(|t| {
            (0..=30).flat_map(move |tp| {
                (0..=5).map(move |m| (t as f32 / 50.0, tp as f32 / 50.0, m as f32 / 50.0))
            })
        })
        .collect();
    println!("\n{file} on tuning.yaml, cross-validated: full table %, semantic alone %");
    for scoring in ["max", "{ top: 2 }", "{ top: 3 }", "centroid", "linear"] {
        let with = |layers| {
            let mut c = table(file, layers, None);
            if let Some(sem) = c.routing.semantic.as_mut() {
                sem.scoring = serde_saphyr::from_str(scoring).unwrap();
            }
            c
        };
        let full = decisions(with(Layers::Full), &labels).await;
        let sem = decisions(with(Layers::SemanticOnly), &labels).await;
        let default = with(Layers::Full).routing.default.value.clone();
        let ok = |i: usize, (t, tp, m): (f32, f32, f32)| {
            (
                usize::from(replay(&full[i], t, tp, m, &default) == labels[i].tier),
                usize::from(replay(&sem[i], t, tp, m, &default) == labels[i].tier),
            )
        };
        let (mut right_full, mut right_sem, mut n) = (0, 0, 0);
        for rep in 0..4 {
            for f in 0..5 {
                let held = |i: usize| (i * 7 + rep * 3) % 5 == f;
                let mut best = (0, grid[0]);
                for &g in &grid {
                    let fit: usize = (0..labels.len())
                        .filter(|&i| !held(i))
                        .map(|i| {
                            let (a, b) = ok(i, g);
                            2 * a + b
                        })
                        .sum();
                    if fit > best.0 {
                        best = (fit, g);
                    }
                }
                for i in (0..labels.len()).filter(|&i| held(i)) {
                    let (a, b) = ok(i, best.1);
                    right_full += a;
                    right_sem += b;
                    n += 1;
                }
            }
        }
        println!(
            "  {scoring:<12} {:5.1} {:5.1}",
            pct(right_full, n),
            pct(right_sem, n)
        );
    }
}

/// How `scoring: linear`'s weight penalty was chosen, and whether labelled examples help it, on
/// the tuning part only. The layer alone (the likeliest tier wins; no threshold): for each
/// penalty, fitted on the utterances and routing every tuning prompt; then, at the shipped
/// penalty, 5-fold cross-validation with four folds' prompts given as `examples` and the fifth
/// routed.
#[tokio::test]
#[ignore = "prints the linear scoring sweep; run with --ignored linear_cv --nocapture"]
async fn linear_cv() {
    use switchyard::embed::{Embedder, builtin_model};
    use switchyard::routing::Semantic;
    use switchyard::routing::semantic::LINEAR_L2;
    let labels = labels("tuning");
    let file = "config/example.yaml";
    let mut cfg = table(file, Layers::SemanticOnly, None)
        .routing
        .semantic
        .unwrap();
    cfg.scoring = serde_saphyr::from_str("linear").unwrap();
    cfg.threshold = 0.0;
    cfg.thresholds.clear();
    cfg.margin = 0.0;
    let default = table(file, Layers::Full, None)
        .routing
        .default
        .value
        .clone();
    async fn right(sem: &Semantic, l: &Label, default: &str) -> usize {
        let s = sem.score(&l.prompt).await.unwrap();
        let tier = s.chosen.map_or(default.to_string(), |(t, _)| t.to_string());
        usize::from(tier == l.tier)
    }
    println!("\n{file} on tuning.yaml, linear scoring, layer alone %");
    for l2 in [1e-4f32, 1e-3, 3e-3, 1e-2, 3e-2] {
        let sem =
            Semantic::with_penalty(&cfg, Embedder::Builtin(builtin_model().unwrap()), &[], l2)
                .await
                .unwrap();
        let mut ok = 0;
        for l in &labels {
            ok += right(&sem, l, &default).await;
        }
        println!(
            "  penalty {l2:<7} utterances only          {:5.1}",
            pct(ok, labels.len())
        );
    }
    let (mut ok, mut n) = (0, 0);
    for f in 0..5 {
        let held = |i: usize| (i * 7) % 5 == f;
        // Prompts labelled by a header (local) say nothing about their tier in their words.
        let examples: Vec<(String, String)> = labels
            .iter()
            .enumerate()
            .filter(|(i, l)| !held(*i) && l.headers.is_empty())
            .map(|(_, l)| (l.tier.clone(), l.prompt.clone()))
            .collect();
        let sem = Semantic::with_penalty(
            &cfg,
            Embedder::Builtin(builtin_model().unwrap()),
            &examples,
            LINEAR_L2,
        )
        .await
        .unwrap();
        for (_, l) in labels.iter().enumerate().filter(|(i, _)| held(*i)) {
            ok += right(&sem, l, &default).await;
            n += 1;
        }
    }
    println!(
        "  penalty {LINEAR_L2:<7} + four folds as examples {:5.1}",
        pct(ok, n)
    );
}

/// The semantic layer alone on the tuning part, for each setting: fitted on the utterances and
/// routing every tuning prompt (the likeliest tier wins), then 5-fold cross-validation with four
/// folds' prompts as `examples` and the fifth routed (repeated over 4 fold assignments).
async fn layer_cv(what: &str, settings: Vec<(String, SemanticConfig)>) {
    use switchyard::embed::Embedder;
    use switchyard::routing::Semantic;
    let labels = labels("tuning");
    let file = "config/example.yaml";
    let default = table(file, Layers::Full, None)
        .routing
        .default
        .value
        .clone();
    async fn right(sem: &Semantic, l: &Label, default: &str) -> usize {
        let s = sem.score(&l.prompt).await.unwrap();
        let tier = s.chosen.map_or(default.to_string(), |(t, _)| t.to_string());
        usize::from(tier == l.tier)
    }
    let embedder = |cfg: &SemanticConfig| {
        Embedder::build(
            &cfg.embedder,
            &BTreeMap::new(),
            &reqwest::Client::new(),
            std::path::Path::new("."),
        )
        .unwrap()
    };
    println!(
        "\n{file} on tuning.yaml, layer alone %: utterances only, cross-validated with examples"
    );
    for (name, cfg) in settings {
        let sem = Semantic::with_examples(&cfg, embedder(&cfg), &[])
            .await
            .unwrap();
        let mut ok = 0;
        for l in &labels {
            ok += right(&sem, l, &default).await;
        }
        let (mut cv, mut n) = (0, 0);
        for rep in 0..4 {
            for f in 0..5 {
                let held = |i: usize| (i * 7 + rep * 3) % 5 == f;
                let examples: Vec<(String, String)> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, l)| !held(*i) && l.headers.is_empty())
                    .map(|(_, l)| (l.tier.clone(), l.prompt.clone()))
                    .collect();
                let sem = Semantic::with_examples(&cfg, embedder(&cfg), &examples)
                    .await
                    .unwrap();
                for (_, l) in labels.iter().enumerate().filter(|(i, _)| held(*i)) {
                    cv += right(&sem, l, &default).await;
                    n += 1;
                }
            }
        }
        println!(
            "  {what} {name:<5} {:5.1}   {:5.1}",
            pct(ok, labels.len()),
            pct(cv, n)
        );
    }
}

/// The example table's semantic section with the likeliest tier winning, and `change` applied
/// for each of `values` (or the comma-separated list in the environment variable `env`).
fn layer_settings(
    env: &str,
    values: &[f32],
    change: impl Fn(&mut SemanticConfig, f32),
) -> Vec<(String, SemanticConfig)> {
    let mut cfg = table("config/example.yaml", Layers::SemanticOnly, None)
        .routing
        .semantic
        .unwrap();
    cfg.threshold = 0.0;
    cfg.thresholds.clear();
    cfg.margin = 0.0;
    let values: Vec<f32> = std::env::var(env)
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| values.to_vec());
    values
        .into_iter()
        .map(|v| {
            let mut c = cfg.clone();
            change(&mut c, v);
            (v.to_string(), c)
        })
        .collect()
}

/// How `instruction_weight` was chosen, on the tuning part only (see [`layer_cv`]), with the
/// table's embedder. `SEM_WEIGHTS` (comma-separated) replaces the weights tried.
#[tokio::test]
#[ignore = "prints the instruction-weight sweep; run with --ignored instruction_cv --nocapture"]
async fn instruction_cv() {
    let settings = layer_settings("SEM_WEIGHTS", &[0.0, 0.25, 0.4, 0.5, 0.6, 0.75], |c, w| {
        c.instruction_weight = w
    });
    layer_cv("instruction_weight", settings).await;
}

/// How the embedder's `ngrams` weight was chosen, on the tuning part only (see [`layer_cv`]).
/// `SEM_NGRAMS` (comma-separated) replaces the weights tried.
#[tokio::test]
#[ignore = "prints the n-gram weight sweep; run with --ignored ngrams_cv --nocapture"]
async fn ngrams_cv() {
    let settings = layer_settings(
        "SEM_NGRAMS",
        &[0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0],
        |c, w| c.embedder.ngrams = Some(w),
    );
    layer_cv("ngrams", settings).await;
}
