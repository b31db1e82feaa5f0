//! Turning a routing decision into upstream calls. Within a tier: a balancing strategy picks a
//! deployment the circuit breaker admits, and a failure is retried on another admitted deployment
//! first, or, when none is, on one already tried after a backoff, as its class's policy allows
//! (`pick`). Across tiers: the fallback chain, or the separate context-window chain, up to
//! `max_fallbacks` hops. One attempt budget covers it all. A bad request or a content-policy
//! refusal is returned at once by default: no bigger model fixes it, it would only cost more.
//!
//! Dispatch is given its `Tables`; it must not import `gateway` (its tests build one), `api` or
//! `cost`.

pub mod balance;
pub mod cascade;
mod deployment;
mod fit;
mod judge;
mod pick;
pub mod policy;
mod progress;
mod stream;
mod tables;
mod verdict;

pub use deployment::{DEFAULT_STREAM_IDLE_TIMEOUT, Deployment};
pub use pick::{UNAVAILABLE_CODE, Unavailable, Why};
pub use progress::Progress;
pub use stream::{Broken, Rest};
pub use tables::Tables;

use crate::openai::ChatRequest;
use crate::providers::{Call, ChatResponse, ChunkStream, ErrorKind, ProviderError};
use crate::routing::Decision;
use crate::state::{CallResult, Cooled, StateStore};
use balance::Loads;
use fit::Estimate;
use futures_util::StreamExt;
use pick::{Pick, Tried};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What outlives one config: breaker and usage state, and this replica's load per deployment.
/// A reload hands it to the new gateway, so cooldowns survive it.
#[derive(Default)]
pub struct DispatchState {
    pub store: StateStore,
    pub loads: Loads,
}

#[derive(Clone)]
pub struct Candidate {
    pub tier: Arc<str>,
    pub model: Arc<Deployment>,
}

pub struct Failure {
    pub tier: Arc<str>,
    pub model: Arc<str>,
    pub kind: ErrorKind,
}

/// An answer that was paid for but not returned: the cheap answer a cascade escalated past.
pub struct Discarded {
    pub tier: Arc<str>,
    pub model: Arc<Deployment>,
    /// The provider's usage; `None` when it reported none (the text is then counted instead).
    pub usage: Option<crate::openai::Usage>,
    pub text: String,
}

/// A move to another tier, and why.
pub struct Hop {
    pub from: Arc<str>,
    pub to: Arc<str>,
    pub reason: HopReason,
}

/// Why a request moved to a fallback tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopReason {
    /// A call failed with this class, and its policy allows a fallback.
    Failure(crate::providers::ErrorClass),
    /// No deployment of the tier was admitted: cooling down after failures.
    Cooldown,
    /// No deployment of the tier was admitted: only rpm/tpm limits stood in the way.
    UsageLimit,
}

impl HopReason {
    /// The `reason` label of `switchyard_fallbacks_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            HopReason::Failure(c) => c.label(),
            HopReason::Cooldown => "cooldown",
            HopReason::UsageLimit => "usage_limit",
        }
    }
}

/// What happened on the way to an answer (or to the final error).
#[derive(Default)]
pub struct Outcome {
    /// The deployment that answered, or the last one tried.
    pub served: Option<Candidate>,
    /// Upstream calls made.
    pub attempts: u32,
    /// Tiers entered, in order, the first included (the cascade's escalation too).
    pub walked: Vec<Arc<str>>,
    /// Tier changes forced by failures (not cascade escalations).
    pub hops: Vec<Hop>,
    pub failures: Vec<Failure>,
    /// (deployment retried on, class of the failure that caused the retry).
    pub retries: Vec<(Arc<str>, ErrorKind)>,
    /// (deployment, class) for every cooldown this request started.
    pub cooldowns: Vec<(Arc<str>, &'static str)>,
    /// What the cascade did, when the request was cascaded.
    pub cascade: Option<cascade::Step>,
    /// Answers billed but not returned.
    pub discarded: Vec<Discarded>,
}

impl Outcome {
    /// `budget->mid`: the tiers this request actually went through.
    pub fn chain(&self) -> String {
        let names: Vec<&str> = self.walked.iter().map(|t| &**t).collect();
        names.join("->")
    }

    pub(crate) fn absorb(&mut self, more: Outcome) {
        self.attempts += more.attempts;
        self.failures.extend(more.failures);
        self.retries.extend(more.retries);
        self.cooldowns.extend(more.cooldowns);
        self.hops.extend(more.hops);
        self.discarded.extend(more.discarded);
        for t in more.walked {
            if self.walked.last() != Some(&t) {
                self.walked.push(t);
            }
        }
        if more.served.is_some() {
            self.served = more.served;
        }
    }
}

/// Where one walk starts and how far it may go.
#[derive(Clone)]
pub struct Plan {
    pub tier: Arc<str>,
    /// Tried right after `tier`, before its fallback chain (a stream's cascade tier).
    pub then: Option<Arc<str>>,
    pub fallback: bool,
    /// A model the client named: that deployment or an error, never a substitute.
    pub pinned: Option<Arc<Deployment>>,
    /// Upstream calls this walk may make.
    pub budget: u32,
}

impl Plan {
    pub fn tier(t: &Tables, tier: Arc<str>, fallback: bool) -> Plan {
        Plan {
            tier,
            then: None,
            fallback,
            pinned: None,
            budget: t.policies.max_attempts,
        }
    }
}

/// The walk for a routing decision. `fallback` is false when the client sent
/// `x-switchyard-no-fallback: true`.
pub fn plan(t: &Tables, decision: &Decision, fallback: bool) -> Option<Plan> {
    let mut p = Plan::tier(t, decision.tier.clone(), fallback);
    if let Some(name) = &decision.model {
        p.pinned = Some(t.models.get(name)?.clone());
        p.fallback = false;
    } else {
        // A cascadable request that cannot be judged (a stream) still escalates to the cascade's
        // tier first when the cheap tier fails before answering.
        p.then = decision.cascade_to.clone();
    }
    Some(p)
}

/// The tiers after `first`, in the order a failing request moves through them: `then`, then the
/// fallback chains breadth-first.
fn chain(t: &Tables, first: &Arc<str>, then: Option<&Arc<str>>) -> Vec<Arc<str>> {
    let mut tiers: Vec<Arc<str>> = vec![first.clone()];
    if let Some(t) = then.filter(|t| *t != first) {
        tiers.push(t.clone());
    }
    let mut i = 0;
    while i < tiers.len() {
        if let Some(next) = t.fallbacks.get(&*tiers[i]) {
            for t in next {
                if !tiers.contains(t) {
                    tiers.push(t.clone());
                }
            }
        }
        i += 1;
    }
    tiers.remove(0);
    tiers
}

fn call<'a>(req: &'a ChatRequest, m: &'a Deployment) -> Call<'a> {
    Call {
        request: req,
        model: &m.upstream,
        max_output_tokens: m.max_output_tokens,
        stream_usage: m.stream_usage,
    }
}

impl Outcome {
    fn start(&mut self, tier: &Arc<str>, m: &Arc<Deployment>) {
        self.attempts += 1;
        self.served = Some(Candidate {
            tier: tier.clone(),
            model: m.clone(),
        });
    }

    fn failed(&mut self, tier: &Arc<str>, m: &Deployment, e: &ProviderError) {
        self.failures.push(Failure {
            tier: tier.clone(),
            model: m.name.clone(),
            kind: e.kind,
        });
    }
}

/// A non-streaming answer for a routed request: through the cascade when the routing decision
/// made it cascadable, else a plain walk of the plan. Streams are never cascaded.
pub async fn answer(
    t: &Tables,
    cascade: Option<&cascade::Cascade>,
    decision: &Decision,
    req: &ChatRequest,
    plan: &Plan,
    progress: &Progress,
) -> (Result<ChatResponse, ProviderError>, Outcome) {
    match (cascade, &decision.cascade_to) {
        (Some(c), Some(_)) => c.chat(t, req, plan.fallback, progress).await,
        _ => chat(t, req, plan, progress).await,
    }
}

/// `progress` learns where the time goes as it goes (see [`Progress`]).
pub async fn chat(
    t: &Tables,
    req: &ChatRequest,
    plan: &Plan,
    progress: &Progress,
) -> (Result<ChatResponse, ProviderError>, Outcome) {
    walk(t, req, plan, progress, |m| async move {
        let r = m.provider.chat(&call(req, &m)).await;
        if let (Ok(resp), Some(_)) = (&r, m.tpm) {
            // The prompt was counted when the call went out; the answer's tokens count now.
            let output = resp.usage.map_or(0, |u| u.completion_tokens);
            t.state.store.add_usage(&m.name, 0, output).await;
        }
        r
    })
    .await
}

/// Like [`chat`], but a deployment counts as answering only once its first chunk arrived: a
/// failure before the first byte is retried or falls back exactly as a failed non-streaming call.
pub async fn chat_stream(
    t: &Tables,
    req: &ChatRequest,
    plan: &Plan,
    progress: &Progress,
) -> (Result<(Value, Rest), ProviderError>, Outcome) {
    let (result, outcome) = first_chunk(t, req, plan, progress).await;
    let result = match (result, &outcome.served) {
        (Ok((first, rest)), Some(c)) => Ok((
            first,
            stream::watch(rest, c.model.clone(), t.state.clone(), t.policies.clone()),
        )),
        (Ok(_), None) => Err(ProviderError::new(
            ErrorKind::InvalidResponse,
            "a stream was answered by no deployment",
        )),
        (Err(e), _) => Err(e),
    };
    (result, outcome)
}

/// Walks the plan until a deployment sends a stream's first chunk.
async fn first_chunk(
    t: &Tables,
    req: &ChatRequest,
    plan: &Plan,
    progress: &Progress,
) -> (Result<(Value, ChunkStream), ProviderError>, Outcome) {
    walk(t, req, plan, progress, |m| async move {
        let first = async {
            let mut stream = m.provider.chat_stream(&call(req, &m)).await?;
            match stream.next().await {
                Some(Ok(first)) => Ok((first, stream)),
                Some(Err(e)) => Err(e),
                None => Err(ProviderError::cut_off(
                    "the provider ended the stream without sending anything",
                )),
            }
        };
        // Until the first chunk nothing was sent to the client, so a slow start is still a
        // failure that may be retried elsewhere.
        tokio::time::timeout(m.timeout, first)
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::new(
                    ErrorKind::Timeout,
                    "the provider sent no chunk in time",
                ))
            })
    })
    .await
}

fn log_cooldown(deployment: &str, c: &Cooled) {
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

/// Walks the plan: deployments of the tier as the strategy and breakers allow, retries as each
/// class's policy allows, then the next tier, until an answer, a failure that may not go further,
/// or the end of the attempt budget.
async fn walk<T, F, Fut>(
    t: &Tables,
    req: &ChatRequest,
    plan: &Plan,
    progress: &Progress,
    mut attempt: F,
) -> (Result<T, ProviderError>, Outcome)
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let pol = &t.policies;
    let ds = &t.state;
    let est = Estimate::new(req);
    let mut out = Outcome::default();
    let next_tiers = if plan.fallback {
        chain(t, &plan.tier, plan.then.as_ref())
    } else {
        Vec::new()
    };
    let mut tier = plan.tier.clone();
    let mut hops = 0u32;
    loop {
        out.walked.push(tier.clone());
        let pool: Vec<Arc<Deployment>> = match &plan.pinned {
            Some(m) => vec![m.clone()],
            None => t.tiers.get(&tier).cloned().unwrap_or_default(),
        };
        let fitting: Vec<Arc<Deployment>> = pool.iter().filter(|m| est.fits(m)).cloned().collect();
        let can_hop = |hops: u32, visited: &[Arc<str>]| {
            plan.fallback
                && hops < pol.max_fallbacks
                && next_tiers.iter().any(|t| !visited.contains(t))
        };

        let mut tried: Vec<Tried> = Vec::new();
        let mut retries = 0u32;
        let mut waited = false;
        let mut err: Option<ProviderError> = None;
        let mut unavailable: Option<Unavailable> = None;
        while !fitting.is_empty() && out.attempts < plan.budget {
            let (m, probe, repeat) = match pick::pick(t, &tier, &fitting, &tried, &est).await {
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
                        Some(wait) if retry_left && !waited && !can_hop(hops, &out.walked) => {
                            waited = true;
                            progress.wait(wait).await;
                            continue;
                        }
                        _ => {}
                    }
                    if err.is_none() {
                        let pinned = plan.pinned.as_ref().map(|m| &*m.name);
                        err = Some(none.error(&tier, pinned));
                    }
                    unavailable = Some(none);
                    break;
                }
            };
            if let Some(e) = &err {
                out.retries.push((m.name.clone(), e.kind));
                if repeat {
                    // Going back to a deployment that failed: give it a moment first.
                    let mut wait = pol.backoff(retries);
                    if let Some(ra) = e.retry_after.filter(|ra| *ra <= pol.max_retry_wait) {
                        wait = wait.max(ra);
                    }
                    progress.wait(wait).await;
                }
            }
            out.start(&tier, &m);
            let load = ds.loads.get(&m.name);
            let in_flight = load.enter();
            let t = Instant::now();
            let to = Candidate {
                tier: tier.clone(),
                model: m.clone(),
            };
            let r = progress.call(&to, attempt(m.clone())).await;
            let took = t.elapsed();
            drop(in_flight);
            match r {
                Ok(v) => {
                    load.observe(took);
                    ds.store
                        .report(&m.name, CallResult::Success, probe, &pol.breaker)
                        .await;
                    return (Ok(v), out);
                }
                Err(e) => {
                    let p = pol.for_kind(e.kind);
                    out.failed(&tier, &m, &e);
                    let result = CallResult::Failure {
                        class: e.kind.class(),
                        mode: p.cooldown,
                        retry_after: e.retry_after,
                    };
                    if let Some(c) = ds.store.report(&m.name, result, probe, &pol.breaker).await {
                        log_cooldown(&m.name, &c);
                        out.cooldowns.push((m.name.clone(), c.class.label()));
                    }
                    tried.push(Tried {
                        name: m.name.clone(),
                        kind: e.kind,
                    });
                    let retry = p.retries > retries;
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
            None if fitting.is_empty() => too_long(&tier, &pool, &est),
            None => budget_spent(plan.budget),
        };
        if out.attempts >= plan.budget || !plan.fallback || hops >= pol.max_fallbacks {
            return (Err(err), out);
        }
        // Only an error that is the tier's unavailability (nothing was called) moves on for it.
        let none = unavailable.filter(|_| err.code.as_deref() == Some(UNAVAILABLE_CODE));
        let may_fall_back = match &none {
            Some(n) => n.may_fall_back(t),
            None => pol.for_kind(err.kind).fallback,
        };
        let next = if err.kind == ErrorKind::ContextWindow {
            // A prompt too long for this tier needs a bigger window, not the ordinary chain.
            t.context_fallbacks
                .get(&*tier)
                .and_then(|c| c.iter().find(|t| !out.walked.contains(t)).cloned())
        } else {
            next_tiers.iter().find(|t| !out.walked.contains(t)).cloned()
        };
        let Some(next) = next.filter(|_| may_fall_back) else {
            return (Err(err), out);
        };
        let reason = match &none {
            Some(n) => n.hop_reason(),
            None => HopReason::Failure(err.kind.class()),
        };
        out.hops.push(Hop {
            from: tier.clone(),
            to: next.clone(),
            reason,
        });
        hops += 1;
        tier = next;
    }
}

fn too_long(tier: &str, pool: &[Arc<Deployment>], est: &Estimate<'_>) -> ProviderError {
    let largest = pool.iter().filter_map(|m| m.context_window).max();
    let mut e = ProviderError::new(
        ErrorKind::ContextWindow,
        format!(
            "the prompt (about {} tokens) does not fit the context window of any deployment of tier `{tier}` (largest: {} tokens)",
            est.prompt_tokens(),
            largest.map_or_else(|| "unknown".into(), |l| l.to_string())
        ),
    );
    e.code = Some("context_length_exceeded".into());
    e.param = Some("messages".into());
    e
}

fn budget_spent(budget: u32) -> ProviderError {
    ProviderError::new(
        ErrorKind::Server,
        format!("the request used its whole attempt budget ({budget} calls) without an answer"),
    )
}

/// `cascade:budget->mid` when the cascade escalated, else the decision's own label.
pub fn route_label(d: &Decision, outcome: Option<&Outcome>) -> String {
    match outcome.and_then(|o| o.cascade.as_ref()) {
        Some(c) if c.outcome == cascade::StepOutcome::Escalated => {
            format!("cascade:{}->{}", c.from, c.to)
        }
        _ => d.to_string(),
    }
}
