//! Server-sent events from an upstream response, as a stream of `(event, data)` pairs.

use super::ProviderError;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};

pub struct SseEvent {
    /// Anthropic names its events; OpenAI-compatible servers leave this empty.
    #[allow(dead_code)]
    pub event: String,
    pub data: String,
}

pub fn events(
    resp: reqwest::Response,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    resp.bytes_stream().eventsource().map(|item| match item {
        Ok(ev) => Ok(SseEvent {
            event: ev.event,
            data: ev.data,
        }),
        Err(eventsource_stream::EventStreamError::Transport(e)) => Err(ProviderError::new(
            super::ErrorKind::Connect,
            format!(
                "the provider's stream broke off: {}",
                ProviderError::from_reqwest(&e).message
            ),
        )),
        Err(e) => Err(ProviderError::invalid_response(format!(
            "the provider sent a malformed event stream: {e}"
        ))),
    })
}
