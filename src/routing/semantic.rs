//! Layer 2: semantic similarity. Each tier's example utterances are embedded once, when the config
//! is compiled; a request's text is embedded and compared with all of them. The best tier wins when
//! its similarity clears the threshold and beats the runner-up tier by the margin; otherwise the
//! layer abstains and the next one decides. With enough utterances, their mean is taken out of
//! every vector first (`center`), which spreads the similarities apart. With `scoring: { top: N }`
//! a tier scores the mean of its N most similar utterances instead of its closest one, and with
//! `scoring: centroid` the mean direction of all of them. With `scoring: linear` a logistic
//! regression fitted on all the examples gives each tier's probability (`tier_classifier`).
//! Labelled prompts from `examples` join their tier's utterances in every scoring. With
//! `instruction_weight`, every text's vector is mixed with its request's (`instruction`), so that a
//! long pasted text does not outweigh what is asked of it.

use super::instruction::instruction;
use super::tier_classifier::TierClassifier;
use crate::config::{SemanticConfig, SemanticScoring};
use crate::embed::{EmbedError, Embedder};
use std::path::Path;
use std::sync::Arc;

/// The weight penalty of `scoring: linear`, chosen by cross-validation on the tuning prompts
/// (`cargo test --test routing_quality -- --ignored linear_cv --nocapture`): smaller fits the
/// examples' wording, larger pulls every tier towards the same probability.
pub const LINEAR_L2: f32 = 1e-3;

/// Below this many utterances their mean is too noisy to take out, and `center` defaults to off.
pub const CENTER_MIN_UTTERANCES: usize = 10;

pub struct Semantic {
    embedder: Embedder,
    tiers: Vec<Arc<str>>,
    thresholds: Vec<f32>,
    margin: f32,
    dims: usize,
    /// All utterance vectors, row-major, one row per utterance (with `scoring: centroid`, one
    /// row per tier: the normalised mean of its utterance vectors).
    matrix: Vec<f32>,
    /// The tier (index into `tiers`) of each row.
    row_tier: Vec<usize>,
    /// Utterances in the config (rows, unless they were merged into centroids).
    utterances: usize,
    /// How many of a tier's best similarities are averaged into its score (1: the best one).
    top: usize,
    /// The mean of the utterance vectors, taken out of them and of every prompt before comparing
    /// (all zeros when centring is off). Embeddings share a direction that has nothing to do with
    /// the task (what any English sentence looks like); a static model's means share it most, and
    /// it squeezes every similarity into a narrow band where the tiers are hard to tell apart.
    centre: Vec<f32>,
    /// With `scoring: linear`, the fitted model (the rows are then unused).
    classifier: Option<TierClassifier>,
    /// The share of a text's vector taken from its instruction (`routing.semantic.instruction_weight`).
    instruction_weight: f32,
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
    /// Compiles the layer, reading `examples` (relative to `base_dir`) when the config names it.
    pub async fn compile(
        cfg: &SemanticConfig,
        embedder: Embedder,
        base_dir: &Path,
    ) -> Result<Semantic, String> {
        let examples = match &cfg.examples {
            Some(f) => {
                let full = base_dir.join(&f.value);
                crate::config::read_examples(&full, &full.display().to_string())
                    .map_err(|e| format!("routing.semantic.examples: {e}"))?
                    .0
                    .into_iter()
                    .map(|e| (e.tier.value, e.prompt))
                    .collect()
            }
            None => Vec::new(),
        };
        Self::with_examples(cfg, embedder, &examples).await
    }

    /// Compiles the layer with `examples` (tier, prompt) beside the utterances, however they
    /// were read (what the cross-validation gives each fold).
    pub async fn with_examples(
        cfg: &SemanticConfig,
        embedder: Embedder,
        examples: &[(String, String)],
    ) -> Result<Semantic, String> {
        Self::with_penalty(cfg, embedder, examples, LINEAR_L2).await
    }

    /// [`Semantic::with_examples`] with another weight penalty for `scoring: linear` (for the
    /// cross-validation that chose [`LINEAR_L2`]).
    #[doc(hidden)]
    pub async fn with_penalty(
        cfg: &SemanticConfig,
        embedder: Embedder,
        examples: &[(String, String)],
        l2: f32,
    ) -> Result<Semantic, String> {
        let mut tiers: Vec<Arc<str>> = Vec::new();
        let mut thresholds = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        let mut row_tier = Vec::new();
        let labelled = cfg
            .utterances
            .iter()
            .flat_map(|(t, us)| us.iter().map(move |u| (t.as_str(), u.as_str())))
            .chain(examples.iter().map(|(t, p)| (t.as_str(), p.as_str())));
        for (tier, text) in labelled {
            let idx = match tiers.iter().position(|t| &**t == tier) {
                Some(i) => i,
                None => {
                    tiers.push(Arc::from(tier));
                    thresholds.push(cfg.thresholds.get(tier).copied().unwrap_or(cfg.threshold));
                    tiers.len() - 1
                }
            };
            texts.push(text);
            row_tier.push(idx);
        }
        let vectors = embed_all(&embedder, &texts, cfg.instruction_weight)
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
        if cfg.scoring == SemanticScoring::Centroid {
            let mut means = vec![vec![0f32; dims]; tiers.len()];
            for (v, &t) in vectors.iter().zip(&row_tier) {
                if let Some(m) = means.get_mut(t) {
                    m.iter_mut().zip(v).for_each(|(m, x)| *m += x);
                }
            }
            // A tier listed with no utterances has no direction: it keeps no row, as before.
            let (kept, kept_tier): (Vec<_>, Vec<_>) = means
                .into_iter()
                .enumerate()
                .filter(|(t, _)| row_tier.contains(t))
                .map(|(t, mut m)| {
                    crate::embed::normalize(&mut m);
                    (m, t)
                })
                .unzip();
            vectors = kept;
            row_tier = kept_tier;
        }
        let classifier = (cfg.scoring == SemanticScoring::Linear)
            .then(|| TierClassifier::fit(&vectors.concat(), &row_tier, dims, tiers.len(), l2));
        Ok(Semantic {
            classifier,
            embedder,
            tiers,
            thresholds,
            margin: cfg.margin,
            dims,
            matrix: vectors.concat(),
            utterances: texts.len(),
            top: match cfg.scoring {
                SemanticScoring::Top(n) => n.max(1),
                SemanticScoring::Max | SemanticScoring::Centroid | SemanticScoring::Linear => 1,
            },
            row_tier,
            centre,
            instruction_weight: cfg.instruction_weight,
        })
    }

    pub fn embedder_name(&self) -> &'static str {
        self.embedder.name()
    }

    pub fn utterances(&self) -> usize {
        self.utterances
    }

    pub async fn score(&self, text: &str) -> Result<Scores, EmbedError> {
        let mut v = self.embedder.embed(text).await?;
        if self.instruction_weight > 0.0 {
            if let Some(i) = instruction(text) {
                let u = self.embedder.embed(&i).await?;
                mix(&mut v, &u, self.instruction_weight);
            }
        }
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
        let best = match &self.classifier {
            Some(c) => c.probabilities(v),
            None => self.similarities(v),
        };
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

    /// Each tier's similarity: the mean of its `top` closest rows (minus infinity with none).
    fn similarities(&self, v: &[f32]) -> Vec<f32> {
        // Each tier's `top` best similarities, highest first.
        let mut tops: Vec<Vec<f32>> = vec![Vec::with_capacity(self.top + 1); self.tiers.len()];
        if v.len() == self.dims && self.dims > 0 {
            for (row, &t) in self.matrix.chunks_exact(self.dims).zip(&self.row_tier) {
                let s = crate::embed::cosine(row, v);
                if let Some(top) = tops.get_mut(t) {
                    if top.len() < self.top || top.last().is_some_and(|&low| s > low) {
                        let at = top.partition_point(|&x| x >= s);
                        top.insert(at, s);
                        top.truncate(self.top);
                    }
                }
            }
        }
        tops.iter()
            .map(|top| {
                if top.is_empty() {
                    f32::NEG_INFINITY
                } else {
                    top.iter().sum::<f32>() / top.len() as f32
                }
            })
            .collect()
    }
}

/// Every text's vector, with its instruction's mixed in by `weight` (the instructions embedded
/// as one more batch).
async fn embed_all(
    embedder: &Embedder,
    texts: &[&str],
    weight: f32,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut vectors = embedder.embed_batch(texts).await?;
    if weight > 0.0 {
        let found: Vec<(usize, String)> = texts
            .iter()
            .enumerate()
            .filter_map(|(i, t)| instruction(t).map(|s| (i, s)))
            .collect();
        let parts: Vec<&str> = found.iter().map(|(_, s)| s.as_str()).collect();
        let embedded = embedder.embed_batch(&parts).await?;
        for ((i, _), u) in found.iter().zip(&embedded) {
            if let Some(v) = vectors.get_mut(*i) {
                mix(v, u, weight);
            }
        }
    }
    Ok(vectors)
}

/// `v ← normalise((1 − weight)·v + weight·u)`, both unit length; left alone when the sizes differ.
fn mix(v: &mut [f32], u: &[f32], weight: f32) {
    if v.len() != u.len() {
        return;
    }
    v.iter_mut()
        .zip(u)
        .for_each(|(x, y)| *x = (1.0 - weight) * *x + weight * y);
    crate::embed::normalize(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{HashedNgrams, cosine, normalize};

    fn config(scoring: &str) -> SemanticConfig {
        serde_saphyr::from_str(&format!(
            r#"
embedder: {{ kind: hashed-ngrams }}
threshold: 0.0
center: false
scoring: {scoring}
utterances:
  budget: ["summarize this article", "give me the gist of this email", "translate this note"]
  premium: ["prove this theorem rigorously", "summarize the proof strategy"]
"#
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn centroid_scores_each_tier_by_the_mean_of_its_utterances() {
        let h = HashedNgrams::new(HashedNgrams::DEFAULT_DIMS);
        let sem = Semantic::with_examples(
            &config("centroid"),
            Embedder::Hashed(HashedNgrams::new(HashedNgrams::DEFAULT_DIMS)),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(sem.utterances(), 5, "every utterance counts, merged or not");
        let prompt = "summarize the proof";
        let mean = |us: &[&str]| {
            let mut m = vec![0f32; HashedNgrams::DEFAULT_DIMS];
            for u in us {
                m.iter_mut().zip(h.embed(u)).for_each(|(m, x)| *m += x);
            }
            normalize(&mut m);
            m
        };
        let want_budget = cosine(
            &h.embed(prompt),
            &mean(&[
                "summarize this article",
                "give me the gist of this email",
                "translate this note",
            ]),
        );
        let want_premium = cosine(
            &h.embed(prompt),
            &mean(&[
                "prove this theorem rigorously",
                "summarize the proof strategy",
            ]),
        );
        let scores = sem.score(prompt).await.unwrap();
        let got = |t: &str| scores.tiers.iter().find(|(n, _)| &**n == t).unwrap().1;
        assert!((got("budget") - want_budget).abs() < 1e-5, "{scores:?}");
        assert!((got("premium") - want_premium).abs() < 1e-5, "{scores:?}");

        // `max` (the default) takes the closest utterance instead.
        let max = Semantic::with_examples(
            &config("max"),
            Embedder::Hashed(HashedNgrams::new(HashedNgrams::DEFAULT_DIMS)),
            &[],
        )
        .await
        .unwrap();
        let best = cosine(&h.embed(prompt), &h.embed("summarize the proof strategy"));
        let top = max.score(prompt).await.unwrap().tiers[0].clone();
        assert_eq!(&*top.0, "premium");
        assert!((top.1 - best).abs() < 1e-5);

        // `top: 2`: the mean of each tier's two closest utterances.
        let two = Semantic::with_examples(
            &config("{ top: 2 }"),
            Embedder::Hashed(HashedNgrams::new(HashedNgrams::DEFAULT_DIMS)),
            &[],
        )
        .await
        .unwrap();
        let p = h.embed(prompt);
        let mut budget: Vec<f32> = [
            "summarize this article",
            "give me the gist of this email",
            "translate this note",
        ]
        .iter()
        .map(|u| cosine(&p, &h.embed(u)))
        .collect();
        budget.sort_by(|a, b| b.total_cmp(a));
        let premium = (cosine(&p, &h.embed("prove this theorem rigorously")) + best) / 2.0;
        let scores = two.score(prompt).await.unwrap();
        let got = |t: &str| scores.tiers.iter().find(|(n, _)| &**n == t).unwrap().1;
        assert!(
            (got("budget") - (budget[0] + budget[1]) / 2.0).abs() < 1e-5,
            "{scores:?}"
        );
        assert!((got("premium") - premium).abs() < 1e-5, "{scores:?}");
    }

    #[tokio::test]
    async fn linear_scores_tier_probabilities_and_learns_from_examples() {
        let examples = [(
            "local".to_string(),
            "draft a reply to this confidential memo".to_string(),
        )];
        let sem = Semantic::with_examples(
            &config("linear"),
            Embedder::Hashed(HashedNgrams::new(HashedNgrams::DEFAULT_DIMS)),
            &examples,
        )
        .await
        .unwrap();
        assert_eq!(sem.utterances(), 6, "utterances and examples");
        let scores = sem.score("give me the gist of this report").await.unwrap();
        let sum: f32 = scores.tiers.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities: {scores:?}");
        assert_eq!(
            scores.chosen.clone().unwrap().0.as_ref(),
            "budget",
            "{scores:?}"
        );
        // A tier given only by an example is scored like the others.
        let scores = sem
            .score("draft a reply to this confidential letter")
            .await
            .unwrap();
        assert_eq!(
            scores.chosen.clone().unwrap().0.as_ref(),
            "local",
            "{scores:?}"
        );
    }
}
