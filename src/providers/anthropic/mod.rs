//! Anthropic Messages API adapter. Unlike the OpenAI adapter this one cannot forward the client's
//! body: the two wire formats differ in shape, so every field is translated explicitly and fields
//! with no Anthropic meaning are dropped (Anthropic rejects unknown keys with a 400).
//!
//! `request` builds the Messages body, `response` turns a message into a `chat.completion`, and
//! `stream` turns Anthropic's typed events into `chat.completion.chunk`s. This file only does HTTP.
//!
//! Must not import `dispatch`, `routing` or anything above `providers`.

mod request;
mod response;
mod stream;

use super::{
    Call, ChatResponse, ChunkStream, DEFAULT_TIMEOUT, ErrorKind, ProviderError, read_json,
    secret_header, send,
};
use crate::config::ProviderConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

const ANTHROPIC_BASE: &str = "https://api.anthropic.com";
/// The version whose wire format this adapter implements; a config may pin a newer one.
const DEFAULT_VERSION: &str = "2023-06-01";

pub struct AnthropicProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
}

impl AnthropicProvider {
    pub fn new(name: &str, cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let base = cfg
            .base_url
            .as_ref()
            .map_or(ANTHROPIC_BASE, |u| u.as_str())
            .trim_end_matches('/');
        // Accept the base written either way (`…/v1` is how OpenAI-style configs spell it).
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = reqwest::Url::parse(&format!("{base}/v1/messages"))
            .map_err(|e| format!("provider {name}: invalid base_url: {e}"))?;

        let mut headers = HeaderMap::new();
        if let Some(k) = cfg.api_key.as_ref().filter(|k| !k.as_str().is_empty()) {
            headers.insert("x-api-key", secret_header(name, k.as_str())?);
        }
        let version = cfg
            .anthropic_version
            .as_ref()
            .map_or(DEFAULT_VERSION, |v| v.as_str());
        headers.insert(
            "anthropic-version",
            HeaderValue::from_str(version).map_err(|_| {
                format!("provider {name}: anthropic_version contains characters not allowed in HTTP headers")
            })?,
        );
        // Applied last so a config can override the defaults above (e.g. add `anthropic-beta`).
        for (k, v) in &cfg.headers {
            let hn = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("provider {name}: invalid header name {k:?}"))?;
            headers.insert(hn, secret_header(name, v.as_str())?);
        }

        Ok(AnthropicProvider {
            http,
            url,
            headers,
            timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
        })
    }

    /// The configured headers, and the `anthropic-beta` features a Messages client opted into
    /// (unless the config sets that header itself).
    fn headers(&self, call: &Call<'_>) -> HeaderMap {
        let mut h = self.headers.clone();
        let beta = call
            .request
            .anthropic
            .as_ref()
            .and_then(|r| r.beta.as_deref());
        if let Some(v) = beta.and_then(|b| HeaderValue::from_str(b).ok())
            && !h.contains_key("anthropic-beta")
        {
            h.insert("anthropic-beta", v);
        }
        h
    }

    pub async fn chat(&self, call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        let body = request::build(call, false)?;
        let req = self
            .http
            .post(self.url.clone())
            .headers(self.headers(call))
            .timeout(self.timeout)
            .json(&body);
        let answer = read_json(send(req).await?).await?;
        let mut resp = response::to_openai(&answer, call.model)?;
        // A client of the Messages API gets Claude's own message (thinking blocks, citations,
        // the matched stop sequence), which the chat shape cannot hold.
        if call.request.anthropic.is_some()
            && let Some(body) = resp.body.as_object_mut()
        {
            body.insert(crate::anthropic::NATIVE.into(), answer);
        }
        Ok(resp)
    }

    /// The timeout bounds only the wait for response headers: a long answer streamed steadily is
    /// healthy and must not be cut off by a whole-request limit.
    pub async fn chat_stream(&self, call: &Call<'_>) -> Result<ChunkStream, ProviderError> {
        let body = request::build(call, true)?;
        let req = self
            .http
            .post(self.url.clone())
            .headers(self.headers(call))
            .json(&body);
        let resp = tokio::time::timeout(self.timeout, send(req))
            .await
            .map_err(|_| {
                ProviderError::new(
                    ErrorKind::Timeout,
                    "the provider did not start its stream in time",
                )
            })??;
        Ok(stream::chunks(
            resp,
            call.model.to_string(),
            call.stream_usage,
            call.request.anthropic.is_some(),
        ))
    }
}
