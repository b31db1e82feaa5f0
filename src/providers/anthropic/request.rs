//! OpenAI chat request → Anthropic Messages request body.
//!
//! The translation is an allow-list: only fields with an Anthropic meaning are sent, because
//! Anthropic answers any unknown key with a 400. Requests that cannot be honoured faithfully fail
//! here with a `BadRequest` naming the offending parameter, before anything is sent.

use super::super::{Call, ErrorKind, ProviderError};
use crate::openai::{Message, json_type};
use serde_json::{Map, Value, json};

/// Sent when neither the client nor the model's config gives a limit. Anthropic requires one, and
/// 4096 is accepted by every current Claude model.
const DEFAULT_MAX_TOKENS: u64 = 4096;

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
    let extra = &call.request.extra;
    reject_unsupported(extra)?;
    let (system, messages) = conversation(&call.request.messages)?;

    let mut body = Map::new();
    body.insert("model".into(), Value::String(call.model.to_string()));
    body.insert("max_tokens".into(), Value::from(max_tokens(call)?));
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = stop_sequences(extra)? {
        body.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = temperature(extra)? {
        body.insert("temperature".into(), t);
    }
    if let Some(p) = field(extra, "top_p") {
        if !p.is_number() {
            return Err(bad(
                "top_p",
                format!("top_p must be a number, not {}", json_type(p)),
            ));
        }
        body.insert("top_p".into(), p.clone());
    }
    // Not an OpenAI field, but vLLM and others accept it and it means the same thing to Claude.
    if let Some(k) = field(extra, "top_k") {
        if k.as_u64().is_none() {
            return Err(bad("top_k", "top_k must be a non-negative integer"));
        }
        body.insert("top_k".into(), k.clone());
    }
    if let Some(user) = field(extra, "user") {
        let Some(user) = user.as_str() else {
            return Err(bad(
                "user",
                format!("user must be a string, not {}", json_type(user)),
            ));
        };
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = tools(extra)? {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(extra)? {
            body.insert("tool_choice".into(), choice);
        }
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

/// Fields whose meaning Claude cannot deliver. Silently dropping them would hand the client an
/// answer that breaks its assumptions (one choice instead of several, free text instead of a
/// schema-conforming object), so they fail loudly instead.
///
/// Deliberately *not* rejected, because ignoring them still yields a correct answer: `logprobs`
/// (the choice carries `logprobs: null`, which clients must handle anyway), `seed`,
/// `frequency_penalty`, `presence_penalty`, `logit_bias`, `service_tier`, `store`,
/// `stream_options` (usage is always reported), and `response_format: json_object` (OpenAI
/// only accepts that mode when the prompt itself asks for JSON, which Claude follows).
fn reject_unsupported(extra: &Map<String, Value>) -> Result<(), ProviderError> {
    if let Some(n) = field(extra, "n") {
        if n.as_u64() != Some(1) {
            return Err(bad(
                "n",
                "Anthropic models return one choice per request: n must be 1",
            ));
        }
    }
    if let Some(rf) = field(extra, "response_format") {
        if rf.get("type").and_then(Value::as_str) == Some("json_schema") {
            return Err(bad(
                "response_format",
                "response_format json_schema is not supported by Anthropic models: the schema could not be enforced",
            ));
        }
    }
    for legacy in ["functions", "function_call"] {
        if field(extra, legacy).is_some() {
            return Err(bad(
                legacy,
                format!(
                    "the legacy `{legacy}` parameter is not supported for Anthropic models; use `tools` and `tool_choice`"
                ),
            ));
        }
    }
    Ok(())
}

fn max_tokens(call: &Call<'_>) -> Result<u64, ProviderError> {
    // `max_completion_tokens` is OpenAI's current name; `max_tokens` the deprecated one.
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(&call.request.extra, key) {
            return match v.as_u64() {
                Some(n) if n > 0 => Ok(n),
                _ => Err(bad(key, format!("{key} must be a positive integer"))),
            };
        }
    }
    Ok(call.max_output_tokens.map_or(DEFAULT_MAX_TOKENS, u64::from))
}

fn stop_sequences(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    match field(extra, "stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(items)) => {
            if let Some(i) = items.iter().position(|s| !s.is_string()) {
                return Err(bad(
                    format!("stop[{i}]"),
                    "each stop sequence must be a string",
                ));
            }
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(other) => Err(bad(
            "stop",
            format!(
                "stop must be a string or an array of strings, not {}",
                json_type(other)
            ),
        )),
    }
}

/// OpenAI accepts 0–2, Anthropic 0–1. Values above 1 are clamped rather than rejected: the client
/// asked for "as random as possible", and 1 is the most Claude offers. Rejecting would make a
/// request that works on OpenAI tiers fail with no fallback on Anthropic ones.
fn temperature(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    let Some(t) = field(extra, "temperature") else {
        return Ok(None);
    };
    let Some(x) = t.as_f64() else {
        return Err(bad(
            "temperature",
            format!("temperature must be a number, not {}", json_type(t)),
        ));
    };
    if (0.0..=1.0).contains(&x) {
        Ok(Some(t.clone()))
    } else {
        Ok(Some(Value::from(x.clamp(0.0, 1.0))))
    }
}

// ----- conversation -----

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

fn conversation(messages: &[Message]) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
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

/// Content of a user or assistant message (or a tool result) as Anthropic blocks. Empty text is
/// dropped because Anthropic rejects empty text blocks.
fn content_blocks(content: Option<&Value>, path: &str) -> Result<Vec<Value>, ProviderError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(block) = part_block(p, &format!("{path}[{j}]"))? {
                    out.push(block);
                }
            }
            Ok(out)
        }
        Some(other) => Err(bad(
            path,
            format!(
                "expected a string or an array of content parts, not {}",
                json_type(other)
            ),
        )),
    }
}

fn part_block(part: &Value, path: &str) -> Result<Option<Value>, ProviderError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let mut block = match kind {
        // An assistant's earlier refusal is still text the model said.
        "text" | "refusal" => {
            let Some(text) = part.get(kind).and_then(Value::as_str) else {
                return Err(bad(
                    format!("{path}.{kind}"),
                    format!("a {kind} part needs a string `{kind}`"),
                ));
            };
            if text.is_empty() {
                return Ok(None);
            }
            json!({ "type": "text", "text": text })
        }
        "image_url" => image_block(part.get("image_url"), &format!("{path}.image_url"))?,
        "file" => document_block(part.get("file"), &format!("{path}.file"))?,
        "input_audio" => {
            return Err(bad(
                path,
                "audio input is not supported by Anthropic models",
            ));
        }
        other => {
            return Err(bad(
                format!("{path}.type"),
                format!("content part type {other:?} is not supported for Anthropic models"),
            ));
        }
    };
    // Passed through so clients can use Anthropic prompt caching through the OpenAI format.
    if let Some(cc) = part.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    Ok(Some(block))
}

fn image_block(image_url: Option<&Value>, path: &str) -> Result<Value, ProviderError> {
    // OpenAI documents an object with `url`; some clients send the URL string itself.
    let url = image_url
        .and_then(|v| v.get("url").unwrap_or(v).as_str())
        .ok_or_else(|| {
            bad(
                format!("{path}.url"),
                "an image_url part needs a string `url`",
            )
        })?;
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url).ok_or_else(|| {
            bad(
                format!("{path}.url"),
                "an image data URL must look like data:<media type>;base64,<data>",
            )
        })?;
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(bad(
        format!("{path}.url"),
        "an image URL must be an http(s) URL or a base64 data URL",
    ))
}

/// PDFs and other documents sent inline as OpenAI `file` parts. File ids are refused: they point
/// into OpenAI's file store, which Anthropic cannot read.
fn document_block(file: Option<&Value>, path: &str) -> Result<Value, ProviderError> {
    let Some(data_url) = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
    else {
        return Err(bad(
            format!("{path}.file_data"),
            "file parts for Anthropic models need inline `file_data` (a base64 data URL); file ids are not supported",
        ));
    };
    let (media_type, data) = parse_data_url(data_url).ok_or_else(|| {
        bad(
            format!("{path}.file_data"),
            "file_data must look like data:<media type>;base64,<data>",
        )
    })?;
    Ok(json!({
        "type": "document",
        "source": { "type": "base64", "media_type": media_type, "data": data },
    }))
}

/// `data:<media type>[;params];base64,<data>` → (media type, data). Only base64 payloads are
/// accepted because that is the only inline encoding Anthropic takes.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = header.split(';');
    let media_type = params.next().filter(|m| m.contains('/'))?;
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) || data.is_empty() {
        return None;
    }
    Some((media_type, data))
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

fn tool_use(call: &Value, path: &str) -> Result<Value, ProviderError> {
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
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                format!("{path}.function.name"),
                "a tool call needs a function name",
            )
        })?;
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

fn tool_result(m: &Message, path: &str) -> Result<Value, ProviderError> {
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

// ----- tools -----

fn tools(extra: &Map<String, Value>) -> Result<Option<Vec<Value>>, ProviderError> {
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
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(
                    format!("{path}.function.name"),
                    "a function tool needs a name",
                )
            })?;
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
fn tool_choice(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatRequest;

    fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn build_with(
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
        build(&call, stream)
    }

    fn translate(v: Value) -> Value {
        build_with(v, None, false).unwrap()
    }

    fn rejected(v: Value) -> ProviderError {
        let e = build_with(v, None, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
        e
    }

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

    #[test]
    fn images_from_data_and_http_urls() {
        let body = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}]}),
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Compare"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ])
        );
    }

    #[test]
    fn bad_images_and_unknown_parts_are_rejected() {
        let msg =
            |part: Value| json!({"model": "m", "messages": [{"role": "user", "content": [part]}]});
        let e = rejected(msg(
            json!({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}),
        ));
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        rejected(msg(
            json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
        ));
        rejected(msg(json!({"type": "image_url"})));
        rejected(msg(
            json!({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}),
        ));
        let e = rejected(msg(json!({"type": "hologram"})));
        assert!(e.message.contains("hologram"));
    }

    #[test]
    fn pdf_file_parts_become_documents() {
        let body = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
            ]}]}),
        );
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
        );
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}
            ]}]}),
        );
    }

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

    #[test]
    fn stop_sequences_and_sampling() {
        let base = |extra: Value| {
            let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
            for (k, v) in extra.as_object().unwrap() {
                req[k] = v.clone();
            }
            req
        };
        assert_eq!(
            translate(base(json!({"stop": "END"})))["stop_sequences"],
            json!(["END"])
        );
        assert_eq!(
            translate(base(json!({"stop": ["a", "b"]})))["stop_sequences"],
            json!(["a", "b"])
        );
        assert!(
            translate(base(json!({"stop": null})))
                .get("stop_sequences")
                .is_none()
        );
        assert!(
            translate(base(json!({"stop": []})))
                .get("stop_sequences")
                .is_none()
        );
        rejected(base(json!({"stop": [1]})));
        assert_eq!(
            translate(base(json!({"temperature": 1.7})))["temperature"],
            json!(1.0)
        );
        assert_eq!(
            translate(base(json!({"temperature": 0})))["temperature"],
            json!(0)
        );
        assert_eq!(translate(base(json!({"top_k": 40})))["top_k"], json!(40));
        rejected(base(json!({"temperature": "hot"})));
    }

    #[test]
    fn max_tokens_sources_in_order() {
        let req = |extra: Value| {
            let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        let max =
            |v: Value, cfg: Option<u32>| build_with(v, cfg, false).unwrap()["max_tokens"].clone();
        assert_eq!(max(req(json!({})), None), json!(4096));
        assert_eq!(max(req(json!({})), Some(8192)), json!(8192));
        assert_eq!(max(req(json!({"max_tokens": 100})), Some(8192)), json!(100));
        assert_eq!(
            max(
                req(json!({"max_completion_tokens": 50, "max_tokens": 100})),
                None
            ),
            json!(50)
        );
        let e = build_with(req(json!({"max_tokens": 0})), None, false).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn unsupported_features_fail_clearly() {
        let req = |k: &str, v: Value| {
            let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
            r[k] = v;
            r
        };
        assert_eq!(rejected(req("n", json!(2))).param.as_deref(), Some("n"));
        assert_eq!(
            translate(req("n", json!(1)))["messages"][0]["content"],
            json!("q")
        );
        rejected(req(
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        ));
        rejected(req("functions", json!([{"name": "f"}])));
        // Harmless fields are dropped rather than forwarded (Anthropic rejects unknown keys).
        let body = translate(req("logprobs", json!(true)));
        assert!(body.get("logprobs").is_none());
        let body = translate(req("response_format", json!({"type": "json_object"})));
        assert!(body.get("response_format").is_none());
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
