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

/// How far to trust the neighbours, per model: the empirical-Bayes split of the spread of
/// neighbourhood means into signal and noise. A neighbourhood mean of `n_eff` prompts varies by
/// `noise / n_eff` from sampling alone (`noise` the variance of scores within a neighbourhood,
/// zero where similar prompts all fare alike); what varies beyond
/// that (`signal`) is real difference between kinds of prompt. A prediction keeps
/// `signal / (signal + noise / n_eff)` of its distance from the prior, so on data where similar
/// prompts tell nothing about a model (every neighbourhood looks like a random draw) the layer
/// predicts the model's overall record, and where they tell a lot it follows them.
#[derive(Debug, Clone, Default)]
pub struct Shrinkage {
    pub signal: Vec<f32>,
    pub noise: Vec<f32>,
}

/// Rows sampled to estimate [`Shrinkage`]: each costs one pass over the data, so at most
/// `SHRINKAGE_SAMPLE` of them and no more than `SHRINKAGE_BUDGET` row comparisons in all (50,000
/// rows: 40 samples), never fewer than `SHRINKAGE_MIN_SAMPLE`; training stays a small part of
/// start-up.
const SHRINKAGE_SAMPLE: usize = 400;
const SHRINKAGE_MIN_SAMPLE: usize = 40;
const SHRINKAGE_BUDGET: usize = 2_000_000;

/// Estimates [`Shrinkage`] from the training data itself: the neighbourhoods of a sample of its
/// rows (each row's own score left out) against the binomial-like noise of their means.
pub fn shrinkage(data: &Dataset, k: usize, prior: &[f32]) -> Shrinkage {
    let m = data.models.len();
    let n = data.len();
    if n < 4 || k == 0 {
        return Shrinkage {
            signal: vec![f32::INFINITY; m],
            noise: vec![0.0; m],
        };
    }
    let sample = (SHRINKAGE_BUDGET / n).clamp(SHRINKAGE_MIN_SAMPLE, SHRINKAGE_SAMPLE);
    let step = n.div_ceil(sample).max(1);
    let mut spread = vec![0.0f64; m];
    let mut within = vec![0.0f64; m];
    let mut sampling = vec![0.0f64; m];
    let mut count = vec![0usize; m];
    for r in (0..n).step_by(step) {
        let found: Vec<Neighbour> = nearest(data, data.vector(r), k + 1)
            .into_iter()
            .filter(|x| x.row != r)
            .take(k)
            .collect();
        let means = raw_means(data, &found);
        for c in 0..m {
            let (raw, n_eff, var) = (means.raw[c], means.n_eff[c], means.variance[c]);
            if raw.is_finite() && n_eff > 1.0 {
                let p = prior.get(c).copied().unwrap_or(0.0);
                // The weighted variance around the neighbourhood's own mean underestimates the
                // spread of single scores by n_eff / (n_eff - 1).
                let v = f64::from(var * n_eff / (n_eff - 1.0));
                spread[c] += f64::from(raw - p).powi(2);
                within[c] += v;
                sampling[c] += v / f64::from(n_eff);
                count[c] += 1;
            }
        }
    }
    let per = |v: &[f64], c: usize| {
        if count[c] == 0 {
            0.0
        } else {
            v[c] / count[c] as f64
        }
    };
    Shrinkage {
        signal: (0..m)
            .map(|c| (per(&spread, c) - per(&sampling, c)).max(0.0) as f32)
            .collect(),
        noise: (0..m).map(|c| per(&within, c) as f32).collect(),
    }
}

/// A neighbourhood's similarity-weighted mean score per model (`NaN` where no neighbour has
/// one), the effective number of neighbours behind it (`(Σw)² / Σw²`), and the weighted
/// variance of their scores around it.
struct Means {
    raw: Vec<f32>,
    n_eff: Vec<f32>,
    variance: Vec<f32>,
}

fn raw_means(data: &Dataset, neighbours: &[Neighbour]) -> Means {
    let m = data.models.len();
    let mut sum = vec![0.0f32; m];
    let mut sum_sq = vec![0.0f32; m];
    let mut weight = vec![0.0f32; m];
    let mut square = vec![0.0f32; m];
    for n in neighbours {
        let w = n.similarity.max(0.0).powi(SHARPNESS) + 1e-6;
        for c in 0..m {
            let s = data.score(n.row, c);
            if s.is_finite() {
                sum[c] += w * s;
                sum_sq[c] += w * s * s;
                weight[c] += w;
                square[c] += w * w;
            }
        }
    }
    let variance = (0..m)
        .map(|c| {
            if weight[c] > 0.0 {
                let mean = sum[c] / weight[c];
                (sum_sq[c] / weight[c] - mean * mean).max(0.0)
            } else {
                0.0
            }
        })
        .collect();
    let raw = (0..m)
        .map(|c| {
            if weight[c] > 0.0 {
                sum[c] / weight[c]
            } else {
                f32::NAN
            }
        })
        .collect();
    let n_eff = (0..m)
        .map(|c| {
            if square[c] > 0.0 {
                weight[c] * weight[c] / square[c]
            } else {
                0.0
            }
        })
        .collect();
    Means {
        raw,
        n_eff,
        variance,
    }
}

/// Predicted score per model from the neighbours, shrunk towards `prior` as `shrink` says (with
/// no estimate, by a small fixed pseudo-count).
pub fn predict(
    data: &Dataset,
    neighbours: &[Neighbour],
    prior: &[f32],
    shrink: Option<&Shrinkage>,
) -> Vec<f32> {
    let m = data.models.len();
    let Means { raw, n_eff, .. } = raw_means(data, neighbours);
    let mut weight = vec![0.0f32; m];
    for n in neighbours {
        let w = n.similarity.max(0.0).powi(SHARPNESS) + 1e-6;
        for (c, wc) in weight.iter_mut().enumerate() {
            if data.score(n.row, c).is_finite() {
                *wc += w;
            }
        }
    }
    (0..m)
        .map(|c| {
            let p = prior.get(c).copied().unwrap_or(0.0);
            if !raw[c].is_finite() {
                return p;
            }
            match shrink {
                Some(s) => {
                    let signal = s.signal.get(c).copied().unwrap_or(f32::INFINITY);
                    let noise = s.noise.get(c).copied().unwrap_or(0.0) / n_eff[c].max(1e-6);
                    let keep = if signal.is_infinite() || signal + noise <= 0.0 {
                        1.0
                    } else {
                        signal / (signal + noise)
                    };
                    p + keep * (raw[c] - p)
                }
                None => (raw[c] * weight[c] + PRIOR_WEIGHT * p) / (weight[c] + PRIOR_WEIGHT),
            }
        })
        .collect()
}
