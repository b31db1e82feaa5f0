//! What a request cost, and what it would have cost on the counterfactual tier or model: usage
//! times the per-million-token prices of the config. The numbers feed the response headers, the
//! request log line, the metrics and the spend log, all from the one [`Cost`] computed per request.
//!
//! The accounting stage is `account`. Must not import `api`.

pub mod account;
pub mod budget;
pub mod estimate;
pub mod report;
pub mod spend;

use crate::config::Price;
pub use crate::config::prices::Counterfactual;
use crate::openai::Usage;

/// USD for `usage` at `price`. Cached prompt tokens are a subset of the prompt tokens and are billed
/// at `cached_input` (or at `input` when the price has none).
pub fn usd(price: &Price, usage: &Usage) -> f64 {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let fresh = usage.prompt_tokens - cached;
    let cached_rate = price.cached_input.unwrap_or(price.input);
    (fresh as f64 * price.input
        + cached as f64 * cached_rate
        + usage.completion_tokens as f64 * price.output)
        / 1_000_000.0
}

/// One request's bill.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub usd: f64,
    pub counterfactual_usd: f64,
    /// The provider reported no usage, so the tokens were counted by switchyard's tokenizer.
    pub estimated: bool,
}

impl Cost {
    pub fn savings_usd(&self) -> f64 {
        self.counterfactual_usd - self.usd
    }
}

/// The `x-switchyard-cost-usd` format: fixed ten decimals (a ten-thousandth of a micro-dollar), so
/// a client summing headers of small requests drifts by less than 0.01% from the metrics, and no
/// value ever comes out in exponent notation.
pub fn format_usd(v: f64) -> String {
    format!("{v:.10}")
}

/// Prices `usage` as served by `model` (priced `price`) on `tier`.
pub fn bill(
    usage: &Usage,
    estimated: bool,
    price: &Price,
    tier: Option<&str>,
    model: Option<&str>,
    cf: Option<&Counterfactual>,
) -> Cost {
    let actual = usd(price, usage);
    let counterfactual = match cf {
        None => actual,
        Some(c) if c.tier.is_some() && c.tier.as_deref() == tier => actual,
        Some(c) if c.model.is_some() && c.model.as_deref() == model => actual,
        Some(c) => usd(&c.price, usage),
    };
    Cost {
        usd: actual,
        counterfactual_usd: counterfactual,
        estimated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64, cached: Option<f64>) -> Price {
        Price {
            input,
            output,
            cached_input: cached,
        }
    }

    fn usage(p: u64, c: u64, cached: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            cached_tokens: cached,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-15
    }

    #[test]
    fn hand_computed_costs() {
        // 1000 in at $2.50/M + 500 out at $10/M = 0.0025 + 0.005
        assert!(close(
            usd(&price(2.5, 10.0, None), &usage(1000, 500, 0)),
            0.0075
        ));
        // gpt-4o-mini, 11 in (3 of them cached) + 7 out:
        // 8 × 0.15 + 3 × 0.075 + 7 × 0.6 = 1.2 + 0.225 + 4.2 = 5.625 µ$
        assert!(close(
            usd(&price(0.15, 0.6, Some(0.075)), &usage(11, 7, 3)),
            5.625e-6
        ));
        // No cached rate: cached tokens cost the input rate, same as uncached.
        assert!(close(
            usd(&price(0.15, 0.6, None), &usage(11, 7, 3)),
            (11.0 * 0.15 + 7.0 * 0.6) / 1e6
        ));
        // Anthropic-shaped: 1110 prompt (1000 cache reads) + 5 out on sonnet ($3/$15, reads $0.30):
        // 110 × 3 + 1000 × 0.3 + 5 × 15 = 330 + 300 + 75 = 705 µ$
        assert!(close(
            usd(&price(3.0, 15.0, Some(0.3)), &usage(1110, 5, 1000)),
            705e-6
        ));
        // A provider reporting more cached than prompt tokens is clamped, never negative.
        assert!(close(
            usd(&price(1.0, 1.0, Some(0.5)), &usage(10, 0, 50)),
            5e-6
        ));
        assert_eq!(usd(&Price::default(), &usage(1_000_000, 1_000_000, 0)), 0.0);
    }

    #[test]
    fn counterfactual_prices_the_same_tokens() {
        let cheap = price(0.15, 0.6, None);
        let cf = Counterfactual {
            tier: Some("premium".into()),
            model: None,
            price: price(5.0, 15.0, None),
        };
        let u = usage(11, 7, 3);
        let c = bill(&u, false, &cheap, Some("budget"), Some("cheap"), Some(&cf));
        assert!(close(c.usd, (11.0 * 0.15 + 7.0 * 0.6) / 1e6));
        assert!(close(c.counterfactual_usd, (11.0 * 5.0 + 7.0 * 15.0) / 1e6));
        assert!(close(c.savings_usd(), 154.15e-6));
        // Served on the counterfactual tier (say by its second model): its own cost, whatever the
        // tier's first model charges.
        let second = price(4.0, 12.0, None);
        let on = bill(&u, true, &second, Some("premium"), Some("alt"), Some(&cf));
        assert_eq!(on.usd, on.counterfactual_usd);
        assert!(on.estimated);
        // No counterfactual configured: the baseline is the bill itself.
        let none = bill(&u, false, &cheap, Some("budget"), Some("cheap"), None);
        assert_eq!(none.savings_usd(), 0.0);
        // A model counterfactual.
        let m = Counterfactual {
            tier: None,
            model: Some("strong".into()),
            price: price(5.0, 15.0, None),
        };
        let same = bill(&u, false, &second, Some("x"), Some("strong"), Some(&m));
        assert_eq!(same.usd, same.counterfactual_usd);
    }

    #[test]
    fn header_format() {
        assert_eq!(format_usd(5.625e-6), "0.0000056250");
        assert_eq!(format_usd(0.0), "0.0000000000");
        assert_eq!(format_usd(1.5), "1.5000000000");
    }
}
