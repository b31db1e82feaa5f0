//! Who may see what: admin keys for `/admin/*` (loopback only without them), `/metrics` behind a
//! key or on an address of its own, CORS for listed browser origins, and refused requests logged
//! and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::extract::ConnectInfo;
use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

const CLIENT: &str = "sy-client-key-1";
const ADMIN: &str = "sy-admin-key-1";
const SCRAPE: &str = "sy-prom-key-1";

async fn get(url: String, key: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(url);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn admin_routes_need_an_admin_key_when_admin_keys_are_set() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(
        &mock.url(),
        &format!("  api_keys: [\"{CLIENT}\"]\n  admin_keys: [\"{ADMIN}\"]"),
    ))
    .await;
    let deployments = || gw.url("/admin/deployments");
    let none = get(deployments(), None).await;
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"switchyard\""
    );
    assert_eq!(code(none).await, (401, "missing_api_key".into()));
    assert_eq!(
        code(get(deployments(), Some(CLIENT)).await).await,
        (403, "admin_key_required".into()),
        "a client key must not read every team's traffic"
    );
    assert_eq!(
        code(get(deployments(), Some("sy-nobody")).await).await,
        (401, "invalid_api_key".into())
    );
    let ok = get(deployments(), Some(ADMIN)).await;
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // Past the key check: this gateway keeps no spend log.
    assert_eq!(
        code(get(gw.url("/admin/spend"), Some(ADMIN)).await).await,
        (404, "spend_log_disabled".into())
    );
    // Admin keys are not client keys.
    assert_eq!(
        code(get(gw.url("/v1/models"), Some(ADMIN)).await).await,
        (401, "invalid_api_key".into())
    );
    assert_eq!(get(gw.url("/v1/models"), Some(CLIENT)).await.status(), 200);
    // With admin keys, a loopback client gets no pass either.
    assert_eq!(mock.calls(), 0);
}

/// Calls the router as a connection from `peer` would.
async fn from_peer(gw: &Gateway, peer: Option<SocketAddr>, path: &str) -> u16 {
    let mut router = switchyard::api::router(gw.state.clone());
    let mut req = http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    if let Some(p) = peer {
        req.extensions_mut().insert(ConnectInfo(p));
    }
    let resp = tower_service::Service::call(&mut router, req)
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn without_admin_keys_admin_routes_answer_only_this_host() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    // Over a real loopback connection.
    assert_eq!(get(gw.url("/admin/deployments"), None).await.status(), 200);
    let v4: SocketAddr = "10.1.2.3:5555".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::7]:5555".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:5555".parse().unwrap();
    let local6: SocketAddr = "[::1]:5555".parse().unwrap();
    assert_eq!(from_peer(&gw, Some(v4), "/admin/deployments").await, 403);
    assert_eq!(from_peer(&gw, Some(v6), "/admin/spend").await, 403);
    assert_eq!(from_peer(&gw, None, "/admin/deployments").await, 403);
    assert_eq!(
        from_peer(&gw, Some(mapped), "/admin/deployments").await,
        200
    );
    assert_eq!(
        from_peer(&gw, Some(local6), "/admin/deployments").await,
        200
    );
    // Other routes do not care where the client is.
    assert_eq!(from_peer(&gw, Some(v4), "/v1/models").await, 200);
    assert_eq!(from_peer(&gw, Some(v4), "/health/ready").await, 200);
}

#[tokio::test]
async fn metrics_can_require_a_key() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(
        &mock.url(),
        &format!(
            "  api_keys: [\"{CLIENT}\"]\n  admin_keys: [\"{ADMIN}\"]\n  metrics: {{ keys: [\"{SCRAPE}\"] }}"
        ),
    ))
    .await;
    let metrics = || gw.url("/metrics");
    assert_eq!(
        code(get(metrics(), None).await).await,
        (401, "missing_api_key".into())
    );
    assert_eq!(
        code(get(metrics(), Some(CLIENT)).await).await,
        (401, "invalid_api_key".into())
    );
    let scraped = get(metrics(), Some(SCRAPE)).await;
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("switchyard_in_flight_requests")
    );
    assert_eq!(get(metrics(), Some(ADMIN)).await.status(), 200);
    // Probes stay open.
    assert_eq!(get(gw.url("/health/ready"), None).await.status(), 200);
}

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let mock = Mock::start().await;
    let yaml = config_yaml(&mock.url(), "  metrics: { listen: \"127.0.0.1:0\" }");
    let config = switchyard::config::Config::from_yaml(&yaml, "test.yaml").unwrap();
    let gw = switchyard::gateway::Gateway::build(
        config,
        &switchyard::server::http_client(),
        std::path::Path::new("."),
    )
    .await
    .unwrap();
    let server = switchyard::server::Server::bind(gw).await.unwrap();
    let api = server.local_addr();
    let scrape = server.metrics_addr().unwrap();
    assert_ne!(api.port(), scrape.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let chat = reqwest::Client::new()
        .post(format!("http://{api}/v1/chat/completions"))
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let (status, code_) = code(get(format!("http://{api}/metrics"), None).await).await;
    assert_eq!((status, code_.as_str()), (404, "unknown_url"));
    let text = get(format!("http://{scrape}/metrics"), None)
        .await
        .text()
        .await
        .unwrap();
    assert_metric(
        &text,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        1.0,
    );
    // Nothing else is served there.
    assert_eq!(
        get(format!("http://{scrape}/v1/models"), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        get(format!("http://{scrape}/admin/deployments"), None)
            .await
            .status(),
        404
    );
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(
        &mock.url(),
        &format!(
            "  api_keys: [\"{CLIENT}\"]\n  cors: {{ allowed_origins: [\"https://app.example.com\", \"http://localhost:3000\"], max_age: 5m }}"
        ),
    ))
    .await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-stainless-os",
            )
            .send()
    };
    // A preflight carries no key: it is answered before the key check.
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("x-stainless-os"),
        "{allowed}"
    );
    assert_eq!(h["access-control-max-age"], "300");
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "an unlisted origin was allowed"
    );
    // The real request: the origin is echoed and the gateway's headers are readable by the page.
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "http://localhost:3000")
        .bearer_auth(CLIENT)
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        exposed.contains("x-switchyard-tier") && exposed.contains("x-request-id"),
        "{exposed}"
    );
    let foreign = client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "https://evil.example.net")
        .bearer_auth(CLIENT)
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert_eq!(mock.calls(), 2, "preflights never reach the upstream");
}

#[tokio::test]
async fn without_cors_no_preflight_is_answered() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "")).await;
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let normal = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert!(!normal.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn refused_chat_requests_are_counted() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(
        &mock.url(),
        &format!("  api_keys: [\"{CLIENT}\"]"),
    ))
    .await;
    let client = reqwest::Client::new();
    for key in [None, Some("sy-wrong"), Some(CLIENT)] {
        let mut r = client
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body("auto", "hi"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send().await.unwrap();
    }
    let m = gw.metrics().await;
    assert_metric(
        &m,
        r#"switchyard_requests_total{model="none",status="401",tier="none"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"switchyard_requests_total{model="cheap",status="200",tier="budget"}"#,
        1.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_logged_without_the_key() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        config_yaml(
            &mock.url(),
            &format!("  api_keys: [\"{CLIENT}\"]\n  admin_keys: [\"{ADMIN}\"]"),
        ),
    )
    .unwrap();
    let b = Binary::serve(&path, &["--log-format", "json"]);
    let wrong = "sy-presented-but-wrong-7777";
    let resp = reqwest::Client::new()
        .post(b.url("/v1/chat/completions"))
        .header("x-request-id", "refused-1")
        .bearer_auth(wrong)
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(b.url("/admin/deployments"))
        .header("x-request-id", "refused-2")
        .bearer_auth(CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let line = |id: &str| -> Option<Value> {
        b.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(id))
            .map(|l| serde_json::from_str(l).unwrap())
    };
    eventually(
        "a log line for each refused request",
        Duration::from_secs(10),
        || line("refused-1").is_some() && line("refused-2").is_some(),
    )
    .await;
    let v = line("refused-1").unwrap();
    assert_eq!(v["message"], "request refused");
    assert_eq!(v["status"], 401);
    assert_eq!(v["path"], "/v1/chat/completions");
    assert_eq!(v["error"], "invalid_api_key");
    assert!(v["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let v = line("refused-2").unwrap();
    assert_eq!(
        (v["status"].as_u64(), v["error"].as_str()),
        (Some(403), Some("admin_key_required"))
    );
    let lines = b.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(wrong) && !l.contains(CLIENT))
    );
}
