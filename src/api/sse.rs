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

struct State {
    feed: Box<Feed>,
    wants_usage: bool,
    /// Set once the last event (`[DONE]` or an error) is out.
    ended: bool,
}

pub fn respond(feed: Box<Feed>, wants_usage: bool) -> Response {
    let state = State {
        feed,
        wants_usage,
        ended: false,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            match st.feed.next().await {
                Some(Event::Chunk { chunk, usage }) => {
                    if let Some(bytes) = encode(chunk, usage, st.wants_usage) {
                        return Some((Ok::<Bytes, Infallible>(bytes), st));
                    }
                }
                Some(Event::Failed(body)) => {
                    st.ended = true;
                    return Some((Ok(event(&body).unwrap_or_else(fallback_error)), st));
                }
                None => {
                    st.ended = true;
                    return Some((Ok(Bytes::from_static(DONE)), st));
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
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
