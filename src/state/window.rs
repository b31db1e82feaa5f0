//! A share of events over a sliding time window, in fixed-size buckets: memory stays constant
//! however many requests pass, and old buckets fall out as time moves on.

use std::time::{Duration, Instant};

const BUCKETS: usize = 30;

pub struct SlidingRate {
    start: Instant,
    bucket: Duration,
    /// (bucket number, events, hits) per slot; a slot holding an old bucket number is stale.
    slots: [(u64, u64, u64); BUCKETS],
}

impl SlidingRate {
    pub fn new(window: Duration) -> Self {
        Self::starting(Instant::now(), window)
    }

    pub fn starting(start: Instant, window: Duration) -> Self {
        let bucket = (window / BUCKETS as u32).max(Duration::from_millis(1));
        SlidingRate {
            start,
            bucket,
            slots: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn bucket_no(&self, now: Instant) -> u64 {
        let n =
            now.saturating_duration_since(self.start).as_nanos() / self.bucket.as_nanos().max(1);
        u64::try_from(n).unwrap_or(u64::MAX - 1)
    }

    pub fn record(&mut self, now: Instant, hit: bool) {
        let b = self.bucket_no(now);
        let slot = &mut self.slots[(b % BUCKETS as u64) as usize];
        if slot.0 != b {
            *slot = (b, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u64::from(hit);
    }

    /// (events, hits) within the window ending at `now`.
    pub fn counts(&self, now: Instant) -> (u64, u64) {
        let b = self.bucket_no(now);
        self.slots
            .iter()
            .filter(|s| s.0 != u64::MAX && s.0 <= b && b - s.0 < BUCKETS as u64)
            .fold((0, 0), |(e, h), s| (e + s.1, h + s.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_window() {
        let mut r = SlidingRate::new(Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..10 {
            r.record(t0, i % 2 == 0);
        }
        assert_eq!(r.counts(t0), (10, 5));
        r.record(t0 + Duration::from_secs(20), true);
        assert_eq!(r.counts(t0 + Duration::from_secs(20)), (11, 6));
        // 31 s later the first ten have left the window.
        assert_eq!(r.counts(t0 + Duration::from_secs(31)), (1, 1));
        assert_eq!(r.counts(t0 + Duration::from_secs(60)), (0, 0));
    }
}
