//! State that outlives a request and that several replicas would have to agree on: each
//! deployment's circuit breaker (cooldowns and failure windows), its per-minute usage, named
//! windows (the cascade's escalation window), and the virtual keys' [`ledger`].
//!
//! Dispatch talks to [`StateStore`] only. The in-memory backend is the default; `state: {backend:
//! redis}` selects the shared one, with the same methods, and no change to dispatch.
//!
//! Must not import `dispatch` or anything above it.

pub mod breaker;
mod health;
pub mod ledger;
mod limits;
mod memory;
pub mod redis;
pub mod window;

pub use breaker::{Admission, CallResult, Cooled, Ended, Settings, Status};
pub use health::{Health, MinuteUsage};

use crate::config::state::{OnStateError, StateBackend, StateConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use window::SlidingRate;

/// Wall-clock milliseconds: shared state is kept on the clock every replica reads.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub enum StateStore {
    Memory(memory::MemoryState),
    Redis(redis::RedisState),
}

/// Whether shared state is in use, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Local,
    Shared(redis::LinkStatus),
}

impl Default for StateStore {
    fn default() -> Self {
        StateStore::Memory(memory::MemoryState::default())
    }
}

impl StateStore {
    /// The store `state:` asks for. Redis is connected lazily, so a server that is down at start
    /// only means starting degraded.
    pub fn from_config(c: &StateConfig) -> Result<StateStore, String> {
        match (c.backend, &c.url) {
            (StateBackend::Redis, Some(url)) => {
                let link = redis::Link::open(
                    url.as_str(),
                    c.prefix(),
                    c.timeout(),
                    c.on_state_error == OnStateError::Deny,
                )
                .map_err(|e| format!("state.url: {e}"))?;
                Ok(StateStore::Redis(redis::RedisState::new(link)))
            }
            _ => Ok(StateStore::default()),
        }
    }

    /// The link the key ledger shares, when state is in Redis.
    pub fn link(&self) -> Option<Arc<redis::Link>> {
        match self {
            StateStore::Memory(_) => None,
            StateStore::Redis(r) => Some(r.link.clone()),
        }
    }

    pub fn backing(&self) -> Backing {
        match self {
            StateStore::Memory(_) => Backing::Local,
            StateStore::Redis(r) => Backing::Shared(r.status()),
        }
    }

    /// Records an event in the named window (`local` is this process's copy of it, which answers
    /// while shared state is unreachable).
    pub fn window_record(&self, name: &str, len: Duration, local: &Mutex<SlidingRate>, hit: bool) {
        if let Ok(mut w) = local.lock() {
            w.record(Instant::now(), hit);
        }
        if let StateStore::Redis(r) = self {
            redis::window::record(&r.link, name, len, hit);
        }
    }

    /// (events, hits) in the named window.
    pub async fn window_counts(
        &self,
        name: &str,
        len: Duration,
        local: &Mutex<SlidingRate>,
    ) -> (u64, u64) {
        if let StateStore::Redis(r) = self {
            if let Some(c) = redis::window::counts(&r.link, name, len).await {
                return c;
            }
        }
        local
            .lock()
            .map(|w| w.counts(Instant::now()))
            .unwrap_or((0, 0))
    }

    /// Whether `deployment` may take a request now; claims the probe when its cooldown is over.
    pub async fn admit(&self, deployment: &str, s: &Settings) -> Admission {
        match self {
            StateStore::Memory(m) => m.admit(deployment, s),
            StateStore::Redis(r) => r.admit(deployment, s).await,
        }
    }

    /// Records how a call ended; returns the cooldown it started, if any.
    pub async fn report(&self, deployment: &str, call: Ended, s: &Settings) -> Option<Cooled> {
        match self {
            StateStore::Memory(m) => m.report(deployment, call, s),
            StateStore::Redis(r) => r.report(deployment, call, s).await,
        }
    }

    pub async fn usage(&self, deployment: &str) -> MinuteUsage {
        match self {
            StateStore::Memory(m) => m.usage(deployment),
            StateStore::Redis(r) => r.usage(deployment).await,
        }
    }

    pub async fn add_usage(&self, deployment: &str, requests: u64, tokens: u64) {
        match self {
            StateStore::Memory(m) => m.add_usage(deployment, requests, tokens),
            StateStore::Redis(r) => r.add_usage(deployment, requests, tokens).await,
        }
    }

    pub async fn health(&self, deployment: &str, s: &Settings) -> Health {
        match self {
            StateStore::Memory(m) => m.health(deployment, s),
            StateStore::Redis(r) => r.health(deployment, s).await,
        }
    }
}
