//! A provider with no network behind it, for the demo config and for tests of switchyard's own
//! logic. Every answer says it is simulated, so nobody mistakes it for a model's output.

use super::{Call, ChatResponse, ChunkStream, ErrorKind, ProviderError};
use crate::config::{ProviderConfig, SimulateConfig};
use crate::openai::{Usage, unix_now};
use serde_json::{Value, json};
use std::time::Duration;

pub struct SimulatedProvider {
    cfg: SimulateConfig,
}

const WORDS: &[&str] = &[
    "this",
    "is",
    "a",
    "simulated",
    "answer",
    "from",
    "switchyard",
    "no",
    "model",
    "was",
    "called",
    "and",
    "no",
    "tokens",
    "were",
    "billed",
];

impl SimulatedProvider {
    pub fn new(cfg: &ProviderConfig) -> Self {
        SimulatedProvider {
            cfg: cfg.simulate.clone(),
        }
    }

    fn maybe_fail(&self) -> Result<(), ProviderError> {
        if self.cfg.failure_rate > 0.0 && fastrand::f64() < self.cfg.failure_rate {
            let mut e = ProviderError::new(
                ErrorKind::Server,
                "simulated provider failure (failure_rate)",
            );
            e.status = Some(503);
            return Err(e);
        }
        Ok(())
    }

    fn words(&self, model: &str) -> Vec<String> {
        let n = self.cfg.output_tokens.max(1) as usize;
        let mut out = Vec::with_capacity(n);
        out.push(format!("[simulated {model}]"));
        out.extend((1..n).map(|i| WORDS[(i - 1) % WORDS.len()].to_string()));
        out
    }

    fn usage(call: &Call<'_>, completion: u64) -> Usage {
        // About four characters per token, the usual rule of thumb for English text.
        let chars: usize = call.request.messages.iter().map(|m| m.text().len()).sum();
        Usage {
            prompt_tokens: (chars as u64).div_ceil(4).max(1),
            completion_tokens: completion,
            cached_tokens: 0,
        }
    }

    fn finish_reason(&self, call: &Call<'_>) -> &'static str {
        let limit = call
            .request
            .extra
            .get("max_tokens")
            .or_else(|| call.request.extra.get("max_completion_tokens"))
            .and_then(Value::as_u64);
        match limit {
            Some(l) if l < u64::from(self.cfg.output_tokens) => "length",
            _ => "stop",
        }
    }

    pub async fn chat(&self, call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        tokio::time::sleep(self.cfg.latency.0).await;
        self.maybe_fail()?;
        let words = self.words(call.model);
        let usage = Self::usage(call, words.len() as u64);
        let body = json!({
            "id": format!("chatcmpl-sim-{}", uuid::Uuid::new_v4().simple()),
            "object": "chat.completion",
            "created": unix_now(),
            "model": call.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": words.join(" ") },
                "logprobs": null,
                "finish_reason": self.finish_reason(call),
            }],
            "usage": usage.to_openai(),
        });
        Ok(ChatResponse {
            body,
            usage: Some(usage),
        })
    }

    pub async fn chat_stream(&self, call: &Call<'_>) -> Result<ChunkStream, ProviderError> {
        tokio::time::sleep(self.cfg.latency.0).await;
        self.maybe_fail()?;
        let id = format!("chatcmpl-sim-{}", uuid::Uuid::new_v4().simple());
        let created = unix_now();
        let model = call.model.to_string();
        let words = self.words(call.model);
        let usage = Self::usage(call, words.len() as u64);
        let finish = self.finish_reason(call);
        let interval = self.cfg.chunk_interval.0;
        let mut chunks: Vec<Value> = Vec::with_capacity(words.len() + 3);
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        };
        chunks.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        for (i, w) in words.iter().enumerate() {
            let text = if i == 0 { w.clone() } else { format!(" {w}") };
            chunks.push(chunk(json!({"content": text}), Value::Null));
        }
        chunks.push(chunk(json!({}), Value::String(finish.into())));
        if call.stream_usage {
            chunks.push(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [], "usage": usage.to_openai()}));
        }
        let stream = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
            move |(i, c)| async move {
                if i > 0 && interval > Duration::ZERO {
                    tokio::time::sleep(interval).await;
                }
                Ok(c)
            },
        );
        Ok(Box::pin(stream))
    }
}

use futures_util::StreamExt;
