//! `scoring: linear`: a multinomial logistic regression from a text's embedding to its tier,
//! fitted when the config is compiled on the tier's utterances (and any labelled examples).
//! Where nearest-utterance scoring lets one stray example decide, the fitted weights learn which
//! directions of the embedding separate the tiers across all of them, and a request costs one
//! small matrix-vector product whatever the number of examples.
//!
//! Fitted by full-batch gradient descent with momentum from zero weights, a fixed number of
//! steps: the same examples always give the same weights. Must not import anything above
//! `embed`.

/// Steps of gradient descent; the loss is flat long before this on a few hundred examples.
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 1.0;
const MOMENTUM: f32 = 0.9;

#[derive(Debug, Clone)]
pub struct TierClassifier {
    dims: usize,
    classes: usize,
    /// Row-major, one row of `dims` weights and then the bias per class.
    weights: Vec<f32>,
}

impl TierClassifier {
    /// Fits on `rows` (row-major, `dims` wide, unit length) labelled with class indices below
    /// `classes`; `l2` is the weight penalty.
    pub fn fit(rows: &[f32], labels: &[usize], dims: usize, classes: usize, l2: f32) -> Self {
        let w = dims + 1;
        let mut weights = vec![0f32; classes * w];
        let mut velocity = vec![0f32; classes * w];
        let n = labels.len();
        if n == 0 || dims == 0 || rows.len() != n * dims {
            return TierClassifier {
                dims,
                classes,
                weights,
            };
        }
        let mut grad = vec![0f32; classes * w];
        let mut p = vec![0f32; classes];
        for _ in 0..STEPS {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (x, &y) in rows.chunks_exact(dims).zip(labels) {
                softmax(&weights, x, &mut p);
                for (c, pc) in p.iter().enumerate() {
                    let err = (pc - f32::from(u8::from(c == y))) / n as f32;
                    let g = &mut grad[c * w..(c + 1) * w];
                    g[..dims].iter_mut().zip(x).for_each(|(g, x)| *g += err * x);
                    g[dims] += err;
                }
            }
            for (i, ((wt, v), g)) in weights.iter_mut().zip(&mut velocity).zip(&grad).enumerate() {
                // The bias is not penalised: a tier with few examples keeps its base rate.
                let g = if i % w == dims { *g } else { g + l2 * *wt };
                *v = MOMENTUM * *v - LEARNING_RATE * g;
                *wt += *v;
            }
        }
        TierClassifier {
            dims,
            classes,
            weights,
        }
    }

    /// Each class's probability for the unit-length embedding `x` (all zeros if `x` is the wrong
    /// size).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0f32; self.classes];
        if x.len() == self.dims {
            softmax(&self.weights, x, &mut p);
        }
        p
    }
}

fn softmax(weights: &[f32], x: &[f32], out: &mut [f32]) {
    let w = x.len() + 1;
    for (o, row) in out.iter_mut().zip(weights.chunks_exact(w)) {
        *o = row[..x.len()]
            .iter()
            .zip(x)
            .map(|(a, b)| a * b)
            .sum::<f32>()
            + row[x.len()];
    }
    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for o in out.iter_mut() {
        *o = (*o - max).exp();
        sum += *o;
    }
    if sum > 0.0 {
        out.iter_mut().for_each(|o| *o /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_separable_classes_deterministically() {
        // Two dimensions: class 0 points along x, class 1 along y, class 2 along the diagonal.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let rows = [1.0, 0.0, 0.95, 0.31, 0.0, 1.0, 0.31, 0.95, s, s, 0.6, 0.8];
        let labels = [0, 0, 1, 1, 2, 2];
        let a = TierClassifier::fit(&rows, &labels, 2, 3, 1e-3);
        let b = TierClassifier::fit(&rows, &labels, 2, 3, 1e-3);
        assert_eq!(a.weights, b.weights, "same examples, same weights");
        let p = a.probabilities(&[0.99, 0.14]);
        assert!(p[0] > p[1] && p[0] > p[2], "{p:?}");
        let p = a.probabilities(&[0.1, 0.99]);
        assert!(p[1] > p[0] && p[1] > p[2], "{p:?}");
        assert!(
            (p.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "probabilities sum to 1"
        );
        assert_eq!(
            a.probabilities(&[1.0]),
            vec![0.0; 3],
            "a wrong-sized vector scores nothing"
        );
    }

    #[test]
    fn a_stronger_penalty_gives_softer_probabilities() {
        let rows = [1.0, 0.0, 0.0, 1.0];
        let labels = [0, 1];
        let sharp = TierClassifier::fit(&rows, &labels, 2, 2, 1e-4).probabilities(&[1.0, 0.0]);
        let soft = TierClassifier::fit(&rows, &labels, 2, 2, 1e-1).probabilities(&[1.0, 0.0]);
        assert!(sharp[0] > soft[0] && soft[0] > 0.5, "{sharp:?} vs {soft:?}");
    }
}
