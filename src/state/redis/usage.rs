//! Deployments' requests and tokens per wall-clock minute, in a hash per deployment and minute
//! that expires two minutes later, so every replica counts toward the same `rpm`/`tpm` limit.

use super::link::Link;
use crate::state::MinuteUsage;
use std::sync::Arc;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
const TTL_MS: i64 = 2 * MINUTE_MS;

fn minute_key(link: &Link, deployment: &str, now: i64) -> String {
    link.key(&["usage", deployment, &now.div_euclid(MINUTE_MS).to_string()])
}

fn resets_in(now: i64) -> Duration {
    let left = MINUTE_MS - now.rem_euclid(MINUTE_MS);
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

pub async fn usage(link: &Link, deployment: &str) -> Option<MinuteUsage> {
    let now = crate::state::now_ms();
    let mut conn = link.conn();
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(minute_key(link, deployment, now)).arg("r").arg("t");
    let (requests, tokens) = link
        .run(cmd.query_async::<(Option<u64>, Option<u64>)>(&mut conn))
        .await?;
    Some(MinuteUsage {
        requests: requests.unwrap_or(0),
        tokens: tokens.unwrap_or(0),
        resets_in: resets_in(now),
    })
}

fn add_pipe(link: &Link, deployment: &str, requests: u64, tokens: u64) -> redis::Pipeline {
    let key = minute_key(link, deployment, crate::state::now_ms());
    let mut p = redis::pipe();
    p.atomic()
        .hincr(&key, "r", requests)
        .ignore()
        .hincr(&key, "t", tokens)
        .ignore()
        .pexpire(&key, TTL_MS)
        .ignore();
    p
}

/// Counts a request (awaited, so the next pick on any replica sees it); `None` if Redis failed.
pub async fn add(link: &Link, deployment: &str, requests: u64, tokens: u64) -> Option<()> {
    let p = add_pipe(link, deployment, requests, tokens);
    let mut conn = link.conn();
    link.run(p.query_async::<()>(&mut conn)).await
}

/// Adds an answer's tokens in the background: no later decision waits on it.
pub fn add_later(link: &Arc<Link>, deployment: &str, requests: u64, tokens: u64) {
    let p = add_pipe(link, deployment, requests, tokens);
    let mut conn = link.conn();
    link.spawn(async move { p.query_async::<()>(&mut conn).await });
}
