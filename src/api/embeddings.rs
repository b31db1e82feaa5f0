//! `POST /v1/embeddings`: OpenAI's embeddings wire format in and out, on the shared
//! [`pipeline`](super::pipeline).

use super::headers;
use super::pipeline::{self, Answer, Ctx};
use super::request;
use crate::openai::EmbeddingRequest;
use axum::body::Body;
use axum::response::{IntoResponse, Response};

pub async fn create(ctx: Ctx, body: Body) -> Response {
    let ctx = ctx.endpoint(crate::cost::account::EMBEDDINGS);
    let read = request::read_bytes(ctx.headers(), body, ctx.body_limits(), ctx.drain_started())
        .await
        .and_then(|bytes| parse(&bytes));
    let req = match read {
        Ok(r) => r,
        Err(e) => return ctx.unreadable(e).respond(write),
    };
    pipeline::embed(ctx, req).await.respond(write)
}

/// The body as an embeddings request, or a 400 naming the offending field.
fn parse(bytes: &[u8]) -> Result<EmbeddingRequest, super::ApiError> {
    let req: EmbeddingRequest = request::decode(bytes)?;
    req.validate().map_err(|(param, msg)| {
        super::ApiError::invalid_request(format!("{param}: {msg}"), Some(param))
    })?;
    Ok(req)
}

fn write(answer: Answer) -> Response {
    match answer {
        Answer::Complete(body) => headers::json(&body),
        // The embeddings pipeline never streams; a stream here would be a bug, not a request.
        Answer::Stream(_) => super::ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal error in the gateway: an embeddings answer cannot be streamed",
        )
        .into_response(),
        Answer::Error(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_the_offending_field() {
        let param = |b: &str| parse(b.as_bytes()).unwrap_err().body.error.param;
        assert_eq!(param(r#"{"input":"x"}"#).as_deref(), Some("model"));
        assert_eq!(param(r#"{"model":"e"}"#).as_deref(), Some("input"));
        assert_eq!(
            param(r#"{"model":3,"input":"x"}"#).as_deref(),
            Some("model")
        );
        assert_eq!(
            param(r#"{"model":"e","input":"x","dimensions":"8"}"#).as_deref(),
            Some("dimensions")
        );
        assert_eq!(
            param(r#"{"model":"e","input":"x","user":5}"#).as_deref(),
            Some("user")
        );
        assert_eq!(
            param(r#"{"model":"e","input":["a",1]}"#).as_deref(),
            Some("input[1]")
        );
        let e = parse(b"{\"model\":").unwrap_err();
        assert_eq!(e.body.error.code.as_deref(), Some("invalid_json"));
    }
}
