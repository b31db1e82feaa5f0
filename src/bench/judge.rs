//! The `judge` scorer: a model of the routing table grades an answer from 1 to 10 against a rubric
//! (and the reference answer, when the prompt has one). The grade maps onto 0–1 as (g − 1) / 9, so
//! the worst grade is 0 and the best is 1. The call itself goes through the runner like any other,
//! so it is paced, retried and paid for out of the same `--max-cost`.

use super::score::Score;
use super::tasks::Prompt;
use crate::openai::ChatRequest;
use serde_json::{Value, json};

const INSTRUCTIONS: &str = "You grade answers written by an AI assistant. Read the conversation, \
the rubric and, when given, a reference answer, then judge how well the assistant's answer meets \
the rubric. Reply with one integer from 1 (useless) to 10 (excellent) and nothing else.";

const DEFAULT_RUBRIC: &str =
    "The answer is correct, complete and directly addresses the user's request.";

/// Long inputs are cut: the judge needs the gist, and its cost must stay small.
const MAX_CHARS: usize = 8000;

/// The grading request for `answer` to `prompt`, addressed to the judge model `model`.
pub fn request(
    model: &str,
    rubric: Option<&str>,
    prompt: &Prompt,
    answer: &str,
) -> Result<ChatRequest, String> {
    let conversation: Vec<String> = prompt
        .messages
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let text = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            format!("[{role}] {}", clip(&text))
        })
        .collect();
    let mut text = format!(
        "Rubric:\n{}\n\nConversation:\n{}\n\n",
        rubric.unwrap_or(DEFAULT_RUBRIC),
        conversation.join("\n")
    );
    if let Some(r) = &prompt.reference {
        text.push_str(&format!("Reference answer:\n{}\n\n", clip(r)));
    }
    text.push_str(&format!(
        "Assistant's answer:\n{}\n\nGrade (1-10):",
        clip(answer)
    ));
    serde_json::from_value(json!({
        "model": model,
        "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}],
        "max_tokens": 8,
        "temperature": 0,
    }))
    .map_err(|e| format!("judge request: {e}"))
}

/// The grade in the judge's reply, mapped onto 0–1. A reply that holds no grade is the judge's
/// failure, not the answer's: the caller records it as failed rather than as a 0.
pub fn read(reply: &str) -> Result<Score, String> {
    match crate::answers::rating(reply) {
        Some(g) => Ok(Score {
            value: (g - 1.0) / 9.0,
            unreadable: None,
        }),
        None => Err(format!(
            "the judge replied {:?}, which holds no grade from 1 to 10",
            clip_short(reply)
        )),
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn clip_short(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn grades_map_onto_zero_to_one() {
        assert_eq!(read("10").unwrap().value, 1.0);
        assert_eq!(read("1").unwrap().value, 0.0);
        assert!((read("Grade: 7/10").unwrap().value - 6.0 / 9.0).abs() < 1e-12);
        assert!(read("excellent").is_err());
    }

    #[test]
    fn the_request_carries_rubric_reference_and_answer() {
        let p = Prompt {
            id: "x".into(),
            messages: vec![
                json!({"role": "user", "content": "Summarise: the launch moved to May."}),
            ],
            reference: Some("Launch is in May.".into()),
        };
        let r = request("grader", Some("Mentions the new month."), &p, "It moved.").unwrap();
        let text = r.messages[1].text();
        for part in [
            "Mentions the new month.",
            "[user] Summarise: the launch moved to May.",
            "Reference answer:\nLaunch is in May.",
            "Assistant's answer:\nIt moved.",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert_eq!(r.model, "grader");
    }
}
