//! A logistic model per model on the prompt embedding: `P(score) = σ(w·x + b)`, trained on the
//! recorded scores (0/1 or graded, as soft labels) with L2 regularisation. Where the neighbours
//! of a prompt only average what happened to similar prompts, the weights learn which features
//! of a prompt make a model fail, across the whole data; predicting costs one dot product per
//! model, whatever the number of rows.
//!
//! Trained with mini-batch Adam from a fixed seed, so the same data always gives the same model.

use super::data::Dataset;

const MIN_STEPS: usize = 400;
const MAGIC: &[u8; 8] = b"SWYDLIN1";
const MAX_EPOCHS: usize = 400;

#[derive(Debug, Clone)]
pub struct Linear {
    dims: usize,
    /// Per model: `dims` weights for the embedding, one for the standardised prompt length, then
    /// the bias.
    weights: Vec<Vec<f32>>,
    length_mean: f32,
    length_scale: f32,
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
        let (length_mean, length_scale) = {
            let mean = data.lengths.iter().sum::<f32>() / n.max(1) as f32;
            let var =
                data.lengths.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / n.max(1) as f32;
            (mean, if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 })
        };
        // Inputs: the embedding and the standardised length, laid out as one row per prompt.
        let d = data.dims + 1;
        let inputs: Vec<f32> = (0..n)
            .flat_map(|i| {
                data.vector(i).iter().copied().chain(std::iter::once(
                    (data.lengths[i] - length_mean) * length_scale,
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
                length_mean,
                length_scale,
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
            length_mean,
            length_scale,
        }
    }

    /// A key for the trained weights: everything training reads (the data's columns, vectors
    /// and lengths, and the parameters), so a cached model is reused only for the same inputs.
    pub fn key(data: &Dataset, p: Params) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(MAGIC);
        h.update(format!("{p:?}/{}/{}", data.dims, data.models.join("\u{1}")).as_bytes());
        let mut buf = Vec::with_capacity(1 << 16);
        for block in [&data.scores, &data.vectors, &data.lengths] {
            h.update(&(block.len() as u64).to_le_bytes());
            for chunk in block.chunks(1 << 14) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                h.update(&buf);
            }
        }
        h.digest()
    }

    /// The weights as bytes: `SWYDLIN1`, models, row width, dims (u64 LE), then the length
    /// mean and scale and every weight (f32 LE).
    pub fn to_bytes(&self) -> Vec<u8> {
        let width = self.weights.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(40 + self.weights.len() * width * 4);
        out.extend_from_slice(MAGIC);
        for v in [self.weights.len(), width, self.dims] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        out.extend_from_slice(&self.length_mean.to_le_bytes());
        out.extend_from_slice(&self.length_scale.to_le_bytes());
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
        let body = 40;
        if width != dims + 2 || b.len() != body + models.checked_mul(width)?.checked_mul(4)? {
            return None;
        }
        let weights = (0..models)
            .map(|m| {
                (0..width)
                    .map(|j| float(body + (m * width + j) * 4))
                    .collect::<Option<Vec<f32>>>()
            })
            .collect::<Option<Vec<Vec<f32>>>>()?;
        Some(Linear {
            dims,
            weights,
            length_mean: float(32)?,
            length_scale: float(36)?,
        })
    }

    /// Predicted score per model for an embedded prompt of `length` (see `length_feature`).
    pub fn predict(&self, v: &[f32], length: f32) -> Vec<f32> {
        let d = self.dims;
        let x_len = (length - self.length_mean) * self.length_scale;
        self.weights
            .iter()
            .map(|w| {
                if v.len() != d {
                    return sigmoid(w[d + 1]);
                }
                sigmoid(crate::embed::cosine(&w[..d], v) + w[d] * x_len + w[d + 1])
            })
            .collect()
    }
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
            lengths: vec![1.0, 2.0, 3.0],
            scores: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            costs: vec![f32::NAN; 6],
            vectors: vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7],
            dims: 2,
        };
        let p = Params::default();
        let l = Linear::train(&data, p);
        let back = Linear::from_bytes(&l.to_bytes()).unwrap();
        assert_eq!(back.predict(&[1.0, 0.0], 1.5), l.predict(&[1.0, 0.0], 1.5));
        assert!(Linear::from_bytes(&l.to_bytes()[..20]).is_none());
        let mut other = data.clone();
        other.scores[0] = 0.0;
        assert_ne!(Linear::key(&data, p), Linear::key(&other, p));
    }
}
