//! Reading a request body: size limit, content type, JSON with the path of the offending field in
//! the error's `param`, then (for a chat request) the checks serde cannot express.

use super::error::ApiError;
use crate::openai::ChatRequest;
use axum::body::Body;
use http::{HeaderMap, StatusCode};
use std::future::Future;
use std::time::Duration;

/// What a request body may be: at most `max_bytes` (`server.max_body_bytes`), all of it within
/// `timeout` (`server.body_read_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl BodyLimits {
    pub fn of(gw: &crate::gateway::Gateway) -> BodyLimits {
        BodyLimits {
            max_bytes: gw.config.server.max_body_bytes,
            timeout: gw.config.server.body_read_timeout.0,
        }
    }
}

/// The codes of the two ways a body read ends without a body; both answers close the connection,
/// whose unread body would otherwise be taken for the next request.
pub const BODY_TIMEOUT: &str = "request_timeout";
pub const DRAINING: &str = "gateway_draining";

/// Reads and parses a chat request body. Stops early, with a 503 the SDKs retry, when `drain`
/// resolves (shutdown began) before the body has arrived.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    drain: impl Future<Output = ()>,
) -> Result<ChatRequest, ApiError> {
    parse(&read_bytes(headers, body, limits, drain).await?)
}

/// Reads a JSON body within `limits`, for any inbound wire format.
pub async fn read_bytes(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    drain: impl Future<Output = ()>,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits.max_bytes;
    if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                format!("Unsupported content type {essence:?}: send the body as application/json."),
            )
            .with_code("unsupported_media_type"));
        }
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than this gateway's limit of {limit} bytes (server.max_body_bytes)."),
        )
        .with_code("request_too_large")
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limit));
    let read = tokio::select! {
        biased;
        r = read => r,
        () = drain => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "This gateway began shutting down before the request body arrived; retry (another replica will answer).",
            )
            .with_code(DRAINING);
            e.retry_after = Some(Duration::from_secs(1));
            return Err(e);
        }
    };
    let Ok(read) = read else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "The request body did not arrive within {:?} (server.body_read_timeout).",
                limits.timeout
            ),
        )
        .with_code(BODY_TIMEOUT));
    };
    read.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else {
            ApiError::invalid_request("The request body could not be read.", None)
        }
    })
}

pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let req: ChatRequest = decode(bytes)?;
    req.validate().map_err(|(param, msg)| {
        ApiError::invalid_request(format!("{param}: {msg}"), Some(param))
    })?;
    Ok(req)
}

/// JSON into `T`, or a 400 whose `param` is the path of the offending field (`invalid_json`
/// when the body is not JSON at all).
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde stops at the first wrong type before it reaches broken syntax further on
        // (`0 garbage`); a body that is not JSON at all is reported as that.
        let syntax = if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            Some(inner.to_string())
        } else {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = syntax {
            return ApiError::invalid_request(
                format!("We could not parse the JSON body of your request: {why}"),
                None,
            )
            .with_code("invalid_json");
        }
        let msg = inner.to_string();
        // serde reports a missing field at the parent's path; name the field itself.
        let param = match msg
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            Some(field) if path == "." => field.to_string(),
            Some(field) => format!("{path}.{field}"),
            None if path == "." => String::new(),
            None => path,
        };
        let message = if param.is_empty() {
            msg
        } else {
            format!("{param}: {msg}")
        };
        ApiError::invalid_request(message, Some(param).filter(|p| !p.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_the_offending_field() {
        let e = parse(br#"{"model":"auto","messages":[{"role":1,"content":"hi"}]}"#).unwrap_err();
        assert_eq!(e.body.error.param.as_deref(), Some("messages[0].role"));
        let e = parse(br#"{"model":"auto"}"#).unwrap_err();
        assert_eq!(e.body.error.param.as_deref(), Some("messages"));
        let e = parse(br#"{"model":"auto","messages":[{"role":"user"}],"#).unwrap_err();
        assert_eq!(e.body.error.code.as_deref(), Some("invalid_json"));
        let e = parse(br#"{"model":"auto","messages":[]}"#).unwrap_err();
        assert_eq!(e.body.error.param.as_deref(), Some("messages"));
        let e =
            parse(br#"{"model":"auto","messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.body.error.param.as_deref(), Some("messages[0].role"));
        let e = parse(br#"{"model":"auto","messages":[{"role":"user","content":5}]}"#).unwrap_err();
        assert_eq!(e.body.error.param.as_deref(), Some("messages[0].content"));
        let e = parse(br#"[1,2]"#).unwrap_err();
        assert_eq!(e.status, 400);
        // Wrong types first, broken syntax after: still not JSON (found by the property tests).
        for body in [&b"0\0"[..], br#"{"model": 1, "messages": [} "#] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.body.error.code.as_deref(), Some("invalid_json"));
            assert_eq!(e.body.error.param, None);
        }
    }

    #[test]
    fn keeps_unknown_fields() {
        let r = parse(br#"{"model":"auto","messages":[{"role":"user","content":"hi","name":"x"}],"seed":7,"vendor_knob":{"a":1}}"#).unwrap();
        assert_eq!(r.extra["seed"], 7);
        assert_eq!(r.extra["vendor_knob"]["a"], 1);
        assert_eq!(r.messages[0].extra["name"], "x");
    }
}

/// Property tests: whatever bytes arrive, `parse` answers, and every refusal has the documented
/// shape (400, `invalid_request_error`, a message; `invalid_json` when the body is not JSON; a
/// `param` that names a field when one is set).
#[cfg(test)]
mod properties {
    use super::parse;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Keys a chat request has, so that generated objects get past the first field often.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("model".to_string()),
            Just("messages".to_string()),
            Just("role".to_string()),
            Just("content".to_string()),
            Just("stream".to_string()),
            Just("stream_options".to_string()),
            Just("metadata".to_string()),
            Just("tools".to_string()),
            Just("type".to_string()),
            Just("text".to_string()),
            Just("image_url".to_string()),
            "\\PC{0,8}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            prop_oneof![
                Just("user".to_string()),
                Just("system".to_string()),
                Just("assistant".to_string()),
                Just("auto".to_string()),
                "\\PC{0,16}"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A request that is nearly right: a model, messages of any shape, anything else beside.
    fn near_request() -> impl Strategy<Value = Value> {
        let message = (
            prop_oneof![
                Just(json!("user")),
                Just(json!("system")),
                Just(json!("developer")),
                Just(json!("tool")),
                json_value()
            ],
            json_value(),
            btree_map(key(), json_value(), 0..3),
        )
            .prop_map(|(role, content, extra)| {
                let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
                m.insert("role".into(), role);
                m.insert("content".into(), content);
                Value::Object(m)
            });
        (
            prop_oneof![Just(json!("auto")), json_value()],
            vec(message, 0..4),
            btree_map(key(), json_value(), 0..4),
        )
            .prop_map(|(model, messages, extra)| {
                let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
                m.insert("model".into(), model);
                m.insert("messages".into(), Value::Array(messages));
                Value::Object(m)
            })
    }

    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        let Err(e) = parse(bytes) else {
            return Ok(());
        };
        prop_assert_eq!(e.status, 400);
        let body = serde_json::to_value(&e.body).map_err(|x| TestCaseError::fail(x.to_string()))?;
        let err = &body["error"];
        prop_assert_eq!(&err["type"], "invalid_request_error");
        prop_assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        prop_assert!(
            err["param"].is_null() || err["param"].as_str().is_some_and(|p| !p.is_empty())
        );
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            prop_assert_eq!(&err["code"], "invalid_json");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
            check(&bytes)?;
        }

        #[test]
        fn arbitrary_json(v in json_value()) {
            check(&serde_json::to_vec(&v).unwrap_or_default())?;
        }

        #[test]
        fn nearly_valid_requests(v in near_request()) {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            check(&bytes)?;
            if let Ok(r) = parse(&bytes) {
                prop_assert!(!r.messages.is_empty());
                // What the router and the estimator read from a parsed request never panics.
                let _ = r.last_user_message().map(|m| m.text());
                let _ = crate::tokens::estimate_prompt(&r);
            }
        }

        #[test]
        fn cut_and_corrupted_requests(
            v in near_request(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            if !bytes.is_empty() {
                let i = flip.index(bytes.len());
                bytes[i] = byte;
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            check(&bytes)?;
        }
    }
}
