//! A request that arrived as an Anthropic Messages request: sent as the client wrote it (thinking,
//! documents, cache markers and fields this gateway does not know included), with only what the
//! call decides replaced: the upstream's model id, the stream flag, and an output limit when the
//! client gave none.

use super::super::super::Call;
use super::params::DEFAULT_MAX_TOKENS;
use super::{ErrorKind, ProviderError};
use crate::anthropic::MessagesRequest;
use serde_json::Value;

pub(super) fn body(
    sent: &MessagesRequest,
    call: &Call<'_>,
    stream: bool,
) -> Result<Value, ProviderError> {
    let encoded = serde_json::to_value(sent).map_err(|e| {
        ProviderError::new(
            ErrorKind::BadRequest,
            format!("the Messages request could not be encoded: {e}"),
        )
    })?;
    let Value::Object(mut body) = encoded else {
        return Err(ProviderError::new(
            ErrorKind::BadRequest,
            "the Messages request is not a JSON object",
        ));
    };
    body.insert("model".into(), Value::String(call.model.to_string()));
    if !body.contains_key("max_tokens") {
        let max = call.max_output_tokens.map_or(DEFAULT_MAX_TOKENS, u64::from);
        body.insert("max_tokens".into(), Value::from(max));
    }
    // Routing hints alone leave an empty object, which says nothing upstream.
    if body
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(serde_json::Map::is_empty)
    {
        body.remove("metadata");
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    } else {
        body.remove("stream");
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::Call;
    use crate::openai::ChatRequest;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn sends_the_client_body_with_the_calls_model_and_stream_flag() {
        let sent = json!({
            "model": "claude-alias", "max_tokens": 300, "stream": true,
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}, "citations": {"enabled": true}}
            ]}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "top_k": 5,
            "metadata": {"task_type": "review"}
        });
        let mut req: ChatRequest = serde_json::from_value(
            json!({"model": "claude-alias", "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        req.anthropic = Some(Arc::new(serde_json::from_value(sent.clone()).unwrap()));
        let call = Call {
            request: &req,
            model: "claude-upstream-1",
            max_output_tokens: None,
            stream_usage: false,
        };
        let body = super::super::build(&call, false).unwrap();
        let mut want = sent;
        want["model"] = json!("claude-upstream-1");
        let w = want.as_object_mut().unwrap();
        w.remove("stream");
        w.remove("metadata");
        assert_eq!(body, want);
        assert_eq!(super::super::build(&call, true).unwrap()["stream"], true);
    }
}
