//! What each class of failure is allowed to cost: retries within the tier, a move to a fallback
//! tier, and its weight on the deployment's circuit breaker. Defaults keep the bill honest: a bad
//! request or a content-policy refusal is returned as it is, because no bigger model fixes it.

use crate::config::{ClassMap, CoolingMode, ReliabilityConfig};
use crate::providers::{ErrorClass, ErrorKind};
use crate::state::Settings;
use std::time::Duration;

/// The policy a config sets for `class`, if it sets one.
fn pick<T: Clone>(class: ErrorClass, m: &ClassMap<T>) -> Option<T> {
    match class {
        ErrorClass::RateLimit => m.rate_limit.clone(),
        ErrorClass::Timeout => m.timeout.clone(),
        ErrorClass::ServerError => m.server_error.clone(),
        ErrorClass::ContextWindow => m.context_window.clone(),
        ErrorClass::ContentPolicy => m.content_policy.clone(),
        ErrorClass::Authentication => m.authentication.clone(),
        ErrorClass::BadRequest => m.bad_request.clone(),
        ErrorClass::NotFound => m.not_found.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassPolicy {
    pub retries: u32,
    /// For context-window errors this means the context-window chain, never the ordinary one.
    pub fallback: bool,
    pub cooldown: CoolingMode,
}

impl ClassPolicy {
    fn default_for(class: ErrorClass, retries: u32) -> ClassPolicy {
        let p = |retries, fallback, cooldown| ClassPolicy {
            retries,
            fallback,
            cooldown,
        };
        match class {
            ErrorClass::RateLimit | ErrorClass::Timeout | ErrorClass::ServerError => {
                p(retries, true, CoolingMode::Count)
            }
            // A longer prompt does not get shorter on retry; only a bigger window helps.
            ErrorClass::ContextWindow => p(0, true, CoolingMode::Never),
            ErrorClass::ContentPolicy | ErrorClass::BadRequest => p(0, false, CoolingMode::Never),
            // Another deployment of the tier has another key or endpoint; a pricier tier would
            // hide a broken credential behind a bigger bill, so no fallback.
            ErrorClass::Authentication | ErrorClass::NotFound => {
                p(1, false, CoolingMode::Immediate)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policies {
    by_class: [ClassPolicy; 8],
    pub max_attempts: u32,
    pub max_fallbacks: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_retry_wait: Duration,
    pub breaker: Settings,
}

impl Default for Policies {
    fn default() -> Self {
        Policies::new(&ReliabilityConfig::default())
    }
}

impl Policies {
    pub fn new(c: &ReliabilityConfig) -> Policies {
        let by_class = ErrorClass::ALL.map(|class| {
            let mut p = ClassPolicy::default_for(class, c.retries);
            match pick(class, &c.retry_on) {
                Some(false) => p.retries = 0,
                Some(true) if p.retries == 0 => p.retries = c.retries,
                _ => {}
            }
            if let Some(o) = pick(class, &c.policies) {
                p.retries = o.retries.unwrap_or(p.retries);
                p.fallback = o.fallback.unwrap_or(p.fallback);
                p.cooldown = o.cooldown.unwrap_or(p.cooldown);
            }
            if !c.cooldown.enabled {
                p.cooldown = CoolingMode::Never;
            }
            p
        });
        Policies {
            by_class,
            max_attempts: c.max_attempts,
            max_fallbacks: c.max_fallbacks,
            backoff_initial: c.backoff.initial.0,
            backoff_max: c.backoff.max.0,
            max_retry_wait: c.backoff.max_retry_wait.0,
            breaker: Settings::from(&c.cooldown),
        }
    }

    pub fn for_kind(&self, kind: ErrorKind) -> ClassPolicy {
        self.for_class(kind.class())
    }

    pub fn for_class(&self, class: ErrorClass) -> ClassPolicy {
        let i = ErrorClass::ALL
            .iter()
            .position(|c| *c == class)
            .unwrap_or(0);
        self.by_class[i]
    }

    /// Wait before retry number `n` (1-based) of the same deployment: exponential, capped, with
    /// full jitter so that many clients retrying together do not arrive together.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let cap = exp.min(self.backoff_max);
        cap.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policies(yaml: &str) -> Policies {
        let text = format!(
            "providers: {{p: {{kind: simulated}}}}\nmodels: [{{name: m, provider: p}}]\ntiers: {{t: {{models: [m]}}}}\nrouting: {{default: t}}\n{yaml}"
        );
        let c = Config::from_yaml(&text, "test.yaml").unwrap();
        Policies::new(&c.reliability)
    }

    #[test]
    fn defaults_never_retry_or_escalate_what_no_model_fixes() {
        let p = Policies::default();
        let refusal = crate::providers::ProviderError::from_http(
            400,
            &reqwest::header::HeaderMap::new(),
            br#"{"error":{"message":"blocked","code":"content_filter"}}"#,
        );
        assert!(!p.for_kind(refusal.kind).fallback);
        for k in [ErrorKind::ContentPolicy, ErrorKind::BadRequest] {
            assert_eq!(p.for_kind(k).retries, 0);
            assert!(!p.for_kind(k).fallback);
            assert_eq!(p.for_kind(k).cooldown, CoolingMode::Never);
        }
        assert_eq!(p.for_kind(ErrorKind::Auth).cooldown, CoolingMode::Immediate);
        assert!(!p.for_kind(ErrorKind::Auth).fallback);
        assert_eq!(
            p.for_kind(ErrorKind::Connect),
            p.for_kind(ErrorKind::Server)
        );
        assert_eq!(p.for_kind(ErrorKind::RateLimit).retries, 2);
    }

    #[test]
    fn every_kind_is_one_of_the_configurable_classes() {
        use crate::providers::ErrorKind as K;
        for k in [
            K::RateLimit,
            K::Timeout,
            K::Server,
            K::Connect,
            K::InvalidResponse,
            K::CutOff,
            K::ContextWindow,
            K::ContentPolicy,
            K::Auth,
            K::BadRequest,
            K::NotFound,
        ] {
            assert_eq!(k.class().label(), k.as_str(), "{k:?}");
            assert_eq!(ErrorClass::parse(k.as_str()), Some(k.class()));
        }
        assert_eq!(
            ErrorClass::ALL.map(ErrorClass::label),
            crate::providers::CLASSES,
            "the documented classes"
        );
    }

    #[test]
    fn retry_on_and_policies_override_defaults() {
        let p = policies(
            "reliability:\n  retries: 3\n  retry_on: {timeout: false, content_policy: true}\n  policies:\n    rate_limit: {retries: 1, fallback: false}\n    authentication: {cooldown: false}\n",
        );
        assert_eq!(p.for_kind(ErrorKind::Timeout).retries, 0);
        assert_eq!(p.for_kind(ErrorKind::ContentPolicy).retries, 3);
        assert_eq!(p.for_kind(ErrorKind::RateLimit).retries, 1);
        assert!(!p.for_kind(ErrorKind::RateLimit).fallback);
        assert_eq!(p.for_kind(ErrorKind::Server).retries, 3);
        assert_eq!(p.for_kind(ErrorKind::Auth).cooldown, CoolingMode::Never);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = Policies::default();
        for n in 1..20 {
            assert!(p.backoff(n) <= Duration::from_secs(2));
        }
        assert!(p.backoff(1) <= Duration::from_millis(100));
    }
}
