//! Content parts inside a message: text, images (data and http URLs) and inline documents as
//! Anthropic blocks, with a client's prompt-caching marker kept on each.

use super::{ProviderError, bad};
use crate::openai::json_type;
use serde_json::{Value, json};

/// Content of a user or assistant message (or a tool result) as Anthropic blocks. Empty text is
/// dropped because Anthropic rejects empty text blocks.
pub(super) fn content_blocks(
    content: Option<&Value>,
    path: &str,
) -> Result<Vec<Value>, ProviderError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(block) = part_block(p, &format!("{path}[{j}]"))? {
                    out.push(block);
                }
            }
            Ok(out)
        }
        Some(other) => Err(bad(
            path,
            format!(
                "expected a string or an array of content parts, not {}",
                json_type(other)
            ),
        )),
    }
}

fn part_block(part: &Value, path: &str) -> Result<Option<Value>, ProviderError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let mut block = match kind {
        // An assistant's earlier refusal is still text the model said.
        "text" | "refusal" => {
            let Some(text) = part.get(kind).and_then(Value::as_str) else {
                return Err(bad(
                    format!("{path}.{kind}"),
                    format!("a {kind} part needs a string `{kind}`"),
                ));
            };
            if text.is_empty() {
                return Ok(None);
            }
            json!({ "type": "text", "text": text })
        }
        "image_url" => image_block(part.get("image_url"), &format!("{path}.image_url"))?,
        "file" => document_block(part.get("file"), &format!("{path}.file"))?,
        "input_audio" => {
            return Err(bad(
                path,
                "audio input is not supported by Anthropic models",
            ));
        }
        other => {
            return Err(bad(
                format!("{path}.type"),
                format!("content part type {other:?} is not supported for Anthropic models"),
            ));
        }
    };
    // Passed through so clients can use Anthropic prompt caching through the OpenAI format.
    if let Some(cc) = part.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    Ok(Some(block))
}

fn image_block(image_url: Option<&Value>, path: &str) -> Result<Value, ProviderError> {
    // OpenAI documents an object with `url`; some clients send the URL string itself.
    let url = image_url
        .and_then(|v| v.get("url").unwrap_or(v).as_str())
        .ok_or_else(|| {
            bad(
                format!("{path}.url"),
                "an image_url part needs a string `url`",
            )
        })?;
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url).ok_or_else(|| {
            bad(
                format!("{path}.url"),
                "an image data URL must look like data:<media type>;base64,<data>",
            )
        })?;
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(bad(
        format!("{path}.url"),
        "an image URL must be an http(s) URL or a base64 data URL",
    ))
}

/// PDFs and other documents sent inline as OpenAI `file` parts. File ids are refused: they point
/// into OpenAI's file store, which Anthropic cannot read.
fn document_block(file: Option<&Value>, path: &str) -> Result<Value, ProviderError> {
    let Some(data_url) = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
    else {
        return Err(bad(
            format!("{path}.file_data"),
            "file parts for Anthropic models need inline `file_data` (a base64 data URL); file ids are not supported",
        ));
    };
    let (media_type, data) = parse_data_url(data_url).ok_or_else(|| {
        bad(
            format!("{path}.file_data"),
            "file_data must look like data:<media type>;base64,<data>",
        )
    })?;
    Ok(json!({
        "type": "document",
        "source": { "type": "base64", "media_type": media_type, "data": data },
    }))
}

/// `data:<media type>[;params];base64,<data>` → (media type, data). Only base64 payloads are
/// accepted because that is the only inline encoding Anthropic takes.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = header.split(';');
    let media_type = params.next().filter(|m| m.contains('/'))?;
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) || data.is_empty() {
        return None;
    }
    Some((media_type, data))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{rejected, translate};
    use serde_json::{Value, json};

    #[test]
    fn images_from_data_and_http_urls() {
        let body = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}]}),
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Compare"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ])
        );
    }

    #[test]
    fn bad_images_and_unknown_parts_are_rejected() {
        let msg =
            |part: Value| json!({"model": "m", "messages": [{"role": "user", "content": [part]}]});
        let e = rejected(msg(
            json!({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}),
        ));
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        rejected(msg(
            json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
        ));
        rejected(msg(json!({"type": "image_url"})));
        rejected(msg(
            json!({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}),
        ));
        let e = rejected(msg(json!({"type": "hologram"})));
        assert!(e.message.contains("hologram"));
    }

    #[test]
    fn pdf_file_parts_become_documents() {
        let body = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
            ]}]}),
        );
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
        );
        rejected(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}
            ]}]}),
        );
    }
}
