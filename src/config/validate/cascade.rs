//! `routing.cascade`: two different defined tiers, rules that exist, an escalation rate in range,
//! and the settings each escalation signal needs (a logprob floor, a judge model, an agreement
//! model) naming defined models.

use super::{Checker, is_model, known_tier, list};
use crate::config::error::ConfigError;
use crate::config::schema::{Config, EscalateOn};

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let Some(cc) = &c.routing.cascade else {
        return Ok(());
    };
    let rule_names: std::collections::HashSet<&str> =
        c.routing.rules.iter().map(|r| r.name.as_str()).collect();
    known_tier(c, ck, &cc.from, "routing.cascade.from".into())?;
    known_tier(c, ck, &cc.to, "routing.cascade.to".into())?;
    if cc.from.value == cc.to.value {
        return Err(ck.spanned(
            &cc.to,
            "routing.cascade.to".into(),
            "a cascade must escalate to a different tier".into(),
        ));
    }
    for (i, r) in cc.rules.iter().enumerate() {
        if !rule_names.contains(r.as_str()) {
            return Err(ck.path(
                format!("routing.cascade.rules[{i}]"),
                format!("unknown rule `{r}` (defined: {})", {
                    let mut names: Vec<&str> = rule_names.iter().copied().collect();
                    names.sort_unstable();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                }),
            ));
        }
    }
    if !(0.0..=1.0).contains(&cc.max_escalation_rate) {
        return Err(ck.path(
            "routing.cascade.max_escalation_rate".into(),
            format!("{} is outside 0.0–1.0", cc.max_escalation_rate),
        ));
    }
    // A signal that needs a setting points at the signal when it is written out, else (the
    // default list) at the cascade.
    let signal = |s: EscalateOn| {
        cc.escalate_on.iter().position(|x| *x == s).map_or_else(
            || "routing.cascade.escalate_on".to_string(),
            |i| format!("routing.cascade.escalate_on[{i}]"),
        )
    };
    if cc.escalate_on.contains(&EscalateOn::LowConfidence) && cc.min_mean_logprob.is_none() {
        return Err(ck.path(
            signal(EscalateOn::LowConfidence),
            "escalate_on has low_confidence: set min_mean_logprob (e.g. -1.0)".into(),
        ));
    }
    match (&cc.judge, cc.escalate_on.contains(&EscalateOn::Judge)) {
        (None, true) => {
            return Err(ck.path(
                signal(EscalateOn::Judge),
                "escalate_on has judge: set judge.model".into(),
            ));
        }
        (Some(j), _) if !is_model(c, &j.model.value) => {
            return Err(ck.spanned(
                &j.model,
                "routing.cascade.judge.model".into(),
                format!(
                    "unknown model `{}` (defined: {})",
                    j.model.value,
                    list(c.models.iter().map(|m| &m.name))
                ),
            ));
        }
        _ => {}
    }
    let agree = cc.escalate_on.contains(&EscalateOn::Agree);
    let Some(a) = &cc.agreement else {
        if agree {
            return Err(ck.spanned(
                &cc.from,
                "routing.cascade.agreement".into(),
                "escalate_on has agree: set agreement.model (the second cheap model to ask) or agreement.learned: true".into(),
            ));
        }
        return Ok(());
    };
    if let Some(m) = a.model.as_ref().filter(|m| !is_model(c, &m.value)) {
        return Err(ck.spanned(
            m,
            "routing.cascade.agreement.model".into(),
            format!(
                "unknown model `{}` (defined: {})",
                m.value,
                list(c.models.iter().map(|m| &m.name))
            ),
        ));
    }
    let at = a.model.as_ref().unwrap_or(&cc.from);
    if a.model.is_none() && !a.learned {
        return Err(ck.spanned(
            at,
            "routing.cascade.agreement".into(),
            "name the second model (agreement.model) or take the learned layer's choice (agreement.learned: true)".into(),
        ));
    }
    if a.learned && c.routing.learned.is_none() {
        return Err(ck.spanned(
            at,
            "routing.cascade.agreement.learned".into(),
            "the learned layer's second choice needs routing.learned".into(),
        ));
    }
    if !(0.0..=1.0).contains(&a.min_similarity) {
        return Err(ck.spanned(
            at,
            "routing.cascade.agreement.min_similarity".into(),
            format!("{} is outside 0.0–1.0", a.min_similarity),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    fn cascade(section: &str) -> String {
        BASE.replace(
            "{default: t}",
            &format!("\n  default: t\n  cascade:\n{section}"),
        )
    }

    #[test]
    fn tiers_rules_and_signal_settings() {
        passes(check, BASE);
        passes(
            check,
            &cascade(
                "    from: t\n    to: u\n    escalate_on: [error, low_confidence]\n    min_mean_logprob: -1.0\n",
            ),
        );
        fails(
            check,
            &cascade("    from: t\n    to: t\n"),
            "routing.cascade.to",
            8,
            "a cascade must escalate to a different tier",
        );
        fails(
            check,
            &cascade("    from: t\n    to: u\n    rules: [nope]\n"),
            "routing.cascade.rules[0]",
            9,
            "unknown rule `nope` (defined: none)",
        );
        fails(
            check,
            &cascade("    from: t\n    to: u\n    escalate_on: [error, judge]\n"),
            "routing.cascade.escalate_on[1]",
            9,
            "escalate_on has judge: set judge.model",
        );
        fails(
            check,
            &cascade("    from: t\n    to: u\n    max_escalation_rate: 2\n"),
            "routing.cascade.max_escalation_rate",
            9,
            "2 is outside 0.0–1.0",
        );
    }
}
