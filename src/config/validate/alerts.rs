//! `alerts:`: the fallback-rate alert's share and window.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    if let Some(a) = &c.alerts.fallback_rate {
        if !(a.max.is_finite() && (0.0..=1.0).contains(&a.max)) {
            return Err(ck.path(
                "alerts.fallback_rate.max".into(),
                format!("{} must be a share between 0 and 1 (0.03 for 3 %)", a.max),
            ));
        }
        if a.window.0.is_zero() {
            return Err(ck.path(
                "alerts.fallback_rate.window".into(),
                "must be longer than 0".into(),
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
    fn fallback_rate_share_and_window() {
        passes(check, BASE);
        passes(
            check,
            &format!("{BASE}alerts:\n  fallback_rate: {{max: 0.03}}\n"),
        );
        fails(
            check,
            &format!("{BASE}alerts:\n  fallback_rate:\n    max: 3\n"),
            "alerts.fallback_rate.max",
            7,
            "3 must be a share between 0 and 1 (0.03 for 3 %)",
        );
    }
}
