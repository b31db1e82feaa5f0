//! An optional judge: a (cheap) model from the table grades the cheap answer from 1 to 10.

use super::Deployment;
use crate::openai::ChatRequest;
use crate::providers::{Call, ProviderError};
use serde_json::json;

const INSTRUCTIONS: &str = "You grade answers written by an AI assistant. Judge whether the answer \
correctly and completely addresses the user's request. Reply with one integer from 1 (useless) \
to 10 (excellent) and nothing else.";

/// Long inputs are cut: the judge needs the gist, and its cost must stay small.
const MAX_CHARS: usize = 6000;

pub async fn score(
    judge: &Deployment,
    req: &ChatRequest,
    answer: &str,
) -> Result<f64, ProviderError> {
    let question = req
        .last_user_message()
        .map(|m| m.text())
        .unwrap_or_default();
    let prompt = format!(
        "User request:\n{}\n\nAssistant answer:\n{}\n\nScore (1-10):",
        clip(&question),
        clip(answer)
    );
    let body = json!({
        "model": judge.upstream,
        "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}],
        "max_tokens": 5,
        "temperature": 0,
    });
    let grading: ChatRequest = serde_json::from_value(body)
        .map_err(|e| ProviderError::invalid_response(format!("judge request: {e}")))?;
    let call = Call {
        request: &grading,
        model: &judge.upstream,
        max_output_tokens: Some(5),
        stream_usage: false,
    };
    let resp = judge.provider.chat(&call).await?;
    let text = resp.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    crate::answers::rating(text).ok_or_else(|| {
        ProviderError::invalid_response(format!("the judge answered {text:?}, not a score"))
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
