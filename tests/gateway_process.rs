//! The real binary: `check`, `serve` refusing a bad file, reload on SIGHUP and on file change,
//! graceful shutdown on SIGTERM, JSON logs without secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn wait_exit(b: &mut Binary, deadline: Duration) -> Option<std::process::ExitStatus> {
    poll_until(deadline, || {
        let exited = b.child.try_wait().ok().flatten();
        async move { exited.ok_or(()) }
    })
    .await
    .ok()
}

async fn route_of(b: &Binary, prompt: &str) -> String {
    let resp = reqwest::Client::new()
        .post(b.url("/v1/chat/completions"))
        .json(&chat_body("auto", prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-switchyard-tier"]
        .to_str()
        .unwrap()
        .to_string()
}

const BAD_KEY: &str = r#"
providers:
  sim: { kind: simulated, simulat: { latency: 1ms } }
models: [{ name: s, provider: sim }]
tiers: { t: { models: [s] } }
routing: { default: t }
"#;

#[test]
fn check_prints_a_summary_or_the_located_error() {
    let out = bin()
        .args(["check", "--config", "config/demo.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/demo.yaml: OK")
            && text.contains("budget")
            && text.contains("summarize"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", BAD_KEY);
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3:27: providers.sim.simulat: unknown field `simulat`",
            bad.display()
        )),
        "{err}"
    );

    let unset = write(
        &dir,
        "env.yaml",
        "providers:\n  p: { kind: openai, api_key: \"${SWITCHYARD_TEST_SURELY_UNSET}\" }\nmodels: []\ntiers: {}\nrouting: { default: x }\n",
    );
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&unset)
        .env_remove("SWITCHYARD_TEST_SURELY_UNSET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2:31: providers.p.api_key: environment variable SWITCHYARD_TEST_SURELY_UNSET is not set"), "{err}");
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&unset)
        .env("SWITCHYARD_TEST_SURELY_UNSET", "sk-x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":4:1: tiers: define at least one tier"),
        "the variable is set now, so the next error shows: {err}"
    );

    let out = bin()
        .args(["check", "--config", "/nonexistent/switchyard.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}

#[test]
fn route_prints_the_decision() {
    let out = bin()
        .args([
            "route",
            "--config",
            "config/demo.yaml",
            "Summarize this report in bullet points",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tier      budget")
            && text.contains("route     rules:summarize")
            && text.contains("layer     rules"),
        "{text}"
    );
}

#[test]
fn route_explains_semantic_scores_and_check_rejects_a_missing_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
providers:
  sim: { kind: simulated }
models: [{ name: a, provider: sim }, { name: b, provider: sim }]
tiers: { small: { models: [a] }, big: { models: [b] } }
routing:
  default: small
  semantic:
    embedder: { kind: hashed-ngrams }
    threshold: 0.2
    utterances:
      small: ["translate this sentence into French"]
      big: ["prove this theorem rigorously"]
"#;
    let path = write(&dir, "sem.yaml", yaml);
    let out = bin()
        .arg("route")
        .arg("--config")
        .arg(&path)
        .arg("can you prove the theorem")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("layer     semantic") && text.contains("tier      big"),
        "{text}"
    );
    assert!(
        text.contains("hashed-ngrams embedder, 2 utterances"),
        "{text}"
    );
    assert!(
        text.contains("<- chosen") && text.lines().any(|l| l.trim_start().starts_with("small")),
        "{text}"
    );

    let missing = write(
        &dir,
        "static.yaml",
        &yaml.replace(
            "embedder: { kind: hashed-ngrams }",
            "embedder: { kind: static, path: models/nope }",
        ),
    );
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("routing.semantic.embedder.path: model folder")
            && err.contains("does not exist"),
        "{err}"
    );

    std::fs::create_dir_all(dir.path().join("models/broken")).unwrap();
    std::fs::write(dir.path().join("models/broken/tokenizer.json"), "{not json").unwrap();
    let broken = write(
        &dir,
        "broken.yaml",
        &yaml.replace(
            "embedder: { kind: hashed-ngrams }",
            "embedder: { kind: static, path: models/broken }",
        ),
    );
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("routing.semantic.embedder") && err.contains("models/broken"),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", BAD_KEY);
    let out = bin()
        .arg("serve")
        .arg("--config")
        .arg(&bad)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers.sim.simulat: unknown field"));
}

fn sim_config(tier_for_summaries: &str) -> String {
    format!(
        r#"
providers:
  sim: {{ kind: simulated, simulate: {{ latency: 1ms, output_tokens: 3 }} }}
models:
  - {{ name: small, provider: sim }}
  - {{ name: big, provider: sim }}
tiers:
  budget: {{ models: [small] }}
  premium: {{ models: [big] }}
routing:
  default: premium
  rules:
    - {{ name: summarize, when: {{ keywords: [summarize] }}, tier: {tier_for_summaries} }}
"#
    )
}

/// A table that names no embedder gets the built-in model: the real server, with the demo
/// table's utterances and settings and no rules, routes paraphrases that share no words with any
/// utterance like the utterances they mean, with no model folder anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_model_routes_a_paraphrase_like_its_canonical_utterance() {
    let demo = std::fs::read_to_string("config/demo.yaml").unwrap();
    let start = demo.find("  semantic:\n").unwrap();
    let end = demo[start..].find("\n\n").map_or(demo.len(), |e| start + e);
    let semantic = &demo[start..end];
    assert!(!semantic.contains("embedder"), "the demo names no embedder");
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
providers:
  sim: {{ kind: simulated, simulate: {{ latency: 1ms }} }}
models: [{{ name: small, provider: sim }}, {{ name: medium, provider: sim }}, {{ name: large, provider: sim }}]
tiers: {{ budget: {{ models: [small] }}, mid: {{ models: [medium] }}, premium: {{ models: [large] }} }}
routing:
  default: mid
{semantic}
"#
    );
    let path = write(&dir, "sem.yaml", &yaml);
    let b = Binary::serve(&path, &[]);
    let route = |prompt: &'static str| {
        let url = b.url("/v1/chat/completions");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&chat_body("auto", prompt))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let h = resp.headers();
            h["x-switchyard-route"].to_str().unwrap().to_string()
        }
    };
    for (canonical, paraphrase, tier) in [
        (
            "summarize this text",
            "give me the gist of this email thread",
            "budget",
        ),
        (
            "assess whether this evidence supports a causal claim",
            "Does this study really show that coffee makes people live longer?",
            "premium",
        ),
    ] {
        let want = format!("semantic:{tier}@");
        let r = route(canonical).await;
        assert!(r.starts_with(&want), "{canonical}: {r}");
        let r = route(paraphrase).await;
        assert!(r.starts_with(&want), "{paraphrase}: {r}");
    }

    let out = bin()
        .args(["route", "--config"])
        .arg(&path)
        .arg("give me the gist of this email thread")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("builtin embedder") && text.contains("tier      budget"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_valid_file_and_keeps_serving_on_an_invalid_one() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "gw.yaml", &config_yaml(&mock.url(), ""));
    let b = Binary::serve(&path, &[]);
    assert_eq!(route_of(&b, "please summarize").await, "budget");

    // A stream in flight across the reload keeps going on the config it started with.
    let gate = mock.held_stream("cheap-up", 2);
    let in_flight = spawn_stream(b.url("/v1/chat/completions"), "summarize");
    mock.state.stream_started.notified().await;

    std::fs::write(
        &path,
        config_yaml(&mock.url(), "").replace("tier: budget }", "tier: premium }"),
    )
    .unwrap();
    b.signal("HUP");
    wait_for(
        "the reload to take effect",
        Duration::from_secs(10),
        || async {
            let tier = route_of(&b, "please summarize").await;
            if tier == "premium" {
                Ok(())
            } else {
                Err(format!("routed to {tier}"))
            }
        },
    )
    .await;
    gate.notify_one();
    let streamed = in_flight.await.unwrap();
    assert!(
        streamed.ends_with("data: [DONE]\n\n") && streamed.contains(r#""content":" mock""#),
        "{streamed}"
    );

    // An invalid file is rejected with the message `check` prints, and the old config keeps serving.
    std::fs::write(&path, BAD_KEY).unwrap();
    let expected = String::from_utf8_lossy(
        &bin()
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap()
            .stderr,
    )
    .to_string();
    let first_line = expected
        .trim_start_matches("error: ")
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first_line.contains("unknown field `simulat`"),
        "{first_line}"
    );
    b.signal("HUP");
    eventually(
        &format!("the rejection logged: {first_line}"),
        Duration::from_secs(10),
        || b.log_contains(&first_line),
    )
    .await;
    assert!(b.log_contains("config reload rejected"));
    assert_eq!(route_of(&b, "please summarize").await, "premium");
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_metric(
        &metrics,
        r#"switchyard_config_reloads_total{result="success"}"#,
        1.0,
    );
    assert_metric(
        &metrics,
        r#"switchyard_config_reloads_total{result="failure"}"#,
        1.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "gw.yaml", &sim_config("budget"));
    let b = Binary::serve(&path, &["--watch"]);
    assert_eq!(route_of(&b, "summarize it").await, "budget");
    // Write a new file and rename it over the old one, as editors do.
    let tmp = write(&dir, "gw.yaml.tmp", &sim_config("premium"));
    std::fs::rename(&tmp, &path).unwrap();
    wait_for(
        "the file change to reload",
        Duration::from_secs(10),
        || async {
            let tier = route_of(&b, "summarize it").await;
            if tier == "premium" {
                Ok(())
            } else {
                Err(format!("routed to {tier}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_streams_then_exits() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "gw.yaml", &config_yaml(&mock.url(), ""));
    let mut b = Binary::serve(&path, &[]);
    let gate = mock.held_stream("cheap-up", 2);
    let in_flight = spawn_stream(b.url("/v1/chat/completions"), "hi");
    mock.state.stream_started.notified().await;
    b.signal("TERM");
    eventually("shutdown to begin", Duration::from_secs(10), || {
        b.log_contains("draining")
    })
    .await;
    // Still running: the stream holds it open. The listener stays open so that orchestrators see
    // readiness turn 503; new work is turned away with a 503 that clients retry elsewhere.
    assert!(b.child.try_wait().unwrap().is_none());
    let ready = reqwest::Client::new()
        .get(b.url("/health/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    let fresh = reqwest::Client::new()
        .post(b.url("/v1/chat/completions"))
        .json(&chat_body("auto", "hi"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fresh.status(),
        503,
        "new requests must not be served during the drain"
    );
    assert_eq!(fresh.headers()["connection"], "close");
    assert_eq!(
        mock.calls(),
        1,
        "a request turned away reached the upstream"
    );
    gate.notify_one();
    let text = in_flight.await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the in-flight stream was cut: {text}"
    );
    let status = wait_exit(&mut b, Duration::from_secs(10))
        .await
        .expect("did not exit after draining");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_shutdown() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "gw.yaml",
        &config_yaml(&mock.url(), "").replace("drain_timeout: 5s", "drain_timeout: 300ms"),
    );
    let mut b = Binary::serve(&path, &[]);
    let _held = mock.held_stream("cheap-up", 2);
    let _stuck = spawn_stream(b.url("/v1/chat/completions"), "hi");
    mock.state.stream_started.notified().await;
    b.signal("TERM");
    let status = wait_exit(&mut b, Duration::from_secs(10))
        .await
        .expect("a stuck stream kept the process alive past the drain timeout");
    assert!(status.success());
    assert!(b.log_contains("drain timeout reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_and_never_the_provider_key() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "gw.yaml", &config_yaml(&mock.url(), ""));
    let b = Binary::serve(&path, &["--log-format", "json"]);
    mock.on("strong-up", Reply::Json { status: 401, body: json!({"error": {"message": format!("Incorrect API key provided: {PROVIDER_KEY}")}}), headers: vec![] });
    let resp = reqwest::Client::new()
        .post(b.url("/v1/chat/completions"))
        .header("x-request-id", "log-test-1")
        .json(&chat_body("premium", "hi"))
        .send()
        .await
        .unwrap();
    // The provider rejected the gateway's key: a 502 (the client's own key was fine).
    assert_eq!(resp.status(), 502);
    assert!(!resp.text().await.unwrap().contains(PROVIDER_KEY));
    let line = wait_for(
        "a log line for the request",
        Duration::from_secs(10),
        || {
            let found = b
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("log-test-1"))
                .cloned();
            async move { found.ok_or("none yet") }
        },
    )
    .await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["request_id"], "log-test-1");
    assert_eq!(v["status"], 502);
    assert_eq!(v["tier"], "premium");
    assert_eq!(v["model"], "strong");
    assert_eq!(v["level"], "INFO");
    assert!(v["error"].as_str().unwrap().contains("[redacted]"));
    assert!(
        b.lines
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.contains(PROVIDER_KEY)),
        "the provider key reached a log line"
    );
}

/// The JSON log line of the request with this id, once it is written.
async fn log_line(b: &Binary, request_id: &str) -> Value {
    let needle = format!("\"request_id\":\"{request_id}\"");
    let what = format!("a log line for {request_id}");
    let l = wait_for(&what, Duration::from_secs(10), || {
        let found = b
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(&needle) && l.contains("chat completion"))
            .cloned();
        async move { found.ok_or("none yet") }
    })
    .await;
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_say_how_a_stream_ended_why_usage_is_estimated_and_where_the_time_went() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "gw.yaml", &config_yaml(&mock.url(), ""));
    let b = Binary::serve(&path, &["--log-format", "json"]);
    let send = |id: &'static str, body: Value| {
        reqwest::Client::new()
            .post(b.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(&body)
            .send()
    };
    let stream = json!({"model": "premium", "stream": true, "messages": [{"role": "user", "content": "hi"}]});

    // Cut off after "Hello": failed, billed from the streamed text, and the line says why.
    mock.on("strong-up", cut_stream("strong-up", 2));
    send("log-cut", stream.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v = log_line(&b, "log-cut").await;
    assert_eq!(v["status"], 502, "{v}");
    assert_eq!(v["stream_end"], "cut_off", "{v}");
    assert_eq!(v["cost_estimated"], true, "{v}");
    assert_eq!(v["estimated_reason"], "stream_cut_off", "{v}");

    // A whole stream from a provider that reports no usage.
    let mut events = stream_events("strong-up", false);
    events.retain(|e| !e.contains("\"usage\""));
    mock.on("strong-up", Reply::Stream { events, gate: None });
    send("log-nousage", stream.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v = log_line(&b, "log-nousage").await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["stream_end"], "complete", "{v}");
    assert_eq!(v["estimated_reason"], "no_usage_reported", "{v}");

    // Exact usage: nothing estimated, no reason.
    send("log-exact", stream.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v = log_line(&b, "log-exact").await;
    assert_eq!(v["cost_estimated"], false, "{v}");
    assert!(v.get("estimated_reason").is_none(), "{v}");
    assert_eq!(v["wait_ms"], 0.0, "{v}");

    // A client that gives up while the provider is still thinking: its wait is upstream time,
    // not the gateway's overhead, and the line names the model it was waiting on.
    mock.on("strong-up", Reply::Hang);
    let gave_up = reqwest::Client::new()
        .post(b.url("/v1/chat/completions"))
        .header("x-request-id", "log-left")
        .timeout(Duration::from_millis(800))
        .json(&chat_body("premium", "hi"))
        .send()
        .await;
    assert!(gave_up.is_err());
    let v = log_line(&b, "log-left").await;
    assert_eq!(v["status"], 499, "{v}");
    assert_eq!(v["model"], "strong", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    let (upstream, overhead) = (
        v["upstream_ms"].as_f64().unwrap(),
        v["overhead_ms"].as_f64().unwrap(),
    );
    assert!(upstream >= 700.0, "{v}");
    assert!(
        overhead < upstream / 4.0,
        "the upstream wait counted as overhead: {v}"
    );
}
