//! Tools: the function definitions, the choice among them (with `parallel_tool_calls`), and the
//! calls and results in the conversation, whose ids are made acceptable to Anthropic.

use super::content::content_blocks;
use super::{ProviderError, bad, field};
use crate::openai::{Message, json_type};
use serde_json::{Map, Value, json};

pub(super) fn tools(extra: &Map<String, Value>) -> Result<Option<Vec<Value>>, ProviderError> {
    let tools = match field(extra, "tools") {
        None => return Ok(None),
        Some(Value::Array(t)) if t.is_empty() => return Ok(None),
        Some(Value::Array(t)) => t,
        Some(other) => {
            return Err(bad(
                "tools",
                format!("tools must be an array, not {}", json_type(other)),
            ));
        }
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        let kind = tool.get("type").and_then(Value::as_str);
        if kind != Some("function") {
            return Err(bad(
                format!("{path}.type"),
                format!(
                    "only function tools are supported for Anthropic models, not {:?}",
                    kind.unwrap_or("")
                ),
            ));
        }
        let function = tool.get("function");
        let name = function_name(function, &path, "a function tool needs a name")?;
        let mut t = json!({ "name": name });
        if let Some(d) = function
            .and_then(|f| f.get("description"))
            .and_then(Value::as_str)
        {
            t["description"] = Value::String(d.to_string());
        }
        // Anthropic requires a schema even for tools without parameters.
        t["input_schema"] = match function.and_then(|f| f.get("parameters")) {
            None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(other) => {
                return Err(bad(
                    format!("{path}.function.parameters"),
                    format!(
                        "parameters must be a JSON schema object, not {}",
                        json_type(other)
                    ),
                ));
            }
        };
        if let Some(cc) = tool.get("cache_control") {
            t["cache_control"] = cc.clone();
        }
        out.push(t);
    }
    Ok(Some(out))
}

/// Only called when tools are present: Anthropic rejects a `tool_choice` without tools, and
/// without tools there is nothing to choose anyway.
///
/// `none` is sent as Anthropic's own `{"type":"none"}` rather than by dropping the tools, so a
/// conversation that already contains tool calls stays valid and the cached prompt prefix (which
/// includes the tool definitions) is reused.
pub(super) fn tool_choice(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    let serial = field(extra, "parallel_tool_calls").and_then(Value::as_bool) == Some(false);
    let mut choice = match field(extra, "tool_choice") {
        None if serial => json!({ "type": "auto" }),
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => return Ok(Some(json!({ "type": "none" }))),
            other => {
                return Err(bad(
                    "tool_choice",
                    format!("tool_choice {other:?} is not one of auto, required, none"),
                ));
            }
        },
        Some(obj @ Value::Object(_)) => {
            let name = (obj.get("type").and_then(Value::as_str) == Some("function"))
                .then(|| obj.get("function").and_then(|f| f.get("name")).and_then(Value::as_str))
                .flatten()
                .ok_or_else(|| {
                    bad(
                        "tool_choice",
                        "tool_choice must be auto, required, none or {\"type\":\"function\",\"function\":{\"name\":...}}",
                    )
                })?;
            json!({ "type": "tool", "name": name })
        }
        Some(other) => {
            return Err(bad(
                "tool_choice",
                format!(
                    "tool_choice must be a string or an object, not {}",
                    json_type(other)
                ),
            ));
        }
    };
    if serial {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(choice))
}

pub(super) fn tool_use(call: &Value, path: &str) -> Result<Value, ProviderError> {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                format!("{path}.id"),
                "a tool call needs a non-empty string `id`",
            )
        })?;
    let function = call.get("function");
    let name = function_name(function, path, "a tool call needs a function name")?;
    let args_path = format!("{path}.function.arguments");
    let input = match function.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            bad(&args_path, format!("tool call arguments are not valid JSON ({e}); Anthropic needs them as an object"))
        })?,
        // Not OpenAI's wire format, but unambiguous: some clients send the object itself.
        Some(v) => v.clone(),
    };
    if !input.is_object() {
        return Err(bad(
            args_path,
            format!(
                "tool call arguments must be a JSON object, not {}",
                json_type(&input)
            ),
        ));
    }
    Ok(json!({ "type": "tool_use", "id": tool_id(id), "name": name, "input": input }))
}

pub(super) fn tool_result(m: &Message, path: &str) -> Result<Value, ProviderError> {
    let id = m
        .extra
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                format!("{path}.tool_call_id"),
                "a tool message needs a non-empty `tool_call_id`",
            )
        })?;
    let mut block = json!({ "type": "tool_result", "tool_use_id": tool_id(id) });
    match &m.content {
        Some(Value::String(s)) if !s.is_empty() => block["content"] = Value::String(s.clone()),
        other => {
            let blocks = content_blocks(other.as_ref(), &format!("{path}.content"))?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
    }
    Ok(block)
}

/// Anthropic only accepts tool ids matching `[A-Za-z0-9_-]+`, but a conversation may have started
/// on another provider whose ids contain `.`, `:` or the like. The same mapping is applied to the
/// call and its result, so the pair still matches.
/// `function.name`, which a tool definition and a tool call both need, non-empty.
fn function_name<'a>(
    function: Option<&'a Value>,
    path: &str,
    missing: &str,
) -> Result<&'a str, ProviderError> {
    function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{path}.function.name"), missing))
}

fn tool_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{rejected, translate};
    use serde_json::{Value, json};

    #[test]
    fn tools_calls_and_results() {
        let body = translate(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "functions.weather:2", "type": "function", "function": {"name": "weather", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "functions.weather:2", "content": [{"type": "text", "text": "21C"}]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now"}}
            ]
        }));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "functions_weather_2", "name": "weather", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "functions_weather_2", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([
                {"name": "weather", "description": "Current weather", "input_schema":
                    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn tool_choice_variants() {
        let choice = |extra: Value| {
            let mut req = json!({
                "model": "m",
                "messages": [{"role": "user", "content": "q"}],
                "tools": [{"type": "function", "function": {"name": "f"}}]
            });
            for (k, v) in extra.as_object().unwrap() {
                req[k] = v.clone();
            }
            translate(req).get("tool_choice").cloned()
        };
        assert_eq!(
            choice(json!({"tool_choice": "auto"})),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "required"})),
            Some(json!({"type": "any"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "none"})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}})),
            Some(json!({"type": "tool", "name": "f"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "required", "parallel_tool_calls": false})),
            Some(json!({"type": "any", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!({"parallel_tool_calls": false})),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "none", "parallel_tool_calls": false})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(choice(json!({"parallel_tool_calls": true})), None);
        // Without tools there is nothing to choose, and Anthropic would reject the field.
        let body = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "tool_choice": "required"}),
        );
        assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}),
        );
    }

    #[test]
    fn invalid_tool_arguments_are_a_bad_request() {
        let e = rejected(json!({"model": "m", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}
        ]}));
        assert_eq!(
            e.param.as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        let e = rejected(json!({"model": "m", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1,2]"}}]}
        ]}));
        assert!(e.message.contains("object"));
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}]}),
        );
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}, {"role": "function", "name": "f", "content": "x"}]}),
        );
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "tools": [{"type": "web_search"}]}),
        );
    }
}
