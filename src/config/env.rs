//! `${VAR}` interpolation for string values in the routing table.
//!
//! Interpolation happens while a string value is deserialized (not on the raw text), so a secret
//! containing YAML syntax (`#`, `: `, quotes) can never change the document's structure, and an unset
//! variable is reported at the exact line and key where it is used.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A string from the config after `${VAR}` / `${VAR:-default}` substitution. `$${` writes a literal `${`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct EnvString(pub String);

impl EnvString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        interpolate(&raw, |name| std::env::var(name).ok())
            .map(EnvString)
            .map_err(serde::de::Error::custom)
    }
}

/// Substitutes every `${NAME}` and `${NAME:-default}` in `raw`, looking names up with `lookup`.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!("unterminated `${{` in {raw:?}: expected `}}`"));
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid environment variable name {name:?} in `${{{body}}}`"
            ));
        }
        match (lookup(name), default) {
            (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write `${{{name}:-default}}` to give a default)"
                ));
            }
            (Some(v), None) => out.push_str(&v),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_variables_and_defaults() {
        assert_eq!(
            interpolate("Bearer ${KEY}", env).as_deref(),
            Ok("Bearer sk-123")
        );
        assert_eq!(
            interpolate("${NOPE:-fallback}", env).as_deref(),
            Ok("fallback")
        );
        assert_eq!(interpolate("${EMPTY:-d}", env).as_deref(), Ok("d"));
        assert_eq!(interpolate("${EMPTY}", env).as_deref(), Ok(""));
        assert_eq!(
            interpolate("cost $5 $${KEY}", env).as_deref(),
            Ok("cost $5 ${KEY}")
        );
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let err = interpolate("${OPENAI_API_KEY}", env).unwrap_err();
        assert!(err.contains("OPENAI_API_KEY is not set"), "{err}");
        assert!(interpolate("${KEY", env).is_err());
        assert!(interpolate("${BAD NAME}", env).is_err());
    }
}
