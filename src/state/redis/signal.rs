//! Change counters: a number in Redis that a replica bumps when it changed something every
//! replica caches (the virtual keys), and that the others read often and cheaply to learn that
//! they should re-read it now rather than at their next scheduled check.

use super::link::Link;

const TTL_MS: i64 = 7 * 86_400_000;

fn key(link: &Link, name: &str) -> String {
    link.key(&["changed", name])
}

pub async fn bump(link: &Link, name: &str) -> Option<()> {
    let k = key(link, name);
    let mut p = redis::pipe();
    p.atomic().incr(&k, 1).ignore().pexpire(&k, TTL_MS).ignore();
    let mut conn = link.conn();
    link.run(p.query_async::<()>(&mut conn)).await
}

/// The counter's value (0 before any change); `None` when Redis did not answer.
pub async fn read(link: &Link, name: &str) -> Option<i64> {
    let mut conn = link.conn();
    let mut cmd = redis::cmd("GET");
    cmd.arg(key(link, name));
    let v = link.run(cmd.query_async::<Option<i64>>(&mut conn)).await?;
    Some(v.unwrap_or(0))
}
