//! The pipeline's phases for an embeddings request: admit (the key's rate limits, its input
//! tokens for tpm), route (exactly the embedding model or tier named, within the key's tiers and
//! models), reserve (input tokens × input price against the key's budget), dispatch (the same
//! walk as chat: balancing, retries, breakers, fallbacks) and account (cost, metrics, spend row).

use super::{Answer, Ctx, Meta, Reply, Routed, unknown_model};
use crate::api::error::ApiError;
use crate::api::headers;
use crate::cost::budget;
use crate::dispatch;
use crate::openai::EmbeddingRequest;
use crate::openai::embeddings::Inputs;
use crate::routing::Embedding;
use http::StatusCode;

impl Ctx {
    async fn admit_embedding(&mut self, req: &EmbeddingRequest) -> Result<(), ApiError> {
        self.account.embedding_request(req);
        if let Some(k) = &mut self.key {
            let hold = k.admit(|| crate::tokens::embedding_input(req).0).await?;
            self.account.hold(hold);
        }
        Ok(())
    }

    async fn route_embedding(&mut self, req: &EmbeddingRequest) -> Result<Routed, ApiError> {
        let mut decision = match self.gw.router.decide_embedding(&req.model) {
            Embedding::Serve(d) => d,
            Embedding::Unknown => return Err(unknown_model(&self.gw, &req.model)),
            Embedding::NotEmbedding => return Err(not_embedding(&self.gw, &req.model)),
        };
        let allowed = match &mut self.key {
            Some(k) => k.restrict(&self.gw, &mut decision)?,
            None => None,
        };
        self.account.decided(&decision);
        let fallback = !headers::flag(&self.headers, &headers::NO_FALLBACK);
        let Some(mut plan) = dispatch::plan(&self.gw.tables, &decision, fallback) else {
            return Err(unknown_model(&self.gw, &req.model));
        };
        plan.allowed = allowed;
        Ok(Routed { decision, plan })
    }

    async fn reserve_embedding(
        &mut self,
        req: &EmbeddingRequest,
        r: &Routed,
    ) -> Result<(), ApiError> {
        if let Some(k) = &self.key {
            let tokens = crate::tokens::embedding_input(req).0;
            let exact = matches!(req.inputs(), Inputs::Tokens(_));
            let hold = k
                .reserve_worst(&self.gw, &r.decision, &r.plan, |reach| {
                    budget::worst_case_input(tokens, exact, reach)
                })
                .await?;
            self.account.hold(hold);
        }
        Ok(())
    }

    async fn embed(mut self, req: EmbeddingRequest, r: Routed) -> Reply {
        let progress = self.account.progress();
        let gw = self.gw.clone();
        let (result, outcome) = dispatch::embed(&gw.tables, &req, &r.plan, &progress).await;
        self.account.dispatched(&outcome);
        match result {
            Ok(answer) => {
                // Counted only when the provider reported no usage.
                let input = match answer.usage {
                    Some(_) => 0,
                    None => crate::tokens::embedding_input(&req).0,
                };
                self.account.answered_embedding(answer.usage, input);
                self.account.finish(200, None);
                let cost = self.account.cost().copied();
                let timing = self.account.overhead();
                let key_headers = self.key_headers(Some(&outcome));
                Reply {
                    body: Answer::Complete(answer.body),
                    meta: Some(Meta::new(r.decision, outcome, timing, cost)),
                    close: false,
                    key_headers,
                }
            }
            Err(e) => {
                let err = self.provider_error(&e, &r.decision);
                self.account
                    .finish(err.status.as_u16(), Some(&err.body.error.message));
                let timing = self.account.overhead();
                self.refuse(err, Some(Meta::new(r.decision, outcome, timing, None)))
            }
        }
    }
}

/// The 400 for an embeddings request whose `model` is `auto`, an alias or a chat model or tier.
fn not_embedding(gw: &crate::gateway::Gateway, model: &str) -> ApiError {
    let available: Vec<&str> = gw.router.embedding_names().collect();
    let served = if available.is_empty() {
        "This gateway serves no embedding model.".to_string()
    } else {
        format!("Embedding models and tiers: {}.", available.join(", "))
    };
    let mut e = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        format!("`{model}` is not an embedding model; /v1/embeddings needs one. {served}"),
    )
    .with_code("model_not_embedding");
    e.body.error.param = Some("model".into());
    e
}

/// Admit, route, reserve, dispatch, account: one embeddings request from its parsed body to the
/// answer.
pub async fn embed(mut ctx: Ctx, req: EmbeddingRequest) -> Reply {
    if let Err(e) = ctx.admit_embedding(&req).await {
        return ctx.refuse(e, None);
    }
    let routed = match ctx.route_embedding(&req).await {
        Ok(r) => r,
        Err(e) => return ctx.refuse(e, None),
    };
    if let Err(e) = ctx.reserve_embedding(&req, &routed).await {
        return ctx.refuse(e, None);
    }
    ctx.embed(req, routed).await
}
