//! The sweep of the operating point: how every test prompt's choice moves as the bar rises, and
//! the totals at each step. A prompt the learned layer decides moves to a dearer tier each time
//! the bar passes one of its breakpoints (the same test `routing::learned::choose` applies), so
//! the exact curve has one point per distinct breakpoint, found with one sort of them.

use super::curve::Point;
use crate::config::BarKind;
use crate::routing::learned::{Bar, choose, relative_costs};

/// How a test prompt is decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Rules, semantic similarity, the default, or the learned layer abstaining: the same tier
    /// whatever the bar.
    Fixed(usize),
    /// Predicted score per tier (cheapest first): the bar decides.
    Learned(Vec<f32>),
    /// Predicted scores in an order of the candidates of the prompt's own fold (cheapest first
    /// by that fold's training costs), and the candidate each stands for: when cascades are
    /// candidates, their cost (and so their rank) is only known on each fold's training data.
    Ranked(Vec<f32>, Vec<usize>),
    /// As `Ranked`, with what a call to each costs (the `value` bar weighs it).
    Priced(Vec<f32>, Vec<usize>, Vec<f64>),
}

/// What serving one prompt on one tier comes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The candidate whose answer is returned.
    pub model: usize,
    /// Every candidate called, in order (more than one when a cascade escalated).
    pub asked: Vec<usize>,
    pub quality: f64,
    pub cost: f64,
}

impl Served {
    pub fn new(model: usize, asked: Vec<usize>, quality: f64, cost: f64) -> Served {
        Served {
            model,
            asked,
            quality,
            cost,
        }
    }
}

/// [`segments`] of the `value` bar: from the cheapest tier up the upper convex hull of
/// (relative cost, prediction). A prompt on `cur` moves to `j` once `λ` falls below
/// `(p_j − p_cur) / (c_j − c_cur)`, the largest such ratio first (the dearer on a tie), that is
/// once the bar passes `1 / (1 + λ)`.
fn value_segments(pred: &[f32], costs: &[f64]) -> Vec<(f64, usize)> {
    let rel = relative_costs(costs);
    let rc = |t: usize| rel.get(t).copied().unwrap_or(0.0);
    let p = |t: usize| f64::from(pred[t]);
    let live: Vec<usize> = (0..pred.len()).filter(|&t| pred[t].is_finite()).collect();
    let Some(mut cur) = live.iter().copied().reduce(|b, t| {
        if rc(t) < rc(b) || (rc(t) <= rc(b) && p(t) > p(b)) {
            t
        } else {
            b
        }
    }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    loop {
        let mut next: Option<(f64, usize)> = None;
        for &j in &live {
            if rc(j) > rc(cur) && p(j) > p(cur) {
                let lambda = (p(j) - p(cur)) / (rc(j) - rc(cur));
                let better = next.is_none_or(|(l, n)| {
                    lambda > l + 1e-12 || ((lambda - l).abs() <= 1e-12 && rc(j) > rc(n))
                });
                if better {
                    next = Some((lambda, j));
                }
            }
        }
        let Some((lambda, j)) = next else {
            out.push((1.0, cur));
            return out;
        };
        out.push((1.0 / (1.0 + lambda), cur));
        cur = j;
    }
}

/// The bar value at which a prompt leaves each tier: `(leaves_above, tier)` in rising order; the
/// last entry never leaves.
fn segments(pred: &[f32], kind: BarKind) -> Vec<(f64, usize)> {
    let best = pred
        .iter()
        .copied()
        .filter(|p| p.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<(f64, usize)> = Vec::new();
    let mut record = f64::NEG_INFINITY;
    for (t, p) in pred.iter().enumerate() {
        if !p.is_finite() {
            continue;
        }
        let key = match kind {
            BarKind::ShareOfBest | BarKind::Value if best > 0.0 => f64::from(*p) / f64::from(best),
            BarKind::ShareOfBest | BarKind::Value => 1.0,
            BarKind::Score => f64::from(*p),
        };
        if key > record {
            out.push((key, t));
            record = key;
        }
    }
    out
}

/// The tier a plan picks at `bar`.
pub fn tier_at(plan: &Plan, bar: f64, kind: BarKind) -> Option<usize> {
    match plan {
        Plan::Fixed(t) => Some(*t),
        Plan::Learned(p) => choose(p, &[], Bar { value: bar, kind }),
        Plan::Ranked(p, tiers) => {
            choose(p, &[], Bar { value: bar, kind }).and_then(|t| tiers.get(t).copied())
        }
        Plan::Priced(p, tiers, costs) => {
            choose(p, costs, Bar { value: bar, kind }).and_then(|t| tiers.get(t).copied())
        }
    }
}

/// Every distinct operating point, cheapest-bar first. `served[i][t]` is prompt `i` on tier `t`;
/// `strong` the candidate counted for `strong_share`.
pub fn sweep(plans: &[Plan], served: &[Vec<Served>], kind: BarKind, strong: usize) -> Vec<Point> {
    let n = plans.len().max(1) as f64;
    let mut state: Vec<usize> = Vec::with_capacity(plans.len());
    let mut events: Vec<(f64, usize, usize)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let (p, tiers, costs): (&[f32], Option<&[usize]>, &[f64]) = match plan {
            Plan::Fixed(t) => {
                state.push(*t);
                continue;
            }
            Plan::Learned(p) => (p, None, &[]),
            Plan::Ranked(p, tiers) => (p, Some(tiers), &[]),
            Plan::Priced(p, tiers, costs) => (p, Some(tiers), costs),
        };
        let seg = match kind {
            BarKind::Value => value_segments(p, costs),
            _ => segments(p, kind),
        };
        let at = |t: usize| tiers.map_or(t, |ts| ts.get(t).copied().unwrap_or(0));
        state.push(seg.first().map_or(0, |s| at(s.1)));
        for w in seg.windows(2) {
            events.push((w[0].0, i, at(w[1].1)));
        }
    }
    let mut quality = 0.0;
    let mut cost = 0.0;
    let mut strong_calls = 0usize;
    for (i, &t) in state.iter().enumerate() {
        let s = &served[i][t];
        quality += s.quality;
        cost += s.cost;
        strong_calls += usize::from(s.model == strong);
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    // A point's bar is where the state holds: below the next breakpoint (choose() keeps a tier
    // whose key equals the bar), so the midpoint of two breakpoints, or just above the last.
    let mut points = Vec::new();
    let first_bar = events.first().map_or(1.0, |e| e.0.min(1.0));
    let lowest = if first_bar > 0.0 { 0.0 } else { first_bar };
    points.push(Point {
        point: lowest,
        quality: quality / n,
        cost_usd: cost,
        strong_share: strong_calls as f64 / n,
    });
    let mut k = 0;
    while k < events.len() {
        let v = events[k].0;
        while k < events.len() && events[k].0 == v {
            let (_, i, to) = events[k];
            let from = state[i];
            let (a, b) = (&served[i][from], &served[i][to]);
            quality += b.quality - a.quality;
            cost += b.cost - a.cost;
            strong_calls =
                strong_calls + usize::from(b.model == strong) - usize::from(a.model == strong);
            state[i] = to;
            k += 1;
        }
        let next = events.get(k).map(|e| e.0);
        let bar = match next {
            Some(nv) => (v + nv) / 2.0,
            None if v < 1.0 => (v + 1.0) / 2.0,
            None => v + 1e-6,
        };
        points.push(Point {
            point: bar,
            quality: quality / n,
            cost_usd: cost,
            strong_share: strong_calls as f64 / n,
        });
    }
    points
}

/// The operating point past every bar: each prompt the learned layer decides goes to `top[i]`,
/// the candidate with the best record on the training data of its fold. The highest bar reaches
/// only the best *predicted* candidate, and noisy predictions make that a cheaper one on some
/// prompts, so without this end the curve can stop short of the best single model. It stands for
/// deploying that model alone (no learned layer) and is chosen, like any point, on training data.
pub const TOP: f64 = 2.0;

/// The candidate a prompt gets at `bar`, [`TOP`] included.
pub fn tier_at_point(plan: &Plan, top: Option<usize>, bar: f64, kind: BarKind) -> Option<usize> {
    match (plan, top) {
        (Plan::Learned(_) | Plan::Ranked(..) | Plan::Priced(..), Some(t)) if bar >= TOP => Some(t),
        _ => tier_at(plan, bar, kind),
    }
}

/// The curve's [`TOP`] point.
pub fn top_point(
    plans: &[Plan],
    served: &[Vec<Served>],
    top: &[Option<usize>],
    kind: BarKind,
    strong: usize,
) -> Point {
    let n = plans.len().max(1) as f64;
    let (mut quality, mut cost, mut strong_calls) = (0.0, 0.0, 0usize);
    for (i, plan) in plans.iter().enumerate() {
        let t = tier_at_point(plan, top.get(i).copied().flatten(), TOP, kind).unwrap_or(0);
        let s = &served[i][t];
        quality += s.quality;
        cost += s.cost;
        strong_calls += usize::from(s.model == strong);
    }
    Point {
        point: TOP,
        quality: quality / n,
        cost_usd: cost,
        strong_share: strong_calls as f64 / n,
    }
}

/// At most `max` points spread evenly over the curve's cost range (always keeping both ends), for
/// output that stays readable: the exact curve can have a point per prompt.
pub fn thin(points: &[Point], max: usize) -> Vec<Point> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(max);
    for j in 0..max {
        let idx = j * (points.len() - 1) / (max - 1);
        if out
            .last()
            .is_none_or(|l: &Point| l.point != points[idx].point)
        {
            out.push(points[idx]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(model: usize, quality: f64, cost: f64) -> Served {
        Served {
            model,
            asked: vec![model],
            quality,
            cost,
        }
    }

    #[test]
    fn the_top_point_sends_learned_prompts_to_the_best_model_on_record() {
        // Predicted as good on the cheap model, so every bar keeps it there.
        let plans = vec![Plan::Learned(vec![1.0, 1.0]), Plan::Fixed(0)];
        let table = vec![
            vec![served(0, 0.0, 1.0), served(1, 1.0, 10.0)],
            vec![served(0, 1.0, 1.0), served(1, 1.0, 10.0)],
        ];
        let top = [Some(1), None];
        let pts = sweep(&plans, &table, BarKind::ShareOfBest, 1);
        assert!(pts.iter().all(|p| p.quality == 0.5), "{pts:?}");
        let t = top_point(&plans, &table, &top, BarKind::ShareOfBest, 1);
        assert_eq!(
            (t.point, t.quality, t.cost_usd, t.strong_share),
            (TOP, 1.0, 11.0, 0.5)
        );
        // Below the top, the bar decides as before; a fixed decision never moves.
        assert_eq!(
            tier_at_point(&plans[0], top[0], 1.0, BarKind::ShareOfBest),
            Some(0)
        );
        assert_eq!(
            tier_at_point(&plans[0], top[0], TOP, BarKind::ShareOfBest),
            Some(1)
        );
        assert_eq!(
            tier_at_point(&plans[1], top[1], TOP, BarKind::ShareOfBest),
            Some(0)
        );
    }

    #[test]
    fn the_sweep_matches_choosing_at_each_bar() {
        let plans = vec![
            Plan::Learned(vec![0.9, 1.0]),
            Plan::Learned(vec![0.2, 0.8]),
            Plan::Fixed(1),
            Plan::Learned(vec![0.7, 0.6]),
            Plan::Ranked(vec![0.5, 0.9], vec![1, 0]),
            Plan::Priced(vec![0.7, 0.9], vec![0, 1], vec![1.0, 10.0]),
        ];
        let table: Vec<Vec<Served>> = vec![
            vec![served(0, 1.0, 1.0), served(1, 1.0, 10.0)],
            vec![served(0, 0.0, 1.0), served(1, 1.0, 10.0)],
            vec![served(0, 0.0, 1.0), served(1, 1.0, 10.0)],
            vec![served(0, 1.0, 1.0), served(1, 0.0, 10.0)],
            vec![served(0, 1.0, 1.0), served(1, 0.0, 10.0)],
            vec![served(0, 0.0, 1.0), served(1, 1.0, 10.0)],
        ];
        for kind in [BarKind::ShareOfBest, BarKind::Score, BarKind::Value] {
            let pts = sweep(&plans, &table, kind, 1);
            for p in &pts {
                let mut q = 0.0;
                let mut c = 0.0;
                for (i, plan) in plans.iter().enumerate() {
                    let t = tier_at(plan, p.point, kind).unwrap();
                    q += table[i][t].quality;
                    c += table[i][t].cost;
                }
                assert!((p.quality - q / 6.0).abs() < 1e-12, "{kind:?} {p:?}");
                assert!((p.cost_usd - c).abs() < 1e-12, "{kind:?} {p:?}");
            }
            // The ranked plan starts on candidate 1 (its cheapest in its own order) and moves to 0;
            // the priced one moves from 0 to 1. Without costs, `value` takes the best prediction.
            let first = if kind == BarKind::Value { 3.0 } else { 2.0 };
            assert_eq!(pts.first().unwrap().strong_share, first / 6.0, "{kind:?}");
            assert_eq!(pts.last().unwrap().strong_share, 4.0 / 6.0, "{kind:?}");
        }
    }
}
