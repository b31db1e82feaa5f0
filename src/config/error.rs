use std::fmt;

/// A config problem located in the file: `file:line:column: yaml.path: message`, plus the offending
/// line with a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The YAML path of the key, e.g. `providers.openai.api_key` or `tiers.budget.models[0]`.
    pub path: String,
    pub message: String,
    pub snippet: Option<String>,
}

impl ConfigError {
    pub(crate) fn from_yaml(e: &serde_saphyr::Error, path: &str, file: &str, text: &str) -> Self {
        let loc = e.location();
        let line = loc
            .and_then(|l| u32::try_from(l.line()).ok())
            .filter(|&l| l > 0);
        let column = loc
            .and_then(|l| u32::try_from(l.column()).ok())
            .filter(|&c| c > 0);
        let mut message = e.without_snippet().to_string();
        // The loader's depth limit, and the parser's own for flow collections.
        if message.starts_with("budget breached: Depth")
            || message.starts_with("recursion limit exceeded")
        {
            message = format!(
                "the document nests deeper than {} levels of mappings and lists; no routing table needs that many (flatten nested any/all/not conditions)",
                super::MAX_DEPTH
            );
        }
        // The library appends the position; we print it up front instead.
        if let Some(idx) = message.rfind(" at line ") {
            message.truncate(idx);
        }
        let path = if path == "." {
            String::new()
        } else {
            super::locate::normalize(text, path)
        };
        Self::at(file, text, line, column, &path, message)
    }

    /// An error about the file as a whole (unreadable, or a problem found after parsing).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            path: String::new(),
            message: message.into(),
            snippet: None,
        }
    }

    /// An error found while compiling a valid file (an embedding model that does not load…). When
    /// the message opens with the YAML path it is about (`routing.semantic.embedder: …`), the
    /// error points there.
    pub fn after_build(path: &std::path::Path, message: String) -> Self {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let located = message.split_once(": ").and_then(|(head, rest)| {
            let is_path = !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
            let pos = super::locate::locate(&text, head).filter(|_| is_path)?;
            Some((head, rest, pos))
        });
        match located {
            Some((head, rest, pos)) => Self::at(
                &file,
                &text,
                Some(pos.line),
                Some(pos.column),
                head,
                rest.to_string(),
            ),
            None => Self::whole_file(&file, message),
        }
    }

    pub(crate) fn at(
        file: &str,
        text: &str,
        line: Option<u32>,
        column: Option<u32>,
        path: &str,
        message: String,
    ) -> Self {
        let snippet = line.and_then(|l| {
            let src = text.lines().nth(usize::try_from(l).ok()?.checked_sub(1)?)?;
            let col = column.unwrap_or(1).max(1);
            let pad = " ".repeat(usize::try_from(col - 1).unwrap_or(0));
            Some(format!("{l:>5} | {src}\n      | {pad}^"))
        });
        ConfigError {
            file: file.to_string(),
            line,
            column,
            path: path.to_string(),
            message,
            snippet,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
