//! Turning a routing decision into upstream calls: the tier's models in order, then its fallback
//! tiers, moving on only for errors another deployment might not have. A bad request or a
//! content-policy refusal is returned at once: no bigger model fixes it, it would only cost more.

pub mod cascade;
mod judge;
mod verdict;
mod window;

use crate::gateway::{Gateway, Model};
use crate::openai::ChatRequest;
use crate::providers::{Call, ChatResponse, ChunkStream, ErrorKind, ProviderError};
use crate::routing::Decision;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many tiers a request may walk through, the first included.
pub const MAX_TIERS: usize = 3;

#[derive(Clone)]
pub struct Candidate {
    pub tier: Arc<str>,
    pub model: Arc<Model>,
}

pub struct Failure {
    pub tier: Arc<str>,
    pub model: Arc<str>,
    pub kind: ErrorKind,
}

/// What happened on the way to an answer (or to the final error).
#[derive(Default)]
pub struct Outcome {
    /// The candidate that answered, or the last one tried.
    pub served: Option<Candidate>,
    pub attempts: u32,
    /// Tiers entered after the first, in order.
    pub fallbacks: Vec<Arc<str>>,
    pub failures: Vec<Failure>,
    /// Time spent waiting on providers (to the full answer, or to the first chunk of a stream).
    pub upstream: Duration,
    /// What the cascade did, when the request was cascaded.
    pub cascade: Option<cascade::Step>,
}

/// The ordered list of deployments a request may be sent to.
pub fn plan(gw: &Gateway, decision: &Decision) -> Vec<Candidate> {
    if let Some(name) = &decision.model {
        // A client that names a model gets that model or an error, never a silent substitute.
        return gw
            .models
            .get(name)
            .map(|m| {
                vec![Candidate {
                    tier: decision.tier.clone(),
                    model: m.clone(),
                }]
            })
            .unwrap_or_default();
    }
    // A cascadable request that cannot be judged (a stream) still escalates to the cascade's tier
    // first when the cheap tier fails before answering.
    let first_fallback = decision.cascade_to.as_ref();
    candidates(gw, &decision.tier, first_fallback, true)
}

/// The models of `tier`, then (with `fallbacks`) `extra` and the tier's fallback chain, at most
/// `MAX_TIERS` tiers in all.
pub fn candidates(
    gw: &Gateway,
    tier: &Arc<str>,
    extra: Option<&Arc<str>>,
    fallbacks: bool,
) -> Vec<Candidate> {
    let mut tiers: Vec<Arc<str>> = vec![tier.clone()];
    if fallbacks {
        if let Some(e) = extra.filter(|e| *e != tier) {
            tiers.push(e.clone());
        }
        let mut i = 0;
        while i < tiers.len() && tiers.len() < MAX_TIERS {
            if let Some(next) = gw.fallbacks.get(&*tiers[i]) {
                for t in next {
                    if tiers.len() < MAX_TIERS && !tiers.contains(t) {
                        tiers.push(t.clone());
                    }
                }
            }
            i += 1;
        }
    }
    tiers
        .iter()
        .flat_map(|t| {
            gw.tiers.get(t).into_iter().flatten().map(|m| Candidate {
                tier: t.clone(),
                model: m.clone(),
            })
        })
        .collect()
}

fn call<'a>(req: &'a ChatRequest, c: &'a Candidate) -> Call<'a> {
    Call {
        request: req,
        model: &c.model.upstream,
        max_output_tokens: c.model.max_output_tokens,
        stream_usage: c.model.stream_usage,
    }
}

impl Outcome {
    fn start(&mut self, c: &Candidate) {
        if let Some(prev) = &self.served {
            if prev.tier != c.tier && !self.fallbacks.contains(&c.tier) {
                self.fallbacks.push(c.tier.clone());
            }
        }
        self.attempts += 1;
        self.served = Some(c.clone());
    }

    fn failed(&mut self, c: &Candidate, e: &ProviderError) {
        self.failures.push(Failure {
            tier: c.tier.clone(),
            model: c.model.name.clone(),
            kind: e.kind,
        });
    }
}

fn no_candidates() -> ProviderError {
    ProviderError::new(
        ErrorKind::Server,
        "no deployment is configured for this route",
    )
}

pub async fn chat(
    req: &ChatRequest,
    candidates: &[Candidate],
) -> (Result<ChatResponse, ProviderError>, Outcome) {
    walk(candidates, |c| async move {
        c.model.provider.chat(&call(req, c)).await
    })
    .await
}

/// Like [`chat`], but a candidate counts as answering only once its first chunk arrived: a failure
/// before the first byte moves on to the next candidate exactly as a failed non-streaming call does.
pub async fn chat_stream(
    req: &ChatRequest,
    candidates: &[Candidate],
) -> (Result<(Value, ChunkStream), ProviderError>, Outcome) {
    walk(candidates, |c| async move {
        let first = async {
            let mut stream = c.model.provider.chat_stream(&call(req, c)).await?;
            match stream.next().await {
                Some(Ok(first)) => Ok((first, stream)),
                Some(Err(e)) => Err(e),
                None => Err(ProviderError::invalid_response(
                    "the provider ended the stream without sending anything",
                )),
            }
        };
        // Until the first chunk nothing was sent to the client, so a slow start is still a
        // failure that may fall back.
        tokio::time::timeout(c.model.timeout, first)
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::new(
                    ErrorKind::Timeout,
                    "the provider sent no chunk in time",
                ))
            })
    })
    .await
}

/// Tries the candidates in order until one answers, moving on only after an error another
/// deployment might not have; records every attempt in the outcome.
async fn walk<'a, T, F, Fut>(
    candidates: &'a [Candidate],
    mut attempt: F,
) -> (Result<T, ProviderError>, Outcome)
where
    F: FnMut(&'a Candidate) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut out = Outcome::default();
    let mut last = no_candidates();
    for c in candidates {
        out.start(c);
        let t = Instant::now();
        let r = attempt(c).await;
        out.upstream += t.elapsed();
        match r {
            Ok(ok) => return (Ok(ok), out),
            Err(e) => {
                out.failed(c, &e);
                let retry = e.kind.is_retryable();
                last = e;
                if !retry {
                    break;
                }
            }
        }
    }
    (Err(last), out)
}
