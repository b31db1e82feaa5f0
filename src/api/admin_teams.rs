//! `/admin/teams`: the `switchyard teams` operations over HTTP, for an admin key only. `PUT
//! /admin/teams/{name}` creates or changes a team's budget, `GET` lists or shows (with the
//! period's spend as this gateway last saw it), `DELETE` removes it. A malformed body is a 400
//! whose `param` names the field.

use super::AppState;
use super::admin_keys::{failed, with_keys};
use super::error::ApiError;
use crate::keys::{OpError, Team, TeamChange};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// The team as `show` prints it, with its period's spend and reset.
fn described(state: &AppState, t: &Team) -> Value {
    let (start, reset) = t.budget.period.window(crate::keys::now_ms());
    let mut v = t.to_json();
    v["spend_usd"] = json!(state.ledger().spent(&t.ledger_id(), start));
    v["resets_at"] = json!(crate::keys::rfc3339(reset));
    v
}

fn invalid(e: OpError) -> Box<Response> {
    match e {
        OpError::Invalid(i) => Box::new(
            ApiError::invalid_request(i.message, Some(i.field))
                .with_code("invalid_team_setting")
                .into_response(),
        ),
        other => failed(other),
    }
}

fn change(body: &Bytes) -> Result<TeamChange, Box<Response>> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(
            ApiError::invalid_request(format!("the body is not JSON: {e}"), Some("body".into()))
                .with_code("invalid_json")
                .into_response(),
        )
    })?;
    TeamChange::parse(&v).map_err(|i| invalid(OpError::Invalid(i)))
}

pub async fn list(State(state): State<AppState>) -> Response {
    with_keys(&state, async |keys| {
        let all = keys.list_teams().await.map_err(failed)?;
        let data: Vec<Value> = all.iter().map(|t| described(&state, t)).collect();
        Ok(Json(json!({"object": "list", "data": data})).into_response())
    })
    .await
}

pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    with_keys(&state, async |keys| {
        let t = keys.show_team(&name).await.map_err(failed)?;
        Ok(Json(described(&state, &t)).into_response())
    })
    .await
}

/// 201 for a new team, 200 for a change.
pub async fn set(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    with_keys(&state, async |keys| {
        let c = change(&body)?;
        let (t, created) = keys.set_team(&name, &c).await.map_err(invalid)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(described(&state, &t))).into_response())
    })
    .await
}

pub async fn remove(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    with_keys(&state, async |keys| {
        let t = keys.remove_team(&name).await.map_err(failed)?;
        Ok(Json(t.to_json()).into_response())
    })
    .await
}
