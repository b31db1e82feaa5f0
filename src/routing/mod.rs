//! The routing decision: which tier serves a request, and why. Pure: no I/O, no clocks, so the
//! same decision can be printed by `switchyard route`, logged, counted and tested.

mod rules;

pub use rules::Rules;

use crate::config::Config;
use crate::openai::ChatRequest;
use http::HeaderMap;
use std::fmt;
use std::sync::Arc;

/// The `model` value that asks switchyard to choose.
pub const AUTO: &str = "auto";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A rule of the routing table matched.
    Rules,
    /// Nothing matched; the table's default tier.
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
            Layer::Default => "default",
            Layer::Tier => "tier",
            Layer::Model => "model",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tier: Arc<str>,
    /// Set when the client named a concrete model: only that model is called.
    pub model: Option<Arc<str>>,
    pub layer: Layer,
    /// The rule (or the tier / model named by the client) that decided.
    pub rule: Option<Arc<str>>,
}

impl fmt::Display for Decision {
    /// The `x-switchyard-route` header value: `rules:summarize`, `default`, `tier:budget`, `model:haiku`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.layer.as_str())?;
        if let Some(r) = &self.rule {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// What a request's `model` field names.
pub enum Requested<'a> {
    Auto,
    Tier(&'a str),
    Model(&'a str),
    Unknown,
}

pub struct Router {
    default_tier: Arc<str>,
    rules: Rules,
    tiers: Vec<Arc<str>>,
    /// Concrete model name → the tier it is reported under (its first tier, else the default).
    model_tiers: Vec<(Arc<str>, Arc<str>)>,
}

impl Router {
    pub fn compile(config: &Config) -> Result<Router, String> {
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
                        || default_tier.clone(),
                        |(name, _)| Arc::from(name.as_str()),
                    );
                (Arc::from(m.name.as_str()), tier)
            })
            .collect();
        Ok(Router {
            rules: Rules::compile(&config.routing.rules)?,
            default_tier,
            tiers,
            model_tiers,
        })
    }

    pub fn resolve<'a>(&self, model: &'a str) -> Requested<'a> {
        if model == AUTO {
            Requested::Auto
        } else if self.tiers.iter().any(|t| &**t == model) {
            Requested::Tier(model)
        } else if self.model_tiers.iter().any(|(m, _)| &**m == model) {
            Requested::Model(model)
        } else {
            Requested::Unknown
        }
    }

    /// Decides the tier for a request, or `None` when its `model` names nothing configured.
    pub fn decide(&self, req: &ChatRequest, headers: &HeaderMap) -> Option<Decision> {
        Some(match self.resolve(&req.model) {
            Requested::Auto => match self.rules.first_match(req, headers) {
                Some(rule) => Decision {
                    tier: rule.tier.clone(),
                    model: None,
                    layer: Layer::Rules,
                    rule: Some(rule.name.clone()),
                },
                None => Decision {
                    tier: self.default_tier.clone(),
                    model: None,
                    layer: Layer::Default,
                    rule: None,
                },
            },
            Requested::Tier(t) => {
                let tier = self.tiers.iter().find(|x| &***x == t)?.clone();
                Decision {
                    tier: tier.clone(),
                    model: None,
                    layer: Layer::Tier,
                    rule: Some(tier),
                }
            }
            Requested::Model(m) => {
                let (model, tier) = self.model_tiers.iter().find(|(x, _)| &**x == m)?;
                Decision {
                    tier: tier.clone(),
                    model: Some(model.clone()),
                    layer: Layer::Model,
                    rule: Some(model.clone()),
                }
            }
            Requested::Unknown => return None,
        })
    }

    /// Every name a client may send as `model`: `auto`, the tiers, then the models.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(AUTO)
            .chain(self.tiers.iter().map(|t| &**t))
            .chain(self.model_tiers.iter().map(|(m, _)| &**m))
    }
}
