//! The shared backend: deployment breakers, failure windows, per-minute usage and named windows
//! (the cascade's escalation window) in Redis, so every replica pointed at the same server and
//! prefix agrees on them. Every call has a short timeout; while Redis cannot be reached the same
//! calls are answered from a local [`MemoryState`], which also sees every report so that it is
//! warm when it takes over. The key ledger reaches Redis through the same [`Link`].
//!
//! Must not import `dispatch` or anything above `state`.

pub mod breaker;
pub mod ledger;
pub mod link;
pub mod signal;
mod usage;
pub mod window;

pub use link::{Link, LinkStatus};

use super::breaker::{Admission, Cooled, Ended, Settings};
use super::memory::MemoryState;
use super::{Health, MinuteUsage};
use std::sync::Arc;

pub struct RedisState {
    pub link: Arc<Link>,
    local: MemoryState,
}

impl RedisState {
    pub fn new(link: Arc<Link>) -> Self {
        RedisState {
            link,
            local: MemoryState::default(),
        }
    }

    pub async fn admit(&self, deployment: &str, s: &Settings) -> Admission {
        match breaker::admit(&self.link, deployment, s).await {
            Some(a) => a,
            None => self.local.admit(deployment, s),
        }
    }

    pub async fn report(&self, deployment: &str, call: Ended, s: &Settings) -> Option<Cooled> {
        let local = self.local.report(deployment, call, s);
        let Ended { result, probe } = call;
        if breaker::only_records(&result) {
            breaker::record(&self.link, deployment, result, probe, s);
            return None;
        }
        match breaker::report(&self.link, deployment, result, probe, s).await {
            Some(cooled) => cooled,
            None => local,
        }
    }

    pub async fn usage(&self, deployment: &str) -> MinuteUsage {
        match usage::usage(&self.link, deployment).await {
            Some(u) => u,
            None => self.local.usage(deployment),
        }
    }

    pub async fn add_usage(&self, deployment: &str, requests: u64, tokens: u64) {
        self.local.add_usage(deployment, requests, tokens);
        if requests == 0 {
            usage::add_later(&self.link, deployment, requests, tokens);
        } else {
            usage::add(&self.link, deployment, requests, tokens).await;
        }
    }

    pub async fn health(&self, deployment: &str, s: &Settings) -> Health {
        let local = self.local.health(deployment, s);
        let (shown, usage) = tokio::join!(
            breaker::health(&self.link, deployment, s),
            usage::usage(&self.link, deployment)
        );
        match shown {
            Some(mut h) => {
                h.usage = usage.unwrap_or(local.usage);
                h
            }
            None => local,
        }
    }

    pub fn status(&self) -> LinkStatus {
        self.link.status()
    }
}
