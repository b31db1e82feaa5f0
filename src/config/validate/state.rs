//! `state:`: the section's own rules (`crate::config::state`), located in the file.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    c.state
        .check()
        .map_err(|(key, m)| ck.path(format!("state.{key}"), m))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn backend_url_prefix_and_timeout() {
        passes(check, BASE);
        passes(
            check,
            &format!(
                "{BASE}state: {{backend: redis, url: \"redis://127.0.0.1:6379\", on_state_error: deny}}\n"
            ),
        );
        fails(
            check,
            &format!("{BASE}state:\n  backend: redis\n"),
            "state.backend",
            6,
            "`backend: redis` needs `url` (e.g. redis://127.0.0.1:6379)",
        );
        fails(
            check,
            &format!("{BASE}state:\n  backend: redis\n  url: \"http://x\"\n"),
            "state.url",
            7,
            "is not a Redis URL (redis://host:port[/db] or rediss://…)",
        );
        fails(
            check,
            &format!("{BASE}state:\n  backend: redis\n  url: \"redis://h\"\n  prefix: \"a b\"\n"),
            "state.prefix",
            8,
            "\"a b\" is not a usable key prefix (1 to 64 printable characters, no spaces)",
        );
    }
}
