//! The context-window pre-call check: a prompt that cannot fit a deployment's window is not sent
//! to it (that call would fail after a network round trip and still count against the provider's
//! rate limit). Tokens are counted only when a cheap upper bound says the prompt might not fit.

use super::Deployment;
use crate::openai::{ChatRequest, EmbeddingRequest};
use crate::tokens;
use serde_json::Value;
use std::sync::OnceLock;

pub struct Estimate<'a> {
    of: Of<'a>,
    bound: OnceLock<u64>,
}

/// What is being sized: a conversation, or an embeddings batch, whose items each must fit the
/// window on their own (the batch as a whole counts against rpm/tpm).
enum Of<'a> {
    Chat(&'a ChatRequest),
    Embedding(&'a EmbeddingRequest),
}

impl<'a> Estimate<'a> {
    pub fn new(req: &'a ChatRequest) -> Self {
        Estimate {
            of: Of::Chat(req),
            bound: OnceLock::new(),
        }
    }

    pub fn embedding(req: &'a EmbeddingRequest) -> Self {
        Estimate {
            of: Of::Embedding(req),
            bound: OnceLock::new(),
        }
    }

    /// Output tokens the client reserved; the provider counts them against the window too.
    fn reserved_output(&self) -> u64 {
        let Of::Chat(req) = self.of else {
            return 0;
        };
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| req.extra.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    }

    /// Every BPE token is at least one byte, so bytes (plus framing) bound the token count.
    fn upper_bound(&self) -> u64 {
        let req = match self.of {
            Of::Chat(req) => req,
            Of::Embedding(req) => return tokens::embedding_input(req).1,
        };
        *self.bound.get_or_init(|| {
            let text: usize = req.messages.iter().map(|m| m.text_ref().len() + 16).sum();
            let tools = req
                .extra
                .get("tools")
                .filter(|t| !t.is_null())
                .map_or(0, |t| t.to_string().len());
            (text + tools + 3) as u64
        })
    }

    /// Prompt tokens as OpenAI's o200k tokenizer counts them (a batch's: all its inputs').
    pub fn prompt_tokens(&self) -> u64 {
        match self.of {
            Of::Chat(req) => tokens::estimate_prompt(req),
            Of::Embedding(req) => tokens::embedding_input(req).0,
        }
    }

    /// What must fit a window, for an error that says it did not: the prompt, or a batch's
    /// longest input; and the request field it is in.
    pub fn too_long(&self) -> (u64, &'static str, &'static str) {
        match self.of {
            Of::Chat(_) => (self.prompt_tokens(), "the prompt", "messages"),
            Of::Embedding(req) => (tokens::embedding_input(req).1, "the longest input", "input"),
        }
    }

    pub fn fits(&self, m: &Deployment) -> bool {
        let Some(window) = m.context_window else {
            return true;
        };
        if let Of::Embedding(req) = self.of {
            return tokens::embedding_input(req).1 <= window;
        }
        let out = self.reserved_output();
        self.upper_bound() + out <= window || self.prompt_tokens() + out <= window
    }
}
