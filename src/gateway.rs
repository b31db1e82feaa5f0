//! The compiled form of one config: providers built, rules compiled, names indexed. A request takes
//! an `Arc` of it at arrival and keeps it to the end, so a reload never changes a request midway.

use crate::config::{Config, ConfigError, Price, Strategy, Uses};
use crate::dispatch::DispatchState;
use crate::dispatch::cascade::Cascade;
use crate::dispatch::policy::Policies;
use crate::embed::Embedder;
use crate::providers::Provider;
use crate::redact::Redactor;
use crate::routing::{Learned, Router, Semantic};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Model {
    pub name: Arc<str>,
    /// The id the provider knows the model by.
    pub upstream: String,
    pub provider: Arc<Provider>,
    pub provider_name: String,
    pub price: Price,
    pub context_window: Option<u64>,
    pub weight: f64,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_output_tokens: Option<u32>,
    pub stream_usage: bool,
    /// Limit to the full answer, or to the first chunk of a stream.
    pub timeout: Duration,
    /// Limit on the silence between two chunks of a stream.
    pub idle_timeout: Duration,
}

/// Between chunks a healthy stream is rarely silent for long; two minutes leaves room for slow
/// reasoning models while still freeing a connection to a provider that hung.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Gateway {
    pub config: Config,
    pub router: Router,
    pub models: HashMap<Arc<str>, Arc<Model>>,
    /// Tier → its models, in the order they are tried.
    pub tiers: BTreeMap<Arc<str>, Vec<Arc<Model>>>,
    pub strategies: HashMap<Arc<str>, Strategy>,
    pub fallbacks: HashMap<String, Vec<Arc<str>>>,
    /// Tier → tiers for prompts too long for it.
    pub context_fallbacks: HashMap<String, Vec<Arc<str>>>,
    pub policies: Policies,
    /// Cooldowns, usage and load: carried over from the previous gateway on reload.
    pub dispatch: Arc<DispatchState>,
    pub redactor: Redactor,
    /// Layer 3, when the table has a `routing.cascade`.
    pub cascade: Option<Cascade>,
    /// `routing.counterfactual`, compiled.
    pub counterfactual: Option<crate::cost::Counterfactual>,
    /// `spend_log`, with relative SQLite paths resolved against the config file's folder.
    pub spend_log: Option<crate::cost::spend::Settings>,
    api_keys: HashSet<String>,
    admin_keys: HashSet<String>,
    metrics_keys: HashSet<String>,
}

impl Gateway {
    /// `base_dir` is where relative paths in the config (embedding models) resolve: the config
    /// file's folder.
    pub async fn build(
        config: Config,
        http: &reqwest::Client,
        base_dir: &Path,
    ) -> Result<Gateway, String> {
        let mut providers = HashMap::new();
        // Only a command that calls no provider (`route`) loads a file with providers whose
        // variables are unset; they become simulated stand-ins, so nothing can reach a half-built
        // provider.
        let stand_in = crate::config::ProviderConfig::simulated();
        for (name, p) in &config.providers {
            let p = if config.is_unresolved(&format!("providers.{name}")) {
                &stand_in
            } else {
                p
            };
            // reqwest sets the connect timeout per client, so a provider that overrides it gets its own pool.
            let http = match p.connect_timeout {
                Some(t) => &crate::providers::http::client_with(t.0),
                None => http,
            };
            providers.insert(
                name.clone(),
                (Arc::new(Provider::build(name, p, http.clone())?), p),
            );
        }
        let mut models = HashMap::new();
        for m in &config.models {
            let (provider, pc) = providers.get(&m.provider.value).ok_or_else(|| {
                format!("model {}: unknown provider {}", m.name, m.provider.value)
            })?;
            let model = Model {
                name: m.name.as_str().into(),
                upstream: m
                    .model
                    .as_ref()
                    .map_or_else(|| m.name.clone(), |u| u.0.clone()),
                provider: provider.clone(),
                provider_name: m.provider.value.clone(),
                price: m.price,
                context_window: m.context_window,
                weight: m.weight,
                rpm: m.rpm,
                tpm: m.tpm,
                max_output_tokens: m.max_output_tokens,
                stream_usage: pc.stream_usage,
                timeout: pc
                    .timeout
                    .map_or(crate::providers::DEFAULT_TIMEOUT, |d| d.0),
                idle_timeout: pc
                    .stream_idle_timeout
                    .map_or(DEFAULT_STREAM_IDLE_TIMEOUT, |d| d.0),
            };
            models.insert(model.name.clone(), Arc::new(model));
        }
        let mut tiers = BTreeMap::new();
        for (name, t) in &config.tiers {
            let list = t
                .models
                .iter()
                .map(|m| {
                    models
                        .get(m.value.as_str())
                        .cloned()
                        .ok_or_else(|| format!("tier {name}: unknown model {}", m.value))
                })
                .collect::<Result<Vec<_>, _>>()?;
            tiers.insert(Arc::from(name.as_str()), list);
        }
        let chains = |m: &BTreeMap<String, Vec<serde_saphyr::Spanned<String>>>| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|t| Arc::from(t.value.as_str())).collect(),
                    )
                })
                .collect::<HashMap<String, Vec<Arc<str>>>>()
        };
        let fallbacks = chains(&config.fallbacks.chains);
        let context_fallbacks = chains(&config.fallbacks.context_window);
        let strategies = config
            .tiers
            .iter()
            .map(|(k, t)| (Arc::from(k.as_str()), t.strategy))
            .collect();
        let semantic = match &config.routing.semantic {
            Some(sc) => {
                let embedder = Embedder::build(&sc.embedder, &config.providers, http, base_dir)
                    .map_err(|e| format!("routing.semantic.embedder: {e}"))?;
                Some(Semantic::compile(sc, embedder).await?)
            }
            None => None,
        };
        let learned = match &config.routing.learned {
            Some(lc) => {
                let embedder = Embedder::build(&lc.embedder, &config.providers, http, base_dir)
                    .map_err(|e| format!("routing.learned.embedder: {e}"))?;
                Some(Learned::compile(lc, &config, embedder, base_dir).await?)
            }
            None => None,
        };
        let cascade = match &config.routing.cascade {
            Some(c) => Some(Cascade::build(c, &models)?),
            None => None,
        };
        let spend_log = match config
            .spend_log
            .as_ref()
            .filter(|_| !config.is_unresolved("spend_log"))
        {
            Some(s) => Some(
                crate::cost::spend::Settings::from_config(s, base_dir)
                    .map_err(|e| format!("spend_log.url: {e}"))?,
            ),
            None => None,
        };
        Ok(Gateway {
            counterfactual: crate::cost::Counterfactual::from_config(&config),
            spend_log,
            cascade,
            router: Router::compile(&config, semantic, learned)?,
            redactor: Redactor::new(&config.secrets()),
            api_keys: config.server.api_keys.iter().map(|k| k.0.clone()).collect(),
            admin_keys: config
                .server
                .admin_keys
                .iter()
                .map(|k| k.0.clone())
                .collect(),
            metrics_keys: config
                .server
                .metrics
                .keys
                .iter()
                .map(|k| k.0.clone())
                .collect(),
            models,
            tiers,
            strategies,
            fallbacks,
            context_fallbacks,
            policies: Policies::new(&config.reliability),
            dispatch: Arc::default(),
            config,
        })
    }

    /// Loads, validates and compiles a config file: the one path `check`, `serve` and reload share,
    /// so all three accept and reject exactly the same files with the same messages.
    pub async fn load(path: &Path, http: &reqwest::Client) -> Result<Gateway, ConfigError> {
        Gateway::load_for(path, http, Uses::Everything).await
    }

    /// Like [`Gateway::load`] for a command that uses only part of the file (see [`Uses`]).
    pub async fn load_for(
        path: &Path,
        http: &reqwest::Client,
        uses: Uses,
    ) -> Result<Gateway, ConfigError> {
        let config = Config::load_for(path, uses)?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        Gateway::build(config, http, base_dir)
            .await
            .map_err(|message| ConfigError::after_build(path, message))
    }

    /// Keeps the previous config's deployment state (cooldowns, usage, load) and the cascade's
    /// escalation window, so a reload neither forgives a failing deployment, forgets this minute's
    /// usage, nor lifts a cascade cap that is holding.
    pub fn inherit(&mut self, previous: &Gateway) {
        self.dispatch = previous.dispatch.clone();
        if let (Some(c), Some(p)) = (self.cascade.as_mut(), previous.cascade.as_ref()) {
            c.inherit(p);
        }
    }

    pub fn auth_required(&self) -> bool {
        !self.api_keys.is_empty()
    }

    pub fn key_is_valid(&self, key: &str) -> bool {
        self.api_keys.contains(key)
    }

    /// `server.admin_keys` is set: `/admin/*` asks for one of them, from any address.
    pub fn admin_keys_set(&self) -> bool {
        !self.admin_keys.is_empty()
    }

    pub fn is_admin_key(&self, key: &str) -> bool {
        self.admin_keys.contains(key)
    }

    /// `server.metrics.keys` is set: a scrape presents one of them (or an admin key).
    pub fn metrics_keys_set(&self) -> bool {
        !self.metrics_keys.is_empty()
    }

    pub fn is_metrics_key(&self, key: &str) -> bool {
        self.metrics_keys.contains(key) || self.admin_keys.contains(key)
    }
}
