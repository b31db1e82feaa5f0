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

use super::error::ApiError;
use super::pipeline::{self, Answer, Ctx};
use super::{AppState, headers, request as body};
use crate::anthropic::MessagesRequest;
use crate::openai::ChatRequest;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::json;

/// The body as a chat request, or a 400 naming the offending field.
fn parse(bytes: &[u8], needs_max_tokens: bool, h: &HeaderMap) -> Result<ChatRequest, ApiError> {
    let mut req: MessagesRequest = body::decode(bytes)?;
    req.beta = h
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    request::to_chat(req, needs_max_tokens)
        .map_err(|(param, msg)| ApiError::invalid_request(format!("{param}: {msg}"), Some(param)))
}

pub async fn create(ctx: Ctx, raw: Body) -> Response {
    let ctx = ctx.endpoint("messages");
    let read = body::read_bytes(ctx.headers(), raw, ctx.body_limits(), ctx.drain_started())
        .await
        .and_then(|b| parse(&b, true, ctx.headers()));
    let req = match read {
        Ok(r) => r,
        Err(e) => return ctx.unreadable(e).respond(|a| write(a, "", None)),
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
    .and_then(|b| parse(&b, false, &headers));
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

/// Property tests: whatever arrives, `parse` answers without panicking; a refusal is a 400 whose
/// Anthropic message is not empty; what it accepts can be counted and sent on natively.
#[cfg(test)]
mod properties {
    use super::parse;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("type".to_string()),
            Just("text".to_string()),
            Just("source".to_string()),
            Just("content".to_string()),
            Just("tool_use_id".to_string()),
            Just("id".to_string()),
            Just("name".to_string()),
            Just("input".to_string()),
            Just("media_type".to_string()),
            Just("data".to_string()),
            "\\PC{0,6}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (0.0f64..2.0).prop_map(|f| json!(f)),
            prop_oneof![
                Just("text".to_string()),
                Just("image".to_string()),
                Just("document".to_string()),
                Just("tool_use".to_string()),
                Just("tool_result".to_string()),
                Just("base64".to_string()),
                Just("url".to_string()),
                "\\PC{0,10}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A Messages request that is nearly right: roles and the top-level fields, anything inside.
    fn near_request() -> impl Strategy<Value = Value> {
        let message = (
            prop_oneof![Just(json!("user")), Just(json!("assistant")), value()],
            value(),
        )
            .prop_map(|(role, content)| json!({"role": role, "content": content}));
        (
            vec(message, 0..4),
            prop_oneof![Just(json!(64)), value()],
            btree_map(
                prop_oneof![
                    Just("system".to_string()),
                    Just("tools".to_string()),
                    Just("tool_choice".to_string()),
                    Just("metadata".to_string()),
                    Just("stop_sequences".to_string()),
                    Just("temperature".to_string()),
                    Just("stream".to_string()),
                ],
                value(),
                0..4,
            ),
        )
            .prop_map(|(messages, max_tokens, extra)| {
                let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
                m.insert("model".into(), json!("auto"));
                m.insert("max_tokens".into(), max_tokens);
                m.insert("messages".into(), Value::Array(messages));
                Value::Object(m)
            })
    }

    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        match parse(bytes, true, &http::HeaderMap::new()) {
            Ok(r) => {
                prop_assert!(!r.messages.is_empty());
                let _ = crate::tokens::estimate_prompt(&r);
                prop_assert!(r.anthropic.is_some());
            }
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                let body = super::error::body(&e.body, 400);
                prop_assert_eq!(&body["error"]["type"], "invalid_request_error");
                prop_assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..200)) {
            check(&bytes)?;
        }

        #[test]
        fn nearly_valid_requests(v in near_request()) {
            check(&serde_json::to_vec(&v).unwrap_or_default())?;
        }
    }
}
