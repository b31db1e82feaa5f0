//! Cross-reference checks that serde cannot express, one checker per config section.
//!
//! Owns the order the sections are checked in (the first error found is the one reported, so the
//! order is part of what a user sees) and the helpers the checkers share: the [`Checker`] that
//! turns a YAML path or a spanned value into a located [`ConfigError`], and the "unknown tier"
//! check. Each section's file owns that section's rules. Must not import anything above `config/`.

mod alerts;
mod cascade;
mod deployments;
mod embedder;
mod fallbacks;
mod kinds;
mod learned;
mod models;
mod providers;
mod reliability;
mod routing;
mod rules;
mod semantic;
mod server;
mod spend_log;
mod state;
mod tiers;

use super::error::ConfigError;
use super::schema::Config;
use serde_saphyr::{Location, Spanned};

pub(super) use rules::included_rules;

pub use crate::openai::AUTO_MODEL;

/// Every section's checks, in the order their errors are reported.
pub(super) fn validate(c: &Config, file: &str, text: &str) -> Result<(), ConfigError> {
    let ck = Checker { file, text };
    if !c.is_unresolved("server") {
        server::check(c, &ck)?;
    }
    providers::check(c, &ck)?;
    models::check(c, &ck)?;
    tiers::check(c, &ck)?;
    routing::check_targets(c, &ck)?;
    spend_log::check(c, &ck)?;
    state::check(c, &ck)?;
    routing::check_aliases(c, &ck)?;
    rules::check(c, &ck)?;
    semantic::check(c, &ck)?;
    learned::check(c, &ck)?;
    cascade::check(c, &ck)?;
    fallbacks::check(c, &ck)?;
    kinds::check(c, &ck)?;
    deployments::check(c, &ck)?;
    reliability::check(c, &ck)?;
    alerts::check(c, &ck)
}

/// The file being checked, to locate errors in.
pub(super) struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn at(&self, loc: Location, path: String, message: String) -> ConfigError {
        let line = u32::try_from(loc.line()).ok().filter(|&l| l > 0);
        let col = u32::try_from(loc.column()).ok().filter(|&c| c > 0);
        ConfigError::at(self.file, self.text, line, col, &path, message)
    }

    /// An error at the place a spanned value was written.
    fn spanned<T>(&self, s: &Spanned<T>, path: String, message: String) -> ConfigError {
        self.at(s.referenced, path, message)
    }

    /// The key or item at a YAML path (`routing.cascade.rules[0]`), found in the file's text;
    /// when the path leads past the document (a key that is missing), its deepest existing part.
    fn path(&self, path: String, message: String) -> ConfigError {
        let pos = super::locate::locate(self.text, &path);
        ConfigError::at(
            self.file,
            self.text,
            pos.map(|p| p.line),
            pos.map(|p| p.column),
            &path,
            message,
        )
    }
}

/// Names for an error message: `a, b, c`, or `none`.
fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Whether `name` is a model's name (the models section has already refused duplicates).
fn is_model(c: &Config, name: &str) -> bool {
    c.models.iter().any(|m| m.name == name)
}

/// A reference to a tier, written at `s`, must name one of `tiers`.
fn known_tier(
    c: &Config,
    ck: &Checker<'_>,
    s: &Spanned<String>,
    path: String,
) -> Result<(), ConfigError> {
    if c.tiers.contains_key(&s.value) {
        Ok(())
    } else {
        Err(ck.spanned(
            s,
            path,
            format!(
                "unknown tier `{}` (defined: {})",
                s.value,
                list(c.tiers.keys())
            ),
        ))
    }
}

/// The folder relative paths in the config are resolved against.
fn base_dir(file: &str) -> std::path::PathBuf {
    std::path::Path::new(file)
        .parent()
        .map_or_else(|| ".".into(), std::path::Path::to_path_buf)
}

/// What the checkers' unit tests share: a small valid table, and running one checker on a table
/// that serde parsed but nothing validated, so one section's failure is seen on its own.
#[cfg(test)]
mod testing {
    use super::{Checker, Config, ConfigError};

    pub(super) const FILE: &str = "table.yaml";

    /// Valid in every section; tests append to it or replace a line.
    pub(super) const BASE: &str = "providers: {p: {kind: simulated}}\nmodels: [{name: m, provider: p}]\ntiers: {t: {models: [m]}, u: {models: [m]}}\nrouting: {default: t}\n";

    pub(super) type Check = fn(&Config, &Checker<'_>) -> Result<(), ConfigError>;

    pub(super) fn run(check: Check, text: &str) -> Result<(), ConfigError> {
        let c: Config = serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        check(&c, &Checker { file: FILE, text })
    }

    pub(super) fn passes(check: Check, text: &str) {
        if let Err(e) = run(check, text) {
            panic!("refused: {e}\n{text}");
        }
    }

    /// `BASE` with a block section under `routing:` (`semantic`, `learned`, ...); `body` is its
    /// indented lines.
    pub(super) fn with_routing(section: &str, body: &str) -> String {
        BASE.replace(
            "{default: t}",
            &format!("\n  default: t\n  {section}:\n{body}"),
        )
    }

    /// `BASE` with `part` replaced by each case's text fails with the case's path, line and
    /// message: one table of mistakes per section.
    pub(super) fn fails_each(check: Check, part: &str, cases: &[(&str, &str, u32, &str)]) {
        assert!(BASE.contains(part), "{part} is not in BASE");
        for (text, path, line, message) in cases {
            fails(check, &BASE.replace(part, text), path, *line, message);
        }
    }

    /// The error's key path, line and message, as `table.yaml:LINE: PATH: MESSAGE` shows them.
    pub(super) fn fails(check: Check, text: &str, path: &str, line: u32, message: &str) {
        let Err(e) = run(check, text) else {
            panic!("accepted:\n{text}");
        };
        assert_eq!(
            (e.path.as_str(), e.line, e.message.as_str()),
            (path, Some(line), message),
            "{e}"
        );
    }
}
