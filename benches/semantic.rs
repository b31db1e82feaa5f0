//! The semantic layer's cost per request: embed one prompt, score it against every utterance.
//!
//!     cargo bench --bench semantic
//!     cargo bench --bench semantic -- builtin           # the built-in model only
//!     SWITCHYARD_STATIC_MODEL=/path/to/potion-base-8M cargo bench --bench semantic   # a real model
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use switchyard::embed::Embedder;
use switchyard::embed::{
    HashedNgrams, StaticModel, builtin_model, cosine, parse_builtin_model, static_testing,
};
use switchyard::routing::Semantic;

/// About 200 tokens (~1,000 characters) of an ordinary request.
const PROMPT: &str = "I have a long article about the history of the Roman Empire and I would like \
you to summarize it in five bullet points, focusing on the political changes, the economic \
pressures, and the military campaigns that shaped its decline. Please keep each bullet under \
twenty words and avoid jargon where possible. The article starts with the reign of Augustus, \
covers the crisis of the third century, the reforms of Diocletian and Constantine, and ends with \
the deposition of Romulus Augustulus in 476. It also discusses how historians have debated the \
causes of the fall, from Gibbon's emphasis on moral decay to modern arguments about climate, \
plague, migration and fiscal strain. Include one bullet on historiography. Thanks! Also mention \
the role of the Eastern Roman Empire, which survived for another thousand years, and contrast its \
administration with the West. If possible, suggest two further readings that are accessible to a \
general audience.";

/// 100 utterances of the kind a routing table lists per tier.
fn utterances() -> Vec<String> {
    let verbs = [
        "summarize",
        "translate",
        "prove",
        "debug",
        "explain",
        "classify",
        "write",
        "refactor",
        "extract the dates from",
        "outline",
    ];
    let objects = [
        "this article",
        "the following email",
        "my python code",
        "a theorem about prime numbers",
        "the quarterly sales report",
        "this contract clause",
        "a short poem about autumn",
        "the stack trace below",
        "these customer reviews",
        "the meeting notes",
    ];
    verbs
        .iter()
        .flat_map(|v| objects.iter().map(move |o| format!("{v} {o}")))
        .collect()
}

fn best(prompt: &[f32], utts: &[Vec<f32>]) -> f32 {
    utts.iter()
        .map(|u| cosine(prompt, u))
        .fold(f32::MIN, f32::max)
}

fn bench_hashed(c: &mut Criterion) {
    let e = HashedNgrams::new(HashedNgrams::DEFAULT_DIMS);
    let utts: Vec<Vec<f32>> = utterances().iter().map(|u| e.embed(u)).collect();
    assert_eq!(utts.len(), 100);
    let mut g = c.benchmark_group("hashed-ngrams");
    g.bench_function("embed 200-token prompt + score 100", |b| {
        b.iter(|| best(&e.embed(black_box(PROMPT)), &utts))
    });
    g.bench_function("embed 200-token prompt", |b| {
        b.iter(|| e.embed(black_box(PROMPT)))
    });
    let v = e.embed(PROMPT);
    g.bench_function("score 100", |b| b.iter(|| best(black_box(&v), &utts)));
    g.finish();
}

/// A model with potion-base-8M's shape: the BERT-uncased vocabulary and tokenizer (30,522 tokens,
/// from the model folder CI installs) and a 256-dimensional matrix. The weights are synthetic; the
/// cost of embedding does not depend on their values.
fn potion_shaped(dir: &Path, bert_dir: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tokenizer =
        std::fs::read(Path::new(bert_dir).join("tokenizer.json")).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&tokenizer).map_err(|e| e.to_string())?;
    let rows = v["model"]["vocab"].as_object().map_or(0, |m| m.len());
    let dims = 256;
    let matrix: Vec<f32> = (0..rows * dims)
        .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let bytes = static_testing::safetensors_bytes(&[(
        "embeddings",
        safetensors::Dtype::F32,
        vec![rows, dims],
        static_testing::f32_bytes(&matrix),
    )])?;
    static_testing::write(dir, "model.safetensors", &bytes)?;
    static_testing::write(dir, "tokenizer.json", &tokenizer)
}

fn bench_static(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    if let Ok(p) = std::env::var("SWITCHYARD_STATIC_MODEL") {
        models.push((
            StaticModel::load(&p, Path::new(".")).unwrap(),
            "static (real model)",
        ));
    }
    if let Ok(bert) = std::env::var("SWITCHYARD_BERT_MODEL") {
        let dir = tmp.path().join("potion");
        potion_shaped(&dir, &bert).unwrap();
        models.push((
            StaticModel::load(dir.to_str().unwrap(), Path::new(".")).unwrap(),
            "static (potion-shaped: BERT vocabulary, 256 dims)",
        ));
    }
    let tiny = tmp.path().join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    static_testing::write_model(&tiny).unwrap();
    models.push((
        StaticModel::load(tiny.to_str().unwrap(), Path::new(".")).unwrap(),
        "static (tiny test model)",
    ));
    for (model, label) in &models {
        let utts: Vec<Vec<f32>> = utterances()
            .iter()
            .map(|u| model.embed(u).unwrap())
            .collect();
        let mut g = c.benchmark_group(*label);
        g.bench_function("embed 200-token prompt + score 100", |b| {
            b.iter(|| best(&model.embed(black_box(PROMPT)).unwrap(), &utts))
        });
        g.finish();
    }
}

/// The model compiled into switchyard, the semantic layer's default: the budget is 30 µs
/// for embedding the 200-token prompt and scoring 100 utterances.
fn bench_builtin(c: &mut Criterion) {
    let model = builtin_model().unwrap();
    let utts: Vec<Vec<f32>> = utterances()
        .iter()
        .map(|u| model.embed(u).unwrap())
        .collect();
    let mut g = c.benchmark_group("builtin");
    g.bench_function("embed 200-token prompt + score 100", |b| {
        b.iter(|| best(&model.embed(black_box(PROMPT)).unwrap(), &utts))
    });
    g.bench_function("embed 200-token prompt", |b| {
        b.iter(|| model.embed(black_box(PROMPT)).unwrap())
    });
    // The whole layer as the example table compiles it (`scoring: linear`, 103 utterances):
    // embed, centre, and one tier-probability product.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let text = std::fs::read_to_string("config/example.yaml")
        .unwrap()
        .replace("${OPENAI_API_KEY}", "sk-test")
        .replace("${ANTHROPIC_API_KEY}", "sk-ant-test");
    let cfg = switchyard::config::Config::from_yaml(&text, "config/example.yaml").unwrap();
    let sem_cfg = cfg.routing.semantic.unwrap();
    // The table's own embedder: the built-in model with its `ngrams` weight.
    let embedder = || {
        Embedder::build(
            &sem_cfg.embedder,
            &std::collections::BTreeMap::new(),
            &reqwest::Client::new(),
            Path::new("config"),
        )
        .unwrap()
    };
    let with_ngrams = embedder();
    let utts_ngrams: Vec<Vec<f32>> = utterances()
        .iter()
        .map(|u| rt.block_on(with_ngrams.embed(u)).unwrap())
        .collect();
    g.bench_function(
        "embed 200-token prompt + score 100, example table's n-grams",
        |b| {
            b.iter(|| {
                best(
                    &rt.block_on(with_ngrams.embed(black_box(PROMPT))).unwrap(),
                    &utts_ngrams,
                )
            })
        },
    );
    let sem = rt
        .block_on(Semantic::with_examples(&sem_cfg, embedder(), &[]))
        .unwrap();
    g.bench_function(
        "example table layer (linear): embed 200-token prompt + score",
        |b| b.iter(|| rt.block_on(sem.score(black_box(PROMPT))).unwrap()),
    );
    g.bench_function("tokenize 200-token prompt", |b| {
        b.iter(|| model.token_ids(black_box(PROMPT)).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("builtin start-up");
    g.sample_size(10);
    g.bench_function("parse the compiled-in model", |b| {
        b.iter(|| parse_builtin_model().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_builtin, bench_hashed, bench_static);
criterion_main!(benches);
