//! Writing a provider's chunks to the client as server-sent events, one event per chunk as it
//! arrives. The usage report is captured on the way for accounting, and hidden from clients that
//! did not ask for it. Dropping the body (client gone) drops the upstream stream, which closes the
//! upstream connection and so cancels the generation.

use crate::cost::account::{Account, StreamEnd};
use crate::dispatch::{Broken, Rest};
use crate::gateway::Gateway;
use crate::openai::{ErrorBody, Usage};
use crate::providers::{ErrorKind, ProviderError};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;

struct State {
    first: Option<Value>,
    rest: Rest,
    wants_usage: bool,
    /// Kept for the stream's lifetime: it is the config this request started on.
    gw: Arc<Gateway>,
    done: bool,
    rec: Account,
}

const DONE: &[u8] = b"data: [DONE]\n\n";

pub fn respond(
    first: Value,
    rest: Rest,
    wants_usage: bool,
    gw: Arc<Gateway>,
    rec: Account,
) -> Response {
    let state = State {
        first: Some(first),
        rest,
        wants_usage,
        gw,
        done: false,
        rec,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let item = match st.first.take() {
                Some(v) => Some(Ok(v)),
                None => st.rest.next().await,
            };
            match item {
                Some(Ok(chunk)) => {
                    if let Some(bytes) = st.encode(chunk) {
                        return Some((Ok::<Bytes, Infallible>(bytes), st));
                    }
                }
                Some(Err(Broken { error, cooled })) => {
                    st.done = true;
                    let event = st.fail(&error, cooled.map(|c| c.class.label()));
                    return Some((Ok(event), st));
                }
                None => {
                    st.done = true;
                    st.rec.stream_end = Some(StreamEnd::Complete);
                    st.rec.finish(200, None);
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

impl State {
    /// Serializes one chunk as an SSE event, or `None` for a usage report the client did not ask for.
    fn encode(&mut self, mut chunk: Value) -> Option<Bytes> {
        self.rec.streamed(&chunk);
        if let Some(obj) = chunk.as_object_mut() {
            match obj.get("usage").and_then(Usage::from_openai) {
                Some(u) => {
                    self.rec.usage = Some(u);
                    if !self.wants_usage {
                        let only_usage = obj
                            .get("choices")
                            .and_then(Value::as_array)
                            .is_none_or(Vec::is_empty);
                        if only_usage {
                            return None;
                        }
                        obj.remove("usage");
                    }
                }
                None if !self.wants_usage => {
                    obj.remove("usage");
                }
                None => {}
            }
        }
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut buf, &chunk).ok()?;
        buf.extend_from_slice(b"\n\n");
        Some(Bytes::from(buf))
    }

    /// The stream broke after bytes were sent: the status is already 200, so the error travels as
    /// an event in OpenAI's error shape, which the SDKs raise as an exception.
    fn fail(&mut self, e: &ProviderError, cooled: Option<&'static str>) -> Bytes {
        let model = self.rec.model.clone().unwrap_or_else(|| "upstream".into());
        let kind = match e.kind {
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::InvalidResponse
            | ErrorKind::Server
            | ErrorKind::Connect
            | ErrorKind::CutOff
            | ErrorKind::Timeout => "api_error",
            // The provider rejected switchyard's key, not the client's.
            ErrorKind::Auth => "upstream_authentication_error",
            _ => "invalid_request_error",
        };
        let message = self.gw.redactor.redact(&format!(
            "{model}: {} (the stream was interrupted)",
            e.message
        ));
        // The provider's own code says more than our reason when it sent one.
        let code = e.code.as_deref().unwrap_or(e.kind.reason());
        let body = ErrorBody::new(message, kind, None, Some(code));
        let status = match e.kind {
            ErrorKind::Timeout => 504,
            ErrorKind::RateLimit => 429,
            _ => 502,
        };
        self.rec.stream_failed(e, cooled);
        self.rec.finish(status, Some(&body.error.message));
        let mut buf = b"data: ".to_vec();
        if serde_json::to_writer(&mut buf, &body).is_err() {
            buf.extend_from_slice(br#"{"error":{"message":"stream interrupted","type":"api_error","param":null,"code":null}}"#);
        }
        buf.extend_from_slice(b"\n\n");
        Bytes::from(buf)
    }
}
