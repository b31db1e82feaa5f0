//! Nearest recorded prompts: the `k` rows most similar to a request, and the similarity-weighted
//! mean of their scores per model, shrunk towards the model's overall mean when the neighbours
//! are few or far (so one lucky neighbour does not promise a perfect score).

use super::data::Dataset;

/// A neighbour's weight is its similarity to this power: close prompts count far more than the
/// k-th, without a hard cut-off.
const SHARPNESS: i32 = 4;
/// Pseudo-count of the prior (the model's overall mean) in each prediction.
const PRIOR_WEIGHT: f32 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub row: usize,
    pub similarity: f32,
}

/// The `k` rows most similar to `v`, most similar first.
pub fn nearest(data: &Dataset, v: &[f32], k: usize) -> Vec<Neighbour> {
    let k = k.min(data.len());
    if k == 0 || v.len() != data.dims {
        return Vec::new();
    }
    // A bounded min-heap by hand would save little: selecting from one pass of similarities is
    // linear and allocation-light.
    let mut sims: Vec<Neighbour> = data
        .vectors
        .chunks_exact(data.dims)
        .enumerate()
        .map(|(row, x)| Neighbour {
            row,
            similarity: crate::embed::cosine(x, v),
        })
        .collect();
    if k < sims.len() {
        sims.select_nth_unstable_by(k - 1, |a, b| b.similarity.total_cmp(&a.similarity));
        sims.truncate(k);
    }
    sims.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    sims
}

/// Per-model means over the whole data, the prior every prediction is shrunk towards.
pub fn model_means(data: &Dataset) -> Vec<f32> {
    let m = data.models.len();
    (0..m)
        .map(|c| {
            let (s, n) = (0..data.len())
                .map(|i| data.score(i, c))
                .filter(|x| x.is_finite())
                .fold((0.0f64, 0usize), |(s, n), x| (s + f64::from(x), n + 1));
            if n == 0 { 0.0 } else { (s / n as f64) as f32 }
        })
        .collect()
}

/// Predicted score per model from the neighbours.
pub fn predict(data: &Dataset, neighbours: &[Neighbour], prior: &[f32]) -> Vec<f32> {
    let m = data.models.len();
    let mut sum = vec![0.0f32; m];
    let mut weight = vec![0.0f32; m];
    for n in neighbours {
        let w = n.similarity.max(0.0).powi(SHARPNESS) + 1e-6;
        for c in 0..m {
            let s = data.score(n.row, c);
            if s.is_finite() {
                sum[c] += w * s;
                weight[c] += w;
            }
        }
    }
    (0..m)
        .map(|c| {
            let p = prior.get(c).copied().unwrap_or(0.0);
            (sum[c] + PRIOR_WEIGHT * p) / (weight[c] + PRIOR_WEIGHT)
        })
        .collect()
}
