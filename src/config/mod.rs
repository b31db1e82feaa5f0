//! Loading and validating the routing table.
//!
//! A config is parsed in two passes: serde (unknown keys, wrong types, unset `${VAR}`s), then
//! cross-reference checks (a tier naming a model that does not exist, a regex that does not compile).
//! Both report the file, line, column and YAML path of the offending key, the same way for `check`,
//! `serve` and a hot reload.

mod duration;
mod env;
mod error;
mod learned;
mod reliability;
mod schema;
mod telemetry;
mod validate;

pub use duration::Dur;
pub use env::{EnvString, interpolate};
pub use error::ConfigError;
pub use learned::*;
pub use reliability::*;
pub use schema::*;
pub use telemetry::{OTLP_BUILT_IN, OtlpConfig, TelemetryConfig};

use std::path::Path;

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::whole_file(
                &path.display().to_string(),
                format!("cannot read the config file: {e}"),
            )
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `source` names the text in error messages.
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let mut err_path = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
                err_path = e.path().to_string();
                e.into_inner()
            })
        });
        let mut config = parsed.map_err(|e| ConfigError::from_yaml(&e, &err_path, source, text))?;
        crate::cost::prices::resolve(&mut config, source, text)?;
        validate::validate(&config, source, text)?;
        telemetry::validate(&config.telemetry, source, text)?;
        Ok(config)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
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
        if let Some(s) = &self.spend_log {
            if let Some(pw) = reqwest::Url::parse(s.url.value.as_str())
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                out.push(pw);
            }
        }
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
