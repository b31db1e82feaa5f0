//! The HTTP client every provider adapter calls upstream with. One client per gateway (its
//! connection pool is shared by all deployments of a host); a provider with its own connect
//! timeout gets a client of its own.

use std::time::Duration;

pub fn client() -> reqwest::Client {
    client_with(Duration::from_secs(10))
}

pub fn client_with(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // LLM APIs answer a POST directly; following redirects would only cost a URL re-parse
        // per request and could carry credentials somewhere unexpected.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}
