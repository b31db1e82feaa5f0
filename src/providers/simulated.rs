//! A provider with no network behind it, for the demo config and for tests of switchyard's own
//! logic. Every answer says it is simulated, so nobody mistakes it for a model's output.
//!
//! One exception: a benchmark prompt (`switchyard bench` passes the reference answer to simulated
//! models, and only to them, in `metadata.simulate_reference`) is answered like a model of a given
//! skill would: with the reference, at the chance `simulate.skill` gives its task type, else with
//! a plausible wrong answer. The draw is a hash of the seed, the model and the prompt, so a run is
//! reproducible and a resumed run sees the same answers.

use super::{
    Call, ChatResponse, ChunkStream, EmbedCall, EmbeddingResponse, ErrorKind, ProviderError,
};
use crate::config::{ProviderConfig, SimulateConfig};
use crate::openai::{Usage, unix_now};
use futures_util::StreamExt;
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

    fn words(&self, call: &Call<'_>) -> Vec<String> {
        if let Some(answer) = self.benchmark_answer(call) {
            let words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
            if !words.is_empty() {
                return words;
            }
        }
        let model = call.model;
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

    /// `length` when the request's output cap is below the answer's length in words (tokens).
    fn finish_reason(call: &Call<'_>, words: usize) -> &'static str {
        let limit = call
            .request
            .extra
            .get("max_tokens")
            .or_else(|| call.request.extra.get("max_completion_tokens"))
            .and_then(Value::as_u64);
        match limit {
            Some(l) if l < words as u64 => "length",
            _ => "stop",
        }
    }

    /// The answer to a benchmark prompt: the reference with the task type's skill, else a wrong one.
    fn benchmark_answer(&self, call: &Call<'_>) -> Option<String> {
        let meta = call.request.extra.get("metadata")?;
        let reference = match meta.get("simulate_reference")? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let task = meta.get("task_type").and_then(Value::as_str).unwrap_or("");
        let skill = self
            .cfg
            .skill
            .get(task)
            .or_else(|| self.cfg.skill.get("default"))
            .copied()
            .unwrap_or(0.5);
        let mut key = Vec::new();
        key.extend_from_slice(&self.cfg.seed.to_le_bytes());
        for part in [call.model, task] {
            key.extend_from_slice(part.as_bytes());
            key.push(0);
        }
        for m in &call.request.messages {
            key.extend_from_slice(m.text_ref().as_bytes());
            key.push(0);
        }
        let h = xxhash_rust::xxh3::xxh3_64(&key);
        let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
        Some(if draw < skill {
            reference
        } else {
            wrong_answer(&reference, xxhash_rust::xxh3::xxh3_64_with_seed(&key, 1))
        })
    }

    pub async fn chat(&self, call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        tokio::time::sleep(self.cfg.latency.0).await;
        self.maybe_fail()?;
        let words = self.words(call);
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
                "finish_reason": Self::finish_reason(call, words.len()),
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
        let words = self.words(call);
        let usage = Self::usage(call, words.len() as u64);
        let finish = Self::finish_reason(call, words.len());
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

/// Vector size when the request does not ask for `dimensions`.
pub const EMBEDDING_DIMENSIONS: u64 = 256;
/// The largest `dimensions` the simulated provider answers (real models stop near 4096 too).
pub const MAX_EMBEDDING_DIMENSIONS: u64 = 8192;

impl SimulatedProvider {
    /// A unit vector per input, drawn from a hash of the model and the input: the same input
    /// always gets the same vector, different inputs almost orthogonal ones. Base64 is the
    /// little-endian `f32`s, as OpenAI encodes them.
    pub async fn embed(&self, call: &EmbedCall<'_>) -> Result<EmbeddingResponse, ProviderError> {
        use crate::openai::embeddings::Inputs;
        use base64::Engine;
        tokio::time::sleep(self.cfg.latency.0).await;
        self.maybe_fail()?;
        let req = call.request;
        let dims = req.dimensions.unwrap_or(EMBEDDING_DIMENSIONS);
        if dims > MAX_EMBEDDING_DIMENSIONS {
            let mut e = ProviderError::new(
                ErrorKind::BadRequest,
                format!(
                    "dimensions {dims} is more than the {MAX_EMBEDDING_DIMENSIONS} this model supports"
                ),
            );
            e.status = Some(400);
            e.param = Some("dimensions".into());
            return Err(e);
        }
        // (the bytes hashed, the tokens billed) per input; text at about four characters a token.
        let items: Vec<(Vec<u8>, u64)> = match req.inputs() {
            Inputs::Texts(t) => t
                .iter()
                .map(|s| (s.as_bytes().to_vec(), (s.len() as u64).div_ceil(4).max(1)))
                .collect(),
            Inputs::Tokens(t) => t
                .iter()
                .map(|ids| {
                    let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
                    (text.join(",").into_bytes(), ids.len() as u64)
                })
                .collect(),
        };
        let mut data = Vec::with_capacity(items.len());
        let mut tokens = 0;
        for (i, (bytes, n)) in items.iter().enumerate() {
            tokens += n;
            let v = vector(call.model, bytes, dims);
            let embedding = if req.base64() {
                let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
            } else {
                json!(v)
            };
            data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
        }
        let usage = Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            cached_tokens: 0,
        };
        let body = json!({
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        Ok(EmbeddingResponse {
            body,
            usage: Some(usage),
        })
    }
}

/// `dims` components in [-1, 1], each a hash of the model, the input and its index, scaled to
/// unit length.
fn vector(model: &str, input: &[u8], dims: u64) -> Vec<f32> {
    let seed = xxhash_rust::xxh3::xxh3_64(model.as_bytes());
    let base = xxhash_rust::xxh3::xxh3_64_with_seed(input, seed);
    let mut v: Vec<f32> = (0..dims)
        .map(|j| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(&j.to_le_bytes(), base);
            ((h >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// A plausible wrong answer: another option, a number that is off, a label the task does not have,
/// or, for a long reference (a summary), only its first third.
fn wrong_answer(reference: &str, h: u64) -> String {
    let r = reference.trim();
    let mut chars = r.chars();
    if let (Some(c @ 'A'..='J'), None) = (chars.next(), chars.next()) {
        let i = u64::from(c as u8 - b'A');
        let options = (i + 1).max(4);
        let other = (i + 1 + h % (options - 1)) % options;
        return char::from(b'A' + other as u8).to_string();
    }
    if let Ok(v) = r.parse::<f64>() {
        let off = (1 + h % 9) as f64;
        return if r.contains('.') {
            format!("{}", v + off / 10.0)
        } else {
            format!("{}", v + off)
        };
    }
    let words: Vec<&str> = r.split_whitespace().collect();
    if words.len() <= 3 {
        return "unsure".into();
    }
    words[..words.len().div_ceil(3)].join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::openai::ChatRequest;

    fn provider(skill: f64) -> SimulatedProvider {
        let mut cfg = SimulateConfig {
            latency: crate::config::Dur::ZERO,
            ..SimulateConfig::default()
        };
        cfg.skill.insert("maths".into(), skill);
        SimulatedProvider { cfg }
    }

    async fn ask(p: &SimulatedProvider, prompt: &str, reference: &str) -> String {
        let req: ChatRequest = serde_json::from_value(json!({"model": "m",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 5, "metadata": {"task_type": "maths", "simulate_reference": reference}}))
        .unwrap();
        let call = Call {
            request: &req,
            model: "sim-1",
            max_output_tokens: None,
            stream_usage: false,
        };
        let r = p.chat(&call).await.unwrap();
        assert_eq!(r.body["choices"][0]["finish_reason"], "stop");
        r.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn answers_benchmark_prompts_with_its_skill_reproducibly() {
        let (good, bad, half) = (provider(1.0), provider(0.0), provider(0.5));
        assert_eq!(ask(&good, "2+2?", "4").await, "4");
        let wrong = ask(&bad, "2+2?", "4").await;
        assert_ne!(wrong, "4");
        assert!(wrong.parse::<f64>().is_ok(), "{wrong}");
        let mut right = 0;
        for i in 0..200 {
            let prompt = format!("question {i}");
            let first = ask(&half, &prompt, "B").await;
            assert_eq!(
                ask(&half, &prompt, "B").await,
                first,
                "same prompt, same answer"
            );
            assert!(["A", "B", "C", "D"].contains(&first.as_str()), "{first}");
            right += usize::from(first == "B");
        }
        assert!(
            (70..=130).contains(&right),
            "{right} of 200 right at skill 0.5"
        );
    }

    async fn embed(p: &SimulatedProvider, body: serde_json::Value) -> Result<Value, ProviderError> {
        let req: crate::openai::EmbeddingRequest = serde_json::from_value(body).unwrap();
        let call = EmbedCall {
            request: &req,
            model: "sim-embed-1",
        };
        p.embed(&call).await.map(|r| r.body)
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_unit_vectors() {
        use base64::Engine;
        let p = provider(0.5);
        let a = embed(
            &p,
            json!({"model": "e", "input": ["alpha", "beta", "alpha"]}),
        )
        .await
        .unwrap();
        let v = |i: usize| -> Vec<f64> {
            a["data"][i]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        assert_eq!(v(0).len() as u64, EMBEDDING_DIMENSIONS);
        assert_eq!(v(0), v(2), "the same input, the same vector");
        assert_ne!(v(0), v(1));
        let norm: f64 = v(1).iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(a["data"][2]["index"], 2);
        // "alpha" and "beta": two tokens at four characters a token, for each input.
        assert_eq!(a["usage"]["prompt_tokens"], 2 + 1 + 2);

        let b = embed(
            &p,
            json!({"model": "e", "input": [[1, 2, 3]], "dimensions": 4, "encoding_format": "base64"}),
        )
        .await
        .unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 4 * 4, "four little-endian f32s");
        assert_eq!(b["usage"]["prompt_tokens"], 3);

        let e = embed(
            &p,
            json!({"model": "e", "input": "x", "dimensions": 100000}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.kind, e.param.as_deref()),
            (ErrorKind::BadRequest, Some("dimensions"))
        );
    }

    #[test]
    fn wrong_answers_look_like_answers() {
        assert_eq!(wrong_answer("positive", 3), "unsure");
        assert_ne!(wrong_answer("C", 5), "C");
        assert_ne!(wrong_answer("12", 0), "12");
        assert_eq!(
            wrong_answer("the launch moved to May because of supply delays", 0),
            "the launch moved"
        );
    }
}
