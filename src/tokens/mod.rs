//! Prompt and answer sizes in tokens, counted as OpenAI's o200k tokenizer counts them. Rules
//! (`prompt_tokens`), the context-window check and the cost of an answer the upstream sent no
//! usage for all need the count; other providers' tokenizers differ by a few percent, which is
//! well inside what a routing threshold or an estimate needs.
//!
//! Must not import `routing`, `dispatch` or `cost` (all three count with it).

mod bpe;
mod split;
mod vocab;

use crate::openai::ChatRequest;
use crate::openai::embeddings::{EmbeddingRequest, Inputs};
use serde_json::Value;
use vocab::Vocab;

/// Tokens OpenAI adds per message for role and framing.
const PER_MESSAGE: u64 = 4;

/// Builds the tables now (~30 ms), so the first request that needs a count does not pay for it.
/// The server calls this at start-up: the memory is then part of the idle footprint rather than
/// a jump on the first request that needs it.
pub fn prewarm() {
    let _ = Vocab::o200k();
    split::prewarm();
}

pub fn count(text: &str) -> u64 {
    let vocab = Vocab::o200k();
    split::pieces(text)
        .map(|p| bpe::count(vocab, p.as_bytes()) as u64)
        .sum()
}

/// The conversation's text plus tool definitions, as the model will see them. Counted once per
/// request: routing, the context-window check and a missing-usage estimate share the figure.
pub fn estimate_prompt(req: &ChatRequest) -> u64 {
    *req.prompt_tokens.get_or_init(|| {
        let mut total = 3;
        for m in &req.messages {
            total += PER_MESSAGE + count(&m.text_ref());
        }
        if let Some(tools) = req.extra.get("tools").filter(|t| !t.is_null()) {
            total += count(&tools.to_string());
        }
        total
    })
}

/// An embeddings request's input as (all tokens, tokens of its longest item): token ids count one
/// each, texts as o200k counts them. Counted once per request.
pub fn embedding_input(req: &EmbeddingRequest) -> (u64, u64) {
    req.input_tokens.get_or_init(|| {
        let sizes: Vec<u64> = match req.inputs() {
            Inputs::Texts(t) => t.iter().map(|s| count(s)).collect(),
            Inputs::Tokens(t) => t.iter().map(|ids| ids.len() as u64).collect(),
        };
        (sizes.iter().sum(), sizes.iter().copied().max().unwrap_or(0))
    })
}

/// Heap bytes the tokenizer's tables hold once built.
pub fn table_bytes() -> usize {
    Vocab::o200k().heap_bytes()
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
        // A clone is counted afresh: it may have been edited since.
        let mut edited = req.clone();
        edited.messages[0].content = Some(Value::String("hello world again".into()));
        assert_eq!(estimate_prompt(&edited), 3 + 4 + 3);
        assert_eq!(estimate_prompt(&req), 3 + 4 + 2);
    }
}
