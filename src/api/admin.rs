//! `GET /admin/deployments`: each deployment's circuit breaker, usage this minute and load, so an
//! operator can see why traffic is (or is not) going somewhere. The same walk keeps the
//! `switchyard_deployment_healthy` gauge current at every scrape.

use super::AppState;
use crate::dispatch::Deployment;
use crate::gateway::Gateway;
use crate::state::Status;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub async fn deployments(State(state): State<AppState>) -> Json<Value> {
    let gw = state.gateway();
    let mut list = Vec::new();
    for m in sorted(&gw) {
        list.push(describe(&gw, m).await);
    }
    Json(json!({ "object": "list", "data": list }))
}

fn sorted(gw: &Gateway) -> Vec<&std::sync::Arc<Deployment>> {
    let mut models: Vec<_> = gw.tables.models.values().collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
}

/// Sets `switchyard_deployment_healthy` for every configured deployment.
pub async fn refresh_gauges(state: &AppState) {
    let gw = state.gateway();
    let gauge = &state.metrics().deployment_healthy;
    for m in sorted(&gw) {
        let h = gw.tables.health(&m.name).await;
        let up = matches!(h.status, Status::Healthy | Status::ProbeReady);
        gauge.with_label_values(&[&m.name]).set(i64::from(up));
    }
    if let crate::state::Backing::Shared(s) = gw.tables.state.store.backing() {
        let m = state.metrics();
        m.state_degraded.set(i64::from(!s.up));
        m.state_errors
            .inc_by(s.errors.saturating_sub(m.state_errors.get()));
    }
}

/// Sets `switchyard_team_budget_remaining_usd`: per team, what its own budget has left this
/// period when it has one (the limit its keys share), else what its active keys' budgets have
/// left. Labelled by team only, whose number the operator controls, never by key.
pub fn refresh_key_gauges(state: &AppState) {
    let Some(keys) = state.keys() else { return };
    let now = crate::keys::now_ms();
    let ledger = state.ledger();
    let mut teams: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    let own: std::collections::BTreeMap<String, f64> = keys
        .cached_teams()
        .iter()
        .map(|t| {
            let (start, _) = t.budget.period.window(now);
            let left = (t.budget.usd - ledger.spent(&t.ledger_id(), start)).max(0.0);
            (t.name.clone(), left)
        })
        .collect();
    for k in keys.cached() {
        let Some(b) = k.budget.filter(|_| k.unusable(now).is_none()) else {
            continue;
        };
        let team = k.team.clone().unwrap_or_else(|| "none".into());
        if own.contains_key(&team) {
            continue;
        }
        let (start, _) = b.period.window(now);
        let left = (b.usd - ledger.spent(&k.id, start)).max(0.0);
        *teams.entry(team).or_default() += left;
    }
    teams.extend(own);
    let gauge = &state.metrics().team_budget_remaining;
    gauge.reset();
    for (team, left) in teams {
        gauge.with_label_values(&[&team]).set(left);
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

async fn describe(gw: &Gateway, m: &Deployment) -> Value {
    let h = gw.tables.health(&m.name).await;
    let load = gw.tables.state.loads.get(&m.name);
    let tiers: Vec<&str> = gw
        .tables
        .tiers
        .iter()
        .filter(|(_, ms)| ms.iter().any(|x| x.name == m.name))
        .map(|(t, _)| &**t)
        .collect();
    let (state, remaining) = match h.status {
        Status::Healthy => ("healthy", None),
        Status::Cooling { remaining } => ("cooling_down", Some(remaining)),
        Status::ProbeReady => ("half_open", None),
        Status::Probing => ("probing", None),
    };
    let until = remaining.and_then(|r| {
        (SystemTime::now() + r)
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
    });
    json!({
        "deployment": &*m.name,
        "provider": m.provider_name,
        "model": m.upstream,
        "tiers": tiers,
        "state": state,
        "healthy": matches!(h.status, Status::Healthy | Status::ProbeReady),
        "cooldown_remaining_ms": remaining.map(ms),
        "cooldown_until_unix_ms": until,
        "last_cooldown_class": h.last_class.map(crate::providers::ErrorClass::label),
        "last_cooldown_ms": h.last_cooldown.map(ms),
        "cooldowns": h.cooldowns,
        "window": {"calls": h.calls, "failures": h.failures},
        "in_flight": load.in_flight(),
        "latency_ewma_ms": load.ewma_ms(),
        "usage": {
            "requests_this_minute": h.usage.requests,
            "tokens_this_minute": h.usage.tokens,
            "rpm_limit": m.rpm,
            "tpm_limit": m.tpm,
        },
        "weight": m.weight,
        "context_window": m.context_window,
    })
}
