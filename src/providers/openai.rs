//! OpenAI-compatible chat completions (OpenAI, Azure OpenAI, vLLM, Ollama, Groq, Together,
//! OpenRouter, Mistral…). The client's body is forwarded as is, with only `model` replaced, so
//! fields switchyard does not know still reach the provider.

use super::{
    Call, ChatResponse, ChunkStream, DEFAULT_TIMEOUT, EmbedCall, EmbeddingResponse, ProviderError,
    read_json, secret_header, send, sse,
};
use crate::config::{ProviderConfig, ProviderKind, StreamEndRule};
use crate::openai::Usage;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

pub struct OpenAiProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `…/embeddings` beside `…/chat/completions`.
    embeddings_url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    stream_usage: bool,
    stream_end: StreamEndRule,
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
        let (embeddings_url, _) = endpoint(name, cfg, "embeddings")?;
        Ok(OpenAiProvider {
            http,
            url,
            embeddings_url,
            headers,
            timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            stream_usage: cfg.stream_usage,
            stream_end: cfg.stream_end,
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
        Ok(Box::pin(chunks(sse::events(resp), self.stream_end)))
    }
}

/// The client's embeddings request as the provider receives it: `model` replaced, every other
/// field (`encoding_format`, `dimensions`, `user`, ones switchyard does not know) as sent.
struct EmbedBody<'a>(&'a EmbedCall<'a>);

impl serde::Serialize for EmbedBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let req = self.0.request;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.0.model)?;
        m.serialize_entry("input", &req.input)?;
        if let Some(f) = &req.encoding_format {
            m.serialize_entry("encoding_format", f)?;
        }
        if let Some(d) = req.dimensions {
            m.serialize_entry("dimensions", &d)?;
        }
        if let Some(u) = &req.user {
            m.serialize_entry("user", u)?;
        }
        for (k, v) in &req.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl OpenAiProvider {
    pub async fn embed(&self, call: &EmbedCall<'_>) -> Result<EmbeddingResponse, ProviderError> {
        let req = self
            .http
            .post(self.embeddings_url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(&EmbedBody(call));
        let body = read_json(send(req).await?).await?;
        if !body.get("data").is_some_and(Value::is_array) {
            return Err(ProviderError::invalid_response(
                "the provider's embeddings answer has no `data` array",
            ));
        }
        let usage = body.get("usage").and_then(Usage::from_openai);
        Ok(EmbeddingResponse { body, usage })
    }
}

/// Whether an OpenAI-compatible stream that ends without `[DONE]` reached its end anyway, as
/// `stream_end` defines it (`[DONE]` itself always ends a stream as complete).
struct Ending {
    rule: StreamEndRule,
    /// Choices that sent a delta but no `finish_reason` yet, and those that finished.
    open: BTreeSet<u64>,
    finished: BTreeSet<u64>,
}

impl Ending {
    fn new(rule: StreamEndRule) -> Self {
        Ending {
            rule,
            open: BTreeSet::new(),
            finished: BTreeSet::new(),
        }
    }

    fn see(&mut self, chunk: &Value) {
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for c in choices {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            // Some servers send `"finish_reason": ""` on every chunk: only a reason ends a choice.
            let reason = c.get("finish_reason").and_then(Value::as_str);
            if reason.is_some_and(|r| !r.is_empty()) {
                self.open.remove(&i);
                self.finished.insert(i);
            } else if !self.finished.contains(&i) {
                self.open.insert(i);
            }
        }
    }

    /// `None` when the body may end here without `[DONE]`; else why ending here cuts the answer
    /// off.
    fn at_eof(&self) -> Option<&'static str> {
        let finished = !self.finished.is_empty() && self.open.is_empty();
        match self.rule {
            StreamEndRule::Eof => None,
            StreamEndRule::FinishReason if finished => None,
            StreamEndRule::Done if finished => Some(
                "the provider ended the stream after the answer's finish_reason but without its DONE event, which this provider's `stream_end: done` requires; the usage report that comes last may be missing",
            ),
            _ => Some(
                "the provider ended the stream before its final chunk (no finish_reason, no DONE event): the answer is cut off",
            ),
        }
    }
}

/// The provider's events as chunks: stops at `[DONE]`, at an error (always the last item), or at
/// the end of the body, which is an error of its own when the answer had not ended.
fn chunks<S>(
    events: S,
    rule: StreamEndRule,
) -> impl Stream<Item = Result<Value, ProviderError>> + Send
where
    S: Stream<Item = Result<sse::SseEvent, ProviderError>> + Send + 'static,
{
    let state = (Box::pin(events), Ending::new(rule), false);
    futures_util::stream::unfold(state, |(mut events, mut ending, over)| async move {
        if over {
            return None;
        }
        loop {
            let ev = match events.next().await {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Some((Err(e), (events, ending, true))),
                None => {
                    let cut = ending.at_eof()?;
                    return Some((Err(ProviderError::cut_off(cut)), (events, ending, true)));
                }
            };
            let data = ev.data.trim();
            if data == "[DONE]" {
                return None;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(e) => {
                    let e = ProviderError::invalid_response(format!(
                        "the provider sent a stream chunk that is not JSON: {e}"
                    ));
                    return Some((Err(e), (events, ending, true)));
                }
            };
            if !v.is_object() {
                let e = ProviderError::invalid_response(
                    "the provider sent a stream chunk that is not a JSON object",
                );
                return Some((Err(e), (events, ending, true)));
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
                return Some((Err(pe), (events, ending, true)));
            }
            ending.see(&v);
            return Some((Ok(v), (events, ending, false)));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorKind;

    fn ev(data: &str) -> Result<sse::SseEvent, ProviderError> {
        Ok(sse::SseEvent {
            event: String::new(),
            data: data.to_string(),
        })
    }

    fn chunk(index: u64, finish: Option<&str>) -> String {
        serde_json::json!({"object": "chat.completion.chunk",
            "choices": [{"index": index, "delta": {"content": "x"}, "finish_reason": finish}]})
        .to_string()
    }

    const USAGE: &str = r#"{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

    /// The items the adapter yields for `events` under `rule`: `Ok` chunks as "ok", the error's
    /// reason otherwise.
    async fn run(events: Vec<String>, rule: StreamEndRule) -> Vec<String> {
        let s = futures_util::stream::iter(events.iter().map(|e| ev(e)).collect::<Vec<_>>());
        chunks(s, rule)
            .map(|r| match r {
                Ok(_) => "ok".to_string(),
                Err(e) => e.kind.reason().to_string(),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_clean_end_before_the_final_chunk_is_a_cut_off() {
        use StreamEndRule::*;
        let mid = vec![chunk(0, None), chunk(0, None)];
        let finished = vec![chunk(0, None), chunk(0, Some("stop")), USAGE.to_string()];
        let mut with_done = finished.clone();
        with_done.push("[DONE]".into());
        // Two choices (n: 2): one finishing is not enough.
        let half = vec![chunk(0, None), chunk(1, None), chunk(0, Some("stop"))];
        // An empty finish_reason on every chunk (some servers) is not a finish.
        let empty = vec![chunk(0, Some("")), chunk(0, Some(""))];
        let cases: &[(&[String], StreamEndRule, &[&str])] = &[
            (&mid, FinishReason, &["ok", "ok", "cut_off"]),
            (&mid, Done, &["ok", "ok", "cut_off"]),
            (&mid, Eof, &["ok", "ok"]),
            (&finished, FinishReason, &["ok", "ok", "ok"]),
            (&finished, Done, &["ok", "ok", "ok", "cut_off"]),
            (&with_done, Done, &["ok", "ok", "ok"]),
            (&with_done, FinishReason, &["ok", "ok", "ok"]),
            (&half, FinishReason, &["ok", "ok", "ok", "cut_off"]),
            (&empty, FinishReason, &["ok", "ok", "cut_off"]),
            (&[], FinishReason, &["cut_off"]),
            (&["[DONE]".to_string()], FinishReason, &[]),
        ];
        for (events, rule, want) in cases {
            assert_eq!(
                run(events.to_vec(), *rule).await,
                *want,
                "{rule:?} {events:?}"
            );
        }
    }

    #[tokio::test]
    async fn nothing_after_done_or_an_error_is_read() {
        let events = vec![chunk(0, None), "[DONE]".to_string(), "not json".to_string()];
        assert_eq!(run(events, StreamEndRule::Done).await, ["ok"]);
        let events = vec![
            chunk(0, None),
            r#"{"error":{"message":"boom","type":"server_error"}}"#.to_string(),
            chunk(0, Some("stop")),
        ];
        assert_eq!(
            run(events, StreamEndRule::FinishReason).await,
            ["ok", "server_error"]
        );
        let events = vec!["{oops".to_string(), chunk(0, None)];
        let out = run(events, StreamEndRule::FinishReason).await;
        assert_eq!(out, ["invalid_response"]);
        assert_eq!(ErrorKind::parse_reason("cut_off"), Some(ErrorKind::CutOff));
    }
}
