//! The `embedder:` of the semantic and learned layers: a model folder that exists for the kinds
//! that load one, a provider that speaks the OpenAI embeddings API for `openai`, sizes in range.

use super::{Checker, base_dir, list};
use crate::config::error::ConfigError;
use crate::config::schema::{Config, ProviderKind};
use crate::config::{EmbedderConfig, EmbedderKind};

/// The embedder of a layer (`section`: `semantic` or `learned`).
pub(super) fn check(
    c: &Config,
    ck: &Checker<'_>,
    e: &EmbedderConfig,
    section: &str,
) -> Result<(), ConfigError> {
    let loc = |p: &str| format!("routing.{section}.{p}");
    match e.kind {
        EmbedderKind::Static | EmbedderKind::Bert => {
            let Some(p) = &e.path else {
                return Err(ck.path(
                    loc("embedder.path"),
                    "this embedder loads a model folder: set `path`".into(),
                ));
            };
            let full = base_dir(ck.file).join(&p.value);
            if !full.is_dir() {
                return Err(ck.spanned(
                    p,
                    loc("embedder.path"),
                    format!("model folder {} does not exist", full.display()),
                ));
            }
            if e.kind == EmbedderKind::Bert && !cfg!(feature = "bert") {
                return Err(ck.path(loc("embedder.kind"),
                    "this switchyard was built without the `bert` feature (cargo build --features bert)".into()));
            }
        }
        EmbedderKind::Openai => {
            let Some(p) = &e.provider else {
                return Err(ck.path(
                    loc("embedder.provider"),
                    "the openai embedder needs `provider` (a key of providers)".into(),
                ));
            };
            if let Some(vars) = c.unresolved.get(&format!("providers.{}", p.value)) {
                return Err(ck.spanned(
                    p,
                    loc("embedder.provider"),
                    format!(
                        "the {section} layer embeds prompts through provider `{}`, which needs {} (not set)",
                        p.value,
                        vars.join(", ")
                    ),
                ));
            }
            match c.providers.get(&p.value) {
                Some(pc) if matches!(pc.kind, ProviderKind::Openai | ProviderKind::Azure) => {}
                Some(_) => {
                    return Err(ck.spanned(
                        p,
                        loc("embedder.provider"),
                        format!(
                            "provider `{}` does not speak the OpenAI embeddings API",
                            p.value
                        ),
                    ));
                }
                None => {
                    return Err(ck.spanned(
                        p,
                        loc("embedder.provider"),
                        format!(
                            "unknown provider `{}` (defined: {})",
                            p.value,
                            list(c.providers.keys())
                        ),
                    ));
                }
            }
            if e.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return Err(ck.path(
                    loc("embedder.model"),
                    "the openai embedder needs `model` (e.g. text-embedding-3-small)".into(),
                ));
            }
        }
        EmbedderKind::Builtin => {
            if let Some(p) = &e.path {
                return Err(ck.spanned(
                    p,
                    loc("embedder.path"),
                    "the builtin embedder is compiled in and takes no `path`; for a model folder use `kind: static`".into(),
                ));
            }
        }
        EmbedderKind::HashedNgrams => {
            if e.dims.is_some_and(|d| !(16..=65536).contains(&d)) {
                return Err(ck.path(loc("embedder.dims"), "dims must be within 16–65536".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::super::{Checker, ConfigError};
    use crate::config::schema::Config;

    /// The semantic layer's embedder.
    fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
        let e = c
            .routing
            .semantic
            .as_ref()
            .map(|s| s.embedder.clone())
            .unwrap_or_default();
        super::check(c, ck, &e, "semantic")
    }

    fn embedder(e: &str) -> String {
        BASE.replace(
            "{default: t}",
            &format!(
                "\n  default: t\n  semantic:\n    embedder: {e}\n    utterances: {{u: [hello]}}\n"
            ),
        )
    }

    #[test]
    fn kinds_and_what_each_needs() {
        passes(check, &embedder("{kind: builtin}"));
        passes(check, &embedder("{kind: hashed-ngrams, dims: 256}"));
        fails(
            check,
            &embedder("{kind: hashed-ngrams, dims: 8}"),
            "routing.semantic.embedder.dims",
            7,
            "dims must be within 16–65536",
        );
        fails(
            check,
            &embedder("{kind: static}"),
            "routing.semantic.embedder.path",
            7,
            "this embedder loads a model folder: set `path`",
        );
        fails(
            check,
            &embedder("{kind: openai, provider: p, model: text-embedding-3-small}"),
            "routing.semantic.embedder.provider",
            7,
            "provider `p` does not speak the OpenAI embeddings API",
        );
    }
}
