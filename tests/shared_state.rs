//! Shared state in Redis across replicas: two real gateway processes pointed at one Redis (each
//! test under its own key prefix) agree on cooldowns, a key's rpm limit, its revocation and its
//! budget, and a team's budget and its changes; a Redis that dies mid-run fails no request, turns readiness to `degraded`, and is used
//! again once a server is back on its port; `on_state_error: deny` refuses budget-limited keys
//! meanwhile.
//!
//! Uses the local Redis (or `SWITCHYARD_TEST_REDIS`) and `redis-server` for the test's own
//! server; without them the tests are skipped, except under CI, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Binary, Mock, RedisServer, Reply, base_yaml, chat_body, redis_prefix, redis_url};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-key-for-tests-0001";
const DEADLINE: Duration = Duration::from_secs(10);
/// What one mock answer costs on `cheap`: 11 prompt and 7 completion tokens.
const ANSWER_USD: f64 = (11.0 * 0.15 + 7.0 * 0.6) / 1e6;

const ROUTING: &str = "routing:\n  default: budget\nfallbacks:\n  budget: [premium]\n";

/// Writes gateway `name`'s config into `dir`: keys in the folder's shared SQLite file, its own
/// spend log, state in Redis at `redis` under `prefix`, plus `rest`. The timeout is generous: a
/// debug build under a burst of requests on a small machine can be slow to read Redis's answer,
/// and a call past the timeout is (rightly) decided on local state, which these tests are not
/// about; a stopped Redis refuses connections at once.
fn config(
    dir: &tempfile::TempDir,
    mock: &Mock,
    name: &str,
    redis: &str,
    prefix: &str,
    rest: &str,
) -> PathBuf {
    let keys = dir.path().join("keys.db");
    let spend = dir.path().join(format!("spend-{name}.db"));
    let yaml = format!(
        "{}keys: {{ database: \"sqlite://{}\" }}\nspend_log: {{ url: \"sqlite://{}\", batch_size: 100, flush_interval: 20ms }}\nstate: {{ backend: redis, url: \"{redis}\", prefix: \"{prefix}\", timeout: 5s }}\n{rest}",
        base_yaml(
            &mock.url(),
            &format!("  admin_keys: [\"{ADMIN}\"]"),
            ROUTING
        ),
        keys.display(),
        spend.display(),
    );
    let path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Two gateway processes on the same Redis prefix and key store.
fn pair(dir: &tempfile::TempDir, mock: &Mock, redis: &str, rest: &str) -> (Binary, Binary) {
    let prefix = redis_prefix();
    let a = Binary::serve(&config(dir, mock, "a", redis, &prefix, rest), &[]);
    let b = Binary::serve(&config(dir, mock, "b", redis, &prefix, rest), &[]);
    (a, b)
}

async fn issue(gw: &Binary, body: Value) -> String {
    let r = reqwest::Client::new()
        .post(gw.url("/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["key"].as_str().unwrap().to_string()
}

async fn chat(gw: &Binary, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Waits until `gw` knows the key (it re-reads the shared key store on its own schedule). A
/// gateway that has read no key yet serves everyone, so answering the key proves nothing until
/// it also refuses one it never issued.
async fn known_by(gw: &Binary, key: &str) {
    common::eventually_async("the other gateway to know the key", DEADLINE, || async {
        chat(gw, "sk-sy-never-issued", &chat_body("auto", "hi"))
            .await
            .status()
            == 401
            && chat(gw, key, &chat_body("auto", "hi")).await.status() == 200
    })
    .await;
}

async fn ready_status(gw: &Binary) -> String {
    match reqwest::get(gw.url("/health/ready")).await {
        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null)["status"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_deployment_cooled_by_one_gateway_is_skipped_by_the_other() {
    let Some(redis) = redis_url() else { return };
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(
        &dir,
        &mock,
        &redis,
        "reliability: { retries: 0, cooldown: { allowed_fails: 0, duration: 60s } }\n",
    );
    assert_eq!(ready_status(&a).await, "ready");
    let key = issue(&a, json!({"name": "plain"})).await;
    known_by(&b, &key).await;
    let before = mock.calls_for("cheap-up");
    mock.on(
        "cheap-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "upstream broke"}}),
            headers: vec![],
        },
    );
    let r = chat(&a, &key, &chat_body("auto", "hello")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-model").as_deref(), Some("strong"));
    assert_eq!(mock.calls_for("cheap-up"), before + 1);
    // B never called cheap itself, yet skips it: A's cooldown is in Redis.
    for _ in 0..3 {
        let r = chat(&b, &key, &chat_body("auto", "hello")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-switchyard-model").as_deref(), Some("strong"));
    }
    assert_eq!(
        mock.calls_for("cheap-up"),
        before + 1,
        "B called the cooled deployment"
    );
}

#[tokio::test]
async fn an_rpm_limit_shared_by_two_gateways_lets_exactly_its_number_through() {
    let Some(redis) = redis_url() else { return };
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir, &mock, &redis, "");
    // The limit is per wall-clock minute: a burst that straddled a minute's end would rightly be
    // let through twice, so such a round is run again with a fresh key (a burst takes a second
    // or two, so the second round cannot straddle one too).
    for round in 0..2 {
        let key = issue(&a, json!({"name": format!("rpm-{round}"), "rpm": 60})).await;
        // Listing models spends none of the key's requests. B knows the key once it answers it
        // and refuses one never issued (a gateway that has read no key yet serves everyone).
        common::eventually_async("B to know the key", DEADLINE, || async {
            let models = |k: String| {
                reqwest::Client::new()
                    .get(b.url("/v1/models"))
                    .bearer_auth(k)
                    .send()
            };
            models("sk-sy-never-issued".into()).await.unwrap().status() == 401
                && models(key.clone()).await.unwrap().status() == 200
        })
        .await;
        let started = switchyard_minute();
        let mut tasks = Vec::new();
        for i in 0..90 {
            let url = if i % 2 == 0 { a.url("") } else { b.url("") };
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(key)
                    .json(&chat_body("auto", "hi"))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        if switchyard_minute() != started {
            eprintln!("round {round} straddled a minute; running it again");
            continue;
        }
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!((ok, limited), (60, 30), "{statuses:?}");
        return;
    }
    panic!("two rounds straddled a minute");
}

/// The wall-clock minute the gateways count rpm in.
fn switchyard_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[tokio::test]
async fn a_key_revoked_through_one_gateway_is_refused_by_the_other_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir, &mock, &redis, "");
    let key = issue(&a, json!({"name": "soon-gone", "budget_usd": 5})).await;
    known_by(&b, &key).await;
    let r = reqwest::Client::new()
        .delete(a.url("/admin/keys/soon-gone"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let revoked = Instant::now();
    assert_eq!(chat(&a, &key, &chat_body("auto", "hi")).await.status(), 401);
    let took = common::wait_for("B to refuse the revoked key", DEADLINE, || async {
        let s = chat(&b, &key, &chat_body("auto", "hi")).await.status();
        if s == 401 {
            Ok(revoked.elapsed())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    eprintln!("B refused the revoked key {took:?} after the revocation");
    assert!(took < Duration::from_secs(1), "B took {took:?}");
}

/// Sets a team's budget through `gw`'s admin API.
async fn set_team(gw: &Binary, name: &str, body: Value) {
    let r = reqwest::Client::new()
        .put(gw.url(&format!("/admin/teams/{name}")))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// How long after `since` `gw` first answers `key` with `want`.
async fn answered_after(gw: &Binary, key: &str, want: u16, since: Instant) -> Duration {
    common::wait_for("B to see the team change", DEADLINE, || async {
        let s = chat(gw, key, &chat_body("auto", "hi")).await.status();
        if s == want {
            Ok(since.elapsed())
        } else {
            Err(s.to_string())
        }
    })
    .await
}

#[tokio::test]
async fn a_team_budget_set_through_one_gateway_holds_on_the_other_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir, &mock, &redis, "");
    let key = issue(
        &a,
        json!({"name": "member", "team": "ops", "budget_usd": 5}),
    )
    .await;
    known_by(&b, &key).await;
    // A budget of nothing refuses every priced request.
    set_team(&a, "ops", json!({"budget_usd": 0})).await;
    let set = Instant::now();
    assert_eq!(chat(&a, &key, &chat_body("auto", "hi")).await.status(), 402);
    let took = answered_after(&b, &key, 402, set).await;
    eprintln!("B held the new team budget {took:?} after it was set");
    assert!(took < Duration::from_secs(1), "B took {took:?}");
    let r = chat(&b, &key, &chat_body("auto", "hi")).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert_eq!(v["error"]["team"], "ops", "{v}");

    // Raised through A, B admits again within a second, and both count the team's spend in
    // Redis: B's answers come to show what A's requests spent on top of B's own.
    set_team(&a, "ops", json!({"budget_usd": 5})).await;
    let raised = Instant::now();
    let took = answered_after(&b, &key, 200, raised).await;
    eprintln!("B admitted again {took:?} after the budget was raised");
    assert!(took < Duration::from_secs(1), "B took {took:?}");
    for _ in 0..3 {
        assert_eq!(chat(&a, &key, &chat_body("auto", "hi")).await.status(), 200);
    }
    let mut by_b = 1.0;
    common::wait_for("B to see A's spend", DEADLINE, || {
        let before = by_b;
        by_b += 1.0;
        let b = &b;
        let key = key.clone();
        async move {
            let r = chat(b, &key, &chat_body("auto", "hi")).await;
            let spent: f64 = header(&r, "x-switchyard-team-spend-usd")
                .ok_or("no team header")?
                .parse()
                .map_err(|_| "not a number")?;
            if spent >= (3.0 + before) * ANSWER_USD - 1e-12 {
                Ok(())
            } else {
                Err(format!("B saw ${spent}"))
            }
        }
    })
    .await;
}

/// Sums what a spend log recorded for a key.
async fn recorded(path: &std::path::Path, key: &str) -> (i64, f64) {
    let store = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row: Result<(i64, f64), _> = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM switchyard_spend WHERE key_name = ?",
    )
    .bind(key)
    .fetch_one(&store)
    .await;
    store.close().await;
    row.unwrap_or((0, 0.0))
}

#[tokio::test]
async fn five_hundred_requests_over_two_gateways_overrun_a_shared_budget_by_at_most_one_worst_case()
{
    let Some(redis) = redis_url() else { return };
    let mock = Mock::start().await;
    mock.slow(Duration::from_millis(30));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir, &mock, &redis, "");
    let budget = 20.0 * ANSWER_USD;
    let key = issue(
        &a,
        json!({"name": "batch", "budget_usd": budget, "budget_period": "day", "tiers": ["budget"]}),
    )
    .await;
    // Known by both before the burst (the probe request is free: a model-list call).
    common::eventually_async("B to know the key", DEADLINE, || async {
        reqwest::Client::new()
            .get(b.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let url = if i % 2 == 0 { a.url("") } else { b.url("") };
        let (client, key) = (client.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "auto", "max_tokens": 10, "stream": i % 5 == 0,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello there"}]});
            let r = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                refused += 1;
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
            }
            s => panic!("unexpected status {s}: {text}"),
        }
    }
    assert_eq!(ok + refused, 500);
    let logs = [dir.path().join("spend-a.db"), dir.path().join("spend-b.db")];
    let spent = common::wait_for("every answered request in a spend log", DEADLINE, || {
        let logs = logs.clone();
        async move {
            let (mut n, mut usd) = (0, 0.0);
            for l in &logs {
                let (rows, cost) = recorded(l, "batch").await;
                n += rows;
                usd += cost;
            }
            if n == 500 {
                Ok(usd)
            } else {
                Err(format!("{n} rows"))
            }
        }
    })
    .await;
    // One reservation's bound: the prompt (with the gateway's margin) is under 40 tokens, the
    // answer at most max_tokens.
    let worst = (40.0 * 0.15 + 10.0 * 0.6) / 1e6;
    eprintln!(
        "budget ${budget:.8}, recorded ${spent:.8} ({ok} answered, {refused} refused), worst case ${worst:.8}"
    );
    for gw in [&a, &b] {
        // A call past the timeout is decided on local state; say so if it happened.
        for l in gw
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("shared state"))
        {
            eprintln!("{l}");
        }
    }
    assert!(spent <= budget + worst + 1e-12, "spent {spent} of {budget}");
    assert!(ok >= 10, "only {ok} answered within a budget for about 20");
}

/// Multi-threaded: the load keeps running while the test blocks on starting a server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_fails_no_request_and_is_used_again_once_back() {
    if redis_url().is_none() {
        return;
    }
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir, &mock, &server.url(), "");
    let key = issue(
        &a,
        json!({"name": "steady", "budget_usd": 100, "rpm": 100000}),
    )
    .await;
    known_by(&b, &key).await;
    for gw in [&a, &b] {
        assert_eq!(ready_status(gw).await, "ready");
    }

    // Traffic through both gateways for the whole outage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let (urls, key, stop, sent) = (
            [a.url(""), b.url("")],
            key.clone(),
            stop.clone(),
            sent.clone(),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(format!("{}/v1/chat/completions", urls[i % 2]))
                    .bearer_auth(&key)
                    .json(&chat_body("auto", "hi"))
                    .send()
                    .await;
                statuses.push(r.map(|r| r.status().as_u16()).map_err(|e| e.to_string()));
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 1;
            }
            statuses
        })
    };

    server.kill();
    for gw in [&a, &b] {
        common::eventually_async("readiness to say degraded", DEADLINE, || async {
            ready_status(gw).await == "degraded"
        })
        .await;
    }
    let metrics = reqwest::get(a.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        common::metric_value(&metrics, "switchyard_state_degraded"),
        1.0
    );
    assert!(common::metric_value(&metrics, "switchyard_state_errors_total") >= 1.0);
    assert!(a.log_contains("shared state unreachable"));
    // Requests go on being answered while Redis is gone.
    let more = |n: usize| {
        let (sent, from) = (
            sent.clone(),
            sent.load(std::sync::atomic::Ordering::Relaxed),
        );
        common::eventually("more requests to run", DEADLINE, move || {
            sent.load(std::sync::atomic::Ordering::Relaxed) >= from + n
        })
    };
    more(20).await;

    let _back = RedisServer::on_port(port).unwrap();
    for gw in [&a, &b] {
        common::eventually_async("readiness to be back", DEADLINE, || async {
            ready_status(gw).await == "ready"
        })
        .await;
    }
    assert!(a.log_contains("shared state reachable again"));
    more(20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();
    let failed: Vec<_> = statuses.iter().filter(|s| **s != Ok(200)).collect();
    assert!(statuses.len() >= 40, "only {} requests ran", statuses.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        statuses.len()
    );

    // Shared again: the two gateways count the key's requests in one place.
    let remaining = |r: &reqwest::Response| -> u64 {
        header(r, "x-ratelimit-remaining-requests")
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = remaining(&chat(&a, &key, &chat_body("auto", "hi")).await);
    let second = remaining(&chat(&b, &key, &chat_body("auto", "hi")).await);
    let third = remaining(&chat(&a, &key, &chat_body("auto", "hi")).await);
    assert_eq!((second, third), (first - 1, first - 2));
}

#[tokio::test]
async fn with_on_state_error_deny_budget_keys_are_refused_while_redis_is_down() {
    // A port nothing listens on: Redis is down from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let yaml = |deny: &str, db: &str| {
        format!(
            "{}keys: {{ database: \"sqlite://{}\", refresh: 100ms }}\nstate: {{ backend: redis, url: \"{url}\", prefix: \"{}\", timeout: 50ms{deny} }}\n",
            base_yaml(
                &mock.url(),
                &format!("  admin_keys: [\"{ADMIN}\"]"),
                ROUTING
            ),
            dir.path().join(db).display(),
            redis_prefix(),
        )
    };
    let deny = common::Gateway::start(&yaml(", on_state_error: deny", "deny.db")).await;
    let allow = common::Gateway::start(&yaml("", "allow.db")).await;
    for gw in [&deny, &allow] {
        common::eventually_async("readiness to say degraded", DEADLINE, || async {
            let v: Value = reqwest::get(gw.url("/health/ready"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["status"] == "degraded" && v["state"]["reachable"] == false
        })
        .await;
    }
    let admin = |gw: &common::Gateway, body: Value| {
        let url = gw.url("/admin/keys");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let send = |gw: &common::Gateway, key: &str| {
        let (url, key) = (gw.url("/v1/chat/completions"), key.to_string());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&chat_body("auto", "hi"))
                .send()
                .await
                .unwrap()
        }
    };
    let budgeted = admin(&deny, json!({"name": "b", "budget_usd": 5})).await;
    let unlimited = admin(&deny, json!({"name": "u", "rpm": 100})).await;
    let r = send(&deny, &budgeted).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_state_unavailable", "{v}");
    assert_eq!(v["error"]["type"], "service_unavailable_error");
    // A key without a budget is served on local counters.
    let r = send(&deny, &unlimited).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-ratelimit-remaining-requests").as_deref(),
        Some("99")
    );
    // With allow (the default), the same kind of key passes.
    let budgeted = admin(&allow, json!({"name": "b", "budget_usd": 5})).await;
    assert_eq!(send(&allow, &budgeted).await.status(), 200);
    let text = deny.metrics().await;
    common::assert_metric(&text, "switchyard_state_degraded", 1.0);
    common::assert_metric(
        &text,
        r#"switchyard_key_refusals_total{reason="state_unavailable",team="none"}"#,
        1.0,
    );
}
