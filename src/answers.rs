//! Reading what an answer settles on: its normalised text, the option it picks, the number it ends
//! with. Step 0's scorers (`exact`, `choice`, `numeric`), the cascade's agreement signal (two
//! cheap answers that settle on the same thing) and the offline replay of that cascade must read
//! answers the same way, or a benchmark would promise what the gateway does not do; so they all
//! read them here.
//!
//! Pure functions over text; this module imports nothing of the gateway.

use regex::Regex;
use std::sync::LazyLock;

/// Lowercase, punctuation and articles dropped, whitespace collapsed: "The answer: Paris." and
/// "paris" normalise alike. An answer that is nothing but articles keeps them: "A" is option A,
/// not an empty answer.
pub fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase();
    let cleaned: String = lowered
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let kept: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect();
    if kept.is_empty() {
        words.join(" ")
    } else {
        kept.join(" ")
    }
}

static ANSWER_IS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // The keyword is case-insensitive; a bare letter must be a capital ("the answer is a
    // prime" names no option), a bracketed or bold one may be either.
    Regex::new(
        r"(?i:answer|option|choice)\s*(?i:is|:|would be|=)?\s*(?i:option\s*)?(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|\*\*([A-J])\*\*|([A-J]|[1-9])\b)",
    )
    .ok()
});
static LEADING: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|\**([A-J])(?:[\).:*]|\s*$))").ok()
});
static BRACKETED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\(([A-Ja-j])\)|\[([A-Ja-j])\]|\*\*([A-J])\*\*").ok());

/// The option an answer settles on: a letter `A`–`J` (upper-cased) or a digit `1`–`9`.
///
/// The last explicit statement wins ("…so the answer is (C)"), then an answer that opens with a
/// letter ("B. Because…"), then the last bracketed or bold letter. An answer that names no option
/// is `None`: a scorer gives it 0 and says so, and two such answers never "agree".
pub fn choice(text: &str) -> Option<String> {
    let last = |re: &LazyLock<Option<Regex>>| {
        re.as_ref()?
            .captures_iter(text)
            .last()
            .and_then(|c| c.iter().skip(1).flatten().next())
            .map(|m| m.as_str().to_uppercase())
    };
    last(&ANSWER_IS)
        .or_else(|| last(&LEADING))
        .or_else(|| last(&BRACKETED))
}

static HASHES: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"####\s*(-?[\d,]*\.?\d+)").ok());
static BOXED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\\boxed\{\s*\$?(-?[\d,]*\.?\d+)").ok());
static ANSWER_NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)answer\s*(?:is|:|=)?\s*[:=]?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)").ok()
});
static ANY_NUMBER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+").ok());

/// The number an answer ends on: GSM8K's `#### 42`, a LaTeX `\boxed{42}`, the last "answer is
/// 42", or else the last number in the text. Thousands separators and `$` are ignored.
pub fn number(text: &str) -> Option<f64> {
    let parse = |s: &str| {
        let cleaned: String = s.chars().filter(|c| *c != ',' && *c != '$').collect();
        cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
    };
    let last_group = |re: &LazyLock<Option<Regex>>| {
        re.as_ref()?
            .captures_iter(text)
            .last()
            .and_then(|c| c.get(1))
            .and_then(|m| parse(m.as_str()))
    };
    last_group(&HASHES)
        .or_else(|| last_group(&BOXED))
        .or_else(|| last_group(&ANSWER_NUMBER))
        .or_else(|| {
            ANY_NUMBER
                .as_ref()?
                .find_iter(text)
                .last()
                .and_then(|m| parse(m.as_str()))
        })
}

/// Two numbers are the same answer when they differ by at most `tolerance`, absolute or relative
/// to the larger one (whichever is looser), so 0.1 + 0.2 and 0.3 agree.
pub fn same_number(a: f64, b: f64, tolerance: f64) -> bool {
    let diff = (a - b).abs();
    diff <= tolerance || diff <= tolerance * a.abs().max(b.abs())
}

/// What two answers are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The normalised text, for short answers (labels, extractions).
    Exact,
    /// The option each settles on.
    Choice,
    /// The final number of each.
    Numeric,
    /// Token-set similarity of the two texts at least this share (in percent), for code and
    /// longer answers where wording differs but the content should not.
    Similar(u8),
    /// Whatever fits the two answers, `Similar`'s share for code and long prose; see [`agree`].
    Auto(u8),
}

/// Answers of at most this many words (normalised) are "short": labels, names, single values.
const SHORT_WORDS: usize = 8;

/// Whether two answers settle on the same thing. An answer that cannot be read (no option, no
/// number, empty) agrees with nothing.
///
/// `Auto` reads the answers in this order: code (either has a fenced block) by the similarity of
/// the code; the same normalised text; the option both settle on, when both name one; the number
/// both end on, when both have one; then short answers by the similarity of their normalised words
/// ("Paris is the capital" and "the capital is Paris" agree, "positive" and "negative" do not) and
/// longer prose by the similarity of the texts.
pub fn agree(a: &str, b: &str, how: Compare) -> bool {
    match how {
        Compare::Exact => {
            let (a, b) = (normalize(a), normalize(b));
            !a.is_empty() && a == b
        }
        Compare::Choice => matches!((choice(a), choice(b)), (Some(x), Some(y)) if x == y),
        Compare::Numeric => {
            matches!((number(a), number(b)), (Some(x), Some(y)) if same_number(x, y, 1e-6))
        }
        Compare::Similar(pct) => similarity(a, b) * 100.0 >= f64::from(pct),
        Compare::Auto(pct) => auto_agree(a, b, f64::from(pct) / 100.0),
    }
}

fn auto_agree(a: &str, b: &str, min: f64) -> bool {
    let (ca, cb) = (code(a), code(b));
    if ca.is_some() || cb.is_some() {
        return similarity(ca.as_deref().unwrap_or(a), cb.as_deref().unwrap_or(b)) >= min;
    }
    let (na, nb) = (normalize(a), normalize(b));
    if na.is_empty() || nb.is_empty() {
        return false;
    }
    if na == nb {
        return true;
    }
    if let (Some(x), Some(y)) = (choice(a), choice(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return same_number(x, y, 1e-6);
    }
    let short = |s: &str| s.split_whitespace().count() <= SHORT_WORDS;
    if short(&na) && short(&nb) {
        return similarity(&na, &nb) >= min;
    }
    similarity(a, b) >= min
}

static FENCED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?s)```[^\n`]*\n(.*?)```").ok());

/// The code an answer carries: the contents of its fenced blocks, joined; `None` without any.
pub fn code(text: &str) -> Option<String> {
    let blocks: Vec<&str> = FENCED
        .as_ref()?
        .captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    (!blocks.is_empty()).then(|| blocks.join("\n"))
}

static DOUBLE_BRACKETED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]").ok());
static OUT_OF_TEN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b").ok());
static FIRST_NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\d+(?:\.\d+)?").ok());

/// A judge's grade from 1 to 10: `[[8]]` (MT-Bench's judges), `7/10` or `7 out of 10`, else the
/// first number in the reply. A number outside 1–10 is no grade.
pub fn rating(text: &str) -> Option<f64> {
    let group = |re: &LazyLock<Option<Regex>>| {
        re.as_ref()?
            .captures(text)
            .and_then(|c| c.get(1))
            .and_then(|m| m.as_str().parse::<f64>().ok())
    };
    let v = group(&DOUBLE_BRACKETED)
        .or_else(|| group(&OUT_OF_TEN))
        .or_else(|| {
            FIRST_NUMBER
                .as_ref()?
                .find(text)
                .and_then(|m| m.as_str().parse::<f64>().ok())
        })?;
    (1.0..=10.0).contains(&v).then_some(v)
}

/// Jaccard similarity of the two texts' sets of word tokens (identifiers, numbers, operators
/// split off), in [0, 1]; two empty texts are not similar.
pub fn similarity(a: &str, b: &str) -> f64 {
    use std::collections::HashSet;
    let tokens = |s: &str| -> HashSet<String> {
        let mut out = HashSet::new();
        let mut word = String::new();
        for c in s.chars() {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if !word.is_empty() {
                    out.insert(std::mem::take(&mut word));
                }
                if !c.is_whitespace() {
                    out.insert(c.to_string());
                }
            }
        }
        if !word.is_empty() {
            out.insert(word);
        }
        out
    };
    let (x, y) = (tokens(a), tokens(b));
    let union = x.union(&y).count();
    if union == 0 {
        return 0.0;
    }
    x.intersection(&y).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_text() {
        assert_eq!(normalize("The answer: Paris."), "answer paris");
        assert_eq!(normalize("  PARIS  "), "paris");
        assert_eq!(normalize("?!"), "");
        assert_eq!(normalize("A\n"), "a", "a bare option letter is an answer");
    }

    #[test]
    fn finds_the_option_an_answer_settles_on() {
        assert_eq!(choice("B").as_deref(), Some("B"));
        assert_eq!(choice("B. Because the heart…").as_deref(), Some("B"));
        assert_eq!(choice("(c) mitochondria").as_deref(), Some("C"));
        assert_eq!(
            choice("A looks right at first, but the answer is (D).").as_deref(),
            Some("D")
        );
        assert_eq!(choice("Answer: 2").as_deref(), Some("2"));
        assert_eq!(choice("I think **C** is correct").as_deref(), Some("C"));
        assert_eq!(choice("I cannot tell from the passage."), None);
        assert_eq!(choice(""), None);
    }

    #[test]
    fn finds_the_final_number() {
        assert_eq!(number("so she has 3 + 4 = 7 apples\n#### 7"), Some(7.0));
        assert_eq!(number("The answer is $1,250.50."), Some(1250.5));
        assert_eq!(number("x = \\boxed{-3}"), Some(-3.0));
        assert_eq!(number("First 12, then 18, finally 42 remain"), Some(42.0));
        assert_eq!(number("no digits here"), None);
        assert!(same_number(0.1 + 0.2, 0.3, 1e-9));
        assert!(!same_number(41.0, 42.0, 1e-6));
    }

    #[test]
    fn agreement_reads_both_answers_the_same_way() {
        assert!(agree(
            "The answer is B.",
            "B) the second one",
            Compare::Choice
        ));
        assert!(!agree("The answer is B.", "(C)", Compare::Choice));
        assert!(!agree("no idea", "not sure", Compare::Choice));
        assert!(agree("#### 42", "It comes to 42 apples.", Compare::Numeric));
        assert!(agree("Positive.", "positive", Compare::Exact));
        assert!(!agree("", "", Compare::Exact));
        let f1 = "def add(a, b):\n    return a + b";
        let f2 = "def add(a, b):\n    return a+b  # sum";
        assert!(agree(f1, f2, Compare::Similar(70)));
        assert!(!agree(f1, "SELECT * FROM users", Compare::Similar(70)));
    }

    #[test]
    fn auto_agreement_fits_the_answers() {
        let auto = Compare::Auto(80);
        assert!(agree("Positive.", "positive", auto));
        assert!(!agree("positive", "negative", auto));
        assert!(agree("Paris is the capital.", "The capital is Paris", auto));
        assert!(!agree(
            "The sentiment is positive",
            "The sentiment is negative",
            auto
        ));
        assert!(agree("The answer is (B).", "B", auto));
        assert!(agree("A", "A\n", auto), "option A is not an empty answer");
        assert!(!agree("A", "B", auto));
        assert!(!agree("The answer is (B).", "C. Because", auto));
        assert!(agree("#### 42", "It comes to 42 apples.", auto));
        assert!(!agree("So 41 remain.", "So 42 remain.", auto));
        let a = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds.";
        let b = "```py\ndef add(a, b):\n    return a + b\n```";
        let c = "```python\ndef mul(x, y):\n    print(x * y)\n```";
        assert!(agree(a, b, auto));
        assert!(!agree(a, c, auto));
        assert!(!agree("", "", auto));
        assert_eq!(
            code(b).as_deref(),
            Some("def add(a, b):\n    return a + b\n")
        );
        assert_eq!(code("no code"), None);
    }

    #[test]
    fn reads_a_judges_rating() {
        assert_eq!(rating("8"), Some(8.0));
        assert_eq!(rating("Score: 7/10"), Some(7.0));
        assert_eq!(rating("9.5"), Some(9.5));
        assert_eq!(rating("Rating: [[6]]"), Some(6.0));
        assert_eq!(
            rating("On a scale of 1 to 10 I give it 8 out of 10"),
            Some(8.0)
        );
        assert_eq!(rating("eleven"), None);
        assert_eq!(rating("42"), None);
    }
}
