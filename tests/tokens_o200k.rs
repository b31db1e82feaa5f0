//! The compact o200k tokenizer (src/tokens/) against the reference implementation: the shipped
//! vocabulary file holds exactly its tokens, and counts agree on real and adversarial text.
//! `SWITCHYARD_WRITE_O200K=1 cargo test --test tokens_o200k` rewrites the file from the reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::path::Path;
use switchyard::tokens;

fn reference() -> &'static tiktoken_rs::CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

fn reference_count(text: &str) -> u64 {
    reference().encode_ordinary(text).len() as u64
}

#[test]
fn shipped_vocabulary_is_the_reference_one() {
    const COUNT: u32 = 199_998;
    let mut lens = Vec::new();
    let mut bytes = Vec::new();
    for rank in 0..COUNT {
        let tok = reference().decode_bytes(&[rank]).unwrap();
        lens.push(u8::try_from(tok.len()).unwrap());
        bytes.extend_from_slice(&tok);
    }
    assert!(
        reference().decode_bytes(&[COUNT]).is_err(),
        "the reference vocabulary grew"
    );
    let mut want = COUNT.to_le_bytes().to_vec();
    want.extend(lens);
    want.extend(bytes);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tokens/o200k.bin");
    if std::env::var_os("SWITCHYARD_WRITE_O200K").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read(&path).unwrap();
    assert!(
        have == want,
        "src/tokens/o200k.bin differs from the reference vocabulary"
    );
}

/// Every text file the repository ships, read as a user's prompt would be.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![
        root.join("config"),
        root.join("tests/data"),
        root.join("src/api"),
    ];
    out.push(std::fs::read_to_string(root.join("README.md")).unwrap());
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(s) = std::fs::read_to_string(&p) {
                out.push(s);
            }
        }
    }
    out
}

#[test]
fn counts_match_the_reference_on_the_repository_text() {
    let mut pieces = 0;
    for doc in corpus() {
        // Whole files, and line by line so that short prompts are covered as well as long ones.
        assert_eq!(tokens::count(&doc), reference_count(&doc));
        for line in doc.lines().take(2000) {
            assert_eq!(tokens::count(line), reference_count(line), "{line:?}");
            pieces += 1;
        }
    }
    assert!(pieces > 5_000, "corpus too small: {pieces} lines");
}

#[test]
fn counts_match_the_reference_on_awkward_text() {
    let long_word = "x".repeat(5000);
    let base64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789+/".repeat(200);
    let cases = [
        "",
        " ",
        "   ",
        "hello   world",
        "tabs\t\tand\u{a0}\u{a0}nbsp  \u{3000}ideographic",
        "line\r\n\r\n  indented\n\n\n    code",
        "trailing spaces   ",
        "   leading",
        "I'LL we'RE they've it's O'Neil don't",
        "1234567890 3.14159 -42 1e10 ١٢٣٤",
        "émoji 👩‍👩‍👧‍👦 🇫🇷 and ZWJ\u{200d}text",
        "日本語のテキストと中文文本와 한국어",
        "Ελληνικά Кириллица עברית العربية",
        "((((((((((]]]]]]]]}}}}}}}}!!!!!!!!????",
        "<|endoftext|> special tokens are ordinary text here",
        "path/to/file.rs:12:5 https://example.com/a?b=c&d=e",
        "combining: e\u{301} a\u{308} n\u{303}",
        &long_word,
        &base64,
    ];
    for c in cases {
        assert_eq!(tokens::count(c), reference_count(c), "{c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn counts_match_the_reference_on_arbitrary_text(s in "\\PC{0,200}") {
        prop_assert_eq!(tokens::count(&s), reference_count(&s));
    }

    #[test]
    fn counts_match_on_whitespace_heavy_text(s in "[ \\t\\r\\na-zA-Z0-9'.,]{0,120}") {
        prop_assert_eq!(tokens::count(&s), reference_count(&s));
    }
}
