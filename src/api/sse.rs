//! A stream written as OpenAI's server-sent events: one `data:` event per chunk as it arrives, an
//! error event in OpenAI's error shape (which the SDKs raise) when the stream breaks, `[DONE]`
//! after a clean end. The usage report is hidden from clients that did not ask for it
//! (`stream_options.include_usage`); the feed has already accounted for it.

use super::pipeline::{Event, Feed};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::Value;
use std::convert::Infallible;

const DONE: &[u8] = b"data: [DONE]\n\n";

pub fn respond(feed: Box<Feed>, wants_usage: bool) -> Response {
    events(feed, move |ev| match ev {
        Some(Event::Chunk { chunk, usage }) => encode(chunk, usage.is_some(), wants_usage),
        Some(Event::Failed { body, .. }) => Some(event(&body).unwrap_or_else(fallback_error)),
        None => Some(Bytes::from_static(DONE)),
    })
}

/// A feed written as server-sent events in whichever wire format: `write` turns each event, and
/// the clean end (`None`), into the bytes to send, or nothing. Nothing follows a failure or the end.
pub fn events(
    feed: Box<Feed>,
    write: impl FnMut(Option<Event>) -> Option<Bytes> + Send + 'static,
) -> Response {
    let state = (feed, write, false);
    let body = futures_util::stream::unfold(state, |(mut feed, mut write, ended)| async move {
        if ended {
            return None;
        }
        loop {
            let ev = feed.next().await;
            let last = !matches!(ev, Some(Event::Chunk { .. }));
            if let Some(bytes) = write(ev) {
                return Some((Ok::<Bytes, Infallible>(bytes), (feed, write, last)));
            }
            if last {
                return None;
            }
        }
    });
    event_stream(Body::from_stream(body))
}

/// A response carrying server-sent events, in whichever wire format: not cached, and not
/// buffered by a proxy in front (`x-accel-buffering`), so each event reaches the client as sent.
pub fn event_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// One chunk as an SSE event, or `None` for a usage report the client did not ask for.
/// `usage`: the chunk carries a usage report.
fn encode(mut chunk: Value, usage: bool, wants_usage: bool) -> Option<Bytes> {
    if !wants_usage && let Some(obj) = chunk.as_object_mut() {
        let only_usage = obj
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if only_usage && usage {
            return None;
        }
        obj.remove("usage");
    }
    event(&chunk)
}

fn event(v: &impl serde::Serialize) -> Option<Bytes> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut buf, v).ok()?;
    buf.extend_from_slice(b"\n\n");
    Some(Bytes::from(buf))
}

fn fallback_error() -> Bytes {
    Bytes::from_static(
        br#"data: {"error":{"message":"stream interrupted","type":"api_error","param":null,"code":null}}

"#,
    )
}
