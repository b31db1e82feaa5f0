//! The walk of a plan, in three steps: **pick** a deployment the breaker and the usage limits
//! admit (`pick`), **attempt** the call and report it to the breaker, and, when the tier is spent,
//! choose the **next tier** (the fallback chain, or the context-window chain for a prompt too long
//! for this one). Retries within a tier and hops between tiers draw on one attempt budget.

use super::fit::Estimate;
use super::pick::{self, Pick, Tried, UNAVAILABLE_CODE, Unavailable};
use super::{Candidate, Deployment, Hop, HopReason, Outcome, Plan, Progress, Tables};
use crate::providers::{ErrorKind, ProviderError};
use crate::state::{CallResult, Cooled, Ended};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// One walk's position: where it has been and what it has spent.
struct Walk<'a> {
    t: &'a Tables,
    plan: &'a Plan,
    progress: &'a Progress,
    est: Estimate<'a>,
    /// The tiers a failing request may move to, in order (empty without fallbacks).
    next_tiers: Vec<Arc<str>>,
    hops: u32,
    out: Outcome,
}

/// How a tier's turn ended.
enum TierEnd<T> {
    Answered(T),
    /// `unavailable`: nothing could be called, and why (when that was the reason).
    Failed {
        err: ProviderError,
        unavailable: Option<Unavailable>,
    },
}

/// Walks the plan until an answer, a failure that may not go further, or the end of the attempt
/// budget. `attempt` makes one upstream call to the deployment it is given.
pub(super) async fn walk<T, F, Fut>(
    t: &Tables,
    est: Estimate<'_>,
    plan: &Plan,
    progress: &Progress,
    mut attempt: F,
) -> (Result<T, ProviderError>, Outcome)
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut skipped = Vec::new();
    let next_tiers = if plan.fallback {
        let mut all = super::chain(t, &plan.tier, plan.then.as_ref());
        all.retain(|x| {
            plan.allows_tier(x) || {
                skipped.push(x.clone());
                false
            }
        });
        all
    } else {
        Vec::new()
    };
    let mut w = Walk {
        t,
        plan,
        progress,
        est,
        next_tiers,
        hops: 0,
        out: Outcome {
            skipped,
            ..Outcome::default()
        },
    };
    let mut tier = plan.tier.clone();
    loop {
        w.out.walked.push(tier.clone());
        let (err, unavailable) = match w.tier(&tier, &mut attempt).await {
            TierEnd::Answered(v) => return (Ok(v), w.out),
            TierEnd::Failed { err, unavailable } => (err, unavailable),
        };
        match w.next_tier(&tier, &err, unavailable) {
            Some(next) => tier = next,
            None => return (Err(err), w.out),
        }
    }
}

impl Walk<'_> {
    /// Whether a failure here could still move to another tier.
    fn can_hop(&self) -> bool {
        self.plan.fallback
            && self.hops < self.t.policies.max_fallbacks
            && self.next_tiers.iter().any(|t| !self.out.walked.contains(t))
    }

    /// The tier's turn: pick and attempt until an answer, a failure its policy does not retry,
    /// nothing admitted, or the attempt budget is spent.
    async fn tier<T, F, Fut>(&mut self, tier: &Arc<str>, attempt: &mut F) -> TierEnd<T>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let pol = &self.t.policies;
        let pool: Vec<Arc<Deployment>> = match &self.plan.pinned {
            Some(m) => vec![m.clone()],
            None => self.t.tiers.get(tier).cloned().unwrap_or_default(),
        };
        let fitting: Vec<Arc<Deployment>> = pool
            .iter()
            .filter(|m| self.plan.allows_model(&m.name) && self.est.fits(m))
            .cloned()
            .collect();
        let mut tried: Vec<Tried> = Vec::new();
        let mut retries = 0u32;
        let mut waited = false;
        let mut err: Option<ProviderError> = None;
        let mut unavailable: Option<Unavailable> = None;
        while !fitting.is_empty() && self.out.attempts < self.plan.budget {
            let (m, probe, repeat) =
                match pick::pick(self.t, tier, &fitting, &tried, &self.est).await {
                    Pick::Chosen {
                        model,
                        probe,
                        repeat,
                    } => (model, probe, repeat),
                    Pick::None(none) => {
                        // Nothing admitted now. A short wait beats failing the request when the
                        // policy still allows a retry here and no other tier can take it.
                        let retry_left = err
                            .as_ref()
                            .is_none_or(|e| pol.for_kind(e.kind).retries > retries);
                        match none.soonest().filter(|w| *w <= pol.max_retry_wait) {
                            Some(wait) if retry_left && !waited && !self.can_hop() => {
                                waited = true;
                                self.progress.wait(wait).await;
                                continue;
                            }
                            _ => {}
                        }
                        if err.is_none() {
                            let pinned = self.plan.pinned.as_ref().map(|m| &*m.name);
                            err = Some(none.error(tier, pinned));
                        }
                        unavailable = Some(none);
                        break;
                    }
                };
            if let Some(e) = &err {
                self.out.retries.push((m.name.clone(), e.kind));
                if repeat {
                    // Going back to a deployment that failed: give it a moment first.
                    let mut wait = pol.backoff(retries);
                    if let Some(ra) = e.retry_after.filter(|ra| *ra <= pol.max_retry_wait) {
                        wait = wait.max(ra);
                    }
                    self.progress.wait(wait).await;
                }
            }
            match self.attempt(tier, &m, probe, attempt).await {
                Ok(v) => return TierEnd::Answered(v),
                Err(e) => {
                    tried.push(Tried {
                        name: m.name.clone(),
                        kind: e.kind,
                    });
                    let retry = pol.for_kind(e.kind).retries > retries;
                    err = Some(e);
                    if !retry {
                        break;
                    }
                    retries += 1;
                }
            }
        }
        let err = match err {
            Some(e) => e,
            None if fitting.is_empty() => too_long(tier, &pool, &self.est),
            None => budget_spent(self.plan.budget),
        };
        TierEnd::Failed { err, unavailable }
    }

    /// One upstream call, timed, counted against the deployment's load, and reported to its
    /// breaker (a failure may start a cooldown).
    async fn attempt<T, F, Fut>(
        &mut self,
        tier: &Arc<str>,
        m: &Arc<Deployment>,
        probe: bool,
        attempt: &mut F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let (pol, ds) = (&self.t.policies, &self.t.state);
        self.out.start(tier, m);
        let load = ds.loads.get(&m.name);
        let in_flight = load.enter();
        let started = Instant::now();
        let to = Candidate {
            tier: tier.clone(),
            model: m.clone(),
        };
        let r = self.progress.call(&to, attempt(m.clone())).await;
        let took = started.elapsed();
        drop(in_flight);
        match &r {
            Ok(_) => {
                load.observe(took);
                let call = Ended {
                    result: CallResult::Success,
                    probe,
                };
                ds.store.report(&m.name, call, &pol.breaker).await;
            }
            Err(e) => {
                self.out.failed(tier, m, e);
                let result = CallResult::Failure {
                    class: e.kind.class(),
                    mode: pol.for_kind(e.kind).cooldown,
                    retry_after: e.retry_after,
                };
                let call = Ended { result, probe };
                if let Some(c) = ds.store.report(&m.name, call, &pol.breaker).await {
                    log_cooldown(&m.name, &c);
                    self.out.cooldowns.push((m.name.clone(), c.class.label()));
                }
            }
        }
        r
    }

    /// Where the request goes after `tier` failed with `err`, or `None` when it may go no further
    /// (the budget is spent, fallbacks are off or used up, the class does not fall back, or no
    /// tier is left). A hop taken is recorded with its reason.
    fn next_tier(
        &mut self,
        tier: &Arc<str>,
        err: &ProviderError,
        unavailable: Option<Unavailable>,
    ) -> Option<Arc<str>> {
        let (t, pol) = (self.t, &self.t.policies);
        if self.out.attempts >= self.plan.budget
            || !self.plan.fallback
            || self.hops >= pol.max_fallbacks
        {
            return None;
        }
        // Only an error that is the tier's unavailability (nothing was called) moves on for it.
        let none = unavailable.filter(|_| err.code.as_deref() == Some(UNAVAILABLE_CODE));
        let may_fall_back = match &none {
            Some(n) => n.may_fall_back(t),
            None => pol.for_kind(err.kind).fallback,
        };
        let walked = &self.out.walked;
        let next = if err.kind == ErrorKind::ContextWindow {
            // A prompt too long for this tier needs a bigger window, not the ordinary chain.
            let chain = t.context_fallbacks.get(&**tier).map_or(&[][..], |c| &c[..]);
            for x in chain.iter().filter(|x| !self.plan.allows_tier(x)) {
                if !self.out.skipped.contains(x) {
                    self.out.skipped.push(x.clone());
                }
            }
            chain
                .iter()
                .find(|x| !walked.contains(x) && self.plan.allows_tier(x))
                .cloned()
        } else {
            self.next_tiers
                .iter()
                .find(|t| !walked.contains(t))
                .cloned()
        };
        let next = next.filter(|_| may_fall_back)?;
        let reason = match &none {
            Some(n) => n.hop_reason(),
            None => HopReason::Failure(err.kind.class()),
        };
        self.out.hops.push(Hop {
            from: tier.clone(),
            to: next.clone(),
            reason,
        });
        self.hops += 1;
        Some(next)
    }
}

/// A rejected key needs an operator; any other cooldown heals by itself.
pub(super) fn log_cooldown(deployment: &str, c: &Cooled) {
    let secs = c.duration.as_secs_f64();
    if c.class == ErrorKind::Auth.class() {
        tracing::error!(
            deployment,
            class = c.class.label(),
            cooldown_s = secs,
            "the provider rejected switchyard's credentials for this deployment; it is out of rotation until the key is fixed"
        );
    } else {
        tracing::warn!(
            deployment,
            class = c.class.label(),
            cooldown_s = secs,
            "deployment cooled down"
        );
    }
}

fn too_long(tier: &str, pool: &[Arc<Deployment>], est: &Estimate<'_>) -> ProviderError {
    let largest = pool.iter().filter_map(|m| m.context_window).max();
    let (tokens, what, param) = est.too_long();
    let mut e = ProviderError::new(
        ErrorKind::ContextWindow,
        format!(
            "{what} (about {tokens} tokens) does not fit the context window of any deployment of tier `{tier}` (largest: {} tokens)",
            largest.map_or_else(|| "unknown".into(), |l| l.to_string())
        ),
    );
    e.code = Some("context_length_exceeded".into());
    e.param = Some(param.into());
    e
}

fn budget_spent(budget: u32) -> ProviderError {
    ProviderError::new(
        ErrorKind::Server,
        format!("the request used its whole attempt budget ({budget} calls) without an answer"),
    )
}
