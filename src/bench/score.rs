//! Grading one answer with a deterministic scorer. Answers are read by `crate::answers`, the same
//! code the cascade's agreement signal uses, so the benchmark grades the way the gateway judges.
//! An answer the scorer cannot read (no option, no number, not JSON, empty) scores 0 and the score
//! says why, so the matrix can tell "wrong" from "unreadable".

use super::tasks::Scorer;
use crate::answers;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// In [0, 1].
    pub value: f64,
    /// Why the answer could not be read, when it could not.
    pub unreadable: Option<String>,
}

impl Score {
    fn of(ok: bool) -> Score {
        Score {
            value: if ok { 1.0 } else { 0.0 },
            unreadable: None,
        }
    }

    pub fn unreadable(why: impl Into<String>) -> Score {
        Score {
            value: 0.0,
            unreadable: Some(why.into()),
        }
    }
}

/// Grades `answer` against `reference`. The judge scorer is not deterministic and is run by
/// `judge.rs`; asked here it grades nothing.
pub fn grade(scorer: &Scorer, answer: &str, reference: Option<&str>) -> Score {
    if answer.trim().is_empty() {
        return Score::unreadable("empty answer");
    }
    let reference = reference.unwrap_or("");
    match scorer {
        Scorer::Exact => Score::of(answers::agree(answer, reference, answers::Compare::Exact)),
        Scorer::Choice => {
            let Some(got) = answers::choice(answer) else {
                return Score::unreadable("the answer names no option");
            };
            let want =
                answers::choice(reference).unwrap_or_else(|| reference.trim().to_uppercase());
            Score::of(got == want)
        }
        Scorer::Numeric { tolerance } => {
            let Some(got) = answers::number(answer) else {
                return Score::unreadable("no number in the answer");
            };
            match answers::number(reference) {
                Some(want) => Score::of(answers::same_number(got, want, *tolerance)),
                None => Score::unreadable("the reference is not a number"),
            }
        }
        Scorer::Regex { pattern } => match pattern {
            Some(re) => Score::of(re.is_match(answer)),
            None => match regex::Regex::new(reference) {
                Ok(re) => Score::of(re.is_match(answer)),
                Err(_) => Score::unreadable("the reference is not a regular expression"),
            },
        },
        Scorer::Contains => {
            let (a, r) = (answers::normalize(answer), answers::normalize(reference));
            Score::of(!r.is_empty() && format!(" {a} ").contains(&format!(" {r} ")))
        }
        Scorer::JsonSchema { validator, .. } => match json_in(answer) {
            Some(v) => Score::of(validator.is_valid(&v)),
            None => Score::unreadable("the answer is not JSON"),
        },
        Scorer::RougeL => Score {
            value: rouge_l(answer, reference),
            unreadable: None,
        },
        Scorer::Judge { .. } => Score::unreadable("the judge grades this answer"),
    }
}

/// The JSON an answer carries: the whole answer, else its first fenced block, else the span from
/// its first `{` or `[` to the matching last `}` or `]`.
pub fn json_in(answer: &str) -> Option<Value> {
    let t = answer.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(code) = answers::code(t) {
        if let Ok(v) = serde_json::from_str(code.trim()) {
            return Some(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(a), Some(b)) = (t.find(open), t.rfind(close)) {
            if a < b {
                if let Ok(v) = serde_json::from_str(&t[a..=b]) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Longest answers compared word by word; beyond this the tail is ignored (the quadratic table
/// would cost more than the grade is worth).
const ROUGE_MAX_WORDS: usize = 2000;

/// ROUGE-L F1: the longest common subsequence of the normalised words, as a share of the answer
/// (precision) and of the reference (recall).
pub fn rouge_l(answer: &str, reference: &str) -> f64 {
    let (a, r) = (answers::normalize(answer), answers::normalize(reference));
    let a: Vec<&str> = a.split_whitespace().take(ROUGE_MAX_WORDS).collect();
    let r: Vec<&str> = r.split_whitespace().take(ROUGE_MAX_WORDS).collect();
    if a.is_empty() || r.is_empty() {
        return 0.0;
    }
    let mut prev = vec![0usize; r.len() + 1];
    let mut row = vec![0usize; r.len() + 1];
    for x in &a {
        for (j, y) in r.iter().enumerate() {
            row[j + 1] = if x == y {
                prev[j] + 1
            } else {
                row[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let lcs = prev[r.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let (p, rc) = (lcs / a.len() as f64, lcs / r.len() as f64);
    2.0 * p * rc / (p + rc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn deterministic_scorers_grade_and_say_when_they_cannot_read() {
        assert_eq!(
            grade(&Scorer::Exact, "Positive.", Some("positive")).value,
            1.0
        );
        assert_eq!(
            grade(&Scorer::Exact, "negative", Some("positive")).value,
            0.0
        );
        assert_eq!(
            grade(&Scorer::Exact, "  ", Some("positive")),
            Score::unreadable("empty answer")
        );
        assert_eq!(
            grade(&Scorer::Choice, "The answer is (C).", Some("C")).value,
            1.0
        );
        let s = grade(&Scorer::Choice, "I cannot tell.", Some("C"));
        assert_eq!(s.value, 0.0);
        assert!(s.unreadable.is_some());
        let num = Scorer::Numeric { tolerance: 0.01 };
        assert_eq!(grade(&num, "so 3 + 4 = 7\n#### 7", Some("7")).value, 1.0);
        assert_eq!(grade(&num, "It is 7.001", Some("7")).value, 1.0);
        assert_eq!(grade(&num, "It is 8", Some("7")).value, 0.0);
        assert!(grade(&num, "seven", Some("7")).unreadable.is_some());
        let re = Scorer::Regex {
            pattern: Some(Arc::new(regex::Regex::new(r"^\d{4}-\d{2}-\d{2}$").unwrap())),
        };
        assert_eq!(grade(&re, "2024-05-01", None).value, 1.0);
        assert_eq!(grade(&re, "May 1", None).value, 0.0);
        let by_ref = Scorer::Regex { pattern: None };
        assert_eq!(grade(&by_ref, "Oslo, Norway", Some("(?i)oslo")).value, 1.0);
        assert_eq!(
            grade(&Scorer::Contains, "The capital is Paris.", Some("paris")).value,
            1.0
        );
        assert_eq!(
            grade(&Scorer::Contains, "Parisian food", Some("paris")).value,
            0.0
        );
    }

    #[test]
    fn json_schema_reads_fenced_and_embedded_json() {
        let schema = serde_json::json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]});
        let s = Scorer::JsonSchema {
            validator: Arc::new(jsonschema::validator_for(&schema).unwrap()),
            schema,
        };
        assert_eq!(grade(&s, r#"{"age": 3}"#, None).value, 1.0);
        assert_eq!(grade(&s, "```json\n{\"age\": 3}\n```", None).value, 1.0);
        assert_eq!(grade(&s, "Sure: {\"age\": 3}. Done.", None).value, 1.0);
        assert_eq!(grade(&s, r#"{"age": "three"}"#, None).value, 0.0);
        assert_eq!(
            grade(&s, "three years", None),
            Score::unreadable("the answer is not JSON")
        );
    }

    #[test]
    fn rouge_l_is_the_lcs_f1_of_words() {
        assert_eq!(
            rouge_l("the cat sat on the mat", "the cat sat on the mat"),
            1.0
        );
        assert_eq!(rouge_l("dogs bark", "the cat sat"), 0.0);
        // LCS "cat sat mat" = 3 of 4 answer words and 3 of 3 reference words.
        let f = rouge_l("cat sat on mat", "cat sat mat");
        assert!((f - 2.0 * 0.75 / 1.75).abs() < 1e-12, "{f}");
    }
}
