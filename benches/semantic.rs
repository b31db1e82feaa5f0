//! The semantic layer's cost per request: embed one prompt, score it against every utterance.
//!
//!     cargo bench --bench semantic
//!     SWITCHYARD_STATIC_MODEL=/path/to/potion-base-8M cargo bench --bench semantic   # a real model
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use switchyard::embed::{HashedNgrams, StaticModel, cosine, static_testing};

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

fn bench_static(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (model, label) = match std::env::var("SWITCHYARD_STATIC_MODEL") {
        Ok(p) => (
            StaticModel::load(&p, Path::new(".")).unwrap(),
            "static (real model)",
        ),
        Err(_) => {
            static_testing::write_model(tmp.path()).unwrap();
            (
                StaticModel::load(tmp.path().to_str().unwrap(), Path::new(".")).unwrap(),
                "static (tiny test model)",
            )
        }
    };
    let utts: Vec<Vec<f32>> = utterances()
        .iter()
        .map(|u| model.embed(u).unwrap())
        .collect();
    let mut g = c.benchmark_group(label);
    g.bench_function("embed 200-token prompt + score 100", |b| {
        b.iter(|| best(&model.embed(black_box(PROMPT)).unwrap(), &utts))
    });
    g.finish();
}

criterion_group!(benches, bench_hashed, bench_static);
criterion_main!(benches);
