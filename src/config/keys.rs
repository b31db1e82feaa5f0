//! `keys:`: where virtual keys are stored and how often a running gateway re-reads them. The
//! store itself is `keys`; this module must not import it.

use super::Config;
use super::duration::Dur;
use super::env::EnvString;
use super::spend_log::Target;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `sqlite://keys.db` (relative to the config file's folder) or `postgres://…`. Absent: the
    /// spend log's database when there is one, else `keys.db` beside the config file.
    #[serde(default)]
    pub database: Option<Spanned<EnvString>>,
    /// The table (created when missing); a plain SQL identifier. Default `switchyard_keys`.
    #[serde(default)]
    pub table: Option<String>,
    /// How often the table is checked for changes (revocations included); default 500ms.
    #[serde(default)]
    pub refresh: Option<Dur>,
}

/// The file name used when neither `keys.database` nor a spend log is configured.
pub const DEFAULT_FILE: &str = "keys.db";

/// Where a config's keys live, with relative SQLite paths resolved against `base_dir`.
pub fn target(c: &Config, base_dir: &Path) -> Result<Target, String> {
    if let Some(t) = &c.keys.table {
        super::spend_log::check_table(t).map_err(|e| format!("keys.table: {e}"))?;
    }
    if let Some(db) = &c.keys.database {
        return Target::parse(db.value.as_str(), base_dir)
            .map_err(|e| format!("keys.database: {e}"));
    }
    if let Some(s) = &c.spend_log {
        return Target::parse(s.url.value.as_str(), base_dir)
            .map_err(|e| format!("spend_log.url: {e}"));
    }
    Ok(Target::Sqlite(base_dir.join(DEFAULT_FILE)))
}
