//! Property tests over the gateway's inputs: the config loader (arbitrary bytes, arbitrary YAML,
//! a real config with random damage), the two SSE readers (OpenAI-compatible and Anthropic),
//! fed arbitrary bodies in arbitrary pieces by an upstream on loopback, and the gateway itself in
//! front of such an upstream. None may panic; every failure must have its documented shape.
//! Case counts are bounded so that the file runs in well under a minute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard::config::{Config, ConfigError, Uses};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// The config loader

const DEMO: &str = include_str!("../config/demo.yaml");

/// The documented shape of a config error: the file named, a line and column inside the text
/// when given, the offending line shown with a caret under the column.
fn check_config_error(text: &str, e: &ConfigError) -> Result<(), TestCaseError> {
    prop_assert_eq!(&e.file, "p.yaml");
    prop_assert!(!e.message.is_empty());
    let shown = e.to_string();
    prop_assert!(shown.starts_with("p.yaml"), "{}", shown);
    let lines = text.lines().count() as u32;
    if let Some(l) = e.line {
        prop_assert!(
            l >= 1 && l <= lines.max(1) + 1,
            "line {} of {}: {}",
            l,
            lines,
            shown
        );
        prop_assert!(e.column.is_none_or(|c| c >= 1), "{}", shown);
        if l <= lines {
            prop_assert!(e.snippet.is_some(), "{}", shown);
        }
    } else {
        prop_assert!(e.column.is_none());
    }
    prop_assert!(!e.path.contains(".value."), "{}", shown);
    Ok(())
}

fn load(text: &str) -> Result<(), TestCaseError> {
    for uses in [Uses::Everything, Uses::Routing] {
        if let Err(e) = Config::from_yaml_for(text, "p.yaml", uses) {
            check_config_error(text, &e)?;
        }
    }
    Ok(())
}

fn yaml_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("server".to_string()),
        Just("providers".to_string()),
        Just("models".to_string()),
        Just("tiers".to_string()),
        Just("routing".to_string()),
        Just("rules".to_string()),
        Just("when".to_string()),
        Just("name".to_string()),
        Just("kind".to_string()),
        Just("default".to_string()),
        Just("cascade".to_string()),
        Just("semantic".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e3f64..1e3).prop_map(|f| json!(f)),
        prop_oneof![
            Just("simulated".to_string()),
            Just("${SWITCHYARD_PROP_UNSET}".to_string()),
            Just("${SWITCHYARD_PROP_UNSET:-x}".to_string()),
            Just("30s".to_string()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One random edit of a text's lines.
#[derive(Debug, Clone)]
enum Damage {
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Insert(prop::sample::Index, prop::sample::Index, String),
    Indent(prop::sample::Index, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Delete),
        any::<prop::sample::Index>().prop_map(Damage::Duplicate),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(": ".to_string()),
                Just("- ".to_string()),
                Just("{".to_string()),
                Just("]".to_string()),
                Just("\"".to_string()),
                Just("&a ".to_string()),
                Just("*a".to_string()),
                Just("é".to_string()),
                "\\PC{0,4}",
            ]
        )
            .prop_map(|(l, c, s)| Damage::Insert(l, c, s)),
        (any::<prop::sample::Index>(), 0usize..6).prop_map(|(l, n)| Damage::Indent(l, n)),
    ]
}

fn apply(text: &str, edits: &[Damage]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for d in edits {
        if lines.is_empty() {
            break;
        }
        match d {
            Damage::Delete(i) => {
                lines.remove(i.index(lines.len()));
            }
            Damage::Duplicate(i) => {
                let l = lines[i.index(lines.len())].clone();
                lines.insert(i.index(lines.len()), l);
            }
            Damage::Insert(i, c, s) => {
                let n = i.index(lines.len());
                let chars: Vec<char> = lines[n].chars().collect();
                let at = c.index(chars.len() + 1);
                let mut out: String = chars[..at].iter().collect();
                out.push_str(s);
                out.extend(&chars[at..]);
                lines[n] = out;
            }
            Damage::Indent(i, k) => {
                let n = i.index(lines.len());
                lines[n] = format!("{}{}", " ".repeat(*k), lines[n].trim_start());
            }
        }
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_from_arbitrary_bytes(bytes in vec(any::<u8>(), 0..400)) {
        load(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn config_from_arbitrary_yaml(v in yaml_value()) {
        // JSON is YAML: any generated structure is a well-formed document.
        load(&serde_json::to_string_pretty(&v).unwrap())?;
    }

    #[test]
    fn config_from_a_damaged_real_file(edits in vec(damage(), 1..4)) {
        load(&apply(DEMO, &edits))?;
    }

    #[test]
    fn deeply_nested_conditions(depth in 1usize..3000, any_list in any::<bool>()) {
        let (open, close) = if any_list { ("{ any: [", "] }") } else { ("{ not: ", " }") };
        let when = format!("{}{{ keywords: [x] }}{}", open.repeat(depth), close.repeat(depth));
        let text = format!(
            "providers: {{ s: {{ kind: simulated }} }}\nmodels: [{{ name: m, provider: s }}]\ntiers: {{ t: {{ models: [m] }} }}\nrouting:\n  default: t\n  rules:\n    - {{ name: r, tier: t, when: {when} }}\n"
        );
        load(&text)?;
    }
}

#[test]
fn the_demo_config_loads() {
    Config::from_yaml(DEMO, "p.yaml").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Upstreams that send arbitrary stream bodies

/// A loopback "provider" that answers every request with status 200 and the scripted body,
/// written in the scripted pieces, then closes the connection.
struct RawUpstream {
    addr: SocketAddr,
    script: Arc<Mutex<(String, Vec<Vec<u8>>)>>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<(String, Vec<Vec<u8>>)>> = Arc::default();
        let s = script.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // Read the request: headers, then Content-Length bytes of body.
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let (content_type, pieces) = s.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
                    );
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for p in pieces {
                        if sock.write_all(&p).await.is_err() || sock.flush().await.is_err() {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        RawUpstream { addr, script }
    }

    fn answer(&self, content_type: &str, body: &[u8], cuts: &[prop::sample::Index]) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let mut pieces = Vec::new();
        let mut from = 0;
        for a in at.into_iter().chain(std::iter::once(body.len())) {
            if a > from {
                pieces.push(body[from..a].to_vec());
                from = a;
            }
        }
        *self.script.lock().unwrap() = (content_type.to_string(), pieces);
    }
}

fn chunk_value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![Just("hi".to_string()), "\\PC{0,6}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        text.prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("choices".to_string()),
        Just("delta".to_string()),
        Just("content".to_string()),
        Just("finish_reason".to_string()),
        Just("usage".to_string()),
        Just("prompt_tokens".to_string()),
        Just("completion_tokens".to_string()),
        Just("error".to_string()),
        Just("message".to_string()),
        Just("type".to_string()),
        Just("index".to_string()),
        Just("text".to_string()),
        Just("input_tokens".to_string()),
        Just("output_tokens".to_string()),
        Just("content_block".to_string()),
        Just("stop_reason".to_string()),
        "[a-z_]{1,6}",
    ];
    leaf.prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One SSE event as an upstream might send it: a known or unknown event name, a data line that is
/// JSON, `[DONE]` or noise, with `\n` or `\r\n` line ends.
fn sse_event(names: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(None),
            prop::sample::select(names).prop_map(Some),
            "[a-z_]{1,8}".prop_map(|s| Some(Box::leak(s.into_boxed_str()) as &str))
        ],
        prop_oneof![
            4 => chunk_value().prop_map(|v| v.to_string()),
            1 => Just("[DONE]".to_string()),
            1 => "\\PC{0,12}",
            1 => Just(String::new()),
        ],
        any::<bool>(),
        prop_oneof![
            Just(""),
            Just(": keep-alive\n"),
            Just("id: 7\n"),
            Just("retry: 10\n")
        ],
    )
        .prop_map(|(name, data, crlf, extra)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut s = String::from(extra);
            if let Some(n) = name {
                s.push_str(&format!("event: {n}{nl}"));
            }
            s.push_str(&format!("data: {data}{nl}{nl}"));
            s.into_bytes()
        })
}

fn sse_body(names: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(sse_event(names), 0..8).prop_map(|evs| evs.concat()),
        1 => vec(any::<u8>(), 0..200),
    ]
}

const OPENAI_EVENTS: &[&str] = &["message", "error"];
const ANTHROPIC_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

fn provider(kind: &str, upstream: SocketAddr) -> switchyard::providers::Provider {
    let yaml = format!(
        "providers:\n  p: {{ kind: {kind}, base_url: \"http://{upstream}/v1\", api_key: \"sk-prop-0123456789\", stream_idle_timeout: 5s, timeout: 5s }}\nmodels: [{{ name: m, provider: p }}]\ntiers: {{ t: {{ models: [m] }} }}\nrouting: {{ default: t }}\n"
    );
    let c = Config::from_yaml(&yaml, "p.yaml").unwrap();
    switchyard::providers::Provider::build(
        "p",
        &c.providers["p"],
        switchyard::server::http_client(),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads a whole stream from the adapter: every chunk must be a JSON object, every error must
/// carry a message, and the reader must finish (an upstream that closed cannot hang it).
async fn read_adapter_stream(
    p: &switchyard::providers::Provider,
    anthropic: bool,
) -> Result<(), TestCaseError> {
    use futures_util::StreamExt;
    let req: switchyard::openai::ChatRequest = serde_json::from_value(
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    let call = switchyard::providers::Call {
        request: &req,
        model: "m",
        max_output_tokens: Some(16),
        stream_usage: true,
    };
    let stream = match tokio::time::timeout(Duration::from_secs(10), p.chat_stream(&call)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            prop_assert!(!e.message.is_empty());
            return Ok(());
        }
        Err(_) => return Err(TestCaseError::fail("the stream did not start")),
    };
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .map_err(|_| TestCaseError::fail("the adapter's stream never ended"))?;
    for item in items {
        match item {
            Ok(v) => {
                prop_assert!(v.is_object(), "a chunk that is not an object: {}", v);
                if anthropic {
                    prop_assert_eq!(&v["object"], "chat.completion.chunk");
                }
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }
    Ok(())
}

#[test]
fn openai_sse_reader_on_arbitrary_bodies() {
    let rt = runtime();
    let up = rt.block_on(RawUpstream::start());
    let p = provider("openai", up.addr);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(160));
    runner
        .run(
            &(
                sse_body(OPENAI_EVENTS),
                vec(any::<prop::sample::Index>(), 0..6),
            ),
            |(body, cuts)| {
                up.answer("text/event-stream", &body, &cuts);
                rt.block_on(read_adapter_stream(&p, false))
            },
        )
        .unwrap();
}

#[test]
fn anthropic_sse_reader_on_arbitrary_bodies() {
    let rt = runtime();
    let up = rt.block_on(RawUpstream::start());
    let p = provider("anthropic", up.addr);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(160));
    runner
        .run(
            &(
                sse_body(ANTHROPIC_EVENTS),
                vec(any::<prop::sample::Index>(), 0..6),
            ),
            |(body, cuts)| {
                up.answer("text/event-stream", &body, &cuts);
                rt.block_on(read_adapter_stream(&p, true))
            },
        )
        .unwrap();
}

/// What a client of the gateway sees when the upstream sends anything at all: a JSON answer or an
/// OpenAI-shaped error; for a stream, `data:` events that are each a JSON object or `[DONE]`,
/// ending at `[DONE]` or at one error event in OpenAI's shape.
async fn through_gateway(gw: &common::Gateway, stream: bool) -> Result<(), TestCaseError> {
    let body =
        json!({"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = resp.status().as_u16();
    let is_sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let text = resp
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("body: {e}")))?;
    prop_assert!(status != 500, "500: {}", text);
    if !is_sse {
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))?;
        if status == 200 {
            prop_assert!(v["choices"].is_array(), "{}", text);
        } else {
            prop_assert!(v["error"]["message"].is_string(), "{}", text);
            prop_assert!(v["error"]["type"].is_string(), "{}", text);
        }
        return Ok(());
    }
    prop_assert_eq!(status, 200);
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    for (i, ev) in events.iter().enumerate() {
        let data = ev
            .strip_prefix("data: ")
            .ok_or_else(|| TestCaseError::fail(format!("not a data event: {ev:?}")))?;
        let last = i + 1 == events.len();
        if data == "[DONE]" {
            prop_assert!(last, "events after [DONE]: {}", text);
            continue;
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TestCaseError::fail(format!("event not JSON ({e}): {data}")))?;
        prop_assert!(v.is_object(), "{}", data);
        if let Some(err) = v.get("error") {
            prop_assert!(last, "events after an error: {}", text);
            prop_assert!(
                err["message"].is_string() && err["type"].is_string(),
                "{}",
                data
            );
        }
    }
    prop_assert!(
        text.ends_with("data: [DONE]\n\n")
            || events.last().is_some_and(|e| e.contains("\"error\"")),
        "the stream neither finished nor failed: {}",
        text
    );
    Ok(())
}

fn gateway_yaml(kind: &str, upstream: SocketAddr) -> String {
    format!(
        "server: {{ listen: \"127.0.0.1:0\", drain_timeout: 1s }}\nproviders:\n  p: {{ kind: {kind}, base_url: \"http://{upstream}/v1\", api_key: \"sk-prop-0123456789\", stream_idle_timeout: 5s, timeout: 5s }}\nmodels: [{{ name: m, provider: p }}]\ntiers: {{ t: {{ models: [m] }} }}\nrouting: {{ default: t }}\nreliability: {{ retries: 0 }}\n"
    )
}

#[test]
fn gateway_answers_in_shape_whatever_an_openai_upstream_streams() {
    let rt = runtime();
    let up = rt.block_on(RawUpstream::start());
    let gw = rt.block_on(common::Gateway::start(&gateway_yaml("openai", up.addr)));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
    runner
        .run(
            &(
                sse_body(OPENAI_EVENTS),
                vec(any::<prop::sample::Index>(), 0..4),
            ),
            |(body, cuts)| {
                up.answer("text/event-stream", &body, &cuts);
                rt.block_on(through_gateway(&gw, true))
            },
        )
        .unwrap();
}

#[test]
fn gateway_answers_in_shape_whatever_an_anthropic_upstream_streams() {
    let rt = runtime();
    let up = rt.block_on(RawUpstream::start());
    let gw = rt.block_on(common::Gateway::start(&gateway_yaml("anthropic", up.addr)));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
    runner
        .run(
            &(
                sse_body(ANTHROPIC_EVENTS),
                vec(any::<prop::sample::Index>(), 0..4),
            ),
            |(body, cuts)| {
                up.answer("text/event-stream", &body, &cuts);
                rt.block_on(through_gateway(&gw, true))
            },
        )
        .unwrap();
}

#[test]
fn gateway_answers_in_shape_whatever_an_upstream_answers() {
    let rt = runtime();
    let up = rt.block_on(RawUpstream::start());
    for kind in ["openai", "anthropic"] {
        let gw = rt.block_on(common::Gateway::start(&gateway_yaml(kind, up.addr)));
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
        runner
            .run(
                &(
                    prop_oneof![
                        chunk_value().prop_map(|v| v.to_string().into_bytes()),
                        vec(any::<u8>(), 0..120)
                    ],
                    vec(any::<prop::sample::Index>(), 0..3),
                ),
                |(body, cuts)| {
                    up.answer("application/json", &body, &cuts);
                    rt.block_on(through_gateway(&gw, false))
                },
            )
            .unwrap();
    }
}

/// Arbitrary request bodies through the whole gateway (parser, routing rules, dispatch): an answer
/// or an OpenAI-shaped error, never a 500, and the upstream sees only requests that parsed.
#[test]
fn gateway_answers_in_shape_whatever_a_client_sends() {
    let rt = runtime();
    let mock = rt.block_on(common::Mock::start());
    let gw = rt.block_on(common::Gateway::start(&common::config_yaml(
        &mock.url(),
        "",
    )));
    let client = reqwest::Client::new();
    let body = prop_oneof![
        vec(any::<u8>(), 0..200),
        chunk_value().prop_map(|v| v.to_string().into_bytes()),
        (chunk_value(), "\\PC{0,40}").prop_map(|(content, prompt)| {
            json!({"model": "auto", "messages": [
                {"role": "system", "content": content},
                {"role": "user", "content": prompt}
            ]})
            .to_string()
            .into_bytes()
        }),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(160));
    runner
        .run(&body, |bytes| {
            rt.block_on(async {
                let before = mock.calls();
                let resp = client
                    .post(gw.url("/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(bytes.clone())
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let status = resp.status().as_u16();
                let v: Value = resp
                    .json()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
                prop_assert!(
                    status == 200 || v["error"]["message"].is_string(),
                    "{} {}",
                    status,
                    v
                );
                prop_assert!(status != 500, "{}", v);
                if status == 400 {
                    prop_assert_eq!(mock.calls(), before, "a refused body reached the upstream");
                }
                Ok(())
            })
        })
        .unwrap();
}
