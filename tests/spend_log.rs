//! The spend log end to end: rows written to SQLite and to the local PostgreSQL, read back by the
//! report (library, `/admin/spend` and the real `switchyard report`), flushed on shutdown, and a
//! store that fails mid-run without failing a request or losing a row uncounted.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (or `SWITCHYARD_TEST_POSTGRES`),
//! each in its own table, dropped at the end. Without a server they are skipped, except under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use switchyard::cost::report::{Report, Since};
use switchyard::cost::spend::{Store, Target};

const DEADLINE: Duration = Duration::from_secs(20);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn spend_yaml(mock: &Mock, url: &str, table: &str, extra: &str) -> String {
    format!(
        "{}\nspend_log:\n  url: \"{url}\"\n  table: {table}\n  batch_size: 4\n  flush_interval: 20ms\n{extra}",
        config_yaml(&mock.url(), "")
    )
}

async fn wait_counter(what: &str, f: impl Fn() -> u64, want: u64) {
    wait_for(what, DEADLINE, || {
        let got = f();
        async move {
            if got == want {
                Ok(())
            } else {
                Err(format!("{got} != {want}"))
            }
        }
    })
    .await;
}

fn meta(prompt: &str, task: &str) -> Value {
    json!({"model": "auto", "metadata": {"task_type": task},
           "messages": [{"role": "user", "content": prompt}]})
}

/// Six requests of known cost: four on budget (two `chat`, one untyped, one stream), two on
/// premium (`math` by the reasoning rule, `extraction` by the task-type rule).
async fn known_traffic(gw: &Gateway) {
    for body in [
        meta("hello", "chat"),
        meta("hi again", "chat"),
        meta("prove it", "math"),
        meta("pull the fields out", "extraction"),
        chat_body("auto", "no task type"),
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    ] {
        let resp = post(gw, &body).await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
}

fn line<'a>(lines: &'a Value, name: &str) -> &'a Value {
    lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no line {name} in {lines}"))
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-12
}

/// Checks a report (as JSON) of `known_traffic` against hand-computed numbers.
fn check_report(r: &Value) {
    // Non-streaming answers: 11 in / 7 out; the stream: 11 in / 3 out. No cached price on the
    // harness's `cheap`, so cached tokens cost the input rate.
    let budget = 3.0 * (11.0 * 0.15 + 7.0 * 0.6) / 1e6 + (11.0 * 0.15 + 3.0 * 0.6) / 1e6;
    let budget_cf = 3.0 * 160e-6 + (11.0 * 5.0 + 3.0 * 15.0) / 1e6;
    let premium = 2.0 * 160e-6;
    let t = &r["total"];
    assert_eq!(t["requests"], 6, "{r}");
    assert_eq!(t["errors"], 0);
    assert_eq!(t["input_tokens"], 66);
    assert_eq!(t["output_tokens"], 38);
    assert_eq!(t["cached_tokens"], 15);
    assert!(close(&t["cost_usd"], budget + premium), "{t}");
    assert!(close(&t["counterfactual_usd"], budget_cf + premium), "{t}");
    assert!(close(&t["savings_usd"], budget_cf - budget), "{t}");
    let b = line(&r["by_tier"], "budget");
    assert_eq!(b["requests"], 4);
    assert!(close(&b["cost_usd"], budget));
    let p = line(&r["by_tier"], "premium");
    assert_eq!(
        (p["requests"].as_i64(), p["savings_pct"].as_f64()),
        (Some(2), Some(0.0))
    );
    assert_eq!(line(&r["by_model"], "cheap")["requests"], 4);
    assert_eq!(line(&r["by_task_type"], "chat")["requests"], 2);
    assert_eq!(line(&r["by_task_type"], "math")["requests"], 1);
    assert_eq!(line(&r["by_task_type"], "extraction")["requests"], 1);
    assert_eq!(line(&r["by_task_type"], "(none)")["requests"], 2);
}

async fn admin_spend(gw: &Gateway, since: &str) -> reqwest::Response {
    reqwest::get(gw.url(&format!("/admin/spend?since={since}")))
        .await
        .unwrap()
}

/// request_id, deployment, route, stream, status
type Row = (String, Option<String>, Option<String>, bool, i32);

/// Sends the known traffic to a gateway logging to `url`, then reads the report back through
/// `/admin/spend` and through the library with a fresh connection.
async fn round_trip(url: &str, table: &str) -> Value {
    let mock = Mock::start().await;
    let gw = Gateway::start(&spend_yaml(&mock, url, table, "")).await;
    known_traffic(&gw).await;
    let m = gw.state.metrics().spend_written.clone();
    wait_counter("rows written", || m.get(), 6).await;

    let api: Value = admin_spend(&gw, "1h").await.json().await.unwrap();
    check_report(&api);

    let target = Target::parse(url, Path::new("/")).unwrap();
    let store = Store::connect_lazy(&target, false).unwrap();
    let lib = Report::load(&store, table, &Since::parse("1h").unwrap())
        .await
        .unwrap();
    let lib = serde_json::to_value(&lib).unwrap();
    check_report(&lib);
    assert_eq!(lib["by_tier"], api["by_tier"]);
    assert_eq!(lib["by_task_type"], api["by_task_type"]);
    // Nothing in the future.
    let later = Report::load(&store, table, &Since::parse("2999-01-01").unwrap())
        .await
        .unwrap();
    assert_eq!(later.total.requests, 0);

    // The rows themselves: one per request id, deployment and route recorded.
    let rows: Vec<Row> = match &store {
        Store::Sqlite(p) => sqlx::query_as(&format!(
            "SELECT request_id, deployment, route, stream, status FROM {table} ORDER BY unix_ms"
        ))
        .fetch_all(p)
        .await
        .unwrap(),
        Store::Postgres(p) => sqlx::query_as(&format!(
            "SELECT request_id, deployment, route, stream, status FROM {table} ORDER BY unix_ms"
        ))
        .fetch_all(p)
        .await
        .unwrap(),
    };
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.0.starts_with("req_") && r.4 == 200));
    assert!(
        rows.iter().any(|r| r.1.as_deref() == Some("up/strong-up")
            && r.2.as_deref() == Some("rules:extraction"))
    );
    assert_eq!(rows.iter().filter(|r| r.3).count(), 1);
    store.close().await;
    lib
}

#[tokio::test]
async fn sqlite_rows_read_back_by_report_api_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("spend.db");
    let url = format!("sqlite://{}", db.display());
    let lib = round_trip(&url, "switchyard_spend").await;

    // The real binary, all three formats, over the same file.
    let run = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([
                "report",
                "--since",
                "1h",
                "--database",
                &url,
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    check_report(&json);
    assert_eq!(json["by_model"], lib["by_model"]);
    let csv = run("csv");
    assert!(csv.starts_with("group,name,requests,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("tier,budget,4,0,0,44,24,")),
        "{csv}"
    );
    let table = run("table");
    assert!(
        table.contains("counterfactual $") && table.contains("extraction"),
        "{table}"
    );

    // A bad --since and a missing database are clear errors, not panics or empty reports.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["report", "--since", "last tuesday", "--database", &url])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["report", "--database", "sqlite:///nonexistent/dir/spend.db"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[tokio::test]
async fn postgres_rows_read_back_by_report() {
    let Some(url) = postgres_url() else { return };
    let table = unique("spend_test");
    round_trip(&url, &table).await;
    let store = Store::connect_lazy(&Target::parse(&url, Path::new("/")).unwrap(), false).unwrap();
    if let Store::Postgres(p) = &store {
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(p)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn admin_spend_checks_since_auth_and_configuration() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let yaml = spend_yaml(&mock, &url, "t", "").replace(
        "drain_timeout: 5s",
        "drain_timeout: 5s\n  api_keys: [\"gw-key-123456\"]",
    );
    let gw = Gateway::start(&yaml).await;
    let client = reqwest::Client::new();
    let get = |q: &str, key: Option<&str>| {
        let mut r = client.get(gw.url(&format!("/admin/spend{q}")));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(get("?since=1h", None).await.unwrap().status(), 401);
    let bad = get("?since=fortnight", Some("gw-key-123456"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert_eq!(err["error"]["param"], "since");
    assert_eq!(err["error"]["code"], "invalid_since");
    let other = get("?from=1h", Some("gw-key-123456")).await.unwrap();
    assert_eq!(other.status(), 400);
    // The default period is 7 days; an empty log is a report of zeros.
    let ok: Value = get("", Some("gw-key-123456"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["total"]["requests"], 0);
    assert_eq!(ok["by_tier"], json!([]));

    // A request with a key records the key's last four characters, never the key.
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("gw-key-123456")
        .json(&json!({"model": "auto", "user": "alice", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = gw.state.metrics().spend_written.clone();
    wait_counter("row written", || m.get(), 1).await;
    let store = Store::connect_lazy(&Target::parse(&url, Path::new("/")).unwrap(), false).unwrap();
    let Store::Sqlite(p) = &store else { panic!() };
    let (key, caller): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT api_key, caller FROM t")
            .fetch_one(p)
            .await
            .unwrap();
    assert_eq!(
        (key.as_deref(), caller.as_deref()),
        (Some("…3456"), Some("alice"))
    );

    // A request refused for its body still names the key it was sent with; one refused for its
    // key writes no row at all (its caller is unknown).
    let bad = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("gw-key-123456")
        .header("content-type", "application/json")
        .body(r#"{"model": "auto", "messages": [{"role": "user", "content": "hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let refused = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("gw-wrong-key-1")
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    wait_counter("row written", || m.get(), 2).await;
    let rows: Vec<(Option<String>, i32)> =
        sqlx::query_as("SELECT api_key, status FROM t ORDER BY status")
            .fetch_all(p)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            (Some("…3456".to_string()), 200),
            (Some("…3456".to_string()), 400)
        ]
    );

    // Without a spend_log section the endpoint says so.
    let plain = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let resp = admin_spend(&plain, "1h").await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "spend_log_disabled");
}

#[tokio::test]
async fn queued_rows_are_written_on_graceful_shutdown() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    // Rows would wait a minute for their batch: only the shutdown flush can write them.
    let yaml =
        spend_yaml(&mock, &url, "t", "").replace("flush_interval: 20ms", "flush_interval: 60s");
    let mut gw = Gateway::start(&yaml).await;
    for _ in 0..3 {
        post(&gw, &chat_body("auto", "hello"))
            .await
            .text()
            .await
            .unwrap();
    }
    let m = gw.state.metrics();
    assert_eq!(m.spend_written.get(), 0);
    gw.shutdown();
    (&mut gw.handle).await.unwrap().unwrap();
    assert_eq!(gw.state.metrics().spend_written.get(), 3);
    let store = Store::connect_lazy(&Target::parse(&url, Path::new("/")).unwrap(), false).unwrap();
    let r = Report::load(&store, "t", &Since::parse("1h").unwrap())
        .await
        .unwrap();
    assert_eq!(r.total.requests, 3);
}

#[tokio::test]
async fn a_failing_sqlite_store_drops_counted_rows_and_never_fails_a_request() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let url = format!("sqlite://{}", path.display());
    let yaml = spend_yaml(&mock, &url, "t", "").replace("batch_size: 4", "batch_size: 1");
    let gw = Gateway::start(&yaml).await;
    let m = gw.state.metrics();
    let (written, dropped, failures) = (
        m.spend_written.clone(),
        m.spend_dropped.with_label_values(&["write_failed"]),
        m.spend_write_failures.clone(),
    );
    let send = |n: usize| {
        let gw = &gw;
        async move {
            for _ in 0..n {
                let resp = post(gw, &chat_body("auto", "hello")).await;
                assert_eq!(
                    resp.status(),
                    200,
                    "a store failure must never fail a request"
                );
                resp.text().await.unwrap();
            }
        }
    };
    send(2).await;
    wait_counter("first rows written", || written.get(), 2).await;

    // Break the store mid-run: every insert into the table now fails.
    let store = Store::connect_lazy(&Target::Sqlite(path.clone()), false).unwrap();
    let Store::Sqlite(p) = &store else { panic!() };
    sqlx::query("CREATE TRIGGER fail BEFORE INSERT ON t BEGIN SELECT RAISE(FAIL, 'broken by the test'); END")
        .execute(p)
        .await
        .unwrap();
    send(3).await;
    wait_counter("failed rows dropped", || dropped.get(), 3).await;
    // Each batch of one was tried three times before it was dropped.
    assert_eq!(failures.get(), 9);

    // Repair it: later rows are written again.
    sqlx::query("DROP TRIGGER fail").execute(p).await.unwrap();
    send(2).await;
    wait_counter("rows written after repair", || written.get(), 4).await;
    let r = Report::load(&store, "t", &Since::parse("1h").unwrap())
        .await
        .unwrap();
    assert_eq!(r.total.requests, 4);
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_spend_log_dropped_total{reason="write_failed"}"#,
        3.0,
    );
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        7.0,
    );
}

#[tokio::test]
async fn an_unreachable_store_and_a_full_queue_never_fail_a_request() {
    let mock = Mock::start().await;
    // The "database" is the mock's HTTP port, which answers PostgreSQL's handshake with an HTTP
    // error: every batch fails at once, three times (about 0.6 s with the pauses), while the queue
    // holds one row. (A refused connection would be retried by the pool for seconds instead.)
    let db = format!("postgres://postgres@{}/test", mock.addr);
    let yaml =
        spend_yaml(&mock, &db, "t", "  queue_size: 1\n").replace("batch_size: 4", "batch_size: 1");
    let gw = Gateway::start(&yaml).await;
    for _ in 0..6 {
        let resp = post(&gw, &chat_body("auto", "hello")).await;
        assert_eq!(resp.status(), 200);
    }
    let m = gw.state.metrics();
    let full = m.spend_dropped.with_label_values(&["queue_full"]);
    let failed = m.spend_dropped.with_label_values(&["write_failed"]);
    assert!(
        full.get() >= 1,
        "six rows into a queue of one behind a stuck writer"
    );
    // Every row is accounted for: none written, each dropped exactly once.
    wait_counter("every row accounted for", || full.get() + failed.get(), 6).await;
    assert_eq!(m.spend_written.get(), 0);
}

#[tokio::test]
async fn postgres_connections_killed_mid_run_lose_nothing() {
    let Some(base) = postgres_url() else { return };
    let table = unique("spend_kill");
    let app = unique("switchyard_test");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}application_name={app}");
    let mock = Mock::start().await;
    let gw = Gateway::start(&spend_yaml(&mock, &url, &table, "")).await;
    let written = gw.state.metrics().spend_written.clone();
    for _ in 0..3 {
        post(&gw, &chat_body("auto", "hello"))
            .await
            .text()
            .await
            .unwrap();
    }
    wait_counter("rows before the kill", || written.get(), 3).await;

    let admin = Store::connect_lazy(&Target::parse(&base, Path::new("/")).unwrap(), false).unwrap();
    let Store::Postgres(p) = &admin else { panic!() };
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(p)
    .await
    .unwrap();
    assert!(
        !killed.is_empty(),
        "the gateway's connection was found and killed"
    );

    for _ in 0..3 {
        let resp = post(&gw, &chat_body("auto", "hello")).await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    // The pool reconnects (on its own or on the writer's retry): all six rows arrive.
    wait_counter("rows after the kill", || written.get(), 6).await;
    let m = gw.state.metrics();
    assert_eq!(
        m.spend_dropped.with_label_values(&["write_failed"]).get(),
        0
    );
    let r = Report::load(&admin, &table, &Since::parse("1h").unwrap())
        .await
        .unwrap();
    assert_eq!(r.total.requests, 6);
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(p)
        .await
        .unwrap();
}

/// The table as versions before `stream_end` created it.
const OLD_TABLE: &str = "(unix_ms BIGINT NOT NULL, request_id TEXT NOT NULL, api_key TEXT, \
    caller TEXT, task_type TEXT, tier TEXT, model TEXT, deployment TEXT, route_layer TEXT, \
    route TEXT, stream BOOLEAN NOT NULL, prompt_tokens BIGINT NOT NULL, \
    completion_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL, \
    cost_usd DOUBLE PRECISION NOT NULL, counterfactual_usd DOUBLE PRECISION NOT NULL, \
    cost_estimated BOOLEAN NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, \
    upstream_ms DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL, status INTEGER NOT NULL)";

const OLD_ROW: &str = "(unix_ms, request_id, stream, prompt_tokens, completion_tokens, \
    cached_tokens, cost_usd, counterfactual_usd, cost_estimated, latency_ms, upstream_ms, \
    attempts, status) VALUES (1, 'req_from_before', FALSE, 1, 1, 0, 0.5, 0.5, FALSE, 1, 1, 1, 200)";

/// request_id, stream, stream_end, status, cost_estimated, completion_tokens
type StreamRow = (String, bool, Option<String>, i32, bool, i64);

/// A table from before `stream_end` existed: the gateway adds the column in place (the old row
/// stays, with NULL), then records how each stream ended, a cut-off one included.
async fn old_table_gains_stream_end(url: &str, table: &str) {
    let target = Target::parse(url, Path::new("/")).unwrap();
    let store = Store::connect_lazy(&target, true).unwrap();
    let create = format!("CREATE TABLE {table} {OLD_TABLE}");
    let insert = format!("INSERT INTO {table} {OLD_ROW}");
    match &store {
        Store::Sqlite(p) => {
            sqlx::query(&create).execute(p).await.unwrap();
            sqlx::query(&insert).execute(p).await.unwrap();
        }
        Store::Postgres(p) => {
            sqlx::query(&create).execute(p).await.unwrap();
            sqlx::query(&insert).execute(p).await.unwrap();
        }
    }

    let mock = Mock::start().await;
    let gw = Gateway::start(&spend_yaml(&mock, url, table, "")).await;
    let stream = |id: &str| {
        reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(&json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let body = stream("req_whole").await.unwrap().text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    // The provider ends the body cleanly after "Hello": the answer was cut off.
    mock.on("cheap-up", cut_stream("cheap-up", 2));
    let body = stream("req_cut").await.unwrap().text().await.unwrap();
    assert!(body.contains("Hello") && !body.contains("[DONE]"), "{body}");
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "req_plain")
        .json(&chat_body("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = gw.state.metrics().spend_written.clone();
    wait_counter("rows written", || m.get(), 3).await;

    let select = format!(
        "SELECT request_id, stream, stream_end, status, cost_estimated, completion_tokens FROM {table} ORDER BY unix_ms, request_id"
    );
    let rows: Vec<StreamRow> = match &store {
        Store::Sqlite(p) => sqlx::query_as(&select).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_as(&select).fetch_all(p).await.unwrap(),
    };
    let get = |id: &str| {
        rows.iter()
            .find(|r| r.0 == id)
            .cloned()
            .unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
    };
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(get("req_from_before").2, None, "the old row is kept");
    assert_eq!(get("req_plain").2, None, "not a stream");
    let whole = get("req_whole");
    assert_eq!(
        (whole.2.as_deref(), whole.3, whole.4),
        (Some("complete"), 200, false)
    );
    // Cut off: failed (502 in the account), billed from the text that was streamed.
    let cut = get("req_cut");
    assert_eq!(
        (cut.1, cut.2.as_deref(), cut.3),
        (true, Some("cut_off"), 502)
    );
    assert!(cut.4 && cut.5 >= 1, "{cut:?}");
    // A second start finds the column there and changes nothing.
    store.ensure_schema(table).await.unwrap();
    if let Store::Postgres(p) = &store {
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(p)
            .await
            .unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_table_from_before_stream_end_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    old_table_gains_stream_end(&url, "switchyard_spend").await;
}

#[tokio::test]
async fn postgres_table_from_before_stream_end_is_migrated_in_place() {
    let Some(url) = postgres_url() else { return };
    old_table_gains_stream_end(&url, &unique("spend_old")).await;
}
