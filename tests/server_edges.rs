//! The server's edge, driven with raw TCP clients against the real binary: header and body read
//! timeouts, connection and in-flight limits, and a SIGTERM that closes idle and half-sent
//! connections at once while real requests drain and new ones are answered 503.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// What arrived on `s` until the peer closed it, and whether it did before `deadline`.
async fn read_until_closed(s: &mut TcpStream, deadline: Duration) -> (String, bool) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// One complete response read off a keep-alive connection (headers and a Content-Length body).
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("no complete response within 10 s")
            .unwrap();
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split_once("\r\n\r\n").map_or(response, |(h, _)| h);
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn metrics_of(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const CHAT: &str = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;

fn chat_request(body: &str, declared: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{body}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_short_bodies_are_cut_after_their_timeouts() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "gw.yaml",
        &config_yaml(
            &mock.url(),
            "  header_read_timeout: 400ms\n  body_read_timeout: 400ms",
        ),
    );
    let b = Binary::serve(&path, &[]);

    // A request line and some headers, then nothing: closed once the header timeout passes.
    let mut stalled = TcpStream::connect(b.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n",
        )
        .await
        .unwrap();
    let sent = Instant::now();
    let (got, closed) = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(closed, "a connection with half its headers was held");
    assert!(
        sent.elapsed() >= Duration::from_millis(350),
        "closed before the timeout"
    );
    assert!(!got.contains("200 OK"), "{got}");

    // A body shorter than its Content-Length: 408 in OpenAI's shape, then the connection closes.
    let mut short = TcpStream::connect(b.addr).await.unwrap();
    short
        .write_all(chat_request(&CHAT[..20], CHAT.len()).as_bytes())
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut short, Duration::from_secs(10)).await;
    assert!(closed, "a connection with a short body was held: {got}");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert_eq!(header(&got, "connection"), Some("close"));
    let err = body_of(&got);
    assert_eq!(err["error"]["code"], "request_timeout");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.body_read_timeout")
    );

    // A connection that never sends a byte is closed too, and counted apart from slow clients.
    let mut silent = TcpStream::connect(b.addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(closed, "a silent connection was held");

    // Real clients are not affected: a whole request on a fresh connection is answered.
    let mut ok = TcpStream::connect(b.addr).await.unwrap();
    ok.write_all(chat_request(CHAT, CHAT.len()).as_bytes())
        .await
        .unwrap();
    let got = read_response(&mut ok).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    let m = metrics_of(b.addr).await;
    assert_metric(
        &m,
        r#"switchyard_client_timeouts_total{phase="header"}"#,
        1.0,
    );
    assert_metric(&m, r#"switchyard_client_timeouts_total{phase="body"}"#, 1.0);
    assert!(metric_value(&m, r#"switchyard_client_timeouts_total{phase="idle"}"#) >= 1.0);
    assert_metric(
        &m,
        r#"switchyard_requests_total{model="none",status="408",tier="none"}"#,
        1.0,
    );
    eventually(
        "the cut connections to be logged",
        Duration::from_secs(10),
        || {
            b.log_contains("request headers did not arrive within server.header_read_timeout")
                && b.log_contains("request body did not arrive within server.body_read_timeout")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_and_half_open_connections_and_answers_503_while_requests_drain() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Timeouts far longer than the test: whatever closes below is closed by the drain.
    let path = write(
        &dir,
        "gw.yaml",
        &config_yaml(
            &mock.url(),
            "  header_read_timeout: 120s\n  body_read_timeout: 120s",
        )
        .replace("drain_timeout: 5s", "drain_timeout: 120s"),
    );
    let mut b = Binary::serve(&path, &[]);

    // An idle keep-alive connection, after one answered request.
    let mut idle = TcpStream::connect(b.addr).await.unwrap();
    idle.write_all(chat_request(CHAT, CHAT.len()).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    // Half a request's headers.
    let mut half = TcpStream::connect(b.addr).await.unwrap();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")
        .await
        .unwrap();
    // Whole headers, a third of the body.
    let mut short = TcpStream::connect(b.addr).await.unwrap();
    short
        .write_all(chat_request(&CHAT[..20], CHAT.len()).as_bytes())
        .await
        .unwrap();
    // A real request: a stream the upstream holds open.
    let gate = mock.held_stream("cheap-up", 2);
    let in_flight = spawn_stream(b.url("/v1/chat/completions"), "hi");
    mock.state.stream_started.notified().await;
    // The short body's handler must be waiting for it before the signal: two chat requests in
    // flight (it and the stream).
    wait_for("the requests to start", Duration::from_secs(10), || async {
        let n = metric_value(&metrics_of(b.addr).await, "switchyard_in_flight_requests");
        if n >= 2.0 {
            Ok(())
        } else {
            Err(format!("{n} in flight"))
        }
    })
    .await;

    b.signal("TERM");
    eventually("shutdown to begin", Duration::from_secs(10), || {
        b.log_contains("draining")
    })
    .await;
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed,
        "an idle keep-alive connection was kept open during the drain"
    );
    let (_, closed) = read_until_closed(&mut half, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a half-sent request held its connection during the drain"
    );
    let (got, closed) = read_until_closed(&mut short, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a request waiting for its body held the drain: {got}"
    );
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert_eq!(body_of(&got)["error"]["code"], "gateway_draining");

    // While the stream drains, the listener answers: readiness is 503, new work is turned away
    // with a 503 the SDKs retry, on a connection that is then closed.
    assert!(
        b.child.try_wait().unwrap().is_none(),
        "exited with a stream in flight"
    );
    let client = reqwest::Client::new();
    let ready = client.get(b.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    let live = client.get(b.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let turned_away = client
        .post(b.url("/v1/chat/completions"))
        .json(&chat_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(turned_away.status(), 503);
    assert_eq!(turned_away.headers()["retry-after"], "1");
    assert_eq!(turned_away.headers()["connection"], "close");
    assert!(turned_away.headers().contains_key("x-request-id"));
    let err: Value = turned_away.json().await.unwrap();
    assert_eq!(err["error"]["code"], "gateway_draining");
    let m = metrics_of(b.addr).await;
    assert_eq!(
        metric(&m, r#"switchyard_shed_requests_total{reason="draining"}"#),
        Some(2.0),
        "the short body and the new request"
    );
    assert_eq!(mock.calls(), 2, "nothing turned away reached the upstream");

    gate.notify_one();
    let text = in_flight.await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream was cut: {text}"
    );
    let status = b
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit once the stream finished");
    assert!(status.success());
    assert!(b.log_contains("all requests finished"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_a_503_and_probes_still_answer() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "gw.yaml",
        &config_yaml(&mock.url(), "  max_connections: 2"),
    );
    let b = Binary::serve(&path, &[]);
    let _a = TcpStream::connect(b.addr).await.unwrap();
    let _b = TcpStream::connect(b.addr).await.unwrap();
    // The scrape opens a third connection: over the limit, yet /metrics is answered.
    wait_for(
        "the connections to be counted",
        Duration::from_secs(10),
        || async {
            let m = metrics_of(b.addr).await;
            if metric_value(&m, "switchyard_open_connections") >= 3.0 {
                Ok(())
            } else {
                Err(m)
            }
        },
    )
    .await;
    let mut over = TcpStream::connect(b.addr).await.unwrap();
    over.write_all(chat_request(CHAT, CHAT.len()).as_bytes())
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut over, Duration::from_secs(10)).await;
    assert!(closed, "{got}");
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert_eq!(header(&got, "retry-after"), Some("1"));
    let err = body_of(&got);
    assert_eq!(err["error"]["code"], "gateway_overloaded");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_connections")
    );
    assert_eq!(mock.calls(), 0);
    let live = reqwest::get(b.url("/health/live")).await.unwrap();
    assert_eq!(live.status(), 200, "liveness must not fail under load");
    let m = metrics_of(b.addr).await;
    assert_metric(
        &m,
        r#"switchyard_shed_requests_total{reason="connection_limit"}"#,
        1.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_limit_get_a_503() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config_yaml(&mock.url(), "  max_in_flight_requests: 1")).await;
    let gate = mock.held_stream("cheap-up", 2);
    let held = spawn_stream(gw.url("/v1/chat/completions"), "hi");
    mock.state.stream_started.notified().await;
    let second = post(&gw, &chat_body("auto", "hi")).await;
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let err: Value = second.json().await.unwrap();
    assert_eq!(err["error"]["code"], "gateway_overloaded");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_in_flight_requests")
    );
    // Probes and scrapes are not requests in flight.
    let ready = reqwest::get(gw.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_metric(
        &gw.metrics().await,
        r#"switchyard_shed_requests_total{reason="in_flight_limit"}"#,
        1.0,
    );
    gate.notify_one();
    assert!(held.await.unwrap().ends_with("data: [DONE]\n\n"));
    // The stream's slot is free once its last byte is sent.
    wait_for(
        "the slot to be released",
        Duration::from_secs(5),
        || async {
            let r = post(&gw, &chat_body("auto", "hi")).await;
            if r.status() == 200 {
                Ok(())
            } else {
                Err(format!("status {}", r.status()))
            }
        },
    )
    .await;
    assert_eq!(mock.calls(), 2);
}
