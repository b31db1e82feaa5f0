//! Test harness: a scriptable upstream on loopback that speaks both wire formats (OpenAI chat
//! completions, and Anthropic Messages on `…/messages`), the gateway started in-process or as the
//! real binary, metric lookups that fail on a missing series, and polling helpers (never fixed
//! sleeps).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod sdk;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub const PROVIDER_KEY: &str = "sk-provider-secret-0123456789";

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub at: Instant,
}

/// What the mock answers.
#[derive(Clone)]
pub enum Reply {
    /// A normal completion whose text names the upstream model.
    Ok,
    Json {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    /// A non-JSON body with status 200.
    Garbage(&'static str),
    /// A body sent as it is, with this status and content type (e.g. hand-written SSE events).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// SSE `data:` events. If `gate` is set, the mock waits for it before sending event `gate_at`.
    Stream {
        events: Vec<String>,
        gate: Option<(usize, Arc<Notify>)>,
    },
    /// Never answers (a provider that hangs past every timeout).
    Hang,
    /// Status 200, then the connection breaks before any body arrives.
    Reset,
    /// A normal stream with a pause before every event.
    SlowStream(Duration),
    /// A normal stream that breaks off after `n` events, without `[DONE]`.
    BrokenStream(usize),
    /// Waits until the gate is notified, then gives the reply (an answer held back).
    After(Arc<Notify>, Box<Reply>),
}

#[derive(Default)]
pub struct MockState {
    pub requests: Mutex<Vec<Recorded>>,
    /// Upstream model id (or "*") → replies to give, in order; then `Reply::Ok`.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Set when a streamed body was dropped before it finished (the client went away).
    pub stream_cancelled: Arc<AtomicBool>,
    pub stream_started: Arc<Notify>,
    /// After this many requests (to any model), every request gets the reply.
    sticky: Mutex<Option<(usize, Reply)>>,
    /// A pause before every answer: a provider that is slow but healthy.
    delay: Mutex<Option<Duration>>,
    /// Consulted before the script: a reply chosen from the request body (per prompt, per model).
    responder: Mutex<Option<Responder>>,
}

/// Chooses a reply from a request body; `None` falls through to the script.
pub type Responder = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync>;

pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl Mock {
    pub async fn start() -> Mock {
        let state = Arc::new(MockState::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn on(&self, model: &str, reply: Reply) {
        self.state
            .script
            .lock()
            .unwrap()
            .entry(model.to_string())
            .or_default()
            .push_back(reply);
    }

    /// Scripts a normal stream for `model` that pauses before event `at` until the returned gate
    /// is notified (never notifying it makes an upstream that hangs mid-stream).
    pub fn held_stream(&self, model: &str, at: usize) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        self.on(
            model,
            Reply::Stream {
                events: stream_events(model, true),
                gate: Some((at, gate.clone())),
            },
        );
        gate
    }

    /// From the `after`-th request on (counting those already received), every request gets
    /// `reply`, scripted answers included: a deployment that starts failing and stays down.
    pub fn fail_after(&self, after: usize, reply: Reply) {
        *self.state.sticky.lock().unwrap() = Some((after, reply));
    }

    /// Answers each request as `f` decides from its body (e.g. right or wrong per prompt).
    pub fn respond(&self, f: impl Fn(&Value) -> Option<Reply> + Send + Sync + 'static) {
        *self.state.responder.lock().unwrap() = Some(Arc::new(f));
    }

    pub fn recover(&self) {
        *self.state.sticky.lock().unwrap() = None;
    }

    /// Every answer from now on (scripted or not) starts after `d`.
    pub fn slow(&self, d: Duration) {
        *self.state.delay.lock().unwrap() = Some(d);
    }

    pub fn calls(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn calls_for(&self, model: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.body["model"] == model)
            .count()
    }
}

pub fn completion(model: &str, text: &str) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                  "prompt_tokens_details": {"cached_tokens": 3}}
    })
}

/// An Anthropic Messages answer: one text block, 11 tokens in and 7 out (as [`completion`]).
pub fn anthropic_message(model: &str, text: &str) -> Value {
    json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 11, "output_tokens": 7}
    })
}

/// A typical Anthropic stream: the same three words as [`stream_events`], then the usage and
/// `message_stop`.
pub fn anthropic_stream_events(model: &str) -> Vec<(&'static str, Value)> {
    let delta = |text: &str| {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        )
    };
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                   "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
                   "usage": {"input_tokens": 11, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        delta("Hello"),
        delta(" from"),
        delta(" mock"),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": 3}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

/// Named SSE events (`event:` and `data:` lines), as the Messages API sends them.
pub fn sse_named(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

pub fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

/// A stream of `stream_events` whose body ends cleanly after the first `n` events: no
/// `finish_reason`, no usage, no `[DONE]`, as when a proxy restart cuts an answer off.
pub fn cut_stream(model: &str, n: usize) -> Reply {
    Reply::Stream {
        events: stream_events(model, false).into_iter().take(n).collect(),
        gate: None,
    }
}

/// A typical stream: role, three words, finish, usage (when asked), [DONE].
pub fn stream_events(model: &str, with_usage: bool) -> Vec<String> {
    let mut ev = vec![
        chunk(model, json!({"role": "assistant", "content": ""}), None),
        chunk(model, json!({"content": "Hello"}), None),
        chunk(model, json!({"content": " from"}), None),
        chunk(model, json!({"content": " mock"}), None),
        chunk(model, json!({}), Some("stop")),
    ];
    if with_usage {
        ev.push(
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                   "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}})
            .to_string(),
        );
    }
    ev.push("[DONE]".into());
    ev
}

struct CancelFlag(Arc<AtomicBool>, bool);
impl Drop for CancelFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("").to_string();
    let stream = body["stream"] == true;
    let with_usage = body["stream_options"]["include_usage"] == true;
    // The Messages API is the other wire format this mock speaks; its default answers follow it.
    let anthropic = path.ends_with("/messages");
    let responder = state.responder.lock().unwrap().clone();
    let chosen = responder.and_then(|f| f(&body));
    let seen = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Recorded {
            path,
            query,
            headers,
            body,
            at: Instant::now(),
        });
        requests.len()
    };
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let sticky = state
        .sticky
        .lock()
        .unwrap()
        .as_ref()
        .filter(|(after, _)| seen > *after)
        .map(|(_, r)| r.clone());

    let reply = if let Some(r) = sticky {
        r
    } else if let Some(r) = chosen {
        r
    } else {
        let mut script = state.script.lock().unwrap();
        script
            .get_mut(&model)
            .and_then(VecDeque::pop_front)
            .or_else(|| script.get_mut("*").and_then(VecDeque::pop_front))
            .unwrap_or(Reply::Ok)
    };
    let reply = match reply {
        Reply::After(gate, then) => {
            gate.notified().await;
            *then
        }
        r => r,
    };
    let reply = match reply {
        Reply::Ok if anthropic && stream => Reply::Raw {
            status: 200,
            content_type: "text/event-stream",
            body: sse_named(&anthropic_stream_events(&model)),
        },
        Reply::Ok if anthropic => Reply::Json {
            status: 200,
            body: anthropic_message(&model, &format!("answer from {model}")),
            headers: vec![],
        },
        Reply::Ok if stream => Reply::Stream {
            events: stream_events(&model, with_usage),
            gate: None,
        },
        r => r,
    };
    match reply {
        Reply::Ok => {
            axum::Json(completion(&model, &format!("answer from {model}"))).into_response()
        }
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut resp = (
                http::StatusCode::from_u16(status).unwrap(),
                axum::Json(body),
            )
                .into_response();
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
        Reply::Garbage(text) => (http::StatusCode::OK, text).into_response(),
        Reply::Raw {
            status,
            content_type,
            body,
        } => (
            http::StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::After(..) => unreachable!("unwrapped above"),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Reset => {
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection reset"))
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(broken))
                .unwrap()
        }
        Reply::SlowStream(pause) => {
            let events = stream_events(&model, with_usage);
            let s = futures_util::stream::iter(events).then(move |ev| async move {
                tokio::time::sleep(pause).await;
                Ok::<Bytes, std::convert::Infallible>(Bytes::from(format!("data: {ev}\n\n")))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(s))
                .unwrap()
        }
        Reply::BrokenStream(n) => {
            let events: Vec<String> = stream_events(&model, with_usage)
                .into_iter()
                .take(n)
                .collect();
            let s = futures_util::stream::iter(events)
                .map(|ev| Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {ev}\n\n"))))
                .chain(futures_util::stream::once(async {
                    // The events are on the wire before the connection drops.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::other("dropped mid-stream"))
                }));
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(s))
                .unwrap()
        }
        Reply::Stream { events, gate } => {
            let started = state.stream_started.clone();
            let flag = CancelFlag(state.stream_cancelled.clone(), false);
            let total = events.len();
            let s =
                futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, ev)| {
                    let gate = gate.clone();
                    let started = started.clone();
                    async move {
                        if let Some((at, n)) = &gate {
                            if i == *at {
                                started.notify_one();
                                n.notified().await;
                            }
                        }
                        Ok::<Bytes, std::convert::Infallible>(Bytes::from(format!(
                            "data: {ev}\n\n"
                        )))
                    }
                });
            let mut flag = Some(flag);
            let s = s.enumerate().map(move |(i, item)| {
                if i + 1 == total {
                    if let Some(mut f) = flag.take() {
                        f.1 = true;
                    }
                }
                item
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(s))
                .unwrap()
        }
    }
}

/// The table most gateway tests start from: one OpenAI-compatible upstream `up` (the mock),
/// `cheap` alone in the budget tier and `strong` alone in premium, both priced. `extra_server`
/// goes under `server:`; `rest` adds the routing and any other section a test is about, so that
/// each test states only what it changes.
pub fn base_yaml(upstream: &str, extra_server: &str, rest: &str) -> String {
    format!(
        r#"
server:
  listen: "127.0.0.1:0"
  drain_timeout: 5s
{extra_server}
providers:
  up:
    kind: openai
    base_url: "{upstream}"
    api_key: "{PROVIDER_KEY}"
    headers: {{ OpenAI-Organization: org-test }}
models:
  - {{ name: cheap, provider: up, model: cheap-up, price: {{ input: 0.15, output: 0.6 }} }}
  - {{ name: strong, provider: up, model: strong-up, price: {{ input: 5, output: 15 }} }}
tiers:
  budget: {{ models: [cheap] }}
  premium: {{ models: [strong] }}
{rest}"#
    )
}

/// The routing of [`config_yaml`]: rules for premium prompts, budget by default, budget falls
/// back to premium.
const BASE_ROUTING: &str = r#"routing:
  default: budget
  counterfactual: premium
  rules:
    - { name: reasoning, when: { regex: '(?i)\bprove\b' }, tier: premium }
    - { name: summarize, when: { keywords: [summarize, tldr] }, tier: budget }
    - { name: hinted, when: { header: { name: x-tier-hint, value: premium } }, tier: premium }
    - { name: extraction, when: { task_type: [extraction] }, tier: premium }
fallbacks:
  budget: [premium]
"#;

/// A routing table against the mock: budget (cheap) falls back to premium (strong).
pub fn config_yaml(upstream: &str, extra_server: &str) -> String {
    base_yaml(upstream, extra_server, BASE_ROUTING)
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub state: switchyard::api::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub async fn start(yaml: &str) -> Gateway {
        let config = switchyard::config::Config::from_yaml(yaml, "test.yaml")
            .unwrap_or_else(|e| panic!("{e}"));
        let gw = switchyard::gateway::Gateway::build(
            config,
            &switchyard::server::http_client(),
            std::path::Path::new("."),
        )
        .await
        .unwrap();
        let server = switchyard::server::Server::bind(gw).await.unwrap();
        let addr = server.local_addr();
        let state = server.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            state,
            shutdown: Some(tx),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Value of one sample line in the Prometheus text, e.g. `switchyard_requests_total{model="cheap",status="200",tier="budget"}`.
/// `None` when no such line is exposed, so that a misspelled series fails the test instead of
/// reading as 0.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series}: value {v:?} is not a number: {e}"))
        })
}

/// The samples of the family `series` belongs to (its name up to `{`), for failure messages: a
/// misspelled label shows next to the ones that exist.
fn family_samples(text: &str, series: &str) -> String {
    let family = series.split('{').next().unwrap_or(series);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .collect();
    if lines.is_empty() {
        format!("no sample of {family} is exposed")
    } else {
        format!("samples of {family}:\n  {}", lines.join("\n  "))
    }
}

/// Value of a series the test expects to be exposed; a missing series fails the test, naming it
/// and the samples of its family.
#[track_caller]
pub fn metric_value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| {
        panic!(
            "series not exposed: {series}\n{}",
            family_samples(text, series)
        )
    })
}

/// Value of a series for which "absent or zero" is the expectation: labelled counters appear on
/// first use, so one that never moved is not exposed at all. Only for those cases; everywhere else
/// use [`metric_value`] or [`assert_metric`].
pub fn metric_or_zero(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or(0.0)
}

/// Asserts that `series` is exposed with exactly the value `want`.
#[track_caller]
pub fn assert_metric(text: &str, series: &str, want: f64) {
    let got = metric_value(text, series);
    assert!(
        got == want,
        "{series} is {got}, expected {want}\n{}",
        family_samples(text, series)
    );
}

/// Asserts that `series` moved by exactly `delta` between two scrapes. It must be exposed in
/// `after`; absent in `before` reads as 0 (a labelled counter appears on its first use).
#[track_caller]
pub fn assert_metric_delta(before: &str, after: &str, series: &str, delta: f64) {
    let moved = metric_value(after, series) - metric_or_zero(before, series);
    assert!(
        moved == delta,
        "{series} moved by {moved}, expected {delta}\n{}",
        family_samples(after, series)
    );
}

/// Every sample of the given families (name prefixes such as `switchyard_retries_total{`) whose
/// value moved between two scrapes, with how much it moved; a sample first exposed in `after`
/// moved from 0.
pub fn metric_deltas(
    before: &str,
    after: &str,
    families: &[&str],
) -> std::collections::BTreeMap<String, f64> {
    let samples = |text: &str| -> std::collections::BTreeMap<String, f64> {
        text.lines()
            .filter(|l| families.iter().any(|f| l.starts_with(f)))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect()
    };
    let before = samples(before);
    samples(after)
        .into_iter()
        .map(|(k, v)| {
            let d = v - before.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

pub fn chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

pub async fn post(gw: &Gateway, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Starts a streaming request in the background; resolves to the whole body as text (or to what
/// arrived before the connection ended).
pub fn spawn_stream(url: String, prompt: &str) -> tokio::task::JoinHandle<String> {
    let body =
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": prompt}]});
    tokio::spawn(async move {
        match reqwest::Client::new().post(url).json(&body).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
}

/// `yaml` with retries within a tier turned off, for tests about what one failure leads to.
pub fn without_retries(yaml: &str) -> String {
    format!("{yaml}reliability: {{ retries: 0 }}\n")
}

/// A "provider" that accepts connections and resets them at once (SO_LINGER 0), before any byte
/// of an answer: what a crashed or overloaded load balancer looks like.
pub async fn reset_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            // A zero linger never blocks: close sends RST at once, which is the point here.
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(sock);
        }
    });
    addr
}

/// How often the polling helpers look again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `f` until it gives `Ok`, and returns that value; once the deadline has passed, gives
/// back the last `Err` (what was seen instead). The one loop every wait in these tests goes
/// through: no fixed sleeps standing in for "long enough".
pub async fn poll_until<T, E, F, Fut>(deadline: Duration, mut f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(last) if start.elapsed() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`poll_until`] that fails the test at the deadline, saying what it waited for and what it saw
/// last.
#[track_caller]
pub fn wait_for<'a, T, E, F, Fut>(
    what: &'a str,
    deadline: Duration,
    f: F,
) -> impl std::future::Future<Output = T> + 'a
where
    E: std::fmt::Display,
    F: FnMut() -> Fut + 'a,
    Fut: std::future::Future<Output = Result<T, E>> + 'a,
    T: 'a,
    E: 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        poll_until(deadline, f).await.unwrap_or_else(|last| {
            panic!(
                "timed out after {deadline:?} waiting for: {what} (at {caller}); last seen: {last}"
            )
        })
    }
}

/// Polls `f` until it returns true or the deadline passes.
#[track_caller]
pub fn eventually<'a>(
    what: &'a str,
    deadline: Duration,
    mut f: impl FnMut() -> bool + 'a,
) -> impl std::future::Future<Output = ()> + 'a {
    wait_for(what, deadline, move || {
        let done = f();
        async move { if done { Ok(()) } else { Err("not yet") } }
    })
}

/// [`eventually`] for a condition that has to be awaited (a scrape, a request).
#[track_caller]
pub fn eventually_async<'a, F, Fut>(
    what: &'a str,
    deadline: Duration,
    mut f: F,
) -> impl std::future::Future<Output = ()> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: std::future::Future<Output = bool> + 'a,
{
    wait_for(what, deadline, move || {
        let done = f();
        async move { if done.await { Ok(()) } else { Err("not yet") } }
    })
}

/// [`poll_until`] for code without a runtime (a child process): `None` once the deadline passed.
pub fn poll_blocking<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The real binary, started with `serve`; stdout lines are collected in the background.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    pub fn serve(config: &std::path::Path, extra: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if !sent {
                        if let Some(addr) = listening_addr(&line) {
                            let _ = tx.send(addr);
                            sent = true;
                        }
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!(
                    "the gateway did not report its address; stderr: {err}; stdout: {:?}",
                    lines.lock().unwrap()
                )
            });
        Binary { child, addr, lines }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        poll_blocking(deadline, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse().ok()
}

/// The PostgreSQL server for tests that need one (`SWITCHYARD_TEST_POSTGRES`, else the local
/// one), or `None` when it is down: such tests are skipped, except under `CI`, where they fail.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // Probe the server the URL names, so that a URL set for another server is checked too
    // instead of failing later as if the store were broken.
    let opts: sqlx::postgres::PgConnectOptions = url
        .parse()
        .unwrap_or_else(|e| panic!("not a PostgreSQL URL: {url}: {e}"));
    let up = std::net::ToSocketAddrs::to_socket_addrs(&(opts.get_host(), opts.get_port()))
        .into_iter()
        .flatten()
        .any(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    if up {
        return Some(url);
    }
    assert!(
        std::env::var("CI").is_err(),
        "PostgreSQL is not reachable at {url}, and CI requires it"
    );
    eprintln!("skipping: PostgreSQL is not reachable at {url}");
    None
}

/// The Redis server for tests of shared state (`SWITCHYARD_TEST_REDIS`, else the local one), or
/// `None` when it is down: such tests are skipped, except under `CI`, where they fail.
pub fn redis_url() -> Option<String> {
    let url =
        std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_string();
    let up = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .into_iter()
        .flatten()
        .any(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    if up {
        return Some(url);
    }
    assert!(
        std::env::var("CI").is_err(),
        "Redis is not reachable at {url}, and CI requires it"
    );
    eprintln!("skipping: Redis is not reachable at {url}");
    None
}

/// A key prefix no other test (or run) uses, so tests sharing one Redis never see each other's
/// state.
pub fn redis_prefix() -> String {
    format!("sytest-{}", uuid::Uuid::new_v4().simple())
}

/// A `redis-server` of the test's own on a free loopback port, killed when dropped: for tests
/// that stop Redis mid-run.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// `None` (the test is skipped) when `redis-server` is not installed, except under `CI`.
    pub fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        RedisServer::on_port(port)
    }

    pub fn on_port(port: u16) -> Option<RedisServer> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "redis-server cannot be started ({e}), and CI requires it"
                );
                eprintln!("skipping: redis-server cannot be started: {e}");
                return None;
            }
        };
        let s = RedisServer {
            child: Some(child),
            port,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        poll_blocking(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .unwrap_or_else(|| panic!("redis-server did not listen on {port}"));
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
