//! Sliding windows in Redis: a hash of per-bucket counts (`c:<bucket>` events, `h:<bucket>`
//! hits) summed over the last [`BUCKETS`] buckets, old buckets deleted as they are passed. The
//! same buckets as the in-memory [`SlidingRate`](crate::state::window::SlidingRate), so a failure
//! window or a cascade's escalation window means the same thing on one replica or many.
//!
//! The Lua helpers here are prepended to the scripts that use them.

use super::link::Link;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub const BUCKETS: u64 = 30;

/// `win_record(key, now_ms, bucket_ms, hit, ttl_ms)` and `win_counts(key, now_ms, bucket_ms)`.
pub const LUA: &str = r#"
local function win_record(w, now, bucket, hit, ttl)
  local b = math.floor(now / bucket)
  redis.call('HINCRBY', w, 'c:' .. b, 1)
  if hit then redis.call('HINCRBY', w, 'h:' .. b, 1) end
  redis.call('PEXPIRE', w, ttl)
end
local function win_counts(w, now, bucket)
  local b = math.floor(now / bucket)
  local all = redis.call('HGETALL', w)
  local events, hits, stale = 0, 0, {}
  for i = 1, #all, 2 do
    local f = all[i]
    local nb = tonumber(string.sub(f, 3))
    if nb and nb <= b and b - nb < 30 then
      if string.sub(f, 1, 1) == 'c' then events = events + tonumber(all[i + 1])
      else hits = hits + tonumber(all[i + 1]) end
    elseif nb and nb < b then
      stale[#stale + 1] = f
    end
  end
  if #stale > 0 then redis.call('HDEL', w, unpack(stale)) end
  return events, hits
end
"#;

static RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{LUA}win_record(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4]))\nreturn 1"
    ))
});

static COUNTS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{LUA}local e, h = win_counts(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\nreturn {{e, h}}"
    ))
});

/// The bucket length for a window, as the in-memory window computes it.
pub fn bucket_ms(window: Duration) -> u64 {
    let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    (ms / BUCKETS).max(1)
}

/// Long enough that no bucket still inside the window expires.
pub fn ttl_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis())
        .unwrap_or(u64::MAX / 4)
        .saturating_mul(2)
        .max(1000)
}

/// The key of a named window; the bucket length is part of it, so a window whose length changed
/// starts over instead of mixing bucket sizes.
pub fn key(link: &Link, name: &str, window: Duration) -> String {
    link.key(&["win", name, &bucket_ms(window).to_string()])
}

pub fn record(link: &Arc<Link>, name: &str, window: Duration, hit: bool) {
    let mut conn = link.conn();
    let mut inv = RECORD.key(key(link, name, window));
    inv.arg(crate::state::now_ms())
        .arg(bucket_ms(window))
        .arg(if hit { "1" } else { "0" })
        .arg(ttl_ms(window));
    link.spawn(async move { inv.invoke_async::<()>(&mut conn).await });
}

/// (events, hits) within the window ending now; `None` when Redis did not answer.
pub async fn counts(link: &Link, name: &str, window: Duration) -> Option<(u64, u64)> {
    let mut conn = link.conn();
    let mut inv = COUNTS.key(key(link, name, window));
    inv.arg(crate::state::now_ms()).arg(bucket_ms(window));
    link.run(inv.invoke_async::<(u64, u64)>(&mut conn)).await
}
