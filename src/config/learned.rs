//! `routing.learned`: layer 3 of the router, which predicts each tier's score on a request from
//! the recorded outcomes of similar prompts and picks the cheapest tier whose prediction clears
//! the bar. The schema and its checks live here; the layer itself is `routing::learned`.

use super::{EmbedderConfig, OneOrMany};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedConfig {
    /// Outcome files (JSONL, the format `switchyard bench` writes), relative to the config file.
    pub outcomes: Vec<Spanned<String>>,
    /// How prompts are embedded: the same kinds as the semantic layer.
    #[serde(default)]
    pub embedder: EmbedderConfig,
    #[serde(default)]
    pub method: LearnedMethod,
    /// What a tier's prediction must reach for the tier to be chosen; see [`BarKind`].
    #[serde(default = "default_bar")]
    pub bar: Spanned<f64>,
    #[serde(default)]
    pub bar_kind: BarKind,
    /// Tier → the outcome files' model names whose scores stand for it. A tier not listed stands
    /// for its own models (by name, or by their provider model id).
    #[serde(default)]
    pub tiers: BTreeMap<String, OneOrMany>,
    /// Models in the outcome files that no tier serves and that are left out on purpose. Any other
    /// model that maps to no tier is a config error, so a misspelt mapping cannot silently drop
    /// half the data.
    #[serde(default)]
    pub ignore_models: Vec<String>,
    /// Weight of a request's task type's recorded mean against the prompt's own prediction,
    /// when the request names one (`metadata.task_type`) that the outcome files have as a
    /// `category`: 0 ignores the category, 1 routes by it alone. `switchyard eval --method auto`
    /// reports the weight the data prefers.
    #[serde(default = "default_category_weight")]
    pub category_weight: f32,
    /// Neighbours consulted per request (the `knn` method, and the nearest prompts shown by
    /// `switchyard route`).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Abstain (the default tier decides) when no recorded prompt is at least this similar
    /// (cosine). Unset: never abstain. Setting it makes each decision read every recorded
    /// vector to find the nearest one.
    #[serde(default)]
    pub min_similarity: Option<f32>,
    /// Where prompt embeddings are cached between starts; `false` turns the cache off. Default:
    /// `$XDG_CACHE_HOME/switchyard`, else `~/.cache/switchyard`.
    #[serde(default)]
    pub cache: CacheSetting,
}

fn default_bar() -> Spanned<f64> {
    let loc = serde_saphyr::Location::UNKNOWN;
    Spanned::new(DEFAULT_BAR, loc, loc)
}
fn default_category_weight() -> f32 {
    DEFAULT_CATEGORY_WEIGHT
}
fn default_k() -> usize {
    DEFAULT_K
}

pub const DEFAULT_BAR: f64 = 0.9;
/// A task type's history is the steadier signal, the prompt tells cases apart within it.
pub const DEFAULT_CATEGORY_WEIGHT: f32 = 0.6;
pub const DEFAULT_K: usize = 24;

/// How each tier's score is predicted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnedMethod {
    /// Similarity-weighted mean score of the `k` most similar recorded prompts.
    Knn,
    /// A logistic model per model on the embedding and the prompt's difficulty features.
    #[default]
    Linear,
    /// The mean of the `knn` and `linear` predictions: the neighbours' record and the weights'
    /// trend err in different places, so their average ranks prompts better than either on
    /// most data.
    Ensemble,
}

impl LearnedMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LearnedMethod::Knn => "knn",
            LearnedMethod::Linear => "linear",
            LearnedMethod::Ensemble => "ensemble",
        }
    }

    /// Whether the method reads the nearest neighbours (and so every recorded vector) for each
    /// prediction.
    pub fn uses_neighbours(self) -> bool {
        matches!(self, LearnedMethod::Knn | LearnedMethod::Ensemble)
    }

    /// Whether the method trains the logistic weights.
    pub fn uses_weights(self) -> bool {
        matches!(self, LearnedMethod::Linear | LearnedMethod::Ensemble)
    }
}

/// What the bar is compared with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BarKind {
    /// A tier clears the bar when its predicted score is at least `bar` times the best tier's
    /// prediction for this request: `0.95` = "at least 95 % of the quality the best tier would
    /// give". It spends premium calls where they gain most.
    #[default]
    ShareOfBest,
    /// A tier clears the bar when its predicted score is at least `bar` (Step 0's "cheapest model
    /// that scores 0.85"); when no tier does, the best-predicted tier is chosen.
    Score,
    /// The tier with the best predicted score less its price: `score − λ · cost / dearest cost`,
    /// with `λ = (1 − bar) / bar`. `1.0` takes the best-predicted tier, lower bars pay less for
    /// quality (`0.5`: a whole point of score is worth the dearest tier's price). Unlike
    /// `share-of-best`, which takes the cheapest tier within reach of the best, a tier that costs
    /// little more than a cheaper one and is predicted better is not passed over to save pennies.
    Value,
}

/// `cache: false`, or a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheSetting {
    #[default]
    Default,
    Off,
    Dir(String),
}

impl<'de> Deserialize<'de> for CacheSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CacheSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a folder, or false")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<CacheSetting, E> {
                Ok(if v {
                    CacheSetting::Default
                } else {
                    CacheSetting::Off
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CacheSetting, E> {
                Ok(CacheSetting::Dir(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
