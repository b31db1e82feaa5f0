//! Byte-pair merging, counting only: start from single bytes and repeatedly merge the adjacent
//! pair whose union has the lowest rank (the leftmost on a tie), as the o200k tokenizer does,
//! until no adjacent pair is a token. Routing and cost estimates need how many tokens a prompt
//! has, never which, so no token ids are produced.

use super::vocab::Vocab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pieces up to this many bytes are merged by rescanning a short array, which is fastest for the
/// words and numbers that make up nearly all text; longer ones (base64 blobs, long runs of
/// symbols) use a heap, so a hostile prompt costs O(n log n) rather than O(n²).
const SHORT: usize = 64;

pub fn count(vocab: &Vocab, piece: &[u8]) -> usize {
    match piece.len() {
        0 => 0,
        1 => 1,
        _ if vocab.rank(piece).is_some() => 1,
        n if n <= SHORT => count_short(vocab, piece),
        _ => count_long(vocab, piece),
    }
}

fn pair_rank(vocab: &Vocab, piece: &[u8], from: usize, to: usize) -> u32 {
    piece
        .get(from..to)
        .and_then(|p| vocab.rank(p))
        .unwrap_or(u32::MAX)
}

/// `starts[i]` is where the i-th current token begins; `ranks[i]` is the rank of the i-th token
/// merged with the next one.
fn count_short(vocab: &Vocab, piece: &[u8]) -> usize {
    let n = piece.len();
    let mut starts: Vec<usize> = (0..=n).collect();
    let mut ranks: Vec<u32> = (0..n - 1)
        .map(|i| pair_rank(vocab, piece, i, i + 2))
        .collect();
    while let Some((i, _)) = ranks
        .iter()
        .enumerate()
        .filter(|(_, r)| **r != u32::MAX)
        .min_by_key(|(i, r)| (**r, *i))
    {
        starts.remove(i + 1);
        ranks.remove(i);
        if i < ranks.len() {
            ranks[i] = pair_rank(vocab, piece, starts[i], starts[i + 2]);
        }
        if i > 0 {
            ranks[i - 1] = pair_rank(vocab, piece, starts[i - 1], starts[i + 1]);
        }
    }
    starts.len() - 1
}

/// The same merge order as `count_short` over a linked list of token starts, with candidate
/// pairs in a min-heap keyed by (rank, position); entries made stale by an earlier merge are
/// recognised by their boundaries and skipped.
fn count_long(vocab: &Vocab, piece: &[u8]) -> usize {
    let n = piece.len();
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut alive = vec![true; n];
    let mut heap = BinaryHeap::with_capacity(n);
    let push = |heap: &mut BinaryHeap<_>, s: usize, m: usize, e: usize| {
        let r = pair_rank(vocab, piece, s, e);
        if r != u32::MAX {
            heap.push(Reverse((r, s, m, e)));
        }
    };
    for s in 0..n - 1 {
        push(&mut heap, s, s + 1, s + 2);
    }
    let mut tokens = n;
    while let Some(Reverse((_, s, m, e))) = heap.pop() {
        let end_of = |i: usize, next: &[usize]| if i < n { next[i] } else { n };
        if !alive[s] || next[s] != m || m >= n || !alive[m] || next[m] != e {
            continue;
        }
        // Merge the token at `m` into the one at `s`.
        alive[m] = false;
        next[s] = e;
        if e < n {
            prev[e] = s;
        }
        tokens -= 1;
        if e < n {
            push(&mut heap, s, e, end_of(e, &next));
        }
        let p = prev[s];
        if p < n {
            push(&mut heap, p, s, e);
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_merges_agree() {
        let v = Vocab::o200k();
        let samples: [&[u8]; 6] = [
            b"antidisestablishmentarianism",
            b"aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ",
            b"))))))))]]]]]]}}}}}",
            "naïve café déjà vu".as_bytes(),
            "日本語のテキストです".as_bytes(),
            b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ];
        for s in samples {
            assert_eq!(count_short(v, s), count_long(v, s), "{:?}", s);
        }
        assert_eq!(count(v, b""), 0);
        assert_eq!(count(v, b"x"), 1);
    }
}
