//! What a deployment's state looks like from outside, whichever backend holds it: its breaker
//! and its minute's usage, as `/admin/deployments` and dispatch read them.
//!
//! Must not import a backend (`memory`, `redis`).

use super::breaker::Status;
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
