//! Choosing the deployment for the next attempt within a tier, and saying why there is none.
//!
//! Untried deployments come first, in the order the tier's strategy ranks them; a deployment
//! already tried comes after them, so a retry goes back to it only when no untried one is
//! admitted (and only for failures another call to it may not repeat: a rejected key or an
//! unknown model is retried elsewhere or not at all). "Admitted" means the circuit breaker lets
//! the call through and the deployment has rpm/tpm headroom left this minute. When nothing is
//! admitted, [`Unavailable`] says of each deployment why it is out and until when, for the error
//! the client gets.

use super::balance;
use super::fit::Estimate;
use super::{Deployment, Tables};
use crate::providers::ErrorClass;
use crate::providers::{ErrorKind, ProviderError};
use crate::state::{Admission, StateStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The result of looking for a deployment to call.
pub(super) enum Pick {
    /// `probe`: admitted as the single probe after a cooldown. `repeat`: it was tried already in
    /// this tier, so the call waits a backoff first.
    Chosen {
        model: Arc<Deployment>,
        probe: bool,
        repeat: bool,
    },
    None(Unavailable),
}

/// Every deployment of a tier (or the one pinned model) that could not take the request, and why.
pub struct Unavailable {
    pub out: Vec<(Arc<str>, Why)>,
}

/// Why one deployment is out of rotation right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    /// Its `rpm` limit is used up until the minute ends.
    Rpm { limit: u64, resets_in: Duration },
    /// Its `tpm` limit cannot take this prompt until the minute ends.
    Tpm {
        limit: u64,
        used: u64,
        needed: u64,
        resets_in: Duration,
    },
    /// Its circuit breaker is open after failures of `class`.
    Cooling {
        class: Option<ErrorClass>,
        remaining: Duration,
    },
    /// Its cooldown is over and another request is out as the probe.
    Probing {
        class: Option<ErrorClass>,
        within: Duration,
    },
}

impl Why {
    /// When it may take a request again.
    fn frees_in(&self) -> Duration {
        match *self {
            Why::Rpm { resets_in, .. } | Why::Tpm { resets_in, .. } => resets_in,
            Why::Cooling { remaining, .. } => remaining,
            Why::Probing { within, .. } => within,
        }
    }

    fn describe(&self) -> String {
        match *self {
            Why::Rpm { limit, resets_in } => format!(
                "has reached its rpm limit ({limit}/min) until the minute ends at {}",
                until(resets_in)
            ),
            Why::Tpm {
                limit,
                used,
                needed,
                resets_in,
            } => format!(
                "has reached its tpm limit ({used} of {limit} tokens used this minute, the prompt needs about {needed}) until the minute ends at {}",
                until(resets_in)
            ),
            Why::Cooling { class, remaining } => format!(
                "is cooling down after {} failures until {}",
                class.map_or("earlier", ErrorClass::label),
                until(remaining)
            ),
            Why::Probing { class, within } => format!(
                "finished its cooldown (after {} failures) and one probe request is testing it; the probe decides by {}",
                class.map_or("earlier", ErrorClass::label),
                until(within)
            ),
        }
    }

    fn is_limit(&self) -> bool {
        matches!(self, Why::Rpm { .. } | Why::Tpm { .. })
    }
}

/// `2026-11-22T04:53:16Z (in 12.3s)`, rounded up to the second.
fn until(d: Duration) -> String {
    let at = humantime::format_rfc3339_seconds(SystemTime::now() + d + Duration::from_millis(999));
    format!("{at} (in {:.1}s)", d.as_secs_f64())
}

/// Marks the synthesized "nothing could take it" error, so the fallback it causes is counted
/// with reason `cooldown` or `usage_limit` instead of an error class.
pub const UNAVAILABLE_CODE: &str = "no_deployment_available";

impl Unavailable {
    /// The soonest any of them may take a request again.
    pub fn soonest(&self) -> Option<Duration> {
        self.out.iter().map(|(_, w)| w.frees_in()).min()
    }

    /// A fallback is allowed unless every deployment is out by a failure whose policy forbids one
    /// (a rejected key must not turn into premium traffic because its breaker is open).
    pub fn may_fall_back(&self, t: &Tables) -> bool {
        self.out.iter().any(|(_, w)| {
            let class = match *w {
                Why::Cooling { class, .. } | Why::Probing { class, .. } => class,
                Why::Rpm { .. } | Why::Tpm { .. } => None,
            };
            class.is_none_or(|c| t.policies.for_class(c).fallback)
        })
    }

    /// The `switchyard_fallbacks_total` reason for a move this caused: `usage_limit` when only
    /// rpm/tpm limits stood in the way, else `cooldown`.
    pub fn hop_reason(&self) -> super::HopReason {
        if !self.out.is_empty() && self.out.iter().all(|(_, w)| w.is_limit()) {
            super::HopReason::UsageLimit
        } else {
            super::HopReason::Cooldown
        }
    }

    /// The client's error: `503` with the soonest `Retry-After`, naming each deployment that is
    /// out and why. `pinned` names the model the client asked for instead of its tier.
    pub fn error(&self, tier: &str, pinned: Option<&str>) -> ProviderError {
        let reasons: Vec<String> = self
            .out
            .iter()
            .map(|(name, why)| match pinned {
                Some(_) => format!("it {}", why.describe()),
                None => format!("{name} {}", why.describe()),
            })
            .collect();
        let subject = match pinned {
            Some(m) => format!("model `{m}` cannot take the request now"),
            None => format!("no deployment of tier `{tier}` can take the request now"),
        };
        let mut e = ProviderError::new(
            ErrorKind::Server,
            format!("{subject}: {}. Try again later.", reasons.join("; ")),
        );
        e.status = Some(503);
        e.code = Some(UNAVAILABLE_CODE.into());
        e.retry_after = self.soonest();
        e
    }
}

/// One deployment of the tier and the failure it had in this request, if it was tried.
pub(super) struct Tried {
    pub name: Arc<str>,
    pub kind: ErrorKind,
}

/// Finds the deployment for the next attempt: untried ones in the strategy's order, then tried
/// ones, oldest try first, unless their failure is one a second call would repeat (a rejected
/// key, an unknown model).
pub(super) async fn pick(
    t: &Tables,
    tier: &str,
    pool: &[Arc<Deployment>],
    tried: &[Tried],
    est: &Estimate<'_>,
) -> Pick {
    let ds = &t.state;
    let strategy = t.strategies.get(tier).copied().unwrap_or_default();
    let was_tried = |m: &Deployment| tried.iter().any(|t| t.name == m.name);
    let untried: Vec<Arc<Deployment>> = pool.iter().filter(|m| !was_tried(m)).cloned().collect();
    let mut headroom = std::collections::HashMap::new();
    if strategy == crate::config::Strategy::Usage {
        for m in &untried {
            let h = usage_headroom(&ds.store, m).await;
            headroom.insert(m.name.clone(), h);
        }
    }
    let mut order: Vec<(Arc<Deployment>, bool)> =
        balance::rank(strategy, &untried, &ds.loads, |m| {
            headroom.get(&m.name).copied().unwrap_or(1.0)
        })
        .into_iter()
        .map(|m| (m, false))
        .collect();
    let mut out = Unavailable { out: Vec::new() };
    // The last failure of each tried deployment decides whether it may be called again; the
    // deployment whose last try is the oldest goes first, as it has had the most time.
    let mut again: Vec<Arc<Deployment>> = Vec::new();
    let mut seen: Vec<&Arc<str>> = Vec::new();
    for t in tried.iter().rev() {
        if seen.contains(&&t.name) {
            continue;
        }
        seen.push(&t.name);
        let Some(m) = pool.iter().find(|m| m.name == t.name) else {
            continue;
        };
        if !t.kind.class().retries_elsewhere_only() {
            again.push(m.clone());
        }
    }
    order.extend(again.into_iter().rev().map(|m| (m, true)));
    for (m, repeat) in order {
        if let Some(why) = over_limit(&ds.store, &m, est).await {
            out.out.push((m.name.clone(), why));
            continue;
        }
        match ds.store.admit(&m.name, &t.policies.breaker).await {
            Admission::No(remaining, class) => {
                out.out
                    .push((m.name.clone(), Why::Cooling { class, remaining }));
            }
            Admission::Probing(within, class) => {
                out.out
                    .push((m.name.clone(), Why::Probing { class, within }));
            }
            a => {
                if m.rpm.is_some() || m.tpm.is_some() {
                    let tokens = if m.tpm.is_some() {
                        est.prompt_tokens()
                    } else {
                        0
                    };
                    ds.store.add_usage(&m.name, 1, tokens).await;
                }
                return Pick::Chosen {
                    model: m,
                    probe: a == Admission::Probe,
                    repeat,
                };
            }
        }
    }
    // The order the tier lists its deployments reads best in an error message.
    out.out
        .sort_by_key(|(name, _)| pool.iter().position(|m| m.name == *name));
    Pick::None(out)
}

/// Whether the deployment's rpm/tpm limits leave room for this request this minute.
async fn over_limit(store: &StateStore, m: &Deployment, est: &Estimate<'_>) -> Option<Why> {
    if m.rpm.is_none() && m.tpm.is_none() {
        return None;
    }
    let u = store.usage(&m.name).await;
    if let Some(limit) = m.rpm.filter(|l| u.requests >= *l) {
        return Some(Why::Rpm {
            limit,
            resets_in: u.resets_in,
        });
    }
    let limit = m.tpm?;
    let needed = est.prompt_tokens();
    // A prompt bigger than the whole tpm limit could never go; let it try once a minute starts
    // rather than never.
    (u.tokens > 0 && u.tokens + needed > limit).then_some(Why::Tpm {
        limit,
        used: u.tokens,
        needed,
        resets_in: u.resets_in,
    })
}

/// Share of the deployment's rpm/tpm limits left this minute; 1.0 for a deployment without limits.
async fn usage_headroom(store: &StateStore, m: &Deployment) -> f64 {
    if m.rpm.is_none() && m.tpm.is_none() {
        return 1.0;
    }
    let u = store.usage(&m.name).await;
    let left = |used: u64, limit: Option<u64>| {
        limit.map_or(1.0, |l| 1.0 - (used as f64 / l as f64).min(1.0))
    };
    left(u.requests, m.rpm).min(left(u.tokens, m.tpm))
}
