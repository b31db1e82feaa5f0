//! Provider adapters: wire translation and nothing else. Retries, fallbacks and accounting live in
//! `dispatch` and `cost`; an adapter makes one call and classifies its failure.
//!
//! The adapters are an enum rather than trait objects: there are few of them, the set is closed,
//! and async methods on an enum need no boxing.
//!
//! Must not import `routing`, `dispatch`, `state` or `cost`.

pub mod anthropic;
mod error;
pub mod http;
pub mod openai;
pub mod simulated;
mod sse;

pub use error::{CLASSES, ErrorClass, ErrorKind, ProviderError, retry_after};

use crate::config::{ProviderConfig, ProviderKind};
use crate::openai::{ChatRequest, EmbeddingRequest, Usage};
use futures_util::Stream;
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

/// One upstream call: the client's request, aimed at one concrete upstream model.
pub struct Call<'a> {
    pub request: &'a ChatRequest,
    /// The provider's model id (`ModelConfig::model`, or its name).
    pub model: &'a str,
    /// Sent as `max_tokens` where the wire format requires one and the client gave none.
    pub max_output_tokens: Option<u32>,
    /// Ask for usage in the stream even when the client did not, so cost accounting is exact.
    pub stream_usage: bool,
}

/// One upstream embeddings call: the client's request, aimed at one concrete upstream model.
pub struct EmbedCall<'a> {
    pub request: &'a EmbeddingRequest,
    /// The provider's model id.
    pub model: &'a str,
}

/// An embeddings answer in OpenAI's shape (`{object: list, data: [...], usage}`).
#[derive(Debug, Clone)]
pub struct EmbeddingResponse {
    pub body: Value,
    pub usage: Option<Usage>,
}

/// A non-streaming answer, already in OpenAI's `chat.completion` shape.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub body: Value,
    pub usage: Option<Usage>,
}

/// OpenAI `chat.completion.chunk` objects as the provider produces them. A chunk whose `choices` is
/// empty and whose `usage` is set is the final usage report. An `Err` item ends the stream.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Value, ProviderError>> + Send>>;

pub enum Provider {
    OpenAi(openai::OpenAiProvider),
    Anthropic(anthropic::AnthropicProvider),
    Simulated(simulated::SimulatedProvider),
}

/// Timeout defaults when the config sets none: generous, because long completions are normal.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl Provider {
    pub fn build(name: &str, cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        Ok(match cfg.kind {
            ProviderKind::Openai | ProviderKind::Azure => {
                Provider::OpenAi(openai::OpenAiProvider::new(name, cfg, http)?)
            }
            ProviderKind::Anthropic => {
                Provider::Anthropic(anthropic::AnthropicProvider::new(name, cfg, http)?)
            }
            ProviderKind::Simulated => Provider::Simulated(simulated::SimulatedProvider::new(cfg)),
        })
    }

    pub async fn chat(&self, call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.chat(call).await,
            Provider::Anthropic(p) => p.chat(call).await,
            Provider::Simulated(p) => p.chat(call).await,
        }
    }

    /// Resolves once the provider accepted the request (status 2xx); the chunks follow in the stream.
    pub async fn chat_stream(&self, call: &Call<'_>) -> Result<ChunkStream, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.chat_stream(call).await,
            Provider::Anthropic(p) => p.chat_stream(call).await,
            Provider::Simulated(p) => p.chat_stream(call).await,
        }
    }
}

impl Provider {
    /// Vectors for the request's inputs. Anthropic's API has none: that is the client's mistake
    /// (a 400 naming `model`), never retried elsewhere.
    pub async fn embed(&self, call: &EmbedCall<'_>) -> Result<EmbeddingResponse, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.embed(call).await,
            Provider::Anthropic(_) => {
                let mut e = ProviderError::new(
                    ErrorKind::BadRequest,
                    "this model's provider speaks Anthropic's API, which has no embeddings",
                );
                e.status = Some(400);
                e.param = Some("model".into());
                e.code = Some("model_not_embedding".into());
                Err(e)
            }
            Provider::Simulated(p) => p.embed(call).await,
        }
    }
}

/// Marked sensitive so the value never shows up in debug output or logs of the request.
pub(crate) fn secret_header(
    provider: &str,
    value: &str,
) -> Result<reqwest::header::HeaderValue, String> {
    let mut v = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        format!(
            "provider {provider}: a header value contains characters not allowed in HTTP headers"
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Sends a request and turns transport failures and non-2xx answers into `ProviderError`s.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let resp = req
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    Err(ProviderError::from_http(status.as_u16(), &headers, &body))
}

/// Reads a 2xx body as JSON; anything else is an invalid response, not a crash.
pub(crate) async fn read_json(resp: reqwest::Response) -> Result<Value, ProviderError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ProviderError::from_reqwest(&e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ProviderError::invalid_response(format!("the provider's answer is not valid JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config refuses an embedding model on an Anthropic provider; should one be called
    /// anyway, the answer is the client's 400 naming `model`, with no network call.
    #[tokio::test]
    async fn anthropic_has_no_embeddings() {
        let mut cfg = ProviderConfig::simulated();
        cfg.kind = ProviderKind::Anthropic;
        let p = Provider::build("claude", &cfg, reqwest::Client::new()).unwrap();
        let req: EmbeddingRequest =
            serde_json::from_value(serde_json::json!({"model": "e", "input": "x"})).unwrap();
        let call = EmbedCall {
            request: &req,
            model: "claude-x",
        };
        let e = p.embed(&call).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert_eq!((e.status, e.param.as_deref()), (Some(400), Some("model")));
    }
}
