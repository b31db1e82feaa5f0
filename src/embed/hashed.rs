//! The default embedder: signed feature hashing of word-boundary-marked character n-grams and word
//! unigrams. No weights to ship or load, so semantic routing works out of the box; paraphrases that
//! share word stems ("summarize" / "summary") land close together, which is what tier utterances
//! need, while it knows nothing of synonyms (that is what the `static`, `openai` and `bert` kinds
//! are for).
//!
//! It runs on the request path for every prompt, so nothing is allocated but the output vector: the
//! text is walked once, each word is built in a reused buffer, and features are counted in a reused
//! open-addressing table (per thread) before sublinear weighting.

use std::cell::RefCell;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Shortest and longest character n-gram. 3–5 catches stems and inflections without the n-grams
/// becoming whole words (which the unigram feature already covers).
const MIN_N: usize = 3;
const MAX_N: usize = 5;

/// Distinct seeds keep a whole word apart from an n-gram with the same letters (the word "the" vs
/// the "the" in "theorem"). Fixed so that a vector computed today matches one computed by another
/// process, build or platform.
const SEED_NGRAM: u64 = 0x5157_4954_4348_5944;
const SEED_WORD: u64 = 0x7377_7964_2d77_6f72;

/// Function words carry little about what a prompt asks for, yet they make up half of short
/// utterances: at full weight "summarize this article" and "prove this theorem" would look alike.
/// Not zero, so a prompt made only of function words still gets a vector.
const STOP_WEIGHT: f32 = 0.15;

/// Counting table size (a power of two). It is reused per thread and emptied slot by slot, so its
/// size costs memory once, not time per call.
const TABLE_BITS: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Past half full, probing slows down; later distinct features are added with plain (linear)
/// weight straight into the vector instead, so huge prompts cost linear time and fixed memory.
const MAX_DISTINCT: usize = TABLE_SIZE / 2;

/// Lowercased English function words, apostrophes dropped as in the text ("dont"). Kept sorted so a
/// test can catch duplicates; the look-up itself goes by hash.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "dont",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

#[derive(Debug, Clone)]
pub struct HashedNgrams {
    dims: usize,
}

impl HashedNgrams {
    pub const DEFAULT_DIMS: usize = 512;

    pub fn new(dims: usize) -> Self {
        HashedNgrams { dims: dims.max(1) }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// An L2-normalised vector; all zeros when the text has no letters or digits.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut out = vec![0.0; self.dims];
        SCRATCH.with_borrow_mut(|s| s.embed_into(text, &mut out));
        super::normalize(&mut out);
        out
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Buffers reused across calls on one thread.
struct Scratch {
    /// The current word as `<word>` (normalised, UTF-8).
    word: Vec<u8>,
    /// Byte offset in `word` of each character, then its length.
    starts: Vec<usize>,
    /// The word has Han or kana characters: no spaces between words, so it is a whole phrase.
    cjk: bool,
    /// Feature hash per slot; 0 marks an empty slot (a real 0 hash is stored as 1).
    keys: Box<[u64]>,
    /// Summed occurrence weight per slot.
    weights: Box<[f32]>,
    /// Occupied slots, to empty the table and to visit features without scanning it.
    used: Vec<usize>,
    /// Unigram hashes of `STOP_WORDS`, sorted: the word's hash is computed anyway, and comparing
    /// integers is far cheaper than comparing strings.
    stop_hashes: Vec<u64>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            word: Vec::with_capacity(64),
            starts: Vec::with_capacity(64),
            cjk: false,
            keys: vec![0; TABLE_SIZE].into_boxed_slice(),
            weights: vec![0.0; TABLE_SIZE].into_boxed_slice(),
            used: Vec::with_capacity(1024),
            stop_hashes: {
                let mut h: Vec<u64> = STOP_WORDS
                    .iter()
                    .map(|w| unigram_hash(w.as_bytes()))
                    .collect();
                h.sort_unstable();
                h
            },
        }
    }

    fn embed_into(&mut self, text: &str, out: &mut [f32]) {
        self.start_word();
        if text.is_ascii() {
            for b in text.bytes() {
                if b.is_ascii_alphanumeric() {
                    self.push_char_bytes(&[b.to_ascii_lowercase()]);
                } else if b != b'\'' || !self.in_word() {
                    self.end_word(out);
                }
            }
        } else {
            for c in text.chars() {
                self.push_unicode(c, out);
            }
        }
        self.end_word(out);
        self.flush(out);
    }

    /// Compatibility decomposition folds ligatures, full-width forms and accents ("é" → "e" plus a
    /// combining mark, which is dropped), so "Café" and "cafe" share every feature.
    fn push_unicode(&mut self, c: char, out: &mut [f32]) {
        if c.is_ascii() {
            let b = c as u8;
            if b.is_ascii_alphanumeric() {
                self.push_char_bytes(&[b.to_ascii_lowercase()]);
            } else if b != b'\'' || !self.in_word() {
                self.end_word(out);
            }
            return;
        }
        if c == '\u{2019}' && self.in_word() {
            // Typographic apostrophe inside a word: "don’t" reads as "dont", like "don't".
            return;
        }
        self.cjk |= is_cjk(c);
        decompose_compatible(c, |d| {
            if is_combining_mark(d) {
                return;
            }
            if d.is_alphanumeric() {
                // Lowercasing can add a combining mark too ("İ" → "i" + U+0307).
                for l in d.to_lowercase().filter(|l| !is_combining_mark(*l)) {
                    let mut buf = [0u8; 4];
                    self.push_char_bytes(l.encode_utf8(&mut buf).as_bytes());
                }
            } else {
                self.end_word(out);
            }
        });
    }

    fn in_word(&self) -> bool {
        self.word.len() > 1
    }

    fn start_word(&mut self) {
        self.word.clear();
        self.starts.clear();
        self.cjk = false;
        self.starts.push(0);
        self.word.push(b'<');
    }

    fn push_char_bytes(&mut self, bytes: &[u8]) {
        self.starts.push(self.word.len());
        self.word.extend_from_slice(bytes);
    }

    /// Emits the features of the word built so far (if any) and starts the next one.
    fn end_word(&mut self, out: &mut [f32]) {
        if !self.in_word() {
            return;
        }
        self.starts.push(self.word.len());
        self.word.push(b'>');
        self.starts.push(self.word.len());

        let unigram = unigram_hash(&self.word[1..self.word.len() - 1]);
        let weight = if self.stop_hashes.binary_search(&unigram).is_ok() {
            STOP_WEIGHT
        } else {
            1.0
        };
        self.add(unigram, weight, out);

        // `starts` holds one offset per character of `<word>` plus the end offset.
        let chars = self.starts.len() - 1;
        for n in MIN_N..=MAX_N.min(chars) {
            for i in 0..=chars - n {
                let h =
                    xxh3_64_with_seed(&self.word[self.starts[i]..self.starts[i + n]], SEED_NGRAM);
                self.add(h, weight, out);
            }
        }
        if self.cjk {
            // Chinese and Japanese words are mostly one or two characters, and a run of them has
            // no spaces: add the bare characters and pairs, which 3–5-grams across a run miss.
            for n in 1..=2 {
                for i in 1..chars.saturating_sub(n) {
                    let h = xxh3_64_with_seed(
                        &self.word[self.starts[i]..self.starts[i + n]],
                        SEED_NGRAM,
                    );
                    self.add(h, weight, out);
                }
            }
        }
        self.start_word();
    }

    fn add(&mut self, hash: u64, weight: f32, out: &mut [f32]) {
        let key = hash.max(1);
        let mask = TABLE_SIZE - 1;
        let mut slot = (key as usize) & mask;
        loop {
            let k = self.keys[slot];
            if k == key {
                self.weights[slot] += weight;
                return;
            }
            if k == 0 {
                break;
            }
            slot = (slot + 1) & mask;
        }
        if self.used.len() >= MAX_DISTINCT {
            let (bucket, sign) = place(key, out.len());
            out[bucket] += sign * weight;
            return;
        }
        self.keys[slot] = key;
        self.weights[slot] = weight;
        self.used.push(slot);
    }

    /// Adds every counted feature with sublinear weight, and empties the table for the next call.
    fn flush(&mut self, out: &mut [f32]) {
        for &slot in &self.used {
            let key = self.keys[slot];
            let (bucket, sign) = place(key, out.len());
            out[bucket] += sign * sublinear(self.weights[slot]);
            self.keys[slot] = 0;
            self.weights[slot] = 0.0;
        }
        self.used.clear();
    }
}

/// Bucket from the high half of the hash (the table slot uses the low bits, so the two are
/// independent), sign from bit 31: colliding features cancel out on average instead of piling up.
fn place(key: u64, dims: usize) -> (usize, f32) {
    let bucket = (((key >> 32) * dims as u64) >> 32) as usize;
    let sign = if key & (1 << 31) == 0 { 1.0 } else { -1.0 };
    (bucket, sign)
}

/// 1 + ln(tf): a word repeated ten times should not drown out the rest of the prompt.
fn sublinear(w: f32) -> f32 {
    if w <= 1.0 { w } else { 1.0 + w.ln() }
}

/// Han ideographs, kana and CJK compatibility ideographs.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

fn unigram_hash(word: &[u8]) -> u64 {
    xxh3_64_with_seed(word, SEED_WORD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    fn sim(e: &HashedNgrams, a: &str, b: &str) -> f32 {
        cosine(&e.embed(a), &e.embed(b))
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        let s = Scratch::new();
        let is_stop = |w: &str| {
            s.stop_hashes
                .binary_search(&unigram_hash(w.as_bytes()))
                .is_ok()
        };
        assert!(is_stop("the") && is_stop("yourselves") && is_stop("a"));
        assert!(!is_stop("theorem") && !is_stop("summary"));
    }

    #[test]
    fn vectors_are_unit_length_with_the_configured_size() {
        for dims in [1, 7, 64, 512, 1000] {
            let e = HashedNgrams::new(dims);
            let v = e.embed("Summarize this article for me, please.");
            assert_eq!(v.len(), dims);
            assert!((norm(&v) - 1.0).abs() < 1e-5, "dims {dims}");
        }
        assert_eq!(HashedNgrams::new(0).dims(), 1);
    }

    #[test]
    fn text_without_words_is_the_zero_vector() {
        let e = HashedNgrams::new(64);
        for t in ["", "   ", "?!... --- ''", "\u{301}\u{301}"] {
            assert!(e.embed(t).iter().all(|&x| x == 0.0), "{t:?}");
        }
    }

    #[test]
    fn paraphrases_score_clearly_higher_than_unrelated_prompts() {
        let e = HashedNgrams::new(HashedNgrams::DEFAULT_DIMS);
        let cases = [
            (
                "summarize this article",
                "give me a summary of the text",
                "prove this theorem",
            ),
            (
                "translate this paragraph into French",
                "can you translate the following text to french",
                "write a poem about the sea",
            ),
            (
                "write a python function that sorts a list",
                "python code to sort a list",
                "what is the capital of France",
            ),
            (
                "fix the bug in my code",
                "debug this code, it has a bug",
                "plan a trip to Japan",
            ),
        ];
        for (a, para, other) in cases {
            let p = sim(&e, a, para);
            let u = sim(&e, a, other);
            assert!(p > 0.15, "{a:?} ~ {para:?}: {p}");
            assert!(p > u + 0.1, "{a:?}: paraphrase {p} vs unrelated {u}");
        }
    }

    #[test]
    fn case_accents_and_compatibility_forms_do_not_matter() {
        let e = HashedNgrams::new(256);
        let same = |a: &str, b: &str| {
            let s = sim(&e, a, b);
            assert!((s - 1.0).abs() < 1e-5, "{a:?} vs {b:?}: {s}");
        };
        same("Café Crème", "cafe creme");
        same("ＦＵＬＬ width", "full WIDTH");
        same("ﬁne", "fine");
        same("don't stop", "dont stop");
        same("don’t stop", "don't stop");
        same("hello,world", "hello world");
        same("ÉCOLE", "école");
        same("İstanbul", "istanbul");
    }

    #[test]
    fn non_latin_scripts_get_features() {
        let e = HashedNgrams::new(256);
        let a = e.embed("Привет, как дела?");
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        assert!(sim(&e, "Привет, как дела?", "привет как дела") > 0.99);
        // No spaces in Chinese: the whole run is one "word", and only shared n-grams count.
        let q = "机器学习是什么";
        assert!(sim(&e, q, "什么是机器学习") > sim(&e, q, "今天天气很好") + 0.1);
    }

    #[test]
    fn repetition_is_damped() {
        let e = HashedNgrams::new(512);
        let repeated = format!("{} eggs", "spam ".repeat(50));
        // With linear counts "spam" would own the vector and "eggs" would vanish.
        assert!(sim(&e, &repeated, "eggs") > 0.2);
    }

    #[test]
    fn the_same_text_always_gives_the_same_vector() {
        let e = HashedNgrams::new(512);
        let a = e.embed("route me to the cheap tier");
        // Thread-local buffers must not leak state between calls or threads.
        let _ = e.embed("something else entirely, with many words to fill the table");
        assert_eq!(a, e.embed("route me to the cheap tier"));
        let b =
            std::thread::spawn(move || HashedNgrams::new(512).embed("route me to the cheap tier"))
                .join()
                .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn hashing_is_pinned_across_builds_and_platforms() {
        // xxh3 is a specified algorithm (this value agrees with the reference C implementation); if
        // these change, vectors from two builds would no longer compare, so a change must be
        // deliberate.
        assert_eq!(
            xxh3_64_with_seed(b"<su", SEED_NGRAM),
            1_250_847_330_360_801_431
        );
        let v = HashedNgrams::new(16).embed("hello");
        let signs: Vec<i8> = v
            .iter()
            .map(|&x| x.signum() as i8 * (x != 0.0) as i8)
            .collect();
        assert_eq!(
            signs,
            [0, 1, -1, 0, -1, 1, -1, 0, -1, 1, -1, -1, 0, 1, 1, 0]
        );
    }

    #[test]
    fn huge_prompts_stay_bounded_and_normalised() {
        let e = HashedNgrams::new(512);
        let text: String = (0..40_000).map(|i| format!("w{i} ")).collect();
        let v = e.embed(&text);
        assert!((norm(&v) - 1.0).abs() < 1e-4);
        // And the table is empty again afterwards.
        assert_eq!(e.embed("hello"), e.embed("hello"));
        SCRATCH.with_borrow(|s| {
            assert!(s.used.is_empty());
            assert!(s.keys.iter().all(|&k| k == 0));
        });
    }

    #[test]
    fn long_single_word_is_fine() {
        let e = HashedNgrams::new(64);
        let v = e.embed(&"x".repeat(10_000));
        assert!((norm(&v) - 1.0).abs() < 1e-5);
        let v = e.embed("a");
        assert!((norm(&v) - 1.0).abs() < 1e-5);
    }
}
