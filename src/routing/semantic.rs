//! Layer 2: semantic similarity. Each tier's example utterances are embedded once, when the config
//! is compiled; a request's text is embedded and compared with all of them. The best tier wins when
//! its similarity clears the threshold and beats the runner-up tier by the margin; otherwise the
//! layer abstains and the next one decides. With enough utterances, their mean is taken out of
//! every vector first (`center`), which spreads the similarities apart.

use crate::config::SemanticConfig;
use crate::embed::{EmbedError, Embedder};
use std::sync::Arc;

/// Below this many utterances their mean is too noisy to take out, and `center` defaults to off.
pub const CENTER_MIN_UTTERANCES: usize = 10;

pub struct Semantic {
    embedder: Embedder,
    tiers: Vec<Arc<str>>,
    thresholds: Vec<f32>,
    margin: f32,
    dims: usize,
    /// All utterance vectors, row-major, one row per utterance.
    matrix: Vec<f32>,
    /// The tier (index into `tiers`) of each row.
    row_tier: Vec<usize>,
    /// The mean of the utterance vectors, taken out of them and of every prompt before comparing
    /// (all zeros when centring is off). Embeddings share a direction that has nothing to do with
    /// the task (what any English sentence looks like); a static model's means share it most, and
    /// it squeezes every similarity into a narrow band where the tiers are hard to tell apart.
    centre: Vec<f32>,
}

/// The layer's verdict on one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Best similarity per tier, highest first.
    pub tiers: Vec<(Arc<str>, f32)>,
    /// The tier chosen, when one clears its threshold and the margin.
    pub chosen: Option<(Arc<str>, f32)>,
}

impl Semantic {
    pub async fn compile(cfg: &SemanticConfig, embedder: Embedder) -> Result<Semantic, String> {
        let mut tiers = Vec::new();
        let mut thresholds = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        let mut row_tier = Vec::new();
        for (tier, utterances) in &cfg.utterances {
            let idx = tiers.len();
            tiers.push(Arc::from(tier.as_str()));
            thresholds.push(cfg.thresholds.get(tier).copied().unwrap_or(cfg.threshold));
            for u in utterances {
                texts.push(u.as_str());
                row_tier.push(idx);
            }
        }
        let vectors = embedder
            .embed_batch(&texts)
            .await
            .map_err(|e| format!("routing.semantic: embedding the utterances failed: {e}"))?;
        let dims = vectors.first().map_or(0, Vec::len);
        if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dims) {
            return Err(
                "routing.semantic: the embedder returned vectors of inconsistent size".into(),
            );
        }
        let mut centre = vec![0f32; dims];
        if cfg.center.unwrap_or(vectors.len() >= CENTER_MIN_UTTERANCES) {
            for v in &vectors {
                for (c, x) in centre.iter_mut().zip(v) {
                    *c += x / vectors.len() as f32;
                }
            }
        }
        let mut vectors = vectors;
        for v in &mut vectors {
            for (x, c) in v.iter_mut().zip(&centre) {
                *x -= c;
            }
            crate::embed::normalize(v);
        }
        Ok(Semantic {
            embedder,
            tiers,
            thresholds,
            margin: cfg.margin,
            dims,
            matrix: vectors.concat(),
            row_tier,
            centre,
        })
    }

    pub fn embedder_name(&self) -> &'static str {
        self.embedder.name()
    }

    pub fn utterances(&self) -> usize {
        self.row_tier.len()
    }

    pub async fn score(&self, text: &str) -> Result<Scores, EmbedError> {
        let mut v = self.embedder.embed(text).await?;
        if v.len() == self.centre.len() {
            for (x, c) in v.iter_mut().zip(&self.centre) {
                *x -= c;
            }
            crate::embed::normalize(&mut v);
        }
        Ok(self.score_vector(&v))
    }

    /// Scores an already embedded text (also what the benchmark measures without the embedder).
    pub fn score_vector(&self, v: &[f32]) -> Scores {
        let mut best = vec![f32::NEG_INFINITY; self.tiers.len()];
        if v.len() == self.dims && self.dims > 0 {
            for (row, &t) in self.matrix.chunks_exact(self.dims).zip(&self.row_tier) {
                let s = crate::embed::cosine(row, v);
                if let Some(b) = best.get_mut(t) {
                    if s > *b {
                        *b = s;
                    }
                }
            }
        }
        let mut tiers: Vec<(Arc<str>, f32, f32)> = self
            .tiers
            .iter()
            .zip(&best)
            .zip(&self.thresholds)
            .filter(|((_, s), _)| s.is_finite())
            .map(|((t, s), th)| (t.clone(), *s, *th))
            .collect();
        tiers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let chosen = match tiers.as_slice() {
            [(t, s, th), rest @ ..]
                if *s >= *th && rest.first().is_none_or(|r| s - r.1 >= self.margin) =>
            {
                Some((t.clone(), *s))
            }
            _ => None,
        };
        Scores {
            tiers: tiers.into_iter().map(|(t, s, _)| (t, s)).collect(),
            chosen,
        }
    }
}
