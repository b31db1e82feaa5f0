//! Confidence intervals for a mean score from a few dozen prompts: Wilson's interval for 0/1
//! scores (it stays inside [0, 1] and does not collapse at 0 or n correct, unlike the normal
//! approximation) and Student's t interval for graded scores. The routing map judges a model by
//! the interval's lower bound, so 20 prompts cannot over-claim.

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Student's t quantile with `df` degrees of freedom: exact for 1 and 2, else the Cornish–Fisher
/// expansion around the normal quantile (within 0.2% of tables from 3 degrees of freedom on).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if df <= 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if df <= 2.0 {
        let a = 4.0 * p * (1.0 - p);
        return 2.0 * (p - 0.5) * (2.0 / a).sqrt();
    }
    let z = normal_quantile(p);
    let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
        + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92160.0 * df.powi(4))
}

/// Wilson's score interval for `k` successes in `n` trials at `confidence` (e.g. 0.95).
pub fn wilson(k: f64, n: f64, confidence: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Student's t interval for the mean of `values`, clipped to [0, 1].
pub fn t_interval(values: &[f64], confidence: f64) -> (f64, f64) {
    let n = values.len() as f64;
    if values.len() < 2 {
        return (0.0, 1.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let t = t_quantile(1.0 - (1.0 - confidence) / 2.0, n - 1.0);
    let half = t * (var / n).sqrt();
    ((mean - half).max(0.0), (mean + half).min(1.0))
}

/// The interval that fits the scores: Wilson when every score is 0 or 1, else Student's t.
pub fn interval(values: &[f64], confidence: f64) -> (f64, f64) {
    if values.iter().all(|v| *v == 0.0 || *v == 1.0) {
        let k = values.iter().sum::<f64>();
        wilson(k, values.len() as f64, confidence)
    } else {
        t_interval(values, confidence)
    }
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn quantiles_match_the_tables() {
        assert!(near(normal_quantile(0.975), 1.959964, 1e-6));
        assert!(near(normal_quantile(0.5), 0.0, 1e-12));
        assert!(near(normal_quantile(0.005), -2.575829, 1e-6));
        for (df, want) in [
            (1.0, 12.7062),
            (2.0, 4.3027),
            (3.0, 3.1824),
            (5.0, 2.5706),
            (19.0, 2.0930),
            (29.0, 2.0452),
            (100.0, 1.9840),
        ] {
            let got = t_quantile(0.975, df);
            assert!(near(got, want, want * 0.002), "df {df}: {got} vs {want}");
        }
    }

    #[test]
    fn wilson_matches_published_values() {
        // 17 of 20 at 95%: [0.640, 0.948] (Newcombe 1998's method 3).
        let (lo, hi) = wilson(17.0, 20.0, 0.95);
        assert!(
            near(lo, 0.6396, 5e-4) && near(hi, 0.9476, 5e-4),
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(20.0, 20.0, 0.95);
        assert!(near(lo, 0.8389, 5e-4) && hi == 1.0, "{lo} {hi}");
        let (lo, _) = wilson(0.0, 20.0, 0.95);
        assert_eq!(lo, 0.0);
    }

    #[test]
    fn graded_scores_get_a_t_interval() {
        let v = [0.5, 0.7, 0.9, 0.7];
        let (lo, hi) = interval(&v, 0.95);
        // mean 0.7, sd 0.1633, se 0.0816, t(3) 3.182
        assert!(near(lo, 0.7 - 3.1824 * 0.08165, 2e-3), "{lo}");
        assert!(near(hi, 0.7 + 3.1824 * 0.08165, 2e-3), "{hi}");
        assert_eq!(interval(&[1.0, 0.0, 1.0], 0.95), wilson(2.0, 3.0, 0.95));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
