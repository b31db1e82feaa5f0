//! Latency and memory benchmark: client → mock upstream directly, then client → switchyard → mock,
//! at the same fixed request rate with the same bodies, and the difference between the two.
//!
//!     cargo bench --bench gateway_load [-- --rate 1000 --duration 20 --warmup 3 --segment 2 --gateway-log info --semantic off]
//!
//! Options can also be given as environment variables: `BENCH_RATE`, `BENCH_DURATION`,
//! `BENCH_WARMUP`, `BENCH_SEGMENT`, `BENCH_GATEWAY_LOG`, `BENCH_SEMANTIC` (flags win).
//! `BENCH_GATEWAY_BIN` runs another build of the gateway instead of this one (for A/B runs
//! against a baseline). `--semantic builtin|hashed-ngrams` adds a semantic layer (the example
//! table's 103 utterances) with that embedder; the one prompt no rule matches is then routed by it.
//! `--state memory|redis` (`BENCH_STATE`) sends every request with a virtual key that has a budget
//! and an rpm limit (both far from reached), its counters in process memory or in Redis
//! (`BENCH_REDIS_URL`, default `redis://127.0.0.1:6379`, under a prefix of the run's own); the
//! difference between the two runs' added latency is what shared state costs.
//!
//! - The mock upstream is an axum server on 127.0.0.1:0 with its own single-threaded tokio runtime
//!   on its own thread. It answers `POST /v1/chat/completions` at once with a fixed
//!   `chat.completion` (with usage).
//! - The gateway is the release binary (`serve --listen 127.0.0.1:0`), run as a child process with
//!   one `openai` provider pointing at the mock, three tiers and 22 routing rules (the first a
//!   `prompt_tokens` rule, so every request counts its prompt with the o200k tokenizer).
//! - The load generator is open-loop: request `i` is due at `start + i / rate` and is sent then
//!   whether or not earlier ones have been answered, each on an idle keep-alive HTTP/1.1 connection
//!   (a new one is opened when none is idle). A pacer thread wakes at each due time (tokio's timer
//!   ticks in whole milliseconds, which would send requests in bursts) and hands the request to a
//!   current-thread runtime on the main thread that sends it and reads the answer, so generator,
//!   mock and gateway share the machine's cores as lightly as possible. Latency is measured from
//!   the moment a request is handed to its connection to the last byte of the answer. The
//!   generator's lateness against the schedule is reported separately: when it is large, the
//!   generator did not keep up and the run should not be trusted.
//!
//! - Both targets are warmed up first; then they take turns in short segments (2 s by default),
//!   so that other work on the machine, which on a 2-core box shows in every tail, weighs on both
//!   alike. The CPU time other processes used during the run is reported; when it is high, rerun.
//!
//! Results go to stdout as a table and to `target/bench/gateway_load.json`.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Notify;

type Res<T> = Result<T, Box<dyn Error>>;

/// Requests in flight at once before the generator counts a request as failed instead of opening
/// yet another connection: at 1,000 req/s this many in flight means answers take ≥ 256 ms.
const MAX_CONNECTIONS: usize = 256;
/// A request not answered within this is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After the last request is sent, how long the stragglers may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Startup deadlines: the listening line, then `/health/ready`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CHAT_PATH: &str = "/v1/chat/completions";

/// The issue's targets.
const TARGET_ADDED_P50_MS: f64 = 0.3;
const TARGET_ADDED_P99_MS: f64 = 1.5;
const TARGET_PEAK_RSS_MB: f64 = 60.0;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gateway_load: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Copy, PartialEq, Eq)]
enum GatewayLog {
    /// What `serve` does by default: INFO, one access line per request, to stdout, which the bench
    /// reads and discards like a log shipper would.
    Info,
    /// `RUST_LOG=warn` (plus the startup line, to learn the port): no per-request line.
    Quiet,
}

impl GatewayLog {
    fn name(self) -> &'static str {
        match self {
            GatewayLog::Info => "info",
            GatewayLog::Quiet => "quiet",
        }
    }
}

struct Opts {
    rate: u32,
    /// The semantic layer's embedder, or `None` for rules only.
    semantic: Option<String>,
    duration: Duration,
    warmup: Duration,
    segment: Duration,
    log: GatewayLog,
    /// Run by `cargo test`: a short, light run to check the setup; nothing is written.
    smoke: bool,
    /// Requests carry a limited virtual key, its state kept here.
    state: KeyState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// No key: the gateway as it is benchmarked otherwise.
    Off,
    Memory,
    Redis,
}

impl KeyState {
    fn name(self) -> &'static str {
        match self {
            KeyState::Off => "off",
            KeyState::Memory => "memory",
            KeyState::Redis => "redis",
        }
    }
}

/// The virtual key requests are sent with, when `--state` is on.
static KEY: std::sync::OnceLock<http::HeaderValue> = std::sync::OnceLock::new();

fn parse_opts() -> Res<Opts> {
    // `cargo bench` passes --bench; `cargo test --benches` (or --all-targets) runs this binary
    // without it, and then it does a short smoke run that checks the whole setup works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str| std::env::var(k).ok();
    let mut rate = env("BENCH_RATE");
    let mut duration = env("BENCH_DURATION");
    let mut warmup = env("BENCH_WARMUP");
    let mut segment = env("BENCH_SEGMENT");
    let mut log = env("BENCH_GATEWAY_LOG");
    let mut semantic = env("BENCH_SEMANTIC");
    let mut state = env("BENCH_STATE");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let slot = match key.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => continue,
            "--rate" => &mut rate,
            "--duration" => &mut duration,
            "--warmup" => &mut warmup,
            "--segment" => &mut segment,
            "--gateway-log" => &mut log,
            "--semantic" => &mut semantic,
            "--state" => &mut state,
            "-h" | "--help" => {
                println!(
                    "cargo bench --bench gateway_load -- [--rate REQ_PER_S] [--duration SECONDS] [--warmup SECONDS] [--segment SECONDS] [--gateway-log info|quiet] [--semantic off|builtin|hashed-ngrams] [--state off|memory|redis]"
                );
                std::process::exit(0);
            }
            // Filters cargo passes through (`cargo bench foo`) are not options of this bench, nor
            // are libtest's flags under `cargo test`.
            other if !other.starts_with('-') || smoke => continue,
            other => return Err(format!("unknown option {other} (try --help)").into()),
        };
        *slot = match inline {
            Some(v) => Some(v),
            None => Some(args.next().ok_or_else(|| format!("{key} needs a value"))?),
        };
    }
    let secs = |v: Option<String>, default: f64, name: &str| -> Res<Duration> {
        let s: f64 = match v {
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: not a number: {v}"))?,
            None => default,
        };
        if !(0.0..=600.0).contains(&s) {
            return Err(format!("{name} must be between 0 and 600 seconds").into());
        }
        Ok(Duration::from_secs_f64(s))
    };
    let rate: u32 = match rate {
        Some(r) => r
            .parse()
            .map_err(|_| format!("--rate: not a number: {r}"))?,
        None if smoke => 200,
        None => 1000,
    };
    if !(1..=50_000).contains(&rate) {
        return Err("--rate must be between 1 and 50000".into());
    }
    let duration = secs(duration, if smoke { 1.0 } else { 20.0 }, "--duration")?;
    if duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    let log = match log.as_deref() {
        None | Some("info") => GatewayLog::Info,
        Some("quiet") | Some("warn") => GatewayLog::Quiet,
        Some(other) => return Err(format!("--gateway-log: info or quiet, not {other}").into()),
    };
    let semantic = match semantic.as_deref() {
        None | Some("off") => None,
        Some(e @ ("builtin" | "hashed-ngrams")) => Some(e.to_string()),
        Some(other) => {
            return Err(format!("--semantic: off, builtin or hashed-ngrams, not {other}").into());
        }
    };
    let state = match state.as_deref() {
        None | Some("off") => KeyState::Off,
        Some("memory") => KeyState::Memory,
        Some("redis") => KeyState::Redis,
        Some(other) => return Err(format!("--state: off, memory or redis, not {other}").into()),
    };
    Ok(Opts {
        state,
        rate,
        semantic,
        duration,
        warmup: secs(warmup, if smoke { 0.5 } else { 3.0 }, "--warmup")?,
        segment: secs(segment, if smoke { 0.5 } else { 2.0 }, "--segment")?
            .max(Duration::from_millis(100)),
        smoke,
        log,
    })
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// What a real OpenAI-compatible server answers for a short completion (about 400 bytes).
const MOCK_ANSWER: &str = r#"{"id":"chatcmpl-9vBench0000000000000000001","object":"chat.completion","created":1763780000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"The outage came from an expired TLS certificate; renewal is now automated.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":231,"completion_tokens":15,"total_tokens":246}}"#;

const SYSTEM_PROMPT: &str = "You are a helpful assistant for the platform engineering team at a mid-sized retailer. \
     Answer precisely and keep answers short unless asked otherwise. Use plain language, say when you are unsure, \
     and never invent numbers, names or dates that the user did not give you.";

/// User messages of realistic length, each meant for a different routing outcome, so the rules
/// layer scans every byte and the three tiers all see traffic. The expected route is checked
/// against the gateway's `x-switchyard-route` header on every answer.
const PROMPTS: &[(&str, &str)] = &[
    (
        "rules:summarize",
        "Please summarize the notes from this morning's incident review in a few bullet points for the weekly update. \
         The checkout service returned errors for about forty minutes after the certificate on the internal load balancer expired. \
         On-call noticed the alert late because it was routed to the old channel. We renewed the certificate by hand, \
         then agreed to automate renewal, to move the alert to the new channel and to add a dashboard panel for expiry dates. \
         Maria owns the automation, Tom owns the alert routing, and we review progress next Thursday. Please keep names and owners exactly as written.",
    ),
    (
        "rules:code-debug",
        "Our nightly import job started failing yesterday and I cannot see why. The worker prints a traceback that ends in \
         KeyError: 'sku' inside the function that normalises rows from the supplier feed. Nothing changed on our side \
         as far as I can tell; the supplier may have renamed a column. The job reads the feed with the csv module, maps \
         each row to our product record and writes batches of five hundred to the database. What is the most likely cause, \
         and how would you make the job tell us clearly which column is missing next time instead of crashing halfway? A short code sketch is welcome.",
    ),
    (
        "rules:architecture",
        "We are deciding whether to split the order service into separate services for payments and fulfilment. Today it \
         is one application with one database, deployed twice a week, and the team is eight people. Payments need stricter \
         change control and fulfilment changes often. I would like a short comparison of the trade-offs: deployment speed, \
         data consistency between the two parts, operational load on a small team and the cost of running more pieces. \
         Finish with a recommendation for the next twelve months and what would make you change it. We run on two regions today.",
    ),
    (
        "default",
        "I am preparing the quarterly planning session for the team and would like some help with the agenda. We have two \
         hours, six people in the room and two joining remotely. The goals are to agree on three priorities for the quarter, \
         to decide who leads each, and to list what we will stop doing. Last time the discussion ran long and we ran out of \
         time before assigning owners. Suggest a timed agenda, a way to keep remote people involved, and one or two \
         questions that help the group drop work that no longer matters. Keep it practical, the team is busy and tired of long meetings.",
    ),
    (
        "rules:email-draft",
        "Draft an email to the supplier's account manager about the delayed shipment of the winter catalogue items. \
         The order was confirmed for delivery on the third, it has not arrived, and the tracking page has not changed for \
         six days. We need to know by Friday whether the goods will arrive before the promotion starts on the fifteenth, \
         because otherwise we must change the campaign. Keep the tone friendly but firm, mention the order number 48213, \
         ask for a concrete delivery date, and offer a short call on Thursday afternoon if that is easier for them. Sign it from the purchasing team.",
    ),
    (
        "rules:formal",
        "For the capacity planning document I need a careful argument, not just a rule of thumb. Requests arrive at random \
         at an average of two hundred per second and each takes ten milliseconds of work on one of four workers. Can you \
         prove that the queue stays stable under this load, state the assumptions the proof needs, and estimate the average \
         waiting time? Then explain in plain words what happens to waiting time if traffic grows by thirty percent during \
         the holiday sale, and how many workers we should add to keep waiting below five milliseconds. Show the formulas you use.",
    ),
];

/// Twenty-two rules in the style of a real routing table: keywords and regexes, checked in order.
/// The first sends long conversations to the big context window; it never matches here, but it
/// makes every request count its prompt's tokens, which is the tokenizer's whole cost.
fn rules_yaml() -> &'static str {
    r#"    - name: huge-prompt
      when: { prompt_tokens: { min: 100000 } }
      tier: mid
    - name: summarize
      when: { keywords: [summarize, summarise, tldr, "tl;dr", "bullet points", "key takeaways"] }
      tier: budget
    - name: translate
      when: { keywords: [translate, translation, "into french", "into spanish", "into german"] }
      tier: budget
    - name: classify
      when: { keywords: [classify, categorize, categorise, "sentiment of"] }
      tier: budget
    - name: extract
      when: { regex: '(?i)\b(extract (the|all)|parse (this|the) (invoice|receipt|email))\b' }
      tier: budget
    - name: proofread
      when: { keywords: ["fix the grammar", proofread, "spelling mistakes", rephrase, reword] }
      tier: budget
    - name: short-question
      when: { regex: '(?i)^\s*(what|who|when|where) (is|was|are|were)\b[^\n]{0,80}\?\s*$' }
      tier: budget
    - name: email-draft
      when: { regex: '(?i)\b(draft|write) (an? )?(email|reply|cover letter|linkedin post)\b' }
      tier: budget
    - name: formal
      when: { regex: '(?i)\b(prove|proof|lemma|theorem)\b' }
      tier: premium
    - name: step-by-step
      when: { keywords: ["step by step", "step-by-step", "think carefully", "chain of thought"] }
      tier: premium
    - name: architecture
      when: { regex: '(?i)\b(system design|architecture|trade-?offs?|scalab(le|ility))\b' }
      tier: premium
    - name: regulated
      when: { keywords: [liability, diagnosis, "drug interaction", gdpr, hipaa, "legal advice"] }
      tier: premium
    - name: math
      when: { regex: '(?i)\b(integral|derivative|eigen(value|vector)s?|differential equation|probability that)\b' }
      tier: premium
    - name: security
      when: { keywords: [vulnerability, "threat model", exploit, "cve-", "penetration test"] }
      tier: premium
    - name: long-context
      when: { regex: '(?i)\b(entire|whole) (codebase|repository|book)\b' }
      tier: premium
    - name: code-debug
      when: { regex: '(?i)\b(stack ?trace|traceback|segfault|panicked at|null pointer|exception)\b' }
      tier: mid
    - name: code-write
      when: { regex: '(?i)\b(write|implement|refactor|optimi[sz]e) (a |an |the |this |my )?(function|class|method|module|script|query)\b' }
      tier: mid
    - name: languages
      when: { keywords: [typescript, javascript, golang, kotlin, "c++", "rust code", "python code"] }
      tier: mid
    - name: data
      when: { keywords: [pandas, dataframe, "pivot table", spreadsheet, "regression model"] }
      tier: mid
    - name: hint-budget
      when: { header: { name: x-switchyard-tier-hint, value: budget } }
      tier: budget
    - name: task-type
      when: { task_type: [classification, extraction] }
      tier: budget
"#
}

/// The example table's utterances (config/example.yaml), with the embedder asked for.
fn semantic_yaml(embedder: &str) -> String {
    let example = include_str!("../config/example.yaml");
    let start = example.find("  semantic:\n").unwrap_or(0);
    let end = example[start..]
        .find("\n\n")
        .map_or(example.len(), |e| start + e);
    let section = &example[start..end];
    section.replacen(
        "  semantic:\n",
        &format!("  semantic:\n    embedder: {{ kind: {embedder} }}\n"),
        1,
    ) + "\n"
}

fn config_yaml(mock: SocketAddr, semantic: Option<&str>) -> String {
    format!(
        r#"# Written by benches/gateway_load.rs.
providers:
  mock:
    kind: openai
    base_url: http://{mock}/v1
    api_key: sk-bench-not-a-real-key
    timeout: 30s

models:
  - {{ name: small,  provider: mock, model: gpt-4o-mini, price: {{ input: 0.15, output: 0.60 }}, context_window: 128000 }}
  - {{ name: medium, provider: mock, model: gpt-4.1,     price: {{ input: 2.00, output: 8.00 }}, context_window: 1000000 }}
  - {{ name: large,  provider: mock, model: o3,          price: {{ input: 2.00, output: 8.00 }}, context_window: 200000 }}

tiers:
  budget:  {{ models: [small] }}
  mid:     {{ models: [medium] }}
  premium: {{ models: [large] }}

routing:
  default: mid
  counterfactual: premium
  rules:
{rules}
{semantic}
fallbacks:
  budget: [mid]
  mid: [premium]
"#,
        rules = rules_yaml(),
        semantic = semantic.map(semantic_yaml).unwrap_or_default(),
    )
}

/// The prompts' bodies and the route each must take (`semantic:mid` for the one no rule matches,
/// when the semantic layer is on; scores after `@` are not compared).
fn request_bodies(semantic: bool) -> Res<Vec<(&'static str, Bytes)>> {
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, (route, prompt))| {
            let route = if semantic && *route == "default" {
                "semantic:mid"
            } else {
                route
            };
            let body = json!({
                "model": "auto",
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0.2,
                "max_tokens": 512,
                "user": format!("bench-user-{i}"),
            });
            Ok((route, Bytes::from(serde_json::to_vec(&body)?)))
        })
        .collect()
}

/// The `keys:` and `state:` sections for `--state`: keys in a SQLite file in `dir`, state in
/// memory or in Redis under a prefix of this run's own.
fn state_yaml(state: KeyState, dir: &Path) -> String {
    let keys = format!(
        "keys: {{ database: \"sqlite://{}\" }}\n",
        dir.join("keys.db").display()
    );
    match state {
        KeyState::Off => String::new(),
        KeyState::Memory => keys,
        KeyState::Redis => {
            let url = std::env::var("BENCH_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let prefix = format!("bench-{}-{}", std::process::id(), fastrand::u64(..));
            format!("{keys}state: {{ backend: redis, url: \"{url}\", prefix: \"{prefix}\" }}\n")
        }
    }
}

/// Issues the run's key with `switchyard keys create`: a budget and an rpm limit neither of which
/// the run reaches, so every request pays for both checks and none is refused.
fn create_key(config: &Path) -> Res<String> {
    let bin = std::env::var_os("BENCH_GATEWAY_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchyard").into());
    let out = Command::new(bin)
        .args(["keys", "--json", "--config"])
        .arg(config)
        .args([
            "create",
            "bench",
            "--budget-usd",
            "1000000",
            "--budget-period",
            "day",
        ])
        .args(["--rpm", "100000000"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "switchyard keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["key"]
        .as_str()
        .ok_or("switchyard keys create printed no key")?
        .to_string())
}

// ---------------------------------------------------------------------------------------------
// Mock upstream

struct Mock {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    /// The mock's thread, to read its CPU time.
    tid: Option<u32>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    fn start() -> Res<Mock> {
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(SocketAddr, Option<u32>), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-upstream".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let addr = match listener.local_addr() {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let app = axum::Router::new().route(
                        CHAT_PATH,
                        axum::routing::post(move |_body: Bytes| {
                            counter.fetch_add(1, Ordering::Relaxed);
                            async {
                                (
                                    [(http::header::CONTENT_TYPE, "application/json")],
                                    MOCK_ANSWER,
                                )
                            }
                        }),
                    );
                    let _ = ready_tx.send(Ok((addr, current_tid())));
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })?;
        let (addr, tid) = ready_rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| "the mock upstream did not start")??;
        Ok(Mock {
            addr,
            requests,
            tid,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway child process

/// The gateway process; killed when dropped, so an error anywhere in the bench still stops it.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    log_lines: Arc<AtomicU64>,
    log_bytes: Arc<AtomicU64>,
}

impl Gateway {
    fn start(config: &Path, log: GatewayLog) -> Res<Gateway> {
        // `BENCH_GATEWAY_BIN` runs another build of the gateway (a baseline, for an A/B run).
        let bin = std::env::var_os("BENCH_GATEWAY_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchyard").into());
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match log {
            // The default a user gets: no RUST_LOG, so INFO with one line per request.
            GatewayLog::Info => cmd.env_remove("RUST_LOG"),
            GatewayLog::Quiet => cmd.env("RUST_LOG", "warn,switchyard::cli=info"),
        };
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take();
        // From here on the guard owns the child; an early return kills it.
        let mut gw = Gateway {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_lines: Arc::new(AtomicU64::new(0)),
            log_bytes: Arc::new(AtomicU64::new(0)),
        };
        let stdout = stdout.ok_or("no stdout pipe for the gateway")?;
        let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
        let (lines, bytes) = (gw.log_lines.clone(), gw.log_bytes.clone());
        // Drains the gateway's stdout for its whole life, as a log shipper would, so that writing
        // the log never blocks the gateway; picks the bound address from the startup line.
        std::thread::Builder::new()
            .name("gateway-stdout".into())
            .spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, stdout);
                let mut line = String::new();
                let mut found = false;
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            lines.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                            if !found {
                                if let Some(a) = listening_addr(&line) {
                                    found = true;
                                    let _ = addr_tx.send(a);
                                } else {
                                    print!("  gateway| {line}");
                                }
                            }
                        }
                    }
                }
            })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match addr_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(a) => {
                    gw.addr = a;
                    return Ok(gw);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(
                        "the gateway closed its stdout before saying where it listens".into(),
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(status) = gw.child.try_wait()? {
                return Err(format!("the gateway exited during startup: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("the gateway did not log its listening address in time".into());
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `… switchyard listening on 127.0.0.1:43210 …` (text or JSON log format).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("switchyard listening on ").nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

// ---------------------------------------------------------------------------------------------
// /proc readings

fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM), in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// User + system CPU time of a process or thread, from its `stat` file (clock ticks of 10 ms).
fn cpu_time(stat_path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time the whole machine (all cores) spent running processes, from the first line of
/// `/proc/stat`: user, nice, system and steal. Interrupt time is left out: it is mostly the
/// kernel delivering this bench's own loopback packets, which no process is charged for.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = [0, 1, 2, 7].iter().filter_map(|&i| f.get(i)).sum::<u64>();
    Some(Duration::from_millis(busy * 10))
}

/// CPU times at one moment: the gateway process, the mock's thread, the generator's thread, the
/// whole bench process and the whole machine.
#[derive(Clone, Copy)]
struct CpuSnapshot {
    gateway: Duration,
    mock: Duration,
    generator: Duration,
    bench: Duration,
    machine: Duration,
}

impl CpuSnapshot {
    /// Readings that fail (no /proc) count as zero.
    fn take(gateway_pid: u32, mock_tid: Option<u32>, generator_tid: Option<u32>) -> Self {
        CpuSnapshot {
            gateway: process_cpu(gateway_pid).unwrap_or_default(),
            mock: thread_cpu(mock_tid).unwrap_or_default(),
            generator: thread_cpu(generator_tid).unwrap_or_default(),
            bench: process_cpu(std::process::id()).unwrap_or_default(),
            machine: machine_busy().unwrap_or_default(),
        }
    }
}

fn process_cpu(pid: u32) -> Option<Duration> {
    cpu_time(&format!("/proc/{pid}/stat"))
}

fn thread_cpu(tid: Option<u32>) -> Option<Duration> {
    let tid = tid?;
    cpu_time(&format!("/proc/{}/task/{tid}/stat", std::process::id()))
}

// ---------------------------------------------------------------------------------------------
// Load generator

/// Keep-alive HTTP/1.1 connections to one address; grows on demand up to `MAX_CONNECTIONS`.
struct Pool {
    addr: SocketAddr,
    host: http::HeaderValue,
    idle: RefCell<Vec<SendRequest<Full<Bytes>>>>,
    open: Cell<usize>,
    opened: Cell<u64>,
}

impl Pool {
    fn new(addr: SocketAddr) -> Res<Rc<Pool>> {
        Ok(Rc::new(Pool {
            addr,
            host: http::HeaderValue::from_str(&addr.to_string())?,
            idle: RefCell::new(Vec::new()),
            open: Cell::new(0),
            opened: Cell::new(0),
        }))
    }

    async fn connect(&self) -> Res<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        self.opened.set(self.opened.get() + 1);
        Ok(send)
    }

    /// An idle connection ready for a request, or a new one. `None` once the limit is reached.
    async fn take(self: &Rc<Self>) -> Option<Res<Lease>> {
        loop {
            let idle = self.idle.borrow_mut().pop();
            match idle {
                Some(mut c) => {
                    if c.ready().await.is_ok() {
                        return Some(Ok(Lease {
                            pool: self.clone(),
                            conn: Some(c),
                        }));
                    }
                    self.open.set(self.open.get() - 1);
                }
                None => break,
            }
        }
        if self.open.get() >= MAX_CONNECTIONS {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(match self.connect().await {
            Ok(c) => Ok(Lease {
                pool: self.clone(),
                conn: Some(c),
            }),
            Err(e) => {
                self.open.set(self.open.get() - 1);
                Err(e)
            }
        })
    }
}

/// A connection out of the pool; goes back when `release`d, is closed when dropped.
struct Lease {
    pool: Rc<Pool>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Lease {
    fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.idle.borrow_mut().push(c);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.pool.open.set(self.pool.open.get() - 1);
        }
    }
}

fn histogram() -> Res<Histogram<u64>> {
    // Nanoseconds, 1 ns to 60 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

struct Phase {
    /// Send → last byte of the answer, ns.
    latency: Histogram<u64>,
    /// Scheduled time → send, ns: how late the generator was.
    lag: Histogram<u64>,
    /// The gateway's own `x-switchyard-overhead-ms` header, ns.
    reported_overhead: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    routes: BTreeMap<String, u64>,
    misrouted: u64,
    sent: u64,
    elapsed: Duration,
    connections_opened: u64,
    /// CPU time of the pacer thread.
    pacer_cpu: Option<Duration>,
}

impl Phase {
    fn new() -> Res<Phase> {
        Ok(Phase {
            latency: histogram()?,
            lag: histogram()?,
            reported_overhead: histogram()?,
            ok: 0,
            errors: BTreeMap::new(),
            routes: BTreeMap::new(),
            misrouted: 0,
            sent: 0,
            elapsed: Duration::ZERO,
            connections_opened: 0,
            pacer_cpu: None,
        })
    }

    /// Adds another segment's results to these.
    fn merge(&mut self, other: Phase) -> Res<()> {
        self.latency.add(&other.latency)?;
        self.lag.add(&other.lag)?;
        self.reported_overhead.add(&other.reported_overhead)?;
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.routes {
            *self.routes.entry(k).or_default() += v;
        }
        self.misrouted += other.misrouted;
        self.sent += other.sent;
        self.elapsed += other.elapsed;
        self.connections_opened += other.connections_opened;
        self.pacer_cpu =
            Some(self.pacer_cpu.unwrap_or_default() + other.pacer_cpu.unwrap_or_default());
        Ok(())
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn achieved_rate(&self) -> f64 {
        (self.ok + self.error_count()) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sends `rate × duration` requests on schedule and waits (bounded) for all of them.
async fn load(
    pool: &Rc<Pool>,
    bodies: &Rc<Vec<(&'static str, Bytes)>>,
    rate: u32,
    duration: Duration,
) -> Res<Phase> {
    let stats = Rc::new(RefCell::new(Phase::new()?));
    let in_flight = Rc::new(Cell::new(0usize));
    let done = Rc::new(Notify::new());
    let opened_before = pool.opened.get();
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(5);
    let (mut schedule, pacer) = pacer(start, interval, total)?;
    while let Some((i, due)) = schedule.recv().await {
        in_flight.set(in_flight.get() + 1);
        let (pool, bodies, stats, in_flight, done) = (
            pool.clone(),
            bodies.clone(),
            stats.clone(),
            in_flight.clone(),
            done.clone(),
        );
        tokio::task::spawn_local(async move {
            let idx = usize::try_from(i).unwrap_or(0) % bodies.len().max(1);
            if let Some((route, body)) = bodies.get(idx) {
                one(&pool, route, body.clone(), due, &stats).await;
            }
            in_flight.set(in_flight.get() - 1);
            if in_flight.get() == 0 {
                done.notify_one();
            }
        });
    }
    let pacer_cpu = pacer.join().ok().flatten();
    stats.borrow_mut().sent = total;
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while in_flight.get() > 0 {
        if tokio::time::timeout_at(deadline, done.notified())
            .await
            .is_err()
        {
            let left = in_flight.get() as u64;
            stats.borrow_mut().errors.insert("unfinished".into(), left);
            break;
        }
    }
    let mut phase = Rc::try_unwrap(stats)
        .map_err(|_| "requests still running after the drain deadline")?
        .into_inner();
    phase.elapsed = start.elapsed();
    phase.connections_opened = pool.opened.get() - opened_before;
    phase.pacer_cpu = pacer_cpu;
    Ok(phase)
}

async fn one(
    pool: &Rc<Pool>,
    expected_route: &str,
    body: Bytes,
    due: Instant,
    stats: &RefCell<Phase>,
) {
    let lease = match pool.take().await {
        Some(Ok(l)) => l,
        Some(Err(_)) => return stats.borrow_mut().error("connect"),
        None => return stats.borrow_mut().error("too many in flight"),
    };
    let req = http::Request::post(CHAT_PATH)
        .header(http::header::HOST, pool.host.clone())
        .header(http::header::CONTENT_TYPE, "application/json");
    let req = match KEY.get() {
        Some(k) => req.header(http::header::AUTHORIZATION, k.clone()),
        None => req,
    };
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(_) => return stats.borrow_mut().error("request"),
    };
    let mut lease = lease;
    let Some(conn) = lease.conn.as_mut() else {
        return stats.borrow_mut().error("connect");
    };
    let sent = Instant::now();
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let resp = conn.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>((parts, body))
    })
    .await;
    let latency = sent.elapsed();
    let mut s = stats.borrow_mut();
    let (parts, body) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => return s.error("transport"),
        Err(_) => return s.error("timeout"),
    };
    if parts.status != http::StatusCode::OK {
        return s.error(format!("HTTP {}", parts.status.as_u16()));
    }
    if !contains(&body, b"\"chat.completion\"") {
        return s.error("unexpected body");
    }
    s.ok += 1;
    s.latency.saturating_record(nanos(latency));
    s.lag
        .saturating_record(nanos(sent.saturating_duration_since(due)));
    if let Some(route) = parts.headers.get("x-switchyard-route") {
        let route = route.to_str().unwrap_or("?");
        if route.split('@').next() != Some(expected_route) {
            s.misrouted += 1;
        }
        *s.routes.entry(route.to_string()).or_default() += 1;
    }
    if let Some(ms) = parts
        .headers
        .get("x-switchyard-overhead-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
    {
        s.reported_overhead
            .saturating_record((ms * 1e6).round() as u64);
    }
    drop(s);
    lease.release();
}

/// Request numbers and their due times, from the pacer.
type Schedule = tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>;

/// Emits `(i, due)` for `i` in `0..total` at `start + i × interval`, from a thread of its own:
/// tokio's timer has a resolution of 1 ms and would send requests in bursts on millisecond ticks,
/// while a thread sleeping with `nanosleep` wakes within tens of microseconds of the due time.
fn pacer(
    start: Instant,
    interval: Duration,
    total: u64,
) -> Res<(Schedule, std::thread::JoinHandle<Option<Duration>>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            for i in 0..total {
                let due = start + interval.mul_f64(i as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if tx.send((i, due)).is_err() {
                    break;
                }
            }
            cpu_time("/proc/thread-self/stat")
        })?;
    Ok((rx, thread))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Polls `/health/ready` until it answers 200 or the deadline passes.
async fn wait_ready(addr: SocketAddr) -> Res<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match get(addr, "/health/ready").await {
            Ok((s, _)) if s == http::StatusCode::OK => return Ok(()),
            Ok((s, _)) => last = format!("HTTP {s}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("/health/ready did not answer 200 in time ({last})").into())
}

/// One `GET` on a connection of its own, bounded by `REQUEST_TIMEOUT`.
async fn get(addr: SocketAddr, path: &str) -> Res<(http::StatusCode, Bytes)> {
    let req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut send, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    })
    .await
    .map_err(|_| format!("GET {path}: no answer in time"))?
}

/// Sums and counts of the gateway's own duration histograms, to split its latency into parts.
#[derive(Clone, Copy, Default)]
struct GatewayTimes {
    /// `switchyard_request_duration_seconds`: handler start to the answer being ready.
    handler: (f64, f64),
    /// `switchyard_upstream_duration_seconds`: the upstream call, reading and parsing its answer.
    upstream: (f64, f64),
    /// `switchyard_gateway_overhead_seconds`: handler time outside the upstream call.
    overhead: (f64, f64),
}

impl GatewayTimes {
    async fn scrape(addr: SocketAddr) -> Res<GatewayTimes> {
        let (status, body) = get(addr, "/metrics").await?;
        if status != http::StatusCode::OK {
            return Err(format!("/metrics answered {status}").into());
        }
        let text = std::str::from_utf8(&body)?;
        let total = |name: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let pair = |base: &str| {
            (
                total(&format!("{base}_sum")),
                total(&format!("{base}_count")),
            )
        };
        Ok(GatewayTimes {
            handler: pair("switchyard_request_duration_seconds"),
            upstream: pair("switchyard_upstream_duration_seconds"),
            overhead: pair("switchyard_gateway_overhead_seconds"),
        })
    }

    /// Mean milliseconds of each part between two scrapes.
    fn means_since(&self, before: &GatewayTimes) -> [f64; 3] {
        let mean = |a: (f64, f64), b: (f64, f64)| {
            let n = a.1 - b.1;
            if n > 0.0 {
                (a.0 - b.0) / n * 1e3
            } else {
                f64::NAN
            }
        };
        [
            mean(self.handler, before.handler),
            mean(self.upstream, before.upstream),
            mean(self.overhead, before.overhead),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Target {
    name: &'static str,
    addr: SocketAddr,
    phase: Phase,
    /// CPU time of the gateway process, the mock thread and the generator's threads, and of every
    /// other process on the machine, during the measured segments of this target.
    cpu_gateway: Duration,
    cpu_mock: Duration,
    cpu_generator: Duration,
    cpu_others: Duration,
}

impl Target {
    /// Other processes' CPU use as a fraction of the machine: when high, tail latencies tell more
    /// about the neighbours than about switchyard.
    fn others_load(&self, cores: usize) -> f64 {
        self.cpu_others.as_secs_f64() / (self.phase.elapsed.as_secs_f64() * cores as f64).max(1e-9)
    }

    fn per_request_us(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e6 / self.phase.ok.max(1) as f64
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn quantiles(h: &Histogram<u64>) -> [(&'static str, f64); 6] {
    [
        ("p50", ms(h.value_at_quantile(0.50))),
        ("p90", ms(h.value_at_quantile(0.90))),
        ("p99", ms(h.value_at_quantile(0.99))),
        ("p99.9", ms(h.value_at_quantile(0.999))),
        ("max", ms(h.max())),
        ("mean", h.mean() / 1e6),
    ]
}

fn run() -> Res<bool> {
    let opts = parse_opts()?;
    let bodies = request_bodies(opts.semantic.is_some())?;
    let avg_body = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / bodies.len().max(1);

    let mock = Mock::start()?;
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("switchyard-bench.yaml");
    let mut yaml = config_yaml(mock.addr, opts.semantic.as_deref());
    yaml.push_str(&state_yaml(opts.state, dir.path()));
    std::fs::write(&config_path, yaml)?;
    if opts.state != KeyState::Off {
        let key = create_key(&config_path)?;
        let _ = KEY.set(http::HeaderValue::from_str(&format!("Bearer {key}"))?);
    }
    let started = Instant::now();
    let gateway = Gateway::start(&config_path, opts.log)?;
    let pid = gateway.pid();
    let main_tid = current_tid();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let bodies = Rc::new(bodies);

    local.block_on(&rt, wait_ready(gateway.addr))?;
    let startup = started.elapsed();
    let rss_idle = status_mib(pid, "VmRSS:");

    if opts.smoke {
        println!("gateway_load: smoke run; `cargo bench --bench gateway_load` measures");
    }
    println!(
        "gateway_load: {} req/s, {:.0} s per target (after {:.1} s warm-up) in turns of {:.1} s; {} bodies of ~{avg_body} B; \
         gateway log: {}; semantic layer: {}; key state: {}; mock {}, gateway {} (pid {pid})",
        opts.rate,
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        opts.segment.as_secs_f64(),
        bodies.len(),
        opts.log.name(),
        opts.semantic.as_deref().unwrap_or("off"),
        opts.state.name(),
        mock.addr,
        gateway.addr,
    );

    let mut targets = Vec::new();
    for (name, addr) in [("direct", mock.addr), ("switchyard", gateway.addr)] {
        targets.push(Target {
            name,
            addr,
            phase: Phase::new()?,
            cpu_gateway: Duration::ZERO,
            cpu_mock: Duration::ZERO,
            cpu_generator: Duration::ZERO,
            cpu_others: Duration::ZERO,
        });
    }
    let pools = targets
        .iter()
        .map(|t| Pool::new(t.addr))
        .collect::<Res<Vec<_>>>()?;
    for (t, pool) in targets.iter().zip(&pools) {
        if !opts.warmup.is_zero() {
            let warm = local.block_on(&rt, load(pool, &bodies, opts.rate, opts.warmup))?;
            if warm.error_count() > 0 {
                return Err(format!("{}: warm-up failed: {:?}", t.name, warm.errors).into());
            }
        }
    }
    let times_before = local.block_on(&rt, GatewayTimes::scrape(gateway.addr))?;
    // The two targets take turns in short segments (direct first in even rounds, second in odd
    // ones), so that whatever else runs on the machine weighs on both alike.
    let rounds = (opts.duration.as_secs_f64() / opts.segment.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let segment = opts.duration / rounds;
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let (Some(t), Some(pool)) = (targets.get_mut(k), pools.get(k)) else {
                continue;
            };
            let before = CpuSnapshot::take(pid, mock.tid, main_tid);
            let phase = local.block_on(&rt, load(pool, &bodies, opts.rate, segment))?;
            let after = CpuSnapshot::take(pid, mock.tid, main_tid);
            let d = |f: fn(&CpuSnapshot) -> Duration| f(&after).saturating_sub(f(&before));
            t.cpu_gateway += d(|c| c.gateway);
            t.cpu_mock += d(|c| c.mock);
            t.cpu_generator += d(|c| c.generator) + phase.pacer_cpu.unwrap_or_default();
            t.cpu_others += d(|c| c.machine).saturating_sub(d(|c| c.gateway) + d(|c| c.bench));
            t.phase.merge(phase)?;
        }
    }
    let times_after = local.block_on(&rt, GatewayTimes::scrape(gateway.addr))?;
    let gateway_means = times_after.means_since(&times_before);
    let rss_after = status_mib(pid, "VmRSS:");
    let rss_peak = status_mib(pid, "VmHWM:");
    let log_lines = gateway.log_lines.load(Ordering::Relaxed);
    let log_bytes = gateway.log_bytes.load(Ordering::Relaxed);
    let mock_requests = mock.requests.load(Ordering::Relaxed);
    drop(gateway);
    drop(mock);

    report(
        &opts,
        avg_body,
        &targets,
        startup,
        rss_idle,
        rss_after,
        rss_peak,
        (log_lines, log_bytes),
        mock_requests,
        gateway_means,
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Opts,
    avg_body: usize,
    targets: &[Target],
    startup: Duration,
    rss_idle: Option<f64>,
    rss_after: Option<f64>,
    rss_peak: Option<f64>,
    log: (u64, u64),
    mock_requests: u64,
    gateway_means: [f64; 3],
) -> Res<bool> {
    let [direct, gw] = targets else {
        return Err("expected two targets".into());
    };
    println!();
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>9} {:>7} {:>6}",
        "latency ms", "p50", "p90", "p99", "p99.9", "max", "mean", "req/s", "ok", "errors"
    );
    for t in targets {
        let q = quantiles(&t.phase.latency);
        println!(
            "{:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}  {:>9.1} {:>7} {:>6}",
            t.name,
            q[0].1,
            q[1].1,
            q[2].1,
            q[3].1,
            q[4].1,
            q[5].1,
            t.phase.achieved_rate(),
            t.phase.ok,
            t.phase.error_count()
        );
    }
    let (qd, qg) = (
        quantiles(&direct.phase.latency),
        quantiles(&gw.phase.latency),
    );
    let added: Vec<(&str, f64)> = qd
        .iter()
        .zip(qg.iter())
        .map(|((k, d), (_, g))| (*k, g - d))
        .collect();
    println!(
        "{:<12} {:>+8.3} {:>+8.3} {:>+8.3} {:>+8.3} {:>+8.3} {:>+8.3}",
        "added", added[0].1, added[1].1, added[2].1, added[3].1, added[4].1, added[5].1
    );
    let ro = quantiles(&gw.phase.reported_overhead);
    println!(
        "{:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}   (x-switchyard-overhead-ms header)",
        "self-report", ro[0].1, ro[1].1, ro[2].1, ro[3].1, ro[4].1, ro[5].1
    );
    println!();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for t in targets {
        let lag = &t.phase.lag;
        let gateway_cpu = if t.name == "direct" {
            "-".to_string()
        } else {
            format!("{:.0} µs/req", t.per_request_us(t.cpu_gateway))
        };
        println!(
            "{:<12} generator lag p99 {:.3} ms, max {:.3} ms; connections opened {}; CPU: gateway {}, mock {:.0} µs/req, generator {:.0} µs/req; other processes {:.0}% of the machine{}",
            t.name,
            ms(lag.value_at_quantile(0.99)),
            ms(lag.max()),
            t.phase.connections_opened,
            gateway_cpu,
            t.per_request_us(t.cpu_mock),
            t.per_request_us(t.cpu_generator),
            t.others_load(cores) * 100.0,
            if t.phase.errors.is_empty() {
                String::new()
            } else {
                format!("; errors {:?}", t.phase.errors)
            }
        );
    }
    let [handler, upstream, in_handler] = gateway_means;
    let (mean_gw, mean_direct) = (
        gw.phase.latency.mean() / 1e6,
        direct.phase.latency.mean() / 1e6,
    );
    println!(
        "breakdown    means, ms: through switchyard {mean_gw:.3} = outside the handler {:.3} (client hop, HTTP server, middleware) \
         + handler {handler:.3} [upstream call {upstream:.3} (direct call: {mean_direct:.3}) + gateway work {in_handler:.3}]",
        mean_gw - handler
    );
    println!("routes       {:?}", gw.phase.routes);
    let mib = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MiB"));
    println!(
        "gateway RSS  idle {} (ready after {:.0} ms), after the run {}, peak (VmHWM) {}",
        mib(rss_idle),
        startup.as_secs_f64() * 1e3,
        mib(rss_after),
        mib(rss_peak)
    );
    println!(
        "gateway log  {} lines, {:.1} MiB to stdout (--gateway-log {})",
        log.0,
        log.1 as f64 / 1048576.0,
        opts.log.name()
    );

    let added_p50 = added[0].1;
    let added_p99 = added[2].1;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let p50_ok = added_p50 <= TARGET_ADDED_P50_MS;
    let p99_ok = added_p99 <= TARGET_ADDED_P99_MS;
    let rss_ok = rss_peak.is_some_and(|r| r <= TARGET_PEAK_RSS_MB);
    if !opts.smoke {
        println!(
            "targets      added p50 {added_p50:.3} ≤ {TARGET_ADDED_P50_MS} ms: {}; added p99 {added_p99:.3} ≤ {TARGET_ADDED_P99_MS} ms: {}; peak RSS ≤ {TARGET_PEAK_RSS_MB} MB: {}",
            verdict(p50_ok),
            verdict(p99_ok),
            verdict(rss_ok)
        );
    }

    let errors = direct.phase.error_count() + gw.phase.error_count();
    let target_json = |t: &Target| -> Value {
        let q = quantiles(&t.phase.latency);
        json!({
            "latency_ms": q.iter().map(|(k, v)| ((*k).to_string(), json!(round3(*v)))).collect::<serde_json::Map<_, _>>(),
            "ok": t.phase.ok,
            "errors": t.phase.errors,
            "sent": t.phase.sent,
            "achieved_rate": round3(t.phase.achieved_rate()),
            "generator_lag_ms": {"p99": round3(ms(t.phase.lag.value_at_quantile(0.99))), "max": round3(ms(t.phase.lag.max()))},
            "connections_opened": t.phase.connections_opened,
            "cpu_us_per_request": {
                "gateway": round3(t.per_request_us(t.cpu_gateway)),
                "mock": round3(t.per_request_us(t.cpu_mock)),
                "generator": round3(t.per_request_us(t.cpu_generator)),
            },
            "other_processes_load": round3(t.others_load(cores)),
        })
    };
    let result = json!({
        "bench": "gateway_load",
        "command": command_line(),
        "rate": opts.rate,
        "duration_s": opts.duration.as_secs_f64(),
        "warmup_s": opts.warmup.as_secs_f64(),
        "segment_s": opts.segment.as_secs_f64(),
        "gateway_log": opts.log.name(),
        "semantic": opts.semantic.as_deref().unwrap_or("off"),
        "key_state": opts.state.name(),
        "request_body_bytes_avg": avg_body,
        "response_body_bytes": MOCK_ANSWER.len(),
        "cores": cores,
        "direct": target_json(direct),
        "switchyard": target_json(gw),
        "added_ms": added.iter().map(|(k, v)| ((*k).to_string(), json!(round3(*v)))).collect::<serde_json::Map<_, _>>(),
        "gateway_metrics_means_ms": {
            "client_observed": round3(gw.phase.latency.mean() / 1e6),
            "handler": round3(handler),
            "upstream_call": round3(upstream),
            "gateway_work_in_handler": round3(in_handler),
        },
        "self_reported_overhead_ms": ro.iter().map(|(k, v)| ((*k).to_string(), json!(round3(*v)))).collect::<serde_json::Map<_, _>>(),
        "routes": gw.phase.routes,
        "misrouted": gw.phase.misrouted,
        "gateway_rss_mib": {"idle": rss_idle.map(round3), "after_run": rss_after.map(round3), "peak_vmhwm": rss_peak.map(round3)},
        "gateway_startup_ms": round3(startup.as_secs_f64() * 1e3),
        "gateway_log_lines": log.0,
        "mock_requests_total": mock_requests,
        "targets": {
            "added_p50_ms": {"limit": TARGET_ADDED_P50_MS, "met": p50_ok},
            "added_p99_ms": {"limit": TARGET_ADDED_P99_MS, "met": p99_ok},
            "peak_rss_mb": {"limit": TARGET_PEAK_RSS_MB, "met": rss_ok},
        },
    });
    if opts.smoke {
        println!(
            "smoke run (no --bench flag, e.g. cargo test --benches): figures not meaningful, nothing written"
        );
        return Ok(errors == 0 && gw.phase.misrouted == 0);
    }
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    let file = out.join("gateway_load.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&result)?)?;
    println!("written      {}", file.display());

    if gw.phase.misrouted > 0 {
        eprintln!(
            "gateway_load: {} answers took an unexpected route: {:?}",
            gw.phase.misrouted, gw.phase.routes
        );
    }
    Ok(errors == 0 && gw.phase.misrouted == 0)
}

/// The command that produced these results, as a user would type it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        "cargo bench --bench gateway_load".into()
    } else {
        format!("cargo bench --bench gateway_load -- {}", args.join(" "))
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
