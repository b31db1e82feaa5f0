//! The single-replica backend: a mutex per deployment, so deployments never contend with each
//! other and the map lock is held only to find the entry.

use super::breaker::{Admission, Breaker, Cooled, Ended, Settings};
use super::{Health, MinuteUsage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

struct Entry {
    breaker: Breaker,
    /// (minute number since `MemoryState::start`, requests, tokens).
    minute: (u64, u64, u64),
}

pub struct MemoryState {
    start: Instant,
    entries: RwLock<HashMap<String, Arc<Mutex<Entry>>>>,
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState {
            start: Instant::now(),
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl MemoryState {
    fn with<R>(&self, deployment: &str, s: &Settings, f: impl FnOnce(&mut Entry) -> R) -> R {
        let found = self
            .entries
            .read()
            .ok()
            .and_then(|m| m.get(deployment).cloned());
        let entry = match found {
            Some(e) => e,
            None => {
                let fresh = || {
                    Arc::new(Mutex::new(Entry {
                        breaker: Breaker::new(Instant::now(), s),
                        minute: (0, 0, 0),
                    }))
                };
                match self.entries.write() {
                    Ok(mut m) => m
                        .entry(deployment.to_string())
                        .or_insert_with(fresh)
                        .clone(),
                    // A poisoned map lock only means a panic elsewhere; a private entry keeps
                    // this request going.
                    Err(_) => fresh(),
                }
            }
        };
        let mut guard = match entry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard)
    }

    fn minute_no(&self, now: Instant) -> u64 {
        now.duration_since(self.start).as_secs() / MINUTE.as_secs()
    }

    pub fn admit(&self, deployment: &str, s: &Settings) -> Admission {
        self.with(deployment, s, |e| e.breaker.admit(Instant::now(), s))
    }

    pub fn report(&self, deployment: &str, call: Ended, s: &Settings) -> Option<Cooled> {
        self.with(deployment, s, |e| {
            e.breaker.report(Instant::now(), call.result, call.probe, s)
        })
    }

    fn current(&self, e: &mut Entry, now: Instant) -> MinuteUsage {
        let m = self.minute_no(now);
        if e.minute.0 != m {
            e.minute = (m, 0, 0);
        }
        let into = now.duration_since(self.start).as_secs_f64() % MINUTE.as_secs_f64();
        MinuteUsage {
            requests: e.minute.1,
            tokens: e.minute.2,
            resets_in: MINUTE.saturating_sub(Duration::from_secs_f64(into)),
        }
    }

    pub fn usage(&self, deployment: &str) -> MinuteUsage {
        self.with(deployment, &Settings::default(), |e| {
            self.current(e, Instant::now())
        })
    }

    pub fn add_usage(&self, deployment: &str, requests: u64, tokens: u64) {
        self.with(deployment, &Settings::default(), |e| {
            self.current(e, Instant::now());
            e.minute.1 += requests;
            e.minute.2 += tokens;
        });
    }

    pub fn health(&self, deployment: &str, s: &Settings) -> Health {
        self.with(deployment, s, |e| {
            let now = Instant::now();
            let (calls, failures) = e.breaker.counts(now);
            Health {
                status: e.breaker.status(now, s),
                calls,
                failures,
                cooldowns: e.breaker.cooldowns,
                last_class: e.breaker.last_class,
                last_cooldown: e.breaker.last_cooldown,
                usage: self.current(e, now),
            }
        })
    }
}
