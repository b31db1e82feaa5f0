//! A request's worst case reserved against one budget, a key's or a team's, and the error a
//! client gets when it does not fit: the same shape for both, naming whose budget it was.

use super::super::error::ApiError;
use crate::keys::{Budget, rfc3339};
use crate::state::ledger::{Ledger, NoRoom, Reservation};
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Whose budget: `Key` or `Team`, its name, and its id in the ledger.
pub struct Owner<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub ledger_id: &'a str,
}

/// Why a reservation was refused, for `switchyard_key_refusals_total`, and the client's error.
pub struct Refused {
    pub unavailable: bool,
    pub error: ApiError,
}

pub async fn reserve(
    ledger: &Arc<Ledger>,
    owner: Owner<'_>,
    b: Budget,
    worst: f64,
) -> Result<Reservation, Refused> {
    let (start, reset) = b.period.window(crate::keys::now_ms());
    match ledger
        .reserve(owner.ledger_id, (start, reset), b.usd, worst)
        .await
    {
        Ok(r) => Ok(r),
        Err(NoRoom::Unavailable) => {
            // 503: the condition is temporary (the shared store is being reconnected), so a
            // client's retry is what should happen.
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                format!(
                    "{} {} has a budget, and the shared state that tracks budgets is unreachable; with state.on_state_error: deny such requests are refused until it is back.",
                    owner.kind, owner.name
                ),
            )
            .with_code("budget_state_unavailable");
            e.retry_after = Some(Duration::from_secs(1));
            Err(Refused {
                unavailable: true,
                error: e,
            })
        }
        Err(NoRoom::Spent(spent)) => {
            // 402, not 429: the SDKs retry a 429 (and a 5xx) on their own, and no retry within
            // the period can succeed. 402 is retried by none of them and says why.
            let mut e = ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "budget_exceeded_error",
                format!(
                    "{} {} has used its budget of ${} per {}: ${:.6} spent and ${:.6} held by requests in flight. It resets at {}.",
                    owner.kind,
                    owner.name,
                    b.usd,
                    b.period.label(),
                    spent.spent,
                    spent.reserved,
                    rfc3339(reset)
                ),
            )
            .with_code("budget_exceeded");
            let x = e.body.error.extra.get_or_insert_with(Box::default);
            if owner.kind == "Team" {
                x.insert("team".into(), json!(owner.name));
            }
            x.insert("budget_usd".into(), json!(b.usd));
            x.insert("spend_usd".into(), json!(spent.spent));
            x.insert("reserved_usd".into(), json!(spent.reserved));
            x.insert("budget_period".into(), json!(b.period.label()));
            x.insert("resets_at".into(), json!(rfc3339(reset)));
            Err(Refused {
                unavailable: false,
                error: e,
            })
        }
    }
}
