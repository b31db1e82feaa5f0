//! The router's retry, cooldown and backoff settings, `retry_policy` and `allowed_fails_policy`,
//! as `reliability`; and the attempt budget they need.

use super::Mapper;
use crate::config::ReliabilityConfig;
use crate::import::table::{Chain, Cooling, Sourced};

/// LiteLLM's own limit on fallbacks of fallbacks.
const LITELLM_MAX_FALLBACKS: u64 = 5;
/// LiteLLM idiom for "never cool down on this class": an allowance no minute reaches.
const NEVER_COOLS: u64 = 1000;

/// LiteLLM's exception names in `retry_policy` / `allowed_fails_policy` → switchyard's classes.
const CLASSES: &[(&str, &str)] = &[
    ("BadRequestError", "bad_request"),
    ("AuthenticationError", "authentication"),
    ("TimeoutError", "timeout"),
    ("RateLimitError", "rate_limit"),
    ("ContentPolicyViolationError", "content_policy"),
    ("InternalServerError", "server_error"),
    ("ContextWindowExceededError", "context_window"),
    ("NotFoundError", "not_found"),
];

impl Mapper<'_> {
    pub(super) fn reliability(&mut self) {
        // switchyard's own defaults, read from the schema so the import cannot drift from them:
        // they tell when LiteLLM's settings need more room than a table that omits them gives.
        let defaults = ReliabilityConfig::default();
        let default_retries = u64::from(defaults.retries);
        let default_max_fallbacks = u64::from(defaults.max_fallbacks);
        let default_max_attempts = u64::from(defaults.max_attempts);
        let default_allowed_fails = u64::from(defaults.cooldown.allowed_fails);
        let default_backoff_max = defaults.backoff.max.0.as_secs_f64();
        let l = self.l;
        let s = &l.settings;
        let mut r = std::mem::take(&mut self.table.reliability);
        if let Some(n) = &s.num_retries {
            r.retries = Some(Sourced::new(n.value, n.path.clone()));
        }
        for entry in &s.retry_policy {
            let (key, n) = &entry.value;
            match class_of(key, "Retries") {
                Some(class) => {
                    let p = r.policy(class);
                    p.retries = Some(*n);
                    p.from.push(entry.path.clone());
                }
                None => self.report.not_carried(
                    entry.path.clone(),
                    entry.line,
                    format!(
                        "unknown error type (switchyard's classes: {})",
                        class_names("Retries")
                    ),
                ),
            }
        }
        let allowed = s
            .allowed_fails
            .as_ref()
            .map_or(default_allowed_fails, |a| a.value);
        for entry in &s.allowed_fails_policy {
            let (key, n) = &entry.value;
            let Some(class) = class_of(key, "AllowedFails") else {
                self.report.not_carried(
                    entry.path.clone(),
                    entry.line,
                    format!(
                        "unknown error type (switchyard's classes: {})",
                        class_names("AllowedFails")
                    ),
                );
                continue;
            };
            let mode = match *n {
                0 => Cooling::Immediate,
                n if n >= NEVER_COOLS => {
                    self.report.changed(
                        entry.path.clone(),
                        entry.line,
                        format!("{n} failures a minute: written as `cooldown: false` (this class never cools a deployment)"),
                    );
                    Cooling::Never
                }
                n => {
                    if n != allowed {
                        self.report.changed(
                            entry.path.clone(),
                            entry.line,
                            format!("switchyard counts every cooling class toward one allowed_fails ({allowed}), not {n} for this class alone"),
                        );
                    }
                    Cooling::Count
                }
            };
            let p = r.policy(class);
            p.cooldown = Some(mode);
            p.from.push(entry.path.clone());
        }
        if let Some(d) = &s.disable_cooldowns {
            r.cooldown_enabled = Some(Sourced::new(!d.value, d.path.clone()));
        }
        if let Some(a) = &s.allowed_fails {
            r.allowed_fails = Some(Sourced::new(a.value, a.path.clone()));
            r.window = Some(Sourced::new(60.0, "LiteLLM counts failures per minute"));
        }
        if let Some(c) = &s.cooldown_time {
            r.duration = Some(Sourced::new(c.value, c.path.clone()));
        }
        if let Some(ra) = &s.retry_after {
            r.backoff_initial = Some(Sourced::new(ra.value, ra.path.clone()));
            if ra.value > default_backoff_max {
                r.backoff_max = Some(Sourced::new(ra.value, ra.path.clone()));
            }
            self.report.changed(
                ra.path.clone(),
                ra.line,
                "retry_after becomes the first backoff: switchyard doubles it with each retry, with full jitter (a wait may be shorter)",
            );
        }
        // Tiers a failing request can walk through, chains of chains included, as dispatch walks
        // them; LiteLLM follows fallbacks of fallbacks too, up to its max_fallbacks (5).
        let reach = self
            .table
            .tiers
            .iter()
            .map(|t| reachable(&self.table.fallbacks, &t.name))
            .max()
            .unwrap_or(0);
        let max_fallbacks = match &s.max_fallbacks {
            Some(m) => {
                r.max_fallbacks = Some(Sourced::new(m.value, m.path.clone()));
                m.value
            }
            None if reach > default_max_fallbacks => {
                let n = reach.min(LITELLM_MAX_FALLBACKS);
                r.max_fallbacks = Some(Sourced::new(n, "the longest fallback walk"));
                self.report.chosen(
                    "reliability.max_fallbacks",
                    0,
                    format!("{n}: room for the longest walk through the fallback chains ({reach} tiers; LiteLLM stops at {LITELLM_MAX_FALLBACKS}, switchyard's default is {default_max_fallbacks})"),
                );
                n
            }
            None => default_max_fallbacks,
        };
        let retries = r
            .policies
            .iter()
            .filter_map(|(_, p)| p.retries)
            .chain(r.retries.as_ref().map(|x| x.value))
            .max()
            .unwrap_or(default_retries);
        let hops = max_fallbacks.min(reach);
        let need = 1 + retries + hops;
        if need > default_max_attempts {
            r.max_attempts = Some(Sourced::new(need, "1 + retries + fallback hops"));
            self.report.chosen(
                "reliability.max_attempts",
                0,
                format!("{need}: the first tier's {retries} retries plus one call for each of {hops} fallback hop(s); LiteLLM retries each fallback group anew, switchyard spends one budget of calls per request"),
            );
        }
        self.table.reliability = r;
        if let Some(p) = &s.enable_pre_call_checks {
            self.report.changed(
                p.path.clone(),
                p.line,
                "switchyard always skips deployments whose context_window cannot hold the prompt (models[].context_window, from model_info.max_input_tokens)",
            );
        }
    }
}

/// How many other tiers a request routed to `from` can fall back through, breadth-first.
fn reachable(chains: &[Chain], from: &str) -> u64 {
    let mut seen: Vec<&str> = vec![from];
    let mut i = 0;
    while i < seen.len() {
        if let Some(c) = chains.iter().find(|c| c.from == seen[i]) {
            for t in &c.to {
                if !seen.contains(&t.as_str()) {
                    seen.push(t);
                }
            }
        }
        i += 1;
    }
    (seen.len() - 1) as u64
}

fn class_of(key: &str, suffix: &str) -> Option<&'static str> {
    let base = key.strip_suffix(suffix)?;
    CLASSES.iter().find(|(k, _)| *k == base).map(|(_, c)| *c)
}

fn class_names(suffix: &str) -> String {
    CLASSES
        .iter()
        .map(|(k, _)| format!("{k}{suffix}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_error_names_map_to_classes() {
        assert_eq!(
            class_of("RateLimitErrorRetries", "Retries"),
            Some("rate_limit")
        );
        assert_eq!(
            class_of("InternalServerErrorAllowedFails", "AllowedFails"),
            Some("server_error")
        );
        assert_eq!(class_of("FooErrorRetries", "Retries"), None);
    }

    #[test]
    fn fallback_walks_count_chains_of_chains_once() {
        let c = |from: &str, to: &[&str]| Chain {
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            source: String::new(),
        };
        let chains = [c("a", &["b"]), c("b", &["c", "a"]), c("c", &["d"])];
        assert_eq!(reachable(&chains, "a"), 3);
        assert_eq!(reachable(&chains, "c"), 1);
        assert_eq!(reachable(&chains, "d"), 0);
    }
}
