//! Reading a chat request body: size limit, content type, JSON with the path of the offending
//! field in the error's `param`, then the checks serde cannot express.

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

/// The codes of the two ways a body read ends without a body; both answers close the connection,
/// whose unread body would otherwise be taken for the next request.
pub const BODY_TIMEOUT: &str = "request_timeout";
pub const DRAINING: &str = "gateway_draining";

/// Reads and parses the body. Stops early, with a 503 the SDKs retry, when `drain` resolves
/// (shutdown began) before the body has arrived.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    drain: impl Future<Output = ()>,
) -> Result<ChatRequest, ApiError> {
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
    let bytes = read.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else {
            ApiError::invalid_request("The request body could not be read.", None)
        }
    })?;
    parse(&bytes)
}

pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let req: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::invalid_request(
                format!("We could not parse the JSON body of your request: {inner}"),
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
    })?;
    req.validate().map_err(|(param, msg)| {
        ApiError::invalid_request(format!("{param}: {msg}"), Some(param))
    })?;
    Ok(req)
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
    }

    #[test]
    fn keeps_unknown_fields() {
        let r = parse(br#"{"model":"auto","messages":[{"role":"user","content":"hi","name":"x"}],"seed":7,"vendor_knob":{"a":1}}"#).unwrap();
        assert_eq!(r.extra["seed"], 7);
        assert_eq!(r.extra["vendor_knob"]["a"], 1);
        assert_eq!(r.messages[0].extra["name"], "x");
    }
}
