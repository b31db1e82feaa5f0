//! `spend_log:`: the section's own rules (`crate::config::spend_log`), located in the file. Skipped
//! when the loading command left its variables unset.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    if let Some(s) = c
        .spend_log
        .as_ref()
        .filter(|_| !c.is_unresolved("spend_log"))
    {
        crate::config::spend_log::check_config(s).map_err(|(key, m)| {
            let path = format!("spend_log.{key}");
            match key {
                "url" => ck.spanned(&s.url, path, m),
                "table" => ck.spanned(&s.table, path, m),
                _ => ck.path(path, m),
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn url_table_and_sizes() {
        passes(check, BASE);
        passes(
            check,
            &format!("{BASE}spend_log: {{url: \"sqlite://spend.db\"}}\n"),
        );
        fails(
            check,
            &format!("{BASE}spend_log:\n  url: \"sqlite://spend.db\"\n  table: \"spend; drop\"\n"),
            "spend_log.table",
            7,
            "\"spend; drop\" is not a plain SQL identifier (letters, digits, _; at most 50 characters)",
        );
        fails(
            check,
            &format!("{BASE}spend_log:\n  url: \"sqlite://spend.db\"\n  queue_size: 0\n"),
            "spend_log.queue_size",
            7,
            "must be at least 1",
        );
    }
}
