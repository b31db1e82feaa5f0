//! Virtual keys' counters in Redis, for [`crate::state::ledger::Ledger`]: requests and tokens per
//! key and wall-clock minute, the key's requests in flight (a sorted set of slot ids scored by
//! when their lease ends, so a replica that dies mid-request frees its slots when the lease
//! ends), and each budget period's spend and open reservations. Every check-and-count is one Lua
//! script, so replicas cannot both take the last request of a minute or the last dollar of a
//! budget.
//!
//! Dollars travel as strings: Lua numbers returned to Redis become integers.

use super::link::Link;
use crate::state::limits::Limits;
use std::sync::{Arc, LazyLock};

const MINUTE_MS: i64 = 60_000;
/// How long a slot may be held; a longer request's slot is freed early, never kept forever.
pub const LEASE_MS: i64 = 15 * MINUTE_MS;
const DAY_MS: i64 = 86_400_000;

const ENTER: &str = r#"
local rpm, tpm, par = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, slot, now, lease = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local m = redis.call('HMGET', KEYS[1], 'r', 't')
local r, t = tonumber(m[1]) or 0, tonumber(m[2]) or 0
if rpm >= 0 and r >= rpm then return {1, r, t} end
if tpm >= 0 and t >= tpm then return {2, r, t} end
if par >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= par then return {3, r, t} end
  redis.call('ZADD', KEYS[2], now + lease, slot)
  redis.call('PEXPIRE', KEYS[2], lease)
end
r = redis.call('HINCRBY', KEYS[1], 'r', 1)
t = redis.call('HINCRBY', KEYS[1], 't', tokens)
redis.call('PEXPIRE', KEYS[1], 120000)
return {0, r, t}
"#;

const RESERVE: &str = r#"
local budget, amount, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local spent, res = tonumber(s[1]) or 0, tonumber(s[2]) or 0
if amount > 0 and spent + res >= budget then
  return {0, tostring(spent), tostring(res)}
end
if amount > 0 then
  res = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[2]))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, tostring(spent), tostring(res)}
"#;

const SETTLE: &str = r#"
local r = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', '-' .. ARGV[1]))
if r < 1e-12 then redis.call('HSET', KEYS[1], 'reserved', 0) end
local spent = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return spent
"#;

static ENTER_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ENTER));
static RESERVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RESERVE));
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

fn minute_key(link: &Link, key: &str, minute: i64) -> String {
    link.key(&["key", key, "minute", &minute.to_string()])
}

fn slots_key(link: &Link, key: &str) -> String {
    link.key(&["key", key, "slots"])
}

fn budget_key(link: &Link, key: &str, period_start: i64) -> String {
    link.key(&["key", key, "budget", &period_start.to_string()])
}

/// Kept a day past the period's end, for reports that look back.
fn budget_ttl(now: i64, reset: i64) -> i64 {
    (reset - now).max(0) + DAY_MS
}

fn limit(l: Option<u64>) -> i64 {
    l.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// What the enter script decided: `code` 0 admitted, 1 over rpm, 2 over tpm, 3 over parallel.
pub struct Entered {
    pub code: i64,
    pub requests: u64,
    pub tokens: u64,
}

pub async fn enter(
    link: &Link,
    key: &str,
    limits: Limits,
    tokens: u64,
    slot: &str,
    now: i64,
) -> Option<Entered> {
    let mut conn = link.conn();
    let mut inv = ENTER_SCRIPT.key(minute_key(link, key, now.div_euclid(MINUTE_MS)));
    inv.key(slots_key(link, key))
        .arg(limit(limits.rpm))
        .arg(limit(limits.tpm))
        .arg(limit(limits.max_parallel))
        .arg(tokens)
        .arg(slot)
        .arg(now)
        .arg(LEASE_MS);
    let (code, requests, tokens) = link
        .run(inv.invoke_async::<(i64, u64, u64)>(&mut conn))
        .await?;
    Some(Entered {
        code,
        requests,
        tokens,
    })
}

/// Frees a slot and adds the answer's tokens to the minute the request started in.
pub fn leave(link: &Arc<Link>, key: &str, minute: i64, slot: &str, tokens: u64) {
    let mk = minute_key(link, key, minute);
    let mut p = redis::pipe();
    p.atomic().zrem(slots_key(link, key), slot).ignore();
    if tokens > 0 {
        p.hincr(&mk, "t", tokens)
            .ignore()
            .pexpire(&mk, 120_000)
            .ignore();
    }
    let mut conn = link.conn();
    link.spawn(async move { p.query_async::<()>(&mut conn).await });
}

/// (granted, spent, reserved) for a reservation of `amount` dollars.
pub async fn reserve(
    link: &Link,
    key: &str,
    period: (i64, i64),
    budget: f64,
    amount: f64,
) -> Option<(bool, f64, f64)> {
    let mut conn = link.conn();
    let mut inv = RESERVE_SCRIPT.key(budget_key(link, key, period.0));
    inv.arg(budget)
        .arg(amount)
        .arg(budget_ttl(crate::state::now_ms(), period.1));
    let (granted, spent, reserved) = link
        .run(inv.invoke_async::<(i64, String, String)>(&mut conn))
        .await?;
    Some((
        granted == 1,
        spent.parse().unwrap_or(0.0),
        reserved.parse().unwrap_or(0.0),
    ))
}

/// Replaces a reservation with the real cost; returns the period's spend after it.
pub async fn settle(
    link: &Link,
    key: &str,
    period: (i64, i64),
    amount: f64,
    actual: f64,
) -> Option<f64> {
    let mut conn = link.conn();
    let mut inv = SETTLE_SCRIPT.key(budget_key(link, key, period.0));
    inv.arg(amount)
        .arg(actual)
        .arg(budget_ttl(crate::state::now_ms(), period.1));
    let spent = link.run(inv.invoke_async::<String>(&mut conn)).await?;
    spent.parse().ok()
}

/// Starts a period at spend recorded elsewhere, unless another replica (or an earlier run)
/// already did: Redis then holds the truer figure.
pub async fn seed(link: &Link, key: &str, period: (i64, i64), usd: f64) -> Option<()> {
    let k = budget_key(link, key, period.0);
    let mut p = redis::pipe();
    p.atomic()
        .hset_nx(&k, "spent", usd)
        .ignore()
        .pexpire(&k, budget_ttl(crate::state::now_ms(), period.1))
        .ignore();
    let mut conn = link.conn();
    link.run(p.query_async::<()>(&mut conn)).await
}
