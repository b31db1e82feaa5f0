use serde::Serialize;

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. The SDKs read exactly
/// these four fields, so every error switchyard returns has this shape.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Facts particular to one error (a budget's amount, spend and reset time), beside the four
    /// fields every SDK reads.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ErrorBody {
    pub fn new(
        message: impl Into<String>,
        kind: &str,
        param: Option<String>,
        code: Option<&str>,
    ) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.to_string(),
                param,
                code: code.map(str::to_string),
                extra: None,
            },
        }
    }
}
