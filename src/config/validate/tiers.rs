//! `tiers:`: at least one, none called `auto`, each naming at least one defined model.

use super::{AUTO_MODEL, Checker, is_model, list};
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    if c.tiers.contains_key(AUTO_MODEL) {
        return Err(ck.path(
            "tiers.auto".into(),
            "`auto` is reserved for the router".into(),
        ));
    }
    for (name, t) in &c.tiers {
        if t.models.is_empty() {
            return Err(ck.path(
                format!("tiers.{name}.models"),
                "a tier needs at least one model".into(),
            ));
        }
        for (i, m) in t.models.iter().enumerate() {
            if !is_model(c, &m.value) {
                return Err(ck.spanned(
                    m,
                    format!("tiers.{name}.models[{i}]"),
                    format!(
                        "unknown model `{}` (defined: {})",
                        m.value,
                        list(c.models.iter().map(|m| &m.name))
                    ),
                ));
            }
        }
    }
    if c.tiers.is_empty() {
        return Err(ck.path("tiers".into(), "define at least one tier".into()));
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails_each, passes};
    use super::check;

    #[test]
    fn tiers_name_models() {
        passes(check, BASE);
        fails_each(
            check,
            "u: {models: [m]}",
            &[
                (
                    "u: {models: [m, gone]}",
                    "tiers.u.models[1]",
                    3,
                    "unknown model `gone` (defined: m)",
                ),
                (
                    "auto: {models: [m]}",
                    "tiers.auto",
                    3,
                    "`auto` is reserved for the router",
                ),
                (
                    "u: {models: []}",
                    "tiers.u.models",
                    3,
                    "a tier needs at least one model",
                ),
            ],
        );
    }
}
