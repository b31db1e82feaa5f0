//! OpenAI chat request → Anthropic Messages request body.
//!
//! The translation is an allow-list: only fields with an Anthropic meaning are sent, because
//! Anthropic answers any unknown key with a 400. Requests that cannot be honoured faithfully fail
//! here with a `BadRequest` naming the offending parameter, before anything is sent.
//!
//! This file owns the body's assembly and the order its parts are checked in (the first problem
//! found is the one reported); `params` the top-level settings, `messages` the conversation,
//! `content` the content parts inside a message, `tools` the tool definitions, the choice among
//! them, and the calls and results in the conversation; `native` a request that arrived in
//! Anthropic's own format and needs no translation. None of them imports anything outside
//! the provider layer and the OpenAI and Anthropic wire types.

mod content;
mod messages;
mod native;
mod params;
mod tools;

use super::super::{Call, ErrorKind, ProviderError};
use serde_json::{Map, Value};

/// A `BadRequest` naming the offending parameter, as OpenAI clients expect to see it.
fn bad(param: impl Into<String>, message: impl Into<String>) -> ProviderError {
    let mut e = ProviderError::new(ErrorKind::BadRequest, message);
    e.param = Some(param.into());
    e
}

/// A top-level field, treating an explicit `null` like an absent one (as OpenAI does).
fn field<'a>(extra: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    extra.get(key).filter(|v| !v.is_null())
}

/// Builds the body for `POST /v1/messages`.
pub(super) fn build(call: &Call<'_>, stream: bool) -> Result<Value, ProviderError> {
    if let Some(sent) = &call.request.anthropic {
        return native::body(sent, call, stream);
    }
    let extra = &call.request.extra;
    params::reject_unsupported(extra)?;
    let (system, messages) = messages::conversation(&call.request.messages)?;

    let mut body = Map::new();
    body.insert("model".into(), Value::String(call.model.to_string()));
    body.insert("max_tokens".into(), Value::from(params::max_tokens(call)?));
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = params::stop_sequences(extra)? {
        body.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = params::temperature(extra)? {
        body.insert("temperature".into(), t);
    }
    if let Some(p) = params::top_p(extra)? {
        body.insert("top_p".into(), p);
    }
    if let Some(k) = params::top_k(extra)? {
        body.insert("top_k".into(), k);
    }
    if let Some(m) = params::metadata(extra)? {
        body.insert("metadata".into(), m);
    }
    if let Some(tools) = tools::tools(extra)? {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tools::tool_choice(extra)? {
            body.insert("tool_choice".into(), choice);
        }
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

/// What the modules' tests share: building a body from an OpenAI request written as JSON.
#[cfg(test)]
mod testing {
    use super::super::super::{Call, ErrorKind, ProviderError};
    use crate::openai::ChatRequest;
    use serde_json::Value;

    pub(super) fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    pub(super) fn build_with(
        v: Value,
        max_output_tokens: Option<u32>,
        stream: bool,
    ) -> Result<Value, ProviderError> {
        let req = request(v);
        let call = Call {
            request: &req,
            model: "claude-test",
            max_output_tokens,
            stream_usage: false,
        };
        super::build(&call, stream)
    }

    pub(super) fn translate(v: Value) -> Value {
        build_with(v, None, false).unwrap()
    }

    pub(super) fn rejected(v: Value) -> ProviderError {
        let e = build_with(v, None, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
        e
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{build_with, translate};
    use serde_json::json;

    #[test]
    fn plain_conversation_with_systems_anywhere() {
        let body = translate(json!({
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "How are you?"}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-42",
            "seed": 7,
            "metadata": {"task_type": "chat"}
        }));
        assert_eq!(
            body,
            json!({
                "model": "claude-test",
                "max_tokens": 4096,
                "system": "Be brief.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "How are you?"}
                ],
                "temperature": 0.2,
                "top_p": 0.9,
                "metadata": {"user_id": "u-42"}
            })
        );
    }

    #[test]
    fn stream_flag_only_when_streaming() {
        let r = json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": true,
            "stream_options": {"include_usage": true}});
        assert_eq!(
            build_with(r.clone(), None, true).unwrap()["stream"],
            json!(true)
        );
        let body = build_with(r, None, false).unwrap();
        assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
    }
}
