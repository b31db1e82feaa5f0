//! What dispatch is given by the compiled config: the deployments, each tier's deployments in
//! the order they are tried and how it balances them, the fallback chains, the reliability
//! policies, and the deployment state that outlives a reload. Dispatch reads nothing else of the
//! gateway.

use super::DispatchState;
use super::deployment::Deployment;
use super::policy::Policies;
use crate::config::Strategy;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct Tables {
    pub models: HashMap<Arc<str>, Arc<Deployment>>,
    /// Tier → its deployments, in the order they are tried.
    pub tiers: BTreeMap<Arc<str>, Vec<Arc<Deployment>>>,
    pub strategies: HashMap<Arc<str>, Strategy>,
    pub fallbacks: HashMap<String, Vec<Arc<str>>>,
    /// Tier → tiers for prompts too long for it.
    pub context_fallbacks: HashMap<String, Vec<Arc<str>>>,
    pub policies: Policies,
    /// Cooldowns, usage and load: carried over from the previous gateway on reload.
    pub state: Arc<DispatchState>,
}

impl Tables {
    /// A deployment's breaker state under this config's breaker settings (for the admin view and
    /// the health gauge).
    pub async fn health(&self, deployment: &str) -> crate::state::Health {
        self.state
            .store
            .health(deployment, &self.policies.breaker)
            .await
    }
}
