//! `--max-cost`: every call reserves its worst-case cost before it is sent and settles at its real
//! cost when it answers, so calls in flight can never add up past the limit. The run stops before
//! the first call that might overspend, not after it. A call that would fit once the calls in
//! flight have settled waits for them, so concurrency does not end a run early.

use std::sync::Mutex;

pub struct Budget {
    limit: Option<f64>,
    /// (spent, reserved by calls in flight).
    books: Mutex<(f64, f64)>,
    /// Woken whenever a reservation settles.
    settled: tokio::sync::Notify,
}

/// Whether a call may go now.
#[derive(Debug)]
pub enum Ask {
    Go(Reservation),
    /// Only once calls in flight have settled (their real cost is below their worst case).
    Later,
    /// Not even then: what was spent plus this call's worst case passes the limit.
    Never,
}

/// A call's claim on the budget, to be settled once.
#[derive(Debug)]
#[must_use]
pub struct Reservation(f64);

impl Budget {
    pub fn new(limit: Option<f64>) -> Budget {
        Budget {
            limit,
            books: Mutex::new((0.0, 0.0)),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// A reservation for a call that may cost `worst`, waiting for calls in flight to settle
    /// when it needs their room; `None` when it could take spending past the limit.
    pub async fn reserve(&self, worst: f64) -> Option<Reservation> {
        loop {
            // Registered before the check, so a settlement between the two is not missed.
            let settled = self.settled.notified();
            match self.try_reserve(worst) {
                Ask::Go(r) => return Some(r),
                Ask::Never => return None,
                Ask::Later => settled.await,
            }
        }
    }

    pub fn try_reserve(&self, worst: f64) -> Ask {
        let Ok(mut b) = self.books.lock() else {
            return Ask::Never;
        };
        if let Some(limit) = self.limit {
            if b.0 + worst > limit {
                return Ask::Never;
            }
            if b.0 + b.1 + worst > limit {
                return Ask::Later;
            }
        }
        b.1 += worst;
        Ask::Go(Reservation(worst))
    }

    /// The call answered and cost `actual` (0 for a call that failed: providers do not bill errors).
    pub fn settle(&self, r: Reservation, actual: f64) {
        if let Ok(mut b) = self.books.lock() {
            b.1 = (b.1 - r.0).max(0.0);
            b.0 += actual;
        }
        self.settled.notify_waiters();
    }

    pub fn spent(&self) -> f64 {
        self.books.lock().map(|b| b.0).unwrap_or(0.0)
    }

    pub fn limit(&self) -> Option<f64> {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn go(a: Ask) -> Reservation {
        match a {
            Ask::Go(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn calls_in_flight_cannot_add_up_past_the_limit() {
        let b = Budget::new(Some(1.0));
        let r1 = go(b.try_reserve(0.4));
        let r2 = go(b.try_reserve(0.4));
        assert!(
            matches!(b.try_reserve(0.4), Ask::Later),
            "0.4 + 0.4 + 0.4 could overspend"
        );
        b.settle(r1, 0.1);
        let r3 = go(b.try_reserve(0.4));
        b.settle(r2, 0.1);
        b.settle(r3, 0.0);
        assert!((b.spent() - 0.2).abs() < 1e-12);
        assert!(matches!(b.try_reserve(0.81), Ask::Never));
        let _ = go(b.try_reserve(0.8));
        let free = Budget::new(None);
        let _ = go(free.try_reserve(1e9));
    }

    #[tokio::test]
    async fn a_call_that_fits_once_others_settle_waits_for_them() {
        let b = std::sync::Arc::new(Budget::new(Some(1.0)));
        let first = go(b.try_reserve(0.6));
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.reserve(0.6).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        b.settle(first, 0.3);
        let second = waiting.await.unwrap().expect("0.3 spent + 0.6 fits");
        b.settle(second, 0.6);
        assert!(b.reserve(0.2).await.is_none(), "0.9 spent + 0.2 never fits");
    }
}
