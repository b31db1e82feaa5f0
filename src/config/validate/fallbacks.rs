//! `fallbacks:` and `fallbacks.context_window`: chains from and to defined tiers, never to
//! themselves, and no tier named like the `context_window` key when that key is used.

use super::{Checker, known_tier, list};
use crate::config::error::ConfigError;
use crate::config::reliability::CONTEXT_WINDOW_KEY;
use crate::config::schema::Config;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    check_chains(c, ck, "fallbacks", &c.fallbacks.chains)?;
    check_chains(
        c,
        ck,
        "fallbacks.context_window",
        &c.fallbacks.context_window,
    )?;
    if c.tiers.contains_key(CONTEXT_WINDOW_KEY) && !c.fallbacks.context_window.is_empty() {
        return Err(ck.path(format!("tiers.{CONTEXT_WINDOW_KEY}"),
            "`context_window` under `fallbacks:` names the context-window chains, so a tier of that name is ambiguous; rename the tier".into(),
        ));
    }
    Ok(())
}

/// Chains under `section`, each from a tier to the tiers tried after it.
fn check_chains(
    c: &Config,
    ck: &Checker<'_>,
    section: &str,
    chains: &BTreeMap<String, Vec<Spanned<String>>>,
) -> Result<(), ConfigError> {
    for (from, chain) in chains {
        if !c.tiers.contains_key(from) {
            return Err(ck.path(
                format!("{section}.{from}"),
                format!("unknown tier `{from}` (defined: {})", list(c.tiers.keys())),
            ));
        }
        for (i, to) in chain.iter().enumerate() {
            known_tier(c, ck, to, format!("{section}.{from}[{i}]"))?;
            if &to.value == from {
                return Err(ck.spanned(
                    to,
                    format!("{section}.{from}[{i}]"),
                    format!("tier `{from}` cannot fall back to itself"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn chains_between_defined_tiers() {
        passes(
            check,
            &format!("{BASE}fallbacks:\n  t: [u]\n  context_window: {{t: [u]}}\n"),
        );
        fails(
            check,
            &format!("{BASE}fallbacks:\n  t: [t]\n"),
            "fallbacks.t[0]",
            6,
            "tier `t` cannot fall back to itself",
        );
        fails(
            check,
            &format!("{BASE}fallbacks:\n  nope: [u]\n"),
            "fallbacks.nope",
            6,
            "unknown tier `nope` (defined: t, u)",
        );
        fails(
            check,
            &format!("{BASE}fallbacks:\n  context_window:\n    t: [gone]\n"),
            "fallbacks.context_window.t[0]",
            7,
            "unknown tier `gone` (defined: t, u)",
        );
    }
}
