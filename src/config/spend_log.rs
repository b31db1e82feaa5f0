//! `spend_log:` checked and resolved: where rows go (a SQLite file or a PostgreSQL URL, parsed
//! at load so that a malformed URL is a config error, not a failure at start), the table name
//! that is spliced into SQL, and the writer's batch and queue bounds. The writer itself is
//! `cost::spend`; this module must not import it.

use super::SpendLogConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// `sqlite://rel.db`, `sqlite:///abs.db`, `sqlite:rel.db` or `postgres(ql)://…`; relative SQLite
    /// paths resolve against `base_dir` (the config file's folder, or the working directory for
    /// `report --database`).
    pub fn parse(url: &str, base_dir: &Path) -> Result<Target, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Parsed now so that a malformed URL is a config error, not a failure at start.
            return url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .map(|_| Target::Postgres(url.to_string()))
                .map_err(|e| format!("{}: {e}", redact_url(url)));
        }
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(format!(
                "{:?} is not a spend log URL: write sqlite://spend.db or postgres://user@host/db",
                redact_url(url)
            ));
        };
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path.contains('?') || path == ":memory:" {
            return Err(format!(
                "{url:?}: give a database file path (query parameters and :memory: are not supported)"
            ));
        }
        let path = Path::new(path);
        Ok(Target::Sqlite(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }))
    }

    /// For log lines and errors: never the password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("sqlite {}", p.display()),
            Target::Postgres(u) => format!("postgres {}", redact_url(u)),
        }
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `spend_log:` after validation, with the target resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub target: Target,
    pub table: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_size: usize,
}

/// The most rows one INSERT carries: 24 columns each stays far below both databases' limits on
/// bound parameters (SQLite 32766, PostgreSQL 65535).
pub const MAX_BATCH: usize = 1000;

impl Settings {
    pub fn from_config(c: &SpendLogConfig, base_dir: &Path) -> Result<Settings, String> {
        Ok(Settings {
            target: Target::parse(c.url.value.as_str(), base_dir)?,
            table: c.table.value.clone(),
            batch_size: c.batch_size,
            flush_interval: c.flush_interval.0,
            queue_size: c.queue_size,
        })
    }
}

/// Checks what serde cannot; returns the offending key (under `spend_log.`) and a message.
pub fn check_config(c: &SpendLogConfig) -> Result<(), (&'static str, String)> {
    Target::parse(c.url.value.as_str(), Path::new(".")).map_err(|m| ("url", m))?;
    check_table(&c.table.value).map_err(|m| ("table", m))?;
    if !(1..=MAX_BATCH).contains(&c.batch_size) {
        return Err(("batch_size", format!("must be within 1–{MAX_BATCH}")));
    }
    if c.queue_size == 0 {
        return Err(("queue_size", "must be at least 1".into()));
    }
    if c.flush_interval.0.is_zero() {
        return Err(("flush_interval", "must be greater than 0".into()));
    }
    Ok(())
}

/// Table names are spliced into SQL, so only plain identifiers are accepted.
pub fn check_table(t: &str) -> Result<(), String> {
    let mut chars = t.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 50;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a plain SQL identifier (letters, digits, _; at most 50 characters)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let base = Path::new("/etc/sy");
        assert_eq!(
            Target::parse("sqlite://spend.db", base).unwrap(),
            Target::Sqlite("/etc/sy/spend.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/spend.db", base).unwrap(),
            Target::Sqlite("/var/lib/spend.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:data/s.db", base).unwrap(),
            Target::Sqlite("/etc/sy/data/s.db".into())
        );
        assert!(matches!(
            Target::parse("postgresql://u:pw@h/db", base).unwrap(),
            Target::Postgres(_)
        ));
        for bad in [
            "postgres://h:notaport/db",
            "mysql://x",
            "sqlite://",
            "sqlite::memory:",
            "spend.db",
            "sqlite://a.db?mode=ro",
        ] {
            assert!(Target::parse(bad, base).is_err(), "{bad}");
        }
        assert_eq!(
            Target::Postgres("postgres://u:secret@h:5432/db".into()).describe(),
            "postgres postgres://u:***@h:5432/db"
        );
    }

    #[test]
    fn table_names() {
        assert!(check_table("switchyard_spend").is_ok());
        assert!(check_table("_t2").is_ok());
        for bad in ["", "2t", "a-b", "a;drop table x", "s.t", &"x".repeat(51)] {
            assert!(check_table(bad).is_err(), "{bad}");
        }
    }
}
