//! `models:` (the deployments): names unique and distinct from tiers and `auto`, a defined
//! provider, prices that are numbers. Balancing inputs are checked later, in `deployments`.

use super::{AUTO_MODEL, Checker, list};
use crate::config::error::ConfigError;
use crate::config::schema::Config;
use std::collections::HashSet;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let tier_names: HashSet<&String> = c.tiers.keys().collect();
    let mut model_names = HashSet::new();
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if m.name.is_empty() {
            return Err(ck.path(
                format!("{path}.name"),
                "a model needs a non-empty name".into(),
            ));
        }
        if !model_names.insert(m.name.as_str()) {
            return Err(ck.path(
                format!("{path}.name"),
                format!("model `{}` is defined twice", m.name),
            ));
        }
        if m.name == AUTO_MODEL || tier_names.contains(&m.name) {
            return Err(ck.path(format!("{path}.name"),
                format!("model name `{}` is also a tier name or `auto`; a request's `model` must mean one thing", m.name)));
        }
        if !c.providers.contains_key(&m.provider.value) {
            return Err(ck.spanned(
                &m.provider,
                format!("{path}.provider"),
                format!(
                    "unknown provider `{}` (defined: {})",
                    m.provider.value,
                    list(c.providers.keys())
                ),
            ));
        }
        for (what, v) in [
            ("input", m.price.input),
            ("output", m.price.output),
            ("cached_input", m.price.cached_input.unwrap_or(0.0)),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ck.path(
                    format!("{path}.price.{what}"),
                    format!("price {v} must be a non-negative number"),
                ));
            }
        }
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails_each, passes};
    use super::super::{Checker, testing::FILE};
    use super::check;
    use crate::config::schema::Config;

    #[test]
    fn names_providers_and_prices() {
        passes(check, BASE);
        fails_each(
            check,
            "[{name: m, provider: p}]",
            &[
                (
                    "[{name: m, provider: p}, {name: m, provider: p}]",
                    "models[1].name",
                    2,
                    "model `m` is defined twice",
                ),
                (
                    "[{name: t, provider: p}]",
                    "models[0].name",
                    2,
                    "model name `t` is also a tier name or `auto`; a request's `model` must mean one thing",
                ),
                (
                    "[{name: m, provider: nope}]",
                    "models[0].provider",
                    2,
                    "unknown provider `nope` (defined: p)",
                ),
            ],
        );
    }

    /// Prices are resolved from `price:` after parsing, so this one is set on the parsed table.
    #[test]
    fn a_negative_price_is_refused() {
        let mut c: Config = serde_saphyr::from_str(BASE).unwrap();
        c.models[0].price.output = -1.0;
        let e = check(
            &c,
            &Checker {
                file: FILE,
                text: BASE,
            },
        )
        .unwrap_err();
        assert_eq!(e.path, "models[0].price.output");
        assert_eq!(e.message, "price -1 must be a non-negative number");
        assert_eq!(e.line, Some(2));
    }
}
