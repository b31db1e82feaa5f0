//! Where an embeddings request goes: exactly the model or tier its `model` names. There is no
//! routing between embedding models (their vectors are not interchangeable), so no rules,
//! semantic, learned or cascade layer runs, and `auto` is not an embedding model.

use super::{Decision, Layer, Requested, Router};
use std::sync::Arc;
use std::time::Duration;

/// What an embeddings request's `model` names.
pub enum Embedding {
    /// An embedding model (pinned) or a tier of them.
    Serve(Decision),
    /// `auto`, an alias, a chat tier or a chat model.
    NotEmbedding,
    Unknown,
}

impl Router {
    /// Whether `name` is an embedding model or a tier of them.
    pub fn is_embedding(&self, name: &str) -> bool {
        self.embedding.iter().any(|e| &**e == name)
    }

    /// The embedding models and tiers, for an error that lists what may be named.
    pub fn embedding_names(&self) -> impl Iterator<Item = &str> {
        self.embedding.iter().map(|e| &**e)
    }

    pub fn decide_embedding(&self, model: &str) -> Embedding {
        let decision = |tier: Arc<str>, layer, rule, model| Decision {
            tier,
            model,
            layer,
            rule: Some(rule),
            score: None,
            scores: Vec::new(),
            predictions: Vec::new(),
            cascade: None,
            elapsed: Duration::ZERO,
        };
        match self.resolve(model) {
            Requested::Unknown => Embedding::Unknown,
            _ if !self.is_embedding(model) => Embedding::NotEmbedding,
            Requested::Tier(t) => match self.tiers.iter().find(|x| &***x == t) {
                Some(tier) => {
                    Embedding::Serve(decision(tier.clone(), Layer::Tier, tier.clone(), None))
                }
                None => Embedding::Unknown,
            },
            Requested::Model(m) => match self.model_tiers.iter().find(|(x, _)| &**x == m) {
                Some((model, tier)) => Embedding::Serve(decision(
                    tier.clone(),
                    Layer::Model,
                    model.clone(),
                    Some(model.clone()),
                )),
                None => Embedding::Unknown,
            },
            Requested::Routed => Embedding::NotEmbedding,
        }
    }
}
