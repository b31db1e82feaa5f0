//! `routing.semantic`: utterances for defined tiers, none empty; thresholds, margin, scoring and
//! instruction weight in range; then its embedder (`embedder`).

use super::{Checker, base_dir, embedder, list};
use crate::config::error::ConfigError;
use crate::config::schema::{Config, SemanticScoring};

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let Some(sem) = &c.routing.semantic else {
        return Ok(());
    };
    let loc = |p: &str| format!("routing.semantic.{p}");
    if sem.scoring == SemanticScoring::Top(0) {
        return Err(ck.path(
            loc("scoring.top"),
            "must be at least 1 (the number of a tier's closest utterances averaged)".into(),
        ));
    }
    if sem.utterances.is_empty() {
        return Err(ck.path(
            loc("utterances"),
            "give at least one tier's utterances".into(),
        ));
    }
    for (tier, texts) in &sem.utterances {
        if !c.tiers.contains_key(tier) {
            return Err(ck.path(
                loc(&format!("utterances.{tier}")),
                format!("unknown tier `{tier}` (defined: {})", list(c.tiers.keys())),
            ));
        }
        if let Some(j) = texts.iter().position(|u| u.trim().is_empty()) {
            return Err(ck.path(
                loc(&format!("utterances.{tier}[{j}]")),
                "utterances must be non-empty strings".into(),
            ));
        }
        if texts.is_empty() {
            return Err(ck.path(
                loc(&format!("utterances.{tier}")),
                "utterances must be non-empty strings".into(),
            ));
        }
    }
    for (tier, t) in &sem.thresholds {
        if !sem.utterances.contains_key(tier) {
            return Err(ck.path(
                loc(&format!("thresholds.{tier}")),
                format!("tier `{tier}` has no utterances"),
            ));
        }
        if !(-1.0..=1.0).contains(t) {
            return Err(ck.path(
                loc(&format!("thresholds.{tier}")),
                format!("{t} is outside -1.0–1.0"),
            ));
        }
    }
    if !(-1.0..=1.0).contains(&sem.threshold) {
        return Err(ck.path(
            loc("threshold"),
            format!("{} is outside -1.0–1.0", sem.threshold),
        ));
    }
    if !(0.0..=2.0).contains(&sem.margin) {
        return Err(ck.path(loc("margin"), format!("{} is outside 0.0–2.0", sem.margin)));
    }
    if !(0.0..=1.0).contains(&sem.instruction_weight) {
        return Err(ck.path(
            loc("instruction_weight"),
            format!("{} is outside 0.0–1.0", sem.instruction_weight),
        ));
    }
    if let Some(f) = &sem.examples {
        let full = base_dir(ck.file).join(&f.value);
        if !full.is_file() {
            return Err(ck.spanned(
                f,
                loc("examples"),
                format!("examples file {} does not exist", full.display()),
            ));
        }
        let shown = full.display().to_string();
        let (examples, text) = crate::config::read_examples(&full, &shown)?;
        for (i, ex) in examples.iter().enumerate() {
            if !c.tiers.contains_key(&ex.tier.value) {
                return Err(crate::config::semantic_examples::tier_error(
                    &shown,
                    &text,
                    i,
                    ex,
                    format!(
                        "unknown tier `{}` (defined: {})",
                        ex.tier.value,
                        list(c.tiers.keys())
                    ),
                ));
            }
            if c.is_embedding(&ex.tier.value) {
                return Err(crate::config::semantic_examples::tier_error(
                    &shown,
                    &text,
                    i,
                    ex,
                    super::kinds::embedding_target(&ex.tier.value),
                ));
            }
        }
    }
    embedder::check(c, ck, &sem.embedder, "semantic")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes, with_routing};
    use super::check;

    fn semantic(section: &str) -> String {
        with_routing("semantic", section)
    }

    #[test]
    fn utterances_thresholds_and_embedder() {
        passes(check, BASE);
        passes(
            check,
            &semantic(
                "    embedder: {kind: hashed-ngrams}\n    thresholds: {u: 0.5}\n    utterances:\n      u: [write a function]\n",
            ),
        );
        fails(
            check,
            &semantic("    utterances:\n      nope: [hello]\n"),
            "routing.semantic.utterances.nope",
            8,
            "unknown tier `nope` (defined: t, u)",
        );
        fails(
            check,
            &semantic("    thresholds: {t: 0.5}\n    utterances:\n      u: [hello]\n"),
            "routing.semantic.thresholds.t",
            7,
            "tier `t` has no utterances",
        );
        fails(
            check,
            &semantic("    margin: 3\n    utterances:\n      u: [hello]\n"),
            "routing.semantic.margin",
            7,
            "3 is outside 0.0–2.0",
        );
        fails(
            check,
            &semantic("    instruction_weight: 1.5\n    utterances:\n      u: [hello]\n"),
            "routing.semantic.instruction_weight",
            7,
            "1.5 is outside 0.0–1.0",
        );
    }

    #[test]
    fn examples_file_exists_and_names_known_tiers() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "- { prompt: write a function, tier: u }\n").unwrap();
        let table = |f: &std::path::Path| {
            semantic(&format!(
                "    examples: \"{}\"\n    utterances:\n      u: [hello]\n",
                f.display()
            ))
        };
        passes(check, &table(&good));
        let missing = dir.path().join("missing.yaml");
        fails(
            check,
            &table(&missing),
            "routing.semantic.examples",
            7,
            &format!("examples file {} does not exist", missing.display()),
        );
        // Mistakes inside the examples file are reported at their line there.
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "- { prompt: write a function, tier: u }\n- { prompt: hello, tier: nope }\n",
        )
        .unwrap();
        let e = super::super::testing::run(check, &table(&bad)).unwrap_err();
        assert_eq!(e.file, bad.display().to_string());
        assert_eq!(
            (e.path.as_str(), e.line, e.message.as_str()),
            ("[1].tier", Some(2), "unknown tier `nope` (defined: t, u)")
        );
        std::fs::write(&bad, "- { prompt: hello, tier: u, weight: 2 }\n").unwrap();
        let e = super::super::testing::run(check, &table(&bad)).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line),
            (bad.display().to_string().as_str(), Some(1))
        );
        assert!(e.message.contains("weight"), "{e}");
    }
}
