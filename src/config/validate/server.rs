//! `server:`: the listen addresses, body and connection limits, the client, admin and metrics
//! keys (none empty, admin keys apart from the others) and the CORS origins.

use super::Checker;
use crate::config::env::EnvString;
use crate::config::error::ConfigError;
use crate::config::schema::Config;

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let s = &c.server;
    let socket = |v: &EnvString, path: &str| -> Result<std::net::SocketAddr, ConfigError> {
        v.as_str().parse().map_err(|_| {
            ck.path(
                path.into(),
                format!(
                    "{:?} is not a socket address (write e.g. 127.0.0.1:4000)",
                    v.as_str()
                ),
            )
        })
    };
    let listen = socket(&s.listen, "server.listen")?;
    if s.max_body_bytes == 0 {
        return Err(ck.path(
            "server.max_body_bytes".into(),
            "must be greater than 0".into(),
        ));
    }
    for (key, d) in [
        ("header_read_timeout", s.header_read_timeout),
        ("body_read_timeout", s.body_read_timeout),
    ] {
        if d.0.is_zero() {
            return Err(ck.path(format!("server.{key}"), "must be longer than 0".into()));
        }
    }
    if s.max_connections == 0 {
        return Err(ck.path("server.max_connections".into(), "must be at least 1".into()));
    }
    if s.max_in_flight_requests == Some(0) {
        return Err(ck.path(
            "server.max_in_flight_requests".into(),
            "must be at least 1 (leave it out for no limit)".into(),
        ));
    }
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (list, keys) in [
        ("api_keys", &s.api_keys),
        ("admin_keys", &s.admin_keys),
        ("metrics.keys", &s.metrics.keys),
    ] {
        for (i, k) in keys.iter().enumerate() {
            let path = format!("server.{list}[{i}]");
            if k.as_str().trim().is_empty() {
                return Err(ck.path(
                    path,
                    "a key must not be empty (an unset variable with an empty default, `${KEY:-}`, gives one); remove the entry or set the variable".into(),
                ));
            }
            if k.as_str().trim() != k.as_str() {
                return Err(ck.path(
                    path,
                    "a key must not start or end with whitespace (clients' keys are trimmed)"
                        .into(),
                ));
            }
            match seen.insert(k.as_str(), list) {
                Some(other) if other != list && (other == "admin_keys" || list == "admin_keys") => {
                    return Err(ck.path(
                        path,
                        format!("this key is also in server.{other}: admin keys must be separate from client keys"),
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(m) = &s.metrics.listen {
        if socket(m, "server.metrics.listen")? == listen && listen.port() != 0 {
            return Err(ck.path(
                "server.metrics.listen".into(),
                "is the same address as server.listen; leave it out to serve /metrics there".into(),
            ));
        }
    }
    if let Some(cors) = &s.cors {
        if cors.allowed_origins.is_empty() {
            return Err(ck.path(
                "server.cors.allowed_origins".into(),
                "list at least one origin (e.g. https://app.example.com), or remove server.cors"
                    .into(),
            ));
        }
        for (i, o) in cors.allowed_origins.iter().enumerate() {
            if let Err(m) = check_origin(o) {
                return Err(ck.path(format!("server.cors.allowed_origins[{i}]"), m));
            }
        }
    }
    Ok(())
}

/// A browser's `Origin`: `scheme://host[:port]`, nothing more, compared exactly.
fn check_origin(o: &str) -> Result<(), String> {
    if o == "*" {
        return Err(
            "`*` would let any web page call the gateway with a user's key; list the origins"
                .into(),
        );
    }
    let bad = || {
        format!("{o:?} is not an origin: write scheme://host[:port], e.g. https://app.example.com")
    };
    let u = reqwest::Url::parse(o).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad());
    }
    if u.origin().ascii_serialization() != o {
        return Err(format!(
            "{o:?} is not written as browsers send it: {:?} (no path, no trailing slash, lowercase host)",
            u.origin().ascii_serialization()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn addresses_keys_and_origins() {
        passes(
            check,
            &format!(
                "{BASE}server:\n  listen: 127.0.0.1:4000\n  api_keys: [client-key]\n  admin_keys: [admin-key]\n  cors: {{allowed_origins: [\"https://app.example.com\"]}}\n"
            ),
        );
        fails(
            check,
            &format!("{BASE}server:\n  listen: localhost\n"),
            "server.listen",
            6,
            "\"localhost\" is not a socket address (write e.g. 127.0.0.1:4000)",
        );
        fails(
            check,
            &format!("{BASE}server:\n  api_keys: [same-key]\n  admin_keys: [same-key]\n"),
            "server.admin_keys[0]",
            7,
            "this key is also in server.api_keys: admin keys must be separate from client keys",
        );
        fails(
            check,
            &format!(
                "{BASE}server:\n  cors:\n    allowed_origins:\n      - https://app.example.com/\n"
            ),
            "server.cors.allowed_origins[0]",
            8,
            "\"https://app.example.com/\" is not written as browsers send it: \"https://app.example.com\" (no path, no trailing slash, lowercase host)",
        );
    }
}
