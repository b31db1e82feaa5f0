//! State that outlives a request and that several replicas would have to agree on: each
//! deployment's circuit breaker (cooldowns and failure windows) and its per-minute usage.
//!
//! Dispatch talks to [`StateStore`] only. The in-memory backend is the default; a shared backend
//! (Redis) is another variant here, with the same methods, and no change to dispatch.
//!
//! Must not import `dispatch` or anything above it.

pub mod breaker;
pub mod ledger;
mod memory;
pub mod window;

pub use breaker::{Admission, CallResult, Cooled, Settings, Status};

use crate::providers::ErrorClass;
use std::time::Duration;

/// Requests and tokens a deployment has taken in the current minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteUsage {
    pub requests: u64,
    pub tokens: u64,
    /// Until the counters start over.
    pub resets_in: Duration,
}

/// One deployment's health as `/admin/deployments` shows it.
#[derive(Debug, Clone)]
pub struct Health {
    pub status: Status,
    /// Calls and failures within the breaker's window.
    pub calls: u64,
    pub failures: u64,
    pub cooldowns: u64,
    pub last_class: Option<ErrorClass>,
    pub last_cooldown: Option<Duration>,
    pub usage: MinuteUsage,
}

pub enum StateStore {
    Memory(memory::MemoryState),
}

impl Default for StateStore {
    fn default() -> Self {
        StateStore::Memory(memory::MemoryState::default())
    }
}

impl StateStore {
    /// Whether `deployment` may take a request now; claims the probe when its cooldown is over.
    pub async fn admit(&self, deployment: &str, s: &Settings) -> Admission {
        match self {
            StateStore::Memory(m) => m.admit(deployment, s),
        }
    }

    /// Records how a call ended; returns the cooldown it started, if any.
    pub async fn report(
        &self,
        deployment: &str,
        result: CallResult,
        probe: bool,
        s: &Settings,
    ) -> Option<Cooled> {
        match self {
            StateStore::Memory(m) => m.report(deployment, result, probe, s),
        }
    }

    pub async fn usage(&self, deployment: &str) -> MinuteUsage {
        match self {
            StateStore::Memory(m) => m.usage(deployment),
        }
    }

    pub async fn add_usage(&self, deployment: &str, requests: u64, tokens: u64) {
        match self {
            StateStore::Memory(m) => m.add_usage(deployment, requests, tokens),
        }
    }

    pub async fn health(&self, deployment: &str, s: &Settings) -> Health {
        match self {
            StateStore::Memory(m) => m.health(deployment, s),
        }
    }
}
