//! The benchmark's outcomes file, as a run sees it: the rows already there (so a re-run skips what
//! is finished), new rows appended and flushed one by one (so a killed run keeps every prompt it
//! finished), and rows that gained models rewritten in place at the end (atomically: a temporary
//! file renamed over the old one).

use crate::outcomes::{self, Outcome, OutcomeError};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Store {
    path: PathBuf,
    rows: Vec<Outcome>,
    index: HashMap<String, usize>,
    writer: Option<outcomes::Writer>,
    /// A row already in the file changed: the file is rewritten by `finish`.
    dirty: bool,
    /// Set when the file ended in a line cut short (a run killed while writing it) that was dropped.
    pub repaired: bool,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, OutcomeError> {
        let mut store = Store {
            path: path.to_path_buf(),
            rows: Vec::new(),
            index: HashMap::new(),
            writer: None,
            dirty: false,
            repaired: false,
        };
        if !path.exists() {
            return Ok(store);
        }
        store.repaired = repair_tail(path).map_err(|e| OutcomeError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        store.rows = outcomes::read(path)?;
        store.index = store
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ok(store)
    }

    pub fn get(&self, id: &str) -> Option<&Outcome> {
        self.index.get(id).map(|&i| &self.rows[i])
    }

    pub fn rows(&self) -> &[Outcome] {
        &self.rows
    }

    /// A new row is appended (and on disk when this returns); a row with a known id replaces it.
    pub fn put(&mut self, row: Outcome) -> std::io::Result<()> {
        if let Some(&i) = self.index.get(&row.id) {
            self.rows[i] = row;
            self.dirty = true;
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(outcomes::Writer::append(&self.path)?);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write(&row)?;
        }
        self.index.insert(row.id.clone(), self.rows.len());
        self.rows.push(row);
        Ok(())
    }

    /// Writes the replaced rows, when there are any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.writer = None;
        if !self.dirty {
            return Ok(());
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for r in &self.rows {
                serde_json::to_writer(&mut f, r)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
            f.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.dirty = false;
        Ok(())
    }
}

/// A last line without its newline is the row a killed run was writing: kept when it is whole,
/// dropped (the file cut back to the line before) when it is not. True when one was dropped.
fn repair_tail(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(false);
    }
    let start = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let tail = String::from_utf8_lossy(&bytes[start..]);
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    if outcomes::parse_line(&tail).is_ok() {
        drop(f);
        let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
        f.write_all(b"\n")?;
        return Ok(false);
    }
    f.set_len(start as u64)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(id: &str, score: f64) -> Outcome {
        outcomes::parse_line(&format!(
            r#"{{"id": "{id}", "messages": [], "scores": {{"m": {score}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn appends_new_rows_and_rewrites_changed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        let mut s = Store::open(&path).unwrap();
        s.put(row("a", 1.0)).unwrap();
        s.put(row("b", 0.0)).unwrap();
        // On disk before finish: a killed run keeps them.
        assert_eq!(outcomes::read(&path).unwrap().len(), 2);
        s.put(row("a", 0.5)).unwrap();
        s.finish().unwrap();
        let back = outcomes::read(&path).unwrap();
        assert_eq!(back, vec![row("a", 0.5), row("b", 0.0)]);
        let again = Store::open(&path).unwrap();
        assert_eq!(again.get("b"), Some(&row("b", 0.0)));
    }

    #[test]
    fn a_line_cut_short_by_a_kill_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        let whole = serde_json::to_string(&row("a", 1.0)).unwrap();
        std::fs::write(&path, format!("{whole}\n{{\"id\": \"b\", \"mess")).unwrap();
        let mut s = Store::open(&path).unwrap();
        assert!(s.repaired);
        assert_eq!(s.rows().len(), 1);
        s.put(row("b", 1.0)).unwrap();
        assert_eq!(outcomes::read(&path).unwrap().len(), 2);
        // A whole last line that only lacks its newline is kept.
        std::fs::write(&path, &whole).unwrap();
        let s = Store::open(&path).unwrap();
        assert!(!s.repaired);
        assert_eq!(s.rows().len(), 1);
    }
}
