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
use serde_json::Value;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

pub struct FastWordPiece {
    /// Keys come from the model file, not from requests, so a fast non-keyed hash is safe here.
    vocab: AHashMap<String, u32>,
    unk: u32,
    prefix: String,
    max_word_chars: usize,
    clean_text: bool,
    chinese: bool,
    strip_accents: bool,
    lowercase: bool,
    /// Added tokens (`[CLS]`, `[MASK]`…) are matched in the raw text before normalisation; a text
    /// containing one goes to the general tokenizer instead.
    added: Vec<String>,
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
        let vocab: AHashMap<String, u32> = model
            .get("vocab")?
            .as_object()?
            .iter()
            .map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
            .collect::<Option<_>>()?;
        let unk = *vocab.get(model.get("unk_token")?.as_str()?)?;
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
            added.push(a.get("content")?.as_str()?.to_string());
        }
        Some(FastWordPiece {
            vocab,
            unk,
            prefix: model
                .get("continuing_subword_prefix")
                .and_then(Value::as_str)
                .unwrap_or("##")
                .to_string(),
            max_word_chars: model
                .get("max_input_chars_per_word")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(100),
            clean_text: flag("clean_text", true),
            chinese: flag("handle_chinese_chars", true),
            strip_accents,
            lowercase,
            added,
        })
    }

    /// Appends the ids of `text` to `out`, or returns `false` (nothing appended) when the text holds
    /// an added token and must go through the general tokenizer.
    pub fn ids(&self, text: &str, out: &mut Vec<u32>) -> bool {
        if self
            .added
            .iter()
            .any(|a| !a.is_empty() && text.contains(a.as_str()))
        {
            return false;
        }
        let normalized = self.normalize(text);
        let mut word = String::new();
        let mut buf = String::new();
        for c in normalized.chars() {
            if c.is_whitespace() {
                self.word(&word, &mut buf, out);
                word.clear();
            } else if c.is_ascii_punctuation() || c.is_punctuation() {
                self.word(&word, &mut buf, out);
                word.clear();
                let mut p = [0u8; 4];
                self.word(c.encode_utf8(&mut p), &mut buf, out);
            } else {
                word.push(c);
            }
        }
        self.word(&word, &mut buf, out);
        true
    }

    fn normalize(&self, text: &str) -> String {
        // Most prompts are ASCII: no ideographs, no accents to strip, and control characters and
        // lowercase are byte tests, so the Unicode tables can be skipped entirely.
        if text.is_ascii() {
            let mut s = String::with_capacity(text.len());
            for b in text.bytes() {
                match b {
                    b'\t' | b'\n' | b'\r' | b' ' if self.clean_text => s.push(' '),
                    0..=0x1f | 0x7f if self.clean_text => {}
                    _ if self.lowercase => s.push(char::from(b.to_ascii_lowercase())),
                    _ => s.push(char::from(b)),
                }
            }
            return s;
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
        s
    }

    /// Greedy longest-match-first over one word; a word with any unmatchable rest is one unknown.
    fn word(&self, w: &str, buf: &mut String, out: &mut Vec<u32>) {
        if w.is_empty() {
            return;
        }
        if w.chars().count() > self.max_word_chars {
            out.push(self.unk);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < w.len() {
            let mut end = w.len();
            let mut found = None;
            while start < end {
                let piece = &w[start..end];
                let id = if start == 0 {
                    self.vocab.get(piece)
                } else {
                    buf.clear();
                    buf.push_str(&self.prefix);
                    buf.push_str(piece);
                    self.vocab.get(buf.as_str())
                };
                if let Some(&id) = id {
                    found = Some(id);
                    break;
                }
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk);
                    return;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that exercise every normalisation and splitting rule, and the fallback.
    const CORPUS: &[&str] = &[
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
        "ascii\ttab\nnew\x0bvt\x0cff\x07bel\x1fus\x7fdel UPPER Mixed $5 + 3 = <8> ^_^ ~ok~ `tick` |pipe|",
    ];

    fn compare(json: &str) {
        let v: Value = serde_json::from_str(json).unwrap();
        let fast = FastWordPiece::from_tokenizer_json(&v).expect("a BERT WordPiece pipeline");
        let mut reference = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
        reference.with_truncation(None).unwrap();
        reference.with_padding(None);
        for text in CORPUS {
            let mut ids = Vec::new();
            assert!(fast.ids(text, &mut ids));
            let want = reference
                .encode_fast(*text, false)
                .unwrap()
                .get_ids()
                .to_vec();
            assert_eq!(ids, want, "token ids differ for {text:?}");
        }
        // Text with an added token is left to the general tokenizer.
        if let Some(added) = fast.added.first().cloned() {
            assert!(!fast.ids(&format!("a {added} b"), &mut Vec::new()));
        }
    }

    #[test]
    fn matches_the_reference_tokenizer_on_the_test_model() {
        compare(&crate::embed::static_testing::tokenizer_json());
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
