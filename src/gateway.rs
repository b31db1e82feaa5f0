//! The compiled form of one config: providers built, rules compiled, names indexed. A request takes
//! an `Arc` of it at arrival and keeps it to the end, so a reload never changes a request midway.
//!
//! Above `dispatch` (it holds dispatch's tables) and `routing`, below `api` and `cost`.
//!
//! Must not import `api`, `server` or `cost`: it sits below the request path's stages.

use crate::config::{Config, ConfigError, Uses};
use crate::dispatch::cascade::Cascade;
use crate::dispatch::policy::Policies;
use crate::dispatch::{DEFAULT_STREAM_IDLE_TIMEOUT, Deployment, Tables};
use crate::embed::Embedder;
use crate::providers::Provider;
use crate::redact::Redactor;
use crate::routing::{Learned, Router, Semantic};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

pub struct Gateway {
    pub config: Config,
    pub router: Router,
    /// Deployments, tiers, fallback chains, reliability policies and deployment state: what
    /// dispatch is given.
    pub tables: Tables,
    pub redactor: Redactor,
    /// Layer 3, when the table has a `routing.cascade`.
    pub cascade: Option<Cascade>,
    /// `routing.counterfactual`, compiled.
    pub counterfactual: Option<crate::config::prices::Counterfactual>,
    /// `spend_log`, with relative SQLite paths resolved against the config file's folder.
    pub spend_log: Option<crate::config::spend_log::Settings>,
    /// Where virtual keys live (`keys.database`, else the spend log's, else `keys.db` beside the
    /// config), and how often a running gateway re-reads them.
    pub keys_db: crate::config::spend_log::Target,
    pub keys_refresh: std::time::Duration,
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
            let model = Deployment {
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
                Some(Semantic::compile(sc, embedder, base_dir).await?)
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
                crate::config::spend_log::Settings::from_config(s, base_dir)
                    .map_err(|e| format!("spend_log.url: {e}"))?,
            ),
            None => None,
        };
        let keys_db = crate::config::keys::target(&config, base_dir)?;
        let store = crate::state::StateStore::from_config(&config.state)?;
        Ok(Gateway {
            keys_db,
            keys_refresh: config
                .keys
                .refresh
                .map_or(crate::keys::DEFAULT_REFRESH, |d| d.0),
            counterfactual: crate::config::prices::Counterfactual::from_config(&config),
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
            tables: Tables {
                models,
                tiers,
                strategies,
                fallbacks,
                context_fallbacks,
                policies: Policies::new(&config.reliability),
                state: Arc::new(crate::dispatch::DispatchState {
                    store,
                    loads: Default::default(),
                }),
            },
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
    /// A changed `state:` section is not applied: the key ledger holds the store it started with.
    pub fn inherit(&mut self, previous: &Gateway) {
        if self.config.state != previous.config.state {
            tracing::warn!("state: changes take effect when the gateway restarts");
        }
        self.tables.state = previous.tables.state.clone();
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
