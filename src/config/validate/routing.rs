//! `routing:`'s names: the default tier, the counterfactual (a tier or a model), and the aliases
//! (names a client may send instead of `auto`, so none may already mean something else).

use super::{AUTO_MODEL, Checker, is_model, known_tier, list};
use crate::config::error::ConfigError;
use crate::config::schema::Config;

/// `routing.default` and `routing.counterfactual`.
pub(super) fn check_targets(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    known_tier(c, ck, &c.routing.default, "routing.default".into())?;
    if let Some(cf) = &c.routing.counterfactual {
        if !is_model(c, &cf.value) {
            known_tier(c, ck, cf, "routing.counterfactual".into()).map_err(|mut e| {
                e.message = format!(
                    "`{}` is neither a tier ({}) nor a model",
                    cf.value,
                    list(c.tiers.keys())
                );
                e
            })?;
        }
    }
    Ok(())
}

/// `routing.aliases`.
pub(super) fn check_aliases(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, a) in c.routing.aliases.iter().enumerate() {
        if a == AUTO_MODEL || c.tiers.contains_key(a) || is_model(c, a) {
            return Err(ck.path(
                format!("routing.aliases[{i}]"),
                format!("alias `{a}` is already `auto`, a tier or a model name"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::{check_aliases, check_targets};

    #[test]
    fn default_and_counterfactual_name_tiers_or_models() {
        for ok in [
            "{default: t, counterfactual: m}",
            "{default: t, counterfactual: u}",
        ] {
            passes(check_targets, &BASE.replace("{default: t}", ok));
        }
        for (routing, path, message) in [
            (
                "{default: nope}",
                "routing.default",
                "unknown tier `nope` (defined: t, u)",
            ),
            (
                "{default: t, counterfactual: nope}",
                "routing.counterfactual",
                "`nope` is neither a tier (t, u) nor a model",
            ),
        ] {
            fails(
                check_targets,
                &BASE.replace("{default: t}", routing),
                path,
                4,
                message,
            );
        }
    }

    #[test]
    fn aliases_are_new_names() {
        passes(
            check_aliases,
            &BASE.replace("{default: t}", "{default: t, aliases: [router]}"),
        );
        fails(
            check_aliases,
            &BASE.replace("{default: t}", "{default: t, aliases: [router, m]}"),
            "routing.aliases[1]",
            4,
            "alias `m` is already `auto`, a tier or a model name",
        );
    }
}
