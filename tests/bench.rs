//! `switchyard bench`, the real binary against loopback mocks whose answers are scripted right or
//! wrong per prompt: the outcomes file, the quality matrix and the routing map; resuming after a
//! kill; `--max-cost` stopping before it overspends; a provider failing mid-run (retried, or
//! recorded as failed, never scored); task-file errors; the rules it writes, included by a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Three models on one mock: prices in USD per million tokens. The mock reports 11 prompt tokens
/// (3 cached) and 7 completion tokens per answer, so a call costs 25 µ$ on `small`, 250 µ$ on
/// `medium` and 1,800 µ$ on `large`.
fn table(upstream: &str, extra: &str) -> String {
    format!(
        r#"
providers:
  up: {{ kind: openai, base_url: "{upstream}", api_key: "{PROVIDER_KEY}" }}
models:
  - {{ name: small, provider: up, model: small-up, price: {{ input: 1, output: 2 }} }}
  - {{ name: medium, provider: up, model: medium-up, price: {{ input: 10, output: 20 }} }}
  - {{ name: large, provider: up, model: large-up, price: {{ input: 100, output: 100 }} }}
tiers:
  budget: {{ models: [small] }}
  mid: {{ models: [medium] }}
  premium: {{ models: [large] }}
routing:
  default: mid
reliability: {{ retries: 0, cooldown: {{ enabled: false }} }}
{extra}
"#
    )
}

/// Two task types of 20 prompts: labels ("item N" → yes for even N) and sums ("N + N" → 2N).
fn task_file() -> String {
    let mut t = String::from(
        "tasks:\n  - name: labels\n    scorer: exact\n    system: \"Answer yes or no.\"\n    params: { max_tokens: 10, temperature: 0 }\n    prompts:\n",
    );
    for i in 0..20 {
        let r = if i % 2 == 0 { "yes" } else { "no" };
        t.push_str(&format!(
            "      - {{ id: l{i}, prompt: \"item {i}\", reference: {r} }}\n"
        ));
    }
    t.push_str("  - name: sums\n    scorer: { type: numeric }\n    params: { max_tokens: 10 }\n    prompts:\n");
    for i in 0..20 {
        t.push_str(&format!(
            "      - {{ id: s{i}, prompt: \"what is {i} + {i}?\", reference: {} }}\n",
            2 * i
        ));
    }
    t
}

/// The prompt's number and whether it is a sum.
fn prompt_of(body: &Value) -> (bool, usize) {
    let text = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let n: usize = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (text.starts_with("what is"), n)
}

fn says(model: &str, text: &str) -> Reply {
    Reply::Json {
        status: 200,
        body: completion(model, text),
        headers: vec![],
    }
}

/// `small` knows every label and half the sums, `medium` misses one sum (s7), `large` is always
/// right; wrong sums are off by one, wrong labels are "maybe".
fn scripted(mock: &Mock) {
    mock.respond(|body| {
        let model = body["model"].as_str()?.to_string();
        let (sum, n) = prompt_of(body);
        let right = match model.as_str() {
            "small-up" => !sum || n < 10,
            "medium-up" => !sum || n != 7,
            _ => true,
        };
        let text = match (sum, right) {
            (true, true) => format!("{n} + {n} = {}\n{}", 2 * n, 2 * n),
            (true, false) => format!("{}", 2 * n + 1),
            (false, true) => (if n % 2 == 0 { "Yes." } else { "no" }).to_string(),
            (false, false) => "maybe".into(),
        };
        Some(says(&model, &text))
    });
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(upstream: &str, extra: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("table.yaml"), table(upstream, extra)).unwrap();
        std::fs::write(dir.path().join("tasks.yaml"), task_file()).unwrap();
        Files { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn rows(&self) -> Vec<Value> {
        read_rows(&self.path("out.jsonl"))
    }
}

fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn bench_cmd(f: &Files, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    c.arg("bench").arg("--config").arg(f.path("table.yaml"));
    if !args.contains(&"--tasks") {
        c.arg("--tasks").arg(f.path("tasks.yaml"));
    }
    c.arg("--out")
        .arg(f.path("out.jsonl"))
        .arg("--no-progress")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn bench(f: &Files, args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(120), bench_cmd(f, args).output())
        .await
        .expect("bench finished in time")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn line_with<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{text}"))
}

#[tokio::test]
async fn the_matrix_and_the_map_come_from_the_scripted_answers() {
    let mock = Mock::start().await;
    scripted(&mock);
    let f = Files::new(&mock.url(), "");
    let rules = f.path("rules.yaml");
    let report = f.path("report.html");
    let run = bench(
        &f,
        &[
            "--bar",
            "0.8",
            "--write-rules",
            rules.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ran 120 of 120 calls") && run.stdout.contains("120 scored, 0 failed"),
        "{}",
        run.stdout
    );
    assert_eq!(mock.calls(), 120);

    // The outcomes file: one row per prompt, every model's score, real cost, latency, answer.
    let rows = f.rows();
    assert_eq!(rows.len(), 40);
    let s12 = rows.iter().find(|r| r["id"] == "s12").unwrap();
    assert_eq!(s12["category"], "sums");
    assert_eq!(
        s12["scores"],
        json!({"large": 1.0, "medium": 1.0, "small": 0.0})
    );
    assert_eq!(s12["responses"]["small"], "25");
    assert_eq!(s12["reference"], "24");
    let costs = &s12["costs_usd"];
    for (m, want) in [("small", 25e-6), ("medium", 250e-6), ("large", 1800e-6)] {
        let got = costs[m].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{m}: {got}");
        assert!(s12["latency_ms"][m].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(
        s12["messages"],
        json!([{"role": "user", "content": "what is 12 + 12?"}])
    );
    let l3 = rows.iter().find(|r| r["id"] == "l3").unwrap();
    assert_eq!(
        l3["messages"][0],
        json!({"role": "system", "content": "Answer yes or no."})
    );
    // The upstream got the task's parameters, and never the reference answer.
    let sent = mock.requests();
    let one = sent.iter().find(|r| r.body["model"] == "small-up").unwrap();
    assert_eq!(one.body["max_tokens"], 10);
    assert!(!one.body.to_string().contains("simulate_reference"));
    assert!(
        one.body.get("metadata").is_none(),
        "metadata is only forwarded with store"
    );

    // The matrix: labels 20/20 everywhere; sums small 10/20, medium 19/20, large 20/20.
    let out = &run.stdout;
    let sums = &out[out.find("sums (20 prompts)").unwrap()..];
    let small = line_with(sums, "small");
    assert!(small.contains("0.500  [0.299, 0.701]"), "{small}");
    assert!(small.contains("$0.02500"), "cost per 1k requests: {small}");
    assert!(
        line_with(sums, "medium").contains("0.950  [0.764, 0.991]"),
        "{sums}"
    );
    assert!(
        line_with(sums, "large").contains("1.000  [0.839, 1.000]"),
        "{sums}"
    );
    // Cheapest first.
    let labels = &out[out.find("labels (20 prompts)").unwrap()..];
    let order: Vec<usize> = ["small ", "medium ", "large "]
        .iter()
        .map(|m| labels.find(&format!("\n  {m}")).unwrap())
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{labels}");

    // The map at 0.8: labels on small (lower bound 0.839); sums on large, because medium's 19/20
    // has a lower bound of only 0.764.
    let map = &out[out.find("routing map").unwrap()..];
    assert!(line_with(map, "labels").contains("small"), "{map}");
    assert!(line_with(map, "sums").contains("large"), "{map}");
    assert!(line_with(map, "sums").contains("premium"), "{map}");

    // The rules, included by a table, route by task type.
    let written = std::fs::read_to_string(&rules).unwrap();
    let parsed: Vec<Value> = serde_saphyr::from_str(&written).unwrap();
    assert_eq!(
        parsed,
        vec![
            json!({"name": "bench-labels", "when": {"task_type": ["labels"]}, "tier": "budget"}),
            json!({"name": "bench-sums", "when": {"task_type": ["sums"]}, "tier": "premium"}),
        ]
    );
    let with_rules = table(&mock.url(), "").replace(
        "routing:\n  default: mid",
        "routing:\n  default: mid\n  rules_files: [rules.yaml]",
    );
    std::fs::write(f.path("routed.yaml"), with_rules).unwrap();
    let routed = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["route", "--config"])
        .arg(f.path("routed.yaml"))
        .arg("--messages")
        .arg({
            let p = f.path("req.json");
            std::fs::write(
                &p,
                r#"{"messages": [{"role": "user", "content": "item 4"}], "metadata": {"task_type": "labels"}}"#,
            )
            .unwrap();
            p
        })
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&routed.stdout);
    assert!(
        routed.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&routed.stderr)
    );
    assert!(text.contains("route     rules:bench-labels"), "{text}");
    assert!(line_with(&text, "tier").contains("budget"), "{text}");

    // The report opens offline: one page, inline SVG, nothing fetched.
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.matches("<svg").count() == 2);
    assert!(!page.contains("<script") && !page.contains(" src=") && !page.contains("href="));
    for m in ["small", "medium", "large", "labels", "sums"] {
        assert!(page.contains(m), "{m}");
    }

    // Run again: everything is there, nothing is called, the same matrix is printed.
    let again = bench(&f, &["--bar", "0.8"]).await;
    assert_eq!(again.code, Some(0));
    assert_eq!(mock.calls(), 120, "a finished run makes no call");
    assert!(
        again.stdout.contains("resumed: 40 prompts"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("0.500  [0.299, 0.701]"));

    // A prompt whose text changed is run again on every model, and its row replaced.
    let edited = task_file().replace("prompt: \"item 3\"", "prompt: \"item 3, again\"");
    std::fs::write(f.path("tasks.yaml"), edited).unwrap();
    let changed = bench(&f, &["--bar", "0.8"]).await;
    assert_eq!(changed.code, Some(0), "{}", changed.stdout);
    assert!(
        changed.stdout.contains("1 prompt changed"),
        "{}",
        changed.stdout
    );
    assert_eq!(mock.calls(), 123);
    let rows = f.rows();
    assert_eq!(rows.len(), 40);
    let l3 = rows.iter().find(|r| r["id"] == "l3").unwrap();
    assert_eq!(l3["messages"][1]["content"], "item 3, again");
}

#[tokio::test]
async fn a_killed_run_resumes_where_it_stopped() {
    let mock = Mock::start().await;
    scripted(&mock);
    // From the 11th call on, the upstream hangs: the run is stuck in its 11th call when killed.
    mock.fail_after(10, Reply::Hang);
    let f = Files::new(&mock.url(), "");
    let mut child = bench_cmd(&f, &["--concurrency", "1"]).spawn().unwrap();
    eventually(
        "the 11th call is in flight",
        Duration::from_secs(30),
        || mock.calls() == 11,
    )
    .await;
    // One call at a time, prompt by prompt, three models each: 10 answers are 3 whole prompts.
    eventually("3 rows on disk", Duration::from_secs(10), || {
        f.rows().len() == 3
    })
    .await;
    // One call at a time: nothing else was sent while the 11th hangs.
    assert_eq!(mock.calls(), 11, "--concurrency 1 keeps one call in flight");
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    assert_eq!(f.rows().len(), 3, "a killed run leaves whole rows only");

    mock.recover();
    let before = mock.calls();
    let run = bench(&f, &["--concurrency", "4"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("resumed: 3 prompts"), "{}", run.stdout);
    // 37 prompts left, each on 3 models; the prompt cut short by the kill runs again whole.
    assert_eq!(mock.calls() - before, 37 * 3);
    let rows = f.rows();
    assert_eq!(rows.len(), 40);
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no prompt twice");
    assert!(
        rows.iter()
            .all(|r| r["scores"].as_object().unwrap().len() == 3)
    );
}

#[tokio::test]
async fn max_cost_stops_before_overspending_and_a_rerun_resumes() {
    let mock = Mock::start().await;
    scripted(&mock);
    let f = Files::new(&mock.url(), "");
    // Only `large`: 1,800 µ$ a call; a call's worst case (o200k prompt estimate plus a margin,
    // and max_tokens 10 of output) is under 6,000 µ$.
    let limit = 0.01;
    for concurrency in ["1", "4"] {
        let _ = std::fs::remove_file(f.path("out.jsonl"));
        let before = mock.calls();
        let run = bench(
            &f,
            &[
                "--models",
                "large",
                "--max-cost",
                "0.01",
                "--concurrency",
                concurrency,
            ],
        )
        .await;
        assert_eq!(run.code, Some(4), "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("stopped by --max-cost $0.01000"),
            "{}",
            run.stdout
        );
        let rows = f.rows();
        let spent: f64 = rows
            .iter()
            .map(|r| r["costs_usd"]["large"].as_f64().unwrap())
            .sum();
        let calls = mock.calls() - before;
        assert_eq!(calls, rows.len(), "every call made is in the file");
        assert!(spent <= limit, "spent {spent} over {limit}");
        assert!(
            spent > limit - 0.006,
            "stopped too early: {calls} calls, {spent}"
        );
    }
    // A higher limit resumes: the rows already there are not paid for again.
    let done = f.rows().len();
    let before = mock.calls();
    let run = bench(&f, &["--models", "large", "--max-cost", "1"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(mock.calls() - before, 40 - done);
    assert_eq!(f.rows().len(), 40);
}

#[tokio::test]
async fn a_failing_provider_is_retried_or_recorded_as_failed_never_scored() {
    let mock = Mock::start().await;
    let flaky_once = Arc::new(AtomicUsize::new(0));
    let seen = flaky_once.clone();
    // `small` is down for the sums from s10 on (every call is a 500), and fails l0 once only.
    mock.respond(move |body| {
        let model = body["model"].as_str()?.to_string();
        let (sum, n) = prompt_of(body);
        let error = |status: u16| Reply::Json {
            status,
            body: json!({"error": {"message": "upstream exploded", "type": "server_error"}}),
            headers: vec![],
        };
        if model == "small-up" && sum && n >= 10 {
            return Some(error(500));
        }
        if model == "small-up" && !sum && n == 0 && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(error(503));
        }
        let text = if sum {
            format!("{}", 2 * n)
        } else if n % 2 == 0 {
            "yes".into()
        } else {
            "no".into()
        };
        Some(says(&model, &text))
    });
    let f = Files::new(&mock.url(), "");
    let run = bench(&f, &["--retries", "1"]).await;
    assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("110 scored, 10 failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("s10 on small: server_error: upstream exploded"),
        "{}",
        run.stdout
    );
    // Each failing call was tried twice (once, then one retry), the flaky one recovered.
    let small_calls = |pred: &dyn Fn(bool, usize) -> bool| {
        mock.requests()
            .iter()
            .filter(|r| r.body["model"] == "small-up")
            .filter(|r| {
                let (s, n) = prompt_of(&r.body);
                pred(s, n)
            })
            .count()
    };
    assert_eq!(small_calls(&|s, n| s && n >= 10), 20);
    assert_eq!(small_calls(&|s, n| !s && n == 0), 2);

    let rows = f.rows();
    let s15 = rows.iter().find(|r| r["id"] == "s15").unwrap();
    assert!(
        s15["scores"].get("small").is_none(),
        "a failed call has no score: {s15}"
    );
    assert_eq!(s15["scores"]["large"], 1.0);
    assert!(
        s15["failed"]["small"]
            .as_str()
            .unwrap()
            .contains("upstream exploded")
    );
    let l0 = rows.iter().find(|r| r["id"] == "l0").unwrap();
    assert_eq!(l0["scores"]["small"], 1.0, "retried and scored");
    assert!(l0.get("failed").is_none());
    let sums = &run.stdout[run.stdout.find("sums (20 prompts)").unwrap()..];
    let small = line_with(sums, "small");
    assert!(
        small.contains("  10  1.000") && small.contains("(10 failed, not scored)"),
        "{small}"
    );

    // The provider is back: a re-run makes exactly the failed calls, and nothing else.
    mock.respond(|body| {
        let model = body["model"].as_str()?.to_string();
        let (_, n) = prompt_of(body);
        Some(says(&model, &format!("{}", 2 * n)))
    });
    let before = mock.calls();
    let run = bench(&f, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(mock.calls() - before, 10);
    let rows = f.rows();
    assert_eq!(rows.len(), 40);
    let s15 = rows.iter().find(|r| r["id"] == "s15").unwrap();
    assert_eq!(s15["scores"]["small"], 1.0);
    assert!(s15.get("failed").is_none(), "{s15}");
}

#[tokio::test]
async fn a_judge_model_grades_answers() {
    let mock = Mock::start().await;
    mock.respond(|body| {
        let model = body["model"].as_str()?.to_string();
        let text = if model == "large-up" {
            // The judge: 10 for answers that mention Paris, 4 otherwise.
            let prompt = body["messages"][1]["content"].as_str().unwrap_or("");
            if prompt.contains("Assistant's answer:\nParis") {
                "10"
            } else {
                "4"
            }
        } else if model == "small-up" {
            "Paris"
        } else {
            "Lyon"
        };
        Some(says(&model, text))
    });
    let f = Files::new(&mock.url(), "");
    std::fs::write(
        f.path("tasks.yaml"),
        "tasks:\n  - name: capitals\n    scorer: { type: judge, model: large, rubric: \"Names the capital.\" }\n    prompts:\n      - { prompt: \"Capital of France?\", reference: Paris }\n      - { prompt: \"Where does the French president work?\" }\n",
    )
    .unwrap();
    let run = bench(&f, &["--models", "small,medium"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let rows = f.rows();
    assert_eq!(
        rows[0]["scores"],
        json!({"medium": 1.0 / 3.0, "small": 1.0})
    );
    // The judge's calls are paid for and shown apart from the models' own costs.
    assert!((rows[0]["costs_usd"]["small"].as_f64().unwrap() - 25e-6).abs() < 1e-12);
    assert!((rows[0]["judge_costs_usd"]["small"].as_f64().unwrap() - 1800e-6).abs() < 1e-12);
    assert!(run.stdout.contains("(judge $0.007200)"), "{}", run.stdout);
    let judged = mock
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == "large-up")
        .unwrap();
    let text = judged.body["messages"][1]["content"].as_str().unwrap();
    assert!(text.contains("Names the capital."), "{text}");
}

#[tokio::test]
async fn task_file_mistakes_are_config_errors_with_file_line_and_key() {
    let f = Files::new("http://127.0.0.1:9/v1", "");
    std::fs::write(
        f.path("tasks.yaml"),
        "tasks:\n  - name: a\n    prompts: [{ prompt: x, reference: y }]\n    scorer: fuzzy\n",
    )
    .unwrap();
    let run = bench(&f, &[]).await;
    assert_eq!(run.code, Some(2));
    let want = format!(
        "{}:4:13: tasks[0].scorer: unknown scorer `fuzzy` (known: exact, choice, numeric, regex, contains, json_schema, rouge_l, judge)",
        f.path("tasks.yaml").display()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    assert!(
        run.stderr.contains("    4 |     scorer: fuzzy"),
        "{}",
        run.stderr
    );

    std::fs::write(
        f.path("tasks.yaml"),
        "tasks:\n  - name: a\n    scorer: { type: judge, model: nobody }\n    prompts: [{ prompt: x }]\n",
    )
    .unwrap();
    let run = bench(&f, &[]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("tasks.yaml:3:")
            && run
                .stderr
                .contains("tasks[0].scorer.model: judge model `nobody`"),
        "{}",
        run.stderr
    );

    std::fs::write(
        f.path("big.jsonl"),
        "{\"task\": \"a\", \"scorer\": \"exact\", \"prompt\": \"x\", \"reference\": \"y\"}\n{\"task\": \"a\", \"prompt\": \"x\", \"referense\": \"y\"}\n",
    )
    .unwrap();
    let run = bench(&f, &["--tasks", f.path("big.jsonl").to_str().unwrap()]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("big.jsonl:2: ") && run.stderr.contains("unknown field `referense`"),
        "{}",
        run.stderr
    );
    assert!(
        !f.path("out.jsonl").exists(),
        "nothing runs on a bad task file"
    );
    std::fs::write(f.path("tasks.yaml"), task_file()).unwrap();
    let run = bench(&f, &["--models", "huge"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("unknown model `huge`"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_included_rules_file_is_checked_in_its_own_file() {
    let f = Files::new("http://127.0.0.1:9/v1", "");
    std::fs::write(
        f.path("rules.yaml"),
        "- name: a\n  when: { task_type: [x] }\n  tier: budget\n- name: b\n  when: { task_type: [y] }\n  tier: gold\n",
    )
    .unwrap();
    let t = table("http://127.0.0.1:9/v1", "").replace(
        "routing:\n  default: mid",
        "routing:\n  default: mid\n  rules_files: [rules.yaml]",
    );
    std::fs::write(f.path("table.yaml"), t).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(f.path("table.yaml"))
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rules.yaml:6:") && err.contains("[1].tier: unknown tier `gold`"),
        "{err}"
    );
}

#[tokio::test]
async fn the_demo_shows_a_meaningful_map_with_no_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("bench")
        .arg("--config")
        .arg(root.join("config/demo.yaml"))
        .arg("--tasks")
        .arg(root.join("config/bench-tasks.yaml"))
        .arg("--out")
        .arg(dir.path().join("demo.jsonl"))
        .args([
            "--models",
            "sim-mini,sim-large",
            "--concurrency",
            "32",
            "--no-progress",
        ])
        .env(
            "SWITCHYARD_SPEND_LOG",
            format!("sqlite://{}/spend.db", dir.path().display()),
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map = &text[text.find("routing map").unwrap()..];
    assert!(line_with(map, "sentiment").contains("sim-mini"), "{map}");
    assert!(line_with(map, "extraction").contains("sim-mini"), "{map}");
    assert!(line_with(map, "arithmetic").contains("sim-large"), "{map}");
    assert!(map.contains("everything on sim-large"), "{map}");
    assert_eq!(read_rows(&dir.path().join("demo.jsonl")).len(), 138);
}
