//! A logistic model per model on the prompt embedding: `P(score) = σ(w·x + b)`, trained on the
//! recorded scores (0/1 or graded, as soft labels) with L2 regularisation. Where the neighbours
//! of a prompt only average what happened to similar prompts, the weights learn which features
//! of a prompt make a model fail, across the whole data; predicting costs one dot product per
//! model, whatever the number of rows.
//!
//! Trained with mini-batch Adam from a fixed seed, so the same data always gives the same model.

use super::data::Dataset;

const MIN_STEPS: usize = 400;
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

#[derive(Debug, Clone, Copy)]
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
