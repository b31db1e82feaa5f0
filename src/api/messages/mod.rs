//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API in and
//! out, for the Anthropic SDKs and the coding agents built on them (`ANTHROPIC_BASE_URL`). The
//! request's path is the shared [`pipeline`](super::pipeline), exactly as for chat: this module
//! translates at the edges, it never routes, dispatches or prices.
//!
//! `request` turns the Messages request into a chat request (which keeps the original, for an
//! Anthropic upstream to receive as sent), `response` and `stream` write the pipeline's answer as
//! a message or as Anthropic's event sequence, `error` gives every refusal Anthropic's shape.
//! Must not import `providers`, `dispatch` or `cost`.

pub mod error;
mod request;
mod response;
mod stream;

use super::auth::CallerKey;
use super::error::ApiError;
use super::pipeline::{self, Answer, Ctx};
use super::request_id::RequestId;
use super::{AppState, headers, request as body};
use crate::anthropic::MessagesRequest;
use crate::openai::ChatRequest;
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::json;
use std::net::SocketAddr;

/// The body as a chat request, or a 400 naming the offending field.
fn parse(bytes: &[u8], needs_max_tokens: bool) -> Result<ChatRequest, ApiError> {
    let req: MessagesRequest = body::decode(bytes)?;
    request::to_chat(req, needs_max_tokens)
        .map_err(|(param, msg)| ApiError::invalid_request(format!("{param}: {msg}"), Some(param)))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    key: Option<Extension<CallerKey>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    raw: Body,
) -> Response {
    let ctx = Ctx::start(&state, request_id, key.map(|Extension(k)| k), headers);
    let read = body::read_bytes(ctx.headers(), raw, ctx.body_limits(), state.drain_started())
        .await
        .and_then(|b| parse(&b, true));
    let req = match read {
        Ok(r) => r,
        Err(e) => {
            let peer = peer.map(|Extension(ConnectInfo(p))| p);
            return ctx.unreadable(e, peer).respond(|a| write(a, "", None));
        }
    };
    // `message_start` leaves before the upstream reports usage; it carries the gateway's count.
    let stream = req
        .is_stream()
        .then(|| stream::Translator::new(req.model.clone(), crate::tokens::estimate_prompt(&req)));
    let model = req.model.clone();
    pipeline::run(ctx, req)
        .await
        .respond(|a| write(a, &model, stream))
}

/// The pipeline's answer in Anthropic's shape; errors are reshaped by [`error::layer`].
fn write(answer: Answer, model: &str, stream: Option<stream::Translator>) -> Response {
    match answer {
        Answer::Complete(body) => headers::json(&response::to_message(&body, model)),
        Answer::Stream(feed) => {
            let t = stream.unwrap_or_else(|| stream::Translator::new(model.to_string(), 0));
            stream::respond(feed, t)
        }
        Answer::Error(e) => e.into_response(),
    }
}

/// `{"input_tokens": N}`, counted with the gateway's tokenizer (the count routing rules and the
/// context-window check use); no upstream is called and nothing is billed.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Body,
) -> Response {
    let gw = state.gateway();
    let read = body::read_bytes(
        &headers,
        raw,
        body::BodyLimits::of(&gw),
        state.drain_started(),
    )
    .await
    .and_then(|b| parse(&b, false));
    let req = match read {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if matches!(
        gw.router.resolve(&req.model),
        crate::routing::Requested::Unknown
    ) {
        return pipeline::unknown_model(&gw, &req.model).into_response();
    }
    headers::json(&json!({ "input_tokens": crate::tokens::estimate_prompt(&req) }))
}
