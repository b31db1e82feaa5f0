//! A whole answer, as the pipeline returns it (OpenAI's `chat.completion`), in Anthropic's
//! message shape: text and `tool_use` blocks, the stop reason, usage in Anthropic's terms.
//!
//! Must not import `providers`: the tables it shares with them live in `crate::anthropic`.

use crate::anthropic::{NATIVE, stop_reason};
use crate::openai::Usage;
use serde_json::{Value, json};

/// Anthropic's ids start with `msg_`; clients that log or match them keep working.
pub fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// The arguments of a tool call (a JSON string in OpenAI's format) as the object Anthropic's
/// `input` is. Arguments that are not an object (a model's broken JSON) are kept as a string
/// under `_raw`, so the client sees what came rather than an empty call.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw": arguments }),
    }
}

pub fn to_message(body: &Value, requested_model: &str) -> Value {
    // An Anthropic upstream's own message, thinking blocks and the matched stop sequence included.
    if let Some(m) = body.get(NATIVE).filter(|m| m.is_object()) {
        return m.clone();
    }
    let choice = body.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(text) = msg
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": name.unwrap_or_default(),
            "input": tool_input(args),
        }));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let usage = body
        .get("usage")
        .and_then(Usage::from_openai)
        .unwrap_or_default();
    json!({
        "id": message_id(body.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": body.get("model").and_then(Value::as_str).unwrap_or(requested_model),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage.to_anthropic(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_calls_become_blocks() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]
            }}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29, "prompt_tokens_details": {"cached_tokens": 5}}
        });
        assert_eq!(
            to_message(&body, "auto"),
            json!({
                "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 15, "output_tokens": 9, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn length_and_broken_arguments() {
        let body = json!({"id": "msg_7", "choices": [{"finish_reason": "length", "message": {"content": "cut",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}}]});
        let m = to_message(&body, "auto");
        assert_eq!(m["id"], "msg_7");
        assert_eq!(m["model"], "auto");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(m["content"][1]["input"], json!({"_raw": "{oops"}));
        assert_eq!(m["usage"]["output_tokens"], 0);
    }
}
