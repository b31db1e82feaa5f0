//! Per-key counters: requests and tokens this minute, requests in flight, and a budget period's
//! spend and outstanding reservations. One lock around one map keeps every check-and-count atomic,
//! which is what lets 500 concurrent requests against a nearly spent budget overrun it by at most
//! one reservation. With `state: {backend: redis}` the same numbers live in Redis (see
//! `redis/ledger.rs`) and these local ones take over while Redis cannot be reached.
//!
//! Knows nothing about keys or prices: callers pass a key's id, its limits and dollar amounts.

use super::now_ms;
use super::redis::Link;
use super::redis::ledger as shared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;

#[derive(Default)]
pub struct Ledger {
    keys: Mutex<HashMap<String, Entry>>,
    /// Redis, when replicas share the counters.
    link: Option<Arc<Link>>,
    /// The shared spend last seen per key (period start, dollars), for headers and gauges.
    seen: Mutex<HashMap<String, (i64, f64)>>,
}

#[derive(Default)]
struct Entry {
    /// (minute since the epoch, requests, tokens).
    minute: (i64, u64, u64),
    in_flight: u64,
    /// (period start, spent, reserved), dollars.
    period: (i64, f64, f64),
}

pub use super::limits::Limits;

/// This minute's count after admission, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub requests: u64,
    pub tokens: u64,
    pub resets_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Requests { retry_after: Duration },
    Tokens { retry_after: Duration },
    Parallel,
}

/// A budget that has no room left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    pub spent: f64,
    pub reserved: f64,
}

/// Why a reservation was not granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoRoom {
    Spent(Spent),
    /// The shared store is unreachable and `on_state_error: deny` says not to guess.
    Unavailable,
}

impl Entry {
    fn minute_at(&mut self, now: i64) -> Duration {
        let m = now.div_euclid(MINUTE_MS);
        if self.minute.0 != m {
            self.minute = (m, 0, 0);
        }
        let left = (m + 1) * MINUTE_MS - now;
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }

    fn period_at(&mut self, start: i64) {
        if self.period.0 != start {
            self.period = (start, 0.0, 0.0);
        }
    }
}

impl Ledger {
    /// A ledger whose counters live in Redis behind `link`.
    pub fn shared(link: Arc<Link>) -> Ledger {
        Ledger {
            link: Some(link),
            ..Ledger::default()
        }
    }

    /// Admits one request of about `tokens` prompt tokens under `limits`, counting it. The slot
    /// holds its place among the key's parallel requests until dropped.
    pub async fn enter(
        self: &Arc<Self>,
        key: &str,
        limits: Limits,
        tokens: u64,
    ) -> Result<(Slot, Minute), Refused> {
        let now = now_ms();
        if let Some(link) = &self.link {
            let id = uuid::Uuid::new_v4().simple().to_string();
            if let Some(e) = shared::enter(link, key, limits, tokens, &id, now).await {
                let m = now.div_euclid(MINUTE_MS);
                let resets_in =
                    Duration::from_millis(u64::try_from((m + 1) * MINUTE_MS - now).unwrap_or(0));
                return match e.code {
                    0 => Ok((
                        Slot {
                            ledger: self.clone(),
                            key: key.to_string(),
                            minute: m,
                            output: 0,
                            shared: Some(id),
                        },
                        Minute {
                            requests: e.requests,
                            tokens: e.tokens,
                            resets_in,
                        },
                    )),
                    1 => Err(Refused::Requests {
                        retry_after: resets_in,
                    }),
                    2 => Err(Refused::Tokens {
                        retry_after: resets_in,
                    }),
                    _ => Err(Refused::Parallel),
                };
            }
        }
        self.enter_local(key, limits, tokens, now)
    }

    fn enter_local(
        self: &Arc<Self>,
        key: &str,
        limits: Limits,
        tokens: u64,
        now: i64,
    ) -> Result<(Slot, Minute), Refused> {
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key.to_string()).or_default();
        let resets_in = e.minute_at(now);
        if limits.rpm.is_some_and(|l| e.minute.1 >= l) {
            return Err(Refused::Requests {
                retry_after: resets_in,
            });
        }
        if limits.tpm.is_some_and(|l| e.minute.2 >= l) {
            return Err(Refused::Tokens {
                retry_after: resets_in,
            });
        }
        if limits.max_parallel.is_some_and(|l| e.in_flight >= l) {
            return Err(Refused::Parallel);
        }
        e.minute.1 += 1;
        e.minute.2 += tokens;
        e.in_flight += 1;
        let minute = Minute {
            requests: e.minute.1,
            tokens: e.minute.2,
            resets_in,
        };
        Ok((
            Slot {
                ledger: self.clone(),
                key: key.to_string(),
                minute: now.div_euclid(MINUTE_MS),
                output: 0,
                shared: None,
            },
            minute,
        ))
    }

    /// Reserves `amount` dollars of the budget `period` (start, reset), while the spend and what
    /// is already reserved leave room (`< budget`). A reservation of 0 (a free model) is always
    /// granted, even while the shared store is unreachable.
    pub async fn reserve(
        self: &Arc<Self>,
        key: &str,
        period: (i64, i64),
        budget: f64,
        amount: f64,
    ) -> Result<Reservation, NoRoom> {
        if let Some(link) = &self.link {
            match shared::reserve(link, key, period, budget, amount).await {
                Some((granted, spent, reserved)) => {
                    self.saw(key, period.0, spent);
                    if !granted {
                        return Err(NoRoom::Spent(Spent { spent, reserved }));
                    }
                    return Ok(Reservation {
                        ledger: self.clone(),
                        key: key.to_string(),
                        period_start: period.0,
                        period_reset: period.1,
                        amount,
                        settled: false,
                        shared: true,
                    });
                }
                None if link.deny_budgets && amount > 0.0 => return Err(NoRoom::Unavailable),
                None => {}
            }
        }
        self.reserve_local(key, period, budget, amount)
            .map_err(NoRoom::Spent)
    }

    fn reserve_local(
        self: &Arc<Self>,
        key: &str,
        period: (i64, i64),
        budget: f64,
        amount: f64,
    ) -> Result<Reservation, Spent> {
        let period_start = period.0;
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key.to_string()).or_default();
        e.period_at(period_start);
        let (_, spent, reserved) = e.period;
        if amount > 0.0 && spent + reserved >= budget {
            return Err(Spent { spent, reserved });
        }
        e.period.2 += amount;
        Ok(Reservation {
            ledger: self.clone(),
            key: key.to_string(),
            period_start,
            period_reset: period.1,
            amount,
            settled: false,
            shared: false,
        })
    }

    fn saw(&self, key: &str, period_start: i64, spent: f64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(key.to_string(), (period_start, spent));
    }

    /// What the period starting at `period_start` has spent (settled requests only); with shared
    /// state, the figure Redis last gave this replica, else this replica's own count.
    pub fn spent(&self, key: &str, period_start: i64) -> f64 {
        if self.link.is_some() {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((start, usd)) = seen.get(key) {
                if *start == period_start {
                    return *usd;
                }
            }
        }
        let map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| e.period.0 == period_start)
            .map_or(0.0, |e| e.period.1)
    }

    /// Adds spend recorded elsewhere (the spend log, at start) to a period. Shared state keeps
    /// what Redis already holds for the period: another replica, or an earlier run, counted it.
    pub async fn seed(&self, key: &str, period: (i64, i64), usd: f64) {
        if let Some(link) = &self.link {
            shared::seed(link, key, period, usd).await;
        }
        let period_start = period.0;
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key.to_string()).or_default();
        e.period_at(period_start);
        e.period.1 += usd;
    }

    fn settle(self: &Arc<Self>, r: &Reservation, actual: f64) {
        if r.shared {
            if let Some(link) = self.link.clone() {
                let (ledger, key) = (self.clone(), r.key.clone());
                let (period, amount) = ((r.period_start, r.period_reset), r.amount);
                if tokio::runtime::Handle::try_current().is_ok() {
                    tokio::spawn(async move {
                        if let Some(spent) =
                            shared::settle(&link, &key, period, amount, actual).await
                        {
                            ledger.saw(&key, period.0, spent);
                        }
                    });
                }
                return;
            }
        }
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(&r.key) else { return };
        // A request that straddled a reset is billed to the period it was admitted in, which
        // has been forgotten: the new period starts clean.
        if e.period.0 == r.period_start {
            e.period.2 = (e.period.2 - r.amount).max(0.0);
            e.period.1 += actual;
        }
    }

    fn leave(&self, slot: &Slot) {
        let (key, minute, tokens) = (&slot.key, slot.minute, slot.output);
        if let (Some(id), Some(link)) = (&slot.shared, &self.link) {
            shared::leave(link, key, minute, id, tokens);
            return;
        }
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(key) else { return };
        e.in_flight = e.in_flight.saturating_sub(1);
        if e.minute.0 == minute {
            e.minute.2 += tokens;
        }
    }
}

/// One request's place among its key's parallel requests; its answer's tokens count toward the
/// minute it started in when it is released.
pub struct Slot {
    ledger: Arc<Ledger>,
    key: String,
    minute: i64,
    output: u64,
    /// The slot's id in Redis, when it was taken there.
    shared: Option<String>,
}

impl Slot {
    pub fn release(mut self, output_tokens: u64) {
        self.output = output_tokens;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ledger.leave(self);
    }
}

/// Dollars held against a budget until the request's real cost is known.
pub struct Reservation {
    ledger: Arc<Ledger>,
    key: String,
    period_start: i64,
    period_reset: i64,
    amount: f64,
    settled: bool,
    /// Held in Redis (settled there) rather than in this process.
    shared: bool,
}

impl Reservation {
    pub fn amount(&self) -> f64 {
        self.amount
    }

    /// Replaces the reservation with the real cost.
    pub fn settle(mut self, actual: f64) {
        self.settled = true;
        let ledger = self.ledger.clone();
        ledger.settle(&self, actual);
    }
}

impl Drop for Reservation {
    /// Never settled (a path that forgot to): the worst case stays spent, never undercounted.
    fn drop(&mut self) {
        if !self.settled {
            let ledger = self.ledger.clone();
            ledger.settle(self, self.amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_hold_room_until_settled() {
        let l = Arc::new(Ledger::default());
        let a = l.reserve("k", (0, 1), 1.0, 0.6).await.unwrap();
        let b = l.reserve("k", (0, 1), 1.0, 0.6).await.unwrap();
        assert!(l.reserve("k", (0, 1), 1.0, 0.6).await.is_err());
        // Free models are never blocked.
        assert!(l.reserve("k", (0, 1), 1.0, 0.0).await.is_ok());
        a.settle(0.1);
        b.settle(0.1);
        assert!((l.spent("k", 0) - 0.2).abs() < 1e-9);
        assert!(l.reserve("k", (0, 1), 1.0, 0.6).await.is_ok());
        // A new period starts clean.
        assert!(l.reserve("k", (1, 2), 1.0, 0.6).await.is_ok());
    }

    #[tokio::test]
    async fn parallel_and_rpm() {
        let l = Arc::new(Ledger::default());
        let lim = Limits {
            rpm: Some(3),
            tpm: None,
            max_parallel: Some(2),
        };
        let (a, _) = l.enter("k", lim, 10).await.unwrap();
        let (_b, _) = l.enter("k", lim, 10).await.unwrap();
        assert_eq!(l.enter("k", lim, 10).await.err(), Some(Refused::Parallel));
        a.release(5);
        let (_c, m) = l.enter("k", lim, 10).await.unwrap();
        assert_eq!((m.requests, m.tokens), (3, 35));
        assert!(matches!(
            l.enter("k", lim, 10).await.err(),
            Some(Refused::Requests { .. })
        ));
    }
}
