//! Keeping a benchmark inside each model's `rpm` and `tpm`: a call waits until the last minute's
//! requests and tokens to that model leave room for it. The dispatch layer enforces the same
//! limits for the gateway; pacing here means a benchmark waits its turn instead of collecting
//! "deployment busy" errors.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

pub struct Pacer {
    /// Model → (time, tokens) of each call sent in the last window.
    sent: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
    /// The span rpm and tpm count over: a minute.
    window: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::with_window(MINUTE)
    }
}

impl Pacer {
    pub fn with_window(window: Duration) -> Pacer {
        Pacer {
            sent: Mutex::new(HashMap::new()),
            window,
        }
    }

    /// Waits until a call of `tokens` (prompt plus the most it may answer) fits the limits, then
    /// counts it.
    pub async fn admit(&self, model: &str, rpm: Option<u64>, tpm: Option<u64>, tokens: u64) {
        while let Some(wait) = self.try_admit(model, rpm, tpm, tokens) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts the call and returns `None` when it fits the limits now; otherwise how long to wait
    /// before asking again.
    pub fn try_admit(
        &self,
        model: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Option<Duration> {
        if rpm.is_none() && tpm.is_none() {
            return None;
        }
        let mut all = self.sent.lock().ok()?;
        let q = all.entry(model.to_string()).or_default();
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        let used: u64 = q.iter().map(|(_, n)| n).sum();
        let rpm_ok = rpm.is_none_or(|l| (q.len() as u64) < l);
        // A call bigger than the whole limit goes once the window is empty, not never.
        let tpm_ok = tpm.is_none_or(|l| q.is_empty() || used + tokens <= l);
        if rpm_ok && tpm_ok {
            q.push_back((now, tokens));
            return None;
        }
        Some(
            q.front()
                .map_or(Duration::from_millis(50), |(t, _)| {
                    self.window.saturating_sub(now.duration_since(*t))
                })
                .max(Duration::from_millis(5)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_room_in_the_window() {
        // A 300 ms window stands in for the minute.
        let window = Duration::from_millis(300);
        let p = Pacer::with_window(window);
        let start = Instant::now();
        p.admit("m", Some(2), None, 10).await;
        p.admit("m", Some(2), None, 10).await;
        p.admit("m", Some(2), None, 10).await;
        assert!(
            start.elapsed() >= window,
            "the third call waited for the first to age out"
        );
        // Another model has its own window; tokens count too.
        let t = Instant::now();
        p.admit("n", None, Some(100), 60).await;
        p.admit("n", None, Some(100), 60).await;
        assert!(t.elapsed() >= window);
        // No limits: no waiting, nothing counted.
        p.admit("free", None, None, 1_000_000).await;
    }
}
