//! An optional judge: a (cheap) model from the table grades the cheap answer from 1 to 10.

use crate::gateway::Model;
use crate::openai::ChatRequest;
use crate::providers::{Call, ProviderError};
use serde_json::json;

const INSTRUCTIONS: &str = "You grade answers written by an AI assistant. Judge whether the answer \
correctly and completely addresses the user's request. Reply with one integer from 1 (useless) \
to 10 (excellent) and nothing else.";

/// Long inputs are cut: the judge needs the gist, and its cost must stay small.
const MAX_CHARS: usize = 6000;

pub async fn score(judge: &Model, req: &ChatRequest, answer: &str) -> Result<f64, ProviderError> {
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
    parse_score(text).ok_or_else(|| {
        ProviderError::invalid_response(format!("the judge answered {text:?}, not a score"))
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The first number in the reply, if it is a score from 1 to 10.
fn parse_score(text: &str) -> Option<f64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = digits.trim_end_matches('.').parse().ok()?;
    (1.0..=10.0).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::parse_score;

    #[test]
    fn reads_the_score() {
        assert_eq!(parse_score("8"), Some(8.0));
        assert_eq!(parse_score("Score: 7/10"), Some(7.0));
        assert_eq!(parse_score("9.5"), Some(9.5));
        assert_eq!(parse_score("eleven"), None);
        assert_eq!(parse_score("42"), None);
    }
}
