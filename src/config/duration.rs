//! Durations written the way people write them: `30s`, `250ms`, `5m`, or a bare number of seconds.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);

    pub const fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) if s.is_finite() && s >= 0.0 => Ok(Dur(Duration::from_secs_f64(s))),
            Raw::Secs(s) => Err(serde::de::Error::custom(format!(
                "invalid duration {s}: expected a non-negative number of seconds"
            ))),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map(Dur).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {t:?}: {e} (write e.g. 30s, 250ms, 5m)"
                ))
            }),
        }
    }
}
