//! Whether a cheap answer is good enough to keep, from what the answer itself shows. Pure
//! functions over the OpenAI-shaped response, so each signal is tested on its own.

use crate::config::EscalateOn;
use crate::openai::ChatRequest;
use serde_json::Value;

/// Openings that mark a refusal in English-language answers. Deliberately conservative: a false
/// "refusal" pays for a premium call, a missed one only keeps a poor cheap answer.
const REFUSALS: &[&str] = &[
    "i'm sorry, but i can't",
    "i’m sorry, but i can’t",
    "i am sorry, but i cannot",
    "i'm sorry, but i cannot",
    "i can't help with",
    "i cannot help with",
    "i can't assist with",
    "i cannot assist with",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "sorry, i can't",
    "as an ai language model, i cannot",
];

/// The first reason among `enabled` to escalate this answer, if any.
pub fn check(
    req: &ChatRequest,
    answer: &Value,
    enabled: &[EscalateOn],
    min_mean_logprob: Option<f64>,
) -> Option<EscalateOn> {
    let choice = answer.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let content = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let tool_calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let on = |r: EscalateOn| enabled.contains(&r);

    if on(EscalateOn::Empty) && content.trim().is_empty() && tool_calls.is_none_or(Vec::is_empty) {
        return Some(EscalateOn::Empty);
    }
    if on(EscalateOn::Truncated) && finish == Some("length") {
        return Some(EscalateOn::Truncated);
    }
    if on(EscalateOn::Refusal) && is_refusal(message, content, finish) {
        return Some(EscalateOn::Refusal);
    }
    if on(EscalateOn::InvalidJson) && !json_ok(req, content, tool_calls) {
        return Some(EscalateOn::InvalidJson);
    }
    if on(EscalateOn::LowConfidence) {
        if let (Some(min), Some(mean)) = (min_mean_logprob, choice.and_then(mean_logprob)) {
            if mean < min {
                return Some(EscalateOn::LowConfidence);
            }
        }
    }
    None
}

fn is_refusal(message: Option<&Value>, content: &str, finish: Option<&str>) -> bool {
    if finish == Some("content_filter") {
        return true;
    }
    if message
        .and_then(|m| m.get("refusal"))
        .is_some_and(|r| r.as_str().is_some_and(|s| !s.is_empty()))
    {
        return true;
    }
    let head: String = content
        .trim_start()
        .chars()
        .take(80)
        .collect::<String>()
        .to_lowercase();
    REFUSALS.iter().any(|r| head.starts_with(r))
}

/// The answer honours the JSON the request asked for: valid JSON for `json_object`, valid against
/// the schema for `json_schema`, and tool-call arguments valid against each tool's parameters.
fn json_ok(req: &ChatRequest, content: &str, tool_calls: Option<&Vec<Value>>) -> bool {
    let format = req.extra.get("response_format");
    match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") if serde_json::from_str::<Value>(content).is_err() => return false,
        Some("json_schema") => {
            let Ok(v) = serde_json::from_str::<Value>(content) else {
                return false;
            };
            if let Some(schema) = format
                .and_then(|f| f.get("json_schema"))
                .and_then(|s| s.get("schema"))
            {
                if !valid(schema, &v) {
                    return false;
                }
            }
        }
        _ => {}
    }
    for call in tool_calls.into_iter().flatten() {
        let f = call.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let Ok(parsed) = serde_json::from_str::<Value>(args) else {
            return false;
        };
        let schema = req
            .extra
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|tools| {
                tools.iter().find_map(|t| {
                    let tf = t.get("function")?;
                    (tf.get("name")?.as_str()? == name)
                        .then(|| tf.get("parameters"))
                        .flatten()
                })
            });
        match schema {
            Some(s) if !valid(s, &parsed) => return false,
            None if req.extra.get("tools").is_some() => return false, // a tool that was never offered
            _ => {}
        }
    }
    true
}

/// A schema that does not compile cannot judge anything: the answer is given the benefit of the
/// doubt rather than escalated on the client's mistake.
fn valid(schema: &Value, v: &Value) -> bool {
    match jsonschema::validator_for(schema) {
        Ok(validator) => validator.is_valid(v),
        Err(_) => true,
    }
}

/// Whether two answers to the same request settle on the same thing (the `agree` signal): their
/// texts as [`crate::answers::agree`] reads them, or, for tool calls, the same tools called with
/// the same arguments (key order aside). A text answer and a tool call never agree.
pub fn agree(a: &Value, b: &Value, how: crate::answers::Compare) -> bool {
    match (tool_calls(a), tool_calls(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => crate::answers::agree(content(a), content(b), how),
        _ => false,
    }
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
}

/// (name, parsed arguments) of each tool call, `None` when the answer calls no tool.
fn tool_calls(answer: &Value) -> Option<Vec<(String, Value)>> {
    let calls = answer["choices"][0]["message"]["tool_calls"].as_array()?;
    if calls.is_empty() {
        return None;
    }
    Some(
        calls
            .iter()
            .map(|c| {
                let f = &c["function"];
                let args = f["arguments"].as_str().unwrap_or("");
                (
                    f["name"].as_str().unwrap_or("").to_string(),
                    // Arguments that are not JSON are compared as they were written.
                    serde_json::from_str(args).unwrap_or_else(|_| Value::String(args.into())),
                )
            })
            .collect(),
    )
}

/// Mean log-probability of the answer's tokens, when the provider returned them.
pub fn mean_logprob(choice: &Value) -> Option<f64> {
    let items = choice.get("logprobs")?.get("content")?.as_array()?;
    let lps: Vec<f64> = items
        .iter()
        .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
        .collect();
    if lps.is_empty() {
        return None;
    }
    Some(lps.iter().sum::<f64>() / lps.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[EscalateOn] = &[
        EscalateOn::Empty,
        EscalateOn::Truncated,
        EscalateOn::Refusal,
        EscalateOn::InvalidJson,
        EscalateOn::LowConfidence,
    ];

    fn req(extra: Value) -> ChatRequest {
        let mut v = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn answer(content: Value, finish: &str) -> Value {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]})
    }

    #[test]
    fn good_answer_passes() {
        assert_eq!(
            check(
                &req(json!({})),
                &answer(json!("Paris."), "stop"),
                ALL,
                Some(-1.0)
            ),
            None
        );
    }

    #[test]
    fn empty_truncated_and_refused_answers_escalate() {
        let r = req(json!({}));
        assert_eq!(
            check(&r, &answer(json!("  "), "stop"), ALL, None),
            Some(EscalateOn::Empty)
        );
        assert_eq!(
            check(&r, &answer(Value::Null, "stop"), ALL, None),
            Some(EscalateOn::Empty)
        );
        assert_eq!(
            check(&r, &answer(json!("The answer is"), "length"), ALL, None),
            Some(EscalateOn::Truncated)
        );
        assert_eq!(
            check(
                &r,
                &answer(json!("I'm sorry, but I can't help with that."), "stop"),
                ALL,
                None
            ),
            Some(EscalateOn::Refusal)
        );
        assert_eq!(
            check(&r, &answer(json!("ok"), "content_filter"), ALL, None),
            Some(EscalateOn::Refusal)
        );
        // A disabled signal is ignored.
        assert_eq!(
            check(
                &r,
                &answer(json!("The answer is"), "length"),
                &[EscalateOn::Empty],
                None
            ),
            None
        );
        // "Sorry" later in an answer is not a refusal.
        assert_eq!(
            check(
                &r,
                &answer(json!("Here it is. Sorry, I can't resist a pun."), "stop"),
                ALL,
                None
            ),
            None
        );
    }

    #[test]
    fn json_mode_and_schema_are_enforced() {
        let obj = req(json!({"response_format": {"type": "json_object"}}));
        assert_eq!(
            check(&obj, &answer(json!("{\"a\":1}"), "stop"), ALL, None),
            None
        );
        assert_eq!(
            check(&obj, &answer(json!("Sure! {\"a\":1}"), "stop"), ALL, None),
            Some(EscalateOn::InvalidJson)
        );
        let schema = req(
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema":
            {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}}}}),
        );
        assert_eq!(
            check(&schema, &answer(json!("{\"age\": 3}"), "stop"), ALL, None),
            None
        );
        assert_eq!(
            check(
                &schema,
                &answer(json!("{\"age\": \"three\"}"), "stop"),
                ALL,
                None
            ),
            Some(EscalateOn::InvalidJson)
        );
    }

    #[test]
    fn tool_call_arguments_are_checked_against_the_tool_schema() {
        let r = req(
            json!({"tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}),
        );
        let call = |name: &str, args: &str| {
            json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}]}, "finish_reason": "tool_calls"}]})
        };
        assert_eq!(
            check(&r, &call("weather", "{\"city\":\"Oslo\"}"), ALL, None),
            None
        );
        assert_eq!(
            check(&r, &call("weather", "{\"town\":\"Oslo\"}"), ALL, None),
            Some(EscalateOn::InvalidJson)
        );
        assert_eq!(
            check(&r, &call("weather", "{city: Oslo"), ALL, None),
            Some(EscalateOn::InvalidJson)
        );
        assert_eq!(
            check(&r, &call("stocks", "{}"), ALL, None),
            Some(EscalateOn::InvalidJson)
        );
    }

    #[test]
    fn two_answers_agree_on_text_or_on_the_same_tool_calls() {
        use crate::answers::Compare;
        let auto = Compare::Auto(80);
        assert!(agree(
            &answer(json!("The answer is (B)."), "stop"),
            &answer(json!("B"), "stop"),
            auto
        ));
        assert!(!agree(
            &answer(json!("B"), "stop"),
            &answer(json!("C"), "stop"),
            auto
        ));
        let call = |args: &str| {
            json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": args}}]}}]})
        };
        assert!(agree(
            &call(r#"{"city": "Oslo", "unit": "C"}"#),
            &call(r#"{"unit":"C","city":"Oslo"}"#),
            auto
        ));
        assert!(!agree(
            &call(r#"{"city": "Oslo"}"#),
            &call(r#"{"city": "Bergen"}"#),
            auto
        ));
        assert!(!agree(
            &call(r#"{"city": "Oslo"}"#),
            &answer(json!("Oslo"), "stop"),
            auto
        ));
    }

    #[test]
    fn low_mean_logprob_escalates() {
        let r = req(json!({}));
        let with_lp = |lps: &[f64]| {
            let content: Vec<Value> = lps
                .iter()
                .map(|l| json!({"token": "x", "logprob": l}))
                .collect();
            json!({"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "stop", "logprobs": {"content": content}}]})
        };
        assert_eq!(check(&r, &with_lp(&[-0.1, -0.3]), ALL, Some(-1.0)), None);
        assert_eq!(
            check(&r, &with_lp(&[-2.0, -1.5]), ALL, Some(-1.0)),
            Some(EscalateOn::LowConfidence)
        );
        // No log-probs returned: the signal cannot fire.
        assert_eq!(
            check(&r, &answer(json!("x"), "stop"), ALL, Some(-1.0)),
            None
        );
    }
}
