//! A key's rate limits, as both ledger backends (in memory and in Redis) enforce them.
//!
//! Must not import anything: the ledger and its Redis backend both read it.

/// A key's rate limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
}
