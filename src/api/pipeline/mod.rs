//! The path every inbound wire format shares, in the spirit of a proxy's request phases:
//! **admit** (who is calling, what they asked for, a virtual key's rate limits), **route** (the
//! decision and the walk it allows, within the key's tiers and models), then the key's budget
//! reservation for that walk's worst case, **dispatch** (plain or cascade, streaming or not) and
//! **account** (the bill, metrics, spend row, the reservation settled). A handler reads its wire
//! format into a [`ChatRequest`], calls [`run`], and writes the [`Reply`] back in its own format;
//! it never routes, dispatches or prices. Embeddings take the same phases with their own request
//! type ([`embed`]): no routing layers, no streams, input tokens only. One [`Ctx`] per request
//! carries what the phases learn, so a new inbound format adds a translation, not a path.
//!
//! Must not import a format's handler (`api::chat`, `api::messages`, `api::embeddings`): they
//! call it.

mod budget;
mod embed;
mod extract;
mod feed;
mod key;
mod team;

pub use embed::embed;
pub use feed::{Event, Feed};

use super::AppState;
use super::auth::CallerKey;
use super::error::ApiError;
use super::headers::{self, format_ms};
use super::request::{self, BodyLimits};
use crate::cost::Cost;
use crate::cost::account::Account;
use crate::dispatch::{self, Outcome, Plan};
use crate::gateway::Gateway;
use crate::openai::ChatRequest;
use crate::routing::{Caller, Decision};
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request on its way through the phases.
pub struct Ctx {
    /// The config this request started on; a reload mid-request does not change it.
    pub gw: Arc<Gateway>,
    account: Account,
    /// The client's headers: routing rules and `x-switchyard-no-fallback` read them.
    headers: HeaderMap,
    state: AppState,
    /// The virtual key the caller presented, when switchyard issued it.
    key: Option<key::KeyCtx>,
    /// The client's address, for the log line of a body that never arrived.
    peer: Option<SocketAddr>,
}

/// What the pipeline produced, for the handler to write in its wire format.
pub struct Reply {
    pub body: Answer,
    /// The `x-switchyard-*` facts; `None` when the request never reached routing's verdict.
    pub meta: Option<Meta>,
    /// The connection must close after this answer (its body was never fully read).
    pub close: bool,
    /// The caller's key's limits, spend and budget (`x-ratelimit-*`, `x-switchyard-key-*`).
    pub key_headers: HeaderMap,
}

pub enum Answer {
    /// A whole answer in OpenAI's chat-completion shape.
    Complete(Value),
    /// A stream in OpenAI's chunk shape; accounting happens as it is read.
    Stream(Box<Feed>),
    Error(ApiError),
}

/// What the gateway did with a request that was routed, for the response headers.
pub struct Meta {
    decision: Decision,
    outcome: Outcome,
    /// The gateway's own time and the time waited before retries, fixed when headers leave.
    timing: (Duration, Duration),
    /// Known for whole answers only: a stream's headers leave before its usage is known.
    cost: Option<Cost>,
}

/// The walk a routing decision allows.
struct Routed {
    decision: Decision,
    plan: Plan,
}

impl Ctx {
    /// Opens the request's account at once, so that a request refused before its body was read
    /// is still counted and logged with its key.
    pub fn start(
        state: &AppState,
        request_id: Arc<str>,
        key: Option<CallerKey>,
        headers: HeaderMap,
    ) -> Ctx {
        let start = Instant::now();
        let gw = state.gateway();
        let mut account = Account::start(state.sinks(), gw.clone(), request_id, start);
        let key = key.and_then(|k| {
            account.caller_key(Some(k.suffix));
            let vk = k.key?;
            account.virtual_key(&vk.name, vk.team.as_deref());
            let team = vk
                .team
                .as_deref()
                .and_then(|t| state.keys().and_then(|keys| keys.team(t)));
            Some(key::KeyCtx::new(
                vk,
                team,
                state.ledger().clone(),
                state.metrics().key_refusals.clone(),
            ))
        });
        Ctx {
            gw,
            account,
            headers,
            state: state.clone(),
            key,
            peer: None,
        }
    }

    /// Names the API the request came in on (`chat/completions`, `messages`, `embeddings`) for
    /// its account, before the body is read.
    pub fn endpoint(mut self, endpoint: &'static str) -> Ctx {
        self.account.endpoint(endpoint);
        self
    }

    /// Resolves when shutdown starts, so a body still arriving stops being waited for.
    pub async fn drain_started(&self) {
        self.state.drain_started().await;
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The size and time a body may take under this request's config.
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits::of(&self.gw)
    }

    /// A request whose body could not be read or understood. A body that stopped arriving, or
    /// that shutdown interrupted, leaves the connection unusable: the answer closes it, and both
    /// are counted.
    pub fn unreadable(self, e: ApiError) -> Reply {
        let peer = self.peer;
        let edge = &self.state.metrics().edge;
        let close = match e.body.error.code.as_deref() {
            Some(request::BODY_TIMEOUT) => {
                edge.client_timeouts.with_label_values(&["body"]).inc();
                tracing::warn!(
                    request_id = %self.account.request_id,
                    peer = peer.map(tracing::field::display),
                    phase = "body",
                    "closing a connection whose request body did not arrive within server.body_read_timeout"
                );
                true
            }
            Some(request::DRAINING) => {
                edge.shed.with_label_values(&["draining"]).inc();
                true
            }
            _ => false,
        };
        let mut reply = self.refuse(e, None);
        reply.close = close;
        reply
    }

    /// Who is calling and what they asked for, noted on the account before anything is decided;
    /// a virtual key is counted against its rate limits.
    async fn admit(&mut self, req: &ChatRequest) -> Result<(), ApiError> {
        self.account.request(req);
        self.account.requested_model = Some(req.model.clone());
        self.account.stream = req.is_stream();
        if let Some(k) = &mut self.key {
            self.account
                .hold(k.admit(|| crate::tokens::estimate_prompt(req)).await?);
        }
        Ok(())
    }

    /// The worst case of the routed request reserved against its key's budget.
    async fn reserve(&mut self, req: &ChatRequest, r: &Routed) -> Result<(), ApiError> {
        if let Some(k) = &self.key {
            self.account
                .hold(k.reserve(&self.gw, req, &r.decision, &r.plan).await?);
        }
        Ok(())
    }

    /// The key's headers, with the tiers its restrictions made this request skip.
    fn key_headers(&self, outcome: Option<&Outcome>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = &self.key {
            k.headers(outcome.map_or(&[][..], |o| &o.skipped), &mut h);
        }
        h
    }

    /// The routing decision and the walk it allows, or the error a client gets for a model this
    /// gateway does not serve.
    async fn route(&mut self, req: &ChatRequest) -> Result<Routed, ApiError> {
        let caller = self.key.as_ref().map_or_else(Caller::default, |k| Caller {
            name: Some(&k.key.name),
            team: k.key.team.as_deref(),
            metadata: Some(&k.key.metadata),
        });
        if self.gw.router.is_embedding(&req.model) {
            let e = ApiError::invalid_request(
                format!(
                    "`{}` is an embedding model; it answers POST /v1/embeddings, not chat requests.",
                    req.model
                ),
                Some("model".into()),
            )
            .with_code("model_not_chat");
            return Err(e);
        }
        let decided = self.gw.router.decide_for(req, &self.headers, caller).await;
        let Some(mut decision) = decided else {
            return Err(unknown_model(&self.gw, &req.model));
        };
        let allowed = match &mut self.key {
            Some(k) => k.restrict(&self.gw, &mut decision)?,
            None => None,
        };
        self.account.decided(&decision);
        let fallback = !headers::flag(&self.headers, &headers::NO_FALLBACK);
        let Some(mut plan) = dispatch::plan(&self.gw.tables, &decision, fallback) else {
            return Err(ApiError::not_found(format!(
                "The model `{}` is not configured.",
                req.model
            ))
            .with_code("model_not_found"));
        };
        plan.allowed = allowed;
        Ok(Routed { decision, plan })
    }

    /// A stream: dispatch until the first chunk, then hand the rest to a [`Feed`] that accounts
    /// for it as the client reads it.
    async fn stream(mut self, req: ChatRequest, r: Routed) -> Reply {
        let progress = self.account.progress();
        let (result, outcome) =
            dispatch::chat_stream(&self.gw.tables, &req, &r.plan, &progress).await;
        self.account.dispatched(&outcome);
        match result {
            Ok((first, rest)) => {
                let timing = self.account.overhead();
                self.account.keep_request(req);
                let key_headers = self.key_headers(Some(&outcome));
                let feed = Box::new(Feed::new(first, rest, self.gw.clone(), self.account));
                Reply {
                    body: Answer::Stream(feed),
                    meta: Some(Meta::new(r.decision, outcome, timing, None)),
                    close: false,
                    key_headers,
                }
            }
            Err(e) => {
                let err = self.provider_error(&e, &r.decision);
                let timing = self.account.overhead();
                self.refuse(err, Some(Meta::new(r.decision, outcome, timing, None)))
            }
        }
    }

    /// A whole answer, through the cascade when the decision made the request cascadable.
    async fn complete(mut self, req: ChatRequest, r: Routed) -> Reply {
        let progress = self.account.progress();
        let gw = self.gw.clone();
        let (result, outcome) = dispatch::answer(
            &gw.tables,
            gw.cascade.as_ref(),
            &r.decision,
            &req,
            &r.plan,
            &progress,
        )
        .await;
        self.account.dispatched(&outcome);
        self.account.bill_discarded(&outcome, &req);
        match result {
            Ok(answer) => {
                self.account.answered(answer.usage, &req, &answer.body);
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

    fn provider_error(&self, e: &crate::providers::ProviderError, d: &Decision) -> ApiError {
        let model = self.account.model.clone().unwrap_or_else(|| d.tier.clone());
        ApiError::from_provider(e, &model, &self.gw.redactor)
    }

    /// Ends the request with an error: the account is settled with its status and message.
    fn refuse(mut self, e: ApiError, meta: Option<Meta>) -> Reply {
        self.account
            .finish(e.status.as_u16(), Some(&e.body.error.message));
        let key_headers = self.key_headers(meta.as_ref().map(|m| &m.outcome));
        Reply {
            body: Answer::Error(e),
            meta,
            close: false,
            key_headers,
        }
    }
}

/// The 404 for a `model` that names nothing this gateway serves, listing what it does.
pub fn unknown_model(gw: &Gateway, model: &str) -> ApiError {
    let available: Vec<&str> = gw.router.model_names().collect();
    let mut e = ApiError::not_found(format!(
        "The model `{model}` does not exist on this gateway. Available: {}.",
        available.join(", ")
    ))
    .with_code("model_not_found");
    e.body.error.param = Some("model".into());
    e
}

impl Reply {
    /// The response: `body` writes the answer in the handler's wire format; the gateway's
    /// headers (routing facts, the key's limits, `connection: close`) are the same for all.
    pub fn respond(self, body: impl FnOnce(Answer) -> Response) -> Response {
        let mut resp = body(self.body);
        let h = resp.headers_mut();
        if let Some(meta) = &self.meta {
            meta.write(h);
        }
        for (name, value) in &self.key_headers {
            h.insert(name.clone(), value.clone());
        }
        if self.close {
            h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Admit, route, dispatch, account: one request from its parsed body to the answer.
pub async fn run(mut ctx: Ctx, req: ChatRequest) -> Reply {
    if let Err(e) = ctx.admit(&req).await {
        return ctx.refuse(e, None);
    }
    let routed = match ctx.route(&req).await {
        Ok(r) => r,
        Err(e) => return ctx.refuse(e, None),
    };
    if let Err(e) = ctx.reserve(&req, &routed).await {
        return ctx.refuse(e, None);
    }
    if req.is_stream() {
        ctx.stream(req, routed).await
    } else {
        ctx.complete(req, routed).await
    }
}

impl Meta {
    fn new(
        decision: Decision,
        outcome: Outcome,
        timing: (Duration, Duration),
        cost: Option<Cost>,
    ) -> Meta {
        Meta {
            decision,
            outcome,
            timing,
            cost,
        }
    }

    /// The `x-switchyard-*` response headers: where the request went, how, at what cost.
    pub fn write(&self, h: &mut HeaderMap) {
        let (d, o) = (&self.decision, &self.outcome);
        let mut set = |name, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        set(headers::ROUTE, &dispatch::route_label(d, Some(o)));
        match &o.served {
            Some(c) => {
                set(headers::TIER, &c.tier);
                set(headers::MODEL, &c.model.name);
            }
            None => set(headers::TIER, &d.tier),
        }
        set(headers::ATTEMPTS, &o.attempts.to_string());
        if !o.walked.is_empty() {
            set(headers::FALLBACKS, &o.chain());
        }
        if let Some(c) = &o.cascade {
            let value = match c.reason {
                Some(r) => format!("{}:{}", c.outcome.as_str(), r.as_str()),
                None => c.outcome.as_str().to_string(),
            };
            set(headers::CASCADE, &value);
        }
        set(headers::OVERHEAD_MS, &format_ms(self.timing.0));
        set(headers::WAIT_MS, &format_ms(self.timing.1));
        headers::cost_headers(h, self.cost.as_ref());
    }
}
