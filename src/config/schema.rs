//! The routing table's YAML schema. Every struct rejects unknown keys so a typo is an error at
//! load time rather than a silently ignored setting.

use super::duration::Dur;
use super::env::EnvString;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub tiers: BTreeMap<String, TierConfig>,
    pub routing: RoutingConfig,
    /// Tier → ordered list of tiers to try when every model of the tier failed with an error that a
    /// different deployment might not have (rate limit, timeout, server error).
    #[serde(default)]
    pub fallbacks: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: EnvString,
    /// Largest accepted request body in bytes; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long in-flight requests and streams may run after SIGTERM before they are cut.
    #[serde(default = "default_drain")]
    pub drain_timeout: Dur,
    /// Keys clients must present as `Authorization: Bearer …`. Empty: no authentication.
    #[serde(default)]
    pub api_keys: Vec<EnvString>,
    /// Reload the file when it changes on disk (SIGHUP always reloads).
    #[serde(default)]
    pub watch_config: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            drain_timeout: default_drain(),
            api_keys: Vec::new(),
            watch_config: false,
        }
    }
}

fn default_listen() -> EnvString {
    EnvString("127.0.0.1:4000".into())
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_drain() -> Dur {
    Dur::from_secs(30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, Groq, Together, OpenRouter, Mistral…
    Openai,
    /// Azure OpenAI: `api-key` header and an `api-version` query parameter.
    Azure,
    /// Anthropic's Messages API.
    Anthropic,
    /// No network: canned answers for demos and tests of switchyard's own logic.
    Simulated,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<EnvString>,
    #[serde(default)]
    pub api_key: Option<EnvString>,
    /// Azure's `api-version` query parameter.
    #[serde(default)]
    pub api_version: Option<EnvString>,
    /// Anthropic's `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<EnvString>,
    /// Extra headers sent with every upstream request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, EnvString>,
    /// Whole-request limit for non-streaming calls; time-to-headers limit for streams.
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    /// Longest silence between two chunks of a stream before it is treated as broken.
    #[serde(default)]
    pub stream_idle_timeout: Option<Dur>,
    /// Ask OpenAI-compatible servers for usage in streams (`stream_options.include_usage`). Turn off for
    /// servers that reject the field.
    #[serde(default = "yes")]
    pub stream_usage: bool,
    /// Simulated provider only.
    #[serde(default)]
    pub simulate: SimulateConfig,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateConfig {
    /// Time before the first byte of the answer.
    #[serde(default = "default_sim_latency")]
    pub latency: Dur,
    /// Words in each answer (one completion token each).
    #[serde(default = "default_sim_tokens")]
    pub output_tokens: u32,
    /// Fraction of calls that fail with a simulated 503, 0.0–1.0.
    #[serde(default)]
    pub failure_rate: f64,
    /// Pause between streamed words.
    #[serde(default)]
    pub chunk_interval: Dur,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        Self {
            latency: default_sim_latency(),
            output_tokens: default_sim_tokens(),
            failure_rate: 0.0,
            chunk_interval: Dur::ZERO,
        }
    }
}

fn default_sim_latency() -> Dur {
    Dur::from_millis(20)
}
fn default_sim_tokens() -> u32 {
    24
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients and tiers use.
    pub name: String,
    pub provider: Spanned<String>,
    /// The provider's own model id; defaults to `name`.
    #[serde(default)]
    pub model: Option<EnvString>,
    #[serde(default)]
    pub price: Price,
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Anthropic requires `max_tokens`; this is sent when the client gives none.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Models tried in order; the next one is tried when one fails with a retryable error.
    pub models: Vec<Spanned<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub default: Spanned<String>,
    /// The tier whose prices answer "what would this have cost on premium?".
    #[serde(default)]
    pub counterfactual: Option<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub when: Spanned<Condition>,
    pub tier: Spanned<String>,
}

/// Every condition given must hold for the rule to match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Matches when any keyword occurs in the last user message (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A regular expression matched against the last user message.
    #[serde(default)]
    pub regex: Option<String>,
    /// A request header that must be present (and equal `value`, when given, case-insensitively).
    #[serde(default)]
    pub header: Option<HeaderCondition>,
    /// `metadata.task_type` of the request must be one of these.
    #[serde(default)]
    pub task_type: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}
