//! Layer 3: cascade. Answer on the cheap tier, judge the answer, and escalate once to the next tier
//! when it falls short. Escalation is capped: when more than `max_escalation_rate` of the recent
//! cascaded requests escalated, the cheap answers are kept (and a metric and log line say so),
//! because a cascade that always escalates costs more than routing to the premium tier directly.
//!
//! With `agree`, a second cheap model answers the same request in parallel; when the two answers
//! settle on different things, the cascade escalates. Both calls are billed either way.

use super::{Deployment, Tables};
use super::{Discarded, Outcome, Plan, Progress, chat as dispatch_chat, judge, verdict};
use crate::answers::Compare;
use crate::config::{AgreementCompare, CascadeConfig, EscalateOn};
use crate::openai::ChatRequest;
use crate::providers::{ChatResponse, ProviderError};
use crate::routing::{CascadeTiers, Decision};
use crate::state::window::SlidingRate;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Cascade {
    pub tiers: CascadeTiers,
    escalate_on: Vec<EscalateOn>,
    min_mean_logprob: Option<f64>,
    judge: Option<(Arc<Deployment>, f64)>,
    /// Who gives the second opinion for `agree`, and how it is compared with the cheap answer.
    agreement: Option<Agreement>,
    max_rate: f64,
    min_requests: u64,
    /// Shared with the next config's cascade on reload, so a reload does not reset the cap.
    window: Arc<Mutex<SlidingRate>>,
    capped: AtomicBool,
    window_len: std::time::Duration,
}

struct Agreement {
    /// The configured second model: always, or when the learned layer has no second choice.
    model: Option<Arc<Deployment>>,
    /// Ask the tier the learned layer ranks best after the cheap one, when it ran.
    learned: bool,
    compare: Compare,
}

/// What the cascade did with one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub tiers: CascadeTiers,
    pub outcome: StepOutcome,
    /// What made the cheap answer fall short, when it did.
    pub reason: Option<EscalateOn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The cheap answer was returned.
    Accepted,
    /// The request went on to the bigger tier.
    Escalated,
    /// It should have escalated, but the escalation-rate cap held it back.
    Capped,
}

impl StepOutcome {
    /// The label in `x-switchyard-cascade` and `switchyard_cascade_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Accepted => "accepted",
            StepOutcome::Escalated => "escalated",
            StepOutcome::Capped => "capped",
        }
    }
}

impl Cascade {
    pub fn build(
        cfg: &CascadeConfig,
        models: &std::collections::HashMap<Arc<str>, Arc<Deployment>>,
    ) -> Result<Cascade, String> {
        let judge = match &cfg.judge {
            Some(j) => Some((
                models
                    .get(j.model.value.as_str())
                    .cloned()
                    .ok_or_else(|| format!("cascade judge: unknown model {}", j.model.value))?,
                j.min_score,
            )),
            None => None,
        };
        let agreement = match &cfg.agreement {
            Some(a) if cfg.escalate_on.contains(&EscalateOn::Agree) => Some(Agreement {
                model: match &a.model {
                    Some(m) => {
                        Some(models.get(m.value.as_str()).cloned().ok_or_else(|| {
                            format!("cascade agreement: unknown model {}", m.value)
                        })?)
                    }
                    None => None,
                },
                learned: a.learned,
                compare: compare(a.compare, a.min_similarity),
            }),
            _ => None,
        };
        Ok(Cascade {
            agreement,
            tiers: CascadeTiers::of(cfg),
            escalate_on: cfg.escalate_on.clone(),
            min_mean_logprob: cfg.min_mean_logprob,
            judge,
            max_rate: cfg.max_escalation_rate,
            min_requests: cfg.min_requests,
            window: Arc::new(Mutex::new(SlidingRate::new(cfg.window.0))),
            capped: AtomicBool::new(false),
            window_len: cfg.window.0,
        })
    }

    /// Takes over the previous cascade's escalation window when it covered the same tiers over the
    /// same time span.
    pub fn inherit(&mut self, previous: &Cascade) {
        if self.tiers == previous.tiers && self.window_len == previous.window_len {
            self.window = previous.window.clone();
        }
    }

    fn on(&self, r: EscalateOn) -> bool {
        self.escalate_on.contains(&r)
    }

    /// The window's name in shared state: one per pair of tiers, as every replica cascades.
    fn window_name(&self) -> String {
        format!("cascade:{}>{}", self.tiers.from, self.tiers.to)
    }

    /// Escalations so far in the window exceed the cap (once there is enough traffic to tell).
    /// With shared state the window is every replica's.
    async fn over_cap(&self, store: &crate::state::StateStore) -> bool {
        let (events, hits) = store
            .window_counts(&self.window_name(), self.window_len, &self.window)
            .await;
        events >= self.min_requests && events > 0 && (hits as f64 / events as f64) > self.max_rate
    }

    fn record(&self, store: &crate::state::StateStore, escalated: bool) {
        store.window_record(
            &self.window_name(),
            self.window_len,
            &self.window,
            escalated,
        );
    }

    /// The plan's restrictions hold for every call; a request whose escalation tier it does not
    /// allow is not given to the cascade (the pipeline drops the cascade from its decision).
    /// `plan.fallback` is false when the client disabled fallbacks: the escalation still happens (it is
    /// a routing decision), but neither tier falls back further.
    /// `decision` is the routing decision that made the request cascadable (its predictions
    /// choose the second opinion under `agreement.learned`).
    pub async fn chat(
        &self,
        t: &Tables,
        decision: &Decision,
        req: &ChatRequest,
        plan: &Plan,
        progress: &Progress,
    ) -> (Result<ChatResponse, ProviderError>, Outcome) {
        let fallback = plan.fallback;
        // Log-probs are requested for judging when the client did not ask for them, and removed
        // from the answer again before it is returned.
        let add_logprobs =
            self.on(EscalateOn::LowConfidence) && req.extra.get("logprobs").is_none();
        let judged_req;
        let cheap_req = if add_logprobs {
            let mut r = req.clone();
            r.extra.insert("logprobs".into(), Value::Bool(true));
            judged_req = r;
            &judged_req
        } else {
            req
        };
        let cheap = Plan {
            allowed: plan.allowed.clone(),
            ..Plan::tier(t, self.tiers.from.clone(), false)
        };
        let (result, mut out, second) = match self.second_opinion(t, decision) {
            Some((side_plan, how)) => {
                let side_progress = Progress::default();
                // The key's restrictions hold for the second opinion too.
                let plan = Plan {
                    allowed: plan.allowed.clone(),
                    ..side_plan
                };
                let ((result, out), (second, side)) = tokio::join!(
                    dispatch_chat(t, cheap_req, &cheap, progress),
                    // Its own progress: the two calls overlap, and the request's upstream time
                    // is the cheap answer's wait, not the sum of both.
                    dispatch_chat(t, req, &plan, &side_progress)
                );
                (result, out, Some((second, side, how)))
            }
            None => {
                let (result, out) = dispatch_chat(t, cheap_req, &cheap, progress).await;
                (result, out, None)
            }
        };
        let second = second.map(|(r, side, how)| (bill_second(&mut out, r, side), how));

        let reason = match &result {
            Err(e) if t.policies.for_kind(e.kind).fallback && self.on(EscalateOn::Error) => {
                Some(EscalateOn::Error)
            }
            // No bigger model fixes a bad request or a refusal by policy: return it as it is.
            Err(_) => None,
            Ok(resp) => {
                match verdict::check(req, &resp.body, &self.escalate_on, self.min_mean_logprob) {
                    Some(r) => Some(r),
                    None => match disagrees(&resp.body, second.as_ref()) {
                        Some(r) => Some(r),
                        // The judge is a provider call: its time is not the gateway's overhead.
                        None => {
                            progress
                                .on_provider(self.judge_says_escalate(req, &resp.body))
                                .await
                        }
                    },
                }
            }
        };
        let store = &t.state.store;
        let step = |outcome, reason: Option<EscalateOn>| Step {
            tiers: self.tiers.clone(),
            outcome,
            reason,
        };
        let Some(reason) = reason else {
            if result.is_ok() {
                self.record(store, false);
                out.cascade = Some(step(StepOutcome::Accepted, None));
            }
            return (result.map(|r| strip_logprobs(r, add_logprobs)), out);
        };
        // Errors escalate even over the cap: with a healthy tier left, failing the request would
        // trade reliability for cost, which the cap is not for.
        if reason != EscalateOn::Error && self.over_cap(store).await {
            self.record(store, false);
            if !self.capped.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    from = %self.tiers.from, to = %self.tiers.to, max_rate = self.max_rate,
                    "cascade escalation rate is over max_escalation_rate: keeping cheap answers until it falls"
                );
            }
            out.cascade = Some(step(StepOutcome::Capped, Some(reason)));
            return (result.map(|r| strip_logprobs(r, add_logprobs)), out);
        }
        if self.capped.swap(false, Ordering::Relaxed) {
            tracing::info!(from = %self.tiers.from, to = %self.tiers.to, "cascade escalation rate is back under the cap");
        }
        self.record(store, true);
        // The cheap answer was paid for even though the client will not see it.
        if let (Ok(cheap), Some(c)) = (&result, &out.served) {
            out.discarded.push(Discarded {
                tier: c.tier.clone(),
                model: c.model.clone(),
                usage: cheap.usage,
                text: unpriced_text(cheap),
            });
        }
        let mut premium = Plan {
            allowed: plan.allowed.clone(),
            ..Plan::tier(t, self.tiers.to.clone(), fallback)
        };
        // The escalation shares the request's attempt budget, but always gets its one call.
        premium.budget = premium.budget.saturating_sub(out.attempts).max(1);
        let (result, more) = dispatch_chat(t, req, &premium, progress).await;
        out.absorb(more);
        out.cascade = Some(step(StepOutcome::Escalated, Some(reason)));
        (result, out)
    }

    /// Where the answer the cheap one is checked against comes from, for `agree`: under
    /// `agreement.learned`, the tier the learned layer predicts best among those cheaper than
    /// `to` (other than `from`; predictions come cheapest first); else, or when the learned layer
    /// did not run or ranks no such tier, the configured `agreement.model`.
    fn second_opinion(&self, t: &Tables, decision: &Decision) -> Option<(Plan, Compare)> {
        let a = self.agreement.as_ref()?;
        let learned = a
            .learned
            .then(|| {
                decision
                    .predictions
                    .iter()
                    .take_while(|(tier, _)| *tier != self.tiers.to)
                    .filter(|(tier, _)| *tier != self.tiers.from && t.tiers.contains_key(tier))
                    // The cheaper one on a tie.
                    .reduce(|best, x| if x.1 > best.1 { x } else { best })
                    .map(|(tier, _)| Plan::tier(t, tier.clone(), false))
            })
            .flatten();
        let plan = learned.or_else(|| {
            let model = a.model.clone()?;
            Some(Plan {
                pinned: Some(model.clone()),
                ..Plan::tier(t, tier_of(t, &model, &self.tiers.from), false)
            })
        })?;
        Some((plan, a.compare))
    }

    async fn judge_says_escalate(&self, req: &ChatRequest, answer: &Value) -> Option<EscalateOn> {
        let (model, min) = self.judge.as_ref().filter(|_| self.on(EscalateOn::Judge))?;
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        match judge::score(model, req, text).await {
            Ok(score) if score < *min => Some(EscalateOn::Judge),
            Ok(_) => None,
            // A judge that fails keeps the cheap answer: its outage must not double the bill.
            Err(e) => {
                tracing::warn!("cascade judge failed, keeping the cheap answer: {e}");
                None
            }
        }
    }
}

/// `agree` fires when the second answer exists and settles on something else. A second model that
/// failed keeps the cheap answer, as a failing judge does: its outage must not double the bill.
fn disagrees(cheap: &Value, second: Option<&(Option<Value>, Compare)>) -> Option<EscalateOn> {
    match second? {
        (Some(other), how) if !verdict::agree(cheap, other, *how) => Some(EscalateOn::Agree),
        (Some(_), _) => None,
        (None, _) => {
            tracing::warn!(
                "cascade agreement: the second model gave no answer, keeping the cheap one"
            );
            None
        }
    }
}

/// Folds the second model's call into the request's outcome: its attempts and failures count, its
/// answer is paid for (never returned), and since it ran alongside the cheap call, the time spent
/// waiting on providers is the longer of the two. Returns the answer's body, if any.
fn bill_second(
    out: &mut Outcome,
    result: Result<ChatResponse, ProviderError>,
    side: Outcome,
) -> Option<Value> {
    out.attempts += side.attempts;
    out.failures.extend(side.failures);
    out.retries.extend(side.retries);
    out.cooldowns.extend(side.cooldowns);
    let resp = result.ok()?;
    if let Some(c) = side.served {
        out.discarded.push(Discarded {
            tier: c.tier,
            model: c.model,
            usage: resp.usage,
            text: unpriced_text(&resp),
        });
    }
    Some(resp.body)
}

/// The tier a model serves in (its cost is counted there), or `fallback` for a model no tier lists.
fn tier_of(t: &Tables, model: &Deployment, fallback: &Arc<str>) -> Arc<str> {
    t.tiers
        .iter()
        .find(|(_, models)| models.iter().any(|m| m.name == model.name))
        .map_or_else(|| fallback.clone(), |(t, _)| t.clone())
}

fn compare(how: AgreementCompare, min_similarity: f64) -> Compare {
    // The share in percent; validation keeps min_similarity within 0–1.
    let pct = (min_similarity.clamp(0.0, 1.0) * 100.0).round() as u8;
    match how {
        AgreementCompare::Auto => Compare::Auto(pct),
        AgreementCompare::Exact => Compare::Exact,
        AgreementCompare::Choice => Compare::Choice,
        AgreementCompare::Numeric => Compare::Numeric,
        AgreementCompare::Similar => Compare::Similar(pct),
    }
}

fn strip_logprobs(mut r: ChatResponse, added: bool) -> ChatResponse {
    if added {
        if let Some(choices) = r.body.get_mut("choices").and_then(Value::as_array_mut) {
            for c in choices {
                if let Some(o) = c.as_object_mut() {
                    o.insert("logprobs".into(), Value::Null);
                }
            }
        }
    }
    r
}

/// A discarded answer's text, kept only when the provider reported no usage: accounting then
/// counts its tokens instead.
fn unpriced_text(r: &ChatResponse) -> String {
    if r.usage.is_some() {
        return String::new();
    }
    r.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
