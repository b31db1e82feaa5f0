//! Token counts for answers whose provider reported no usage (some OpenAI-compatible servers, a
//! stream the client abandoned before the usage chunk): the prompt as the router counts it and the
//! answer's text, both with the o200k tokenizer. Costs built on these are marked as estimated.

use crate::openai::{ChatRequest, Usage};
use crate::tokens;
use serde_json::Value;

/// Appends what the model generated in one `choices[]` entry: message or delta content, refusals,
/// and tool-call names and arguments (tool calls are billed as output tokens too).
fn push_choice_text(m: &Value, out: &mut String) {
    for key in ["content", "refusal", "reasoning_content"] {
        if let Some(s) = m.get(key).and_then(Value::as_str) {
            out.push_str(s);
        }
    }
    for call in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(f) = call.get("function") {
            for key in ["name", "arguments"] {
                if let Some(s) = f.get(key).and_then(Value::as_str) {
                    out.push_str(s);
                }
            }
        }
    }
}

/// The generated text of a `chat.completion` body.
pub fn answer_text(body: &Value) -> String {
    let mut out = String::new();
    for c in body
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(m) = c.get("message") {
            push_choice_text(m, &mut out);
        }
    }
    out
}

/// Appends the generated text of one `chat.completion.chunk`.
pub fn push_delta_text(chunk: &Value, out: &mut String) {
    for c in chunk
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(d) = c.get("delta") {
            push_choice_text(d, out);
        }
    }
}

/// Usage counted locally for a request and the text generated for it.
pub fn usage(req: &ChatRequest, answer: &str) -> Usage {
    Usage {
        prompt_tokens: tokens::estimate_prompt(req),
        completion_tokens: tokens::count(answer),
        cached_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_answer_and_stream_text() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "hello world",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]});
        assert_eq!(answer_text(&body), "hello worldf{}");
        let mut s = String::new();
        for part in ["hello", " world"] {
            push_delta_text(&json!({"choices": [{"delta": {"content": part}}]}), &mut s);
        }
        push_delta_text(&json!({"choices": [], "usage": null}), &mut s);
        assert_eq!(s, "hello world");
        let req: ChatRequest = serde_json::from_value(
            json!({"model": "auto", "messages": [{"role": "user", "content": "hello world"}]}),
        )
        .unwrap();
        assert_eq!(
            usage(&req, &s),
            Usage {
                prompt_tokens: 3 + 4 + 2,
                completion_tokens: 2,
                cached_tokens: 0
            }
        );
    }
}
