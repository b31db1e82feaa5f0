//! `POST /v1/chat/completions`: OpenAI's wire format in and out. The request's path itself is
//! the shared [`pipeline`](super::pipeline).

use super::headers;
use super::pipeline::{self, Answer, Ctx};
use super::{request, sse};
use axum::body::Body;
use axum::response::{IntoResponse, Response};

pub async fn completions(ctx: Ctx, body: Body) -> Response {
    let ctx = ctx.endpoint("chat/completions");
    let read = request::read(ctx.headers(), body, ctx.body_limits(), ctx.drain_started()).await;
    let req = match read {
        Ok(r) => r,
        Err(e) => return ctx.unreadable(e).respond(|a| write(a, false)),
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
