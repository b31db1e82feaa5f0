//! `POST /v1/chat/completions`: OpenAI's wire format in and out. The request's path itself is
//! the shared [`pipeline`](super::pipeline).

use super::auth::CallerKey;
use super::headers;
use super::pipeline::{self, Answer, Ctx};
use super::request_id::RequestId;
use super::{AppState, request, sse};
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use std::net::SocketAddr;

pub async fn completions(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    key: Option<Extension<CallerKey>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ctx = Ctx::start(&state, request_id, key.map(|Extension(k)| k), headers);
    let read = request::read(
        ctx.headers(),
        body,
        ctx.body_limits(),
        state.drain_started(),
    )
    .await;
    let req = match read {
        Ok(r) => r,
        Err(e) => {
            let peer = peer.map(|Extension(ConnectInfo(p))| p);
            return ctx.unreadable(e, peer).respond(|a| write(a, false));
        }
    };
    let wants_usage = req.wants_stream_usage();
    pipeline::run(ctx, req)
        .await
        .respond(|a| write(a, wants_usage))
}

/// The answer in OpenAI's shape.
fn write(answer: Answer, wants_usage: bool) -> Response {
    match answer {
        Answer::Complete(body) => headers::json(&body),
        Answer::Stream(feed) => sse::respond(feed, wants_usage),
        Answer::Error(e) => e.into_response(),
    }
}
