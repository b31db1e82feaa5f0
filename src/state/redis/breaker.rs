//! Circuit breakers in Redis: the same rules as [`crate::state::breaker`], run as Lua scripts so
//! that every replica sees one breaker per deployment and a check-and-claim (the single probe
//! after a cooldown) is atomic. A breaker is a hash (`phase`, `until`, `since`, `class`, `last`,
//! `cooldowns`) beside its failure window (see `window.rs`); both expire once idle.
//!
//! Times are the replicas' wall clocks in milliseconds, which must agree to well under a
//! cooldown.

use super::link::Link;
use super::window;
use crate::config::CoolingMode;
use crate::providers::ErrorClass;
use crate::state::breaker::{Admission, CallResult, Cooled, Settings, Status};
use crate::state::health::{Health, MinuteUsage};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

const ADMIT: &str = r#"
local now, pt, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'phase', 'until', 'since', 'class')
local phase = tonumber(s[1]) or 0
local class = s[4] or ''
if phase == 0 then return {0, 0, ''} end
if phase == 1 then
  local u = tonumber(s[2]) or 0
  if now < u then return {2, u - now, class} end
else
  local since = tonumber(s[3]) or 0
  if now - since < pt then return {3, pt - (now - since), class} end
end
redis.call('HSET', KEYS[1], 'phase', 2, 'since', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, 0, class}
"#;

const REPORT: &str = r#"
local now, kind, probe = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local ra, class, dur, maxd = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local bucket, allowed, ratio, minreq = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local ttl, wttl = tonumber(ARGV[12]), tonumber(ARGV[13])
local B, W = KEYS[1], KEYS[2]
local phase = tonumber(redis.call('HGET', B, 'phase')) or 0
local function close()
  redis.call('HSET', B, 'phase', 0)
  redis.call('PEXPIRE', B, ttl)
  redis.call('DEL', W)
end
local function open(d)
  redis.call('HSET', B, 'phase', 1, 'until', now + d, 'class', class, 'last', d)
  redis.call('HINCRBY', B, 'cooldowns', 1)
  redis.call('PEXPIRE', B, ttl)
  return d
end
if kind == 0 or kind == 3 then
  win_record(W, now, bucket, false, wttl)
  if probe or (kind == 0 and phase == 2) then close() end
  return -1
end
if phase == 1 then return -1 end
if phase == 2 then
  if not probe then return -1 end
  return open(dur)
end
if ra > 0 then return open(math.min(ra, maxd)) end
if kind == 2 then return open(dur) end
win_record(W, now, bucket, true, wttl)
local calls, fails = win_counts(W, now, bucket)
if fails > allowed or (ratio >= 0 and calls >= math.max(minreq, 1) and fails / calls >= ratio) then
  return open(dur)
end
return -1
"#;

const HEALTH: &str = r#"
local s = redis.call('HMGET', KEYS[1], 'phase', 'until', 'since', 'class', 'last', 'cooldowns')
local e, h = win_counts(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
return {tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, s[4] or '', tonumber(s[5]) or -1, tonumber(s[6]) or 0, e, h}
"#;

static ADMIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADMIT));
static REPORT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{}{REPORT}", window::LUA)));
static HEALTH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{}{HEALTH}", window::LUA)));

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn dur(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The in-memory breaker's probe timeout: a probe that never reports must not keep the
/// deployment out forever.
fn probe_timeout(s: &Settings) -> Duration {
    s.duration.max(Duration::from_secs(1))
}

/// Long enough to outlive any cooldown and the failure window.
fn ttl(s: &Settings) -> i64 {
    ms(s.max_duration.max(s.duration).max(s.window)) * 2 + 60_000
}

fn class(label: &str) -> Option<ErrorClass> {
    ErrorClass::parse(label)
}

fn keys(link: &Link, deployment: &str, s: &Settings) -> (String, String) {
    (
        link.key(&["breaker", deployment]),
        window::key(link, &format!("fails:{deployment}"), s.window),
    )
}

pub async fn admit(link: &Link, deployment: &str, s: &Settings) -> Option<Admission> {
    let mut conn = link.conn();
    let mut inv = ADMIT_SCRIPT.key(link.key(&["breaker", deployment]));
    inv.arg(crate::state::now_ms())
        .arg(ms(probe_timeout(s)))
        .arg(ttl(s));
    let (code, wait, label) = link
        .run(inv.invoke_async::<(i64, i64, String)>(&mut conn))
        .await?;
    Some(match code {
        1 => Admission::Probe,
        2 => Admission::No(dur(wait), class(&label)),
        3 => Admission::Probing(dur(wait), class(&label)),
        _ => Admission::Yes,
    })
}

fn report_call(
    link: &Link,
    deployment: &str,
    result: CallResult,
    probe: bool,
    s: &Settings,
) -> redis::ScriptInvocation<'static> {
    let (kind, retry_after, label) = match result {
        CallResult::Success => (0, 0, ""),
        CallResult::Failure {
            class,
            mode,
            retry_after,
        } => (
            match mode {
                CoolingMode::Never => 3,
                CoolingMode::Immediate => 2,
                _ => 1,
            },
            retry_after.map_or(0, ms),
            class.label(),
        ),
    };
    let (b, w) = keys(link, deployment, s);
    let mut inv = REPORT_SCRIPT.key(b);
    inv.key(w)
        .arg(crate::state::now_ms())
        .arg(kind)
        .arg(if probe { "1" } else { "0" })
        .arg(retry_after)
        .arg(label)
        .arg(ms(s.duration))
        .arg(ms(s.max_duration))
        .arg(window::bucket_ms(s.window))
        .arg(s.allowed_fails)
        .arg(s.failure_ratio.unwrap_or(-1.0))
        .arg(s.min_requests)
        .arg(ttl(s))
        .arg(window::ttl_ms(s.window));
    inv
}

/// Whether a report can only record (never start a cooldown), so nobody need wait for it.
pub fn only_records(result: &CallResult) -> bool {
    matches!(
        result,
        CallResult::Success
            | CallResult::Failure {
                mode: CoolingMode::Never,
                ..
            }
    )
}

/// Records a result in the background; for [`only_records`] results.
pub fn record(link: &Arc<Link>, deployment: &str, result: CallResult, probe: bool, s: &Settings) {
    let inv = report_call(link, deployment, result, probe, s);
    let mut conn = link.conn();
    link.spawn(async move { inv.invoke_async::<()>(&mut conn).await });
}

/// `Some(cooled)` when Redis answered; `cooled` is the cooldown this report started.
pub async fn report(
    link: &Link,
    deployment: &str,
    result: CallResult,
    probe: bool,
    s: &Settings,
) -> Option<Option<Cooled>> {
    let inv = report_call(link, deployment, result, probe, s);
    let mut conn = link.conn();
    let d = link.run(inv.invoke_async::<i64>(&mut conn)).await?;
    Some(match result {
        CallResult::Failure { class, .. } if d >= 0 => Some(Cooled {
            class,
            duration: dur(d),
        }),
        _ => None,
    })
}

/// The breaker's part of a deployment's health, as Redis holds it; the minute's usage is read
/// apart and filled in by the caller.
pub async fn health(link: &Link, deployment: &str, s: &Settings) -> Option<Health> {
    let (b, w) = keys(link, deployment, s);
    let now = crate::state::now_ms();
    let mut conn = link.conn();
    let mut inv = HEALTH_SCRIPT.key(b);
    inv.key(w).arg(now).arg(window::bucket_ms(s.window));
    type Row = (i64, i64, i64, String, i64, u64, u64, u64);
    let (phase, until, since, label, last, cooldowns, calls, failures) =
        link.run(inv.invoke_async::<Row>(&mut conn)).await?;
    let pt = ms(probe_timeout(s));
    let status = match phase {
        1 if now < until => Status::Cooling {
            remaining: dur(until - now),
        },
        1 => Status::ProbeReady,
        2 if now - since < pt => Status::Probing,
        2 => Status::ProbeReady,
        _ => Status::Healthy,
    };
    Some(Health {
        status,
        calls,
        failures,
        cooldowns,
        last_class: class(&label),
        last_cooldown: (last >= 0).then(|| dur(last)),
        usage: MinuteUsage::default(),
    })
}
