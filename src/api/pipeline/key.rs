//! The pipeline's part for a virtual key: its rate limits at admission, its tier and model
//! restrictions applied to the routing decision (and handed to dispatch as plain
//! [`Allowed`](crate::dispatch::Allowed) names), the worst-case reservation against its budget
//! once the plan is known (and against its team's, see [`super::team`]), and the
//! `x-ratelimit-*` / `x-switchyard-key-*` headers.

use super::super::error::ApiError;
use super::budget::Owner;
use crate::cost::budget::{self, Hold};
use crate::dispatch::{self, Allowed, Plan};
use crate::gateway::Gateway;
use crate::keys::{Budget, Team, VirtualKey};
use crate::openai::ChatRequest;
use crate::routing::{Decision, Layer};
use crate::state::ledger::{Ledger, Limits, Minute, Refused, Reservation};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Duration;

const SKIPPED: HeaderName = HeaderName::from_static("x-switchyard-skipped-tiers");
const SPEND: HeaderName = HeaderName::from_static("x-switchyard-key-spend-usd");
const BUDGET: HeaderName = HeaderName::from_static("x-switchyard-key-budget-usd");

/// The admitted key and what admission learned, for the headers.
pub struct KeyCtx {
    pub key: Arc<VirtualKey>,
    /// The key's team, when the team has a budget of its own.
    team: Option<Arc<Team>>,
    ledger: Arc<Ledger>,
    minute: Option<Minute>,
    /// Tiers the routing decision or its cascade would have used but the key does not allow.
    pub skipped: Vec<Arc<str>>,
    refusals: prometheus::IntCounterVec,
}

fn limited(message: String, code: &str, retry_after: Duration) -> ApiError {
    let mut e =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message).with_code(code);
    e.retry_after = Some(retry_after.max(Duration::from_secs(1)));
    e
}

impl KeyCtx {
    pub fn new(
        key: Arc<VirtualKey>,
        team: Option<Arc<Team>>,
        ledger: Arc<Ledger>,
        refusals: prometheus::IntCounterVec,
    ) -> KeyCtx {
        KeyCtx {
            key,
            team,
            ledger,
            minute: None,
            skipped: Vec::new(),
            refusals,
        }
    }

    /// Counts a refusal under the key's team (never the key).
    fn refused(&self, reason: &str) {
        let team = self.key.team.as_deref().unwrap_or("none");
        self.refusals.with_label_values(&[team, reason]).inc();
    }

    /// Counts the request against the key's rpm, tpm and parallel limits; a request over one is
    /// a 429 with `Retry-After`. `prompt_tokens` is asked only when the key has a tpm limit.
    pub async fn admit(&mut self, prompt_tokens: impl FnOnce() -> u64) -> Result<Hold, ApiError> {
        let k = &self.key;
        if k.rpm.is_none() && k.tpm.is_none() && k.max_parallel.is_none() {
            return Ok(Hold::default());
        }
        let limits = Limits {
            rpm: k.rpm,
            tpm: k.tpm,
            max_parallel: k.max_parallel,
        };
        let tokens = if k.tpm.is_some() { prompt_tokens() } else { 0 };
        let entered = self.ledger.enter(&k.id, limits, tokens).await;
        match &entered {
            Err(Refused::Parallel) => self.refused("parallel_limit"),
            Err(_) => self.refused("rate_limit"),
            Ok(_) => {}
        }
        let k = &self.key;
        match entered {
            Ok((slot, minute)) => {
                self.minute = Some(minute);
                Ok(Hold {
                    slot: Some(slot),
                    ..Hold::default()
                })
            }
            Err(Refused::Requests { retry_after }) => Err(limited(
                format!(
                    "Key {} is over its limit of {} requests per minute.",
                    k.name,
                    k.rpm.unwrap_or(0)
                ),
                "rate_limit_exceeded",
                retry_after,
            )),
            Err(Refused::Tokens { retry_after }) => Err(limited(
                format!(
                    "Key {} is over its limit of {} tokens per minute.",
                    k.name,
                    k.tpm.unwrap_or(0)
                ),
                "rate_limit_exceeded",
                retry_after,
            )),
            Err(Refused::Parallel) => Err(limited(
                format!(
                    "Key {} already has {} requests in flight, its max_parallel.",
                    k.name,
                    k.max_parallel.unwrap_or(0)
                ),
                "parallel_limit_exceeded",
                Duration::from_secs(1),
            )),
        }
    }

    /// Keeps the decision within the key's tiers and models. A model or tier the client named
    /// that the key may not use is a 403; a tier routing chose is lowered to the priciest allowed
    /// tier no pricier than it (else the cheapest allowed), and a cascade escalating outside the
    /// key's tiers is not taken. Returns the restriction for dispatch.
    pub fn restrict(
        &mut self,
        gw: &Gateway,
        d: &mut Decision,
    ) -> Result<Option<Arc<Allowed>>, ApiError> {
        let k = self.key.clone();
        if k.tiers.is_empty() && k.models.is_empty() {
            return Ok(None);
        }
        let allowed = Arc::new(Allowed {
            tiers: k.tiers.iter().map(|t| Arc::from(t.as_str())).collect(),
            models: k.models.iter().map(|m| Arc::from(m.as_str())).collect(),
        });
        let forbidden = |what: &str, name: &str| {
            self.refused("not_allowed");
            let mut e = ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("Key {} may not use the {what} `{name}`.", k.name),
            )
            .with_code(&format!("{what}_not_allowed"));
            e.body.error.param = Some("model".into());
            e
        };
        if let Some(m) = &d.model {
            let in_allowed_tier = k.tiers.is_empty()
                || gw
                    .tables
                    .tiers
                    .iter()
                    .any(|(t, ms)| allowed.tier(t) && ms.iter().any(|x| x.name == *m));
            if !allowed.model(m) || !in_allowed_tier {
                return Err(forbidden("model", m));
            }
            return Ok(Some(allowed));
        }
        if !allowed.tier(&d.tier) {
            if d.layer == Layer::Tier {
                return Err(forbidden("tier", &d.tier));
            }
            let Some(to) = lower_tier(gw, &allowed, &d.tier) else {
                return Err(forbidden("tier", &d.tier));
            };
            self.skipped.push(d.tier.clone());
            d.tier = to;
        }
        if let Some(c) = &d.cascade {
            if !allowed.tier(&c.from) || !allowed.tier(&c.to) || c.from != d.tier {
                if !allowed.tier(&c.to) {
                    self.skipped.push(c.to.clone());
                }
                d.cascade = None;
            }
        }
        Ok(Some(allowed))
    }

    /// Reserves the request's worst case against the key's budget and its team's: refused with
    /// `budget_exceeded` when either period's spend and open reservations leave no room. A
    /// request only free deployments can answer reserves nothing and is never refused.
    pub async fn reserve(
        &self,
        gw: &Gateway,
        req: &ChatRequest,
        d: &Decision,
        plan: &Plan,
    ) -> Result<Hold, ApiError> {
        let answers = if d.cascade.is_some() { 3 } else { 1 };
        self.reserve_worst(gw, d, plan, |reach| budget::worst_case(req, reach, answers))
            .await
    }

    /// [`KeyCtx::reserve`] for any wire format: `worst` prices the request's worst case on the
    /// deployments the plan can reach. Reserved against the key's budget and its team's.
    pub async fn reserve_worst(
        &self,
        gw: &Gateway,
        d: &Decision,
        plan: &Plan,
        worst: impl FnOnce(&[Arc<crate::dispatch::Deployment>]) -> f64,
    ) -> Result<Hold, ApiError> {
        if self.key.budget.is_none() && self.team.is_none() {
            return Ok(Hold::default());
        }
        let reach = dispatch::reach(&gw.tables, plan, d.cascade.as_ref().map(|c| &c.to));
        let worst = worst(&reach);
        let mut hold = Hold::default();
        if let Some(b) = self.key.budget {
            hold.reservation = Some(self.reserve_key(b, worst).await?);
        }
        if let Some(t) = &self.team {
            match super::team::reserve(&self.ledger, t, worst).await {
                Ok(r) => hold.team = Some(r),
                Err((reason, e)) => {
                    self.refused(reason);
                    // Never sent: the key's hold is let go, not spent.
                    if let Some(r) = hold.reservation.take() {
                        r.settle(0.0);
                    }
                    return Err(e);
                }
            }
        }
        Ok(hold)
    }

    async fn reserve_key(&self, b: Budget, worst: f64) -> Result<Reservation, ApiError> {
        let owner = Owner {
            kind: "Key",
            name: &self.key.name,
            ledger_id: &self.key.id,
        };
        super::budget::reserve(&self.ledger, owner, b, worst)
            .await
            .map_err(|r| {
                self.refused(if r.unavailable {
                    "state_unavailable"
                } else {
                    "budget"
                });
                r.error
            })
    }

    /// OpenAI's `x-ratelimit-*` headers for the key's limits, its period's spend and budget, and
    /// the tiers its restrictions skipped.
    pub fn headers(&self, skipped: &[Arc<str>], h: &mut HeaderMap) {
        let k = &self.key;
        let mut set = |name: HeaderName, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        };
        let mut all: Vec<&str> = self.skipped.iter().map(|t| &**t).collect();
        for t in skipped {
            if !all.contains(&&**t) {
                all.push(t);
            }
        }
        if !all.is_empty() {
            set(SKIPPED, all.join(","));
        }
        if let Some(m) = self.minute {
            let reset = reset_text(m.resets_in);
            if let Some(rpm) = k.rpm {
                set(
                    HeaderName::from_static("x-ratelimit-limit-requests"),
                    rpm.to_string(),
                );
                set(
                    HeaderName::from_static("x-ratelimit-remaining-requests"),
                    rpm.saturating_sub(m.requests).to_string(),
                );
                set(
                    HeaderName::from_static("x-ratelimit-reset-requests"),
                    reset.clone(),
                );
            }
            if let Some(tpm) = k.tpm {
                set(
                    HeaderName::from_static("x-ratelimit-limit-tokens"),
                    tpm.to_string(),
                );
                set(
                    HeaderName::from_static("x-ratelimit-remaining-tokens"),
                    tpm.saturating_sub(m.tokens).to_string(),
                );
                set(HeaderName::from_static("x-ratelimit-reset-tokens"), reset);
            }
        }
        if let Some(b) = k.budget {
            let (start, _) = b.period.window(crate::keys::now_ms());
            set(
                SPEND,
                crate::cost::format_usd(self.ledger.spent(&k.id, start)),
            );
            set(BUDGET, format!("{}", b.usd));
        }
        if let Some(t) = &self.team {
            super::team::headers(&self.ledger, t, h);
        }
    }
}

/// OpenAI's reset format: `20ms`, `12s`, `1m0s`.
fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let s = ms.div_ceil(1000);
        if s < 60 {
            format!("{s}s")
        } else {
            format!("{}m{}s", s / 60, s % 60)
        }
    }
}

/// What a tier costs at most per token pair, to order tiers by price.
fn tier_price(gw: &Gateway, tier: &str) -> f64 {
    gw.tables
        .tiers
        .get(tier)
        .into_iter()
        .flatten()
        .map(|m| m.price.input + m.price.output)
        .fold(0.0, f64::max)
}

/// The priciest allowed tier that is no pricier than `tier`, else the cheapest allowed one.
fn lower_tier(gw: &Gateway, allowed: &Allowed, tier: &str) -> Option<Arc<str>> {
    let ceiling = tier_price(gw, tier);
    let mut tiers: Vec<(f64, &Arc<str>)> = gw
        .tables
        .tiers
        .keys()
        .filter(|t| allowed.tier(t))
        .map(|t| (tier_price(gw, t), t))
        .collect();
    tiers.sort_by(|a, b| a.0.total_cmp(&b.0));
    tiers
        .iter()
        .rev()
        .find(|(p, _)| *p <= ceiling)
        .or_else(|| tiers.first())
        .map(|(_, t)| (*t).clone())
}
