//! Team budgets end to end: a team's budget set through `/admin/teams` (admin key only) or
//! `switchyard teams`, stored beside the keys on SQLite and PostgreSQL, shared by the team's
//! keys on top of their own budgets, held by reservations under concurrent requests from two
//! keys, refused with a `budget_exceeded` naming the team, resumed from the spend log after a
//! restart, and shown in headers, metrics and the spend report.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (or `SWITCHYARD_TEST_POSTGRES`),
//! with their own tables, dropped at the end; without a server they are skipped, except under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, Mock, chat_body, eventually_async, postgres_url};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-key-for-tests-0001";
const CLIENT: &str = "static-client-key-0002";
const DEADLINE: Duration = Duration::from_secs(10);
/// The cost of one mock answer on `cheap` (11 prompt tokens, 7 completion tokens).
const ANSWER_USD: f64 = (11.0 * 0.15 + 7.0 * 0.6) / 1e6;

fn sqlite_url(dir: &tempfile::TempDir, file: &str) -> String {
    format!("sqlite://{}", dir.path().join(file).display())
}

/// A priced tier (the default) and a free one against the mock, no retries, keys in `db` (and
/// `table`), plus `rest` (a spend log).
fn yaml(mock: &Mock, db: &str, table: &str, rest: &str) -> String {
    format!(
        r#"
server:
  listen: "127.0.0.1:0"
  drain_timeout: 5s
  api_keys: ["{CLIENT}"]
  admin_keys: ["{ADMIN}"]
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
reliability: {{ retries: 0 }}
keys: {{ database: "{db}", table: {table}, refresh: 100ms }}
{rest}"#,
        url = mock.url(),
        pk = common::PROVIDER_KEY,
    )
}

fn spend_log(dir: &tempfile::TempDir) -> String {
    format!(
        "spend_log: {{ url: \"{}\", batch_size: 100, flush_interval: 20ms }}\n",
        sqlite_url(dir, "spend.db")
    )
}

async fn send(
    gw: &Gateway,
    bearer: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, gw.url(path))
        .bearer_auth(bearer);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    send(gw, ADMIN, method, path, text.as_deref()).await
}

async fn set_team(gw: &Gateway, name: &str, body: Value) -> Value {
    let (status, v) = admin(
        gw,
        reqwest::Method::PUT,
        &format!("/admin/teams/{name}"),
        Some(body),
    )
    .await;
    assert!(status == 200 || status == 201, "{status}: {v}");
    v
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

/// A 402 body that names the team, its budget, spend and reset.
fn assert_team_refusal(v: &Value, team: &str, budget: f64) {
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "budget_exceeded_error", "{v}");
    assert_eq!(v["error"]["team"], team, "{v}");
    assert_eq!(v["error"]["budget_usd"].as_f64(), Some(budget), "{v}");
    assert!(
        v["error"]["spend_usd"].is_number() && v["error"]["resets_at"].is_string(),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Team {team} has used its budget")),
        "{message}"
    );
}

/// The dollars and rows the spend log recorded for `team`.
async fn recorded(dir: &tempfile::TempDir, team: &str) -> (i64, f64) {
    let store = sqlx::SqlitePool::connect(&sqlite_url(dir, "spend.db"))
        .await
        .unwrap();
    let row = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM switchyard_spend WHERE team = ?",
    )
    .bind(team)
    .fetch_one(&store)
    .await
    .unwrap_or((0, 0.0));
    store.close().await;
    row
}

#[tokio::test]
async fn two_keys_of_a_team_overrun_its_budget_by_at_most_one_worst_case() {
    let mock = Mock::start().await;
    mock.slow(Duration::from_millis(30));
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&yaml(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        &spend_log(&dir),
    ))
    .await;
    // Room for about 20 answers in the team, 100 in each key.
    let budget = 20.0 * ANSWER_USD;
    let v = set_team(
        &gw,
        "etl",
        json!({"budget_usd": budget, "budget_period": "day"}),
    )
    .await;
    assert_eq!(v["budget_period"], "day");
    let keys = [
        issue(
            &gw,
            json!({"name": "loader", "team": "etl", "budget_usd": 100.0 * ANSWER_USD}),
        )
        .await,
        issue(
            &gw,
            json!({"name": "shaper", "team": "etl", "budget_usd": 100.0 * ANSWER_USD}),
        )
        .await,
    ];
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (client, url, key) = (
            client.clone(),
            gw.url("/v1/chat/completions"),
            keys[i % 2].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "auto", "max_tokens": 10, "stream": i % 5 == 0,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello there"}]});
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                refused += 1;
                assert_team_refusal(&serde_json::from_str(&text).unwrap(), "etl", budget);
            }
            s => panic!("unexpected status {s}: {text}"),
        }
    }
    assert_eq!(ok + refused, 300);
    let spent = common::wait_for("all 300 rows in the spend log", DEADLINE, || async {
        let (n, usd) = recorded(&dir, "etl").await;
        if n == 300 {
            Ok(usd)
        } else {
            Err(format!("{n} rows"))
        }
    })
    .await;
    // One reservation's bound: the prompt (with the gateway's margin) is under 40 tokens, the
    // answer at most max_tokens.
    let worst = (40.0 * 0.15 + 10.0 * 0.6) / 1e6;
    eprintln!(
        "team budget ${budget:.8}, recorded ${spent:.8} ({ok} answered, {refused} refused), worst case ${worst:.8}"
    );
    assert!(spent <= budget + worst + 1e-12, "spent {spent} of {budget}");
    assert!(ok >= 10, "only {ok} answered within a budget for about 20");

    // One at a time, either key is admitted while the team has room, then both are refused
    // under the team's name, though both have room of their own; their answers carry the team's
    // spend and budget beside the key's.
    let mut drained = false;
    for i in 0..30 {
        let r = chat_as(&gw, &keys[i % 2], &chat_body("auto", "hello")).await;
        if r.status() == 402 {
            drained = true;
            break;
        }
        assert_eq!(r.status(), 200);
    }
    assert!(drained, "the team's budget never ran out");
    for key in &keys {
        let r = chat_as(&gw, key, &chat_body("auto", "hello")).await;
        assert_eq!(r.status(), 402);
        let team_spend: f64 = header(&r, "x-switchyard-team-spend-usd")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            team_spend >= budget - 1e-12 && team_spend <= budget + worst + 1e-12,
            "{team_spend} of {budget}"
        );
        assert_eq!(
            header(&r, "x-switchyard-team-budget-usd"),
            Some(budget.to_string().as_str())
        );
        assert!(header(&r, "x-switchyard-key-spend-usd").is_some());
        assert_team_refusal(&r.json().await.unwrap(), "etl", budget);
    }
    // A free model is never blocked.
    let r = chat_as(&gw, &keys[0], &chat_body("free", "hello")).await;
    assert_eq!(r.status(), 200);

    // The gauge and the refusals name the team, never a key.
    let metrics = gw.metrics().await;
    let left = common::metric_value(
        &metrics,
        "switchyard_team_budget_remaining_usd{team=\"etl\"}",
    );
    assert!(left.abs() < 1e-12, "{left}");
    assert!(
        common::metric_value(
            &metrics,
            "switchyard_key_refusals_total{reason=\"team_budget\",team=\"etl\"}"
        ) >= f64::from(refused)
    );
    assert!(!metrics.contains("loader") && !metrics.contains("shaper"));

    // The admin API shows the period's spend; the report still breaks it down by team.
    let (status, v) = admin(&gw, reqwest::Method::GET, "/admin/teams/etl", None).await;
    assert_eq!(status, 200);
    let shown = v["spend_usd"].as_f64().unwrap();
    assert!(
        shown >= budget - 1e-12 && shown <= budget + worst + 1e-12,
        "{v}"
    );
    let (status, report) = admin(&gw, reqwest::Method::GET, "/admin/spend?since=1h", None).await;
    assert_eq!(status, 200);
    let line = report["by_team"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "etl")
        .cloned()
        .unwrap();
    assert!(
        line["cost_usd"].as_f64().unwrap() >= spent - 1e-12,
        "{line}"
    );

    // A larger budget admits the keys again at once; without a team budget only the keys'
    // own budgets hold them, and the team headers go.
    set_team(&gw, "etl", json!({"budget_usd": 2.0 * budget})).await;
    let r = chat_as(&gw, &keys[1], &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-switchyard-team-budget-usd"),
        Some((2.0 * budget).to_string().as_str())
    );
    let (status, v) = admin(&gw, reqwest::Method::DELETE, "/admin/teams/etl", None).await;
    assert_eq!(status, 200, "{v}");
    let r = chat_as(&gw, &keys[0], &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-switchyard-team-budget-usd").is_none());
    let (status, v) = admin(&gw, reqwest::Method::GET, "/admin/teams", None).await;
    assert_eq!((status, v["data"].as_array().map(Vec::len)), (200, Some(0)));
}

#[tokio::test]
async fn the_teams_api_is_for_admins_and_names_the_field_of_a_malformed_body() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&yaml(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        "",
    ))
    .await;
    let member = issue(&gw, json!({"name": "member", "team": "web"})).await;
    let body = r#"{"budget_usd": 5}"#;
    for key in [CLIENT, member.as_str()] {
        for (method, path, body) in [
            (reqwest::Method::GET, "/admin/teams", None),
            (reqwest::Method::PUT, "/admin/teams/web", Some(body)),
            (reqwest::Method::DELETE, "/admin/teams/web", None),
        ] {
            let (status, v) = send(&gw, key, method.clone(), path, body).await;
            assert_eq!(status, 403, "{method} {path}: {v}");
            assert_eq!(v["error"]["code"], "admin_key_required");
        }
    }
    let r = reqwest::get(gw.url("/admin/teams")).await.unwrap();
    assert_eq!(r.status(), 401);
    // Nothing was set by those.
    let (status, v) = admin(&gw, reqwest::Method::GET, "/admin/teams/web", None).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "team_not_found");

    for (body, field) in [
        (r#"{"budget_usd": "lots"}"#, "budget_usd"),
        (r#"{"budget_usd": -1}"#, "budget_usd"),
        (
            r#"{"budget_usd": 5, "budget_period": "fortnight"}"#,
            "budget_period",
        ),
        (r#"{"budget_usd": 5, "rpm": 10}"#, "rpm"),
        (r#"{"budget_period": "day"}"#, "budget_usd"),
        (r#"[5]"#, "body"),
        (r#"{"budget_usd": 5"#, "body"),
    ] {
        let (status, v) = send(
            &gw,
            ADMIN,
            reqwest::Method::PUT,
            "/admin/teams/web",
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["param"], field, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
    }
    let (status, v) = admin(
        &gw,
        reqwest::Method::PUT,
        "/admin/teams/web",
        Some(json!({"budget_usd": 0})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["budget_period"], "month");
    // A zero budget refuses priced requests at once.
    let r = chat_as(&gw, &member, &chat_body("auto", "hi")).await;
    assert_eq!(r.status(), 402);
    assert_team_refusal(&r.json().await.unwrap(), "web", 0.0);
    let (status, _) = admin(
        &gw,
        reqwest::Method::PUT,
        "/admin/teams/web",
        Some(json!({"budget_period": "week"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = admin(&gw, reqwest::Method::GET, "/admin/teams", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["name"], "web");
    assert_eq!(v["data"][0]["budget_period"], "week");
    assert_eq!(v["data"][0]["budget_usd"].as_f64(), Some(0.0));
    let (status, _) = admin(&gw, reqwest::Method::DELETE, "/admin/teams/nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_team_budget_on_postgres_holds_for_its_keys_and_a_change_elsewhere_within_a_second() {
    let Some(url) = postgres_url() else { return };
    let table = format!("keys_test_{}", uuid::Uuid::new_v4().simple());
    let teams = format!("{table}_teams");
    let mock = Mock::start().await;
    let gw = Gateway::start(&yaml(&mock, &url, &table, "")).await;
    let small =
        json!({"model": "auto", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]});
    // Room for two answers, whichever key sends them.
    let budget = 2.0 * ANSWER_USD;
    set_team(
        &gw,
        "ml",
        json!({"budget_usd": budget, "budget_period": "6h"}),
    )
    .await;
    let a = issue(&gw, json!({"name": "trainer", "team": "ml"})).await;
    let b = issue(
        &gw,
        json!({"name": "scorer", "team": "ml", "budget_usd": 1}),
    )
    .await;
    assert_eq!(chat_as(&gw, &a, &small).await.status(), 200);
    assert_eq!(chat_as(&gw, &b, &small).await.status(), 200);
    for key in [&a, &b] {
        let r = chat_as(&gw, key, &small).await;
        assert_eq!(r.status(), 402);
        assert_team_refusal(&r.json().await.unwrap(), "ml", budget);
    }
    // Stored in the teams table beside the keys table.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, f64, String)> = sqlx::query_as(&format!(
        "SELECT name, budget_usd, budget_period FROM {teams}"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![("ml".to_string(), budget, "6h".to_string())]);

    // Another process raises the budget through the database: this gateway admits within 1 s.
    let other = switchyard::keys::Keys::open(
        &switchyard::config::spend_log::Target::Postgres(url.clone()),
        &table,
        false,
    )
    .unwrap();
    let change = switchyard::keys::TeamChange::parse(&json!({"budget_usd": 1})).unwrap();
    other.set_team("ml", &change).await.unwrap();
    let changed = Instant::now();
    eventually_async(
        "the raised budget reaches the gateway",
        Duration::from_secs(1),
        || {
            let (gw, a, small) = (&gw, a.clone(), small.clone());
            async move { chat_as(gw, &a, &small).await.status() == 200 }
        },
    )
    .await;
    eprintln!("the team change took effect after {:?}", changed.elapsed());
    other.close().await;
    for t in [&table, &teams] {
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(&pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_teams_command_sets_a_budget_a_running_gateway_holds_and_a_restart_resumes() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(
        &mock,
        &sqlite_url(&dir, "keys.db"),
        "switchyard_keys",
        &spend_log(&dir),
    );
    let config = dir.path().join("gw.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("teams")
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
    let mut gw = Gateway::start(&yaml).await;
    let key = issue(&gw, json!({"name": "nightly", "team": "data"})).await;
    let small =
        json!({"model": "auto", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat_as(&gw, &key, &small).await.status(), 200);

    let (ok, _, err) = run(&["set", "data", "--budget-usd", "lots"]);
    assert!(!ok && err.contains("budget_usd"), "{err}");
    let (ok, _, err) = run(&["set", "data", "--budget-period", "week"]);
    assert!(!ok && err.contains("budget_usd"), "{err}");
    // The team's first answer is in the spend log before the team gets a budget.
    common::wait_for("the first spend row", DEADLINE, || async {
        let (n, usd) = recorded(&dir, "data").await;
        if n == 1 {
            Ok(usd)
        } else {
            Err(format!("{n} rows"))
        }
    })
    .await;
    // Room for two answers, one of which the team has spent already: the running gateway reads
    // that from the spend log when the budget arrives.
    let budget = 2.0 * ANSWER_USD;
    let (ok, out, err) = run(&[
        "set",
        "data",
        "--budget-usd",
        &budget.to_string(),
        "--budget-period",
        "week",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["budget_period"].as_str()),
        (Some("data"), Some("week"))
    );
    let set = Instant::now();
    common::wait_for(
        "the gateway to hold the team's budget",
        Duration::from_secs(1),
        || async {
            let left = common::metric(
                &gw.metrics().await,
                "switchyard_team_budget_remaining_usd{team=\"data\"}",
            );
            match left {
                Some(l) if (l - ANSWER_USD).abs() < 1e-12 => Ok(()),
                other => Err(format!("{other:?} left")),
            }
        },
    )
    .await;
    eprintln!(
        "the team set from the command held after {:?}",
        set.elapsed()
    );
    let (ok, out, _) = run(&["list"]);
    assert!(ok && out.contains("data") && out.contains("/week"), "{out}");
    let (ok, out, _) = run(&["show", "data"]);
    assert!(ok && out.contains("budget_usd"), "{out}");
    let r = chat_as(&gw, &key, &small).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-switchyard-team-budget-usd"),
        Some(budget.to_string().as_str())
    );
    let r = chat_as(&gw, &key, &small).await;
    assert_eq!(
        r.status(),
        402,
        "a budget for two answers let a third through"
    );
    assert_team_refusal(&r.json().await.unwrap(), "data", budget);
    // Both answers are in the spend log before the restart.
    common::wait_for("the spend rows", DEADLINE, || async {
        let (n, usd) = recorded(&dir, "data").await;
        if (usd - budget).abs() < 1e-12 {
            Ok(())
        } else {
            Err(format!("{n} rows, ${usd}"))
        }
    })
    .await;
    gw.shutdown();
    (&mut gw.handle).await.unwrap().unwrap();

    let gw = Gateway::start(&yaml).await;
    let r = chat_as(&gw, &key, &small).await;
    assert_eq!(r.status(), 402, "a restart forgot the team's spend");
    assert_team_refusal(&r.json().await.unwrap(), "data", budget);

    let (ok, out, _) = run(&["remove", "data"]);
    assert!(ok && out.contains("data"), "{out}");
    eventually_async(
        "the removal to reach the gateway",
        Duration::from_secs(1),
        || {
            let (gw, key, small) = (&gw, key.clone(), small.clone());
            async move { chat_as(gw, &key, &small).await.status() == 200 }
        },
    )
    .await;
    let (ok, _, err) = run(&["show", "data"]);
    assert!(!ok && err.contains("no team named"), "{err}");
}
