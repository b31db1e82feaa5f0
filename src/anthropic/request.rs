//! The Messages request as a client sends it (`POST /v1/messages`). The fields the gateway
//! translates or checks are typed; content blocks, tools and everything else stay JSON, kept
//! whole, so that the request can be sent on to an Anthropic upstream exactly as it came.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    /// Required by `/v1/messages` (checked there); `count_tokens` has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    pub messages: Vec<Message>,
    /// A string or an array of text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// `thinking`, `service_tier`, `container`, `mcp_servers` and whatever Anthropic adds next.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The client's `anthropic-beta` header: the features it opted into, which an Anthropic
    /// upstream needs to hear about as well.
    #[serde(skip)]
    pub beta: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// A string or an array of content blocks.
    pub content: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Routing hints for the gateway (`task_type`). Anthropic accepts only `user_id` here, so
    /// they are read by the rules and never sent upstream.
    #[serde(flatten, skip_serializing)]
    pub hints: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_what_it_does_not_type_and_drops_routing_hints() {
        let sent = json!({
            "model": "claude-x", "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "metadata": {"user_id": "u1", "task_type": "review"},
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        });
        let r: MessagesRequest = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(r.metadata.as_ref().unwrap().hints["task_type"], "review");
        let mut back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["metadata"], json!({"user_id": "u1"}));
        back["metadata"] = sent["metadata"].clone();
        assert_eq!(back, sent);
    }
}
