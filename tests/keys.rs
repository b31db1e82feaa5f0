//! Virtual keys end to end: issued through `/admin/keys` (admin key only) or `switchyard keys`,
//! stored as hashes on SQLite and PostgreSQL, refused once revoked, kept within their tiers
//! (fallbacks included), their budgets held by reservations under 500 concurrent requests, their
//! rate limits answered with 429 and OpenAI's headers, and their spend reported by key and team.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (or `SWITCHYARD_TEST_POSTGRES`),
//! each with its own key table, dropped at the end. Without a server they are skipped, except
//! under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, Mock, Reply, chat_body, config_yaml, eventually_async, postgres_url};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-key-for-tests-0001";
const CLIENT: &str = "static-client-key-0002";
const DEADLINE: Duration = Duration::from_secs(10);

fn server_keys() -> String {
    format!("  api_keys: [\"{CLIENT}\"]\n  admin_keys: [\"{ADMIN}\"]")
}

fn sqlite_url(dir: &tempfile::TempDir, file: &str) -> String {
    format!("sqlite://{}", dir.path().join(file).display())
}

/// A gateway with no retries and its keys in a fresh SQLite file (the mock, the folder and the
/// gateway; the folder lives as long as the test holds it).
async fn without_retries_on_sqlite() -> (Mock, tempfile::TempDir, Gateway) {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml_with_keys(&mock, &sqlite_url(&dir, "keys.db"), "switchyard_keys", "");
    let gw = Gateway::start(&common::without_retries(&yaml)).await;
    (mock, dir, gw)
}

/// The base table with keys in `db` (and `table`), plus `rest` (a spend log, routing changes).
fn yaml_with_keys(mock: &Mock, db: &str, table: &str, rest: &str) -> String {
    format!(
        "{}keys: {{ database: \"{db}\", table: {table}, refresh: 100ms }}\n{rest}",
        config_yaml(&mock.url(), &server_keys())
    )
}

async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, gw.url(path))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Issues a key through the admin API; returns its secret.
async fn issue(gw: &Gateway, body: Value) -> String {
    let (status, v) = admin(gw, reqwest::Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

async fn chat_as(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The admin API: only an admin key opens it; malformed bodies name their field; a key issued
/// there works at once, is refused with 401 once revoked; and its secret is nowhere at rest.
/// Returns the secrets it issued, for the caller to look for in its database.
async fn key_lifecycle(gw: &Gateway) -> Vec<String> {
    // A static client key and a virtual key are both refused by /admin/keys.
    let first = issue(gw, json!({"name": "first"})).await;
    for key in [CLIENT, first.as_str()] {
        let r = reqwest::Client::new()
            .get(gw.url("/admin/keys"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "admin_key_required");
    }
    let r = reqwest::get(gw.url("/admin/keys")).await.unwrap();
    assert_eq!(r.status(), 401);

    for (body, field) in [
        (json!({"name": "x", "rpm": "fast"}), "rpm"),
        (json!({"name": "x", "tiers": ["gold"]}), "tiers"),
        (json!({"name": "x", "budget_usd": -3}), "budget_usd"),
        (json!({"name": "x", "colour": "red"}), "colour"),
        (json!({"team": "t"}), "name"),
    ] {
        let (status, v) = admin(gw, reqwest::Method::POST, "/admin/keys", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["param"], field, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (status, v) = admin(
        gw,
        reqwest::Method::POST,
        "/admin/keys",
        Some(json!({"name": "first"})),
    )
    .await;
    assert_eq!(status, 409, "{v}");

    let secret = issue(
        gw,
        json!({"name": "svc-a", "team": "search", "metadata": {"owner": "ana"}, "rpm": 1000}),
    )
    .await;
    assert!(secret.starts_with("sk-sy-"));
    let ok = chat_as(gw, &secret, &chat_body("auto", "hello")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "x-ratelimit-limit-requests"), Some("1000"));
    assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), Some("999"));
    assert!(header(&ok, "x-ratelimit-reset-requests").is_some());

    let (status, shown) = admin(gw, reqwest::Method::GET, "/admin/keys/svc-a", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["team"], "search");
    assert_eq!(shown["metadata"]["owner"], "ana");
    assert!(shown.get("key").is_none() && !shown.to_string().contains(&secret));

    let (status, list) = admin(gw, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret));

    // Disabled, then enabled again, then revoked for good.
    let (status, _) = admin(
        gw,
        reqwest::Method::PATCH,
        "/admin/keys/svc-a",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    let r = chat_as(gw, &secret, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "key_disabled");
    assert!(!v.to_string().contains(&secret));
    admin(
        gw,
        reqwest::Method::PATCH,
        "/admin/keys/svc-a",
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(
        chat_as(gw, &secret, &chat_body("auto", "hello"))
            .await
            .status(),
        200
    );
    let (status, _) = admin(gw, reqwest::Method::DELETE, "/admin/keys/svc-a", None).await;
    assert_eq!(status, 200);
    let r = chat_as(gw, &secret, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "key_revoked");

    // An unknown key of the same shape, and an expired one.
    let r = chat_as(
        gw,
        "sk-sy-000000000000000000000000000000000000000000000000",
        &chat_body("auto", "hi"),
    )
    .await;
    assert_eq!(r.status(), 401);
    let expired = issue(
        gw,
        json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let r = chat_as(gw, &expired, &chat_body("auto", "hi")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "key_expired");

    // No secret in the metrics.
    let metrics = gw.metrics().await;
    assert!(!metrics.contains(&secret) && !metrics.contains("sk-sy-"));
    vec![secret, first, expired]
}

fn assert_not_stored(bytes: &[u8], secrets: &[String]) {
    assert!(!bytes.is_empty());
    for s in secrets {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is stored in the key database"
        );
    }
}

#[tokio::test]
async fn keys_on_sqlite_are_managed_by_admins_hashed_at_rest_and_refused_once_revoked() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let gw = Gateway::start(&yaml_with_keys(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        "",
    ))
    .await;
    let secrets = key_lifecycle(&gw).await;
    // The file and its write-ahead log, where fresh rows live until a checkpoint.
    let mut all = std::fs::read(&path).unwrap_or_default();
    all.extend(std::fs::read(dir.path().join("keys.db-wal")).unwrap_or_default());
    assert_not_stored(&all, &secrets);
}

#[tokio::test]
async fn keys_on_postgres_are_hashed_at_rest_and_a_revocation_elsewhere_holds_within_a_second() {
    let Some(url) = postgres_url() else { return };
    let table = format!("keys_test_{}", uuid::Uuid::new_v4().simple());
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml_with_keys(&mock, &url, &table, "")).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let secrets = key_lifecycle(&gw).await;
    let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT CAST(t.* AS TEXT) FROM {table} t"))
        .fetch_all(&pool)
        .await
        .unwrap();
    let dump: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    assert_eq!(dump.len(), 3, "{dump:?}");
    assert_not_stored(dump.join("\n").as_bytes(), &secrets);

    // Another process revokes a key through the database: this gateway refuses it within 1 s.
    let secret = issue(&gw, json!({"name": "elsewhere"})).await;
    assert_eq!(
        chat_as(&gw, &secret, &chat_body("auto", "hi"))
            .await
            .status(),
        200
    );
    let other = switchyard::keys::Keys::open(
        &switchyard::config::spend_log::Target::Postgres(url.clone()),
        &table,
        false,
    )
    .unwrap();
    other.revoke("elsewhere").await.unwrap();
    let revoked = Instant::now();
    eventually_async(
        "the revocation reaches the gateway",
        Duration::from_secs(1),
        || {
            let (gw, secret) = (&gw, secret.clone());
            async move {
                chat_as(gw, &secret, &chat_body("auto", "hi"))
                    .await
                    .status()
                    == 401
            }
        },
    )
    .await;
    eprintln!("revocation took effect after {:?}", revoked.elapsed());
    other.close().await;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
}

/// The cost of one mock answer on `cheap` (11 prompt tokens, 7 completion tokens).
const ANSWER_USD: f64 = (11.0 * 0.15 + 7.0 * 0.6) / 1e6;

#[tokio::test]
async fn five_hundred_concurrent_requests_overrun_a_budget_by_at_most_one_worst_case() {
    let mock = Mock::start().await;
    mock.slow(Duration::from_millis(30));
    let dir = tempfile::tempdir().unwrap();
    let spend = format!(
        "spend_log: {{ url: \"{}\", batch_size: 100, flush_interval: 20ms }}\n",
        sqlite_url(&dir, "spend.db")
    );
    let gw = Gateway::start(&yaml_with_keys(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        &spend,
    ))
    .await;
    let budget = 20.0 * ANSWER_USD;
    let secret = issue(
        &gw,
        json!({"name": "batch", "team": "etl", "budget_usd": budget, "budget_period": "day", "tiers": ["budget"]}),
    )
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (client, url, secret) = (
            client.clone(),
            gw.url("/v1/chat/completions"),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let stream = i % 5 == 0;
            let body = json!({"model": "auto", "max_tokens": 10, "stream": stream,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello there"}]});
            let r = client
                .post(url)
                .bearer_auth(secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                refused += 1;
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], "budget_exceeded");
                assert_eq!(v["error"]["budget_usd"].as_f64(), Some(budget));
                assert!(
                    v["error"]["spend_usd"].is_number() && v["error"]["resets_at"].is_string(),
                    "{v}"
                );
            }
            s => panic!("unexpected status {s}: {text}"),
        }
    }
    assert_eq!(ok + refused, 500);
    // Reserved at the worst case (100 output tokens), each settled at its real cost.
    // An upper bound of one reservation: the prompt (with the gateway's margin) is well under
    // 40 tokens, the answer at most max_tokens.
    let worst = (40.0 * 0.15 + 10.0 * 0.6) / 1e6;
    // Every request leaves a spend row; sum what the log recorded for the key.
    let store = sqlx::SqlitePool::connect(&sqlite_url(&dir, "spend.db"))
        .await
        .unwrap();
    let recorded = common::wait_for("all 500 rows in the spend log", DEADLINE, || {
        let store = store.clone();
        async move {
            let (n, usd): (i64, f64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM switchyard_spend WHERE key_name = 'batch' AND team = 'etl'",
            )
            .fetch_one(&store)
            .await
            .map_err(|e| e.to_string())?;
            if n == 500 { Ok(usd) } else { Err(format!("{n} rows")) }
        }
    })
    .await;
    eprintln!(
        "budget ${budget:.8}, recorded ${recorded:.8} ({ok} answered, {refused} refused), worst case ${worst:.8}"
    );
    assert!(
        recorded <= budget + worst + 1e-12,
        "spent {recorded} of {budget}"
    );
    assert!(
        ok >= 10,
        "only {ok} requests were answered within a budget for about 20"
    );
    // The key's spend and budget are in every answer's headers; one at a time, requests go on
    // being admitted while there is room, then are refused.
    let mut spent_before = recorded;
    let mut refused_now = false;
    for _ in 0..10 {
        let r = chat_as(&gw, &secret, &chat_body("auto", "hello")).await;
        let status = r.status();
        let spent: f64 = header(&r, "x-switchyard-key-spend-usd")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            header(&r, "x-switchyard-key-budget-usd"),
            Some(budget.to_string().as_str())
        );
        if status == 402 {
            assert!(
                (spent - spent_before).abs() < 1e-9,
                "{spent} vs {spent_before}"
            );
            refused_now = true;
            break;
        }
        assert_eq!(status, 200);
        assert!((spent - spent_before - ANSWER_USD).abs() < 1e-9);
        spent_before = spent;
    }
    assert!(refused_now && spent_before <= budget + worst);

    // The report breaks spend down by key and team.
    let (status, report) = admin(&gw, reqwest::Method::GET, "/admin/spend?since=1h", None).await;
    assert_eq!(status, 200);
    let by_key = report["by_key"].as_array().unwrap();
    let line = by_key.iter().find(|l| l["name"] == "batch").unwrap();
    assert!(
        (line["cost_usd"].as_f64().unwrap() - recorded).abs() < 1e-9
            || line["cost_usd"].as_f64().unwrap() <= spent_before + 1e-9
    );
    assert!(
        report["by_team"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "etl")
    );
}

#[tokio::test]
async fn a_budget_limited_key_never_reaches_a_pricier_tier() {
    let (mock, _dir, gw) = without_retries_on_sqlite().await;
    let secret = issue(
        &gw,
        json!({"name": "cheap-only", "tiers": ["budget"], "budget_usd": 1}),
    )
    .await;
    // The budget tier fails: the fallback to premium is skipped, and the answer says so.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "down"}}),
            headers: vec![],
        },
    );
    let r = chat_as(&gw, &secret, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 500, "{:?}", r.headers());
    assert_eq!(header(&r, "x-switchyard-skipped-tiers"), Some("premium"));
    // A prompt the rules send to premium is answered on budget instead.
    let r = chat_as(&gw, &secret, &chat_body("auto", "prove that 2 is prime")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-tier"), Some("budget"));
    assert_eq!(header(&r, "x-switchyard-skipped-tiers"), Some("premium"));
    // Naming premium or its model is refused outright.
    for model in ["premium", "strong"] {
        let r = chat_as(&gw, &secret, &chat_body(model, "hello")).await;
        assert_eq!(r.status(), 403, "{model}");
    }
    assert_eq!(mock.calls_for("strong-up"), 0);
    // The same failure for an unrestricted key does fall back.
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "down"}}),
            headers: vec![],
        },
    );
    let r = chat_as(&gw, CLIENT, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.calls_for("strong-up"), 1);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_free_models_ignore_budgets() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A table with a free local tier beside the priced ones.
    let yaml = format!(
        r#"
server:
  listen: "127.0.0.1:0"
{keys}
providers:
  up: {{ kind: openai, base_url: "{url}", api_key: "{pk}" }}
models:
  - {{ name: cheap, provider: up, model: cheap-up, price: {{ input: 0.15, output: 0.6 }} }}
  - {{ name: local, provider: up, model: local-up, price: {{ input: 0, output: 0 }} }}
tiers:
  budget: {{ models: [cheap] }}
  free: {{ models: [local] }}
routing:
  default: budget
keys: {{ database: "{db}" }}
"#,
        keys = server_keys(),
        url = mock.url(),
        pk = common::PROVIDER_KEY,
        db = sqlite_url(&dir, "keys.db"),
    );
    let gw = Gateway::start(&yaml).await;
    let limited = issue(&gw, json!({"name": "slow", "rpm": 2, "tpm": 100000})).await;
    for left in ["1", "0"] {
        let r = chat_as(&gw, &limited, &chat_body("auto", "hi")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some(left));
        assert_eq!(header(&r, "x-ratelimit-limit-tokens"), Some("100000"));
    }
    let r = chat_as(&gw, &limited, &chat_body("auto", "hi")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    // A spent budget blocks priced models only.
    let broke = issue(&gw, json!({"name": "broke", "budget_usd": 0})).await;
    let r = chat_as(&gw, &broke, &chat_body("auto", "hi")).await;
    assert_eq!(r.status(), 402);
    let r = chat_as(&gw, &broke, &chat_body("free", "hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-key-budget-usd"), Some("0"));
}

#[tokio::test]
async fn the_keys_command_issues_lists_and_revokes() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(&config, config_yaml(&mock.url(), "")).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&[
        "create",
        "ci-bot",
        "--team",
        "infra",
        "--tiers",
        "budget",
        "--budget-usd",
        "5",
        "--rpm",
        "60",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let secret = v["key"].as_str().unwrap().to_string();
    assert_eq!(v["budget_period"], "month");
    // Beside the config, as documented, with only the hash in it.
    let bytes = std::fs::read(dir.path().join("keys.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&bytes).contains(&secret));
    let (ok, out, _) = run(&["list"]);
    assert!(
        ok && out.contains("ci-bot") && out.contains("infra") && !out.contains(&secret),
        "{out}"
    );
    let (ok, _, err) = run(&["update", "ci-bot", "--rpm", "fast"]);
    assert!(!ok && err.contains("rpm"), "{err}");
    let (ok, out, _) = run(&["revoke", "ci-bot"]);
    assert!(ok && out.contains("revoked ci-bot"), "{out}");
    let (ok, out, _) = run(&["show", "ci-bot", "--json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["revoked_at"].is_string());
}

#[tokio::test]
async fn a_budget_limited_key_is_not_escalated_by_the_cascade() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "routing:\n  default: budget\n  cascade: {{ from: budget, to: premium, escalate_on: [error, truncated] }}\nreliability: {{ retries: 0 }}\nkeys: {{ database: \"{}\" }}\n",
        sqlite_url(&dir, "keys.db")
    );
    let gw = Gateway::start(&common::base_yaml(&mock.url(), &server_keys(), &rest)).await;
    let secret = issue(&gw, json!({"name": "cheap-only", "tiers": ["budget"]})).await;
    let down = || Reply::Json {
        status: 500,
        body: json!({"error": {"message": "down"}}),
        headers: vec![],
    };
    mock.on("cheap-up", down());
    let r = chat_as(&gw, &secret, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 500);
    assert_eq!(header(&r, "x-switchyard-skipped-tiers"), Some("premium"));
    assert_eq!(mock.calls_for("strong-up"), 0);
    // Unrestricted, the same failure escalates.
    mock.on("cheap-up", down());
    let r = chat_as(&gw, CLIENT, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.calls_for("strong-up"), 1);
}

#[tokio::test]
async fn a_restart_resumes_budgets_from_the_spend_log_and_metrics_name_teams_only() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spend = format!(
        "spend_log: {{ url: \"{}\", flush_interval: 20ms }}\n",
        sqlite_url(&dir, "spend.db")
    );
    let yaml = yaml_with_keys(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        &spend,
    );
    let mut gw = Gateway::start(&yaml).await;
    // Room for two answers: the third request finds the budget spent.
    let budget = 2.0 * ANSWER_USD;
    let secret = issue(
        &gw,
        json!({"name": "nightly", "team": "data", "budget_usd": budget, "budget_period": "week"}),
    )
    .await;
    let small =
        json!({"model": "auto", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        assert_eq!(chat_as(&gw, &secret, &small).await.status(), 200);
    }
    let metrics = gw.metrics().await;
    let left = common::metric_value(
        &metrics,
        "switchyard_team_budget_remaining_usd{team=\"data\"}",
    );
    assert!(left.abs() < 1e-9, "{left}");
    assert_eq!(chat_as(&gw, &secret, &small).await.status(), 402);
    let metrics = gw.metrics().await;
    common::assert_metric(
        &metrics,
        "switchyard_key_refusals_total{reason=\"budget\",team=\"data\"}",
        1.0,
    );
    assert!(!metrics.contains("nightly") && !metrics.contains(&secret));
    gw.shutdown();
    (&mut gw.handle).await.unwrap().unwrap();

    let gw = Gateway::start(&yaml).await;
    let r = chat_as(&gw, &secret, &small).await;
    assert_eq!(r.status(), 402, "a restart forgot the spend");
    let spent: f64 = header(&r, "x-switchyard-key-spend-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!((spent - budget).abs() < 1e-9, "{spent}");
}

#[tokio::test]
async fn a_stream_cut_off_or_abandoned_settles_what_it_streamed() {
    let (mock, _dir, gw) = without_retries_on_sqlite().await;
    let secret = issue(
        &gw,
        json!({"name": "streamer", "budget_usd": 1, "max_parallel": 1}),
    )
    .await;
    let body = json!({"model": "auto", "stream": true, "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello"}]});
    let spent = |r: &reqwest::Response| -> f64 {
        header(r, "x-switchyard-key-spend-usd")
            .unwrap()
            .parse()
            .unwrap()
    };
    // Cut off after two chunks: billed for what was streamed, counted by switchyard.
    mock.on("cheap-up", common::cut_stream("cheap-up", 3));
    let r = chat_as(&gw, &secret, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(spent(&r), 0.0);
    let _ = r.text().await.unwrap();
    let after_cut = common::wait_for("the cut stream settles", DEADLINE, || {
        let gw = &gw;
        let secret = secret.clone();
        async move {
            let r = chat_as(gw, &secret, &chat_body("auto", "hi")).await;
            let s = spent(&r);
            // The plain answer after it adds ANSWER_USD; what is left is the stream's share.
            let stream_share = s - ANSWER_USD;
            if stream_share > 0.0 {
                Ok(stream_share)
            } else {
                Err(format!("spend {s}"))
            }
        }
    })
    .await;
    assert!(after_cut < 1e-4, "{after_cut}");
    // A stream the client abandons releases its parallel slot and settles too.
    let gate = mock.held_stream("cheap-up", 2);
    let r = chat_as(&gw, &secret, &body).await;
    assert_eq!(r.status(), 200);
    let busy = chat_as(&gw, &secret, &chat_body("auto", "hi")).await;
    assert_eq!(busy.status(), 429);
    drop(r);
    common::eventually_async("the abandoned stream frees its slot", DEADLINE, || {
        let (gw, secret) = (&gw, secret.clone());
        async move {
            chat_as(gw, &secret, &chat_body("auto", "hi"))
                .await
                .status()
                == 200
        }
    })
    .await;
    gate.notify_waiters();
}

#[tokio::test]
async fn a_key_store_named_in_the_config_that_cannot_be_read_opens_nothing() {
    let mock = Mock::start().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let yaml = format!(
        "{}keys: {{ database: \"postgres://postgres@127.0.0.1:{port}/test\" }}\n",
        config_yaml(&mock.url(), "")
    );
    let gw = Gateway::start(&yaml).await;
    let r = common::post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(mock.calls(), 0);
}

#[tokio::test]
async fn routing_rules_read_the_callers_team_and_metadata() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routing = r#"routing:
  default: budget
  counterfactual: premium
  rules:
    - { name: research-team, when: { key: { team: [research] } }, tier: premium }
    - { name: batch-jobs, when: { key: { metadata: { workload: batch } } }, tier: budget }
"#;
    let yaml = format!(
        "{}keys: {{ database: \"{}\", table: switchyard_keys, refresh: 100ms }}\n",
        common::base_yaml(&mock.url(), &server_keys(), routing),
        sqlite_url(&dir, "keys.db")
    );
    let gw = Gateway::start(&yaml).await;
    let research = issue(&gw, json!({"name": "lab", "team": "research"})).await;
    let batch = issue(
        &gw,
        json!({"name": "etl", "team": "data", "metadata": {"workload": "batch"}}),
    )
    .await;
    let hello = chat_body("auto", "hello");
    let r = chat_as(&gw, &research, &hello).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-tier"), Some("premium"));
    assert_eq!(
        header(&r, "x-switchyard-route"),
        Some("rules:research-team")
    );
    let r = chat_as(&gw, &batch, &hello).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), Some("rules:batch-jobs"));
    // A static key carries no team: the rules do not match and the default decides.
    let r = chat_as(&gw, CLIENT, &hello).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), Some("default"));
    assert_eq!(mock.calls_for("strong-up"), 1);
    assert_eq!(mock.calls_for("cheap-up"), 2);
}
