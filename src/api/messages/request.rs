//! A Messages request → the chat request the pipeline routes. Anthropic's blocks become OpenAI
//! content parts (text, images as `image_url`, PDF documents as `file`), `tool_use` and
//! `tool_result` blocks become tool calls and `tool` messages, the system prompt a system
//! message. A block with no OpenAI equivalent (a document by URL, a server tool's result) is kept
//! as it is: an Anthropic upstream is sent the client's own request anyway, and an OpenAI one
//! answers such a part with its own 400. Thinking blocks mean nothing to other models and are
//! left out of the translation.
//!
//! Must not import `providers`: the tables it shares with them live in `crate::anthropic`.

use crate::anthropic::MessagesRequest;
use crate::anthropic::request::{Message as InMessage, Role, ToolChoice};
use crate::openai::{ChatRequest, CountCache, Message, json_type};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The offending field's path and what is wrong with it.
pub type Invalid = (String, String);

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    (path.into(), message.into())
}

/// `max_tokens` is required by `/v1/messages` and absent from `count_tokens`.
pub fn to_chat(req: MessagesRequest, needs_max_tokens: bool) -> Result<ChatRequest, Invalid> {
    check(&req, needs_max_tokens)?;
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        if let Some(m) = system_message(system)? {
            messages.push(m);
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        turn(m, &format!("messages[{i}].content"), &mut messages)?;
    }
    if messages.iter().all(|m| m.role == "system") {
        return Err(invalid(
            "messages",
            "the messages hold nothing a model can read (only thinking blocks)",
        ));
    }
    let extra = settings(&req)?;
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        stream: req.stream,
        extra,
        prompt_tokens: CountCache::default(),
        anthropic: Some(Arc::new(req)),
    })
}

fn check(req: &MessagesRequest, needs_max_tokens: bool) -> Result<(), Invalid> {
    if req.model.trim().is_empty() {
        return Err(invalid(
            "model",
            "model must name a model, a tier or `auto`",
        ));
    }
    match req.max_tokens {
        None if needs_max_tokens => return Err(invalid("max_tokens", "Field required")),
        Some(0) => return Err(invalid("max_tokens", "max_tokens must be at least 1")),
        _ => {}
    }
    if req.messages.is_empty() {
        return Err(invalid(
            "messages",
            "messages must contain at least one message",
        ));
    }
    let last = req.messages.len() - 1;
    for (i, m) in req.messages.iter().enumerate() {
        let empty = match &m.content {
            Value::String(s) => s.is_empty(),
            Value::Array(b) => b.is_empty(),
            _ => false,
        };
        // Anthropic's own rule: only a final assistant turn (a prefill) may be empty.
        if empty && !(i == last && m.role == Role::Assistant) {
            return Err(invalid(
                format!("messages[{i}].content"),
                "all messages must have non-empty content except for the optional final assistant message",
            ));
        }
    }
    for (name, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if v.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
            return Err(invalid(name, format!("{name} must be between 0 and 1")));
        }
    }
    Ok(())
}

/// The sampling, stop, user and tool settings in OpenAI's names. `top_k` and `thinking` have
/// none that OpenAI accepts (it rejects unknown parameters), so only an Anthropic upstream,
/// which is sent the client's request, receives them.
fn settings(req: &MessagesRequest) -> Result<Map<String, Value>, Invalid> {
    let mut extra = Map::new();
    if let Some(n) = req.max_tokens {
        extra.insert("max_tokens".into(), n.into());
    }
    if let Some(stop) = req.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        extra.insert("stop".into(), json!(stop));
    }
    if let Some(t) = req.temperature {
        extra.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        extra.insert("top_p".into(), p.into());
    }
    if let Some(md) = &req.metadata {
        // `metadata` carries routing hints (`task_type`) for the rules; OpenAI upstreams are sent
        // only `user`.
        let mut hints = md.hints.clone();
        if let Some(user) = &md.user_id {
            extra.insert("user".into(), Value::String(user.clone()));
            hints.insert("user_id".into(), Value::String(user.clone()));
        }
        extra.insert("metadata".into(), Value::Object(hints));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let tools = tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool(t, &format!("tools[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        extra.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            let (choice, serial) = tool_choice(choice);
            extra.insert("tool_choice".into(), choice);
            if serial {
                extra.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }
    if req.is_stream() {
        // The answer's usage goes into `message_delta`, so it is asked for on every stream.
        extra.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(extra)
}

/// A client tool as an OpenAI function; a server tool (`web_search_…`, `bash_…`) stays as sent.
fn tool(t: &Value, path: &str) -> Result<Value, Invalid> {
    let Some(obj) = t.as_object() else {
        return Err(invalid(
            path,
            format!("a tool must be an object, not {}", json_type(t)),
        ));
    };
    let Some(name) = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(invalid(
            format!("{path}.name"),
            "a tool needs a string name",
        ));
    };
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "custom")
    {
        return Ok(t.clone());
    }
    let schema = match obj.get("input_schema") {
        Some(s @ Value::Object(_)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                format!("{path}.input_schema"),
                format!(
                    "input_schema must be a JSON schema object, not {}",
                    json_type(other)
                ),
            ));
        }
        None => return Err(invalid(format!("{path}.input_schema"), "Field required")),
    };
    let mut function = json!({ "name": name, "parameters": schema });
    if let Some(d) = obj.get("description").and_then(Value::as_str) {
        function["description"] = Value::String(d.to_string());
    }
    let mut out = json!({ "type": "function", "function": function });
    if let Some(cc) = obj.get("cache_control") {
        out["cache_control"] = cc.clone();
    }
    Ok(out)
}

/// OpenAI's `tool_choice`, and whether parallel tool use was turned off.
fn tool_choice(choice: &ToolChoice) -> (Value, bool) {
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use: d,
        } => (json!("auto"), *d == Some(true)),
        ToolChoice::Any {
            disable_parallel_tool_use: d,
        } => (json!("required"), *d == Some(true)),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use: d,
        } => (
            json!({ "type": "function", "function": { "name": name } }),
            *d == Some(true),
        ),
        ToolChoice::None => (json!("none"), false),
    }
}

fn message(role: &str, content: Option<Value>) -> Message {
    Message {
        role: role.to_string(),
        content,
        extra: Map::new(),
    }
}

/// The system prompt: a string, or text blocks (kept as text parts, with their cache markers).
fn system_message(system: &Value) -> Result<Option<Message>, Invalid> {
    match system {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(message("system", Some(Value::String(s.clone()))))),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                let path = format!("system[{j}]");
                if kind(b, &path)? != "text" {
                    return Err(invalid(
                        format!("{path}.type"),
                        "system blocks must be text blocks",
                    ));
                }
                parts.push(text_part(b, &path)?);
            }
            Ok((!parts.is_empty()).then(|| message("system", Some(Value::Array(parts)))))
        }
        other => Err(invalid(
            "system",
            format!(
                "system must be a string or an array of text blocks, not {}",
                json_type(other)
            ),
        )),
    }
}

/// A block's `type`, which every block must have.
fn kind<'a>(block: &'a Value, path: &str) -> Result<&'a str, Invalid> {
    if !block.is_object() {
        return Err(invalid(
            path,
            format!(
                "a content block must be an object, not {}",
                json_type(block)
            ),
        ));
    }
    block.get("type").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            format!("{path}.type"),
            "a content block needs a string type",
        )
    })
}

fn str_field<'a>(block: &'a Value, key: &str, path: &str) -> Result<&'a str, Invalid> {
    block
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.{key}"), "Field required (a string)"))
}

/// One message's content as blocks: a string is one text block.
fn blocks<'a>(content: &'a Value, path: &str) -> Result<std::borrow::Cow<'a, [Value]>, Invalid> {
    match content {
        Value::String(s) => Ok(std::borrow::Cow::Owned(vec![
            json!({ "type": "text", "text": s }),
        ])),
        Value::Array(b) => Ok(std::borrow::Cow::Borrowed(b)),
        other => Err(invalid(
            path,
            format!(
                "content must be a string or an array of content blocks, not {}",
                json_type(other)
            ),
        )),
    }
}

fn turn(m: &InMessage, path: &str, out: &mut Vec<Message>) -> Result<(), Invalid> {
    match (m.role, &m.content) {
        (Role::User, Value::String(s)) => out.push(message("user", Some(Value::String(s.clone())))),
        (Role::Assistant, Value::String(s)) => {
            out.push(message("assistant", Some(Value::String(s.clone()))));
        }
        (Role::User, content) => user_turn(&blocks(content, path)?, path, out)?,
        (Role::Assistant, content) => out.push(assistant_turn(&blocks(content, path)?, path)?),
    }
    Ok(())
}

/// Tool results first, as `tool` messages (OpenAI wants them right after the calls), then the
/// rest of the turn as one user message.
fn user_turn(blocks: &[Value], path: &str, out: &mut Vec<Message>) -> Result<(), Invalid> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = format!("{path}[{j}]");
        match kind(b, &path)? {
            "tool_result" => {
                let (tool, rest) = tool_result(b, &path)?;
                out.push(tool);
                parts.extend(rest);
            }
            _ => parts.extend(part(b, &path)?),
        }
    }
    if !parts.is_empty() {
        out.push(message("user", Some(Value::Array(parts))));
    }
    Ok(())
}

/// A user block as OpenAI content parts (none for a block that carries nothing for the model).
fn part(b: &Value, path: &str) -> Result<Vec<Value>, Invalid> {
    let mut p = match kind(b, path)? {
        "text" => text_part(b, path)?,
        "image" => image_part(b, path)?,
        "document" => return document_parts(b, path),
        "thinking" | "redacted_thinking" => return Ok(Vec::new()),
        _ => return Ok(vec![b.clone()]),
    };
    if let Some(cc) = b.get("cache_control") {
        p["cache_control"] = cc.clone();
    }
    Ok(vec![p])
}

fn text_part(b: &Value, path: &str) -> Result<Value, Invalid> {
    let mut p = json!({ "type": "text", "text": str_field(b, "text", path)? });
    if let Some(cc) = b.get("cache_control") {
        p["cache_control"] = cc.clone();
    }
    Ok(p)
}

fn source<'a>(b: &'a Value, path: &str) -> Result<(&'a Value, &'a str), Invalid> {
    let path = format!("{path}.source");
    let Some(src) = b.get("source").filter(|s| s.is_object()) else {
        return Err(invalid(path, "Field required (an object)"));
    };
    Ok((src, str_field(src, "type", &path)?))
}

fn data_url(src: &Value, path: &str) -> Result<String, Invalid> {
    let path = format!("{path}.source");
    let media = str_field(src, "media_type", &path)?;
    let data = str_field(src, "data", &path)?;
    Ok(format!("data:{media};base64,{data}"))
}

fn image_part(b: &Value, path: &str) -> Result<Value, Invalid> {
    let url = match source(b, path)? {
        (src, "base64") => data_url(src, path)?,
        (src, "url") => str_field(src, "url", &format!("{path}.source"))?.to_string(),
        // A file id points into Anthropic's file store: only an Anthropic upstream can read it.
        _ => return Ok(b.clone()),
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A PDF as an OpenAI file part, plain text (or text blocks) as text; a document by URL or file
/// id has no OpenAI form and is kept as it is.
fn document_parts(b: &Value, path: &str) -> Result<Vec<Value>, Invalid> {
    let title = b.get("title").and_then(Value::as_str);
    match source(b, path)? {
        (src, "base64") => {
            let filename = title.map_or_else(|| "document.pdf".to_string(), str::to_string);
            Ok(vec![json!({
                "type": "file",
                "file": { "filename": filename, "file_data": data_url(src, path)? },
            })])
        }
        (src, "text") => {
            let text = str_field(src, "data", &format!("{path}.source"))?;
            let text = match title {
                Some(t) => format!("{t}\n\n{text}"),
                None => text.to_string(),
            };
            Ok(vec![json!({ "type": "text", "text": text })])
        }
        (src, "content") => match src.get("content") {
            Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
            Some(Value::Array(inner)) => {
                let mut out = Vec::new();
                for (k, ib) in inner.iter().enumerate() {
                    out.extend(part(ib, &format!("{path}.source.content[{k}]"))?);
                }
                Ok(out)
            }
            _ => Err(invalid(
                format!("{path}.source.content"),
                "Field required (a string or an array of blocks)",
            )),
        },
        _ => Ok(vec![b.clone()]),
    }
}

/// A `tool_result` as a `tool` message with its text; images in the result (which OpenAI's tool
/// messages cannot carry) are returned to go into the user message that follows.
fn tool_result(b: &Value, path: &str) -> Result<(Message, Vec<Value>), Invalid> {
    let id = str_field(b, "tool_use_id", path)?;
    let mut rest = Vec::new();
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::new();
            for (k, ib) in inner.iter().enumerate() {
                let p = format!("{path}.content[{k}]");
                if kind(ib, &p)? == "text" {
                    texts.push(str_field(ib, "text", &p)?.to_string());
                } else {
                    rest.extend(part(ib, &p)?);
                }
            }
            texts.join("\n")
        }
        Some(other) => {
            return Err(invalid(
                format!("{path}.content"),
                format!(
                    "content must be a string or an array of blocks, not {}",
                    json_type(other)
                ),
            ));
        }
    };
    // OpenAI has no error flag on a tool message; the model still needs to know.
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = format!("Error: {text}");
    }
    let mut m = message("tool", Some(Value::String(text)));
    m.extra
        .insert("tool_call_id".into(), Value::String(id.to_string()));
    Ok((m, rest))
}

/// Text blocks joined, `tool_use` blocks as tool calls; thinking and server-tool blocks are the
/// Anthropic model's own and are left out.
fn assistant_turn(blocks: &[Value], path: &str) -> Result<Message, Invalid> {
    let mut text = String::new();
    let mut has_text = false;
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = format!("{path}[{j}]");
        match kind(b, &path)? {
            "text" => {
                has_text = true;
                text.push_str(str_field(b, "text", &path)?);
            }
            "tool_use" => {
                let id = str_field(b, "id", &path)?;
                let name = str_field(b, "name", &path)?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": input.to_string() },
                }));
            }
            _ => {}
        }
    }
    let content = (has_text || calls.is_empty()).then_some(Value::String(text));
    let mut m = message("assistant", content);
    if !calls.is_empty() {
        m.extra.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(v: Value) -> Result<ChatRequest, Invalid> {
        to_chat(serde_json::from_value(v).unwrap(), true)
    }

    #[test]
    fn a_full_conversation_in_openai_terms() {
        let r = chat(json!({
            "model": "auto", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ],
            "stop_sequences": ["END"], "temperature": 0.5, "top_k": 3,
            "metadata": {"user_id": "u-1", "task_type": "review"},
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        }))
        .unwrap();
        let got = serde_json::to_value(&r).unwrap();
        assert_eq!(
            got,
            json!({
                "model": "auto",
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}}
                    ]},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "content": "18C", "tool_call_id": "toolu_1"},
                    {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
                ],
                "max_tokens": 100, "stop": ["END"], "temperature": 0.5,
                "user": "u-1", "metadata": {"task_type": "review", "user_id": "u-1"},
                "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}, "description": "d"}}],
                "tool_choice": "required", "parallel_tool_calls": false
            })
        );
        assert!(r.anthropic.is_some());
        assert_eq!(r.metadata_str("task_type"), Some("review"));
    }

    #[test]
    fn names_the_offending_field() {
        let base = || json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "q"}]});
        let mut v = base();
        v.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(chat(v).unwrap_err().0, "max_tokens");
        assert!(
            to_chat(
                serde_json::from_value(
                    json!({"model": "m", "messages": [{"role": "user", "content": "q"}]})
                )
                .unwrap(),
                false
            )
            .is_ok()
        );
        let mut v = base();
        v["messages"] = json!([]);
        assert_eq!(chat(v).unwrap_err().0, "messages");
        let mut v = base();
        v["messages"][0]["content"] = json!(5);
        assert_eq!(chat(v).unwrap_err().0, "messages[0].content");
        let mut v = base();
        v["messages"][0]["content"] = json!([{"type": "text"}]);
        assert_eq!(chat(v).unwrap_err().0, "messages[0].content[0].text");
        let mut v = base();
        v["messages"][0]["content"] =
            json!([{"type": "image", "source": {"type": "base64", "data": "x"}}]);
        assert_eq!(
            chat(v).unwrap_err().0,
            "messages[0].content[0].source.media_type"
        );
        let mut v = base();
        v["messages"][0]["content"] = json!([]);
        assert_eq!(chat(v).unwrap_err().0, "messages[0].content");
        let mut v = base();
        v["messages"][0]["content"] =
            json!([{"type": "thinking", "thinking": "x", "signature": "s"}]);
        assert_eq!(chat(v).unwrap_err().0, "messages");
        let mut v = base();
        v["tools"] = json!([{"name": "f"}]);
        assert_eq!(chat(v).unwrap_err().0, "tools[0].input_schema");
        let mut v = base();
        v["temperature"] = json!(1.5);
        assert_eq!(chat(v).unwrap_err().0, "temperature");
        let mut v = base();
        v["system"] = json!([{"type": "image"}]);
        assert_eq!(chat(v).unwrap_err().0, "system[0].type");
    }

    #[test]
    fn untranslatable_blocks_are_kept_and_tool_errors_flagged() {
        let r = chat(json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "boom"}]}
        ]}))
        .unwrap();
        assert_eq!(
            r.messages[0].content.as_ref().unwrap()[0]["type"],
            "document"
        );
        assert_eq!(
            r.messages[0].content.as_ref().unwrap()[1]["text"],
            "Notes\n\nabc"
        );
        assert_eq!(r.messages[1].content, None);
        assert_eq!(r.messages[2].content, Some(json!("Error: boom")));
        assert_eq!(r.extra["stream_options"]["include_usage"], true);
    }
}
