//! The pipeline's part for a key's team budget: the request's worst case reserved against the
//! team's period as well as the key's, refused with the same `budget_exceeded` error naming the
//! team, and the `x-switchyard-team-*` headers.

use super::super::error::ApiError;
use crate::keys::{Team, rfc3339};
use crate::state::ledger::{Ledger, NoRoom, Reservation};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SPEND: HeaderName = HeaderName::from_static("x-switchyard-team-spend-usd");
const BUDGET: HeaderName = HeaderName::from_static("x-switchyard-team-budget-usd");

/// Reserves `worst` dollars of the team's period; a refusal comes with the reason it is counted
/// under in `switchyard_key_refusals_total`.
pub async fn reserve(
    ledger: &Arc<Ledger>,
    team: &Team,
    worst: f64,
) -> Result<Reservation, (&'static str, ApiError)> {
    let b = team.budget;
    let (start, reset) = b.period.window(crate::keys::now_ms());
    match ledger
        .reserve(&team.ledger_id(), (start, reset), b.usd, worst)
        .await
    {
        Ok(r) => Ok(r),
        Err(NoRoom::Unavailable) => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                format!(
                    "Team {} has a budget, and the shared state that tracks budgets is unreachable; with state.on_state_error: deny its keys are refused until it is back.",
                    team.name
                ),
            )
            .with_code("budget_state_unavailable");
            e.retry_after = Some(Duration::from_secs(1));
            Err(("state_unavailable", e))
        }
        Err(NoRoom::Spent(spent)) => {
            // 402 as for a key's budget: no retry within the period can succeed.
            let mut e = ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "budget_exceeded_error",
                format!(
                    "Team {} has used its budget of ${} per {}: ${:.6} spent and ${:.6} held by requests in flight. It resets at {}.",
                    team.name,
                    b.usd,
                    b.period.label(),
                    spent.spent,
                    spent.reserved,
                    rfc3339(reset)
                ),
            )
            .with_code("budget_exceeded");
            let x = e.body.error.extra.get_or_insert_with(Box::default);
            x.insert("team".into(), json!(team.name));
            x.insert("budget_usd".into(), json!(b.usd));
            x.insert("spend_usd".into(), json!(spent.spent));
            x.insert("reserved_usd".into(), json!(spent.reserved));
            x.insert("budget_period".into(), json!(b.period.label()));
            x.insert("resets_at".into(), json!(rfc3339(reset)));
            Err(("team_budget", e))
        }
    }
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
