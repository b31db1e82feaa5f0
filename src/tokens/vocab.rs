//! OpenAI's o200k vocabulary held compactly: the token bytes stay in the binary's read-only data
//! and the look-up table stores only a 4-byte rank per token. A `HashMap<Vec<u8>, u32>` of the same
//! 200,000 tokens costs ~45 MB of heap, which is most of a gateway's memory; this costs ~1.9 MiB.
//!
//! `o200k.bin` is `u32` token count (little-endian), one length byte per token in rank order, then
//! every token's bytes concatenated in rank order. `tests/tokens_o200k.rs` checks it against the
//! reference tokenizer and rewrites it when asked.

use hashbrown::HashTable;
use std::sync::OnceLock;

static FILE: &[u8] = include_bytes!("o200k.bin");

pub struct Vocab {
    bytes: &'static [u8],
    /// Start of each token in `bytes`, by rank, with one extra entry for the end.
    starts: Vec<u32>,
    table: HashTable<u32>,
    hasher: ahash::RandomState,
}

impl Vocab {
    /// The vocabulary compiled into the binary, built on first use and shared after.
    pub fn o200k() -> &'static Vocab {
        static V: OnceLock<Vocab> = OnceLock::new();
        V.get_or_init(|| Vocab::parse(FILE).unwrap_or_else(Vocab::empty))
    }

    /// `None` when the file is not in the format above; only a broken build could produce that,
    /// and an empty vocabulary then counts one token per byte rather than failing requests.
    fn parse(file: &'static [u8]) -> Option<Vocab> {
        let count = u32::from_le_bytes(file.get(..4)?.try_into().ok()?) as usize;
        let lens = file.get(4..4 + count)?;
        let bytes = file.get(4 + count..)?;
        let mut starts = Vec::with_capacity(count + 1);
        let mut at = 0u32;
        for &l in lens {
            starts.push(at);
            at += u32::from(l);
        }
        starts.push(at);
        if at as usize != bytes.len() {
            return None;
        }
        // Fixed seeds: the table is private to the process, and fixed seeds keep runs comparable.
        let hasher = ahash::RandomState::with_seeds(0x5157_1c4d, 0x0200_0000, 0x7a11, 0x9e37);
        let mut table = HashTable::with_capacity(count);
        let mut v = Vocab {
            bytes,
            starts,
            table: HashTable::new(),
            hasher,
        };
        for rank in 0..count as u32 {
            let tok = v.token(rank);
            let h = v.hasher.hash_one(tok);
            table.insert_unique(h, rank, |&r| v.hasher.hash_one(v.token(r)));
        }
        v.table = table;
        Some(v)
    }

    fn empty() -> Vocab {
        Vocab {
            bytes: &[],
            starts: vec![0],
            table: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(0, 0, 0, 0),
        }
    }

    fn token(&self, rank: u32) -> &'static [u8] {
        let r = rank as usize;
        let bytes: &'static [u8] = self.bytes;
        match (self.starts.get(r), self.starts.get(r + 1)) {
            (Some(&a), Some(&b)) => bytes.get(a as usize..b as usize).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The rank of a byte string that is a whole token.
    pub fn rank(&self, piece: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(piece);
        self.table.find(h, |&r| self.token(r) == piece).copied()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Heap bytes the look-up structures hold (the token bytes themselves are in the binary).
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4 + self.table.capacity() * (4 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_finds_its_own_rank() {
        let v = Vocab::o200k();
        assert_eq!(v.len(), 199_998);
        for rank in (0..v.len() as u32).step_by(997) {
            assert_eq!(v.rank(v.token(rank)), Some(rank));
        }
        assert_eq!(v.rank(b"hello"), Some(24912));
        assert_eq!(v.rank(b"\xff\xfe\xfd not a token"), None);
        assert!(v.heap_bytes() < 4 << 20, "{} bytes", v.heap_bytes());
    }
}
