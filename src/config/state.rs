//! `state:`: where the state that replicas must agree on lives (breakers, counters, budgets) and
//! what budgets do while a shared store cannot be reached. The stores themselves are `state`;
//! this module must not import it.

use super::duration::Dur;
use super::env::EnvString;
use serde::Deserialize;
use std::time::Duration;

/// How long one shared-state call may take before the request goes on with local state.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

pub const DEFAULT_PREFIX: &str = "switchyard";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    #[default]
    Memory,
    Redis,
}

/// What a budget-limited key gets while the shared store is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStateError {
    /// Served, counted against this process's local view of the budget.
    #[default]
    Allow,
    /// Refused until the store is back: a budget no replica can check is not spent.
    Deny,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default)]
    pub backend: StateBackend,
    /// `redis://host:port[/db]` (or `rediss://`); required with `backend: redis`.
    #[serde(default)]
    pub url: Option<EnvString>,
    /// Put before every Redis key, so several gateways (or tests) can share one server.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub on_state_error: OnStateError,
    /// Per shared-state call; default 100ms.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

impl StateConfig {
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0)
    }

    /// The section's own rules, as (key, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(p) = &self.prefix {
            if p.is_empty() || p.len() > 64 || !p.chars().all(|c| c.is_ascii_graphic()) {
                return Err((
                    "prefix",
                    format!(
                        "{p:?} is not a usable key prefix (1 to 64 printable characters, no spaces)"
                    ),
                ));
            }
        }
        if let Some(t) = self.timeout {
            if t.0.is_zero() || t.0 > Duration::from_secs(10) {
                return Err(("timeout", "must be between 1ms and 10s".into()));
            }
        }
        match (&self.backend, &self.url) {
            (StateBackend::Redis, None) => Err((
                "backend",
                "`backend: redis` needs `url` (e.g. redis://127.0.0.1:6379)".into(),
            )),
            (StateBackend::Redis, Some(u)) => {
                let ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|s| u.as_str().starts_with(s))
                    && redis::Client::open(u.as_str()).is_ok();
                if ok {
                    Ok(())
                } else {
                    Err((
                        "url",
                        "is not a Redis URL (redis://host:port[/db] or rediss://…)".into(),
                    ))
                }
            }
            (StateBackend::Memory, Some(_)) => Err((
                "url",
                "is only used with `backend: redis`; set the backend or remove the url".into(),
            )),
            (StateBackend::Memory, None) => Ok(()),
        }
    }

    /// The Redis password in the URL, for the redactor.
    pub fn secret(&self) -> Option<String> {
        let url = self.url.as_ref()?;
        reqwest::Url::parse(url.as_str())
            .ok()
            .and_then(|u| u.password().map(str::to_string))
    }
}
