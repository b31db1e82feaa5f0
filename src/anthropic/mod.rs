//! Anthropic Messages wire types and the tables that map them onto OpenAI's: the request a client
//! sends (`request`), stop reasons, usage counts and error types. Both directions use these
//! tables: the outbound provider (`providers::anthropic`) and the inbound `/v1/messages` handler
//! (`api::messages`), so the two translations cannot drift apart.
//!
//! Wire types only: must not import anything of switchyard's (the usage conversions live on
//! `openai::Usage`, which every format's counts become).

pub mod request;

pub use request::MessagesRequest;

use serde_json::{Value, json};

/// Where an Anthropic upstream's own answer travels beside its chat translation, for a client
/// that asked in Anthropic's format: the message, on a `chat.completion`; each stream event, on
/// the chunk it became (or on a chunk with no choices when it became none). Everything else on
/// the request's path reads the chat shape and ignores the key; the Messages writer sends what
/// it finds here as it is.
pub const NATIVE: &str = "x_anthropic";

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`. Unknown future reasons become "stop"
/// rather than an error: the answer itself is complete and usable.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

/// An OpenAI `finish_reason` as Anthropic's `stop_reason`: the inverse of [`finish_reason`] for
/// the reasons OpenAI has. OpenAI says `stop` both for a natural end and a matched stop
/// sequence; without the matched text, `end_turn` is the honest reading.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The HTTP status Anthropic answers an error type with, for an error that arrived without one
/// (an `error` event inside a stream).
pub fn error_status(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 408,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The error type Anthropic's SDKs and clients expect with a status: the inverse of
/// [`error_status`], plus the statuses switchyard itself answers with (a budget's 402, a shed
/// or unavailable tier's 503, an upstream timeout's 504).
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`, as an error
/// response and as a stream's `error` event.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": error_type, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_finish_reasons_map_both_ways() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("something_new"), "stop");
        for r in ["end_turn", "max_tokens", "tool_use", "refusal"] {
            assert_eq!(stop_reason(finish_reason(r)), r);
        }
        assert_eq!(stop_reason("function_call"), "tool_use");
    }

    #[test]
    fn error_types_and_statuses() {
        for t in [
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
            "request_too_large",
            "rate_limit_error",
            "overloaded_error",
        ] {
            assert_eq!(error_type(error_status(t)), t);
        }
        assert_eq!(error_type(503), "overloaded_error");
        assert_eq!(error_type(415), "invalid_request_error");
        assert_eq!(error_type(502), "api_error");
    }
}
