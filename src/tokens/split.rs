//! Splitting text into the pieces that byte-pair merging works on, as o200k does it: words with
//! their leading space or punctuation mark and an English contraction, numbers of up to three
//! digits, runs of punctuation, line breaks, and other whitespace.
//!
//! o200k's published pattern ends with `\s+(?!\S)|\s+`: a run of spaces gives its last space to
//! the word after it. The `regex` crate has no look-ahead (and a backtracking engine that has
//! one is several times slower), so the pattern here ends with `\s+` and [`Pieces`] hands that
//! last character back when the run is followed by a non-space.

use regex::Regex;
use std::sync::OnceLock;

const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+",
);

fn regex() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| Regex::new(PATTERN).ok()).as_ref()
}

/// Compiles the pattern now rather than on the first request that counts.
pub fn prewarm() {
    let _ = regex();
}

pub struct Pieces<'t> {
    text: &'t str,
    at: usize,
}

pub fn pieces(text: &str) -> Pieces<'_> {
    Pieces { text, at: 0 }
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let rest = self.text.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let Some(re) = regex() else {
            // Unreachable with a valid pattern; the whole rest is then one piece.
            self.at = self.text.len();
            return Some(rest);
        };
        let Some(m) = re.find_at(self.text, self.at) else {
            self.at = self.text.len();
            return Some(rest);
        };
        let (start, mut end) = (m.start(), m.end());
        let piece = m.as_str();
        let spaces_only = piece
            .chars()
            .all(|c| c.is_whitespace() && c != '\r' && c != '\n');
        let followed_by_text = self.text[end..]
            .chars()
            .next()
            .is_some_and(|c| !c.is_whitespace());
        if spaces_only && followed_by_text {
            if let Some((last, _)) = piece.char_indices().last().filter(|(i, _)| *i > 0) {
                end = start + last;
            }
        }
        // The pattern matches every character, so nothing is skipped between pieces.
        let out = &self.text[self.at..end];
        self.at = end;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        pieces(s).collect()
    }

    #[test]
    fn spaces_give_their_last_to_the_next_word() {
        assert_eq!(split("hello   world"), ["hello", "  ", " world"]);
        assert_eq!(split("a \nb"), ["a", " \n", "b"]);
        assert_eq!(split("end   "), ["end", "   "]);
        assert_eq!(split("I'll pay 12345"), ["I'll", " pay", " ", "123", "45"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }
}
