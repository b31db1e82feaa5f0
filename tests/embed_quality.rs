//! Sentence similarity of the embedders on `tests/data/similarity_pairs.yaml`: how much closer a
//! paraphrase is than an unrelated sentence. Prints a report (the README's figures come from it)
//! and holds the built-in model to a floor; with `--features bert` it also compares the built-in
//! model with the encoder it was distilled from, pair by pair.
//!
//!     cargo test --test embed_quality -- --nocapture
//!     SWITCHYARD_BERT_MODEL=… cargo test --features bert --test embed_quality -- --nocapture
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use switchyard::config::EmbedderConfig;
use switchyard::embed::{Embedder, cosine};

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
}

fn pairs() -> Vec<Pair> {
    let text = std::fs::read_to_string("tests/data/similarity_pairs.yaml").unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn embedder(yaml: &str) -> Embedder {
    let cfg: EmbedderConfig = serde_saphyr::from_str(yaml).unwrap();
    Embedder::build(
        &cfg,
        &BTreeMap::new(),
        &reqwest::Client::new(),
        Path::new("."),
    )
    .unwrap()
}

struct Similarity {
    /// Cosine of each paraphrase pair, then of each unrelated pair (`a[i]` with `b[i + n/2]`).
    para: Vec<f32>,
    unrelated: Vec<f32>,
}

impl Similarity {
    fn mean(v: &[f32]) -> f32 {
        v.iter().sum::<f32>() / v.len() as f32
    }

    /// Share of (paraphrase, unrelated) pairs of pairs in which the paraphrase scores higher:
    /// the ROC AUC of telling them apart by cosine.
    fn auc(&self) -> f64 {
        let mut wins = 0.0;
        for p in &self.para {
            for u in &self.unrelated {
                wins += if p > u {
                    1.0
                } else if p == u {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (self.para.len() * self.unrelated.len()) as f64
    }

    /// Share of sentences whose own paraphrase is the closest of all the `b` sentences.
    fn top1(&self, all: &[Vec<f32>], bs: &[Vec<f32>]) -> f64 {
        let hits = all
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                let best = bs
                    .iter()
                    .enumerate()
                    .max_by(|x, y| cosine(a, x.1).total_cmp(&cosine(a, y.1)))
                    .map(|(j, _)| j);
                best == Some(*i)
            })
            .count();
        hits as f64 / all.len() as f64
    }
}

async fn measure(e: &Embedder) -> (Similarity, f64, Vec<f32>) {
    let ps = pairs();
    let a: Vec<&str> = ps.iter().map(|p| p.a.as_str()).collect();
    let b: Vec<&str> = ps.iter().map(|p| p.b.as_str()).collect();
    let va = e.embed_batch(&a).await.unwrap();
    let vb = e.embed_batch(&b).await.unwrap();
    let n = ps.len();
    let para: Vec<f32> = (0..n).map(|i| cosine(&va[i], &vb[i])).collect();
    let unrelated: Vec<f32> = (0..n)
        .map(|i| cosine(&va[i], &vb[(i + n / 2) % n]))
        .collect();
    let s = Similarity { para, unrelated };
    let top1 = s.top1(&va, &vb);
    // The cosines of every pair of both kinds, for comparing two embedders' judgements.
    let all: Vec<f32> = s.para.iter().chain(&s.unrelated).copied().collect();
    (s, top1, all)
}

fn spearman(x: &[f32], y: &[f32]) -> f64 {
    fn ranks(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        for (rank, &i) in idx.iter().enumerate() {
            r[i] = rank as f64;
        }
        r
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let cov: f64 = rx
        .iter()
        .zip(&ry)
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    let var: f64 = rx.iter().map(|a| (a - mean) * (a - mean)).sum();
    cov / var
}

#[tokio::test]
async fn paraphrases_score_above_unrelated_sentences() {
    let n = pairs().len();
    assert!(n >= 30, "the check needs at least 30 pairs, has {n}");
    let mut kinds = vec![
        ("builtin", "kind: builtin".to_string()),
        ("hashed-ngrams", "kind: hashed-ngrams".to_string()),
    ];
    if let Ok(p) = std::env::var("SWITCHYARD_STATIC_MODEL") {
        kinds.push(("static", format!("{{ kind: static, path: \"{p}\" }}")));
    }
    if cfg!(feature = "bert") {
        let p = std::env::var("SWITCHYARD_BERT_MODEL")
            .expect("--features bert needs SWITCHYARD_BERT_MODEL");
        kinds.push(("bert", format!("{{ kind: bert, path: \"{p}\" }}")));
    }
    println!("\nsentence similarity on {n} paraphrase pairs and {n} unrelated pairs");
    println!(
        "  {:<14} {:>10} {:>10} {:>7} {:>7} {:>10}",
        "embedder", "paraphrase", "unrelated", "gap", "AUC", "top-1"
    );
    let mut all = BTreeMap::new();
    for (name, yaml) in &kinds {
        let (s, top1, cos) = measure(&embedder(yaml)).await;
        let (p, u) = (Similarity::mean(&s.para), Similarity::mean(&s.unrelated));
        println!(
            "  {name:<14} {p:>10.3} {u:>10.3} {:>7.3} {:>7.3} {:>9.0}%",
            p - u,
            s.auc(),
            100.0 * top1
        );
        all.insert(*name, (s, top1, cos));
    }
    let (builtin, top1, _) = &all["builtin"];
    assert!(builtin.auc() >= 0.95, "builtin AUC {:.3}", builtin.auc());
    assert!(*top1 >= 0.8, "builtin top-1 {top1:.2}");
    let (hashed, _, _) = &all["hashed-ngrams"];
    assert!(
        builtin.auc() > hashed.auc(),
        "the built-in model should tell paraphrase from unrelated text better than n-grams"
    );
    if let Some((bert, _, bert_cos)) = all.get("bert") {
        let rho = spearman(&all["builtin"].2, bert_cos);
        println!(
            "  builtin vs bert: Spearman correlation of all {} a-b cosines {rho:.3}",
            bert_cos.len()
        );
        assert!(
            rho > 0.5,
            "the distilled model should rank pairs like its encoder ({rho:.3})"
        );
        assert!(bert.auc() >= builtin.auc() - 0.05 || bert.auc() > 0.9);
    }
}
