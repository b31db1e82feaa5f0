//! Balancing inputs of the deployments (`models[].weight`, `rpm`, `tpm`) and of the tiers that
//! balance them (`tiers.<name>.strategy`): a weight of 0 everywhere would leave a tier nothing
//! to pick. Checked after the routing sections, as the table's error order has always been.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::reliability::Strategy;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if !m.weight.is_finite() || m.weight < 0.0 {
            return Err(ck.path(
                format!("{path}.weight"),
                format!("weight {} must be a non-negative number", m.weight),
            ));
        }
        for (what, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
            if v == Some(0) {
                return Err(ck.path(
                    format!("{path}.{what}"),
                    format!("{what} must be at least 1 (leave it out for no limit)"),
                ));
            }
        }
    }
    for (name, t) in &c.tiers {
        let weights: f64 = t
            .models
            .iter()
            .filter_map(|m| c.model(&m.value))
            .map(|m| m.weight)
            .sum();
        if t.strategy == Strategy::Weighted && weights <= 0.0 {
            return Err(ck.path(format!("tiers.{name}.strategy"),
                "every deployment of this tier has weight 0, so the weighted strategy could pick none".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn weights_and_limits() {
        passes(
            check,
            &BASE.replace(
                "{name: m, provider: p}",
                "{name: m, provider: p, weight: 2, rpm: 60}",
            ),
        );
        fails(
            check,
            &BASE.replace("{name: m, provider: p}", "{name: m, provider: p, tpm: 0}"),
            "models[0].tpm",
            2,
            "tpm must be at least 1 (leave it out for no limit)",
        );
        fails(
            check,
            &BASE.replace(
                "{name: m, provider: p}",
                "{name: m, provider: p, weight: 0}",
            ),
            "tiers.t.strategy",
            3,
            "every deployment of this tier has weight 0, so the weighted strategy could pick none",
        );
    }
}
