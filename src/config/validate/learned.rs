//! `routing.learned`: the outcome files exist, the mapping names real tiers, the numbers are in
//! range; then its embedder (`embedder`). Whether the files' models map to tiers is checked when
//! they are read (`Gateway::build`).

use super::{Checker, base_dir, embedder, list};
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let Some(l) = &c.routing.learned else {
        return Ok(());
    };
    let key = |p: &str, m: String| ck.path(format!("routing.learned.{p}"), m);
    if l.outcomes.is_empty() {
        return Err(key(
            "outcomes",
            "give at least one outcome file (JSONL, as `switchyard bench` writes)".into(),
        ));
    }
    for (i, f) in l.outcomes.iter().enumerate() {
        let full = base_dir(ck.file).join(&f.value);
        if !full.is_file() {
            return Err(ck.spanned(
                f,
                format!("routing.learned.outcomes[{i}]"),
                format!("outcome file {} does not exist", full.display()),
            ));
        }
    }
    for tier in l.tiers.keys() {
        if !c.tiers.contains_key(tier) {
            return Err(key(
                &format!("tiers.{tier}"),
                format!("unknown tier `{tier}` (defined: {})", list(c.tiers.keys())),
            ));
        }
    }
    for (tier, names) in &l.tiers {
        if names.0.is_empty() {
            return Err(key(
                &format!("tiers.{tier}"),
                "name at least one model of the outcome files".into(),
            ));
        }
    }
    let b = l.bar.value;
    if !(b.is_finite() && (0.0..=1.0).contains(&b)) {
        return Err(ck.spanned(
            &l.bar,
            "routing.learned.bar".into(),
            format!("{b} is outside 0.0–1.0 (scores and shares of the best score are in [0, 1])"),
        ));
    }
    let w = l.category_weight;
    if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
        return Err(key("category_weight", format!("{w} is outside 0.0–1.0")));
    }
    if l.k == 0 {
        return Err(key("k", "must be at least 1".into()));
    }
    if let Some(m) = l.min_similarity.filter(|m| !(-1.0..=1.0).contains(m)) {
        return Err(key("min_similarity", format!("{m} is outside -1.0–1.0")));
    }
    embedder::check(c, ck, &l.embedder, "learned")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes, with_routing};
    use super::check;

    /// The outcome file is one of the repository's evaluation sets (tests run in its root).
    fn learned(extra: &str) -> String {
        with_routing(
            "learned",
            &format!(
                "    outcomes: [tests/data/eval/routellm-gsm8k.jsonl]\n    embedder: {{kind: hashed-ngrams}}\n{extra}"
            ),
        )
    }

    #[test]
    fn files_tiers_and_numbers() {
        passes(check, BASE);
        passes(check, &learned("    k: 3\n    bar: 0.8\n"));
        fails(
            check,
            &learned("").replace("routellm-gsm8k.jsonl", "missing.jsonl"),
            "routing.learned.outcomes[0]",
            7,
            "outcome file tests/data/eval/missing.jsonl does not exist",
        );
        fails(
            check,
            &learned("    tiers: {nope: [gpt-4]}\n"),
            "routing.learned.tiers.nope",
            9,
            "unknown tier `nope` (defined: t, u)",
        );
        fails(
            check,
            &learned("    k: 0\n"),
            "routing.learned.k",
            9,
            "must be at least 1",
        );
        fails(
            check,
            &learned("    category_weight: 1.5\n"),
            "routing.learned.category_weight",
            9,
            "1.5 is outside 0.0–1.0",
        );
    }
}
