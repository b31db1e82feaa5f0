//! Budgets at admission: what a request could cost at worst, reserved against its key's budget
//! (and its team's, when the team has one) before it is dispatched and settled to what it did
//! cost when its account closes (a stream's when it finishes or is cut). The reservations, and
//! the key's parallel slot, travel in the request's account as a [`Hold`].

use crate::dispatch::Deployment;
use crate::openai::ChatRequest;
use crate::state::ledger::{Reservation, Slot};
use serde_json::Value;
use std::sync::Arc;

/// Output tokens assumed when neither the request (`max_tokens`, `max_completion_tokens`) nor the
/// deployment (`max_output_tokens`) bounds the answer.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// The answer's bound as the client set it.
pub fn requested_output(req: &ChatRequest) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.extra.get(*k).and_then(Value::as_u64))
}

/// The most one answer could cost on any of `reach`: the prompt (counted, plus a margin) at its
/// input price plus the
/// answer's bound at its output price, times `answers` paid for (a cascade pays for up to three:
/// the cheap answer, the agreement model's and the escalation's). Zero when every deployment is
/// free, so a free model is never held back by a budget.
pub fn worst_case(req: &ChatRequest, reach: &[Arc<Deployment>], answers: u32) -> f64 {
    // switchyard's count of the prompt, with room for the framing and special tokens a provider
    // may count on top of it: the reservation must not fall short of the bill.
    let counted = crate::tokens::estimate_prompt(req);
    let prompt = counted + counted / 4 + 16;
    let asked = requested_output(req);
    let one = reach
        .iter()
        .map(|m| {
            let output = asked
                .or(m.max_output_tokens.map(u64::from))
                .unwrap_or(DEFAULT_OUTPUT_TOKENS);
            (prompt as f64 * m.price.input + output as f64 * m.price.output) / 1_000_000.0
        })
        .fold(0.0, f64::max);
    one * f64::from(answers.max(1))
}

/// The most an embeddings request could cost on any of `reach`: its input tokens (with the same
/// margin as a prompt's when they are text, counted exactly when they are token ids) at each
/// deployment's input price. Embeddings have no output tokens.
pub fn worst_case_input(tokens: u64, exact: bool, reach: &[Arc<Deployment>]) -> f64 {
    let tokens = if exact {
        tokens
    } else {
        tokens + tokens / 4 + 16
    };
    reach
        .iter()
        .map(|m| tokens as f64 * m.price.input / 1_000_000.0)
        .fold(0.0, f64::max)
}

/// Starts each budgeted key's current period at what the spend log recorded for it, so that a
/// restart does not hand every key a fresh budget. Keys are matched by name.
pub async fn seed_from_log(
    ledger: &crate::state::ledger::Ledger,
    keys: &[Arc<crate::keys::VirtualKey>],
    log: &crate::cost::spend::SpendLog,
) -> Result<usize, sqlx::Error> {
    let table = &log.settings().table;
    log.store().ensure_schema(table).await?;
    let now = crate::keys::now_ms();
    let mut seeded = 0;
    for k in keys {
        let Some(b) = k.budget else { continue };
        let (start, reset) = b.period.window(now);
        let usd = log.store().key_spend(table, &k.name, start).await?;
        if usd > 0.0 {
            ledger.seed(&k.id, (start, reset), usd).await;
            seeded += 1;
        }
    }
    Ok(seeded)
}

/// Team budgets resumed from the spend log's rows for the team: at start, and when a team gets a
/// budget (or a new period length) while the gateway runs, since its keys may have spent already
/// this period. Each team's period is seeded at most once per process, so a team that is removed
/// and set again is not counted twice.
pub struct TeamSeeder {
    ledger: Arc<crate::state::ledger::Ledger>,
    store: crate::cost::spend::Store,
    table: String,
    /// (team, period start) seeded or being seeded.
    claimed: std::sync::Mutex<std::collections::HashSet<(String, i64)>>,
}

impl TeamSeeder {
    pub fn new(
        ledger: Arc<crate::state::ledger::Ledger>,
        log: &crate::cost::spend::SpendLog,
    ) -> TeamSeeder {
        TeamSeeder {
            ledger,
            store: log.store().clone(),
            table: log.settings().table.clone(),
            claimed: std::sync::Mutex::default(),
        }
    }

    fn claim(&self, team: &str, start: i64, take: bool) -> bool {
        let mut c = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        let k = (team.to_string(), start);
        if take { c.insert(k) } else { c.remove(&k) }
    }

    /// Seeds the current period of each of `teams` not seeded yet; returns how many had spend.
    pub async fn seed(&self, teams: &[Arc<crate::keys::Team>]) -> Result<usize, sqlx::Error> {
        self.store.ensure_schema(&self.table).await?;
        let now = crate::keys::now_ms();
        let mut seeded = 0;
        for t in teams {
            let (start, reset) = t.budget.period.window(now);
            if !self.claim(&t.name, start, true) {
                continue;
            }
            let usd = match self.store.team_spend(&self.table, &t.name, start).await {
                Ok(usd) => usd,
                Err(e) => {
                    self.claim(&t.name, start, false);
                    return Err(e);
                }
            };
            if usd > 0.0 {
                self.ledger.seed(&t.ledger_id(), (start, reset), usd).await;
                seeded += 1;
            }
        }
        Ok(seeded)
    }
}

/// What a request holds of its key's limits until its account closes.
#[derive(Default)]
pub struct Hold {
    pub slot: Option<Slot>,
    pub reservation: Option<Reservation>,
    /// Held against the key's team's budget, for the same worst case.
    pub team: Option<Reservation>,
}

impl Hold {
    /// Replaces the reservations with the real cost and counts the answer's tokens.
    pub fn settle(self, usd: f64, output_tokens: u64) {
        if let Some(r) = self.reservation {
            r.settle(usd);
        }
        if let Some(r) = self.team {
            r.settle(usd);
        }
        if let Some(s) = self.slot {
            s.release(output_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Price, ProviderConfig};
    use crate::providers::{Provider, simulated::SimulatedProvider};

    fn deployment(name: &str, input: f64) -> Arc<Deployment> {
        let provider = Provider::Simulated(SimulatedProvider::new(&ProviderConfig::simulated()));
        Arc::new(Deployment {
            name: name.into(),
            upstream: name.into(),
            provider: Arc::new(provider),
            provider_name: "sim".into(),
            price: Price {
                input,
                output: 0.0,
                cached_input: None,
            },
            context_window: None,
            weight: 1.0,
            rpm: None,
            tpm: None,
            max_output_tokens: None,
            stream_usage: true,
            timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
        })
    }

    #[test]
    fn an_embeddings_reservation_is_its_input_at_the_priciest_input_price() {
        let reach = [deployment("a", 0.02), deployment("b", 0.13)];
        // Token ids are counted exactly: 1000 × $0.13/M.
        let exact = worst_case_input(1000, true, &reach);
        assert!((exact - 1000.0 * 0.13 / 1e6).abs() < 1e-15, "{exact}");
        // Text gets the prompt margin: 1000 + 250 + 16 tokens.
        let text = worst_case_input(1000, false, &reach);
        assert!((text - 1266.0 * 0.13 / 1e6).abs() < 1e-15, "{text}");
        assert_eq!(
            worst_case_input(1000, false, &[deployment("free", 0.0)]),
            0.0
        );
    }
}
