//! The rest of a stream once its first chunk is on its way to the client. Nothing can be retried
//! any more, but the deployment is still dispatch's: a provider that falls silent for longer than
//! its idle timeout, or breaks off, is charged a failure on its breaker here, and the handler is
//! told what broke and whether the deployment was cooled for it.

use super::policy::Policies;
use super::walk::log_cooldown;
use super::{Deployment, DispatchState};
use crate::providers::{ChunkStream, ErrorKind, ProviderError};
use crate::state::{CallResult, Cooled, Ended};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;

/// A stream that ended in an error after its first chunk.
pub struct Broken {
    pub error: ProviderError,
    /// The cooldown the failure started on the deployment, if it started one.
    pub cooled: Option<Cooled>,
}

pub type Rest = Pin<Box<dyn Stream<Item = Result<Value, Broken>> + Send>>;

struct Watch {
    rest: ChunkStream,
    model: Arc<Deployment>,
    state: Arc<DispatchState>,
    policies: Policies,
    done: bool,
}

/// The chunks after the first, each within the deployment's idle timeout; the first error ends it.
pub(super) fn watch(
    rest: ChunkStream,
    model: Arc<Deployment>,
    state: Arc<DispatchState>,
    policies: Policies,
) -> Rest {
    let w = Watch {
        rest,
        model,
        state,
        policies,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(w, |mut w| async move {
        if w.done {
            return None;
        }
        let idle = w.model.idle_timeout;
        let error = match tokio::time::timeout(idle, w.rest.next()).await {
            Ok(Some(Ok(chunk))) => return Some((Ok(chunk), w)),
            Ok(None) => return None,
            Ok(Some(Err(e))) => e,
            Err(_) => ProviderError::new(
                ErrorKind::Timeout,
                format!("the provider sent nothing for {}s", idle.as_secs_f64()),
            ),
        };
        w.done = true;
        let cooled = report(&w.state, &w.policies, &w.model.name, &error).await;
        Some((Err(Broken { error, cooled }), w))
    }))
}

/// A stream that broke after its first byte still counts against its deployment's health.
async fn report(
    state: &DispatchState,
    policies: &Policies,
    deployment: &Arc<str>,
    e: &ProviderError,
) -> Option<Cooled> {
    let p = policies.for_kind(e.kind);
    let call = Ended {
        result: CallResult::Failure {
            class: e.kind.class(),
            mode: p.cooldown,
            retry_after: e.retry_after,
        },
        // The stream's start was reported already; a break after it is no probe's verdict.
        probe: false,
    };
    let cooled = state
        .store
        .report(deployment, call, &policies.breaker)
        .await;
    if let Some(c) = &cooled {
        log_cooldown(deployment, c);
    }
    cooled
}
