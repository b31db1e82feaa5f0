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
mod walk;

pub use deployment::{DEFAULT_STREAM_IDLE_TIMEOUT, Deployment};
pub use pick::{UNAVAILABLE_CODE, Unavailable, Why};
pub use progress::Progress;
pub use stream::{Broken, Rest};
pub use tables::Tables;

use crate::openai::{ChatRequest, EmbeddingRequest};
use crate::providers::{
    Call, ChatResponse, ChunkStream, EmbedCall, EmbeddingResponse, ErrorKind, ProviderError,
};
use crate::routing::Decision;
use crate::state::StateStore;
use balance::Loads;
use fit::Estimate;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;

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
    /// Tiers a fallback or escalation would have moved to but the plan does not allow.
    pub skipped: Vec<Arc<str>>,
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
        for t in more.skipped {
            if !self.skipped.contains(&t) {
                self.skipped.push(t);
            }
        }
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
    /// The tiers and models the caller's key may be served by; `None`: any. A tier outside it
    /// is skipped by fallbacks and escalations alike (and named in [`Outcome::skipped`]).
    pub allowed: Option<Arc<Allowed>>,
}

/// A restriction on where a request may be served, as plain names: dispatch does not know
/// where it comes from (a virtual key's settings). An empty list allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    pub tiers: Vec<Arc<str>>,
    pub models: Vec<Arc<str>>,
}

impl Allowed {
    pub fn tier(&self, tier: &str) -> bool {
        self.tiers.is_empty() || self.tiers.iter().any(|t| &**t == tier)
    }

    pub fn model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| &**m == model)
    }
}

impl Plan {
    pub fn tier(t: &Tables, tier: Arc<str>, fallback: bool) -> Plan {
        Plan {
            tier,
            then: None,
            fallback,
            pinned: None,
            budget: t.policies.max_attempts,
            allowed: None,
        }
    }

    pub fn allows_tier(&self, tier: &str) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.tier(tier))
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.model(model))
    }
}

/// Every deployment a walk of `plan` could call (its tier, `then`, the fallback chains, the
/// context-window chains, and `escalate_to`, a cascade's tier), within what it allows: what a
/// worst-case cost is taken over.
pub fn reach(t: &Tables, plan: &Plan, escalate_to: Option<&Arc<str>>) -> Vec<Arc<Deployment>> {
    if let Some(m) = &plan.pinned {
        return vec![m.clone()];
    }
    let mut tiers = vec![plan.tier.clone()];
    if let Some(e) = escalate_to {
        tiers.push(e.clone());
    }
    if plan.fallback {
        for first in tiers.clone() {
            tiers.extend(chain(t, &first, plan.then.as_ref()));
        }
        let mut i = 0;
        while i < tiers.len() {
            if let Some(c) = t.context_fallbacks.get(&*tiers[i]) {
                for x in c {
                    if !tiers.contains(x) {
                        tiers.push(x.clone());
                    }
                }
            }
            i += 1;
        }
    } else if let Some(then) = &plan.then {
        tiers.push(then.clone());
    }
    let mut out: Vec<Arc<Deployment>> = Vec::new();
    for tier in tiers.iter().filter(|x| plan.allows_tier(x)) {
        for m in t.tiers.get(tier).into_iter().flatten() {
            if plan.allows_model(&m.name) && !out.iter().any(|o| o.name == m.name) {
                out.push(m.clone());
            }
        }
    }
    out
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
        p.then = decision.cascade.as_ref().map(|c| c.to.clone());
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
    match (cascade, &decision.cascade) {
        (Some(c), Some(_)) => c.chat(t, decision, req, plan, progress).await,
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
    walk::walk(t, Estimate::new(req), plan, progress, |m| async move {
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

/// Vectors for an embeddings request: the same walk as [`chat`] (balancing, retries, breakers,
/// fallbacks within the plan), each attempt one embeddings call. The input's tokens count against
/// a deployment's tpm when the call goes out; an embedding has no output tokens to add after.
pub async fn embed(
    t: &Tables,
    req: &EmbeddingRequest,
    plan: &Plan,
    progress: &Progress,
) -> (Result<EmbeddingResponse, ProviderError>, Outcome) {
    walk::walk(
        t,
        Estimate::embedding(req),
        plan,
        progress,
        |m| async move {
            let call = EmbedCall {
                request: req,
                model: &m.upstream,
            };
            m.provider.embed(&call).await
        },
    )
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
    walk::walk(t, Estimate::new(req), plan, progress, |m| async move {
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

/// `cascade:budget->mid` when the cascade escalated, else the decision's own label.
pub fn route_label(d: &Decision, outcome: Option<&Outcome>) -> String {
    match outcome.and_then(|o| o.cascade.as_ref()) {
        Some(c) if c.outcome == cascade::StepOutcome::Escalated => {
            format!("cascade:{}->{}", c.tiers.from, c.tiers.to)
        }
        _ => d.to_string(),
    }
}
