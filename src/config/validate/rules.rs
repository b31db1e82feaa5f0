//! `routing.rules` and the files of `routing.rules_files`: rule names unique, tiers defined, and
//! every condition (nested `all`/`any`/`not` included) well formed: keywords not empty, regexes
//! that compile, valid header names, token ranges the right way round, `model` tests that a
//! routed request can match.

use super::{AUTO_MODEL, Checker, known_tier, list};
use crate::config::error::ConfigError;
use crate::config::schema::{Condition, Config, RuleConfig};
use std::collections::HashSet;

/// The names a routed request can carry as `model`: `auto` and the aliases.
fn routed_names(c: &Config) -> Vec<&str> {
    std::iter::once(AUTO_MODEL)
        .chain(c.routing.aliases.iter().map(String::as_str))
        .collect()
}

/// The rules of the table (those of `rules_files` appended), located in the table's file.
pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let routed_names = routed_names(c);
    let mut rule_names = HashSet::new();
    for (i, r) in c.routing.rules.iter().enumerate() {
        let path = format!("routing.rules[{i}]");
        if !rule_names.insert(r.name.as_str()) {
            return Err(ck.path(
                format!("{path}.name"),
                format!("rule `{}` is defined twice", r.name),
            ));
        }
        known_tier(c, ck, &r.tier, format!("{path}.tier"))?;
        check_condition(&r.when.value, &format!("{path}.when"), &routed_names)
            .map_err(|(p, m)| ck.path(p, m))?;
    }
    Ok(())
}

/// The rules of one `routing.rules_files` file, checked against the table (its tiers, its aliases,
/// the names of the rules before them) with errors located in that file.
pub(in crate::config) fn included_rules(
    c: &Config,
    rules: &[RuleConfig],
    file: &str,
    text: &str,
) -> Result<(), ConfigError> {
    let ck = Checker { file, text };
    let routed_names = routed_names(c);
    let mut names: HashSet<&str> = c.routing.rules.iter().map(|r| r.name.as_str()).collect();
    for (i, r) in rules.iter().enumerate() {
        let path = format!("[{i}]");
        if !names.insert(r.name.as_str()) {
            return Err(ck.spanned(
                &r.when,
                format!("{path}.name"),
                format!("rule `{}` is defined twice", r.name),
            ));
        }
        if !c.tiers.contains_key(&r.tier.value) {
            return Err(ck.spanned(
                &r.tier,
                format!("{path}.tier"),
                format!(
                    "unknown tier `{}` (defined: {})",
                    r.tier.value,
                    list(c.tiers.keys())
                ),
            ));
        }
        if c.is_embedding(&r.tier.value) {
            return Err(ck.spanned(
                &r.tier,
                format!("{path}.tier"),
                super::kinds::embedding_target(&r.tier.value),
            ));
        }
        check_condition(&r.when.value, &format!("{path}.when"), &routed_names)
            .map_err(|(p, m)| ck.spanned(&r.when, p, m))?;
    }
    Ok(())
}

/// Checks one condition and everything nested in it; errors carry the condition's YAML path.
fn check_condition(
    w: &Condition,
    path: &str,
    routed_names: &[&str],
) -> Result<(), (String, String)> {
    if w.is_empty() {
        return Err((path.to_string(), "a condition needs at least one test (keywords, regex, header, task_type, metadata, tags, prompt_tokens, has_tools, has_images, json_response, model, all, any, not)".into()));
    }
    for (field, list) in [("keywords", &w.keywords), ("keywords_all", &w.keywords_all)] {
        if let Some(j) = list
            .iter()
            .position(|k| k.trim().trim_end_matches('*').is_empty())
        {
            return Err((
                format!("{path}.{field}[{j}]"),
                "keywords must not be empty strings".into(),
            ));
        }
    }
    for (i, re) in w.regex.0.iter().enumerate() {
        if let Err(e) = regex::Regex::new(re) {
            return Err((format!("{path}.regex[{i}]"), format!("invalid regex: {e}")));
        }
    }
    if let Some(h) = &w.header {
        if reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err((
                format!("{path}.header.name"),
                format!("{:?} is not a valid header name", h.name),
            ));
        }
        if let Some(re) = &h.regex {
            if let Err(e) = regex::Regex::new(re) {
                return Err((
                    format!("{path}.header.regex"),
                    format!("invalid regex: {e}"),
                ));
            }
        }
    }
    if let Some(t) = w.prompt_tokens {
        if t.min.is_none() && t.max.is_none() {
            return Err((
                format!("{path}.prompt_tokens"),
                "give min, max or both".into(),
            ));
        }
        if let (Some(a), Some(b)) = (t.min, t.max) {
            if a > b {
                return Err((
                    format!("{path}.prompt_tokens"),
                    format!("min {a} is greater than max {b}"),
                ));
            }
        }
    }
    for (j, m) in w.model.iter().enumerate() {
        if !routed_names.contains(&m.as_str()) {
            return Err((
                format!("{path}.model[{j}]"),
                format!(
                    "`{m}` is not `auto` or one of routing.aliases, so no routed request can carry it"
                ),
            ));
        }
    }
    for (i, sub) in w.all.iter().enumerate() {
        check_condition(sub, &format!("{path}.all[{i}]"), routed_names)?;
    }
    for (i, sub) in w.any.iter().enumerate() {
        check_condition(sub, &format!("{path}.any[{i}]"), routed_names)?;
    }
    if let Some(n) = &w.not {
        check_condition(n, &format!("{path}.not"), routed_names)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, FILE, fails, passes};
    use super::{check, included_rules};
    use crate::config::schema::{Config, RuleConfig};

    fn with_rules(rules: &str) -> String {
        BASE.replace(
            "{default: t}",
            &format!("\n  default: t\n  rules:\n{rules}"),
        )
    }

    #[test]
    fn rules_name_tiers_and_valid_conditions() {
        passes(
            check,
            &with_rules(
                "    - {name: code, tier: u, when: {any: [{keywords: [rust]}, {regex: \"^fn \"}], not: {model: [auto]}}}\n",
            ),
        );
        fails(
            check,
            &with_rules(
                "    - {name: a, tier: u, when: {keywords: [x]}}\n    - {name: a, tier: t, when: {keywords: [y]}}\n",
            ),
            "routing.rules[1].name",
            8,
            "rule `a` is defined twice",
        );
        fails(
            check,
            &with_rules("    - {name: a, tier: nope, when: {keywords: [x]}}\n"),
            "routing.rules[0].tier",
            7,
            "unknown tier `nope` (defined: t, u)",
        );
        fails(
            check,
            &with_rules(
                "    - name: a\n      tier: u\n      when:\n        all:\n          - prompt_tokens: {min: 9, max: 3}\n",
            ),
            "routing.rules[0].when.all[0].prompt_tokens",
            11,
            "min 9 is greater than max 3",
        );
        fails(
            check,
            &with_rules("    - {name: a, tier: u, when: {model: [gpt-4o]}}\n"),
            "routing.rules[0].when.model[0]",
            7,
            "`gpt-4o` is not `auto` or one of routing.aliases, so no routed request can carry it",
        );
    }

    /// An included file's errors are located in that file, at the offending rule.
    #[test]
    fn included_rules_are_checked_against_the_table() {
        let c: Config = serde_saphyr::from_str(&with_rules(
            "    - {name: a, tier: u, when: {keywords: [x]}}\n",
        ))
        .unwrap();
        let file = "- {name: b, tier: t, when: {keywords: [y]}}\n- name: a\n  tier: t\n  when: {keywords: [z]}\n";
        let rules: Vec<RuleConfig> = serde_saphyr::from_str(file).unwrap();
        assert!(included_rules(&c, &rules[..1], FILE, file).is_ok());
        let e = included_rules(&c, &rules, "more.yaml", file).unwrap_err();
        assert_eq!(e.file, "more.yaml");
        assert_eq!(e.path, "[1].name");
        assert_eq!(e.message, "rule `a` is defined twice");
        assert_eq!(e.line, Some(4));
    }
}
