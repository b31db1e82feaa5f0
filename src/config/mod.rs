//! Loading and validating the routing table.
//!
//! A config is parsed in two passes: serde (unknown keys, wrong types, unset `${VAR}`s), then
//! cross-reference checks (a tier naming a model that does not exist, a regex that does not compile).
//! Both report the file, line, column and YAML path of the offending key, the same way for `check`,
//! `serve` and a hot reload.
//!
//! The ground floor: config imports no other switchyard module but `openai`'s constants.
//!
//! Must not import anything but the wire types (`openai`): everything else reads config.

mod duration;
mod embedder;
mod env;
mod error;
pub mod keys;
mod learned;
mod locate;
mod one_or_many;
pub mod prices;
mod reliability;
mod schema;
pub(crate) mod semantic_examples;
pub mod spend_log;
pub mod state;
mod telemetry;
mod validate;

pub use duration::Dur;
pub use embedder::{EmbedderConfig, EmbedderKind};
pub use env::{EnvString, Uses, interpolate};
pub use error::ConfigError;
pub use learned::*;
pub use one_or_many::OneOrMany;
pub use reliability::*;
pub use schema::*;
pub use semantic_examples::{SemanticExample, read_examples};
pub use telemetry::{OTLP_BUILT_IN, OtlpConfig, TelemetryConfig};

use std::path::Path;

/// Nesting (mappings and lists) a config may have. A real table needs about a dozen levels; the
/// limit keeps a hostile or broken file (conditions nested hundreds deep) from exhausting the
/// stack of the thread that loads it, which for a reload is a 2 MiB runtime worker.
pub const MAX_DEPTH: usize = 24;

/// Appends the rules of `routing.rules_files` (relative to the config file's folder). Each file's
/// mistakes are reported with that file's name and line.
fn include_rules(config: &mut Config, source: &str, text: &str) -> Result<(), ConfigError> {
    let base = Path::new(source)
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    for (i, f) in config.routing.rules_files.clone().iter().enumerate() {
        let path = base.join(&f.value);
        let name = path.display().to_string();
        let included = std::fs::read_to_string(&path).map_err(|e| {
            let line = u32::try_from(f.referenced.line()).ok().filter(|&l| l > 0);
            let col = u32::try_from(f.referenced.column()).ok().filter(|&c| c > 0);
            ConfigError::at(
                source,
                text,
                line,
                col,
                &format!("routing.rules_files[{i}]"),
                format!("cannot read {name}: {e}"),
            )
        })?;
        let mut err_path = String::new();
        let mut options = serde_saphyr::Options::default();
        if let Some(b) = options.budget.as_mut() {
            b.max_depth = MAX_DEPTH;
        }
        let parsed =
            serde_saphyr::with_deserializer_from_str_with_options(&included, options, |de| {
                serde_path_to_error::deserialize::<_, Vec<RuleConfig>>(de).map_err(|e| {
                    err_path = e.path().to_string();
                    e.into_inner()
                })
            });
        let rules = parsed.map_err(|e| ConfigError::from_yaml(&e, &err_path, &name, &included))?;
        validate::included_rules(config, &rules, &name, &included)?;
        config.routing.rules.extend(rules);
    }
    Ok(())
}

impl Config {
    /// Reads and validates the file at `path`; every `${VAR}` must be set.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_for(path, Uses::Everything)
    }

    /// Reads and validates the file at `path` for a command that uses only part of it: the
    /// `${VAR}`s of the other parts may be unset (they are listed in `unresolved`).
    pub fn load_for(path: &Path, uses: Uses) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::whole_file(
                &path.display().to_string(),
                format!("cannot read the config file: {e}"),
            )
        })?;
        Self::from_yaml_for(&text, &path.display().to_string(), uses)
    }

    /// Parses and validates YAML text; `source` names the text in error messages.
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_for(text, source, Uses::Everything)
    }

    /// Like [`Config::from_yaml`], for a command that uses only part of the file.
    pub fn from_yaml_for(text: &str, source: &str, uses: Uses) -> Result<Config, ConfigError> {
        let mut err_path = String::new();
        let parsing = env::Parsing::start(uses);
        let mut options = serde_saphyr::Options::default();
        if let Some(b) = options.budget.as_mut() {
            b.max_depth = MAX_DEPTH;
        }
        let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
                err_path = e.path().to_string();
                e.into_inner()
            })
        });
        let unresolved = parsing.unresolved();
        drop(parsing);
        let mut config = parsed.map_err(|e| ConfigError::from_yaml(&e, &err_path, source, text))?;
        config.unresolved = unresolved;
        include_rules(&mut config, source, text)?;
        prices::resolve(&mut config, source, text)?;
        validate::validate(&config, source, text)?;
        if !config.unresolved.contains_key("telemetry") {
            telemetry::validate(&config.telemetry, source, text)?;
        }
        Ok(config)
    }

    /// Whether the command that loaded the file left `part`'s variables unset (`server`,
    /// `providers.<name>`, `spend_log`, `telemetry`).
    pub fn is_unresolved(&self, part: &str) -> bool {
        self.unresolved.contains_key(part)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Whether `name` is an embedding model, or a tier of them (tiers do not mix kinds).
    pub fn is_embedding(&self, name: &str) -> bool {
        let model = |m: &str| {
            self.model(m)
                .is_some_and(|m| m.kind == ModelKind::Embedding)
        };
        model(name)
            || self
                .tiers
                .get(name)
                .and_then(|t| t.models.first())
                .is_some_and(|m| model(&m.value))
    }

    /// Every secret the config holds, so they can be scrubbed from anything shown to clients or logs.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.providers.values() {
            if let Some(k) = &p.api_key {
                out.push(k.0.clone());
            }
            for (name, value) in &p.headers {
                let lower = name.to_ascii_lowercase();
                if lower.contains("key") || lower.contains("auth") || lower.contains("token") {
                    out.push(value.0.clone());
                }
            }
        }
        out.extend(self.server.api_keys.iter().map(|k| k.0.clone()));
        out.extend(self.server.admin_keys.iter().map(|k| k.0.clone()));
        out.extend(self.server.metrics.keys.iter().map(|k| k.0.clone()));
        let urls = self.spend_log.iter().map(|s| s.url.value.as_str());
        for url in urls.chain(self.keys.database.iter().map(|d| d.value.as_str())) {
            if let Some(pw) = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                out.push(pw);
            }
        }
        out.extend(self.state.secret());
        // Span export headers usually carry the receiver's credentials (Langfuse: Basic auth).
        if let Some(o) = &self.telemetry.otlp {
            out.extend(o.value.headers.values().map(|v| v.value.0.clone()));
        }
        // Very short strings would redact ordinary words; no real key is that short.
        out.retain(|s| s.len() >= 6);
        out.sort();
        out.dedup();
        out
    }
}
