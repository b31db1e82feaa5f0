//! OpenAI-compatible chat completions (OpenAI, Azure OpenAI, vLLM, Ollama, Groq, Together,
//! OpenRouter, Mistral…). The client's body is forwarded as is, with only `model` replaced, so
//! fields switchyard does not know still reach the provider.

use super::{
    Call, ChatResponse, ChunkStream, DEFAULT_TIMEOUT, ProviderError, read_json, secret_header,
    send, sse,
};
use crate::config::{ProviderConfig, ProviderKind};
use crate::openai::Usage;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use std::time::Duration;

pub struct OpenAiProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    stream_usage: bool,
}

const OPENAI_BASE: &str = "https://api.openai.com/v1";

/// `metadata` carries routing hints for the gateway, and OpenAI rejects it unless `store` is set;
/// so it is forwarded only together with `store: true`, where it labels the stored completion.
fn forwards_metadata(req: &crate::openai::ChatRequest) -> bool {
    req.extra
        .get("store")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The URL of `path` under the provider's base and the headers that authenticate to it, the same
/// way for chat and embeddings: Bearer for OpenAI-compatible servers; `api-key` and `api-version`
/// for Azure; then the configured extra headers.
pub(crate) fn endpoint(
    name: &str,
    cfg: &ProviderConfig,
    path: &str,
) -> Result<(reqwest::Url, HeaderMap), String> {
    let base = cfg
        .base_url
        .as_ref()
        .map_or(OPENAI_BASE, |u| u.as_str())
        .trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/{path}"))
        .map_err(|e| format!("provider {name}: invalid base_url: {e}"))?;
    let mut headers = HeaderMap::new();
    let key = cfg
        .api_key
        .as_ref()
        .map(|k| k.as_str())
        .filter(|k| !k.is_empty());
    if cfg.kind == ProviderKind::Azure {
        if let Some(v) = &cfg.api_version {
            url.query_pairs_mut().append_pair("api-version", v.as_str());
        }
        if let Some(k) = key {
            headers.insert("api-key", secret_header(name, k)?);
        }
    } else if let Some(k) = key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            secret_header(name, &format!("Bearer {k}"))?,
        );
    }
    for (k, v) in &cfg.headers {
        let hn = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("provider {name}: invalid header name {k:?}"))?;
        headers.insert(hn, secret_header(name, v.as_str())?);
    }
    Ok((url, headers))
}

/// The client's request as the provider receives it, serialised straight from the borrowed
/// request: `model` replaced, `metadata` dropped unless stored, `stream` / `stream_options` set
/// for the call. Building it as a JSON value first would copy every message on each request.
struct UpstreamBody<'a> {
    call: &'a Call<'a>,
    stream: Option<bool>,
    /// Replaces the client's `stream_options` when usage must be asked for.
    stream_options: Option<Value>,
    metadata: bool,
}

impl serde::Serialize for UpstreamBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let req = self.call.request;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.call.model)?;
        m.serialize_entry("messages", &req.messages)?;
        for (k, v) in &req.extra {
            let replaced = (k == "stream_options" && self.stream_options.is_some())
                || (k == "metadata" && !self.metadata);
            if !replaced {
                m.serialize_entry(k, v)?;
            }
        }
        if let Some(st) = self.stream {
            m.serialize_entry("stream", &st)?;
        }
        if let Some(o) = &self.stream_options {
            m.serialize_entry("stream_options", o)?;
        }
        m.end()
    }
}

impl OpenAiProvider {
    pub fn new(name: &str, cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let (url, headers) = endpoint(name, cfg, "chat/completions")?;
        Ok(OpenAiProvider {
            http,
            url,
            headers,
            timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            stream_usage: cfg.stream_usage,
        })
    }

    fn body<'a>(&self, call: &'a Call<'a>, stream: bool) -> UpstreamBody<'a> {
        let stream_options = (stream && call.stream_usage && self.stream_usage).then(|| {
            let mut opts = match call.request.extra.get("stream_options") {
                Some(Value::Object(o)) => o.clone(),
                _ => serde_json::Map::new(),
            };
            opts.insert("include_usage".into(), Value::Bool(true));
            Value::Object(opts)
        });
        UpstreamBody {
            call,
            stream: if stream {
                Some(true)
            } else {
                call.request.stream.map(|_| false)
            },
            stream_options,
            metadata: forwards_metadata(call.request),
        }
    }

    pub async fn chat(&self, call: &Call<'_>) -> Result<ChatResponse, ProviderError> {
        let req = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(&self.body(call, false));
        let body = read_json(send(req).await?).await?;
        if !body.get("choices").is_some_and(Value::is_array) {
            return Err(ProviderError::invalid_response(
                "the provider's answer has no `choices` array",
            ));
        }
        let usage = body.get("usage").and_then(Usage::from_openai);
        Ok(ChatResponse { body, usage })
    }

    pub async fn chat_stream(&self, call: &Call<'_>) -> Result<ChunkStream, ProviderError> {
        let req = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .json(&self.body(call, true));
        let resp = tokio::time::timeout(self.timeout, send(req))
            .await
            .map_err(|_| {
                ProviderError::new(
                    super::ErrorKind::Timeout,
                    "the provider did not start its stream in time",
                )
            })??;
        let events = sse::events(resp);
        let chunks = events
            .take_while(|ev| std::future::ready(!matches!(ev, Ok(e) if e.data.trim() == "[DONE]")))
            .filter_map(|ev| async move {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => return Some(Err(e)),
                };
                if ev.data.trim().is_empty() {
                    return None;
                }
                let v: Value = match serde_json::from_str(&ev.data) {
                    Ok(v) => v,
                    Err(e) => {
                        return Some(Err(ProviderError::invalid_response(format!(
                            "the provider sent a stream chunk that is not JSON: {e}"
                        ))));
                    }
                };
                if !v.is_object() {
                    return Some(Err(ProviderError::invalid_response(
                        "the provider sent a stream chunk that is not a JSON object",
                    )));
                }
                if let Some(err) = v.get("error") {
                    let msg = err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the provider reported an error mid-stream");
                    let mut pe = ProviderError::new(super::ErrorKind::Server, msg);
                    pe.code = err
                        .get("code")
                        .or_else(|| err.get("type"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    return Some(Err(pe));
                }
                Some(Ok(v))
            });
        Ok(Box::pin(chunks))
    }
}
