//! What went wrong upstream, classified once so that retry, fallback and the client's status code
//! all read the same answer.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 429 or a provider's overload signal.
    RateLimit,
    /// No answer (or no first byte) in time.
    Timeout,
    /// 5xx from the provider.
    Server,
    /// The connection failed or was reset.
    Connect,
    /// The provider answered with something that is not what its API promises.
    InvalidResponse,
    /// A stream ended cleanly but before its final chunk (no `finish_reason`, no `[DONE]`, no
    /// `message_stop`): a proxy restart, an idle timeout, a crashed server cut the answer off.
    CutOff,
    /// The prompt does not fit the model's context window.
    ContextWindow,
    /// The provider refused on safety / content-policy grounds.
    ContentPolicy,
    /// 401 / 403: our credentials for the provider are wrong.
    Auth,
    /// 400 and other client errors no other deployment will answer differently.
    BadRequest,
    /// 404: the provider does not know the model or route.
    NotFound,
}

/// The eight classes a failure is counted, cooled and configured by (`reliability.policies`).
/// Every metric, log and `/admin/deployments` label is one of these.
pub const CLASSES: [&str; 8] = [
    "rate_limit",
    "timeout",
    "server_error",
    "context_window",
    "content_policy",
    "authentication",
    "bad_request",
    "not_found",
];

/// A failure's class: what it is counted, cooled and configured by. One type for providers (which
/// classify), policies (which decide by it) and deployment state (which remembers what cooled a
/// deployment), so no class travels as a string to be parsed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    RateLimit,
    Timeout,
    ServerError,
    ContextWindow,
    ContentPolicy,
    Authentication,
    BadRequest,
    NotFound,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::RateLimit,
        ErrorClass::Timeout,
        ErrorClass::ServerError,
        ErrorClass::ContextWindow,
        ErrorClass::ContentPolicy,
        ErrorClass::Authentication,
        ErrorClass::BadRequest,
        ErrorClass::NotFound,
    ];

    /// The label in metrics, logs, `/admin/deployments` and `reliability.policies`: one of
    /// [`CLASSES`].
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ServerError => "server_error",
            ErrorClass::ContextWindow => "context_window",
            ErrorClass::ContentPolicy => "content_policy",
            ErrorClass::Authentication => "authentication",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::NotFound => "not_found",
        }
    }

    /// The class a label names.
    pub fn parse(label: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.label() == label)
    }

    /// A failure that belongs to the deployment's configuration (its key, its model id) happens
    /// again on every call to it: its retry goes to another deployment or nowhere.
    pub fn retries_elsewhere_only(self) -> bool {
        matches!(self, ErrorClass::Authentication | ErrorClass::NotFound)
    }
}

impl ErrorKind {
    const ALL: [ErrorKind; 11] = [
        ErrorKind::RateLimit,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Connect,
        ErrorKind::InvalidResponse,
        ErrorKind::CutOff,
        ErrorKind::ContextWindow,
        ErrorKind::ContentPolicy,
        ErrorKind::Auth,
        ErrorKind::BadRequest,
        ErrorKind::NotFound,
    ];

    /// The failure's class: connection failures, invalid answers and cut-off streams are server
    /// errors (the provider failed to deliver; another deployment may not).
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::RateLimit => ErrorClass::RateLimit,
            ErrorKind::Timeout => ErrorClass::Timeout,
            ErrorKind::Server
            | ErrorKind::Connect
            | ErrorKind::InvalidResponse
            | ErrorKind::CutOff => ErrorClass::ServerError,
            ErrorKind::ContextWindow => ErrorClass::ContextWindow,
            ErrorKind::ContentPolicy => ErrorClass::ContentPolicy,
            ErrorKind::Auth => ErrorClass::Authentication,
            ErrorKind::BadRequest => ErrorClass::BadRequest,
            ErrorKind::NotFound => ErrorClass::NotFound,
        }
    }

    /// The class's label, one of [`CLASSES`].
    pub fn as_str(self) -> &'static str {
        self.class().label()
    }

    /// What exactly went wrong, finer than the class: the class itself, or for server errors
    /// `connection` (refused, reset, broken mid-answer), `invalid_response` (not what the API
    /// promises) or `cut_off` (a stream that ended before its final chunk).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connection",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::CutOff => "cut_off",
            k => k.as_str(),
        }
    }

    /// The inverse of [`ErrorKind::reason`].
    pub fn parse_reason(s: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.reason() == s)
    }
}

#[derive(Debug, Clone)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
    /// The provider's own error code or type (`context_length_exceeded`, `overloaded_error`…).
    pub code: Option<String>,
    pub param: Option<String>,
    /// How long the provider asked us to wait (Retry-After, retry-after-ms).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if let Some(s) = self.status {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ProviderError {}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            message: message.into(),
            code: None,
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid_response(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidResponse, message)
    }

    /// A stream that ended before its final chunk.
    pub fn cut_off(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CutOff, message)
    }

    /// Classifies a transport failure from reqwest (never includes the URL, which may carry secrets).
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::new(ErrorKind::Timeout, "the provider did not answer in time")
        } else if e.is_connect() {
            Self::new(ErrorKind::Connect, "could not connect to the provider")
        } else if e.is_decode() || e.is_body() {
            Self::new(
                ErrorKind::Connect,
                "the provider's connection failed while reading the answer",
            )
        } else {
            Self::new(ErrorKind::Connect, "the request to the provider failed")
        }
    }

    /// Classifies a non-2xx answer. Understands both OpenAI's `{"error":{message,type,code,param}}`
    /// and Anthropic's `{"type":"error","error":{type,message}}` bodies.
    pub fn from_http(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let field = |k: &str| {
            err.and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let message = field("message")
            .or_else(|| err.and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    format!("the provider answered HTTP {status} with no body")
                } else {
                    format!(
                        "the provider answered HTTP {status}: {}",
                        truncate(text, 300)
                    )
                }
            });
        let code = field("code").or_else(|| field("type"));
        let param = field("param");
        let lower = message.to_ascii_lowercase();
        let code_is = |c: &str| code.as_deref() == Some(c);

        let kind = if status == 429 || code_is("overloaded_error") || status == 529 {
            ErrorKind::RateLimit
        } else if code_is("context_length_exceeded")
            || lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("prompt is too long")
            || lower.contains("maximum context")
            || lower.contains("too many tokens")
        {
            ErrorKind::ContextWindow
        } else if code_is("content_filter")
            || code_is("content_policy_violation")
            || lower.contains("content management policy")
            || lower.contains("content policy")
            || lower.contains("safety system")
        {
            ErrorKind::ContentPolicy
        } else if status == 401 || status == 403 {
            ErrorKind::Auth
        } else if status == 404 {
            ErrorKind::NotFound
        } else if status == 408 {
            ErrorKind::Timeout
        } else if status >= 500 {
            ErrorKind::Server
        } else {
            ErrorKind::BadRequest
        };
        ProviderError {
            kind,
            status: Some(status),
            message,
            code,
            param,
            retry_after: retry_after(headers),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `retry-after-ms` (OpenAI) wins over `retry-after` (seconds, or an HTTP date we do not parse).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let secs = get("retry-after").and_then(|v| v.parse::<f64>().ok())?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        ProviderError::from_http(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn classifies_openai_and_anthropic_bodies() {
        let e = classify(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextWindow);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = classify(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextWindow);
        let e = classify(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimit);
        let e = classify(
            400,
            r#"{"error":{"message":"blocked","code":"content_filter"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContentPolicy);
        // Whether it is retried is the dispatch policy's call (dispatch/policy.rs tests it).
        assert_eq!(classify(401, "{}").kind, ErrorKind::Auth);
        assert_eq!(classify(503, "oops").kind, ErrorKind::Server);
        assert!(classify(503, "oops").message.contains("oops"));
        assert_eq!(classify(422, "{}").kind, ErrorKind::BadRequest);
    }

    #[test]
    fn every_kind_has_a_documented_class_and_its_own_reason() {
        for k in ErrorKind::ALL {
            assert!(CLASSES.contains(&k.as_str()), "{k:?}");
            assert_eq!(ErrorKind::parse_reason(k.reason()), Some(k));
        }
        assert_eq!(ErrorKind::Connect.as_str(), "server_error");
        assert_eq!(ErrorKind::CutOff.reason(), "cut_off");
    }

    #[test]
    fn reads_retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }
}
