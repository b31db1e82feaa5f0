//! A stream, as the pipeline's [`Feed`] yields it (OpenAI chunks), written as Anthropic's event
//! sequence: `message_start` and a `ping`, then `content_block_start` / `content_block_delta`
//! (`text_delta`, `input_json_delta` for tool calls) / `content_block_stop` per block,
//! `message_delta` with the stop reason and usage, `message_stop`; an `error` event when the
//! stream breaks. `Translator` is the pure state machine (tested without a network);
//! [`respond`] drives it from the feed. An Anthropic upstream's events arrive whole beside their
//! translation (`crate::anthropic::NATIVE`) and are sent as they are: thinking, signatures and
//! citations included.
//!
//! Must not import `providers`: the tables it shares with them live in `crate::anthropic`.

use super::super::pipeline::{Event, Feed};
use super::super::sse;
use super::response::message_id;
use crate::anthropic::{NATIVE, error_body, error_type, stop_reason};
use crate::openai::{ErrorBody, Usage};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text(u64),
    Tool(u64),
}

pub struct Translator {
    model: String,
    /// The prompt's size as the gateway counts it: `message_start` leaves before any usage report.
    input_estimate: u64,
    started: bool,
    open: Option<Open>,
    next_index: u64,
    /// OpenAI tool call index → the content block it streams into.
    tools: HashMap<u64, u64>,
    stop: Option<&'static str>,
    usage: Option<Usage>,
    /// What was streamed, counted for usage when the upstream reported none.
    streamed: String,
    /// The upstream is Anthropic's and its events arrive whole: they are sent as they are.
    native: bool,
}

/// Events to send; each one's `type` names it.
type Out = Vec<Value>;

impl Translator {
    pub fn new(model: String, input_estimate: u64) -> Translator {
        Translator {
            model,
            input_estimate,
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            stop: None,
            usage: None,
            streamed: String::new(),
            native: false,
        }
    }

    fn start(&mut self, chunk: Option<&Value>, out: &mut Out) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = chunk.and_then(|c| c.get("model")).and_then(Value::as_str) {
            self.model = m.to_string();
        }
        let id = message_id(chunk.and_then(|c| c.get("id")).and_then(Value::as_str));
        out.push(json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "content": [],
            "model": self.model, "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": self.input_estimate, "output_tokens": 0 },
        }}));
        out.push(json!({ "type": "ping" }));
    }

    fn close(&mut self, out: &mut Out) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.push(json!({ "type": "content_block_stop", "index": i }));
        }
    }

    fn open_block(&mut self, kind: fn(u64) -> Open, block: Value, out: &mut Out) -> u64 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(kind(index));
        out.push(json!({ "type": "content_block_start", "index": index, "content_block": block }));
        index
    }

    fn delta(index: u64, delta: Value) -> Value {
        json!({ "type": "content_block_delta", "index": index, "delta": delta })
    }

    pub fn on_chunk(&mut self, chunk: &Value, usage: Option<Usage>) -> Out {
        // An Anthropic upstream's events, sent on as they came; its other chunks are their
        // translation, already carried.
        if let Some(event) = chunk.get(NATIVE) {
            self.native = true;
            return vec![event.clone()];
        }
        if self.native {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.start(Some(chunk), &mut out);
        if usage.is_some() {
            self.usage = usage;
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return out;
        };
        let delta = choice.get("delta");
        if let Some(text) = delta
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.open_block(Open::Text, json!({ "type": "text", "text": "" }), &mut out),
            };
            self.streamed.push_str(text);
            out.push(Self::delta(
                index,
                json!({ "type": "text_delta", "text": text }),
            ));
        }
        for call in delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_call(call, &mut out);
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(f));
        }
        out
    }

    /// A call's first fragment (with its id and name) opens a `tool_use` block; the argument
    /// fragments that follow are its `input_json_delta`s.
    fn tool_call(&mut self, call: &Value, out: &mut Out) {
        let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = call.get("function");
        let index = match self.tools.get(&k) {
            Some(&i) => i,
            None => {
                let block = json!({
                    "type": "tool_use",
                    "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                    "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
                    "input": {},
                });
                let i = self.open_block(Open::Tool, block, out);
                self.tools.insert(k, i);
                i
            }
        };
        if let Some(args) = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            self.streamed.push_str(args);
            out.push(Self::delta(
                index,
                json!({ "type": "input_json_delta", "partial_json": args }),
            ));
        }
    }

    /// The clean end: the open block closed, the stop reason and usage, `message_stop`.
    pub fn finish(&mut self) -> Out {
        if self.native {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.start(None, &mut out);
        self.close(&mut out);
        let usage = self.usage.unwrap_or_else(|| Usage {
            prompt_tokens: self.input_estimate,
            completion_tokens: crate::tokens::count(&self.streamed),
            cached_tokens: 0,
        });
        out.push(json!({
            "type": "message_delta",
            "delta": { "stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null },
            "usage": usage.to_anthropic(),
        }));
        out.push(json!({ "type": "message_stop" }));
        out
    }

    /// A broken stream ends with Anthropic's `error` event, which the SDKs raise.
    pub fn fail(&mut self, body: &ErrorBody, status: u16) -> Out {
        vec![error_body(error_type(status), &body.error.message)]
    }
}

fn encode(out: Out) -> Bytes {
    let mut buf = Vec::with_capacity(256 * out.len());
    for data in out {
        buf.extend_from_slice(b"event: ");
        let name = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        // A `Value` always encodes; should it not, the event is skipped rather than half-written.
        if serde_json::to_writer(&mut buf, &data).is_err() {
            buf.extend_from_slice(b"{}");
        }
        buf.extend_from_slice(b"\n\n");
    }
    Bytes::from(buf)
}

pub fn respond(feed: Box<Feed>, mut translator: Translator) -> Response {
    sse::events(feed, move |ev| {
        let out = match ev {
            Some(Event::Chunk { chunk, usage }) => translator.on_chunk(&chunk, usage),
            Some(Event::Failed { body, status }) => translator.fail(&body, status),
            None => translator.finish(),
        };
        (!out.is_empty()).then(|| encode(out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "chatcmpl-9", "model": "up-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn names(out: &Out) -> Vec<&str> {
        out.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn text_then_tool_calls_then_usage() {
        let mut t = Translator::new("auto".into(), 42);
        let mut all = Vec::new();
        all.extend(t.on_chunk(
            &chunk(json!({"role": "assistant", "content": ""}), None),
            None,
        ));
        all.extend(t.on_chunk(&chunk(json!({"content": "Hi"}), None), None));
        all.extend(t.on_chunk(&chunk(json!({"content": " there"}), None), None));
        all.extend(t.on_chunk(
            &chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), None),
            None,
        ));
        all.extend(t.on_chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                None,
            ),
            None,
        ));
        all.extend(t.on_chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                None,
            ),
            None,
        ));
        all.extend(t.on_chunk(&chunk(json!({}), Some("tool_calls")), None));
        let usage = Usage {
            prompt_tokens: 30,
            completion_tokens: 8,
            cached_tokens: 0,
        };
        all.extend(t.on_chunk(
            &json!({"id": "chatcmpl-9", "choices": [], "usage": {}}),
            Some(usage),
        ));
        all.extend(t.finish());
        assert_eq!(
            names(&all),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(all[0]["message"]["id"], "msg_chatcmpl-9");
        assert_eq!(all[0]["message"]["model"], "up-model");
        assert_eq!(all[0]["message"]["usage"]["input_tokens"], 42);
        assert_eq!(all[3]["delta"], json!({"type": "text_delta", "text": "Hi"}));
        assert_eq!(
            all[6]["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
        assert_eq!(all[6]["index"], 1);
        assert_eq!(
            all[8]["delta"],
            json!({"type": "input_json_delta", "partial_json": "1}"})
        );
        assert_eq!(all[10]["delta"]["stop_reason"], "tool_use");
        assert_eq!(all[10]["usage"]["input_tokens"], 30);
        assert_eq!(all[10]["usage"]["output_tokens"], 8);
    }

    #[test]
    fn an_anthropic_upstreams_events_are_sent_as_they_came() {
        let mut t = Translator::new("auto".into(), 7);
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 99}}});
        let mut first = chunk(json!({"role": "assistant", "content": ""}), None);
        first[NATIVE] = start.clone();
        assert_eq!(t.on_chunk(&first, None), vec![start]);
        let thinking = json!({"type": "content_block_delta", "index": 0,
                              "delta": {"type": "thinking_delta", "thinking": "hmm"}});
        let carrier = json!({"choices": [], NATIVE: thinking.clone()});
        assert_eq!(t.on_chunk(&carrier, None), vec![thinking]);
        // A second chunk of the same event carries nothing new.
        assert!(t.on_chunk(&chunk(json!({}), Some("stop")), None).is_empty());
        assert!(t.finish().is_empty());
    }

    #[test]
    fn empty_stream_and_missing_usage_and_failure() {
        let mut t = Translator::new("auto".into(), 7);
        let out = t.finish();
        assert_eq!(
            names(&out),
            ["message_start", "ping", "message_delta", "message_stop"]
        );
        assert_eq!(out[2]["usage"]["input_tokens"], 7);
        assert_eq!(out[2]["delta"]["stop_reason"], "end_turn");

        let mut t = Translator::new("auto".into(), 7);
        t.on_chunk(
            &chunk(json!({"content": "four words of text"}), Some("length")),
            None,
        );
        let out = t.finish();
        assert_eq!(out[1]["delta"]["stop_reason"], "max_tokens");
        assert!(out[1]["usage"]["output_tokens"].as_u64().unwrap() > 0);

        let body = ErrorBody::new("m: boom", "rate_limit_error", None, None);
        let out = t.fail(&body, 429);
        assert_eq!(
            out[0],
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "m: boom"}})
        );
        let bytes = encode(out);
        assert!(bytes.starts_with(b"event: error\ndata: {"));
    }
}
