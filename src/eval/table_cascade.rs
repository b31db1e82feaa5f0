//! The table's own `routing.cascade`, replayed from recorded answers. With `--config`, a prompt
//! the table routes to the cascade's `from` tier is answered the way `dispatch` would answer it:
//! the cheap tier's recorded answer, the `agree` model's beside it, and the premium tier's when
//! the cheap answer is empty or the two settle on different things. What the outcome files cannot
//! show (errors, truncation, refusals, JSON validity, log-probs, a judge's score, the
//! escalation-rate cap, which depends on timing) is named in the report's notes, not guessed.

use super::Candidate;
use super::replay::{CascadeInputs, TableCascade, answer_text, replay_table};
use super::sweep::Served;
use crate::answers::Compare;
use crate::config::{Config, EscalateOn, Price};
use crate::outcomes::Outcome;

/// The table's cascade, ready to replay on recorded outcomes.
#[derive(Debug, Clone)]
pub struct Replay {
    pub cascade: TableCascade,
    /// Only requests decided by these rules cascade; empty: every request routed to `from`.
    pub rules: Vec<String>,
    /// The outcome model standing for the `agree` model, and its price in the table (for rows
    /// without a recorded cost).
    second: Option<(String, Option<Price>)>,
    /// The outcome model whose answer the cheap tier gives.
    cheap: String,
    how: Compare,
    /// `budget + <agree model> agree, else premium`.
    pub describe: String,
}

/// Signals `dispatch` escalates on that recorded outcomes do not show.
fn unreplayable(on: &[EscalateOn]) -> Vec<&'static str> {
    on.iter()
        .filter(|e| !matches!(e, EscalateOn::Agree | EscalateOn::Empty))
        .map(|e| e.as_str())
        .collect()
}

/// The table's cascade over `candidates` (index `candidates.len()` stands for an `agree` model
/// that is not a tier's), or `None` with a note saying why it cannot be replayed on `rows`.
pub fn setup(
    config: &Config,
    candidates: &[Candidate],
    models: &[String],
    rows: &[Outcome],
    how: Compare,
    notes: &mut Vec<String>,
) -> Option<Replay> {
    let c = config.routing.cascade.as_ref()?;
    let (from, to) = (c.from.value.as_str(), c.to.value.as_str());
    let tier = |name: &str| candidates.iter().position(|x| x.name == name);
    let (Some(f), Some(t)) = (tier(from), tier(to)) else {
        notes.push(format!(
            "the table's routing.cascade ({from} → {to}) is not replayed: a tier of it has no model in the outcome files; these figures are the routing decision's alone"
        ));
        return None;
    };
    let agree = c
        .agreement
        .as_ref()
        .filter(|_| c.escalate_on.contains(&EscalateOn::Agree));
    let second = match agree {
        None => None,
        Some(a) => {
            let Some(name) = a
                .model
                .as_ref()
                .map(|m| m.value.as_str())
                .filter(|_| !a.learned)
            else {
                notes.push(
                    "the table's routing.cascade is not replayed: its second opinion comes from the learned layer's choice per request (agreement.learned), which the replay does not model; these figures are the routing decision's alone".into(),
                );
                return None;
            };
            let model = config.model(name);
            let upstream = model.and_then(|m| m.model.as_ref()).map(|u| u.as_str());
            let Some(col) = models
                .iter()
                .find(|m| m.as_str() == name || Some(m.as_str()) == upstream)
            else {
                notes.push(format!(
                    "the table's routing.cascade is not replayed: its agreement model `{name}` has no scores in the outcome files; these figures are the routing decision's alone"
                ));
                return None;
            };
            Some((col.clone(), model.map(|m| m.price)))
        }
    };
    let cheap = candidates[f].model.clone();
    let wanted: Vec<&str> = std::iter::once(cheap.as_str())
        .chain(second.iter().map(|s| s.0.as_str()))
        .collect();
    for m in &wanted {
        let missing = rows.iter().filter(|r| r.response(m).is_none()).count();
        if missing > 0 {
            notes.push(format!(
                "the table's routing.cascade is not replayed: {missing} of {} test prompts have no recorded answer (`responses`) for `{m}`; these figures are the routing decision's alone",
                rows.len()
            ));
            return None;
        }
    }
    let short = |m: &str| m.rsplit('/').next().unwrap_or(m).to_string();
    let describe = match &second {
        Some((s, _)) => format!(
            "{} + {} agree, else {}",
            short(&cheap),
            short(s),
            short(&candidates[t].model)
        ),
        None => format!(
            "{}, else {} on an empty answer",
            short(&cheap),
            short(&candidates[t].model)
        ),
    };
    let skipped = unreplayable(&c.escalate_on);
    notes.push(format!(
        "the table's routing.cascade is replayed from the recorded answers ({describe}) on the prompts routed to `{from}`{}; its escalation-rate cap ({:.0}%) is not (it depends on timing){}",
        if c.rules.is_empty() {
            String::new()
        } else {
            format!(" by the rules {}", c.rules.join(", "))
        },
        c.max_escalation_rate * 100.0,
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                ", nor its escalate_on {} (recorded outcomes do not show them)",
                skipped.join(", ")
            )
        }
    ));
    Some(Replay {
        cascade: TableCascade {
            from: f,
            to: t,
            second: second.as_ref().map(|_| candidates.len()),
            on_empty: c.escalate_on.contains(&EscalateOn::Empty),
        },
        rules: c.rules.clone(),
        second,
        cheap,
        how,
        describe,
    })
}

impl Replay {
    /// Whether a prompt decided by `rule` (the rule's name, when rules decided it) cascades.
    pub fn applies(&self, rule: Option<&str>) -> bool {
        self.rules.is_empty() || rule.is_some_and(|r| self.rules.iter().any(|x| x == r))
    }

    /// The `agree` model's outcome name, for `--choices`.
    pub fn second_model(&self) -> Option<&str> {
        self.second.as_ref().map(|s| s.0.as_str())
    }

    /// One prompt through the cascade: `from` and `to` are the score and cost of the cheap and
    /// premium tiers on it. `None` when the row lacks an answer or cost the replay needs.
    pub fn replay(
        &self,
        row: &Outcome,
        from: (f64, f64),
        to: (f64, f64),
        output_tokens: u64,
    ) -> Option<Served> {
        let cheap = answer_text(row.response(&self.cheap)?);
        let second = match &self.second {
            Some((m, price)) => {
                let text = answer_text(row.response(m)?);
                let cost = row.cost(m).or_else(|| {
                    price.map(|p| {
                        let input = crate::tokens::count(&row.prompt());
                        let output = row.response(m).map_or(output_tokens, crate::tokens::count);
                        (input as f64 * p.input + output as f64 * p.output) / 1e6
                    })
                })?;
                Some((text, cost))
            }
            None => None,
        };
        if !(from.0.is_finite() && from.1.is_finite() && to.0.is_finite() && to.1.is_finite()) {
            return None;
        }
        Some(replay_table(
            &self.cascade,
            &CascadeInputs {
                cheap: &cheap,
                second: second.as_ref().map(|(t, c)| (t.as_str(), *c)),
                from,
                to,
            },
            self.how,
        ))
    }
}
