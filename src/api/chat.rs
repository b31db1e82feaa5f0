//! `POST /v1/chat/completions`: parse, route, dispatch, answer.

use super::auth::CallerKey;
use super::error::ApiError;
use super::headers::{self, format_ms};
use super::request_id::RequestId;
use super::{AppState, request, stream};
use crate::cost::account::Account;
use crate::dispatch;
use crate::routing::Decision;
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
use std::net::SocketAddr;
use std::time::Instant;

pub async fn completions(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    key: Option<Extension<CallerKey>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let gw = state.gateway();
    let mut rec = Account::start(state.sinks(), gw.clone(), request_id, start);
    rec.caller_key(key.map(|Extension(CallerKey(k))| k));

    let limits = request::BodyLimits {
        max_bytes: gw.config.server.max_body_bytes,
        timeout: gw.config.server.body_read_timeout.0,
    };
    let req = match request::read(&headers, body, limits, state.drain_started()).await {
        Ok(r) => r,
        Err(e) => return unread_body(&state, &mut rec, e, peer.map(|Extension(ConnectInfo(p))| p)),
    };
    rec.request(&req);
    rec.requested_model = Some(req.model.clone());
    let Some(decision) = gw.router.decide(&req, &headers).await else {
        let available: Vec<&str> = gw.router.model_names().collect();
        let mut e = ApiError::not_found(format!(
            "The model `{}` does not exist on this gateway. Available: {}.",
            req.model,
            available.join(", ")
        ))
        .with_code("model_not_found");
        e.body.error.param = Some("model".into());
        return fail(&mut rec, e);
    };
    rec.decided(&decision);
    rec.stream = req.is_stream();
    let fallback = !headers::flag(&headers, &headers::NO_FALLBACK);
    let Some(plan) = dispatch::plan(&gw.tables, &decision, fallback) else {
        return fail(
            &mut rec,
            ApiError::not_found(format!("The model `{}` is not configured.", req.model))
                .with_code("model_not_found"),
        );
    };

    let progress = rec.progress();
    if req.is_stream() {
        let (result, outcome) = dispatch::chat_stream(&gw.tables, &req, &plan, &progress).await;
        rec.dispatched(&outcome);
        return match result {
            Ok((first, rest)) => {
                let overhead = rec.overhead();
                let mut resp = {
                    let wants_usage = req.wants_stream_usage();
                    rec.keep_request(req);
                    stream::respond(first, rest, wants_usage, gw.clone(), rec)
                };
                decorate(resp.headers_mut(), &decision, Some(&outcome), overhead);
                resp
            }
            Err(e) => {
                let model = rec.model.clone().unwrap_or_else(|| decision.tier.clone());
                let err = ApiError::from_provider(&e, &model, &gw.redactor);
                let overhead = rec.overhead();
                let mut resp = fail(&mut rec, err);
                decorate(resp.headers_mut(), &decision, Some(&outcome), overhead);
                resp
            }
        };
    }

    let (result, outcome) = dispatch::answer(
        &gw.tables,
        gw.cascade.as_ref(),
        &decision,
        &req,
        &plan,
        &progress,
    )
    .await;
    rec.dispatched(&outcome);
    rec.bill_discarded(&outcome, &req);
    let mut resp = match result {
        Ok(answer) => {
            rec.answered(answer.usage, &req, &answer.body);
            let body = match serde_json::to_vec(&answer.body) {
                Ok(b) => b,
                Err(_) => {
                    return fail(
                        &mut rec,
                        ApiError::new(
                            http::StatusCode::BAD_GATEWAY,
                            "api_error",
                            "the provider's answer could not be encoded",
                        ),
                    );
                }
            };
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            rec.finish(200, None);
            headers::cost_headers(resp.headers_mut(), rec.cost());
            resp
        }
        Err(e) => {
            let model = rec.model.clone().unwrap_or_else(|| decision.tier.clone());
            fail(&mut rec, ApiError::from_provider(&e, &model, &gw.redactor))
        }
    };
    let overhead = rec.overhead();
    decorate(resp.headers_mut(), &decision, Some(&outcome), overhead);
    resp
}

/// A request whose body could not be read. A body that stopped arriving, or that shutdown
/// interrupted, leaves the connection unusable: the answer closes it, and both are counted.
fn unread_body(
    state: &AppState,
    rec: &mut Account,
    e: ApiError,
    peer: Option<SocketAddr>,
) -> Response {
    let code = e.body.error.code.clone();
    let edge = &state.metrics().edge;
    let closes = match code.as_deref() {
        Some(request::BODY_TIMEOUT) => {
            edge.client_timeouts.with_label_values(&["body"]).inc();
            tracing::warn!(
                request_id = %rec.request_id,
                peer = peer.map(tracing::field::display),
                phase = "body",
                "closing a connection whose request body did not arrive within server.body_read_timeout"
            );
            true
        }
        Some(request::DRAINING) => {
            edge.shed.with_label_values(&["draining"]).inc();
            true
        }
        _ => false,
    };
    let mut resp = fail(rec, e);
    if closes {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn fail(rec: &mut Account, e: ApiError) -> Response {
    rec.finish(e.status.as_u16(), Some(&e.body.error.message));
    e.into_response()
}

/// `timing` is (overhead, time waited before retries).
fn decorate(
    h: &mut HeaderMap,
    d: &Decision,
    outcome: Option<&dispatch::Outcome>,
    timing: (std::time::Duration, std::time::Duration),
) {
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers::ROUTE, &dispatch::route_label(d, outcome));
    match outcome.and_then(|o| o.served.as_ref()) {
        Some(c) => {
            set(headers::TIER, &c.tier);
            set(headers::MODEL, &c.model.name);
        }
        None => set(headers::TIER, &d.tier),
    }
    if let Some(o) = outcome {
        set(headers::ATTEMPTS, &o.attempts.to_string());
        if !o.walked.is_empty() {
            set(headers::FALLBACKS, &o.chain());
        }
    }
    if let Some(c) = outcome.and_then(|o| o.cascade.as_ref()) {
        let value = match c.reason {
            Some(r) => format!("{}:{}", c.outcome.as_str(), r.as_str()),
            None => c.outcome.as_str().to_string(),
        };
        set(headers::CASCADE, &value);
    }
    set(headers::OVERHEAD_MS, &format_ms(timing.0));
    set(headers::WAIT_MS, &format_ms(timing.1));
}
