//! The conversation: OpenAI messages by role into alternating Anthropic user and assistant
//! turns, the system and developer messages into one system prompt, and an assistant turn's text
//! and tool calls.

use super::content::content_blocks;
use super::tools::{tool_result, tool_use};
use super::{ProviderError, bad};
use crate::openai::{Message, json_type};
use serde_json::{Value, json};

/// One Anthropic turn being assembled; consecutive OpenAI messages of the same role land in the
/// same turn because Anthropic requires strict user/assistant alternation.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// One text of the system prompt, with the prompt-caching marker a client may have put on it.
struct SystemText {
    text: String,
    cache_control: Option<Value>,
}

pub(super) fn conversation(
    messages: &[Message],
) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system: Vec<Vec<SystemText>> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                system.push(system_texts(m, &path)?);
                continue;
            }
            "user" => (
                "user",
                content_blocks(m.content.as_ref(), &format!("{path}.content"))?,
            ),
            "assistant" => ("assistant", assistant_blocks(m, &path)?),
            // Tool results answer the assistant's calls, so Anthropic carries them in a user turn.
            "tool" => ("user", vec![tool_result(m, &path)?]),
            "function" => {
                return Err(bad(
                    format!("{path}.role"),
                    "legacy `function` messages are not supported for Anthropic models; use `tool` messages with a tool_call_id",
                ));
            }
            other => {
                return Err(bad(
                    format!("{path}.role"),
                    format!("unknown role {other:?}"),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(t) if t.role == role => t.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    trim_final_assistant(&mut turns);
    if turns.is_empty() {
        return Err(bad(
            "messages",
            "Anthropic models need at least one user or assistant message with content",
        ));
    }
    let messages = turns
        .into_iter()
        .map(|t| json!({ "role": t.role, "content": collapse(t.blocks) }))
        .collect();
    Ok((system_prompt(system), messages))
}

/// Anthropic rejects a final assistant turn (a prefill) that ends in whitespace; the whitespace
/// carries no meaning for the continuation, so it is dropped instead of failing the request.
fn trim_final_assistant(turns: &mut Vec<Turn>) {
    let Some(last) = turns.last_mut().filter(|t| t.role == "assistant") else {
        return;
    };
    let trimmed = last
        .blocks
        .last_mut()
        .and_then(Value::as_object_mut)
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .and_then(|b| {
            let t = b
                .get("text")
                .and_then(Value::as_str)?
                .trim_end()
                .to_string();
            b.insert("text".into(), Value::String(t.clone()));
            Some(t)
        });
    if trimmed.is_some_and(|t| t.is_empty()) {
        last.blocks.pop();
    }
    if last.blocks.is_empty() {
        turns.pop();
    }
}

/// A single plain text block is sent as a string, the form Anthropic documents as the default.
fn collapse(mut blocks: Vec<Value>) -> Value {
    let plain_text = blocks.len() == 1
        && blocks
            .first()
            .and_then(Value::as_object)
            .is_some_and(|b| b.len() == 2 && b.get("type").and_then(Value::as_str) == Some("text"));
    match blocks.pop() {
        Some(Value::Object(mut b)) if plain_text => b.remove("text").unwrap_or(Value::Null),
        Some(b) => {
            blocks.push(b);
            Value::Array(blocks)
        }
        None => Value::Array(blocks),
    }
}

fn system_texts(m: &Message, path: &str) -> Result<Vec<SystemText>, ProviderError> {
    match &m.content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![SystemText {
            text: s.clone(),
            cache_control: None,
        }]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => Ok(SystemText {
                        text: text.to_string(),
                        cache_control: p.get("cache_control").cloned(),
                    }),
                    _ => Err(bad(
                        format!("{path}.content[{j}]"),
                        "system and developer messages may only contain text parts",
                    )),
                }
            })
            .collect(),
        Some(other) => Err(bad(
            format!("{path}.content"),
            format!(
                "expected a string or an array of content parts, not {}",
                json_type(other)
            ),
        )),
    }
}

/// Several system messages become one prompt. Plain text keeps the prompt readable in logs;
/// blocks are used only when a client marked a part for prompt caching, since only blocks can
/// carry `cache_control`.
fn system_prompt(messages: Vec<Vec<SystemText>>) -> Option<Value> {
    let texts: Vec<SystemText> = messages
        .into_iter()
        .flatten()
        .filter(|t| !t.text.is_empty())
        .collect();
    if texts.is_empty() {
        return None;
    }
    if texts.iter().any(|t| t.cache_control.is_some()) {
        let blocks = texts
            .into_iter()
            .map(|t| {
                let mut b = json!({ "type": "text", "text": t.text });
                if let Some(cc) = t.cache_control {
                    b["cache_control"] = cc;
                }
                b
            })
            .collect();
        return Some(Value::Array(blocks));
    }
    let joined = texts
        .into_iter()
        .map(|t| t.text)
        .collect::<Vec<_>>()
        .join("\n\n");
    Some(Value::String(joined))
}

fn assistant_blocks(m: &Message, path: &str) -> Result<Vec<Value>, ProviderError> {
    if m.extra.get("function_call").is_some_and(|v| !v.is_null()) {
        return Err(bad(
            format!("{path}.function_call"),
            "legacy `function_call` is not supported for Anthropic models; use `tool_calls`",
        ));
    }
    let mut blocks = content_blocks(m.content.as_ref(), &format!("{path}.content"))?;
    let calls = match m.extra.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(other) => {
            return Err(bad(
                format!("{path}.tool_calls"),
                format!("tool_calls must be an array, not {}", json_type(other)),
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        blocks.push(tool_use(call, &format!("{path}.tool_calls[{j}]"))?);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{rejected, translate};
    use serde_json::json;

    #[test]
    fn consecutive_same_role_turns_merge() {
        let body = translate(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "five"}
            ]
        }));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}]},
                {"role": "user", "content": "five"}
            ])
        );
    }

    #[test]
    fn final_assistant_prefill_loses_trailing_whitespace() {
        let body = translate(json!({"model": "m", "messages": [
            {"role": "user", "content": "Write JSON"},
            {"role": "assistant", "content": "{\n  "}
        ]}));
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": "{"})
        );
    }

    #[test]
    fn system_with_cache_control_uses_blocks() {
        let body = translate(json!({"model": "m", "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Long policy", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "Short note"},
            {"role": "user", "content": "q"}
        ]}));
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "Long policy", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Short note"}
            ])
        );
    }

    #[test]
    fn only_system_messages_is_rejected() {
        let e = rejected(json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}));
        assert_eq!(e.param.as_deref(), Some("messages"));
        rejected(json!({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": "q"}
        ]}));
    }
}
