//! Anthropic message → OpenAI `chat.completion`.

use super::super::{ChatResponse, ProviderError};
use crate::anthropic::finish_reason;
use crate::openai::{Usage, unix_now};
use serde_json::{Value, json};

/// OpenAI's tool call shape for an Anthropic `tool_use` block (the call's `arguments` are a JSON
/// string, not an object).
fn tool_call(block: &Value) -> Result<Value, ProviderError> {
    let id = block.get("id").and_then(Value::as_str);
    let name = block.get("name").and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(ProviderError::invalid_response(
            "the provider's tool_use block has no id or name",
        ));
    };
    let arguments = block
        .get("input")
        .map_or_else(|| "{}".to_string(), Value::to_string);
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// Thinking, server-tool and other block types have no place in a `chat.completion` and are
/// skipped, so a model that thinks or uses server tools still yields its answer.
pub(super) fn to_openai(msg: &Value, fallback_model: &str) -> Result<ChatResponse, ProviderError> {
    if msg.get("type").and_then(Value::as_str) != Some("message") {
        return Err(ProviderError::invalid_response(
            "the provider's answer is not an Anthropic message",
        ));
    }
    let (Some(id), Some(blocks)) = (
        msg.get("id").and_then(Value::as_str),
        msg.get("content").and_then(Value::as_array),
    ) else {
        return Err(ProviderError::invalid_response(
            "the provider's message has no id or content array",
        ));
    };

    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use") => tool_calls.push(tool_call(block)?),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if has_text { Value::String(text) } else { Value::Null },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }

    let usage = msg
        .get("usage")
        .filter(|u| u.is_object())
        .map(Usage::from_anthropic);
    let finish = msg
        .get("stop_reason")
        .and_then(Value::as_str)
        .map_or("stop", finish_reason);
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": msg.get("model").and_then(Value::as_str).unwrap_or(fallback_model),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
    });
    if let Some(u) = usage {
        body["usage"] = u.to_openai();
    }
    Ok(ChatResponse { body, usage })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Usage;
    use crate::providers::ErrorKind;

    #[test]
    fn text_answer_with_cache_usage() {
        let msg = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 1000, "output_tokens": 5}
        });
        let r = to_openai(&msg, "fallback").unwrap();
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 1110,
                completion_tokens: 5,
                cached_tokens: 1000
            })
        );
        let created = r.body["created"].clone();
        assert!(created.as_u64().is_some_and(|c| c > 1_700_000_000));
        assert_eq!(
            r.body,
            json!({
                "id": "msg_01", "object": "chat.completion", "created": created, "model": "claude-sonnet-4-5",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world"},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1110, "completion_tokens": 5, "total_tokens": 1115,
                          "prompt_tokens_details": {"cached_tokens": 1000}}
            })
        );
    }

    #[test]
    fn tool_use_answer() {
        let msg = json!({
            "id": "msg_02", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "output_tokens": 30}
        });
        let r = to_openai(&msg, "fallback").unwrap();
        assert_eq!(r.body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            r.body["choices"][0]["message"],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]})
        );
        assert_eq!(
            r.body["usage"],
            json!({"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50})
        );
    }

    #[test]
    fn finish_reasons_in_answers() {
        for (stop, finish) in [
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("refusal", "content_filter"),
        ] {
            let msg = json!({"id": "m", "type": "message", "content": [], "stop_reason": stop, "usage": {}});
            assert_eq!(
                to_openai(&msg, "x").unwrap().body["choices"][0]["finish_reason"],
                finish
            );
        }
        let msg = json!({"id": "m", "type": "message", "content": []});
        let r = to_openai(&msg, "fallback").unwrap();
        assert_eq!(r.body["model"], "fallback");
        assert!(r.usage.is_none() && r.body.get("usage").is_none());
    }

    #[test]
    fn malformed_messages_are_invalid_responses() {
        for bad in [
            json!({"hello": "world"}),
            json!([1, 2]),
            json!({"type": "message", "id": "m"}),
            json!({"type": "message", "id": "m", "content": [{"type": "tool_use", "input": {}}]}),
        ] {
            assert_eq!(
                to_openai(&bad, "x").unwrap_err().kind,
                ErrorKind::InvalidResponse,
                "{bad}"
            );
        }
    }
}
