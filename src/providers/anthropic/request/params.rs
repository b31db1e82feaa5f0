//! The request's top-level settings: the output limit, stop sequences, sampling (`temperature`,
//! `top_p`, `top_k`), the end user, and the OpenAI fields Claude cannot honour (refused here).

use super::super::super::Call;
use super::{ProviderError, bad, field};
use crate::openai::json_type;
use serde_json::{Map, Value, json};

/// Sent when neither the client nor the model's config gives a limit. Anthropic requires one, and
/// 4096 is accepted by every current Claude model.
pub(super) const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Fields whose meaning Claude cannot deliver. Silently dropping them would hand the client an
/// answer that breaks its assumptions (one choice instead of several, free text instead of a
/// schema-conforming object), so they fail loudly instead.
///
/// Deliberately *not* rejected, because ignoring them still yields a correct answer: `logprobs`
/// (the choice carries `logprobs: null`, which clients must handle anyway), `seed`,
/// `frequency_penalty`, `presence_penalty`, `logit_bias`, `service_tier`, `store`,
/// `stream_options` (usage is always reported), and `response_format: json_object` (OpenAI
/// only accepts that mode when the prompt itself asks for JSON, which Claude follows).
pub(super) fn reject_unsupported(extra: &Map<String, Value>) -> Result<(), ProviderError> {
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

pub(super) fn max_tokens(call: &Call<'_>) -> Result<u64, ProviderError> {
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

pub(super) fn stop_sequences(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
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
pub(super) fn temperature(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
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

pub(super) fn top_p(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    let Some(p) = field(extra, "top_p") else {
        return Ok(None);
    };
    if !p.is_number() {
        return Err(bad(
            "top_p",
            format!("top_p must be a number, not {}", json_type(p)),
        ));
    }
    Ok(Some(p.clone()))
}

/// Not an OpenAI field, but vLLM and others accept it and it means the same thing to Claude.
pub(super) fn top_k(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    let Some(k) = field(extra, "top_k") else {
        return Ok(None);
    };
    if k.as_u64().is_none() {
        return Err(bad("top_k", "top_k must be a non-negative integer"));
    }
    Ok(Some(k.clone()))
}

/// OpenAI's `user` is Anthropic's `metadata.user_id`.
pub(super) fn metadata(extra: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    let Some(user) = field(extra, "user") else {
        return Ok(None);
    };
    let Some(user) = user.as_str() else {
        return Err(bad(
            "user",
            format!("user must be a string, not {}", json_type(user)),
        ));
    };
    Ok(Some(json!({ "user_id": user })))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build_with, rejected, translate};
    use serde_json::{Value, json};

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
}
