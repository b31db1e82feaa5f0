//! A specialised tokenizer for the one pipeline model2vec models ship: BERT normalisation (clean
//! text, space out CJK ideographs, strip accents, lowercase), BERT pre-tokenisation (split on
//! whitespace, isolate punctuation) and greedy WordPiece.
//!
//! Why it exists: the general `tokenizers` pipeline tracks character alignments and allocates per
//! step, which put a static-model embedding at over 100 µs for a 200-token prompt, against a 50 µs
//! budget for the whole semantic layer. This path produces the same token ids (checked against
//! `tokenizers` in the tests, on the real BERT vocabulary in CI) with none of that bookkeeping, and
//! is only used when `tokenizer.json` describes exactly this pipeline.

use ahash::AHashMap;
use aho_corasick::AhoCorasick;
use serde_json::Value;
use std::borrow::Cow;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

pub struct FastWordPiece {
    /// Every vocabulary entry, for the first piece of a word. Keys come from the model file, not
    /// from requests, so a fast non-keyed hash is safe here.
    words: AHashMap<Box<str>, u32>,
    /// The entries that start with the continuation prefix, keyed without it: a later piece is
    /// looked up as it stands in the word, with no prefixed copy built per attempt.
    continuations: AHashMap<Box<str>, u32>,
    /// The longest key of each map, in bytes: longer candidates cannot match and are not hashed.
    longest_word: usize,
    longest_continuation: usize,
    unk: u32,
    max_word_chars: usize,
    clean_text: bool,
    chinese: bool,
    strip_accents: bool,
    lowercase: bool,
    /// Added tokens (`[CLS]`, `[MASK]`…) are matched in the raw text before normalisation; a text
    /// containing one goes to the general tokenizer instead. One automaton finds any of them in a
    /// single scan (`None`: the tokenizer has none).
    added: Option<AhoCorasick>,
    #[cfg(test)]
    added_tokens: Vec<String>,
}

impl FastWordPiece {
    /// `Some` only when the tokenizer is exactly BERT normaliser + BERT pre-tokenizer + WordPiece.
    pub fn from_tokenizer_json(t: &Value) -> Option<FastWordPiece> {
        let norm = t.get("normalizer")?;
        if norm.get("type")?.as_str()? != "BertNormalizer" {
            return None;
        }
        if t.get("pre_tokenizer")?.get("type")?.as_str()? != "BertPreTokenizer" {
            return None;
        }
        let model = t.get("model")?;
        if model.get("type")?.as_str()? != "WordPiece" {
            return None;
        }
        let flag = |k: &str, default: bool| norm.get(k).and_then(Value::as_bool).unwrap_or(default);
        let lowercase = flag("lowercase", true);
        let strip_accents = match norm.get("strip_accents") {
            Some(Value::Bool(b)) => *b,
            _ => lowercase,
        };
        let prefix = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
            .unwrap_or("##");
        let vocab = model.get("vocab")?.as_object()?;
        let mut words = AHashMap::with_capacity(vocab.len());
        let mut continuations = AHashMap::new();
        for (k, v) in vocab {
            let id = u32::try_from(v.as_u64()?).ok()?;
            if let Some(rest) = k.strip_prefix(prefix) {
                continuations.insert(Box::from(rest), id);
            }
            words.insert(Box::from(k.as_str()), id);
        }
        let longest = |m: &AHashMap<Box<str>, u32>| m.keys().map(|k| k.len()).max().unwrap_or(0);
        let unk = *words.get(model.get("unk_token")?.as_str()?)?;
        let mut added = Vec::new();
        for a in t
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // A normalised added token would be matched after normalisation: not this path's job.
            if a.get("normalized")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                return None;
            }
            let content = a.get("content")?.as_str()?;
            if !content.is_empty() {
                added.push(content.to_string());
            }
        }
        Some(FastWordPiece {
            longest_word: longest(&words),
            longest_continuation: longest(&continuations),
            words,
            continuations,
            unk,
            max_word_chars: model
                .get("max_input_chars_per_word")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(100),
            clean_text: flag("clean_text", true),
            chinese: flag("handle_chinese_chars", true),
            strip_accents,
            lowercase,
            added: if added.is_empty() {
                None
            } else {
                Some(AhoCorasick::new(&added).ok()?)
            },
            #[cfg(test)]
            added_tokens: added,
        })
    }

    /// The unknown token's id.
    pub fn unk(&self) -> u32 {
        self.unk
    }

    /// Entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.words.len()
    }

    /// Median vocabulary entry length in characters (the `##` continuation marker excluded), at
    /// least 1: model2vec's own estimate of characters per token.
    pub fn median_token_chars(&self) -> usize {
        let mut lens: Vec<usize> = self
            .words
            .keys()
            .map(|t| t.trim_start_matches("##").chars().count())
            .collect();
        lens.sort_unstable();
        lens.get(lens.len() / 2).copied().unwrap_or(1).max(1)
    }

    /// Appends the ids of `text` to `out`, or returns `false` (nothing appended) when the text holds
    /// an added token and must go through the general tokenizer.
    pub fn ids(&self, text: &str, out: &mut Vec<u32>) -> bool {
        self.for_each_id(text, |id| out.push(id))
    }

    /// Calls `emit` with each token id of `text` in order, or returns `false` (nothing emitted)
    /// when the text holds an added token and must go through the general tokenizer. Callers that
    /// only fold the ids (the embedder sums matrix rows) need no id list at all.
    pub fn for_each_id(&self, text: &str, mut emit: impl FnMut(u32)) -> bool {
        if self.added.as_ref().is_some_and(|a| a.is_match(text)) {
            return false;
        }
        let normalized = self.normalize(text);
        // Ids of the word being split: WordPiece turns a whole word into one unknown when any
        // part of it has no match, so a word's ids are only emitted once it is done.
        let mut pending = Vec::new();
        let mut word_start = 0;
        for (i, c) in normalized.char_indices() {
            // ASCII is decided by byte tests; only other characters need the Unicode tables (a
            // binary search per category, which made punctuation the bulk of tokenising).
            let (space, punct) = if c.is_ascii() {
                (
                    c.is_ascii_whitespace() || c == '\u{b}',
                    c.is_ascii_punctuation(),
                )
            } else {
                let space = c.is_whitespace();
                (space, !space && c.is_punctuation())
            };
            if space || punct {
                self.word(&normalized[word_start..i], &mut pending, &mut emit);
                let next = i + c.len_utf8();
                if punct {
                    self.word(&normalized[i..next], &mut pending, &mut emit);
                }
                word_start = next;
            }
        }
        self.word(&normalized[word_start..], &mut pending, &mut emit);
        true
    }

    fn normalize<'t>(&self, text: &'t str) -> Cow<'t, str> {
        // Most prompts are ASCII: no ideographs, no accents to strip, and control characters and
        // lowercase are byte tests, so the Unicode tables can be skipped entirely. Tabs and line
        // breaks need no mapping to spaces: the splitter treats them as spaces already. A text
        // with nothing to lowercase or remove is used as it is.
        if text.is_ascii() {
            let removed = |b: u8| {
                self.clean_text
                    && matches!(b, 0..=0x1f | 0x7f)
                    && !matches!(b, b'\t' | b'\n' | b'\r')
            };
            if !text
                .bytes()
                .any(|b| removed(b) || (self.lowercase && b.is_ascii_uppercase()))
            {
                return Cow::Borrowed(text);
            }
            let mut s = String::with_capacity(text.len());
            for b in text.bytes() {
                if removed(b) {
                    continue;
                }
                s.push(char::from(if self.lowercase {
                    b.to_ascii_lowercase()
                } else {
                    b
                }));
            }
            return Cow::Owned(s);
        }
        let mut s = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if self.clean_text {
                if c == '\0'
                    || c == '\u{fffd}'
                    || (!matches!(c, '\t' | '\n' | '\r') && c.is_other())
                {
                    continue;
                }
                if matches!(c, '\t' | '\n' | '\r') || c.is_whitespace() {
                    s.push(' ');
                    continue;
                }
            }
            if self.chinese && is_cjk(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        if self.strip_accents {
            s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if self.lowercase {
            if s.is_ascii() {
                s.make_ascii_lowercase();
            } else {
                s = s.chars().flat_map(char::to_lowercase).collect();
            }
        }
        Cow::Owned(s)
    }

    /// Greedy longest-match-first over one word; a word with any unmatchable rest is one unknown.
    fn word(&self, w: &str, pending: &mut Vec<u32>, emit: &mut impl FnMut(u32)) {
        if w.is_empty() {
            return;
        }
        // Bytes bound characters from above: the count is only taken when it could be over.
        if w.len() > self.max_word_chars && w.chars().count() > self.max_word_chars {
            emit(self.unk);
            return;
        }
        pending.clear();
        let mut start = 0;
        while start < w.len() {
            let (map, longest) = if start == 0 {
                (&self.words, self.longest_word)
            } else {
                (&self.continuations, self.longest_continuation)
            };
            // Candidates longer than the longest entry cannot match: start below that length.
            let mut end = w.len().min(start + longest);
            while !w.is_char_boundary(end) {
                end -= 1;
            }
            let mut found = None;
            while start < end {
                let piece = &w[start..end];
                if let Some(&id) = map.get(piece) {
                    found = Some(id);
                    break;
                }
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => {
                    pending.push(id);
                    start = end;
                }
                None => {
                    emit(self.unk);
                    return;
                }
            }
        }
        pending.iter().for_each(|&id| emit(id));
    }
}

/// The CJK ideograph blocks BERT spaces out (as the original BERT tokenizer defines them).
fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Texts that exercise every normalisation and splitting rule, ASCII and not, and the fallback.
#[cfg(test)]
pub(crate) const CORPUS: &[&str] = &[
    "Summarize this article in three bullet points, please.",
    "PROVE that √2 is irrational — rigorously!!",
    "Café déjà vu: naïve coöperation, Ångström, façade.",
    "我喜欢机器学习 and 日本語のテキスト mixed in",
    "tabs\tand\nnewlines\r\nand  double  spaces\u{a0}nbsp",
    "emoji 🚀🔥 and zero\u{200b}width and control\u{0007}bell",
    "http://example.com/path?q=1&r=2 user@example.org #hashtag @mention",
    "fn main() { println!(\"{}\", x[0] + y.len()); } // code",
    "supercalifragilisticexpialidocious-antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Привет, мир! مرحبا بالعالم שלום עולם",
    "Ｆｕｌｌ－ｗｉｄｔｈ ｌｅｔｔｅｒｓ and ﬁ ligature",
    "numbers 3.14159, 1,000,000 and 42nd; dates 2024-03-01",
    "",
    "   ",
    "e\u{301}te\u{301} combining accents",
    "ALL CAPS ASCII, NO LOWER CASE AT ALL; [cls] and [Sep] are not added tokens",
    "already lower case ascii with no capitals, so nothing is copied: ok? yes.",
    "Straße, ǅemal, İstanbul, ΣΊΣΥΦΟΣ and ﬀ: lowercasing that changes length",
    "жжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжжж more bytes than chars",
    "pneumonoultramicroscopicsilicovolcanoconiosis unbelievably ##hash ## tags",
    "mixed: naïve résumé with ASCII words, 3×4=12, “curly quotes” and – dashes —",
    "\u{0}nul\u{fffd}replacement\u{85}nel\u{2028}ls\u{feff}bom\u{ad}soft-hyphen",
    "ascii\ttab\nnew\x0bvt\x0cff\x07bel\x1fus\x7fdel UPPER Mixed $5 + 3 = <8> ^_^ ~ok~ `tick` |pipe|",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(json: &str) {
        let v: Value = serde_json::from_str(json).unwrap();
        let fast = FastWordPiece::from_tokenizer_json(&v).expect("a BERT WordPiece pipeline");
        let mut reference = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
        reference.with_truncation(None).unwrap();
        reference.with_padding(None);
        let long = CORPUS.concat();
        for text in CORPUS.iter().copied().chain([long.as_str()]) {
            let mut ids = Vec::new();
            assert!(fast.ids(text, &mut ids));
            let want = reference
                .encode_fast(text, false)
                .unwrap()
                .get_ids()
                .to_vec();
            assert_eq!(ids, want, "token ids differ for {text:?}");
        }
        // Text with an added token is left to the general tokenizer.
        if let Some(added) = fast.added_tokens.first().cloned() {
            assert!(!fast.ids(&format!("a {added} b"), &mut Vec::new()));
        }
    }

    #[test]
    fn matches_the_reference_tokenizer_on_the_test_model() {
        compare(&crate::embed::static_testing::tokenizer_json());
    }

    /// The built-in model's tokenizer: the BERT-uncased vocabulary, always at hand.
    #[test]
    fn matches_the_reference_tokenizer_on_the_builtin_vocabulary() {
        compare(std::str::from_utf8(include_bytes!("builtin/tokenizer.json")).unwrap());
    }

    /// The real BERT-uncased vocabulary (30,522 tokens) that model2vec's potion models also use. CI
    /// always provides it; a bare `cargo test` without the model says so and checks the rest.
    #[test]
    fn matches_the_reference_tokenizer_on_a_real_bert_vocabulary() {
        let Ok(dir) = std::env::var("SWITCHYARD_BERT_MODEL") else {
            eprintln!(
                "SWITCHYARD_BERT_MODEL is not set: the real-vocabulary comparison did not run"
            );
            return;
        };
        compare(
            &std::fs::read_to_string(std::path::Path::new(&dir).join("tokenizer.json")).unwrap(),
        );
    }

    #[test]
    fn other_pipelines_are_not_taken() {
        let v: Value = serde_json::from_str(
            r#"{"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}}"#,
        )
        .unwrap();
        assert!(FastWordPiece::from_tokenizer_json(&v).is_none());
    }
}
