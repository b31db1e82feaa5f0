//! The request in a prompt, apart from the material pasted with it. A long prompt is mostly its
//! material (minutes, an article, code), and a mean of token vectors then says what the material
//! is about rather than what is to be done with it: "shorten these planning minutes" reads as
//! planning. The words that carry the request are found by where people put them: the first
//! line up to a colon that introduces material, and a short last line; quoted spans and fenced
//! code are material wherever they are.
//!
//! Text only: must not import anything from the rest of the crate.

/// Words beyond which a line is taken for material rather than for a request.
const LONG_LINE_WORDS: usize = 25;

/// The instruction of `text`, or `None` when it is the whole text (nothing was set aside) or
/// nothing is left once the material is set aside (a prompt that is all code or all quote).
///
/// Lines are where pasted material starts and ends: the request is in the first line, or in the
/// last when the material comes first. Of the first line, what comes before a colon that
/// introduces material; of a long one, its first and last sentences and its questions. The last
/// line (of several) counts only when it is short and not an item of a list or log.
pub fn instruction(text: &str) -> Option<String> {
    let prose = strip_material(text);
    let lines: Vec<&str> = prose
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (first, rest) = lines.split_first()?;
    let mut kept: Vec<&str> = request_of(first);
    if let Some(last) = rest.last() {
        if words(last) <= LONG_LINE_WORDS && !looks_like_material(last) {
            kept.extend(request_of(last));
        }
    }
    let out = kept
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ");
    if out.is_empty() || words(&out) >= words(text) {
        None
    } else {
        Some(out)
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The request part of one line: up to a colon that introduces material, else the whole line
/// when it is short, else its first sentence, its questions and its last sentence.
fn request_of(line: &str) -> Vec<&str> {
    let sentences = sentences(line);
    let Some((first, rest)) = sentences.split_first() else {
        return Vec::new();
    };
    let head = before_material(first);
    if head.len() < first.len() {
        return vec![head];
    }
    if words(line) <= LONG_LINE_WORDS {
        return vec![line];
    }
    let mut kept = vec![*first];
    if let Some((last, middle)) = rest.split_last() {
        kept.extend(middle.iter().filter(|s| s.ends_with('?')));
        kept.push(before_material(last));
    }
    kept
}

/// A list item, a log line or a `key: value` line.
fn looks_like_material(line: &str) -> bool {
    let starts_item = line
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '-' | '*' | '[' | '#' | '|' | '>') || c.is_ascii_digit());
    let key_value = line
        .split_once(':')
        .is_some_and(|(k, _)| words(k) <= 2 && !k.is_empty());
    starts_item || key_value
}

/// `text` without fenced code blocks and quoted spans (each replaced by a space, so that the words
/// either side stay apart).
fn strip_material(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Fenced code: from a ``` to the next one, or to the end when it is never closed.
    while let Some(open) = rest.find("```") {
        out.push_str(&rest[..open]);
        out.push('\n');
        match rest[open + 3..].find("```") {
            Some(close) => rest = &rest[open + 3 + close + 3..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    strip_quotes(&out)
}

/// Quoted spans: a quote mark that opens (at the start, or after a space or an opening bracket or
/// a colon) up to the matching mark that closes (before the end, a space or punctuation). An
/// apostrophe inside a word ("don't") neither opens nor closes.
///
/// Linear in the text: a span that is set aside is skipped, and a mark that finds no closing one
/// stops that mark opening any later span (none of them could find one either).
fn strip_quotes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut unclosed: Vec<char> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = i == 0 || matches!(chars[i - 1], ' ' | '\n' | '\t' | '(' | '[' | ':');
        let close = match c {
            '"' => Some('"'),
            '\'' => Some('\''),
            '\u{201c}' => Some('\u{201d}'),
            '\u{2018}' => Some('\u{2019}'),
            _ => None,
        };
        if let (true, Some(close)) = (opens && !unclosed.contains(&c), close) {
            let end = (i + 1..chars.len()).find(|&j| {
                chars[j] == close
                    && j > i + 1
                    && chars.get(j + 1).is_none_or(|n| {
                        n.is_whitespace() || matches!(n, '.' | ',' | ';' | ':' | '?' | '!' | ')')
                    })
            });
            if let Some(end) = end {
                out.push(' ');
                i = end + 1;
                continue;
            }
            unclosed.push(c);
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Sentences: ended by `.`, `!` or `?` before a space, or by a line break. Blank pieces are left
/// out; the ending mark stays with its sentence.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end = match b {
            b'\n' => Some(i),
            b'.' | b'!' | b'?' if bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) => {
                Some(i + 1)
            }
            _ => None,
        };
        if let Some(end) = end {
            if end > start {
                let s = text[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
            }
            start = i + 1;
        }
    }
    let tail = text[start.min(text.len())..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// A sentence up to the colon that introduces material ("Fix this sentence: me and him goes"),
/// when at least two words come before it; the sentence itself otherwise ("3:45 pm", "Note:").
fn before_material(sentence: &str) -> &str {
    let bytes = sentence.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) {
            let head = &sentence[..i];
            if head.split_whitespace().count() >= 2 {
                return head;
            }
            return sentence;
        }
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::instruction;

    #[test]
    fn material_after_a_colon_is_set_aside() {
        assert_eq!(
            instruction("Fix the grammar in this sentence: me and him goes to the store.")
                .as_deref(),
            Some("Fix the grammar in this sentence")
        );
        assert_eq!(
            instruction("Translate 'Where is the nearest train station?' into Spanish.").as_deref(),
            Some("Translate into Spanish.")
        );
    }

    #[test]
    fn the_request_lines_are_kept_and_the_material_between_them_set_aside() {
        let text = "Summarize these minutes.\nWe met on Monday. The budget is late.\n\
                    Marketing wants a date.\nKeep it to three bullets.";
        assert_eq!(
            instruction(text).as_deref(),
            Some("Summarize these minutes. Keep it to three bullets.")
        );
        // A last line that is an item of the material is not the request.
        assert_eq!(
            instruction("Sort these into fruit and vegetables:\n- carrot\n- mango").as_deref(),
            Some("Sort these into fruit and vegetables")
        );
        // A long first line keeps its first and last sentences and its questions.
        let long = "I pasted the report below and it is long, so bear with me here. \
                    It covers sales in four regions over the whole of last year and the year before. \
                    Which region grew fastest? The tables are at the end of every section. \
                    Please answer in one line.";
        assert_eq!(
            instruction(long).as_deref(),
            Some(
                "I pasted the report below and it is long, so bear with me here. \
                 Which region grew fastest? Please answer in one line."
            )
        );
    }

    #[test]
    fn code_is_material_and_short_prompts_are_their_own_instruction() {
        assert_eq!(
            instruction("why does this fail?\n```rust\nfn main() { let x: u8 = 256; }\n```")
                .as_deref(),
            Some("why does this fail?")
        );
        assert_eq!(instruction("What is the capital of Australia?"), None);
        assert_eq!(instruction("Two sentences here. Both are kept."), None);
        assert_eq!(instruction("```\nonly code\n```"), None);
        assert_eq!(instruction("don't split it's apostrophes"), None);
        assert_eq!(instruction(""), None);
        // A quote mark that is never closed is text.
        assert_eq!(
            instruction("Check 'one' and 'two\nfine").as_deref(),
            Some("Check and 'two fine")
        );
        let many = "'a ".repeat(20_000) + "\nsummarize it";
        assert_eq!(instruction(&many), None, "nothing set aside");
    }
}
