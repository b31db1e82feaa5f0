//! The pipeline's part for a key's team budget: the request's worst case reserved against the
//! team's period as well as the key's, refused with the same `budget_exceeded` error naming the
//! team, and the `x-switchyard-team-*` headers.

use super::super::error::ApiError;
use super::budget::Owner;
use crate::keys::Team;
use crate::state::ledger::{Ledger, Reservation};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

const SPEND: HeaderName = HeaderName::from_static("x-switchyard-team-spend-usd");
const BUDGET: HeaderName = HeaderName::from_static("x-switchyard-team-budget-usd");

/// Reserves `worst` dollars of the team's period; a refusal comes with the reason it is counted
/// under in `switchyard_key_refusals_total`.
pub async fn reserve(
    ledger: &Arc<Ledger>,
    team: &Team,
    worst: f64,
) -> Result<Reservation, (&'static str, ApiError)> {
    let id = team.ledger_id();
    let owner = Owner {
        kind: "Team",
        name: &team.name,
        ledger_id: &id,
    };
    super::budget::reserve(ledger, owner, team.budget, worst)
        .await
        .map_err(|r| {
            let reason = if r.unavailable {
                "state_unavailable"
            } else {
                "team_budget"
            };
            (reason, r.error)
        })
}

/// The team's spend this period and its budget.
pub fn headers(ledger: &Ledger, team: &Team, h: &mut HeaderMap) {
    let (start, _) = team.budget.period.window(crate::keys::now_ms());
    let spent = crate::cost::format_usd(ledger.spent(&team.ledger_id(), start));
    for (name, v) in [(SPEND, spent), (BUDGET, format!("{}", team.budget.usd))] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    }
}
