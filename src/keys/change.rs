//! What a create or update asks for, read from the JSON body `/admin/keys` gets (the CLI builds
//! the same JSON from its flags), with every mistake reported under the field that has it.

use super::period::Period;
use super::record::{Budget, VirtualKey};
use serde_json::{Map, Value};

/// A field of the body and what is wrong with it: the admin API answers 400 with `param` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: format!("`{field}` {}", message.into()),
    }
}

const FIELDS: &[&str] = &[
    "name",
    "team",
    "metadata",
    "tiers",
    "models",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "max_parallel",
    "expires_at",
    "expires_in",
    "disabled",
];

/// Fields absent from the body are left as they are (`None`); `null` clears an optional one.
#[derive(Debug, Default, Clone)]
pub struct Change {
    pub name: Option<String>,
    pub team: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub tiers: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub budget_usd: Option<Option<f64>>,
    pub budget_period: Option<Period>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub max_parallel: Option<Option<u64>>,
    pub expires_ms: Option<Option<i64>>,
    pub disabled: Option<bool>,
}

/// What the config defines, so a key cannot name a tier or model that does not exist.
pub struct Known<'a> {
    pub tiers: Vec<&'a str>,
    pub models: Vec<&'a str>,
}

/// Key names go into spend rows, reports and URLs (`/admin/keys/{name}`).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1–64 letters, digits, '-', '_' or '.'; got {name:?}"
        ))
    }
}

fn text(m: &Map<String, Value>, f: &str) -> Result<Option<Option<String>>, Invalid> {
    match m.get(f) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.len() <= 128 => Ok(Some(Some(s.clone()))),
        Some(Value::String(_)) => Err(bad(f, "must be at most 128 characters")),
        Some(_) => Err(bad(f, "must be a string")),
    }
}

fn count(m: &Map<String, Value>, f: &str) -> Result<Option<Option<u64>>, Invalid> {
    match m.get(f) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(Some(n))),
            _ => Err(bad(f, "must be a positive whole number or null")),
        },
    }
}

fn names(m: &Map<String, Value>, f: &str, known: &[&str]) -> Result<Option<Vec<String>>, Invalid> {
    let Some(v) = m.get(f) else { return Ok(None) };
    let Some(list) = v.as_array() else {
        return Err(bad(f, "must be a list of names"));
    };
    let mut out = Vec::new();
    for item in list {
        let Some(s) = item.as_str() else {
            return Err(bad(f, "must be a list of names"));
        };
        if !known.contains(&s) {
            return Err(bad(
                f,
                format!(
                    "names {s:?}, which this config does not define (it has: {})",
                    known.join(", ")
                ),
            ));
        }
        out.push(s.to_string());
    }
    Ok(Some(out))
}

impl Change {
    /// Reads a body; `now_ms` turns `expires_in` into a time.
    pub fn parse(body: &Value, known: &Known<'_>, now_ms: i64) -> Result<Change, Invalid> {
        let Some(m) = body.as_object() else {
            return Err(Invalid {
                field: "body".into(),
                message: "the body must be a JSON object".into(),
            });
        };
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("is not a key setting (known: {})", FIELDS.join(", ")),
            ));
        }
        let mut c = Change {
            team: text(m, "team")?,
            tiers: names(m, "tiers", &known.tiers)?,
            models: names(m, "models", &known.models)?,
            rpm: count(m, "rpm")?,
            tpm: count(m, "tpm")?,
            max_parallel: count(m, "max_parallel")?,
            ..Change::default()
        };
        match m.get("name") {
            None => {}
            Some(Value::String(n)) => {
                check_name(n).map_err(|e| bad("name", e))?;
                c.name = Some(n.clone());
            }
            Some(_) => return Err(bad("name", "must be a string")),
        }
        match m.get("metadata") {
            None => {}
            Some(Value::Null) => c.metadata = Some(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => c.metadata = Some(v.clone()),
            Some(_) => return Err(bad("metadata", "must be a JSON object")),
        }
        match m.get("budget_usd") {
            None => {}
            Some(Value::Null) => c.budget_usd = Some(None),
            Some(v) => match v.as_f64() {
                Some(usd) if usd >= 0.0 && usd.is_finite() => c.budget_usd = Some(Some(usd)),
                _ => {
                    return Err(bad(
                        "budget_usd",
                        "must be a number of dollars, 0 or more, or null",
                    ));
                }
            },
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
        match (m.get("expires_at"), m.get("expires_in")) {
            (Some(_), Some(_)) => {
                return Err(bad("expires_in", "cannot be given with `expires_at`"));
            }
            (Some(Value::Null), None) | (None, Some(Value::Null)) => c.expires_ms = Some(None),
            (Some(Value::String(at)), None) => {
                let t = humantime::parse_rfc3339_weak(at)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .ok_or_else(|| {
                        bad(
                            "expires_at",
                            "must be a UTC time such as 2026-12-31T00:00:00Z",
                        )
                    })?;
                c.expires_ms = Some(Some(t));
            }
            (None, Some(Value::String(d))) => {
                let d = humantime::parse_duration(d)
                    .map_err(|_| bad("expires_in", "must be a duration such as 30d"))?;
                let d = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                c.expires_ms = Some(Some(now_ms.saturating_add(d)));
            }
            (Some(_), None) => return Err(bad("expires_at", "must be a UTC time or null")),
            (None, Some(_)) => return Err(bad("expires_in", "must be a duration or null")),
            (None, None) => {}
        }
        match m.get("disabled") {
            None => {}
            Some(Value::Bool(b)) => c.disabled = Some(*b),
            Some(_) => return Err(bad("disabled", "must be true or false")),
        }
        Ok(c)
    }

    /// Applies the change to `k`. A period needs a budget, and a budget without a period is
    /// monthly.
    pub fn apply(&self, k: &mut VirtualKey) -> Result<(), Invalid> {
        if let Some(n) = &self.name {
            k.name = n.clone();
        }
        if let Some(t) = &self.team {
            k.team = t.clone();
        }
        if let Some(m) = &self.metadata {
            k.metadata = m.clone();
        }
        if let Some(t) = &self.tiers {
            k.tiers = t.clone();
        }
        if let Some(m) = &self.models {
            k.models = m.clone();
        }
        match (self.budget_usd, self.budget_period) {
            (Some(None), _) => k.budget = None,
            (Some(Some(usd)), p) => {
                let period = p.or(k.budget.map(|b| b.period)).unwrap_or(Period::Month);
                k.budget = Some(Budget { usd, period });
            }
            (None, Some(p)) => match &mut k.budget {
                Some(b) => b.period = p,
                None => {
                    return Err(bad(
                        "budget_period",
                        "needs `budget_usd`: the key has no budget",
                    ));
                }
            },
            (None, None) => {}
        }
        if let Some(v) = self.rpm {
            k.rpm = v;
        }
        if let Some(v) = self.tpm {
            k.tpm = v;
        }
        if let Some(v) = self.max_parallel {
            k.max_parallel = v;
        }
        if let Some(v) = self.expires_ms {
            k.expires_ms = v;
        }
        if let Some(v) = self.disabled {
            k.disabled = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> Known<'static> {
        Known {
            tiers: vec!["budget", "mid"],
            models: vec!["small"],
        }
    }

    #[test]
    fn mistakes_name_their_field() {
        for (body, field) in [
            (json!([1]), "body"),
            (json!({"nmae": "x"}), "nmae"),
            (json!({"name": "a b"}), "name"),
            (json!({"tiers": ["premium"]}), "tiers"),
            (json!({"tiers": "budget"}), "tiers"),
            (json!({"budget_usd": -1}), "budget_usd"),
            (json!({"budget_period": "fortnight"}), "budget_period"),
            (json!({"rpm": 0}), "rpm"),
            (json!({"max_parallel": 1.5}), "max_parallel"),
            (json!({"expires_at": "soon"}), "expires_at"),
            (json!({"metadata": "x"}), "metadata"),
            (json!({"disabled": "yes"}), "disabled"),
        ] {
            let e = Change::parse(&body, &known(), 0).unwrap_err();
            assert_eq!(e.field, field, "{body}: {}", e.message);
        }
    }

    #[test]
    fn a_budget_defaults_to_monthly_and_null_clears() {
        let mut k = VirtualKey::new("1".into(), "a".into(), String::new(), String::new(), 0);
        let c = Change::parse(&json!({"budget_usd": 5, "rpm": 60}), &known(), 0).unwrap();
        c.apply(&mut k).unwrap();
        assert_eq!(k.budget.map(|b| b.period), Some(Period::Month));
        assert_eq!(k.rpm, Some(60));
        let c = Change::parse(&json!({"rpm": null, "budget_usd": null}), &known(), 0).unwrap();
        c.apply(&mut k).unwrap();
        assert_eq!((k.rpm, k.budget), (None, None));
        let c = Change::parse(&json!({"budget_period": "day"}), &known(), 0).unwrap();
        assert_eq!(c.apply(&mut k).unwrap_err().field, "budget_period");
    }
}
