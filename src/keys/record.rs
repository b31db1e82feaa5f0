//! One virtual key as the store holds it (never its secret), and how it reads as JSON for
//! `switchyard keys` and `/admin/keys`.

use super::period::Period;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    pub usd: f64,
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualKey {
    pub id: String,
    /// Unique; spend rows and reports name keys by it.
    pub name: String,
    /// SHA-256 of the secret (see `secret::hash`).
    pub hash: String,
    /// `sk-sy-…abcd`.
    pub hint: String,
    pub team: Option<String>,
    /// Free-form JSON object, returned as given.
    pub metadata: Value,
    /// Tiers the key may be served by; empty: any.
    pub tiers: Vec<String>,
    /// Models (deployment names) the key may be served by; empty: any.
    pub models: Vec<String>,
    pub budget: Option<Budget>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
    pub expires_ms: Option<i64>,
    pub disabled: bool,
    pub revoked_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Why a key may not be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Revoked,
    Disabled,
    Expired,
}

impl Unusable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unusable::Revoked => "revoked",
            Unusable::Disabled => "disabled",
            Unusable::Expired => "expired",
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

impl VirtualKey {
    /// A key with no settings yet: any tier and model, no limits, no budget, never expiring.
    pub fn new(id: String, name: String, hash: String, hint: String, now_ms: i64) -> VirtualKey {
        VirtualKey {
            id,
            name,
            hash,
            hint,
            team: None,
            metadata: json!({}),
            tiers: Vec::new(),
            models: Vec::new(),
            budget: None,
            rpm: None,
            tpm: None,
            max_parallel: None,
            expires_ms: None,
            disabled: false,
            revoked_ms: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// Whether the key may be used at `now_ms`; revocation wins over the rest.
    pub fn unusable(&self, now_ms: i64) -> Option<Unusable> {
        if self.revoked_ms.is_some() {
            Some(Unusable::Revoked)
        } else if self.disabled {
            Some(Unusable::Disabled)
        } else if self.expires_ms.is_some_and(|e| e <= now_ms) {
            Some(Unusable::Expired)
        } else {
            None
        }
    }

    pub fn allows_tier(&self, tier: &str) -> bool {
        self.tiers.is_empty() || self.tiers.iter().any(|t| t == tier)
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// Any of rpm, tpm, parallel or budget is set: answers carry the rate-limit headers.
    pub fn has_limits(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.max_parallel.is_some()
            || self.budget.is_some()
    }

    /// The key as `list`, `show` and the admin API print it: everything but the hash.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "key_hint": self.hint,
            "team": self.team,
            "metadata": self.metadata,
            "tiers": self.tiers,
            "models": self.models,
            "budget_usd": self.budget.map(|b| b.usd),
            "budget_period": self.budget.map(|b| b.period.label()),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_parallel": self.max_parallel,
            "expires_at": self.expires_ms.map(rfc3339),
            "disabled": self.disabled,
            "revoked_at": self.revoked_ms.map(rfc3339),
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }
}
