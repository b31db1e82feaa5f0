//! The learned layer's cost: one routing decision (embed a 200-token prompt, predict every tier's
//! score from 15,000 recorded outcomes, choose) and loading 50,000 outcome rows at start-up,
//! with the embedding cache cold and warm.
//!
//!     cargo bench --bench learned
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

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

const WORDS: &[&str] = &[
    "summarize",
    "translate",
    "prove",
    "debug",
    "explain",
    "classify",
    "write",
    "refactor",
    "extract",
    "outline",
    "article",
    "email",
    "python",
    "theorem",
    "prime",
    "report",
    "contract",
    "poem",
    "stack",
    "trace",
    "reviews",
    "meeting",
    "notes",
    "history",
    "empire",
    "economy",
    "function",
    "database",
    "query",
    "invoice",
    "customer",
    "schedule",
    "budget",
    "risk",
    "security",
    "policy",
    "recipe",
    "travel",
    "physics",
    "chemistry",
    "biology",
    "law",
    "music",
];

/// `n` outcome rows of prompts 30–80 words long, scored on three models.
fn write_outcomes(path: &Path, n: usize) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let len = rng.usize(30..80);
        let prompt: Vec<&str> = (0..len).map(|_| WORDS[rng.usize(..WORDS.len())]).collect();
        let row = serde_json::json!({
            "id": format!("r{i}"),
            "messages": [{"role": "user", "content": prompt.join(" ")}],
            "scores": {"cheap": f64::from(u8::from(rng.bool())), "middle": f64::from(u8::from(rng.f32() < 0.7)), "strong": 1.0},
        });
        writeln!(f, "{row}").unwrap();
    }
}

fn table(outcomes: &Path, method: &str, cache: &Path) -> String {
    format!(
        r#"
providers: {{ sim: {{ kind: simulated }} }}
models:
  - {{ name: cheap, provider: sim, price: {{ input: 0.1, output: 0.4 }} }}
  - {{ name: middle, provider: sim, price: {{ input: 1, output: 4 }} }}
  - {{ name: strong, provider: sim, price: {{ input: 10, output: 40 }} }}
tiers:
  budget: {{ models: [cheap] }}
  mid: {{ models: [middle] }}
  premium: {{ models: [strong] }}
routing:
  default: mid
  learned: {{ outcomes: ["{}"], method: {method}, cache: "{}" }}
"#,
        outcomes.display(),
        cache.display()
    )
}

async fn compile(yaml: &str) -> switchyard::routing::Learned {
    let config = switchyard::config::Config::from_yaml(yaml, "bench.yaml").unwrap();
    let lc = config.routing.learned.clone().unwrap();
    let embedder = switchyard::embed::Embedder::build(
        &lc.embedder,
        &config.providers,
        &reqwest::Client::new(),
        Path::new("."),
    )
    .unwrap();
    switchyard::routing::Learned::compile(&lc, &config, embedder, Path::new("."))
        .await
        .unwrap()
}

fn bench_decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("o15k.jsonl");
    write_outcomes(&file, 15_000);
    let cache = dir.path().join("cache");
    let mut g = c.benchmark_group("learned decision, 15,000 rows");
    for method in ["knn", "linear"] {
        let l = rt.block_on(compile(&table(&file, method, &cache)));
        assert_eq!(l.rows(), 15_000);
        g.bench_function(
            format!("{method}: embed 200-token prompt + predict + choose"),
            |b| b.iter(|| rt.block_on(l.decide(black_box(PROMPT), None)).unwrap()),
        );
    }
    g.finish();
}

/// Start-up: read, embed (or read the cache), train. Timed directly: a few runs of seconds each.
fn bench_load(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("o50k.jsonl");
    write_outcomes(&file, 50_000);
    let cache = dir.path().join("cache");
    let mut g = c.benchmark_group("learned load, 50,000 rows");
    g.sample_size(10);
    for method in ["knn", "linear"] {
        let yaml = table(&file, method, &cache);
        let _ = std::fs::remove_dir_all(&cache);
        let start = Instant::now();
        rt.block_on(compile(&yaml));
        println!(
            "{method}: cold cache (embeds 50,000 prompts): {:?}",
            start.elapsed()
        );
        g.bench_function(format!("{method}: warm embedding cache"), |b| {
            b.iter(|| rt.block_on(compile(&yaml)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decision, bench_load);
criterion_main!(benches);
