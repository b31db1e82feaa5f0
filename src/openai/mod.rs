//! OpenAI chat-completions wire types.
//!
//! Only the fields switchyard acts on are typed; everything else is kept in `extra` and forwarded
//! unchanged, so a provider feature released tomorrow passes through without a gateway upgrade.

pub mod embeddings;
mod error;

pub use embeddings::EmbeddingRequest;
pub use error::ErrorBody;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `model` value that asks switchyard to choose.
pub const AUTO_MODEL: &str = "auto";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The o200k count of the prompt, filled by the first layer that needs it (`tokens`).
    #[serde(skip)]
    pub prompt_tokens: CountCache,
    /// The Messages request this one was translated from, when the client spoke Anthropic's
    /// format (`/v1/messages`): an Anthropic upstream is sent that rather than a translation
    /// back, so what OpenAI's format cannot carry (thinking, documents, citations) still arrives.
    #[serde(skip)]
    pub anthropic: Option<std::sync::Arc<crate::anthropic::MessagesRequest>>,
}

/// A count worked out once per request. A clone starts empty, because a clone is usually made to
/// be edited and must not carry the original's figure.
#[derive(Debug, Default)]
pub struct CountCache(std::sync::OnceLock<u64>);

impl CountCache {
    pub fn get_or_init(&self, count: impl FnOnce() -> u64) -> &u64 {
        self.0.get_or_init(count)
    }
}

impl Clone for CountCache {
    fn clone(&self) -> Self {
        CountCache::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    /// A string, an array of content parts, or absent (assistant turns that only call tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Roles OpenAI accepts; anything else is rejected before a provider is called.
pub const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

impl Message {
    /// Like [`Message::text`], without copying plain string content.
    pub fn text_ref(&self) -> std::borrow::Cow<'_, str> {
        match &self.content {
            Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
            _ => std::borrow::Cow::Owned(self.text()),
        }
    }

    /// The message's text: the string content, or its text parts joined by newlines.
    pub fn text(&self) -> String {
        content_text(self.content.as_ref())
    }
}

/// A message `content`'s text: the string itself, or its text parts joined by newlines (image
/// and audio parts have none).
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for a final usage chunk in its stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.extra
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn last_user_message(&self) -> Option<&Message> {
        self.messages.iter().rev().find(|m| m.role == "user")
    }

    /// `metadata.<key>` as a string, if the client sent one.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.extra.get("metadata")?.get(key)?.as_str()
    }

    /// Checks what serde's types cannot: known roles, content shapes, a non-empty conversation.
    /// Returns the offending parameter path and a message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.model.trim().is_empty() {
            return Err(("model".into(), "you must provide a model parameter".into()));
        }
        if self.messages.is_empty() {
            return Err((
                "messages".into(),
                "messages must contain at least one message".into(),
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !ROLES.contains(&m.role.as_str()) {
                return Err((
                    format!("messages[{i}].role"),
                    format!(
                        "invalid role {:?}: expected one of {}",
                        m.role,
                        ROLES.join(", ")
                    ),
                ));
            }
            match &m.content {
                None | Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    for (j, p) in parts.iter().enumerate() {
                        if p.get("type").and_then(Value::as_str).is_none() {
                            return Err((
                                format!("messages[{i}].content[{j}].type"),
                                "each content part needs a string `type`".into(),
                            ));
                        }
                    }
                }
                Some(other) => {
                    return Err((
                        format!("messages[{i}].content"),
                        format!(
                            "invalid type: {}, expected a string or an array of content parts",
                            json_type(other)
                        ),
                    ));
                }
            }
        }
        if let Some(so) = self.extra.get("stream_options") {
            if !so.is_object() && !so.is_null() {
                return Err((
                    "stream_options".into(),
                    "stream_options must be an object".into(),
                ));
            }
        }
        if let Some(md) = self.extra.get("metadata") {
            if !md.is_object() && !md.is_null() {
                return Err(("metadata".into(), "metadata must be an object".into()));
            }
        }
        Ok(())
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Token counts of one completion, as providers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object; `None` when absent or null.
    pub fn from_openai(v: &Value) -> Option<Usage> {
        let u = v.as_object()?;
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        Some(Usage {
            prompt_tokens: n("prompt_tokens"),
            completion_tokens: n("completion_tokens"),
            cached_tokens: u
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }

    /// Reads an Anthropic `usage` object. Anthropic counts cache reads and cache writes apart
    /// from `input_tokens`; OpenAI's `prompt_tokens` includes every prompt token, with cached ones
    /// reported as a subset. Summing them keeps cost accounting and client-side budgets comparable
    /// across providers.
    pub fn from_anthropic(u: &Value) -> Usage {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let cache_read = n("cache_read_input_tokens");
        Usage {
            prompt_tokens: n("input_tokens")
                .saturating_add(cache_read)
                .saturating_add(n("cache_creation_input_tokens")),
            completion_tokens: n("output_tokens"),
            cached_tokens: cache_read,
        }
    }

    /// The inverse of [`Usage::from_anthropic`]: the cached part of the prompt is reported as
    /// cache reads, the rest as `input_tokens` (a cache write cannot be told apart from uncached
    /// input once summed).
    pub fn to_anthropic(self) -> Value {
        serde_json::json!({
            "input_tokens": self.prompt_tokens.saturating_sub(self.cached_tokens),
            "output_tokens": self.completion_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "cache_creation_input_tokens": 0,
        })
    }

    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    pub fn to_openai(self) -> Value {
        let mut v = serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total(),
        });
        if self.cached_tokens > 0 {
            v["prompt_tokens_details"] = serde_json::json!({ "cached_tokens": self.cached_tokens });
        }
        v
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Usage;
    use serde_json::json;

    #[test]
    fn anthropic_usage_round_trips_without_cache_writes() {
        let u = json!({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100});
        let ours = Usage::from_anthropic(&u);
        assert_eq!(ours.prompt_tokens, 110);
        assert_eq!(ours.cached_tokens, 100);
        let back = ours.to_anthropic();
        assert_eq!(back["input_tokens"], 10);
        assert_eq!(back["cache_read_input_tokens"], 100);
        assert_eq!(back["output_tokens"], 5);
    }
}
