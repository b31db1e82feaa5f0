//! Anthropic Messages API adapter (placeholder until the translation lands).

use super::{Call, ChatResponse, ChunkStream, ErrorKind, ProviderError};
use crate::config::ProviderConfig;

pub struct AnthropicProvider {
    _http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(_name: &str, _cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        Ok(AnthropicProvider { _http: http })
    }

    pub async fn chat(&self, _call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Server,
            "anthropic adapter not implemented",
        ))
    }

    pub async fn chat_stream(&self, _call: &Call<'_>) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Server,
            "anthropic adapter not implemented",
        ))
    }
}
