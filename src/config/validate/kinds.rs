//! `models[].kind`: embedding models are kept apart from chat routing. A tier holds models of one
//! kind; every place chat routing can send a request (the default tier, rules, semantic
//! utterances, learned tiers, the cascade, the counterfactual) names chat tiers; a fallback chain
//! stays within its kind; and an embedding model's provider must have an embeddings API.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::{Config, ModelKind, ProviderKind};
use serde_saphyr::Spanned;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, m) in c.models.iter().enumerate() {
        let anthropic = c
            .providers
            .get(&m.provider.value)
            .is_some_and(|p| p.kind == ProviderKind::Anthropic);
        if m.kind == ModelKind::Embedding && anthropic {
            return Err(ck.spanned(
                &m.provider,
                format!("models[{i}].provider"),
                format!(
                    "model `{}` is an embedding model, and provider `{}` speaks Anthropic's API, which has no embeddings",
                    m.name, m.provider.value
                ),
            ));
        }
    }
    for (name, t) in &c.tiers {
        let kind = |m: &Spanned<String>| c.model(&m.value).map(|m| m.kind);
        let Some(first) = t.models.first().and_then(kind) else {
            continue;
        };
        for (i, m) in t.models.iter().enumerate() {
            if let Some(k) = kind(m).filter(|k| *k != first) {
                return Err(ck.spanned(
                    m,
                    format!("tiers.{name}.models[{i}]"),
                    format!(
                        "`{}` is {} model and the tier's first model {} one; a tier holds models of one kind",
                        m.value,
                        article(k),
                        article(first)
                    ),
                ));
            }
        }
    }
    let chat_only = |s: &Spanned<String>, path: String| -> Result<(), ConfigError> {
        if c.is_embedding(&s.value) {
            Err(ck.spanned(s, path, embedding_target(&s.value)))
        } else {
            Ok(())
        }
    };
    chat_only(&c.routing.default, "routing.default".into())?;
    if let Some(cf) = &c.routing.counterfactual {
        chat_only(cf, "routing.counterfactual".into())?;
    }
    for (i, r) in c.routing.rules.iter().enumerate() {
        chat_only(&r.tier, format!("routing.rules[{i}].tier"))?;
    }
    if let Some(cascade) = &c.routing.cascade {
        chat_only(&cascade.from, "routing.cascade.from".into())?;
        chat_only(&cascade.to, "routing.cascade.to".into())?;
    }
    if let Some(s) = &c.routing.semantic {
        for tier in s.utterances.keys().chain(s.thresholds.keys()) {
            if c.is_embedding(tier) {
                let path = if s.utterances.contains_key(tier) {
                    format!("routing.semantic.utterances.{tier}")
                } else {
                    format!("routing.semantic.thresholds.{tier}")
                };
                return Err(ck.path(path, embedding_target(tier)));
            }
        }
    }
    if let Some(l) = &c.routing.learned {
        if let Some(tier) = l.tiers.keys().find(|t| c.is_embedding(t)) {
            return Err(ck.path(
                format!("routing.learned.tiers.{tier}"),
                embedding_target(tier),
            ));
        }
    }
    let chains = [
        ("fallbacks", &c.fallbacks.chains),
        ("fallbacks.context_window", &c.fallbacks.context_window),
    ];
    for (section, chains) in chains {
        for (from, to) in chains {
            let embedding = c.is_embedding(from);
            for (i, t) in to.iter().enumerate() {
                if c.tiers.contains_key(&t.value) && c.is_embedding(&t.value) != embedding {
                    return Err(ck.spanned(
                        t,
                        format!("{section}.{from}[{i}]"),
                        format!(
                            "tier `{}` holds {} models and `{from}` {} ones; a fallback stays within its kind",
                            t.value,
                            kind_of(c, &t.value),
                            kind_of(c, from)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn article(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Chat => "a chat",
        ModelKind::Embedding => "an embedding",
    }
}

fn kind_of(c: &Config, name: &str) -> &'static str {
    if c.is_embedding(name) {
        "embedding"
    } else {
        "chat"
    }
}

pub(super) fn embedding_target(name: &str) -> String {
    format!(
        "`{name}` is an embedding model or tier; chat routing sends requests to chat tiers only (embeddings are served by POST /v1/embeddings, which names its model)"
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    /// BASE with an embedding model `e` (on provider `p`) in its own tier `emb`.
    fn with_embedding(extra: &str) -> String {
        BASE.replace(
            "models: [{name: m, provider: p}]",
            "models: [{name: m, provider: p}, {name: e, provider: p, kind: embedding}]",
        )
        .replace("u: {models: [m]}", "u: {models: [m]}, emb: {models: [e]}")
            + extra
    }

    #[test]
    fn embedding_models_stay_out_of_chat_routing() {
        passes(check, &with_embedding(""));
        passes(check, &with_embedding("fallbacks: {emb: [emb]}\n"));
        fails(
            check,
            &with_embedding("").replace("{default: t}", "{default: emb}"),
            "routing.default",
            4,
            "`emb` is an embedding model or tier; chat routing sends requests to chat tiers only (embeddings are served by POST /v1/embeddings, which names its model)",
        );
        fails(
            check,
            &with_embedding("").replace("{default: t}", "{default: t, counterfactual: e}"),
            "routing.counterfactual",
            4,
            "`e` is an embedding model or tier; chat routing sends requests to chat tiers only (embeddings are served by POST /v1/embeddings, which names its model)",
        );
        fails(
            check,
            &with_embedding("").replace(
                "{default: t}",
                "{default: t, rules: [{name: r, tier: emb, when: {keywords: [x]}}]}",
            ),
            "routing.rules[0].tier",
            4,
            "`emb` is an embedding model or tier; chat routing sends requests to chat tiers only (embeddings are served by POST /v1/embeddings, which names its model)",
        );
        fails(
            check,
            &with_embedding("")
                .replace("{default: t}", "{default: t, cascade: {from: t, to: emb}}"),
            "routing.cascade.to",
            4,
            "`emb` is an embedding model or tier; chat routing sends requests to chat tiers only (embeddings are served by POST /v1/embeddings, which names its model)",
        );
        fails(
            check,
            &with_embedding("fallbacks: {t: [emb]}\n"),
            "fallbacks.t[0]",
            5,
            "tier `emb` holds embedding models and `t` chat ones; a fallback stays within its kind",
        );
        fails(
            check,
            &with_embedding("").replace("emb: {models: [e]}", "emb: {models: [e, m]}"),
            "tiers.emb.models[1]",
            3,
            "`m` is a chat model and the tier's first model an embedding one; a tier holds models of one kind",
        );
    }

    #[test]
    fn anthropic_has_no_embeddings() {
        let text = with_embedding("").replace(
            "providers: {p: {kind: simulated}}",
            "providers: {p: {kind: simulated}, a: {kind: anthropic}}",
        );
        passes(check, &text);
        fails(
            check,
            &text.replace("{name: e, provider: p,", "{name: e, provider: a,"),
            "models[1].provider",
            2,
            "model `e` is an embedding model, and provider `a` speaks Anthropic's API, which has no embeddings",
        );
    }
}
