//! Choosing a deployment within a tier. A strategy only ranks the deployments; the caller walks the
//! ranking and takes the first one the circuit breaker and the rpm/tpm limits admit, so every
//! strategy skips cooled-down and saturated deployments the same way.

use super::Deployment;
use crate::config::Strategy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// This replica's view of a deployment's load: requests in flight and a latency EWMA. Local by
/// nature (each replica balances its own traffic), so it is not in the shared state.
#[derive(Default)]
pub struct Load {
    in_flight: AtomicU32,
    /// f64 bits of the EWMA in milliseconds; 0 until the first answer.
    ewma_ms: AtomicU64,
}

/// Weight of the newest sample: about the last ten calls dominate.
const EWMA_ALPHA: f64 = 0.2;

impl Load {
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn ewma_ms(&self) -> f64 {
        f64::from_bits(self.ewma_ms.load(Ordering::Relaxed))
    }

    pub fn observe(&self, latency: Duration) {
        let sample = latency.as_secs_f64() * 1000.0;
        let _ = self
            .ewma_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }

    /// Counts a request in flight until the guard drops (also when the request is cancelled).
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(Arc<Load>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Loads(RwLock<HashMap<Arc<str>, Arc<Load>>>);

impl Loads {
    pub fn get(&self, deployment: &Arc<str>) -> Arc<Load> {
        if let Some(l) = self.0.read().ok().and_then(|m| m.get(deployment).cloned()) {
            return l;
        }
        match self.0.write() {
            Ok(mut m) => m.entry(deployment.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }
}

/// Deployments in the order the strategy prefers them. `headroom` gives each deployment's share
/// of its rpm/tpm limits left this minute (1.0 when it has none), for the usage strategy.
pub fn rank(
    strategy: Strategy,
    pool: &[Arc<Deployment>],
    loads: &Loads,
    headroom: impl Fn(&Deployment) -> f64,
) -> Vec<Arc<Deployment>> {
    let mut out: Vec<Arc<Deployment>> = pool.to_vec();
    if out.len() < 2 {
        return out;
    }
    match strategy {
        Strategy::Ordered => {}
        Strategy::Weighted => {
            // Weighted random order without replacement: sort by u^(1/w), largest first.
            let mut keyed: Vec<(f64, Arc<Deployment>)> = out
                .drain(..)
                .map(|m| {
                    let key = if m.weight > 0.0 {
                        fastrand::f64().powf(1.0 / m.weight)
                    } else {
                        -1.0
                    };
                    (key, m)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            out = keyed.into_iter().map(|(_, m)| m).collect();
        }
        Strategy::LeastInFlight => {
            fastrand::shuffle(&mut out);
            out.sort_by_key(|m| loads.get(&m.name).in_flight());
        }
        Strategy::Latency => {
            fastrand::shuffle(&mut out);
            let cost = |m: &Arc<Deployment>| {
                let l = loads.get(&m.name);
                // Untried deployments score 0 and so get tried; load scales the estimate, as a
                // busy fast deployment is not fast for the next request.
                l.ewma_ms() * f64::from(l.in_flight() + 1)
            };
            // Power of two choices: the better of the first two random picks goes first.
            if cost(&out[1]) < cost(&out[0]) {
                out.swap(0, 1);
            }
        }
        Strategy::Usage => {
            fastrand::shuffle(&mut out);
            let mut keyed: Vec<(f64, Arc<Deployment>)> =
                out.drain(..).map(|m| (headroom(&m), m)).collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            out = keyed.into_iter().map(|(_, m)| m).collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gateway::Gateway;

    async fn models(weights: &[f64]) -> Vec<Arc<Deployment>> {
        let list: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{{name: m{i}, provider: p, weight: {w}}}"))
            .collect();
        let names: Vec<String> = (0..weights.len()).map(|i| format!("m{i}")).collect();
        let yaml = format!(
            "providers: {{p: {{kind: simulated}}}}\nmodels: [{}]\ntiers: {{t: {{models: [{}]}}}}\nrouting: {{default: t}}\n",
            list.join(", "),
            names.join(", ")
        );
        let c = Config::from_yaml(&yaml, "t.yaml").unwrap();
        let gw = Gateway::build(c, &reqwest::Client::new(), std::path::Path::new("."))
            .await
            .unwrap();
        gw.tables.tiers["t"].clone()
    }

    #[tokio::test]
    async fn weighted_order_follows_weights() {
        let pool = models(&[3.0, 1.0, 0.0]).await;
        let loads = Loads::default();
        let mut first = [0u32; 3];
        for _ in 0..4000 {
            let r = rank(Strategy::Weighted, &pool, &loads, |_| 1.0);
            let i = pool.iter().position(|m| m.name == r[0].name).unwrap();
            first[i] += 1;
            // A zero weight only ever comes last.
            assert_eq!(r[2].name.as_ref(), "m2");
        }
        let share = f64::from(first[0]) / 4000.0;
        assert!((0.70..0.80).contains(&share), "{first:?}");
    }

    #[tokio::test]
    async fn least_in_flight_and_latency_prefer_the_idle_and_the_fast() {
        let pool = models(&[1.0, 1.0]).await;
        let loads = Loads::default();
        let _busy = loads.get(&pool[0].name).enter();
        for _ in 0..50 {
            let r = rank(Strategy::LeastInFlight, &pool, &loads, |_| 1.0);
            assert_eq!(r[0].name, pool[1].name);
        }
        drop(_busy);
        loads.get(&pool[0].name).observe(Duration::from_millis(5));
        loads.get(&pool[1].name).observe(Duration::from_millis(200));
        for _ in 0..50 {
            let r = rank(Strategy::Latency, &pool, &loads, |_| 1.0);
            assert_eq!(r[0].name, pool[0].name);
        }
        // Usage: the most headroom first.
        for _ in 0..50 {
            let r = rank(Strategy::Usage, &pool, &loads, |m| {
                if m.name == pool[1].name { 0.9 } else { 0.1 }
            });
            assert_eq!(r[0].name, pool[1].name);
        }
    }
}
