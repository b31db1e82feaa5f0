//! OpenAI embeddings wire types: `POST /v1/embeddings`. Like chat requests, fields switchyard
//! does not act on are kept in `extra` and forwarded unchanged.

use super::json_type;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most inputs OpenAI takes in one request; a larger batch is refused before any call.
pub const MAX_INPUTS: usize = 2048;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, an array of strings, an array of token ids, or an array of token-id arrays;
    /// checked by [`EmbeddingRequest::validate`], which names the offending element.
    pub input: Value,
    /// `float` (the default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The input's size in tokens, worked out once (`tokens::embedding_input`).
    #[serde(skip)]
    pub input_tokens: InputTokens,
}

/// The input's tokens in all and in its longest item: the first is billed and counted against
/// limits, the second must fit a model's context window. A clone starts empty, like
/// [`super::CountCache`].
#[derive(Debug, Default)]
pub struct InputTokens(std::sync::OnceLock<(u64, u64)>);

impl InputTokens {
    pub fn get_or_init(&self, count: impl FnOnce() -> (u64, u64)) -> (u64, u64) {
        *self.0.get_or_init(count)
    }
}

impl Clone for InputTokens {
    fn clone(&self) -> Self {
        InputTokens::default()
    }
}

/// The request's inputs, one entry per vector the answer holds.
pub enum Inputs<'a> {
    Texts(Vec<&'a str>),
    /// Token ids as the client sent them (already checked to be non-negative integers).
    Tokens(Vec<&'a [Value]>),
}

impl EmbeddingRequest {
    /// The inputs, once [`EmbeddingRequest::validate`] has accepted the request.
    pub fn inputs(&self) -> Inputs<'_> {
        match &self.input {
            Value::String(s) => Inputs::Texts(vec![s]),
            Value::Array(items) if items.first().is_some_and(Value::is_number) => {
                Inputs::Tokens(vec![items.as_slice()])
            }
            Value::Array(items) if items.first().is_some_and(Value::is_array) => Inputs::Tokens(
                items
                    .iter()
                    .filter_map(Value::as_array)
                    .map(Vec::as_slice)
                    .collect(),
            ),
            Value::Array(items) => Inputs::Texts(items.iter().filter_map(Value::as_str).collect()),
            _ => Inputs::Texts(Vec::new()),
        }
    }

    /// Whether the client asked for base64-encoded vectors.
    pub fn base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }

    /// Checks what serde's types cannot: the input's shape (naming the first offending element),
    /// the batch size, the encoding and the dimensions. Returns the parameter path and a message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.model.trim().is_empty() {
            return Err(("model".into(), "you must provide a model parameter".into()));
        }
        check_input(&self.input)?;
        if let Some(f) = &self.encoding_format {
            if f != "float" && f != "base64" {
                return Err((
                    "encoding_format".into(),
                    format!("invalid encoding_format {f:?}: expected \"float\" or \"base64\""),
                ));
            }
        }
        if self.dimensions == Some(0) {
            return Err(("dimensions".into(), "dimensions must be at least 1".into()));
        }
        Ok(())
    }
}

const INPUT_SHAPES: &str =
    "expected a string, an array of strings, an array of token ids or an array of token-id arrays";

fn token_id(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX))
}

fn check_input(input: &Value) -> Result<(), (String, String)> {
    let items = match input {
        Value::String(s) if s.is_empty() => {
            return Err(("input".into(), "input must not be an empty string".into()));
        }
        Value::String(_) => return Ok(()),
        Value::Array(items) => items,
        other => {
            return Err((
                "input".into(),
                format!("invalid type: {}, {INPUT_SHAPES}", json_type(other)),
            ));
        }
    };
    if items.is_empty() {
        return Err(("input".into(), "input must not be an empty array".into()));
    }
    if items.len() > MAX_INPUTS {
        return Err((
            "input".into(),
            format!(
                "input has {} items; at most {MAX_INPUTS} are accepted in one request",
                items.len()
            ),
        ));
    }
    // The first item decides which of the array shapes this is; every other item must match it.
    let bad = |i: usize, what: &str| Err((format!("input[{i}]"), what.to_string()));
    match &items[0] {
        Value::String(_) => {
            for (i, v) in items.iter().enumerate() {
                match v.as_str() {
                    Some("") => return bad(i, "input strings must not be empty"),
                    Some(_) => {}
                    None => {
                        return bad(
                            i,
                            &format!(
                                "invalid type: {}, expected a string like the first input",
                                json_type(v)
                            ),
                        );
                    }
                }
            }
        }
        Value::Number(_) => {
            for (i, v) in items.iter().enumerate() {
                if !token_id(v) {
                    return bad(i, "a token id must be an integer from 0 to 4294967295");
                }
            }
        }
        Value::Array(_) => {
            for (i, v) in items.iter().enumerate() {
                let Some(ids) = v.as_array() else {
                    return bad(
                        i,
                        &format!(
                            "invalid type: {}, expected an array of token ids like the first input",
                            json_type(v)
                        ),
                    );
                };
                if ids.is_empty() {
                    return bad(i, "a token-id array must not be empty");
                }
                if let Some(j) = ids.iter().position(|t| !token_id(t)) {
                    return Err((
                        format!("input[{i}][{j}]"),
                        "a token id must be an integer from 0 to 4294967295".into(),
                    ));
                }
            }
        }
        other => {
            return bad(
                0,
                &format!("invalid type: {}, {INPUT_SHAPES}", json_type(other)),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<(), (String, String)> {
        let mut body = json!({"model": "e"});
        body["input"] = v;
        let r: EmbeddingRequest = serde_json::from_value(body).unwrap();
        r.validate()
    }

    fn param(v: Value) -> String {
        check(v).unwrap_err().0
    }

    #[test]
    fn every_input_shape_is_accepted() {
        for ok in [
            json!("hello"),
            json!(["a", "b"]),
            json!([1, 2, 3]),
            json!([[1, 2], [3]]),
        ] {
            assert!(check(ok.clone()).is_ok(), "{ok}");
        }
        let r: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": [[1, 2], [3]]})).unwrap();
        assert!(matches!(r.inputs(), Inputs::Tokens(t) if t.len() == 2 && t[0].len() == 2));
        let r: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": ["a", "b"]})).unwrap();
        assert!(matches!(r.inputs(), Inputs::Texts(t) if t == ["a", "b"]));
    }

    #[test]
    fn the_offending_element_is_named() {
        assert_eq!(param(json!(5)), "input");
        assert_eq!(param(json!({})), "input");
        assert_eq!(param(json!("")), "input");
        assert_eq!(param(json!([])), "input");
        assert_eq!(param(json!(["a", 2])), "input[1]");
        assert_eq!(param(json!(["a", ""])), "input[1]");
        assert_eq!(param(json!([1, -2])), "input[1]");
        assert_eq!(param(json!([1, 1.5])), "input[1]");
        assert_eq!(param(json!([[1], [2, "x"]])), "input[1][1]");
        assert_eq!(param(json!([[1], []])), "input[1]");
        assert_eq!(param(json!([[1], 2])), "input[1]");
        assert_eq!(param(json!([null])), "input[0]");
        assert_eq!(param(json!(vec!["a"; MAX_INPUTS + 1])), "input");
        let r: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": "x", "encoding_format": "hex"}))
                .unwrap();
        assert_eq!(r.validate().unwrap_err().0, "encoding_format");
        let r: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": "x", "dimensions": 0})).unwrap();
        assert_eq!(r.validate().unwrap_err().0, "dimensions");
    }
}
