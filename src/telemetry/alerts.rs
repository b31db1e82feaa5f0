//! In-process alerting on the fallback rate (`alerts.fallback_rate`): a warning in the log when the
//! share of requests that had to fall back crosses the threshold, and a note when it recovers. The
//! same rule ships as a Prometheus alert; this one needs no Prometheus to be useful.

use crate::config::RateAlert;
use crate::state::window::SlidingRate;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FallbackAlert {
    inner: Mutex<Option<(Duration, SlidingRate, bool)>>,
}

impl Default for FallbackAlert {
    fn default() -> Self {
        FallbackAlert {
            inner: Mutex::new(None),
        }
    }
}

impl FallbackAlert {
    /// Counts one request; logs when the rate crosses `cfg.max` either way. A changed window (after
    /// a reload) starts a fresh count.
    pub fn record(&self, cfg: &RateAlert, fell_back: bool) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        let state = match &mut *guard {
            Some(s) if s.0 == cfg.window.0 => s,
            slot => slot.insert((
                cfg.window.0,
                SlidingRate::starting(now, cfg.window.0),
                false,
            )),
        };
        state.1.record(now, fell_back);
        let (requests, fallbacks) = state.1.counts(now);
        let rate = if requests == 0 {
            0.0
        } else {
            fallbacks as f64 / requests as f64
        };
        let over = requests >= cfg.min_requests && rate > cfg.max;
        if over && !state.2 {
            tracing::warn!(
                rate,
                max = cfg.max,
                requests,
                fallbacks,
                window_s = cfg.window.0.as_secs_f64(),
                "fallback rate is over alerts.fallback_rate.max"
            );
        } else if !over && state.2 {
            tracing::info!(
                rate,
                max = cfg.max,
                "fallback rate is back under alerts.fallback_rate.max"
            );
        }
        state.2 = over;
    }

    pub fn firing(&self) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.2))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    #[test]
    fn fires_over_the_threshold_and_clears_under_it() {
        let cfg = RateAlert {
            max: 0.1,
            window: Dur::from_secs(300),
            min_requests: 10,
        };
        let a = FallbackAlert::default();
        for _ in 0..8 {
            a.record(&cfg, true);
        }
        assert!(!a.firing(), "too few requests to judge");
        for _ in 0..2 {
            a.record(&cfg, false);
        }
        assert!(a.firing());
        for _ in 0..100 {
            a.record(&cfg, false);
        }
        assert!(!a.firing());
    }
}
