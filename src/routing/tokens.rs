//! Prompt size in tokens, counted with OpenAI's o200k tokenizer. Other providers' tokenizers
//! differ by a few percent, which is well inside what a routing threshold needs.

use crate::openai::ChatRequest;
use serde_json::Value;

/// Tokens OpenAI adds per message for role and framing.
const PER_MESSAGE: u64 = 4;

/// Loads the tokenizer tables now (a few hundred milliseconds), so the first request that needs a
/// count does not pay for it.
pub fn prewarm() {
    let _ = tiktoken_rs::o200k_base_singleton();
}

pub fn count(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// The conversation's text plus tool definitions, as the model will see them.
pub fn estimate_prompt(req: &ChatRequest) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut total = 3;
    for m in &req.messages {
        total += PER_MESSAGE + bpe.encode_ordinary(&m.text()).len() as u64;
    }
    if let Some(tools) = req.extra.get("tools").filter(|t| !t.is_null()) {
        total += bpe.encode_ordinary(&tools.to_string()).len() as u64;
    }
    total
}

/// Images are counted by OpenAI as a fixed cost per tile; a flat estimate keeps routing honest
/// about image-heavy prompts without decoding them.
pub fn image_parts(req: &ChatRequest) -> usize {
    req.messages
        .iter()
        .filter_map(|m| m.content.as_ref().and_then(Value::as_array))
        .flatten()
        .filter(|p| {
            matches!(
                p.get("type").and_then(Value::as_str),
                Some("image_url" | "input_image" | "image")
            )
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_openai() {
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"auto","messages":[{"role":"user","content":"hello world"}]}"#,
        )
        .unwrap();
        assert_eq!(estimate_prompt(&req), 3 + 4 + 2);
    }
}
