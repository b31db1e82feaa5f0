//! A team's own budget, which its keys share on top of their own: a request from a key whose
//! team has one must find room in both. Teams are named by the keys' free-form `team` field, so a
//! key joins a team's budget by naming it; a team record holds only what is the team's.

use super::change::Invalid;
use super::period::Period;
use super::record::{Budget, rfc3339};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// As the keys' `team` field spells it.
    pub name: String,
    pub budget: Budget,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Team {
    /// The team's counters in the ledger. Key ids are UUIDs, so no key can share it.
    pub fn ledger_id(&self) -> String {
        format!("team:{}", self.name)
    }

    /// The team as `switchyard teams` and `/admin/teams` print it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "budget_usd": self.budget.usd,
            "budget_period": self.budget.period.label(),
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }
}

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: format!("`{field}` {}", message.into()),
    }
}

const FIELDS: &[&str] = &["budget_usd", "budget_period"];

/// A team name: whatever a key's `team` may hold (up to 128 characters), less control
/// characters, which would make it unreadable in a report, a log line or a metric label.
pub fn check_team_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(bad(
            "name",
            format!("must be 1–128 characters, none of them control characters; got {name:?}"),
        ));
    }
    Ok(())
}

/// What a `set` asks for; fields absent from the body stay as they are.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TeamChange {
    pub budget_usd: Option<f64>,
    pub budget_period: Option<Period>,
}

impl TeamChange {
    /// Reads a body, naming the field of any mistake. There is no `null`: a team without a budget
    /// is no team, so removing the budget is removing the team.
    pub fn parse(body: &Value) -> Result<TeamChange, Invalid> {
        let Some(m): Option<&Map<String, Value>> = body.as_object() else {
            return Err(Invalid {
                field: "body".into(),
                message: "the body must be a JSON object".into(),
            });
        };
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("is not a team setting (known: {})", FIELDS.join(", ")),
            ));
        }
        let mut c = TeamChange::default();
        if let Some(v) = m.get("budget_usd") {
            match v.as_f64() {
                Some(usd) if usd >= 0.0 && usd.is_finite() => c.budget_usd = Some(usd),
                _ => return Err(bad("budget_usd", "must be a number of dollars, 0 or more")),
            }
        }
        match m.get("budget_period") {
            None => {}
            Some(Value::String(p)) => {
                c.budget_period = Some(Period::parse(p).map_err(|e| bad("budget_period", e))?);
            }
            Some(_) => {
                return Err(bad(
                    "budget_period",
                    "must be day, week, month or a duration",
                ));
            }
        }
        Ok(c)
    }

    /// The team after the change: a new one needs `budget_usd` (its period defaults to a month).
    pub fn apply(&self, name: &str, was: Option<Team>, now_ms: i64) -> Result<Team, Invalid> {
        check_team_name(name)?;
        let Some(mut t) = was else {
            let Some(usd) = self.budget_usd else {
                return Err(bad("budget_usd", "is required for a new team"));
            };
            return Ok(Team {
                name: name.to_string(),
                budget: Budget {
                    usd,
                    period: self.budget_period.unwrap_or(Period::Month),
                },
                created_ms: now_ms,
                updated_ms: now_ms,
            });
        };
        if let Some(usd) = self.budget_usd {
            t.budget.usd = usd;
        }
        if let Some(p) = self.budget_period {
            t.budget.period = p;
        }
        t.updated_ms = now_ms.max(t.updated_ms + 1);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_name_their_field() {
        for (body, field) in [
            (json!("x"), "body"),
            (json!({"budget": 5}), "budget"),
            (json!({"budget_usd": -1}), "budget_usd"),
            (json!({"budget_usd": null}), "budget_usd"),
            (json!({"budget_usd": "5"}), "budget_usd"),
            (json!({"budget_period": "fortnight"}), "budget_period"),
            (json!({"budget_period": 7}), "budget_period"),
        ] {
            let e = TeamChange::parse(&body).unwrap_err();
            assert_eq!(e.field, field, "{body}: {}", e.message);
        }
        let c = TeamChange::parse(&json!({"budget_period": "week"})).unwrap();
        assert_eq!(c.apply("etl", None, 0).unwrap_err().field, "budget_usd");
        assert_eq!(c.apply("", None, 0).unwrap_err().field, "name");
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let c = TeamChange::parse(&json!({"budget_usd": 50})).unwrap();
        let t = c.apply("etl", None, 10).unwrap();
        assert_eq!(t.budget.period, Period::Month);
        let c = TeamChange::parse(&json!({"budget_period": "day"})).unwrap();
        let t = c.apply("etl", Some(t), 10).unwrap();
        assert_eq!((t.budget.usd, t.budget.period), (50.0, Period::Day));
        assert_eq!((t.created_ms, t.updated_ms), (10, 11));
    }
}
