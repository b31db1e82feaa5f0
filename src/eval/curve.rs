//! Cost–quality curves from replayed choices, and the RouteLLM metrics for two models (PGR, APGR,
//! CPT) as defined with the public routing sets: with a strong model S and a weak model W, a
//! router that sends a share c of prompts to S recovers PGR(c) = (q(c) − q(W)) / (q(S) − q(W)) of
//! the gap; APGR is the area under PGR over c ∈ [0, 1]; CPT(x) the smallest c with PGR ≥ x.
//!
//! Pure arithmetic over per-prompt numbers; nothing here knows about routing tables.

use serde::Serialize;

/// One operating point of a router, summed over the test prompts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// The bar (or threshold) that produced it.
    pub point: f64,
    /// Mean score per prompt.
    pub quality: f64,
    /// Total USD over the test prompts.
    pub cost_usd: f64,
    /// Share of prompts whose answer came from the most expensive candidate.
    pub strong_share: f64,
}

/// `(c, PGR)` pairs from points of a two-model router, ordered by `c`, with the two ends added
/// where the router does not reach them (a router that sends some prompts to one model whatever
/// the bar can be mixed with "all W" / "all S" to reach them).
pub fn pgr_curve(points: &[Point], q_weak: f64, q_strong: f64) -> Vec<(f64, f64)> {
    let gap = q_strong - q_weak;
    let pgr = |q: f64| {
        if gap.abs() < 1e-12 {
            0.0
        } else {
            (q - q_weak) / gap
        }
    };
    let mut v: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.strong_share, pgr(p.quality)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    v.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12);
    if v.first().is_none_or(|f| f.0 > 1e-12) {
        v.insert(0, (0.0, 0.0));
    }
    if v.last().is_none_or(|l| l.0 < 1.0 - 1e-12) {
        v.push((1.0, 1.0));
    }
    v
}

/// Area under the PGR curve (trapezoids), c from 0 to 1.
pub fn apgr(curve: &[(f64, f64)]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

/// The smallest share of calls to S at which PGR reaches `x` (linear between points); `None` if
/// it never does.
pub fn cpt(curve: &[(f64, f64)], x: f64) -> Option<f64> {
    if let Some(first) = curve.first().filter(|f| f.1 >= x) {
        return Some(first.0);
    }
    for w in curve.windows(2) {
        let ((c0, p0), (c1, p1)) = (w[0], w[1]);
        if p1 >= x && p0 < x {
            let t = if (p1 - p0).abs() < 1e-12 {
                1.0
            } else {
                (x - p0) / (p1 - p0)
            };
            return Some(c0 + t * (c1 - c0));
        }
    }
    None
}

/// The upper-left frontier of a set of (cost, quality) points: each kept point is better than
/// every cheaper one. Mixing two operating points at random reaches any point on the segment
/// between them, so the curve is read with linear interpolation between frontier points.
pub fn frontier(points: &[Point]) -> Vec<Point> {
    let mut v = points.to_vec();
    v.sort_by(|a, b| {
        a.cost_usd
            .total_cmp(&b.cost_usd)
            .then(b.quality.total_cmp(&a.quality))
    });
    let mut out: Vec<Point> = Vec::new();
    for p in v {
        if out.last().is_none_or(|l| p.quality > l.quality + 1e-12) {
            out.push(p);
        }
    }
    out
}

/// The best quality the frontier reaches at `cost` or less (interpolating between points).
pub fn quality_at(front: &[Point], cost: f64) -> Option<f64> {
    let first = front.first()?;
    if cost < first.cost_usd - 1e-12 {
        return None;
    }
    for w in front.windows(2) {
        if cost <= w[1].cost_usd {
            let span = w[1].cost_usd - w[0].cost_usd;
            let t = if span <= 0.0 {
                1.0
            } else {
                (cost - w[0].cost_usd) / span
            };
            return Some(w[0].quality + t * (w[1].quality - w[0].quality));
        }
    }
    front.last().map(|l| l.quality)
}

/// Standard error of a mean score: sqrt(var / n).
pub fn standard_error(scores: &[f64]) -> f64 {
    let n = scores.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var / n).sqrt()
}

/// The cheapest point whose quality is at least `target`.
pub fn cheapest_reaching(points: &[Point], target: f64) -> Option<Point> {
    points
        .iter()
        .filter(|p| p.quality >= target - 1e-12)
        .min_by(|a, b| {
            a.cost_usd
                .total_cmp(&b.cost_usd)
                .then(b.quality.total_cmp(&a.quality))
        })
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(c: f64, q: f64) -> Point {
        Point {
            point: 0.0,
            quality: q,
            cost_usd: c,
            strong_share: c,
        }
    }

    #[test]
    fn random_routing_recovers_half_the_area() {
        // A straight line from W to S: PGR(c) = c.
        let c = pgr_curve(&[pt(0.0, 0.6), pt(0.5, 0.7), pt(1.0, 0.8)], 0.6, 0.8);
        assert!((apgr(&c) - 0.5).abs() < 1e-12);
        assert!((cpt(&c, 0.5).unwrap() - 0.5).abs() < 1e-12);
        assert!((cpt(&c, 0.8).unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn a_hand_computed_curve() {
        // W 0.5, S 0.9 (gap 0.4). At c = 0.25 quality 0.8 (PGR 0.75), at c = 0.5 0.9 (PGR 1).
        // Area: 0.25·0.75/2 + 0.25·(0.75+1)/2 + 0.5·1 = 0.09375 + 0.21875 + 0.5 = 0.8125.
        let c = pgr_curve(&[pt(0.25, 0.8), pt(0.5, 0.9)], 0.5, 0.9);
        assert_eq!(c.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.last(), Some(&(1.0, 1.0)));
        assert!((apgr(&c) - 0.8125).abs() < 1e-12, "{}", apgr(&c));
        assert!((cpt(&c, 0.5).unwrap() - 0.25 * 0.5 / 0.75).abs() < 1e-12);
        assert!((cpt(&c, 0.8).unwrap() - (0.25 + 0.25 * 0.05 / 0.25)).abs() < 1e-12);
        assert_eq!(cpt(&c, 1.5), None);
    }

    #[test]
    fn the_frontier_keeps_only_points_that_pay_off() {
        let f = frontier(&[
            pt(1.0, 0.9),
            pt(0.5, 0.6),
            pt(0.6, 0.55),
            pt(0.2, 0.6),
            pt(0.8, 0.9),
        ]);
        let got: Vec<(f64, f64)> = f.iter().map(|p| (p.cost_usd, p.quality)).collect();
        assert_eq!(got, [(0.2, 0.6), (0.8, 0.9)]);
        assert_eq!(quality_at(&f, 0.1), None);
        assert!((quality_at(&f, 0.5).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(quality_at(&f, 2.0), Some(0.9));
        assert!(
            (standard_error(&[1.0, 0.0, 1.0, 0.0]) - (1.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12
        );
    }
}
