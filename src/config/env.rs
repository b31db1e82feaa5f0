//! `${VAR}` interpolation for string values in the routing table.
//!
//! Interpolation happens while a string value is deserialized (not on the raw text), so a secret
//! containing YAML syntax (`#`, `: `, quotes) can never change the document's structure, and an unset
//! variable is reported at the exact line and key where it is used.

use serde::{Deserialize, Deserializer};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
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
        let lookup = |name: &str| std::env::var(name).ok();
        let expanded = if LENIENT.with(Cell::get) {
            let mut unset = Vec::new();
            let v = expand(&raw, lookup, Some(&mut unset));
            UNSET.with(|u| u.borrow_mut().extend(unset));
            v
        } else {
            expand(&raw, lookup, None)
        };
        expanded.map(EnvString).map_err(serde::de::Error::custom)
    }
}

/// Substitutes every `${NAME}` and `${NAME:-default}` in `raw`, looking names up with `lookup`.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand(raw, lookup, None)
}

/// With `unset`, a variable that is not set (and has no default) becomes the empty string and its
/// name is pushed there, instead of being an error.
fn expand(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
    mut unset: Option<&mut Vec<String>>,
) -> Result<String, String> {
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
            (None, None) => match unset.as_deref_mut() {
                Some(names) => names.push(name.to_string()),
                None => {
                    return Err(format!(
                        "environment variable {name} is not set (write `${{{name}:-default}}` to give a default)"
                    ));
                }
            },
            (Some(v), None) => out.push_str(&v),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The sections of the file whose `${VAR}`s a command may leave unset, because it does not use
/// them: `route` calls no provider and writes no spend log; `report` only reads the spend log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    /// `serve`, `check` and reloads: every variable must be set.
    Everything,
    /// `route`: the routing table, models and tiers.
    Routing,
    /// `report`: `spend_log`.
    SpendLog,
}

/// A section of the file that may be read leniently (see [`Uses`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Server,
    Providers,
    SpendLog,
    Telemetry,
}

impl Uses {
    fn lenient(self, s: Section) -> bool {
        match self {
            Uses::Everything => false,
            Uses::Routing => true,
            Uses::SpendLog => s != Section::SpendLog,
        }
    }
}

thread_local! {
    /// What the file being parsed on this thread is for (serde gives no other way to pass it).
    static USES: Cell<Uses> = const { Cell::new(Uses::Everything) };
    /// Inside a section that may leave variables unset.
    static LENIENT: Cell<bool> = const { Cell::new(false) };
    static UNSET: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Variables left unset, by the part of the file that uses them (`server`, `providers.openai`).
    static UNRESOLVED: RefCell<BTreeMap<String, Vec<String>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Sets what the file parsed on this thread is for, until dropped.
pub(crate) struct Parsing {
    previous: Uses,
}

impl Parsing {
    pub(crate) fn start(uses: Uses) -> Parsing {
        UNRESOLVED.with(|u| u.borrow_mut().clear());
        Parsing {
            previous: USES.with(|c| c.replace(uses)),
        }
    }

    /// The variables left unset, by the part of the file that uses them.
    pub(crate) fn unresolved(&self) -> BTreeMap<String, Vec<String>> {
        UNRESOLVED.with(|u| std::mem::take(&mut *u.borrow_mut()))
    }
}

impl Drop for Parsing {
    fn drop(&mut self) {
        USES.with(|c| c.set(self.previous));
        LENIENT.with(|c| c.set(false));
        UNSET.with(|u| u.borrow_mut().clear());
    }
}

/// Runs `f` (one part of the file, named `part`) leniently when the current purpose allows it
/// for `section`, and notes the variables it left unset.
pub(crate) fn in_section<T, E>(
    section: Section,
    part: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if !USES.with(Cell::get).lenient(section) {
        return f();
    }
    let outer = LENIENT.with(|c| c.replace(true));
    let before = UNSET.with(|u| u.borrow().len());
    let result = f();
    LENIENT.with(|c| c.set(outer));
    let names: Vec<String> = UNSET.with(|u| u.borrow_mut().split_off(before));
    if !names.is_empty() {
        UNRESOLVED.with(|u| {
            u.borrow_mut()
                .entry(part.to_string())
                .or_default()
                .extend(names)
        });
    }
    result
}

/// `#[serde(deserialize_with)]` for a lenient-capable section other than `providers`.
macro_rules! section_deserializer {
    ($fn_name:ident, $section:expr, $part:literal) => {
        pub(crate) fn $fn_name<'de, D, T>(d: D) -> Result<T, D::Error>
        where
            D: Deserializer<'de>,
            T: Deserialize<'de>,
        {
            in_section($section, $part, || T::deserialize(d))
        }
    };
}
section_deserializer!(server_section, Section::Server, "server");
section_deserializer!(spend_log_section, Section::SpendLog, "spend_log");
section_deserializer!(telemetry_section, Section::Telemetry, "telemetry");

/// `providers:`, read entry by entry so that the variables a command leaves unset are known per
/// provider.
pub(crate) fn providers_section<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of provider names to providers")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let part = format!("providers.{name}");
                let value = in_section(Section::Providers, &part, || map.next_value::<T>())?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(std::marker::PhantomData))
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
