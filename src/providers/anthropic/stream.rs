//! Anthropic streaming events → OpenAI `chat.completion.chunk`s.
//!
//! Anthropic streams typed events about content blocks; OpenAI streams deltas of one message.
//! `Translator` is the pure state machine between the two (fed one event at a time, so it can be
//! tested without a network); `chunks` drives it from an HTTP response.

use super::super::sse::{self, SseEvent};
use super::super::{ChunkStream, ProviderError};
use crate::anthropic::{NATIVE, error_status, finish_reason};
use crate::openai::{Usage, unix_now};
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};

/// `native`: the client speaks Anthropic's format, so each event also travels whole (see
/// [`crate::anthropic::NATIVE`]).
pub(super) fn chunks(
    resp: reqwest::Response,
    model: String,
    stream_usage: bool,
    native: bool,
) -> ChunkStream {
    let mut translator = Translator::new(model, stream_usage, unix_now());
    translator.native = native;
    translate(Box::pin(sse::events(resp)), translator)
}

struct Pump<S> {
    events: S,
    translator: Translator,
    pending: VecDeque<Result<Value, ProviderError>>,
    ended: bool,
}

/// Stops reading at `message_stop` or at the first error, so an `Err` is always the last item.
fn translate<S>(events: S, translator: Translator) -> ChunkStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + Unpin + 'static,
{
    let pump = Pump {
        events,
        translator,
        pending: VecDeque::new(),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(pump, |mut p| async move {
        loop {
            if let Some(item) = p.pending.pop_front() {
                return Some((item, p));
            }
            if p.ended {
                return None;
            }
            match p.events.next().await {
                Some(Ok(ev)) => match p.translator.on_event(&ev.event, &ev.data) {
                    Ok(chunks) => {
                        p.pending.extend(chunks.into_iter().map(Ok));
                        p.ended = p.translator.is_done();
                    }
                    Err(e) => {
                        p.pending.push_back(Err(e));
                        p.ended = true;
                    }
                },
                Some(Err(e)) => {
                    p.pending.push_back(Err(e));
                    p.ended = true;
                }
                None => {
                    p.ended = true;
                    // Without this the client would see a cut-off answer as a complete one.
                    if !p.translator.is_done() {
                        p.pending.push_back(Err(ProviderError::cut_off(
                            "the provider ended the stream before message_stop: the answer is cut off",
                        )));
                    }
                }
            }
        }
    }))
}

pub(super) struct Translator {
    id: String,
    model: String,
    created: u64,
    stream_usage: bool,
    started: bool,
    /// Anthropic usage fields seen so far; `message_delta` counts are cumulative and overwrite.
    usage: Map<String, Value>,
    /// Content block index → OpenAI tool call index. OpenAI numbers tool calls from 0, while
    /// Anthropic's block indexes also count text and thinking blocks.
    tools: HashMap<u64, usize>,
    finished: bool,
    done: bool,
    /// Each event is also carried whole, on its first chunk or on a chunk of its own.
    native: bool,
}

impl Translator {
    pub(super) fn new(model: String, stream_usage: bool, created: u64) -> Self {
        Translator {
            id: String::new(),
            model,
            created,
            stream_usage,
            started: false,
            usage: Map::new(),
            tools: HashMap::new(),
            finished: false,
            done: false,
            native: false,
        }
    }

    /// Whether `message_stop` arrived: nothing after it belongs to this answer.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        if let Some(u) = u.and_then(Value::as_object) {
            for (k, v) in u {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// Translates one event into zero or more chunks. The JSON `type` names the event (the SSE
    /// `event:` line carries the same name and is only a fallback).
    pub(super) fn on_event(
        &mut self,
        event: &str,
        data: &str,
    ) -> Result<Vec<Value>, ProviderError> {
        if self.done || data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::invalid_response(format!(
                "the provider sent a stream event that is not JSON: {e}"
            ))
        })?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
        let mut out = self.translate(kind, &v)?;
        if self.native && self.started {
            match out.first_mut().and_then(Value::as_object_mut) {
                Some(first) => {
                    first.insert(NATIVE.into(), v);
                }
                None => {
                    let mut carrier = self.chunk(Value::Null, Value::Null);
                    carrier["choices"] = json!([]);
                    carrier[NATIVE] = v;
                    out.push(carrier);
                }
            }
        }
        Ok(out)
    }

    fn translate(&mut self, kind: &str, v: &Value) -> Result<Vec<Value>, ProviderError> {
        match kind {
            "ping" => return Ok(Vec::new()),
            "error" => return Err(stream_error(v)),
            "message_start" => return self.start(v),
            _ => {}
        }
        if !self.started {
            return Err(malformed(kind, "arrived before message_start"));
        }
        match kind {
            "content_block_start" => self.block_start(v),
            "content_block_delta" => self.block_delta(v),
            "message_delta" => {
                self.merge_usage(v.get("usage"));
                let stop = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                match stop {
                    Some(reason) if !self.finished => {
                        self.finished = true;
                        Ok(vec![self.chunk(json!({}), json!(finish_reason(reason)))])
                    }
                    _ => Ok(Vec::new()),
                }
            }
            "message_stop" => {
                self.done = true;
                let mut out = Vec::new();
                if !self.finished {
                    self.finished = true;
                    out.push(self.chunk(json!({}), json!("stop")));
                }
                if self.stream_usage {
                    let usage = Usage::from_anthropic(&Value::Object(self.usage.clone()));
                    out.push(json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage.to_openai(),
                    }));
                }
                Ok(out)
            }
            // content_block_stop carries nothing to forward; unknown event types are skipped, as
            // Anthropic's versioning policy says new ones may appear at any time.
            _ => Ok(Vec::new()),
        }
    }

    fn start(&mut self, v: &Value) -> Result<Vec<Value>, ProviderError> {
        if self.started {
            return Err(malformed("message_start", "arrived twice"));
        }
        let msg = v.get("message");
        let Some(id) = msg.and_then(|m| m.get("id")).and_then(Value::as_str) else {
            return Err(malformed("message_start", "has no message id"));
        };
        self.id = id.to_string();
        if let Some(model) = msg.and_then(|m| m.get("model")).and_then(Value::as_str) {
            self.model = model.to_string();
        }
        self.merge_usage(msg.and_then(|m| m.get("usage")));
        self.started = true;
        Ok(vec![self.chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
        )])
    }

    fn block_start(&mut self, v: &Value) -> Result<Vec<Value>, ProviderError> {
        let index = v.get("index").and_then(Value::as_u64);
        let block = v.get("content_block");
        let (Some(index), Some(block)) = (index, block) else {
            return Err(malformed(
                "content_block_start",
                "has no index or content_block",
            ));
        };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                Ok(self.text(text))
            }
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(malformed(
                        "content_block_start",
                        "has a tool_use without id or name",
                    ));
                };
                let k = self.tools.len();
                self.tools.insert(index, k);
                let delta = json!({ "tool_calls": [{
                    "index": k,
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": "" },
                }]});
                Ok(vec![self.chunk(delta, Value::Null)])
            }
            // Thinking and server-tool blocks have no OpenAI chunk equivalent.
            _ => Ok(Vec::new()),
        }
    }

    fn block_delta(&mut self, v: &Value) -> Result<Vec<Value>, ProviderError> {
        let index = v.get("index").and_then(Value::as_u64);
        let delta = v.get("delta");
        let (Some(index), Some(delta)) = (index, delta) else {
            return Err(malformed("content_block_delta", "has no index or delta"));
        };
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => match delta.get("text").and_then(Value::as_str) {
                Some(text) => Ok(self.text(text)),
                None => Err(malformed("text_delta", "has no text")),
            },
            Some("input_json_delta") => {
                let Some(partial) = delta.get("partial_json").and_then(Value::as_str) else {
                    return Err(malformed("input_json_delta", "has no partial_json"));
                };
                let Some(&k) = self.tools.get(&index) else {
                    return Err(malformed(
                        "input_json_delta",
                        "belongs to no tool_use block",
                    ));
                };
                // Anthropic opens each tool's input with an empty fragment; it carries nothing.
                if partial.is_empty() {
                    return Ok(Vec::new());
                }
                let delta =
                    json!({ "tool_calls": [{ "index": k, "function": { "arguments": partial } }] });
                Ok(vec![self.chunk(delta, Value::Null)])
            }
            // thinking_delta, signature_delta, citations_delta and future kinds.
            _ => Ok(Vec::new()),
        }
    }

    fn text(&self, text: &str) -> Vec<Value> {
        if text.is_empty() {
            return Vec::new();
        }
        vec![self.chunk(json!({ "content": text }), Value::Null)]
    }
}

fn malformed(event: &str, what: &str) -> ProviderError {
    ProviderError::invalid_response(format!("the provider's {event} event {what}"))
}

/// An `error` event arrives after a 200, so it carries no HTTP status; the status Anthropic uses
/// for the same error type on a plain response stands in, so that classification (rate limit,
/// context window…) is shared with `ProviderError::from_http`.
fn stream_error(v: &Value) -> ProviderError {
    let err_type = v
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = error_status(err_type);
    let has_message = v
        .get("error")
        .and_then(|e| e.get("message"))
        .is_some_and(Value::is_string);
    let mut e = ProviderError::from_http(status, &HeaderMap::new(), v.to_string().as_bytes());
    e.status = None;
    if !has_message {
        e.message = format!("the provider reported an error mid-stream ({err_type})");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorKind;

    const CREATED: u64 = 1_700_000_000;

    /// A recorded stream: a text block, then two tool calls, with a ping and cache usage.
    const RECORDED: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01XYZ","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":128,"output_tokens":2}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" both cities."}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01B","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Rome\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":2}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "msg_01XYZ", "object": "chat.completion.chunk", "created": CREATED,
               "model": "claude-sonnet-4-5-20250929",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    fn feed(t: &mut Translator, events: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        for (event, data) in events {
            out.extend(t.on_event(event, data).unwrap());
        }
        out
    }

    #[test]
    fn recorded_text_and_two_tool_calls() {
        let mut t = Translator::new("requested-model".into(), true, CREATED);
        let chunks = feed(&mut t, RECORDED);
        assert!(t.is_done());
        let expected = vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Let me check"}), Value::Null),
            chunk(json!({"content": " both cities."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01A", "type": "function",
                                          "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "toolu_01B", "type": "function",
                                          "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\":\"Rome\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
            json!({"id": "msg_01XYZ", "object": "chat.completion.chunk", "created": CREATED,
                   "model": "claude-sonnet-4-5-20250929", "choices": [],
                   "usage": {"prompt_tokens": 600, "completion_tokens": 89, "total_tokens": 689,
                             "prompt_tokens_details": {"cached_tokens": 128}}}),
        ];
        assert_eq!(chunks, expected);
    }

    #[test]
    fn no_usage_chunk_unless_asked_and_nothing_after_stop() {
        let mut t = Translator::new("m".into(), false, CREATED);
        let chunks = feed(&mut t, RECORDED);
        assert_eq!(chunks.last(), Some(&chunk(json!({}), json!("tool_calls"))));
        assert!(
            t.on_event("content_block_delta", RECORDED[3].1)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn max_tokens_stop_and_missing_stop_reason() {
        let start = RECORDED[0];
        let mut t = Translator::new("m".into(), false, CREATED);
        let chunks = feed(
            &mut t,
            &[
                start,
                (
                    "message_delta",
                    r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":10}}"#,
                ),
                ("message_stop", r#"{"type":"message_stop"}"#),
            ],
        );
        assert_eq!(chunks.last(), Some(&chunk(json!({}), json!("length"))));
        // A stream that never states a reason still ends with a finish_reason.
        let mut t = Translator::new("m".into(), false, CREATED);
        let chunks = feed(
            &mut t,
            &[start, ("message_stop", r#"{"type":"message_stop"}"#)],
        );
        assert_eq!(chunks.last(), Some(&chunk(json!({}), json!("stop"))));
    }

    #[test]
    fn error_events_are_classified() {
        let err = |data: &str| {
            let mut t = Translator::new("m".into(), false, CREATED);
            feed(&mut t, &RECORDED[..2]);
            t.on_event("error", data).unwrap_err()
        };
        let e =
            err(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(
            (e.kind, e.status, e.code.as_deref()),
            (ErrorKind::RateLimit, None, Some("overloaded_error"))
        );
        assert_eq!(e.message, "Overloaded");
        let e =
            err(r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#);
        assert_eq!(e.kind, ErrorKind::RateLimit);
        let e = err(
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextWindow);
        let e = err(r#"{"type":"error","error":{"type":"api_error"}}"#);
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.message.contains("api_error"));
        // An error may come before message_start, too.
        let mut t = Translator::new("m".into(), false, CREATED);
        let e = t
            .on_event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimit);
    }

    #[test]
    fn malformed_events_are_invalid_responses() {
        let invalid = |events: &[(&str, &str)]| {
            let mut t = Translator::new("m".into(), false, CREATED);
            let mut last = Ok(Vec::new());
            for (ev, data) in events {
                last = t.on_event(ev, data);
                if last.is_err() {
                    break;
                }
            }
            assert_eq!(
                last.unwrap_err().kind,
                ErrorKind::InvalidResponse,
                "{events:?}"
            );
        };
        invalid(&[("message_start", "{not json")]);
        invalid(&[("message_start", r#"{"type":"message_start","message":{}}"#)]);
        invalid(&[RECORDED[3]]);
        invalid(&[
            RECORDED[0],
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            ),
        ]);
        invalid(&[RECORDED[0], RECORDED[8]]);
        invalid(&[RECORDED[0], RECORDED[0]]);
    }

    #[test]
    fn unknown_events_and_block_types_are_skipped() {
        let mut t = Translator::new("m".into(), false, CREATED);
        let chunks = feed(
            &mut t,
            &[
                RECORDED[0],
                (
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
                ),
                ("brand_new_event", r#"{"type":"brand_new_event"}"#),
                ("message", ""),
            ],
        );
        assert_eq!(chunks.len(), 1);
    }

    fn events(
        list: &[(&str, &str)],
    ) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + Unpin + 'static {
        let owned: Vec<_> = list
            .iter()
            .map(|(e, d)| {
                Ok(SseEvent {
                    event: e.to_string(),
                    data: d.to_string(),
                })
            })
            .collect();
        futures_util::stream::iter(owned)
    }

    #[tokio::test]
    async fn pump_stops_at_message_stop_and_reports_truncation() {
        let mut all = RECORDED.to_vec();
        all.push(("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}"#));
        let out: Vec<_> = translate(events(&all), Translator::new("m".into(), false, CREATED))
            .collect()
            .await;
        assert_eq!(out.len(), 9);
        assert!(out.iter().all(Result::is_ok));

        let out: Vec<_> = translate(
            events(&RECORDED[..5]),
            Translator::new("m".into(), false, CREATED),
        )
        .collect()
        .await;
        assert_eq!(out.len(), 4);
        assert_eq!(
            out.last().unwrap().as_ref().unwrap_err().kind,
            ErrorKind::CutOff
        );

        let mut with_error = RECORDED[..4].to_vec();
        with_error.push((
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ));
        with_error.push(RECORDED[4]);
        let out: Vec<_> = translate(
            events(&with_error),
            Translator::new("m".into(), false, CREATED),
        )
        .collect()
        .await;
        assert_eq!(out.len(), 3);
        assert_eq!(
            out.last().unwrap().as_ref().unwrap_err().kind,
            ErrorKind::RateLimit
        );
    }
}
