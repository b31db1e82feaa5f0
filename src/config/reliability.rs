//! The reliability section of the routing table: how each class of upstream failure is retried,
//! whether it may fall back to another tier, and when it takes a deployment out of rotation.

use super::duration::Dur;
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityConfig {
    /// Upstream calls one request may make in all, retries and fallbacks together, so retries at
    /// each hop cannot multiply into (1+N)² calls.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Tiers a request may enter after the one it was routed to.
    #[serde(default = "default_max_fallbacks")]
    pub max_fallbacks: u32,
    /// Retries within a tier for every class that retries at all, unless its policy says otherwise.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Shorthand: which classes retry (`true`) or not (`false`); `policies` can say more.
    #[serde(default)]
    pub retry_on: ClassMap<bool>,
    #[serde(default)]
    pub policies: ClassMap<PolicyConfig>,
    #[serde(default)]
    pub backoff: BackoffConfig,
    #[serde(default)]
    pub cooldown: CooldownConfig,
}

impl Default for ReliabilityConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            max_fallbacks: default_max_fallbacks(),
            retries: default_retries(),
            retry_on: ClassMap::default(),
            policies: ClassMap::default(),
            backoff: BackoffConfig::default(),
            cooldown: CooldownConfig::default(),
        }
    }
}

fn default_max_attempts() -> u32 {
    4
}
fn default_max_fallbacks() -> u32 {
    2
}
fn default_retries() -> u32 {
    2
}

/// One value per failure class. A struct rather than a map so a misspelt class is an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMap<T> {
    #[serde(default)]
    pub rate_limit: Option<T>,
    #[serde(default)]
    pub timeout: Option<T>,
    /// 5xx answers, connection failures and resets, and answers that are not what the API promises.
    #[serde(default)]
    pub server_error: Option<T>,
    #[serde(default)]
    pub context_window: Option<T>,
    #[serde(default)]
    pub content_policy: Option<T>,
    #[serde(default)]
    pub authentication: Option<T>,
    #[serde(default)]
    pub bad_request: Option<T>,
    #[serde(default)]
    pub not_found: Option<T>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Further attempts within the tier (another healthy deployment first).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Whether the request may move on to the tier's fallback chain.
    #[serde(default)]
    pub fallback: Option<bool>,
    #[serde(default)]
    pub cooldown: Option<CoolingMode>,
}

/// How a failure of a class weighs on its deployment's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoolingMode {
    /// Not the deployment's fault (a bad request): never counts.
    Never,
    /// Counts toward `allowed_fails` and the failure ratio.
    Count,
    /// Cools the deployment at once (a rejected key will not get better in a second).
    Immediate,
}

impl<'de> Deserialize<'de> for CoolingMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CoolingMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"immediate\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<CoolingMode, E> {
                Ok(if v {
                    CoolingMode::Count
                } else {
                    CoolingMode::Never
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CoolingMode, E> {
                match v {
                    "immediate" => Ok(CoolingMode::Immediate),
                    "true" => Ok(CoolingMode::Count),
                    "false" => Ok(CoolingMode::Never),
                    other => Err(E::custom(format!(
                        "unknown cooldown mode {other:?}: expected true, false or \"immediate\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Wait before the first retry of the same deployment; doubles with each retry, with full jitter.
    #[serde(default = "default_backoff_initial")]
    pub initial: Dur,
    #[serde(default = "default_backoff_max")]
    pub max: Dur,
    /// A `Retry-After` longer than this is not waited out inside a request: the request moves on
    /// (or fails with the provider's `Retry-After`), and the deployment stays cooled for it.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait: Dur,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
            max_retry_wait: default_max_retry_wait(),
        }
    }
}

fn default_backoff_initial() -> Dur {
    Dur::from_millis(100)
}
fn default_backoff_max() -> Dur {
    Dur::from_secs(2)
}
fn default_max_retry_wait() -> Dur {
    Dur::from_secs(5)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownConfig {
    /// `false` never takes a deployment out of rotation (when something in front of switchyard
    /// already does health checking).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures of cooling classes a deployment may have within `window`; one more cools it.
    #[serde(default = "default_allowed_fails")]
    pub allowed_fails: u32,
    #[serde(default = "default_cooldown_window")]
    pub window: Dur,
    /// How long a cooled deployment is skipped before one probe request is let through.
    #[serde(default = "default_cooldown_duration")]
    pub duration: Dur,
    /// Also cool a deployment whose share of failed calls within `window` reaches this, once it
    /// has served `min_requests` calls there. Unset: only `allowed_fails` counts.
    #[serde(default)]
    pub failure_ratio: Option<f64>,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// Longest cooldown a provider's `Retry-After` may impose.
    #[serde(default = "default_max_cooldown")]
    pub max_duration: Dur,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_fails: default_allowed_fails(),
            window: default_cooldown_window(),
            duration: default_cooldown_duration(),
            failure_ratio: None,
            min_requests: default_min_requests(),
            max_duration: default_max_cooldown(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_allowed_fails() -> u32 {
    3
}
fn default_cooldown_window() -> Dur {
    Dur::from_secs(60)
}
fn default_cooldown_duration() -> Dur {
    Dur::from_secs(30)
}
fn default_min_requests() -> u32 {
    10
}
fn default_max_cooldown() -> Dur {
    Dur::from_secs(300)
}

/// `fallbacks:` — tier → tiers tried when it fails, plus `context_window:`, a separate tier → tiers
/// map for prompts too long for a tier's models (those need a bigger window, not a bigger model).
#[derive(Debug, Clone, Default)]
pub struct Fallbacks {
    pub chains: BTreeMap<String, Vec<Spanned<String>>>,
    pub context_window: BTreeMap<String, Vec<Spanned<String>>>,
}

/// The key under `fallbacks:` that holds the context-window chains.
pub const CONTEXT_WINDOW_KEY: &str = "context_window";

impl<'de> Deserialize<'de> for Fallbacks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fallbacks;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of tier → list of tiers (and optionally context_window: {tier: [tiers]})")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fallbacks, A::Error> {
                let mut out = Fallbacks::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == CONTEXT_WINDOW_KEY {
                        out.context_window = map.next_value()?;
                    } else {
                        let chain = map.next_value()?;
                        out.chains.insert(key, chain);
                    }
                }
                Ok(out)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Fallbacks, E> {
                Ok(Fallbacks::default())
            }
        }
        d.deserialize_map(V)
    }
}

/// How a tier spreads requests over its deployments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Random, in proportion to each deployment's `weight`.
    #[default]
    Weighted,
    /// The first healthy deployment in the order listed: a primary and its backups.
    Ordered,
    /// The deployment with the fewest requests in flight from this replica.
    LeastInFlight,
    /// Two deployments drawn at random; the one with the lower latency EWMA (times its load) wins.
    Latency,
    /// The deployment with the most rpm/tpm headroom left this minute.
    Usage,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Weighted => "weighted",
            Strategy::Ordered => "ordered",
            Strategy::LeastInFlight => "least_in_flight",
            Strategy::Latency => "latency",
            Strategy::Usage => "usage",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub fallback_rate: Option<RateAlert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAlert {
    /// Share of requests, 0.0–1.0.
    pub max: f64,
    #[serde(default = "default_alert_window")]
    pub window: Dur,
    /// Fewer requests than this in the window never fire the alert: 1 fallback in 3 requests is noise.
    #[serde(default = "default_alert_min_requests")]
    pub min_requests: u64,
}

fn default_alert_window() -> Dur {
    Dur::from_secs(300)
}
fn default_alert_min_requests() -> u64 {
    20
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "providers: {p: {kind: simulated}}\nmodels: [{name: m, provider: p}]\ntiers: {t: {models: [m]}, u: {models: [m]}}\nrouting: {default: t}\n";

    fn error(extra: &str) -> String {
        match Config::from_yaml(&format!("{BASE}{extra}"), "table.yaml") {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_reliability_settings_name_file_line_and_key() {
        let e = error("reliability:\n  max_attempts: 0\n");
        assert!(e.contains("table.yaml:6"), "{e}");
        assert!(e.contains("reliability.max_attempts"), "{e}");
        let e = error("reliability:\n  policies:\n    rate_limits: {retries: 1}\n");
        assert!(e.contains("table.yaml:7"), "{e}");
        assert!(e.contains("rate_limits"), "{e}");
        let e = error("reliability:\n  policies:\n    timeout: {cooldown: sometimes}\n");
        assert!(e.contains("immediate"), "{e}");
        let e = error("fallbacks:\n  context_window:\n    t: [nope]\n");
        assert!(e.contains("table.yaml:7"), "{e}");
        assert!(e.contains("fallbacks.context_window.t[0]"), "{e}");
        let e = error("alerts:\n  fallback_rate: {max: 3}\n");
        assert!(e.contains("alerts.fallback_rate.max"), "{e}");
        let e = error("reliability:\n  cooldown: {failure_ratio: 1.5}\n");
        assert!(e.contains("failure_ratio"), "{e}");
    }

    #[test]
    fn fallbacks_keep_chains_and_context_window_apart() {
        let c = Config::from_yaml(
            &format!("{BASE}fallbacks:\n  t: [u]\n  context_window: {{t: [u]}}\n"),
            "table.yaml",
        )
        .unwrap();
        assert_eq!(c.fallbacks.chains.len(), 1);
        assert_eq!(c.fallbacks.context_window["t"][0].value, "u");
    }
}
