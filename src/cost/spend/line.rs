//! What a group of spend rows adds up to (a tier, a model, a task type, or everything): the one
//! type the store's aggregates, `switchyard report` and `GET /admin/spend` all use.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Line {
    /// The tier, model or task type; `(none)` for requests that had none.
    pub name: String,
    pub requests: i64,
    /// Requests answered with an error status (they cost nothing unless an answer was streamed).
    pub errors: i64,
    /// Requests whose tokens switchyard counted because the provider reported none.
    pub estimated: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub counterfactual_usd: f64,
    /// `counterfactual_usd - cost_usd`.
    pub savings_usd: f64,
    /// Savings as a percentage of the counterfactual; null when the counterfactual is zero.
    pub savings_pct: Option<f64>,
}

/// Sums of binary floats carry noise in the 17th digit; a ten-thousandth of a micro-dollar is the
/// precision of the cost headers, and the report keeps the same.
fn usd(v: f64) -> f64 {
    (v * 1e10).round() / 1e10
}

impl Line {
    /// A line from its name (`None`: the group had no value) and its sums; the savings follow.
    pub fn summed(name: Option<String>, mut sums: Line) -> Line {
        let (cost, counterfactual) = (sums.cost_usd, sums.counterfactual_usd);
        let savings = usd(counterfactual - cost);
        sums.name = name.unwrap_or_else(|| "(none)".into());
        sums.cost_usd = usd(cost);
        sums.counterfactual_usd = usd(counterfactual);
        sums.savings_usd = savings;
        sums.savings_pct =
            (counterfactual > 0.0).then(|| (savings / counterfactual * 10_000.0).round() / 100.0);
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_compute_savings() {
        let l = Line::summed(
            None,
            Line {
                requests: 2,
                cost_usd: 0.25,
                counterfactual_usd: 1.0,
                ..Line::default()
            },
        );
        assert_eq!(l.name, "(none)");
        assert_eq!(l.savings_usd, 0.75);
        assert_eq!(l.savings_pct, Some(75.0));
        assert_eq!(Line::summed(None, Line::default()).savings_pct, None);
    }
}
