//! The commands' output: a closed pipe (`switchyard check | head -1`) is a normal exit, and
//! `route` and `report` do not need the variables of the parts of the file they do not use,
//! while `check` and `serve` still refuse them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

/// Runs the command with stdout a pipe nobody reads any more: its first write fails with EPIPE.
/// (`std::io::pipe` is Rust 1.87; only this test needs it, the crate itself builds with 1.85.)
#[allow(clippy::incompatible_msrv)]
fn into_closed_pipe(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap()
}

fn assert_quiet_success(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {err}",
        out.status
    );
}

#[tokio::test]
async fn a_closed_pipe_is_a_normal_exit() {
    let mut check = bin();
    check.args(["check", "--config", "config/demo.yaml"]);
    assert_quiet_success("check", &into_closed_pipe(check));

    let mut route = bin();
    route.args([
        "route",
        "--config",
        "config/demo.yaml",
        "Summarize this memo in bullet points",
    ]);
    assert_quiet_success("route", &into_closed_pipe(route));

    let dir = tempfile::tempdir().unwrap();
    let url = spend_log_with_a_row(&dir).await;
    for format in ["table", "csv", "json"] {
        let mut report = bin();
        report.args(["report", "--database", &url, "--format", format]);
        assert_quiet_success(
            &format!("report --format {format}"),
            &into_closed_pipe(report),
        );
    }
    // The same output to a reader is all there.
    let out = bin()
        .args(["report", "--database", &url, "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("tier,budget,1,"));
}

const UNSET_PROVIDERS: &str = r#"
server:
  listen: "127.0.0.1:0"
  api_keys: ["${SWITCHYARD_CLI_TEST_UNSET_GATEWAY_KEY}"]
providers:
  openai: { kind: openai, api_key: "${SWITCHYARD_CLI_TEST_UNSET_OPENAI}" }
  anthropic: { kind: anthropic, api_key: "${SWITCHYARD_CLI_TEST_UNSET_ANTHROPIC}" }
  vllm: { kind: openai, base_url: "${SWITCHYARD_CLI_TEST_UNSET_VLLM_URL}" }
models:
  - { name: mini, provider: openai, model: gpt-4o-mini }
  - { name: sonnet, provider: anthropic, model: claude-sonnet-4-5 }
  - { name: local, provider: vllm, model: llama }
tiers:
  budget: { models: [local, mini] }
  mid: { models: [sonnet] }
routing:
  default: mid
  rules:
    - { name: summarize, when: { keywords: [summarize] }, tier: budget }
spend_log: { url: "SPEND_URL" }
"#;

/// A spend log with one row in it, written by a gateway.
async fn spend_log_with_a_row(dir: &tempfile::TempDir) -> String {
    let mock = common::Mock::start().await;
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let yaml = format!(
        "{}\nspend_log: {{ url: \"{url}\", flush_interval: 10ms }}\n",
        common::config_yaml(&mock.url(), "")
    );
    let mut gw = common::Gateway::start(&yaml).await;
    common::post(&gw, &common::chat_body("auto", "hi")).await;
    gw.shutdown();
    (&mut gw.handle).await.unwrap().unwrap();
    url
}

#[tokio::test]
async fn route_and_report_do_not_need_the_providers_variables() {
    let dir = tempfile::tempdir().unwrap();
    let db = spend_log_with_a_row(&dir).await;
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, UNSET_PROVIDERS.replace("SPEND_URL", &db)).unwrap();
    let run = |args: &[&str]| {
        bin()
            .args(args)
            .arg("--config")
            .arg(&path)
            .env_remove("SWITCHYARD_CLI_TEST_UNSET_OPENAI")
            .output()
            .unwrap()
    };

    let out = run(&["route", "please summarize this"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tier      budget"), "{text}");
    assert!(text.contains("route     rules:summarize"), "{text}");
    assert!(
        err.contains("not needed to route")
            && err.contains("SWITCHYARD_CLI_TEST_UNSET_OPENAI (providers.openai)")
            && err.contains("SWITCHYARD_CLI_TEST_UNSET_VLLM_URL (providers.vllm)"),
        "{err}"
    );

    let out = run(&["report", "--since", "1h", "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("total,total,1,"));

    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SWITCHYARD_CLI_TEST_UNSET_GATEWAY_KEY is not set"),
        "check must refuse unset variables: {err}"
    );
    let out = run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not set"));
}

#[test]
fn check_rejects_an_empty_gateway_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        "server:\n  api_keys: [\"${SWITCHYARD_CLI_TEST_UNSET_KEY:-}\"]\nproviders: { s: { kind: simulated } }\nmodels: [{ name: m, provider: s }]\ntiers: { t: { models: [m] } }\nrouting: { default: t }\n",
    )
    .unwrap();
    let out = bin()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env_remove("SWITCHYARD_CLI_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:14: server.api_keys[0]: a key must not be empty",
            path.display()
        )),
        "{err}"
    );
}
