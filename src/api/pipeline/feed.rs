//! A stream's chunks on their way to the client, accounted as they pass: the first chunk's
//! arrival, the usage report, the text (for an estimate when no usage comes), and how the stream
//! ended. The wire format a handler writes them in is its own business; the account is settled
//! here, whichever format the client reads. Dropping the feed (client gone) drops the upstream
//! stream, which closes the upstream connection and so cancels the generation.

use crate::cost::account::{Account, StreamEnd};
use crate::dispatch::{Broken, Rest};
use crate::gateway::Gateway;
use crate::openai::{ErrorBody, Usage};
use crate::providers::ErrorKind;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;

pub struct Feed {
    first: Option<Value>,
    rest: Rest,
    /// Kept for the stream's lifetime: it is the config this request started on.
    gw: Arc<Gateway>,
    account: Account,
    done: bool,
}

pub enum Event {
    /// One chunk in OpenAI's `chat.completion.chunk` shape, usage report included. `usage`: the
    /// usage report it carried (already accounted), so a writer need not read it again.
    Chunk { chunk: Value, usage: Option<Usage> },
    /// The stream broke after bytes were sent: the status is already 200, so the error travels
    /// as the last event; the account recorded `status`, the status it stands for.
    Failed { body: ErrorBody, status: u16 },
}

impl Feed {
    pub(super) fn new(first: Value, rest: Rest, gw: Arc<Gateway>, account: Account) -> Feed {
        Feed {
            first: Some(first),
            rest,
            gw,
            account,
            done: false,
        }
    }

    /// The next event, or `None` once the stream has ended (cleanly, or after a `Failed`).
    pub async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let item = match self.first.take() {
            Some(v) => Some(Ok(v)),
            None => self.rest.next().await,
        };
        match item {
            Some(Ok(chunk)) => {
                self.account.streamed(&chunk);
                let usage = chunk.get("usage").and_then(Usage::from_openai);
                if usage.is_some() {
                    self.account.usage = usage;
                }
                Some(Event::Chunk { chunk, usage })
            }
            Some(Err(broken)) => {
                self.done = true;
                Some(self.fail(broken))
            }
            None => {
                self.done = true;
                self.account.stream_end = Some(StreamEnd::Complete);
                self.account.finish(200, None);
                None
            }
        }
    }

    fn fail(&mut self, Broken { error: e, cooled }: Broken) -> Event {
        let model = self
            .account
            .model
            .clone()
            .unwrap_or_else(|| "upstream".into());
        let kind = match e.kind {
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::InvalidResponse
            | ErrorKind::Server
            | ErrorKind::Connect
            | ErrorKind::CutOff
            | ErrorKind::Timeout => "api_error",
            // The provider rejected switchyard's key, not the client's.
            ErrorKind::Auth => "upstream_authentication_error",
            _ => "invalid_request_error",
        };
        let message = self.gw.redactor.redact(&format!(
            "{model}: {} (the stream was interrupted)",
            e.message
        ));
        // The provider's own code says more than our reason when it sent one.
        let code = e.code.as_deref().unwrap_or(e.kind.reason());
        let body = ErrorBody::new(message, kind, None, Some(code));
        let status = match e.kind {
            ErrorKind::Timeout => 504,
            ErrorKind::RateLimit => 429,
            _ => 502,
        };
        self.account
            .stream_failed(&e, cooled.map(|c| c.class.label()));
        self.account.finish(status, Some(&body.error.message));
        Event::Failed { body, status }
    }
}
