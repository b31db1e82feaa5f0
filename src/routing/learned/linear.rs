//! A logistic model per model on the prompt embedding: `P(score) = σ(w·x + b)`, trained on the
//! recorded scores (0/1 or graded, as soft labels) with L2 regularisation. Where the neighbours
//! of a prompt only average what happened to similar prompts, the weights learn which features
//! of a prompt make a model fail, across the whole data; predicting costs one dot product per
//! model, whatever the number of rows.
//!
//! Trained with mini-batch Adam from a fixed seed, so the same data always gives the same model.

use super::data::{Dataset, FEATURES};

const MIN_STEPS: usize = 400;
const MAGIC: &[u8; 8] = b"SWYDLIN2";
const MAX_EPOCHS: usize = 400;

#[derive(Debug, Clone)]
pub struct Linear {
    dims: usize,
    /// Per model: `dims` weights for the embedding, one per standardised prompt feature
    /// (`data::prompt_features`), then the bias.
    weights: Vec<Vec<f32>>,
    /// Per feature: the training data's mean and `1 / standard deviation` (0 for a constant one).
    feature_mean: Vec<f32>,
    feature_scale: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub epochs: usize,
    pub l2: f32,
    pub learning_rate: f32,
    pub batch: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            epochs: 12,
            l2: 1e-3,
            learning_rate: 0.05,
            batch: 64,
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl Linear {
    pub fn train(data: &Dataset, p: Params) -> Linear {
        let n = data.len();
        let (feature_mean, feature_scale): (Vec<f32>, Vec<f32>) = (0..FEATURES)
            .map(|f| {
                let col = || (0..n).map(|i| data.features(i)[f]);
                let mean = col().sum::<f32>() / n.max(1) as f32;
                let var = col().map(|x| (x - mean).powi(2)).sum::<f32>() / n.max(1) as f32;
                (mean, if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 })
            })
            .unzip();
        // Inputs: the embedding and the standardised features, laid out as one row per prompt.
        let d = data.dims + FEATURES;
        let inputs: Vec<f32> = (0..n)
            .flat_map(|i| {
                data.vector(i).iter().copied().chain(standardise(
                    data.features(i),
                    &feature_mean,
                    &feature_scale,
                ))
            })
            .collect();
        let m = data.models.len();
        let mut weights = vec![vec![0.0f32; d + 1]; m];
        // Start at the base rate, so a model with few rows predicts its mean.
        for (c, w) in weights.iter_mut().enumerate() {
            let (s, k) = (0..n)
                .map(|i| data.score(i, c))
                .filter(|x| x.is_finite())
                .fold((0.0f64, 0usize), |(s, k), x| (s + f64::from(x), k + 1));
            let mean = if k == 0 {
                0.5
            } else {
                (s / k as f64).clamp(0.01, 0.99)
            };
            w[d] = (mean / (1.0 - mean)).ln() as f32;
        }
        if n == 0 || data.dims == 0 {
            return Linear {
                dims: data.dims,
                weights,
                feature_mean,
                feature_scale,
            };
        }
        let mut first = vec![vec![0.0f32; d + 1]; m];
        let mut second = vec![vec![0.0f32; d + 1]; m];
        let mut grad = vec![vec![0.0f32; d + 1]; m];
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = fastrand::Rng::with_seed(0x5157_4954);
        let mut t = 0i32;
        // Small data needs more passes to move off the base rate: at least MIN_STEPS updates.
        let per_epoch = n.div_ceil(p.batch.max(1));
        let epochs = p.epochs.max(MIN_STEPS.div_ceil(per_epoch)).min(MAX_EPOCHS);
        for _ in 0..epochs {
            rng.shuffle(&mut order);
            for batch in order.chunks(p.batch.max(1)) {
                t += 1;
                for g in &mut grad {
                    g.iter_mut().for_each(|x| *x = 0.0);
                }
                let mut counts = vec![0usize; m];
                for &i in batch {
                    let x = &inputs[i * d..(i + 1) * d];
                    for c in 0..m {
                        let y = data.score(i, c);
                        if !y.is_finite() {
                            continue;
                        }
                        let w = &weights[c];
                        let z = crate::embed::cosine(&w[..d], x) + w[d];
                        let err = sigmoid(z) - y;
                        let g = &mut grad[c];
                        for (gj, xj) in g[..d].iter_mut().zip(x) {
                            *gj += err * xj;
                        }
                        g[d] += err;
                        counts[c] += 1;
                    }
                }
                let lr = p.learning_rate * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
                for c in 0..m {
                    if counts[c] == 0 {
                        continue;
                    }
                    let scale = 1.0 / counts[c] as f32;
                    let (w, g, m1, m2) = (&mut weights[c], &grad[c], &mut first[c], &mut second[c]);
                    for j in 0..=d {
                        let reg = if j < d { p.l2 * w[j] } else { 0.0 };
                        let gj = g[j] * scale + reg;
                        m1[j] = b1 * m1[j] + (1.0 - b1) * gj;
                        m2[j] = b2 * m2[j] + (1.0 - b2) * gj * gj;
                        w[j] -= lr * m1[j] / (m2[j].sqrt() + eps);
                    }
                }
            }
        }
        Linear {
            dims: data.dims,
            weights,
            feature_mean,
            feature_scale,
        }
    }

    /// A key for the trained weights: everything training reads (the data's columns, vectors
    /// and lengths, and the parameters), so a cached model is reused only for the same inputs.
    pub fn key(data: &Dataset, p: Params) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(MAGIC);
        h.update(format!("{p:?}/{}/{}", data.dims, data.models.join("\u{1}")).as_bytes());
        let mut buf = Vec::with_capacity(1 << 16);
        for block in [&data.scores, &data.vectors, &data.features] {
            h.update(&(block.len() as u64).to_le_bytes());
            for chunk in block.chunks(1 << 14) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                h.update(&buf);
            }
        }
        h.digest()
    }

    /// The weights as bytes: `SWYDLIN2`, models, row width, dims (u64 LE), then the
    /// [`FEATURES`] means and scales and every weight (f32 LE).
    pub fn to_bytes(&self) -> Vec<u8> {
        let width = self.weights.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(32 + (2 * FEATURES + self.weights.len() * width) * 4);
        out.extend_from_slice(MAGIC);
        for v in [self.weights.len(), width, self.dims] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for x in self.feature_mean.iter().chain(&self.feature_scale) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for w in &self.weights {
            for x in w {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// The weights back from [`to_bytes`](Self::to_bytes); `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<Linear> {
        if b.get(..8)? != MAGIC {
            return None;
        }
        let word = |i: usize| -> Option<usize> {
            let s = b.get(8 + i * 8..16 + i * 8)?;
            usize::try_from(u64::from_le_bytes(s.try_into().ok()?)).ok()
        };
        let (models, width, dims) = (word(0)?, word(1)?, word(2)?);
        let float = |at: usize| -> Option<f32> {
            Some(f32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let floats = |from: usize, n: usize| -> Option<Vec<f32>> {
            (0..n).map(|j| float(from + j * 4)).collect()
        };
        let body = 32 + 2 * FEATURES * 4;
        if width != dims + FEATURES + 1
            || b.len() != body + models.checked_mul(width)?.checked_mul(4)?
        {
            return None;
        }
        let weights = (0..models)
            .map(|m| floats(body + m * width * 4, width))
            .collect::<Option<Vec<Vec<f32>>>>()?;
        Some(Linear {
            dims,
            weights,
            feature_mean: floats(32, FEATURES)?,
            feature_scale: floats(32 + FEATURES * 4, FEATURES)?,
        })
    }

    /// Predicted score per model for an embedded prompt with these `data::prompt_features`.
    pub fn predict(&self, v: &[f32], features: &[f32]) -> Vec<f32> {
        let d = self.dims;
        let x: Vec<f32> = standardise(features, &self.feature_mean, &self.feature_scale).collect();
        self.weights
            .iter()
            .map(|w| {
                let bias = w[d + FEATURES];
                if v.len() != d || x.len() != FEATURES {
                    return sigmoid(bias);
                }
                sigmoid(
                    crate::embed::cosine(&w[..d], v)
                        + crate::embed::cosine(&w[d..d + FEATURES], &x)
                        + bias,
                )
            })
            .collect()
    }
}

fn standardise<'a>(
    features: &'a [f32],
    mean: &'a [f32],
    scale: &'a [f32],
) -> impl Iterator<Item = f32> + 'a {
    features
        .iter()
        .zip(mean.iter().zip(scale))
        .map(|(x, (m, s))| (x - m) * s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trained_weights_round_trip_through_bytes() {
        let data = Dataset {
            models: vec!["a".into(), "b".into()],
            ids: vec!["1".into(), "2".into(), "3".into()],
            previews: vec![String::new(); 3],
            categories: vec![None; 3],
            features: (0..3)
                .flat_map(|i| super::super::data::prompt_features(&"x. ".repeat(i + 1)))
                .collect(),
            scores: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            costs: vec![f32::NAN; 6],
            vectors: vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7],
            dims: 2,
        };
        let p = Params::default();
        let l = Linear::train(&data, p);
        let back = Linear::from_bytes(&l.to_bytes()).unwrap();
        let f = super::super::data::prompt_features("What is 2 + 2?");
        assert_eq!(back.predict(&[1.0, 0.0], &f), l.predict(&[1.0, 0.0], &f));
        assert!(Linear::from_bytes(&l.to_bytes()[..20]).is_none());
        let mut other = data.clone();
        other.scores[0] = 0.0;
        assert_ne!(Linear::key(&data, p), Linear::key(&other, p));
    }
}
