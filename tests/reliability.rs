//! Fault injection: each way a provider fails, against a tier of two deployments (two mock
//! providers) that falls back to a premium tier (a third). For every fault the tests check what
//! the client saw, how many calls each upstream received, which deployment was cooled down and for
//! how long (`/admin/deployments`), and the metric deltas.
//!
//! The scenario table at the end runs each fault on one deployment four times: with its sibling
//! healthy, cooling down, at its rpm limit, and slow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

struct Setup {
    a: Mock,
    b: Mock,
    p: Mock,
    gw: Gateway,
}

/// `budget` = deployments a1 (mock a) and b1 (mock b), tried in that order; `premium` = big
/// (mock p). `extra` is appended to the YAML (reliability settings and such).
async fn setup(strategy: &str, extra: &str) -> Setup {
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let yaml = table(
        [&a, &b, &p],
        &format!(
            r#"
models:
  - {{ name: a1, provider: a, model: small }}
  - {{ name: b1, provider: b, model: small }}
  - {{ name: big, provider: p, model: large }}
tiers:
  budget: {{ models: [a1, b1], strategy: {strategy} }}
  premium: {{ models: [big] }}
routing:
  default: budget
fallbacks:
  budget: [premium]
{extra}
"#
        ),
    );
    let gw = Gateway::start(&yaml).await;
    Setup { a, b, p, gw }
}

/// The server and three mock providers `a`, `b` and `p`, then `rest` (models, tiers, routing…).
fn table(mocks: [&Mock; 3], rest: &str) -> String {
    let mut yaml = String::from("server: { listen: \"127.0.0.1:0\" }\nproviders:\n");
    for (name, m) in ["a", "b", "p"].iter().zip(mocks) {
        yaml.push_str(&format!(
            "  {name}: {{ kind: openai, base_url: \"{}\", api_key: \"{PROVIDER_KEY}\", timeout: 1s, stream_idle_timeout: 500ms }}\n",
            m.url()
        ));
    }
    yaml + rest
}

/// One deployment's entry in `/admin/deployments`.
async fn deployment(gw: &Gateway, name: &str) -> Value {
    let all: Value = reqwest::get(gw.url("/admin/deployments"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deployment"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no deployment {name} in {all}"))
}

const FAST_BACKOFF: &str = "reliability:\n  backoff: { initial: 5ms, max: 20ms }\n";

impl Setup {
    fn calls(&self) -> (usize, usize, usize) {
        (self.a.calls(), self.b.calls(), self.p.calls())
    }

    async fn deployment(&self, name: &str) -> Value {
        deployment(&self.gw, name).await
    }
}

fn error_reply(status: u16, message: &str, code: Option<&str>) -> Reply {
    Reply::Json {
        status,
        body: json!({"error": {"message": message, "type": "invalid_request_error", "code": code}}),
        headers: vec![],
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_429_with_retry_after_moves_to_the_other_deployment_and_cools_it_for_that_long() {
    let s = setup("ordered", FAST_BACKOFF).await;
    s.a.on(
        "small",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
            headers: vec![("retry-after", "20".into())],
        },
    );
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget");
    assert_eq!(s.calls(), (1, 1, 0));

    let a1 = s.deployment("a1").await;
    assert_eq!(a1["state"], "cooling_down", "{a1}");
    assert_eq!(a1["healthy"], false);
    assert_eq!(a1["last_cooldown_class"], "rate_limit");
    assert_eq!(a1["last_cooldown_ms"], 20000.0);
    let left = a1["cooldown_remaining_ms"].as_f64().unwrap();
    assert!(left > 15_000.0 && left <= 20_000.0, "{left}");
    assert_eq!(s.deployment("b1").await["state"], "healthy");

    // While a1 cools, the tier's traffic goes to b1 only, first try.
    for _ in 0..3 {
        let resp = post(&s.gw, &chat_body("auto", "hello")).await;
        assert_eq!(header(&resp, "x-switchyard-model"), "b1");
        assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    }
    assert_eq!(s.calls(), (1, 4, 0));

    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_retries_total{class="rate_limit",deployment="b1"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_deployment_cooldowns_total{class="rate_limit",deployment="a1"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_deployment_healthy{deployment="a1"}"#,
        0.0,
    );
    assert_metric(
        &text,
        r#"switchyard_deployment_healthy{deployment="b1"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_provider_errors_total{class="rate_limit",model="a1"}"#,
        1.0,
    );
    assert!(!text.contains("switchyard_fallbacks_total{"));
}

#[tokio::test]
async fn server_errors_retry_in_the_tier_then_fall_back_and_cool_after_allowed_fails() {
    let s = setup(
        "ordered",
        "reliability:\n  retries: 1\n  backoff: { initial: 5ms, max: 20ms }\n  cooldown: { allowed_fails: 1, duration: 30s }\n",
    )
    .await;
    for _ in 0..2 {
        s.a.on("small", error_reply(500, "boom", None));
        s.b.on("small", error_reply(503, "busy", None));
    }
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "big");
    assert_eq!(header(&resp, "x-switchyard-tier"), "premium");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget->premium");
    assert_eq!(s.calls(), (1, 1, 1));
    assert_eq!(s.deployment("a1").await["state"], "healthy");

    // The second failure of each is one more than allowed_fails: both cool down.
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "big");
    assert_eq!(s.calls(), (2, 2, 2));
    for d in ["a1", "b1"] {
        let dep = s.deployment(d).await;
        assert_eq!(dep["state"], "cooling_down", "{dep}");
        assert_eq!(dep["last_cooldown_ms"], 30000.0);
    }
    assert_eq!(
        s.deployment("a1").await["last_cooldown_class"],
        "server_error"
    );

    // With the whole tier cooling, the request goes straight to premium: no budget call at all.
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    assert_eq!(s.calls(), (2, 2, 3));

    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="server_error",to_tier="premium"}"#,
        2.0,
    );
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="cooldown",to_tier="premium"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_retries_total{class="server_error",deployment="b1"}"#,
        2.0,
    );
    assert_metric(
        &text,
        r#"switchyard_deployment_cooldowns_total{class="server_error",deployment="a1"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_hung_provider_times_out_and_the_other_deployment_answers() {
    let s = setup("ordered", FAST_BACKOFF).await;
    s.a.on("small", Reply::Hang);
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");
    assert_eq!(s.calls(), (1, 1, 0));
    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_provider_errors_total{class="timeout",model="a1"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_retries_total{class="timeout",deployment="b1"}"#,
        1.0,
    );
    // One timeout is within allowed_fails: a1 keeps its place.
    assert_eq!(s.deployment("a1").await["state"], "healthy");
}

#[tokio::test]
async fn resets_and_malformed_answers_are_server_errors_retried_elsewhere() {
    let s = setup("ordered", FAST_BACKOFF).await;
    // Both are the documented class `server_error`; the log and stream metrics keep the detail.
    for (n, reply) in [Reply::Reset, Reply::Garbage("<html>502 Bad Gateway</html>")]
        .into_iter()
        .enumerate()
    {
        s.a.on("small", reply);
        let resp = post(&s.gw, &chat_body("auto", "hello")).await;
        assert_eq!(resp.status(), 200, "case {n}");
        assert_eq!(header(&resp, "x-switchyard-model"), "b1");
        let text = s.gw.metrics().await;
        assert_metric(
            &text,
            r#"switchyard_provider_errors_total{class="server_error",model="a1"}"#,
            (n + 1) as f64,
        );
        for undocumented in ["connection", "invalid_response"] {
            assert!(
                !text.contains(&format!("class=\"{undocumented}\"")),
                "{undocumented} is not a class"
            );
        }
    }
    assert_eq!(s.calls(), (2, 2, 0));

    // A deployment whose every connection is reset before an answer, with nothing else left.
    let dead = reset_server().await;
    let p = Mock::start().await;
    let yaml = format!(
        "server: {{ listen: \"127.0.0.1:0\" }}\nproviders:\n  dead: {{ kind: openai, base_url: \"http://{dead}/v1\" }}\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  - {{ name: d1, provider: dead, model: small }}\n  - {{ name: big, provider: p, model: large }}\ntiers:\n  budget: {{ models: [d1] }}\n  premium: {{ models: [big] }}\nrouting: {{ default: budget }}\nfallbacks: {{ budget: [premium] }}\nreliability: {{ retries: 1, backoff: {{ initial: 5ms, max: 10ms }} }}\n",
        p.url()
    );
    let gw = Gateway::start(&yaml).await;
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget->premium");
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="server_error",to_tier="premium"}"#,
        1.0,
    );
    // Without the fallback, the client sees a 502 that names the deployment.
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-switchyard-no-fallback", "true")
        .json(&chat_body("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().starts_with("d1:"));
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn content_policy_and_bad_requests_are_returned_at_once_and_cool_nothing() {
    let s = setup("ordered", FAST_BACKOFF).await;
    for _ in 0..5 {
        s.a.on(
            "small",
            error_reply(400, "The response was filtered", Some("content_filter")),
        );
    }
    for i in 0..5 {
        let resp = post(&s.gw, &chat_body("auto", "hello")).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "content_policy_violation");
        assert_eq!(s.calls(), (i + 1, 0, 0));
    }
    s.a.on(
        "small",
        error_reply(
            400,
            "Invalid value for 'temperature'",
            Some("invalid_value"),
        ),
    );
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_value");
    assert_eq!(s.calls(), (6, 0, 0));
    assert_eq!(s.deployment("a1").await["state"], "healthy");
    let text = s.gw.metrics().await;
    assert!(!text.contains("switchyard_retries_total{"));
    assert!(!text.contains("switchyard_deployment_cooldowns_total{"));
    assert!(!text.contains("switchyard_fallbacks_total{"));
}

#[tokio::test]
async fn authentication_errors_cool_the_deployment_at_once_and_never_escalate() {
    let s = setup("ordered", FAST_BACKOFF).await;
    s.a.fail_after(
        0,
        error_reply(401, "Incorrect API key provided", Some("invalid_api_key")),
    );
    s.b.fail_after(
        0,
        error_reply(401, "Incorrect API key provided", Some("invalid_api_key")),
    );
    // The provider rejected the gateway's key, not the client's: a 502 that says so, never a 401
    // (which SDKs raise as AuthenticationError, as if the client's own key were wrong).
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 502);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_authentication_failed");
    assert_eq!(err["error"]["type"], "upstream_authentication_error");
    // One try on each deployment of the tier, none on the pricier one.
    assert_eq!(s.calls(), (1, 1, 0));
    for d in ["a1", "b1"] {
        let dep = s.deployment(d).await;
        assert_eq!(dep["state"], "cooling_down");
        assert_eq!(dep["last_cooldown_class"], "authentication");
    }
    // The next request finds the tier cooling and says so, with a Retry-After.
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "no_deployment_available");
    let msg = err["error"]["message"].as_str().unwrap();
    for d in ["a1", "b1"] {
        assert!(
            msg.contains(&format!(
                "{d} is cooling down after authentication failures"
            )),
            "{msg}"
        );
    }
    assert_eq!(s.calls(), (1, 1, 0));
}

#[tokio::test]
async fn context_window_errors_take_their_own_chain_and_long_prompts_skip_small_windows() {
    let (a, long, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let yaml = table(
        [&a, &long, &p],
        r#"
models:
  - { name: a1, provider: a, model: small, context_window: 200 }
  - { name: wide, provider: b, model: wide, context_window: 1000000 }
  - { name: big, provider: p, model: large, context_window: 1000 }
tiers:
  budget: { models: [a1] }
  long: { models: [wide] }
  premium: { models: [big] }
routing: { default: budget }
fallbacks:
  budget: [premium]
  context_window:
    budget: [long]
"#,
    );
    let gw = Gateway::start(&yaml).await;
    // The provider says the prompt is too long: the context-window chain, not the ordinary one.
    a.on(
        "small",
        error_reply(
            400,
            "This model's maximum context length is 200 tokens",
            Some("context_length_exceeded"),
        ),
    );
    let resp = post(&gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "wide");
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget->long");
    assert_eq!((a.calls(), long.calls(), p.calls()), (1, 1, 0));

    // A prompt that cannot fit a1's window is never sent to it.
    let long_prompt = "lorem ipsum dolor sit amet ".repeat(100);
    let resp = post(&gw, &chat_body("auto", &long_prompt)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "wide");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    assert_eq!((a.calls(), long.calls(), p.calls()), (1, 2, 0));
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="context_window",to_tier="long"}"#,
        2.0,
    );

    // Asked for by name, a deployment too small for the prompt is a 400 without any call.
    let resp = post(&gw, &chat_body("a1", &long_prompt)).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    assert_eq!(err["error"]["param"], "messages");
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn one_attempt_budget_covers_retries_and_fallbacks() {
    let s = setup(
        "ordered",
        "reliability:\n  retries: 5\n  max_attempts: 3\n  backoff: { initial: 5ms, max: 10ms }\n  cooldown: { allowed_fails: 100 }\n",
    )
    .await;
    for m in [&s.a, &s.b, &s.p] {
        m.fail_after(0, error_reply(500, "boom", None));
    }
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    let (a, b, p) = s.calls();
    assert_eq!(a + b + p, 3, "{:?}", s.calls());

    // max_fallbacks: 0 keeps every request on its tier.
    let s = setup(
        "ordered",
        "reliability:\n  retries: 0\n  max_fallbacks: 0\n",
    )
    .await;
    s.a.on("small", error_reply(500, "boom", None));
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(s.calls(), (1, 0, 0));
}

#[tokio::test]
async fn the_no_fallback_header_keeps_the_request_on_its_tier() {
    let s = setup(
        "ordered",
        "reliability:\n  retries: 1\n  backoff: { initial: 5ms, max: 10ms }\n",
    )
    .await;
    for m in [&s.a, &s.b] {
        m.on("small", error_reply(503, "busy", None));
    }
    let resp = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .header("x-switchyard-no-fallback", "true")
        .json(&chat_body("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    // Retries within the tier still happen; the pricier tier is never called.
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    assert_eq!(header(&resp, "x-switchyard-fallbacks"), "budget");
    assert_eq!(s.calls(), (1, 1, 0));
}

#[tokio::test]
async fn a_cooled_deployment_gets_one_probe_after_its_cooldown() {
    let s = setup(
        "ordered",
        "reliability:\n  retries: 1\n  backoff: { initial: 5ms, max: 10ms }\n  cooldown: { allowed_fails: 0, duration: 300ms }\n",
    )
    .await;
    s.a.on("small", error_reply(500, "boom", None));
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");
    assert_eq!(s.deployment("a1").await["state"], "cooling_down");
    // Poll until the cooldown is over: the deployment waits for its probe.
    wait_for("a1 to be half open", Duration::from_secs(5), || async {
        let state = s.deployment("a1").await["state"].clone();
        if state == "half_open" {
            Ok(())
        } else {
            Err(format!("still {state}"))
        }
    })
    .await;
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "a1");
    assert_eq!(s.deployment("a1").await["state"], "healthy");
    assert_eq!(s.calls(), (2, 1, 0));
}

#[tokio::test]
async fn streams_retry_before_the_first_byte_and_report_breaks_after_it() {
    let s = setup("ordered", FAST_BACKOFF).await;
    let stream = |prompt: &str| json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": prompt}]});

    // Before the first byte: another deployment takes the stream.
    s.a.on("small", error_reply(503, "busy", None));
    let resp = post(&s.gw, &stream("hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // A slow stream within the idle timeout arrives whole.
    s.a.on("small", Reply::SlowStream(Duration::from_millis(30)));
    let body = post(&s.gw, &stream("hi")).await.text().await.unwrap();
    assert!(body.contains("Hello") && body.ends_with("data: [DONE]\n\n"));

    // After bytes were sent, a break ends the stream with an error event and no [DONE].
    s.a.on("small", Reply::BrokenStream(2));
    let resp = post(&s.gw, &stream("hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "a1");
    let body = resp.text().await.unwrap();
    assert!(body.contains("Hello"), "{body}");
    assert!(body.contains(r#""error""#), "{body}");
    assert!(!body.contains("[DONE]"));

    // A stream that goes silent past the idle timeout ends the same way.
    let _held = s.a.held_stream("small", 2);
    let body = post(&s.gw, &stream("hi")).await.text().await.unwrap();
    assert!(
        body.contains(r#""error""#) && !body.contains("[DONE]"),
        "{body}"
    );

    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="server_error",model="a1",reason="connection"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_stream_errors_total{class="timeout",model="a1",reason="timeout"}"#,
        1.0,
    );
    assert_eq!(s.calls(), (4, 1, 0));
}

#[tokio::test]
async fn two_hundred_in_flight_see_no_error_when_one_deployment_starts_failing() {
    let s = setup(
        "weighted",
        "reliability:\n  retries: 2\n  backoff: { initial: 5ms, max: 20ms }\n  cooldown: { allowed_fails: 3, duration: 60s }\n",
    )
    .await;
    // Deployment a answers its first 20 calls, then fails every call.
    s.a.fail_after(20, error_reply(500, "boom", None));
    let burst = |n: usize| {
        let url = s.gw.url("/v1/chat/completions");
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (url, client) = (url.clone(), client.clone());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .json(&chat_body("auto", &format!("request {i}")))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        async move {
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            statuses
        }
    };
    let statuses = burst(200).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "client-visible errors: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(s.p.calls(), 0, "no request needed the premium tier");
    let a1 = s.deployment("a1").await;
    assert_eq!(a1["state"], "cooling_down", "{a1}");
    assert_eq!(a1["last_cooldown_class"], "server_error");

    // During the cooldown, a's upstream receives nothing.
    let a_before = s.a.calls();
    let statuses = burst(200).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(s.a.calls(), a_before, "traffic reached a cooled deployment");
    let text = s.gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_deployment_cooldowns_total{class="server_error",deployment="a1"}"#,
        1.0,
    );
    assert_metric(
        &text,
        r#"switchyard_deployment_healthy{deployment="a1"}"#,
        0.0,
    );
    assert_eq!(
        metric_value(
            &text,
            r#"switchyard_requests_total{model="b1",status="200",tier="budget"}"#
        ) + metric_value(
            &text,
            r#"switchyard_requests_total{model="a1",status="200",tier="budget"}"#
        ),
        400.0
    );
}

#[tokio::test]
async fn balancing_strategies_spread_and_respect_limits() {
    // Weighted with equal weights: both deployments take a fair share.
    let s = setup("weighted", "").await;
    for _ in 0..200 {
        post(&s.gw, &chat_body("auto", "hello")).await;
    }
    let (a, b, _) = s.calls();
    assert!(a > 60 && b > 60, "equal weights should split: {a}/{b}");

    // Usage: rpm limits are headroom; a deployment at its limit is skipped until the minute ends.
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let yaml = table(
        [&a, &b, &p],
        r#"
models:
  - { name: a1, provider: a, model: small, rpm: 3 }
  - { name: b1, provider: b, model: small, rpm: 2 }
  - { name: big, provider: p, model: large }
tiers:
  budget: { models: [a1, b1], strategy: usage }
  premium: { models: [big] }
routing: { default: budget }
fallbacks: { budget: [premium] }
"#,
    );
    let gw = Gateway::start(&yaml).await;
    for _ in 0..6 {
        assert_eq!(post(&gw, &chat_body("auto", "hi")).await.status(), 200);
    }
    assert_eq!((a.calls(), b.calls(), p.calls()), (3, 2, 1));
    let a1 = deployment(&gw, "a1").await;
    assert_eq!(a1["usage"]["requests_this_minute"], 3);
    assert_eq!(a1["usage"]["rpm_limit"], 3);
}

#[tokio::test]
async fn a_reload_keeps_cooldowns() {
    let s = setup("ordered", FAST_BACKOFF).await;
    s.a.on(
        "small",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down"}}),
            headers: vec![("retry-after", "30".into())],
        },
    );
    post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(s.deployment("a1").await["state"], "cooling_down");
    // Reload the same table: the cooled deployment stays out.
    let gw = s.gw.state.gateway();
    let again = switchyard::gateway::Gateway::build(
        gw.config.clone(),
        &switchyard::server::http_client(),
        std::path::Path::new("."),
    )
    .await
    .unwrap();
    s.gw.state.swap_gateway(again);
    assert_eq!(s.deployment("a1").await["state"], "cooling_down");
    let resp = post(&s.gw, &chat_body("auto", "hello")).await;
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");
    assert_eq!(s.calls(), (1, 2, 0));
}

// ------------------------------------------------------------------------------------------------
// Scenarios: each fault on a1, with its sibling b1 healthy, cooling, rate-limited and slow
// ------------------------------------------------------------------------------------------------

/// The state b1 is in when a scenario's fault hits a1.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sibling {
    Healthy,
    /// Cooling down after its provider rejected the key (an immediate 30 s cooldown).
    Cooling,
    /// At its rpm limit (`rpm: 1`, used) for the rest of the minute.
    RateLimited,
    /// Healthy, answering after 150 ms.
    Slow,
}

const SIBLINGS: [Sibling; 4] = [
    Sibling::Healthy,
    Sibling::Cooling,
    Sibling::RateLimited,
    Sibling::Slow,
];

impl Sibling {
    /// Whether b1 can take the request's retry.
    fn up(self) -> bool {
        matches!(self, Sibling::Healthy | Sibling::Slow)
    }
}

/// How the client's answer ends.
#[derive(Debug)]
enum Ends {
    /// A completion, or a stream that ends with `[DONE]`.
    Answer,
    /// A stream that sent content and then an error event with this code, and no `[DONE]`.
    StreamError(&'static str),
    /// A JSON error with this code.
    Error(&'static str),
}

/// What one run must show.
struct Expect {
    status: u16,
    ends: Ends,
    /// `x-switchyard-model`, `x-switchyard-attempts`, `x-switchyard-fallbacks`.
    model: &'static str,
    attempts: &'static str,
    chain: &'static str,
    /// Calls the upstreams of a1, b1 and big received during the scenario.
    calls: (usize, usize, usize),
    /// a1 in `/admin/deployments` afterwards: its state and the failures in its breaker window.
    a1: (&'static str, u64),
    /// Every series of the failure metrics that moved, and by how much (nothing else may move).
    metrics: Vec<(&'static str, f64)>,
}

struct Scenario {
    fault: fn(&Setup),
    stream: bool,
    no_fallback: bool,
    /// When b1 is healthy or slow, and when it is cooling or at its limit.
    up: Expect,
    out: Expect,
}

const SCENARIO_RELIABILITY: &str = "reliability:\n  retries: 2\n  max_attempts: 4\n  backoff: { initial: 5ms, max: 20ms }\n  cooldown: { allowed_fails: 2, window: 60s, duration: 30s }\n";

/// The failure metrics whose every series a scenario accounts for.
const FAILURE_METRICS: [&str; 5] = [
    "switchyard_provider_errors_total{",
    "switchyard_retries_total{",
    "switchyard_fallbacks_total{",
    "switchyard_deployment_cooldowns_total{",
    "switchyard_stream_errors_total{",
];

/// `budget` = a1 and b1 (ordered), `premium` = big, with b1 put in the sibling state.
async fn degraded(sibling: Sibling) -> Setup {
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let rpm = if sibling == Sibling::RateLimited {
        ", rpm: 1"
    } else {
        ""
    };
    let yaml = table(
        [&a, &b, &p],
        &format!(
            "models:\n  - {{ name: a1, provider: a, model: small }}\n  - {{ name: b1, provider: b, model: small{rpm} }}\n  - {{ name: big, provider: p, model: large }}\ntiers:\n  budget: {{ models: [a1, b1], strategy: ordered }}\n  premium: {{ models: [big] }}\nrouting: {{ default: budget }}\nfallbacks: {{ budget: [premium] }}\n{SCENARIO_RELIABILITY}"
        ),
    );
    let gw = Gateway::start(&yaml).await;
    let s = Setup { a, b, p, gw };
    match sibling {
        Sibling::Healthy => {}
        Sibling::Cooling => {
            s.b.on(
                "small",
                error_reply(401, "Incorrect API key provided", Some("invalid_api_key")),
            );
            let resp = post(&s.gw, &chat_body("b1", "hello")).await;
            assert_eq!(resp.status(), 502);
            assert_eq!(s.deployment("b1").await["state"], "cooling_down");
        }
        Sibling::RateLimited => {
            assert_eq!(post(&s.gw, &chat_body("b1", "hello")).await.status(), 200);
            let b1 = s.deployment("b1").await;
            assert_eq!(b1["usage"]["requests_this_minute"], 1, "{b1}");
        }
        Sibling::Slow => s.b.slow(Duration::from_millis(150)),
    }
    s
}

async fn run(sc: &Scenario) {
    for sibling in SIBLINGS {
        let want = if sibling.up() { &sc.up } else { &sc.out };
        let what = format!("b1 {sibling:?}");
        let s = degraded(sibling).await;
        (sc.fault)(&s);
        let calls = s.calls();
        let before = s.gw.metrics().await;

        let mut body = chat_body("auto", "hello");
        if sc.stream {
            body["stream"] = json!(true);
        }
        let mut req = reqwest::Client::new()
            .post(s.gw.url("/v1/chat/completions"))
            .json(&body);
        if sc.no_fallback {
            req = req.header("x-switchyard-no-fallback", "true");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), want.status, "{what}");
        assert_eq!(header(&resp, "x-switchyard-model"), want.model, "{what}");
        assert_eq!(
            header(&resp, "x-switchyard-attempts"),
            want.attempts,
            "{what}"
        );
        assert_eq!(
            header(&resp, "x-switchyard-fallbacks"),
            want.chain,
            "{what}"
        );
        let text = resp.text().await.unwrap();
        match want.ends {
            Ends::Answer if sc.stream => {
                assert!(text.contains("Hello"), "{what}: {text}");
                assert!(text.ends_with("data: [DONE]\n\n"), "{what}: {text}");
            }
            Ends::Answer => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert!(v["choices"][0]["message"]["content"].is_string(), "{what}");
            }
            Ends::StreamError(code) => {
                assert!(
                    !text.contains("[DONE]"),
                    "{what}: a failed stream must not look complete: {text}"
                );
                let last = text.trim_end().rsplit("\n\n").next().unwrap();
                let v: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["error"]["code"], code, "{what}: {v}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("interrupted"),
                    "{what}: {v}"
                );
            }
            Ends::Error(code) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], code, "{what}: {v}");
            }
        }

        let (a, b, p) = s.calls();
        assert_eq!(
            (a - calls.0, b - calls.1, p - calls.2),
            want.calls,
            "{what}: upstream calls to a1, b1, big"
        );
        let a1 = s.deployment("a1").await;
        assert_eq!(
            (
                a1["state"].as_str().unwrap(),
                a1["window"]["failures"].as_u64().unwrap()
            ),
            want.a1,
            "{what}: {a1}"
        );
        let b1 = s.deployment("b1").await;
        match sibling {
            Sibling::Cooling => assert_eq!(b1["state"], "cooling_down", "{what}"),
            Sibling::RateLimited => {
                assert_eq!(b1["usage"]["requests_this_minute"], 1, "{what}: {b1}");
            }
            Sibling::Healthy | Sibling::Slow => {}
        }

        let moved = metric_deltas(&before, &s.gw.metrics().await, &FAILURE_METRICS);
        let expected: BTreeMap<String, f64> = want
            .metrics
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(moved, expected, "{what}: failure metric deltas");
    }
}

const PE_500: (&str, f64) = (
    r#"switchyard_provider_errors_total{class="server_error",model="a1"}"#,
    1.0,
);
const RETRY_500_B1: (&str, f64) = (
    r#"switchyard_retries_total{class="server_error",deployment="b1"}"#,
    1.0,
);
const RETRY_500_A1: (&str, f64) = (
    r#"switchyard_retries_total{class="server_error",deployment="a1"}"#,
    1.0,
);

fn one_off_500(s: &Setup) {
    s.a.on("small", error_reply(500, "boom", None));
}

/// A 500 on a1 while b1 cannot take traffic goes back to a1 (after a backoff) instead of
/// leaving the tier: no call to the pricier tier, with or without fallbacks.
const ONE_OFF_500: fn(bool) -> Scenario = |no_fallback| Scenario {
    fault: one_off_500,
    stream: false,
    no_fallback,
    up: Expect {
        status: 200,
        ends: Ends::Answer,
        model: "b1",
        attempts: "2",
        chain: "budget",
        calls: (1, 1, 0),
        a1: ("healthy", 1),
        metrics: vec![PE_500, RETRY_500_B1],
    },
    out: Expect {
        status: 200,
        ends: Ends::Answer,
        model: "a1",
        attempts: "2",
        chain: "budget",
        calls: (2, 0, 0),
        a1: ("healthy", 1),
        metrics: vec![PE_500, RETRY_500_A1],
    },
};

#[tokio::test]
async fn scenario_a_one_off_500() {
    run(&ONE_OFF_500(false)).await;
}

#[tokio::test]
async fn scenario_a_one_off_500_without_fallback() {
    run(&ONE_OFF_500(true)).await;
}

fn down_500(s: &Setup) {
    s.a.fail_after(0, error_reply(500, "boom", None));
}

const DOWN_COOLED: &[(&str, f64)] = &[
    (
        r#"switchyard_provider_errors_total{class="server_error",model="a1"}"#,
        3.0,
    ),
    (
        r#"switchyard_retries_total{class="server_error",deployment="a1"}"#,
        2.0,
    ),
    (
        r#"switchyard_deployment_cooldowns_total{class="server_error",deployment="a1"}"#,
        1.0,
    ),
];

/// a1 answers every call with a 500: with b1 out, the retries on a1 cool it (more than
/// `allowed_fails`), then the request falls back, or fails when it may not.
#[tokio::test]
async fn scenario_a_deployment_that_is_down() {
    let up = || Expect {
        status: 200,
        ends: Ends::Answer,
        model: "b1",
        attempts: "2",
        chain: "budget",
        calls: (1, 1, 0),
        a1: ("healthy", 1),
        metrics: vec![PE_500, RETRY_500_B1],
    };
    run(&Scenario {
        fault: down_500,
        stream: false,
        no_fallback: false,
        up: up(),
        out: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "big",
            attempts: "4",
            chain: "budget->premium",
            calls: (3, 0, 1),
            a1: ("cooling_down", 3),
            metrics: [
                DOWN_COOLED,
                &[(
                    r#"switchyard_fallbacks_total{from_tier="budget",reason="server_error",to_tier="premium"}"#,
                    1.0,
                )],
            ]
            .concat(),
        },
    })
    .await;
    run(&Scenario {
        fault: down_500,
        stream: false,
        no_fallback: true,
        up: up(),
        out: Expect {
            status: 500,
            ends: Ends::Error("upstream_error"),
            model: "a1",
            attempts: "3",
            chain: "budget",
            calls: (3, 0, 0),
            a1: ("cooling_down", 3),
            metrics: DOWN_COOLED.to_vec(),
        },
    })
    .await;
}

fn all_429(s: &Setup) {
    for m in [&s.a, &s.b, &s.p] {
        m.fail_after(
            0,
            Reply::Json {
                status: 429,
                body: json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
                headers: vec![],
            },
        );
    }
}

const RL_A1: &str = r#"switchyard_provider_errors_total{class="rate_limit",model="a1"}"#;
const RL_B1: &str = r#"switchyard_provider_errors_total{class="rate_limit",model="b1"}"#;
const RL_BIG: &str = r#"switchyard_provider_errors_total{class="rate_limit",model="big"}"#;
const RL_RETRY_A1: &str = r#"switchyard_retries_total{class="rate_limit",deployment="a1"}"#;
const RL_RETRY_B1: &str = r#"switchyard_retries_total{class="rate_limit",deployment="b1"}"#;
const RL_COOLED_A1: &str =
    r#"switchyard_deployment_cooldowns_total{class="rate_limit",deployment="a1"}"#;
const RL_FALLBACK: &str =
    r#"switchyard_fallbacks_total{from_tier="budget",reason="rate_limit",to_tier="premium"}"#;

/// 429 without `Retry-After` from every provider: retries within the tier (back on a1 when b1
/// is out), then the premium tier until the attempt budget (4) is spent; the client gets the 429.
#[tokio::test]
async fn scenario_429_without_retry_after_everywhere() {
    let limited = Ends::Error("rate_limit_exceeded");
    run(&Scenario {
        fault: all_429,
        stream: false,
        no_fallback: false,
        up: Expect {
            status: 429,
            ends: Ends::Error("rate_limit_exceeded"),
            model: "big",
            attempts: "4",
            chain: "budget->premium",
            calls: (2, 1, 1),
            a1: ("healthy", 2),
            metrics: vec![
                (RL_A1, 2.0),
                (RL_B1, 1.0),
                (RL_BIG, 1.0),
                (RL_RETRY_A1, 1.0),
                (RL_RETRY_B1, 1.0),
                (RL_FALLBACK, 1.0),
            ],
        },
        out: Expect {
            status: 429,
            ends: limited,
            model: "big",
            attempts: "4",
            chain: "budget->premium",
            calls: (3, 0, 1),
            a1: ("cooling_down", 3),
            metrics: vec![
                (RL_A1, 3.0),
                (RL_BIG, 1.0),
                (RL_RETRY_A1, 2.0),
                (RL_COOLED_A1, 1.0),
                (RL_FALLBACK, 1.0),
            ],
        },
    })
    .await;
    run(&Scenario {
        fault: all_429,
        stream: false,
        no_fallback: true,
        up: Expect {
            status: 429,
            ends: Ends::Error("rate_limit_exceeded"),
            model: "a1",
            attempts: "3",
            chain: "budget",
            calls: (2, 1, 0),
            a1: ("healthy", 2),
            metrics: vec![
                (RL_A1, 2.0),
                (RL_B1, 1.0),
                (RL_RETRY_A1, 1.0),
                (RL_RETRY_B1, 1.0),
            ],
        },
        out: Expect {
            status: 429,
            ends: Ends::Error("rate_limit_exceeded"),
            model: "a1",
            attempts: "3",
            chain: "budget",
            calls: (3, 0, 0),
            a1: ("cooling_down", 3),
            metrics: vec![(RL_A1, 3.0), (RL_RETRY_A1, 2.0), (RL_COOLED_A1, 1.0)],
        },
    })
    .await;
}

fn long_retry_after(s: &Setup) {
    s.a.on(
        "small",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
            headers: vec![("retry-after", "20".into())],
        },
    );
}

/// A 429 with `Retry-After: 20` cools a1 for 20 s at once (no window failure); too long to wait,
/// so with b1 out the request falls back, or fails with the provider's `Retry-After`.
#[tokio::test]
async fn scenario_429_with_a_long_retry_after() {
    let up = || Expect {
        status: 200,
        ends: Ends::Answer,
        model: "b1",
        attempts: "2",
        chain: "budget",
        calls: (1, 1, 0),
        a1: ("cooling_down", 0),
        metrics: vec![(RL_A1, 1.0), (RL_RETRY_B1, 1.0), (RL_COOLED_A1, 1.0)],
    };
    run(&Scenario {
        fault: long_retry_after,
        stream: false,
        no_fallback: false,
        up: up(),
        out: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "big",
            attempts: "2",
            chain: "budget->premium",
            calls: (1, 0, 1),
            a1: ("cooling_down", 0),
            metrics: vec![(RL_A1, 1.0), (RL_COOLED_A1, 1.0), (RL_FALLBACK, 1.0)],
        },
    })
    .await;
    run(&Scenario {
        fault: long_retry_after,
        stream: false,
        no_fallback: true,
        up: up(),
        out: Expect {
            status: 429,
            ends: Ends::Error("rate_limit_exceeded"),
            model: "a1",
            attempts: "1",
            chain: "budget",
            calls: (1, 0, 0),
            a1: ("cooling_down", 0),
            metrics: vec![(RL_A1, 1.0), (RL_COOLED_A1, 1.0)],
        },
    })
    .await;
}

/// a1 hangs once past its timeout; the retry goes to b1, or back to a1 when b1 is out.
#[tokio::test]
async fn scenario_a_hung_call() {
    const PE: (&str, f64) = (
        r#"switchyard_provider_errors_total{class="timeout",model="a1"}"#,
        1.0,
    );
    run(&Scenario {
        fault: |s| s.a.on("small", Reply::Hang),
        stream: false,
        no_fallback: false,
        up: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "b1",
            attempts: "2",
            chain: "budget",
            calls: (1, 1, 0),
            a1: ("healthy", 1),
            metrics: vec![
                PE,
                (
                    r#"switchyard_retries_total{class="timeout",deployment="b1"}"#,
                    1.0,
                ),
            ],
        },
        out: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "a1",
            attempts: "2",
            chain: "budget",
            calls: (2, 0, 0),
            a1: ("healthy", 1),
            metrics: vec![
                PE,
                (
                    r#"switchyard_retries_total{class="timeout",deployment="a1"}"#,
                    1.0,
                ),
            ],
        },
    })
    .await;
}

/// After the first byte nothing can be retried: whatever b1's state, a stream that breaks is an
/// error event for the client, a failure on a1's breaker, and a stream error with its reason.
fn after_first_byte(
    fault: fn(&Setup),
    code: &'static str,
    metrics: &[(&'static str, f64)],
) -> Scenario {
    let e = || Expect {
        status: 200,
        ends: Ends::StreamError(code),
        model: "a1",
        attempts: "1",
        chain: "budget",
        calls: (1, 0, 0),
        a1: ("healthy", 1),
        metrics: metrics.to_vec(),
    };
    Scenario {
        fault,
        stream: true,
        no_fallback: false,
        up: e(),
        out: e(),
    }
}

#[tokio::test]
async fn scenario_a_stream_that_ends_cleanly_without_done() {
    run(&after_first_byte(
        |s| s.a.on("small", cut_stream("small", 2)),
        "cut_off",
        &[
            PE_500,
            (
                r#"switchyard_stream_errors_total{class="server_error",model="a1",reason="cut_off"}"#,
                1.0,
            ),
        ],
    ))
    .await;
}

#[tokio::test]
async fn scenario_a_stream_that_stalls_after_its_first_chunk() {
    run(&after_first_byte(
        |s| {
            let _never_released = s.a.held_stream("small", 1);
        },
        "timeout",
        &[
            (
                r#"switchyard_provider_errors_total{class="timeout",model="a1"}"#,
                1.0,
            ),
            (
                r#"switchyard_stream_errors_total{class="timeout",model="a1",reason="timeout"}"#,
                1.0,
            ),
        ],
    ))
    .await;
}

#[tokio::test]
async fn scenario_a_stream_whose_connection_breaks() {
    run(&after_first_byte(
        |s| s.a.on("small", Reply::BrokenStream(2)),
        "connection",
        &[
            PE_500,
            (
                r#"switchyard_stream_errors_total{class="server_error",model="a1",reason="connection"}"#,
                1.0,
            ),
        ],
    ))
    .await;
}

/// A stream that ends before its first chunk (only `[DONE]`) sent the client nothing: it is
/// retried like any failure, on b1 or back on a1.
#[tokio::test]
async fn scenario_a_stream_that_ends_before_its_first_chunk() {
    run(&Scenario {
        fault: |s| {
            s.a.on(
                "small",
                Reply::Stream {
                    events: vec!["[DONE]".into()],
                    gate: None,
                },
            )
        },
        stream: true,
        no_fallback: true,
        up: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "b1",
            attempts: "2",
            chain: "budget",
            calls: (1, 1, 0),
            a1: ("healthy", 1),
            metrics: vec![PE_500, RETRY_500_B1],
        },
        out: Expect {
            status: 200,
            ends: Ends::Answer,
            model: "a1",
            attempts: "2",
            chain: "budget",
            calls: (2, 0, 0),
            a1: ("healthy", 1),
            metrics: vec![PE_500, RETRY_500_A1],
        },
    })
    .await;
}

// ------------------------------------------------------------------------------------------------
// Errors that say which deployments are out and why; waits that are not overhead
// ------------------------------------------------------------------------------------------------

async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, String, String) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = resp.json().await.unwrap();
    (
        status,
        retry_after,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn a_tier_at_its_rpm_limits_says_so_and_is_not_called_cooling() {
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let models = r#"
models:
  - { name: a1, provider: a, model: small, rpm: 1 }
  - { name: b1, provider: b, model: small, rpm: 1 }
  - { name: big, provider: p, model: large }
tiers:
  budget: { models: [a1, b1], strategy: ordered }
  premium: { models: [big] }
routing: { default: budget }
"#;
    let gw = Gateway::start(&table([&a, &b, &p], models)).await;
    for _ in 0..2 {
        assert_eq!(post(&gw, &chat_body("auto", "hi")).await.status(), 200);
    }
    let (status, retry_after, code, msg) =
        error_of(post(&gw, &chat_body("auto", "hi")).await).await;
    assert_eq!((status, code.as_str()), (503, "no_deployment_available"));
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert!(
        msg.starts_with("no deployment of tier `budget` can take the request now: "),
        "{msg}"
    );
    for d in ["a1", "b1"] {
        assert!(
            msg.contains(&format!(
                "{d} has reached its rpm limit (1/min) until the minute ends at "
            )),
            "{msg}"
        );
    }
    assert!(!msg.contains("cool") && !msg.contains("fail"), "{msg}");
    assert_eq!((a.calls(), b.calls(), p.calls()), (1, 1, 0));

    // With a fallback, the move is counted as a usage limit, not a cooldown.
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let gw = Gateway::start(&table(
        [&a, &b, &p],
        &format!("{models}fallbacks: {{ budget: [premium] }}\n"),
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(post(&gw, &chat_body("auto", "hi")).await.status(), 200);
    }
    assert_eq!((a.calls(), b.calls(), p.calls()), (1, 1, 1));
    let text = gw.metrics().await;
    assert_metric(
        &text,
        r#"switchyard_fallbacks_total{from_tier="budget",reason="usage_limit",to_tier="premium"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_pinned_model_that_is_out_is_named_not_its_tier() {
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let yaml = table(
        [&a, &b, &p],
        r#"
models:
  - { name: a1, provider: a, model: small }
  - { name: b1, provider: b, model: small, tpm: 10 }
  - { name: big, provider: p, model: large }
tiers:
  budget: { models: [a1, b1], strategy: ordered }
  premium: { models: [big] }
routing: { default: budget }
reliability:
  cooldown: { duration: 300ms }
  backoff: { max_retry_wait: 1ms }    # never wait for the cooldown to end
"#,
    );
    let gw = Gateway::start(&yaml).await;
    // a1's key is rejected: it cools at once. b1 stays healthy.
    a.on(
        "small",
        error_reply(401, "Incorrect API key provided", Some("invalid_api_key")),
    );
    let resp = post(&gw, &chat_body("a1", "hi")).await;
    assert_eq!(resp.status(), 502);
    let (status, retry_after, code, msg) = error_of(post(&gw, &chat_body("a1", "hi")).await).await;
    assert_eq!((status, code.as_str()), (503, "no_deployment_available"));
    assert!(retry_after.is_some());
    assert!(
        msg.starts_with(
            "model `a1` cannot take the request now: it is cooling down after authentication failures until "
        ),
        "{msg}"
    );
    assert!(!msg.contains("tier") && !msg.contains("b1"), "{msg}");
    // The tier itself still answers, from b1.
    let resp = post(&gw, &chat_body("auto", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b1");

    // b1's tpm: the prompt and the mock's 7 completion tokens are over its 10 already; the next
    // prompt does not fit.
    let (status, _, _, msg) = error_of(post(&gw, &chat_body("b1", "hi")).await).await;
    assert_eq!(status, 503);
    assert!(
        msg.starts_with("model `b1` cannot take the request now: it has reached its tpm limit (")
            && msg.contains(" of 10 tokens used this minute, the prompt needs about "),
        "{msg}"
    );

    // Once the cooldown is over, one probe goes out; while it is in flight, the model is busy
    // probing, which the error says.
    let state = |gw: &Gateway| {
        let url = gw.url("/admin/deployments");
        async move {
            let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            v["data"][0]["state"].as_str().unwrap().to_string()
        }
    };
    eventually_async("the cooldown to end", Duration::from_secs(5), || async {
        state(&gw).await == "half_open"
    })
    .await;
    let _held = a.held_stream("small", 0);
    let probe = spawn_stream_to(gw.url("/v1/chat/completions"), "a1");
    eventually_async("the probe to start", Duration::from_secs(5), || async {
        state(&gw).await == "probing"
    })
    .await;
    let (status, _, _, msg) = error_of(post(&gw, &chat_body("a1", "hi")).await).await;
    assert_eq!(status, 503);
    assert!(
        msg.contains("it finished its cooldown (after authentication failures) and one probe request is testing it; the probe decides by "),
        "{msg}"
    );
    probe.abort();
}

/// A streaming request for `model` in the background.
fn spawn_stream_to(url: String, model: &str) -> tokio::task::JoinHandle<()> {
    let body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    tokio::spawn(async move {
        if let Ok(r) = reqwest::Client::new().post(url).json(&body).send().await {
            let _ = r.text().await;
        }
    })
}

#[tokio::test]
async fn time_waiting_for_a_retry_after_is_a_wait_not_overhead() {
    let (a, b, p) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let gw = Gateway::start(&table(
        [&a, &b, &p],
        r#"
models:
  - { name: a1, provider: a, model: small }
tiers:
  budget: { models: [a1] }
routing: { default: budget }
"#,
    ))
    .await;
    // The only deployment asks for one second: the request waits for it rather than failing.
    a.on(
        "small",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down"}}),
            headers: vec![("retry-after", "1".into())],
        },
    );
    let resp = post(&gw, &chat_body("auto", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    let wait: f64 = header(&resp, "x-switchyard-wait-ms").parse().unwrap();
    let overhead: f64 = header(&resp, "x-switchyard-overhead-ms").parse().unwrap();
    assert!(wait >= 990.0, "{wait}");
    assert!(
        overhead < wait / 4.0,
        "the wait counted as overhead: {overhead}"
    );
    let text = gw.metrics().await;
    assert_metric(&text, "switchyard_retry_wait_seconds_count", 1.0);
    assert!(metric_value(&text, "switchyard_retry_wait_seconds_sum") >= 0.99);
    assert!(metric_value(&text, "switchyard_gateway_overhead_seconds_sum") < 0.25);

    // A request that did not wait says 0 and leaves the wait histogram alone.
    let resp = post(&gw, &chat_body("auto", "hi")).await;
    assert_eq!(header(&resp, "x-switchyard-wait-ms"), "0.000");
    let text = gw.metrics().await;
    assert_metric(&text, "switchyard_retry_wait_seconds_count", 1.0);
    assert_metric(&text, "switchyard_gateway_overhead_seconds_count", 2.0);
}
