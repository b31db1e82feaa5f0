//! Per-prompt outcome files: one JSON object per line with the score (and, where known, the cost,
//! latency and answer text) that each model got on one prompt. Step 0 (`switchyard bench`) writes
//! them, the learned routing layer learns from them and `switchyard eval` replays them, so a team's
//! own benchmark and the public sets go through one format and one reader.
//!
//! The format is the one of the public routing sets (RouteLLM, RouterBench):
//!
//! ```json
//! {"id": "mmlu/anatomy/3", "source": "routellm/mmlu", "category": "anatomy",
//!  "messages": [{"role": "user", "content": "..."}],
//!  "scores": {"gpt-4": 1.0, "mixtral": 0.0},
//!  "costs_usd": {"gpt-4": 0.0031, "mixtral": 0.0001},
//!  "responses": {"gpt-4": "The answer is B.", "mixtral": "B"}}
//! ```
//!
//! `switchyard bench` writes `category` as the task type and adds, where they apply, `reference`
//! (the prompt's reference answer), `unreadable` (model → why the scorer could not read its
//! answer, scored 0), `failed` (model → the error of a call that failed and has no score) and
//! `judge_costs_usd` (model → what grading its answer cost); they are kept in `extra`.
//!
//! This module sits below routing, bench and eval and imports none of them.
//!
//! Must not import anything but `openai`: `bench`, `eval` and the learned layer all read it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One prompt and how every model did on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The task type or subject (`anatomy`, `extraction`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The conversation as a chat request carries it (`role`, `content`, …).
    pub messages: Vec<Value>,
    /// Model → score in [0, 1].
    pub scores: BTreeMap<String, f64>,
    /// Model → what the call cost, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs_usd: Option<BTreeMap<String, f64>>,
    /// Model → the answer's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<BTreeMap<String, String>>,
    /// Model → the call's latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<BTreeMap<String, f64>>,
    /// Fields this version does not know are kept, so a file read and written again loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Outcome {
    /// The text a router reads: the last user message (string content, or its text parts).
    pub fn prompt(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(message_text)
            .unwrap_or_default()
    }

    pub fn cost(&self, model: &str) -> Option<f64> {
        self.costs_usd.as_ref()?.get(model).copied()
    }

    pub fn response(&self, model: &str) -> Option<&str> {
        self.responses.as_ref()?.get(model).map(String::as_str)
    }

    /// The models this row has a score for.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.scores.keys().map(String::as_str)
    }
}

fn message_text(m: &Value) -> String {
    crate::openai::content_text(m.get("content"))
}

/// A line that is not an outcome, or a file that cannot be read: names the file and the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct OutcomeError {
    pub file: PathBuf,
    /// 1-based; `None` for errors about the whole file.
    pub line: Option<usize>,
    pub message: String,
}

/// Reads a whole outcomes file. Blank lines are skipped; any other line that is not a valid
/// outcome (bad JSON, a missing `id`/`messages`/`scores`, a score outside [0, 1], a duplicate id)
/// fails the read with its line number, because a silently skipped row would bias every figure
/// computed from the file.
pub fn read(path: &Path) -> Result<Vec<Outcome>, OutcomeError> {
    let text = std::fs::read_to_string(path).map_err(|e| OutcomeError {
        file: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses a whole outcomes file already in memory (`path` names it in errors), with the checks
/// of [`read`]: for callers that also hash the bytes (the learned layer's embedding cache).
///
/// Large files are parsed on every core (JSON parsing is most of a warm start of the learned
/// layer); the result and the first error reported are the same as reading line by line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Outcome>, OutcomeError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let threads = if lines.len() < PARALLEL_LINES {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, 16)
    };
    let per = lines.len().div_ceil(threads).max(1);
    // Each part: the rows parsed before its first bad line, and that line's error.
    let parse_part = |part: &[(usize, &str)]| {
        let mut out = Vec::with_capacity(part.len());
        for &(n, line) in part {
            match parse_line(line) {
                Ok(row) => out.push((n, row)),
                Err(e) => return (out, Some((n, e))),
            }
        }
        (out, None)
    };
    let parts: Vec<Part> = if threads == 1 {
        vec![parse_part(&lines)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = lines
                .chunks(per)
                .map(|c| s.spawn(move || parse_part(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (Vec::new(), Some((0, "a parser thread panicked".into())))
                    })
                })
                .collect()
        })
    };
    let at = |n: usize, message: String| OutcomeError {
        file: path.to_path_buf(),
        line: Some(n),
        message,
    };
    let mut rows = Vec::with_capacity(lines.len());
    let mut ids = std::collections::HashMap::with_capacity(lines.len());
    for (part, err) in parts {
        for (n, row) in part {
            if let Some(first) = ids.insert(row.id.clone(), n) {
                return Err(at(
                    n,
                    format!("duplicate id {:?} (first on line {first})", row.id),
                ));
            }
            rows.push(row);
        }
        if let Some((n, e)) = err {
            return Err(at(n, e));
        }
    }
    Ok(rows)
}

/// A run of lines parsed: the rows (with their line numbers) before its first bad line, and that
/// line's number and error.
type Part = (Vec<(usize, Outcome)>, Option<(usize, String)>);

/// Files with fewer lines are parsed on one thread: spawning costs more than it saves.
const PARALLEL_LINES: usize = 4096;

/// Parses and checks one line.
pub fn parse_line(line: &str) -> Result<Outcome, String> {
    let de = &mut serde_json::Deserializer::from_str(line);
    let row: Outcome = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("not an outcome: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    if row.scores.is_empty() {
        return Err("scores: no model has a score".into());
    }
    for (model, s) in &row.scores {
        if !s.is_finite() || !(0.0..=1.0).contains(s) {
            return Err(format!(
                "scores.{model}: {s} is outside [0, 1] (scores are shares of full marks)"
            ));
        }
    }
    if let Some(costs) = &row.costs_usd {
        for (model, c) in costs {
            if !c.is_finite() || *c < 0.0 {
                return Err(format!("costs_usd.{model}: {c} is not a cost in USD"));
            }
        }
    }
    Ok(row)
}

/// Appends rows to an outcomes file, one line each, flushed per row so that a run that is killed
/// keeps every row it finished (a re-run resumes from them).
pub struct Writer {
    file: std::io::BufWriter<std::fs::File>,
}

impl Writer {
    pub fn append(path: &Path) -> std::io::Result<Writer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Writer {
            file: std::io::BufWriter::new(file),
        })
    }

    pub fn write(&mut self, row: &Outcome) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.file, row)?;
        self.file.write_all(b"\n")?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ROW: &str = r#"{"id": "a/1", "source": "s", "category": "c", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "what is 2+2?"}]}], "scores": {"big": 1.0, "small": 0.0}, "costs_usd": {"big": 0.01, "small": 0.001}, "responses": {"big": "4", "small": "5"}, "judge": "x"}"#;

    #[test]
    fn reads_the_public_format_and_keeps_unknown_fields() {
        let row = parse_line(ROW).unwrap();
        assert_eq!(row.prompt(), "what is 2+2?");
        assert_eq!(row.cost("small"), Some(0.001));
        assert_eq!(row.response("big"), Some("4"));
        assert_eq!(row.models().collect::<Vec<_>>(), ["big", "small"]);
        assert_eq!(row.extra["judge"], "x");
        let again = serde_json::to_string(&row).unwrap();
        assert_eq!(parse_line(&again).unwrap(), row);
    }

    #[test]
    fn names_the_file_and_line_of_a_bad_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        std::fs::write(
            &path,
            format!("{ROW}\n\n{{\"id\": \"b\", \"messages\": []}}\n"),
        )
        .unwrap();
        let e = read(&path).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("o.jsonl:3: "), "{e}");
        assert!(e.message.contains("scores"), "{e}");

        std::fs::write(&path, format!("{ROW}\n{ROW}\n")).unwrap();
        let e = read(&path).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("duplicate id"), "{e}");

        let bad = ROW.replace("\"big\": 1.0", "\"big\": 7");
        assert!(parse_line(&bad).unwrap_err().contains("scores.big"));
        assert!(
            parse_line("not json")
                .unwrap_err()
                .contains("not an outcome")
        );
    }

    #[test]
    fn a_large_file_parses_in_parallel_with_the_same_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let line = |i: usize| ROW.replace("\"a/1\"", &format!("\"a/{i}\""));
        let mut text: String = (0..10_000).map(|i| line(i) + "\n").collect();
        let rows = parse(&path, &text).unwrap();
        assert_eq!(rows.len(), 10_000);
        assert_eq!(rows[9_999].id, "a/9999");
        // A duplicate early and a bad line late: the duplicate is reported, as line by line.
        text.push_str("not json\n");
        let dup = text.replacen("\"a/20\"", "\"a/10\"", 1);
        let e = parse(&path, &dup).unwrap_err();
        assert_eq!(e.line, Some(21), "{e}");
        let e = parse(&path, &text).unwrap_err();
        assert_eq!(e.line, Some(10_001), "{e}");
    }

    #[test]
    fn a_written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("o.jsonl");
        let row = parse_line(ROW).unwrap();
        let mut w = Writer::append(&path).unwrap();
        w.write(&row).unwrap();
        drop(w);
        let mut w = Writer::append(&path).unwrap();
        let mut second = row.clone();
        second.id = "a/2".into();
        w.write(&second).unwrap();
        assert_eq!(read(&path).unwrap(), vec![row, second]);
    }

    #[test]
    fn the_public_sets_read_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval");
        for (file, n) in [
            ("routellm-mt-bench.jsonl", 72),
            ("routellm-gsm8k.jsonl", 1307),
        ] {
            let rows = read(&dir.join(file)).unwrap();
            assert_eq!(rows.len(), n, "{file}");
            assert!(rows.iter().all(|r| r.scores.len() == 2), "{file}");
        }
    }
}
