//! Where a request's time went while dispatch worked on it: waiting on providers, and waiting
//! before a retry (a backoff, a cooldown, a provider's `Retry-After`). What is left of the
//! request's time is the gateway's own work, its overhead.
//!
//! The request's account holds the same `Progress` as the walk and reads it at the end, so the
//! split survives a client that leaves mid-call: dropping the walk's future drops nothing here,
//! and a phase still running is counted up to the moment it is read.

use super::Candidate;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Progress(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    upstream: Duration,
    waited: Duration,
    running: Option<(Phase, Instant)>,
    /// The deployment of the call in progress, or of the last one made.
    calling: Option<Candidate>,
    attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Upstream,
    Wait,
}

/// Ends its phase when dropped, also when the future holding it is dropped midway.
struct Running<'a>(&'a Progress);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        if let Some((phase, since)) = g.running.take() {
            let d = since.elapsed();
            match phase {
                Phase::Upstream => g.upstream += d,
                Phase::Wait => g.waited += d,
            }
        }
    }
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing here can be left half-updated by a panic; a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self, phase: Phase) -> Running<'_> {
        self.lock().running = Some((phase, Instant::now()));
        Running(self)
    }

    fn total(&self, phase: Phase) -> Duration {
        let g = self.lock();
        let done = match phase {
            Phase::Upstream => g.upstream,
            Phase::Wait => g.waited,
        };
        match g.running {
            Some((p, since)) if p == phase => done + since.elapsed(),
            _ => done,
        }
    }

    /// Time spent waiting on providers so far.
    pub fn upstream(&self) -> Duration {
        self.total(Phase::Upstream)
    }

    /// Time spent waiting before retries so far.
    pub fn waited(&self) -> Duration {
        self.total(Phase::Wait)
    }

    /// The deployment called last (or being called now) and the number of calls made.
    pub fn calling(&self) -> (Option<Candidate>, u32) {
        let g = self.lock();
        (g.calling.clone(), g.attempts)
    }

    /// Counts one upstream call to `to` and times `call` as time on the provider.
    pub(super) async fn call<F: Future>(&self, to: &Candidate, call: F) -> F::Output {
        {
            let mut g = self.lock();
            g.calling = Some(to.clone());
            g.attempts += 1;
        }
        let _running = self.run(Phase::Upstream);
        call.await
    }

    /// Times `work` (a judge's call) as time on a provider, without counting it as an attempt.
    pub(super) async fn on_provider<F: Future>(&self, work: F) -> F::Output {
        let _running = self.run(Phase::Upstream);
        work.await
    }

    /// Sleeps `d` before a retry, counted as waiting.
    pub(super) async fn wait(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let _running = self.run(Phase::Wait);
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_call_still_counts_as_upstream_time() {
        let p = Progress::default();
        p.wait(Duration::from_millis(20)).await;
        let waited = p.waited();
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        {
            // A call whose future is dropped before it finishes (the client left).
            let call = p.on_provider(std::future::pending::<()>());
            let _ = tokio::time::timeout(Duration::from_millis(30), call).await;
        }
        let up = p.upstream();
        assert!(up >= Duration::from_millis(30), "{up:?}");
        assert_eq!(p.waited(), waited, "upstream time is not wait time");
        // A running phase is counted up to the moment it is read.
        let running = p.run(Phase::Wait);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(p.waited() >= waited + Duration::from_millis(10));
        drop(running);
        assert_eq!(p.upstream(), up);
    }
}
