//! `reliability:`: attempts, backoff, and the cooldown that benches a failing deployment.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let r = &c.reliability;
    let bad = |key: &str, message: &str| ck.path(format!("reliability.{key}"), message.into());
    if r.max_attempts == 0 {
        return Err(bad("max_attempts", "must be at least 1"));
    }
    if r.backoff.initial.0 > r.backoff.max.0 {
        return Err(bad(
            "backoff.initial",
            "backoff.initial must not exceed backoff.max",
        ));
    }
    let cd = &r.cooldown;
    if cd.window.0.is_zero() {
        return Err(bad("cooldown.window", "must be longer than 0"));
    }
    if let Some(ratio) = cd.failure_ratio {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(bad(
                "cooldown.failure_ratio",
                &format!("{ratio} must be within (0, 1]"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn attempts_backoff_and_cooldown() {
        passes(check, BASE);
        passes(
            check,
            &format!("{BASE}reliability:\n  max_attempts: 3\n  cooldown: {{failure_ratio: 0.5}}\n"),
        );
        fails(
            check,
            &format!("{BASE}reliability:\n  max_attempts: 0\n"),
            "reliability.max_attempts",
            6,
            "must be at least 1",
        );
        fails(
            check,
            &format!("{BASE}reliability:\n  backoff: {{initial: 5s, max: 1s}}\n"),
            "reliability.backoff.initial",
            6,
            "backoff.initial must not exceed backoff.max",
        );
        fails(
            check,
            &format!("{BASE}reliability:\n  cooldown:\n    failure_ratio: 1.5\n"),
            "reliability.cooldown.failure_ratio",
            7,
            "1.5 must be within (0, 1]",
        );
    }
}
