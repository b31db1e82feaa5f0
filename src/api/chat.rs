//! `POST /v1/chat/completions`: OpenAI's wire format in and out. The request's path itself is
//! the shared [`pipeline`](super::pipeline).

use super::auth::CallerKey;
use super::headers;
use super::pipeline::{self, Answer, Ctx, Reply};
use super::request_id::RequestId;
use super::{AppState, request, sse};
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
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
            return write(
                ctx.unreadable(e, peer.map(|Extension(ConnectInfo(p))| p)),
                false,
            );
        }
    };
    let wants_usage = req.wants_stream_usage();
    write(pipeline::run(ctx, req).await, wants_usage)
}

/// The reply in OpenAI's shape, with the gateway's headers.
fn write(reply: Reply, wants_usage: bool) -> Response {
    let mut resp = match reply.body {
        Answer::Complete(body) => headers::json(&body),
        Answer::Stream(feed) => sse::respond(feed, wants_usage),
        Answer::Error(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    if let Some(meta) = &reply.meta {
        meta.write(h);
    }
    for (name, value) in &reply.key_headers {
        h.insert(name.clone(), value.clone());
    }
    if reply.close {
        h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
