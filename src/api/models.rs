//! `GET /v1/models`: what a client may put in `model`: `auto`, each tier, each concrete model.
//! Embedding models and tiers are listed too, their description saying so (they answer
//! `/v1/embeddings` only).

use super::AppState;
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::routing::Requested;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

fn entry(gw: &Gateway, id: &str) -> Option<Value> {
    let (owner, description) = match gw.router.resolve(id) {
        Requested::Routed => (
            "switchyard".to_string(),
            "routed: the routing table picks the cheapest tier that will do".to_string(),
        ),
        Requested::Tier(t) => {
            let models: Vec<&str> = gw
                .tables
                .tiers
                .get(t)
                .into_iter()
                .flatten()
                .map(|m| &*m.name)
                .collect();
            (
                "switchyard".to_string(),
                format!("tier {t}: {}", models.join(", ")),
            )
        }
        Requested::Model(m) => {
            let model = gw.tables.models.get(m)?;
            (
                model.provider_name.clone(),
                format!("{} via {}", model.upstream, model.provider_name),
            )
        }
        Requested::Unknown => return None,
    };
    let description = if gw.router.is_embedding(id) {
        format!("embeddings: {description}")
    } else {
        description
    };
    Some(
        json!({"id": id, "object": "model", "created": 0, "owned_by": owner, "description": description}),
    )
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let gw = state.gateway();
    let data: Vec<Value> = gw
        .router
        .model_names()
        .filter_map(|id| entry(&gw, id))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let gw = state.gateway();
    entry(&gw, &id).map(Json).ok_or_else(|| {
        let available: Vec<&str> = gw.router.model_names().collect();
        ApiError::not_found(format!(
            "The model `{id}` does not exist on this gateway. Available: {}.",
            available.join(", ")
        ))
        .with_code("model_not_found")
    })
}
