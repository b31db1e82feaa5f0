//! The routing decision: which tier serves a request, and why. No I/O but the embedder, so the same
//! decision can be printed by `switchyard route`, logged, counted and tested.
//!
//! Layers, in order: rules (first match wins) → semantic similarity → learned (predicted scores
//! from recorded outcomes) → the table's default. Cascade (answer cheap, judge, escalate) is
//! decided here too but carried out by `dispatch`.
//!
//! Must not import `dispatch`, `providers`, `api` or `cost`.

mod embedding;
mod facts;
pub mod instruction;
pub mod learned;
mod rules;
pub mod semantic;
mod tier_classifier;

pub use embedding::Embedding;
pub use facts::{Caller, Facts};
pub use learned::Learned;
pub use rules::Rules;
pub use semantic::{Scores, Semantic};

use crate::config::Config;
use crate::openai::ChatRequest;
use http::HeaderMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::openai::AUTO_MODEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A rule of the routing table matched.
    Rules,
    /// The prompt resembled one tier's utterances clearly enough.
    Semantic,
    /// Recorded outcomes of similar prompts predicted this tier clears the bar.
    Learned,
    /// Nothing decided; the table's default tier.
    Default,
    /// The client named a tier.
    Tier,
    /// The client named a concrete model.
    Model,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Rules => "rules",
            Layer::Semantic => "semantic",
            Layer::Learned => "learned",
            Layer::Default => "default",
            Layer::Tier => "tier",
            Layer::Model => "model",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub tier: Arc<str>,
    /// Set when the client named a concrete model: only that model is called.
    pub model: Option<Arc<str>>,
    pub layer: Layer,
    /// The rule (or the tier / model named by the client) that decided.
    pub rule: Option<Arc<str>>,
    /// The semantic layer's similarity, or the learned layer's predicted score, for the chosen
    /// tier.
    pub score: Option<f32>,
    /// Every tier's semantic similarity, when the semantic layer ran (for `switchyard route`).
    pub scores: Vec<(Arc<str>, f32)>,
    /// Every tier's predicted score, cheapest first, when the learned layer ran.
    pub predictions: Vec<(Arc<str>, f32)>,
    /// The cascade this request may take (answer on `from`, escalate to `to` if the answer falls
    /// short), when it is cascadable.
    pub cascade: Option<CascadeTiers>,
    /// How long the decision took.
    pub elapsed: Duration,
}

impl fmt::Display for Decision {
    /// The `x-switchyard-route` value: `rules:summarize`, `semantic:budget@0.91`,
    /// `learned:budget@0.87`, `default`, `tier:budget`, `model:haiku`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.layer.as_str())?;
        match (self.layer, &self.rule, self.score) {
            (Layer::Semantic | Layer::Learned, _, Some(s)) => write!(f, ":{}@{s:.2}", self.tier),
            (_, Some(r), _) => write!(f, ":{r}"),
            _ => Ok(()),
        }
    }
}

/// What a request's `model` field names.
pub enum Requested<'a> {
    /// `auto` or an alias: the router decides.
    Routed,
    Tier(&'a str),
    Model(&'a str),
    Unknown,
}

/// The two tiers a cascade joins. Routing marks a request cascadable with them; dispatch runs the
/// cascade between them; both hold this one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeTiers {
    /// Where the request is answered first.
    pub from: Arc<str>,
    /// Where it goes when that answer falls short.
    pub to: Arc<str>,
}

impl CascadeTiers {
    pub fn of(c: &crate::config::CascadeConfig) -> CascadeTiers {
        CascadeTiers {
            from: c.from.value.as_str().into(),
            to: c.to.value.as_str().into(),
        }
    }
}

struct CascadePlan {
    tiers: CascadeTiers,
    /// Only requests decided by one of these rules cascade (any routed request when empty).
    rules: Vec<String>,
}

pub struct Router {
    default_tier: Arc<str>,
    aliases: Vec<String>,
    rules: Rules,
    semantic: Option<Semantic>,
    learned: Option<Arc<Learned>>,
    cascade: Option<CascadePlan>,
    tiers: Vec<Arc<str>>,
    /// Concrete model name → the tier it is reported under (its first tier, else the default;
    /// an embedding model in no tier, its own name).
    model_tiers: Vec<(Arc<str>, Arc<str>)>,
    /// Embedding models and their tiers: never chosen for a chat request.
    embedding: Vec<Arc<str>>,
}

impl Router {
    pub fn compile(
        config: &Config,
        semantic: Option<Semantic>,
        learned: Option<Learned>,
    ) -> Result<Router, String> {
        let default_tier: Arc<str> = config.routing.default.value.as_str().into();
        let tiers: Vec<Arc<str>> = config.tiers.keys().map(|t| Arc::from(t.as_str())).collect();
        let model_tiers = config
            .models
            .iter()
            .map(|m| {
                let tier = config
                    .tiers
                    .iter()
                    .find(|(_, t)| t.models.iter().any(|x| x.value == m.name))
                    .map_or_else(
                        || {
                            if m.kind == crate::config::ModelKind::Embedding {
                                Arc::from(m.name.as_str())
                            } else {
                                default_tier.clone()
                            }
                        },
                        |(name, _)| Arc::from(name.as_str()),
                    );
                (Arc::from(m.name.as_str()), tier)
            })
            .collect();
        let embedding = config
            .models
            .iter()
            .map(|m| &m.name)
            .chain(config.tiers.keys())
            .filter(|n| config.is_embedding(n))
            .map(|n| Arc::from(n.as_str()))
            .collect();
        let cascade = config.routing.cascade.as_ref().map(|c| CascadePlan {
            tiers: CascadeTiers::of(c),
            rules: c.rules.clone(),
        });
        Ok(Router {
            rules: Rules::compile(&config.routing.rules)?,
            aliases: config.routing.aliases.clone(),
            semantic,
            learned: learned.map(Arc::new),
            cascade,
            default_tier,
            tiers,
            model_tiers,
            embedding,
        })
    }

    pub fn resolve<'a>(&self, model: &'a str) -> Requested<'a> {
        if model == AUTO_MODEL || self.aliases.iter().any(|a| a == model) {
            Requested::Routed
        } else if self.tiers.iter().any(|t| &**t == model) {
            Requested::Tier(model)
        } else if self.model_tiers.iter().any(|(m, _)| &**m == model) {
            Requested::Model(model)
        } else {
            Requested::Unknown
        }
    }

    pub fn semantic(&self) -> Option<&Semantic> {
        self.semantic.as_ref()
    }

    pub fn learned(&self) -> Option<&Arc<Learned>> {
        self.learned.as_ref()
    }

    /// Replaces the learned layer (`switchyard eval` trains one per cross-validation fold).
    pub fn set_learned(&mut self, learned: Option<Arc<Learned>>) {
        self.learned = learned;
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Decides the tier for a request, or `None` when its `model` names nothing configured.
    pub async fn decide(&self, req: &ChatRequest, headers: &HeaderMap) -> Option<Decision> {
        self.decide_for(req, headers, Caller::default()).await
    }

    /// [`Router::decide`] for a request whose virtual key `key:` rules may test.
    pub async fn decide_for(
        &self,
        req: &ChatRequest,
        headers: &HeaderMap,
        caller: Caller<'_>,
    ) -> Option<Decision> {
        let start = Instant::now();
        let decision = |tier: Arc<str>, layer, rule, model| Decision {
            tier,
            model,
            layer,
            rule,
            score: None,
            scores: Vec::new(),
            predictions: Vec::new(),
            cascade: None,
            elapsed: Duration::ZERO,
        };
        let mut d = match self.resolve(&req.model) {
            Requested::Routed => {
                // Rules run synchronously and their memo is dropped before any await.
                let matched = {
                    let facts = Facts::new(req, headers, caller);
                    self.rules
                        .first_match(&facts)
                        .map(|r| (r.tier.clone(), r.name.clone()))
                };
                match matched {
                    Some((tier, name)) => decision(tier, Layer::Rules, Some(name), None),
                    None => self.semantic_or_default(req).await,
                }
            }
            Requested::Tier(t) => {
                let tier = self.tiers.iter().find(|x| &***x == t)?.clone();
                decision(tier.clone(), Layer::Tier, Some(tier), None)
            }
            Requested::Model(m) => {
                let (model, tier) = self.model_tiers.iter().find(|(x, _)| &**x == m)?;
                decision(
                    tier.clone(),
                    Layer::Model,
                    Some(model.clone()),
                    Some(model.clone()),
                )
            }
            Requested::Unknown => return None,
        };
        d.cascade = self.cascade_of(&d);
        d.elapsed = start.elapsed();
        Some(d)
    }

    /// Layers 2 and 3, then the default: for a request no rule decided.
    async fn semantic_or_default(&self, req: &ChatRequest) -> Decision {
        let mut d = Decision {
            tier: self.default_tier.clone(),
            model: None,
            layer: Layer::Default,
            rule: None,
            score: None,
            scores: Vec::new(),
            predictions: Vec::new(),
            cascade: None,
            elapsed: Duration::ZERO,
        };
        if self.semantic.is_none() && self.learned.is_none() {
            return d;
        }
        let text = req
            .last_user_message()
            .map(|m| m.text())
            .unwrap_or_default();
        if text.trim().is_empty() {
            return d;
        }
        if let Some(sem) = &self.semantic {
            match sem.score(&text).await {
                Ok(scores) => {
                    d.scores = scores.tiers;
                    if let Some((tier, s)) = scores.chosen {
                        d.tier = tier;
                        d.layer = Layer::Semantic;
                        d.score = Some(s);
                        return d;
                    }
                }
                // An embedder that fails (a remote one timing out) must not fail the request: the
                // layer abstains and the next one decides.
                Err(e) => tracing::warn!("semantic layer abstained: {e}"),
            }
        }
        if let Some(learned) = &self.learned {
            let task_type = req.metadata_str("task_type");
            match learned.decide(&text, task_type).await {
                Ok(v) => {
                    d.predictions = v.tiers;
                    if let Some((tier, s)) = v.chosen {
                        d.tier = tier;
                        d.layer = Layer::Learned;
                        d.score = Some(s);
                    }
                }
                Err(e) => tracing::warn!("learned layer abstained: {e}"),
            }
        }
        d
    }

    /// Only routed requests cascade: a client that named a tier or model asked for exactly that.
    fn cascade_of(&self, d: &Decision) -> Option<CascadeTiers> {
        let c = self.cascade.as_ref()?;
        let routed = matches!(
            d.layer,
            Layer::Rules | Layer::Semantic | Layer::Learned | Layer::Default
        );
        let rule_ok = c.rules.is_empty()
            || d.rule
                .as_deref()
                .is_some_and(|r| c.rules.iter().any(|x| x == r));
        (routed && d.tier == c.tiers.from && rule_ok).then(|| c.tiers.clone())
    }

    /// Every name a client may send as `model`: `auto`, the aliases, the tiers, then the models.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(AUTO_MODEL)
            .chain(self.aliases.iter().map(String::as_str))
            .chain(self.tiers.iter().map(|t| &**t))
            .chain(self.model_tiers.iter().map(|(m, _)| &**m))
    }
}
