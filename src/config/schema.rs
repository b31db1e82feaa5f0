//! The routing table's YAML schema. Every struct rejects unknown keys so a typo is an error at
//! load time rather than a silently ignored setting.

use super::duration::Dur;
use super::embedder::EmbedderConfig;
use super::env::EnvString;
use super::one_or_many::OneOrMany;
use super::reliability::{AlertsConfig, Fallbacks, ReliabilityConfig, Strategy};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "super::env::server_section")]
    pub server: ServerConfig,
    #[serde(deserialize_with = "super::env::providers_section")]
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub tiers: BTreeMap<String, TierConfig>,
    pub routing: RoutingConfig,
    /// Tier → ordered list of tiers to try when the tier failed with an error whose policy allows a
    /// fallback (rate limit, timeout, server error by default), plus the context-window chains.
    #[serde(default)]
    pub fallbacks: Fallbacks,
    #[serde(default)]
    pub reliability: ReliabilityConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Named prices that `models[].price` can refer to; they add to and override the bundled
    /// table (`config/prices.yaml`).
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Where each request's account is appended; absent: no spend log.
    #[serde(default, deserialize_with = "super::env::spend_log_section")]
    pub spend_log: Option<SpendLogConfig>,
    /// Where virtual keys are stored (see `keys.rs`).
    #[serde(default)]
    pub keys: super::keys::KeysConfig,
    /// Where breakers, counters and budgets live (see `state.rs`).
    #[serde(default)]
    pub state: super::state::StateConfig,
    /// Span export (see `telemetry.rs`).
    #[serde(default, deserialize_with = "super::env::telemetry_section")]
    pub telemetry: super::telemetry::TelemetryConfig,
    /// `${VAR}`s left unset because the command that loaded the file does not use their part of
    /// it (see [`super::Uses`]), by part: `server`, `providers.<name>`, `spend_log`, `telemetry`.
    /// Always empty for `serve` and `check`.
    #[serde(skip)]
    pub unresolved: BTreeMap<String, Vec<String>>,
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
    /// Keys for `/admin/*` (and `/metrics` when it asks for keys). Empty: the admin routes answer
    /// loopback clients only.
    #[serde(default)]
    pub admin_keys: Vec<EnvString>,
    /// Reload the file when it changes on disk (SIGHUP always reloads).
    #[serde(default)]
    pub watch_config: bool,
    /// From a connection's opening (or the end of its previous response) to the last byte of the
    /// request's headers; a connection that takes longer is closed.
    #[serde(default = "default_client_timeout")]
    pub header_read_timeout: Dur,
    /// From the end of the headers to the last byte of the body; a slower request gets 408.
    #[serde(default = "default_client_timeout")]
    pub body_read_timeout: Dur,
    /// Open client connections at most; connections beyond it get one 503 and are closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests being served at once at most (health and metrics excluded); beyond it, 503.
    #[serde(default)]
    pub max_in_flight_requests: Option<usize>,
    /// Where `/metrics` is served and who may read it.
    #[serde(default)]
    pub metrics: MetricsEndpointConfig,
    /// Cross-origin access for browser clients; absent: no CORS headers, preflights refused.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            drain_timeout: default_drain(),
            api_keys: Vec::new(),
            admin_keys: Vec::new(),
            watch_config: false,
            header_read_timeout: default_client_timeout(),
            body_read_timeout: default_client_timeout(),
            max_connections: default_max_connections(),
            max_in_flight_requests: None,
            metrics: MetricsEndpointConfig::default(),
            cors: None,
        }
    }
}

/// `server.metrics`: Prometheus scrapes `/metrics` on the main address unless `listen` moves it
/// to one of its own; `keys` makes a scrape present a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsEndpointConfig {
    /// Serve `/metrics` here only (not on `server.listen`).
    #[serde(default)]
    pub listen: Option<EnvString>,
    /// Keys a scrape must send as `Authorization: Bearer …` (admin keys work too). Empty: open.
    #[serde(default)]
    pub keys: Vec<EnvString>,
}

/// `server.cors`: browsers on these origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`, `http://localhost:3000`); `*` is not accepted.
    pub allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight answer.
    #[serde(default = "default_cors_max_age")]
    pub max_age: Dur,
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
/// Long enough for any real client on a slow link, short enough that a stalled one does not hold a
/// connection for minutes; longer than the idle timeout of the OpenAI SDKs' connection pools (5 s),
/// so the server is not the side that closes a pooled connection they are about to reuse.
fn default_client_timeout() -> Dur {
    Dur::from_secs(30)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_cors_max_age() -> Dur {
    Dur::from_secs(600)
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
    /// What ends an OpenAI-compatible stream as complete; anything less is a cut-off answer.
    #[serde(default)]
    pub stream_end: StreamEndRule,
    /// Simulated provider only.
    #[serde(default)]
    pub simulate: SimulateConfig,
}

impl ProviderConfig {
    /// A simulated provider with default settings.
    pub fn simulated() -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Simulated,
            base_url: None,
            api_key: None,
            api_version: None,
            anthropic_version: None,
            headers: BTreeMap::new(),
            timeout: None,
            connect_timeout: None,
            stream_idle_timeout: None,
            stream_usage: true,
            stream_end: StreamEndRule::default(),
            simulate: SimulateConfig::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `providers.<name>.stream_end`: how an OpenAI-compatible stream must end to count as a whole
/// answer. A body that ends cleanly without it was cut off (a proxy restart, an idle timeout, a
/// crashed server) and is reported as a failed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamEndRule {
    /// `data: [DONE]`, or a `finish_reason` on every choice (for servers that omit `[DONE]`).
    #[default]
    FinishReason,
    /// Only `data: [DONE]`: also catches a cut between the last chunk and the usage report.
    Done,
    /// Any clean end of the body: for servers that send neither (truncation goes unnoticed).
    Eof,
}

fn default_weight() -> f64 {
    1.0
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
    /// Task type → chance (0–1) that the answer to a benchmark prompt is its reference answer
    /// (`default` for task types not listed), so `switchyard bench` on simulated models shows a
    /// meaningful quality matrix. Only prompts that carry `metadata.simulate_reference` use it.
    #[serde(default)]
    pub skill: BTreeMap<String, f64>,
    /// Seed of the skill draws: the same seed, model and prompt give the same answer every run.
    #[serde(default)]
    pub seed: u64,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        Self {
            latency: default_sim_latency(),
            output_tokens: default_sim_tokens(),
            failure_rate: 0.0,
            chunk_interval: Dur::ZERO,
            skill: BTreeMap::new(),
            seed: 0,
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
    /// Inline `{input, output, cached_input}` or the name of a price-table entry. Absent: free.
    #[serde(default, rename = "price")]
    pub price_spec: Option<Spanned<PriceSpec>>,
    /// `price_spec` resolved against the price tables when the file is loaded.
    #[serde(skip)]
    pub price: Price,
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Share of the tier's traffic under the `weighted` strategy, relative to the other deployments.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Requests per minute this deployment may take (the provider's limit for the key).
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt estimate plus reported output).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Anthropic requires `max_tokens`; this is sent when the client gives none.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// What the model answers: chat completions (the default) or embeddings.
    #[serde(default)]
    pub kind: ModelKind,
}

/// `models[].kind`. An embedding model serves `POST /v1/embeddings` only; chat routing never
/// chooses it, and its tiers hold embedding models only, since one model's vectors cannot stand in
/// for a chat answer (nor, usually, for another embedding model's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        }
    }
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

/// A model's `price`: the numbers, or a name looked up in the price tables.
#[derive(Debug, Clone)]
pub enum PriceSpec {
    Inline(Price),
    Named(String),
}

impl<'de> Deserialize<'de> for PriceSpec {
    /// Written by hand rather than `#[serde(untagged)]` so that a typo inside an inline price keeps
    /// its precise "unknown field" message instead of "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PriceSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a price-table name or a map {input, output, cached_input}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PriceSpec, E> {
                Ok(PriceSpec::Named(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<PriceSpec, A::Error> {
                Price::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PriceSpec::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

/// `spend_log:`: one row per request, written in batches off the request path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendLogConfig {
    /// `sqlite://spend.db` (relative to the config file's folder), `sqlite:///abs/path.db`, or
    /// `postgres://user:pass@host/db`.
    pub url: Spanned<EnvString>,
    /// The table (created when missing); a plain SQL identifier.
    #[serde(default = "default_spend_table")]
    pub table: Spanned<String>,
    /// Rows written per transaction at most.
    #[serde(default = "default_spend_batch")]
    pub batch_size: usize,
    /// Longest a row waits before its batch is written.
    #[serde(default = "default_spend_flush")]
    pub flush_interval: Dur,
    /// Rows that may wait for the writer; beyond this, rows are dropped (and counted).
    #[serde(default = "default_spend_queue")]
    pub queue_size: usize,
}

fn default_spend_table() -> Spanned<String> {
    let loc = serde_saphyr::Location::UNKNOWN;
    Spanned::new("switchyard_spend".into(), loc, loc)
}
fn default_spend_batch() -> usize {
    200
}
fn default_spend_flush() -> Dur {
    Dur::from_millis(1000)
}
fn default_spend_queue() -> usize {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// The tier's deployments: models entries, each one provider + model + key.
    pub models: Vec<Spanned<String>>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub default: Spanned<String>,
    /// The tier or model whose prices answer "what would this have cost on premium?".
    #[serde(default)]
    pub counterfactual: Option<Spanned<String>>,
    /// Extra `model` names that run the router like `auto` (e.g. `gpt-4o`, so an app that hard-codes
    /// a model name is routed without a code change). Rules can test which one was sent.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Files that hold more rules (a YAML list of rules, e.g. what `switchyard bench
    /// --write-rules` writes), relative to this file. Their rules follow `rules`, file by file.
    #[serde(default)]
    pub rules_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub semantic: Option<SemanticConfig>,
    #[serde(default)]
    pub cascade: Option<CascadeConfig>,
    /// Layer 3: predictions from recorded outcomes (see `learned.rs`).
    #[serde(default)]
    pub learned: Option<super::learned::LearnedConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub when: Spanned<Condition>,
    pub tier: Spanned<String>,
    /// Higher runs first; rules of equal priority run in the order written.
    #[serde(default)]
    pub priority: i32,
    /// Which text `keywords` and `regex` look at.
    #[serde(default)]
    pub match_on: MatchScope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchScope {
    /// The last user message (what the user is asking now).
    #[default]
    LastUser,
    /// Every message's text, system prompt included.
    Conversation,
    /// The system and developer messages only.
    System,
}

/// Every condition given must hold for the rule to match; `any`, `all` and `not` nest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Any of these keywords occurs (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// All of these keywords occur (case-insensitive).
    #[serde(default)]
    pub keywords_all: Vec<String>,
    /// Any of these regular expressions matches.
    #[serde(default)]
    pub regex: OneOrMany,
    /// A request header is present (and equals `value` / matches `regex`, when given).
    #[serde(default)]
    pub header: Option<HeaderCondition>,
    /// `metadata.task_type` is one of these.
    #[serde(default)]
    pub task_type: Vec<String>,
    /// `metadata.<key>` is one of the listed values, for every key given.
    #[serde(default)]
    pub metadata: BTreeMap<String, OneOrMany>,
    /// Any of these tags is set (`metadata.tags`, or the `x-switchyard-tags` header, comma-separated).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Estimated prompt tokens of the whole conversation (o200k tokenizer), inclusive bounds.
    #[serde(default)]
    pub prompt_tokens: Option<TokenRange>,
    #[serde(default)]
    pub has_tools: Option<bool>,
    #[serde(default)]
    pub has_images: Option<bool>,
    /// `response_format` asks for JSON (`json_object` or `json_schema`).
    #[serde(default)]
    pub json_response: Option<bool>,
    /// The `model` the client sent is one of these (`auto` or an alias).
    #[serde(default)]
    pub model: Vec<String>,
    /// The caller's virtual key (see `switchyard keys`): its team, name or metadata.
    #[serde(default)]
    pub key: Option<KeyCondition>,
    #[serde(default)]
    pub all: Vec<Condition>,
    #[serde(default)]
    pub any: Vec<Condition>,
    #[serde(default)]
    pub not: Option<Box<Condition>>,
}

impl Condition {
    /// True when no test is given: such a condition would match everything, which is never what
    /// a rule's author meant.
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
            && self.keywords_all.is_empty()
            && self.regex.0.is_empty()
            && self.header.is_none()
            && self.task_type.is_empty()
            && self.metadata.is_empty()
            && self.tags.is_empty()
            && self.prompt_tokens.is_none()
            && self.has_tools.is_none()
            && self.has_images.is_none()
            && self.json_response.is_none()
            && self.model.is_empty()
            && self.key.as_ref().is_none_or(KeyCondition::is_empty)
            && self.all.is_empty()
            && self.any.is_empty()
            && self.not.is_none()
    }
}

/// Tests on the virtual key a request came with; every field given must hold. A request without
/// a virtual key (a static `server.api_keys` key, or none) matches none of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCondition {
    /// The key's team is one of these.
    #[serde(default)]
    pub team: Vec<String>,
    /// The key's name is one of these.
    #[serde(default)]
    pub name: Vec<String>,
    /// The key's `metadata.<field>` is one of the listed values, for every field given.
    #[serde(default)]
    pub metadata: BTreeMap<String, OneOrMany>,
}

impl KeyCondition {
    pub fn is_empty(&self) -> bool {
        self.team.is_empty() && self.name.is_empty() && self.metadata.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRange {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

/// Layer 2: a request goes to the tier whose example utterances it most resembles, when the
/// resemblance is clear enough.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    #[serde(default)]
    pub embedder: EmbedderConfig,
    /// Minimum cosine similarity to the best utterance.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Per-tier overrides of `threshold`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f32>,
    /// How far the best tier's similarity must beat the runner-up tier's.
    #[serde(default)]
    pub margin: f32,
    /// Take the utterances' mean out of every vector before comparing; default on from 10
    /// utterances (`routing::semantic::CENTER_MIN_UTTERANCES`).
    #[serde(default)]
    pub center: Option<bool>,
    /// How a tier's similarity is taken from its utterances' (default `max`).
    #[serde(default)]
    pub scoring: SemanticScoring,
    /// Tier → example prompts.
    pub utterances: BTreeMap<String, Vec<String>>,
    /// A YAML file of labelled prompts (`- { prompt: ..., tier: ... }`, relative to the config's
    /// folder) used as further examples of their tiers beside `utterances`.
    #[serde(default)]
    pub examples: Option<Spanned<String>>,
    /// How much of a text's vector comes from its instruction (its first sentence up to a colon,
    /// its last sentence and its questions, without quotes or code) rather than from the whole
    /// text: 0 (the default) embeds the whole text only; see `routing::instruction`.
    #[serde(default)]
    pub instruction_weight: f32,
}

fn default_threshold() -> f32 {
    0.5
}

/// How the semantic layer turns a prompt's similarities to a tier's utterances into the tier's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SemanticScoring {
    /// The most similar utterance: one close example is enough.
    #[default]
    Max,
    /// The mean of the N most similar utterances (`scoring: { top: 2 }`): a prompt must
    /// resemble several of a tier's examples, not one stray one, to score high for it.
    Top(usize),
    /// The tier's mean utterance direction: every example counts, so a prompt that merely
    /// shares wording with one stray utterance does not win the tier, and adding examples of a
    /// kind of work strengthens it rather than adding one more chance of a near miss.
    Centroid,
    /// A logistic regression fitted on the utterances and examples when the config is compiled:
    /// a tier scores its probability (0–1), learned from which directions of the embedding
    /// separate the tiers across all their examples rather than from the closest one.
    Linear,
}

/// Layer 3: answer with the cheap tier first, judge the answer, escalate once when it falls short.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeConfig {
    /// Requests routed to this tier are cascadable.
    pub from: Spanned<String>,
    /// The tier to escalate to.
    pub to: Spanned<String>,
    /// Only requests decided by these rules (by name) cascade; empty: every request routed to `from`.
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default = "default_escalate_on")]
    pub escalate_on: Vec<EscalateOn>,
    /// Escalate when the mean token log-probability is below this (providers that return log-probs).
    #[serde(default)]
    pub min_mean_logprob: Option<f64>,
    /// A model from `models` that scores the answer 1–10.
    #[serde(default)]
    pub judge: Option<JudgeConfig>,
    /// The second cheap model asked in parallel for `agree`, and how the two answers are compared.
    #[serde(default)]
    pub agreement: Option<AgreementConfig>,
    /// Above this share of escalations in `window`, the cascade stops escalating.
    #[serde(default = "default_max_escalation_rate")]
    pub max_escalation_rate: f64,
    #[serde(default = "default_window")]
    pub window: Dur,
    /// The cap applies only once the window holds this many cascaded requests.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

fn default_min_requests() -> u64 {
    20
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalateOn {
    Error,
    Empty,
    Truncated,
    Refusal,
    InvalidJson,
    LowConfidence,
    Judge,
    /// A second cheap model answers in parallel; the cascade escalates when the two disagree.
    Agree,
}

impl EscalateOn {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalateOn::Error => "error",
            EscalateOn::Empty => "empty",
            EscalateOn::Truncated => "truncated",
            EscalateOn::Refusal => "refusal",
            EscalateOn::InvalidJson => "invalid_json",
            EscalateOn::LowConfidence => "low_confidence",
            EscalateOn::Judge => "judge",
            EscalateOn::Agree => "agree",
        }
    }
}

fn default_escalate_on() -> Vec<EscalateOn> {
    vec![
        EscalateOn::Error,
        EscalateOn::Empty,
        EscalateOn::Truncated,
        EscalateOn::Refusal,
        EscalateOn::InvalidJson,
    ]
}
fn default_max_escalation_rate() -> f64 {
    0.2
}
fn default_window() -> Dur {
    Dur::from_secs(300)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    pub model: Spanned<String>,
    /// Escalate when the judge's score is below this (1–10).
    #[serde(default = "default_min_score")]
    pub min_score: f64,
}

fn default_min_score() -> f64 {
    7.0
}

/// `escalate_on: [agree]`: two cheap answers that settle on the same thing are rarely both wrong.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementConfig {
    /// The second model, from `models`, asked the same request in parallel with the cheap tier
    /// (with `learned`, only when the learned layer has no second choice for the request).
    #[serde(default)]
    pub model: Option<Spanned<String>>,
    /// Ask the tier the learned layer predicts best among those cheaper than the cascade's `to`
    /// (other than `from`), so the second opinion comes from the model most likely to be right
    /// on this kind of prompt.
    #[serde(default)]
    pub learned: bool,
    /// What the two answers are compared on.
    #[serde(default)]
    pub compare: AgreementCompare,
    /// Token-set similarity (0–1) at which two code or long answers count as the same, for
    /// `similar` and for code and prose under `auto`.
    #[serde(default = "default_min_similarity")]
    pub min_similarity: f64,
}

fn default_min_similarity() -> f64 {
    0.8
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementCompare {
    /// Short answers by their normalised text (or the option or number both settle on), code by
    /// similarity, longer prose by the option or number it ends on, else by similarity.
    #[default]
    Auto,
    /// The normalised text: labels, short extractions.
    Exact,
    /// The option letter or number each answer settles on.
    Choice,
    /// The final number of each answer.
    Numeric,
    /// Token-set similarity of the two texts at least `min_similarity`.
    Similar,
}
