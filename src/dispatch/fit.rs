//! The context-window pre-call check: a prompt that cannot fit a deployment's window is not sent
//! to it (that call would fail after a network round trip and still count against the provider's
//! rate limit). Tokens are counted only when a cheap upper bound says the prompt might not fit.

use super::Deployment;
use crate::openai::ChatRequest;
use crate::tokens;
use serde_json::Value;
use std::sync::OnceLock;

pub struct Estimate<'a> {
    req: &'a ChatRequest,
    bound: OnceLock<u64>,
}

impl<'a> Estimate<'a> {
    pub fn new(req: &'a ChatRequest) -> Self {
        Estimate {
            req,
            bound: OnceLock::new(),
        }
    }

    /// Output tokens the client reserved; the provider counts them against the window too.
    fn reserved_output(&self) -> u64 {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| self.req.extra.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    }

    /// Every BPE token is at least one byte, so bytes (plus framing) bound the token count.
    fn upper_bound(&self) -> u64 {
        *self.bound.get_or_init(|| {
            let text: usize = self
                .req
                .messages
                .iter()
                .map(|m| m.text_ref().len() + 16)
                .sum();
            let tools = self
                .req
                .extra
                .get("tools")
                .filter(|t| !t.is_null())
                .map_or(0, |t| t.to_string().len());
            (text + tools + 3) as u64
        })
    }

    /// Prompt tokens as OpenAI's o200k tokenizer counts them.
    pub fn prompt_tokens(&self) -> u64 {
        tokens::estimate_prompt(self.req)
    }

    pub fn fits(&self, m: &Deployment) -> bool {
        let Some(window) = m.context_window else {
            return true;
        };
        let out = self.reserved_output();
        self.upper_bound() + out <= window || self.prompt_tokens() + out <= window
    }
}
