//! The learned layer's training data: outcome rows read, their models put in columns, their
//! prompts embedded once (from the cache when the file and the embedder are unchanged).

use super::cache;
use crate::embed::Embedder;
use crate::outcomes::{self, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Prompts kept for display (`switchyard route` shows the nearest ones) are cut to this many
/// characters: 50,000 few-shot prompts would otherwise hold a hundred megabytes.
const PREVIEW_CHARS: usize = 160;

/// Outcome rows in columns: row `i`'s score on model `m` is `scores[i * models.len() + m]`
/// (`NaN` where the row has none), its embedding `vectors[i * dims..][..dims]`.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub models: Vec<String>,
    pub ids: Vec<String>,
    pub previews: Vec<String>,
    pub categories: Vec<Option<String>>,
    /// Each prompt's [`prompt_features`], [`FEATURES`] per row: longer prompts, and prompts with
    /// more numbers or steps, tend to be harder ones.
    pub features: Vec<f32>,
    pub scores: Vec<f32>,
    /// Recorded USD per call, `NaN` where unknown.
    pub costs: Vec<f32>,
    pub vectors: Vec<f32>,
    pub dims: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }

    pub fn score(&self, i: usize, m: usize) -> f32 {
        self.scores[i * self.models.len() + m]
    }

    pub fn features(&self, i: usize) -> &[f32] {
        &self.features[i * FEATURES..(i + 1) * FEATURES]
    }

    pub fn cost(&self, i: usize, m: usize) -> f32 {
        self.costs[i * self.models.len() + m]
    }

    pub fn column(&self, model: &str) -> Option<usize> {
        self.models.iter().position(|m| m == model)
    }

    /// Mean recorded cost per call of each model, `None` where no row has one.
    pub fn mean_costs(&self) -> Vec<Option<f64>> {
        let m = self.models.len();
        (0..m)
            .map(|c| {
                let (sum, n) = (0..self.len())
                    .map(|i| self.costs[i * m + c])
                    .filter(|x| x.is_finite())
                    .fold((0.0f64, 0usize), |(s, n), x| (s + f64::from(x), n + 1));
                (n > 0).then(|| sum / n as f64)
            })
            .collect()
    }

    /// Builds the columns from rows already read and embedded (`vectors`, one per row).
    pub fn from_rows(rows: &[Outcome], vectors: Vec<Vec<f32>>) -> Dataset {
        let dims = vectors.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(rows.len() * dims);
        for i in 0..rows.len() {
            match vectors.get(i) {
                Some(v) if v.len() == dims => flat.extend_from_slice(v),
                _ => flat.extend(std::iter::repeat_n(0.0, dims)),
            }
        }
        Dataset::from_flat(rows, flat, dims)
    }

    /// Builds the columns from rows and their vectors as one row-major block of `dims` each.
    pub fn from_flat(rows: &[Outcome], vectors: Vec<f32>, dims: usize) -> Dataset {
        let mut models: Vec<String> = rows
            .iter()
            .flat_map(|r| r.scores.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        models.shrink_to_fit();
        let col: BTreeMap<&str, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let m = models.len();
        let mut vectors = vectors;
        vectors.resize(rows.len() * dims, 0.0);
        let mut d = Dataset {
            scores: vec![f32::NAN; rows.len() * m],
            costs: vec![f32::NAN; rows.len() * m],
            vectors,
            dims,
            ..Dataset::default()
        };
        for (i, r) in rows.iter().enumerate() {
            for (name, s) in &r.scores {
                if let Some(&c) = col.get(name.as_str()) {
                    d.scores[i * m + c] = *s as f32;
                    if let Some(cost) = r.cost(name) {
                        d.costs[i * m + c] = cost as f32;
                    }
                }
            }
            d.ids.push(r.id.clone());
            let prompt = r.prompt();
            d.features.extend_from_slice(&prompt_features(&prompt));
            d.previews.push(preview(&prompt));
            d.categories.push(r.category.clone());
        }
        d.models = models;
        d
    }

    /// Keeps only the given columns, in that order (the models some tier stands for).
    pub fn select_models(&mut self, keep: &[usize]) {
        let m = self.models.len();
        let pick = |v: &Vec<f32>| -> Vec<f32> {
            (0..self.ids.len())
                .flat_map(|i| keep.iter().map(move |&c| v[i * m + c]))
                .collect()
        };
        self.scores = pick(&self.scores);
        self.costs = pick(&self.costs);
        self.models = keep.iter().map(|&c| self.models[c].clone()).collect();
    }

    /// The rows at `idx`, in that order (a fold of a cross-validation).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let m = self.models.len();
        let mut d = Dataset {
            models: self.models.clone(),
            dims: self.dims,
            ..Dataset::default()
        };
        for &i in idx {
            d.ids.push(self.ids[i].clone());
            d.previews.push(self.previews[i].clone());
            d.categories.push(self.categories[i].clone());
            d.features.extend_from_slice(self.features(i));
            d.scores.extend_from_slice(&self.scores[i * m..(i + 1) * m]);
            d.costs.extend_from_slice(&self.costs[i * m..(i + 1) * m]);
            d.vectors.extend_from_slice(self.vector(i));
        }
        d
    }
}

/// How many numbers [`prompt_features`] gives per prompt.
pub const FEATURES: usize = 6;

/// What a prompt's text says about its difficulty apart from its meaning, as the predictors'
/// inputs beside the embedding: `ln(1 + n)` of its characters, numbers, sentences, question
/// marks and lines, and whether it holds code. Counts are logs so that a few-shot prompt ten
/// times as long does not weigh ten times as much; the `linear` method standardises them on its
/// training data.
pub fn prompt_features(text: &str) -> [f32; FEATURES] {
    let (mut chars, mut numbers, mut sentences, mut questions, mut lines) =
        (0u32, 0u32, 0u32, 0u32, 1u32);
    let mut in_number = false;
    let mut prev = ' ';
    for c in text.chars() {
        chars += 1;
        let digit = c.is_ascii_digit();
        if digit && !in_number {
            numbers += 1;
        }
        // `3.5` and `1,000` stay one number.
        in_number = digit || (in_number && (c == '.' || c == ',') && prev.is_ascii_digit());
        if c.is_whitespace() && matches!(prev, '.' | '!' | '?') {
            sentences += 1;
        }
        questions += u32::from(c == '?');
        lines += u32::from(c == '\n');
        prev = c;
    }
    if matches!(prev, '.' | '!' | '?') {
        sentences += 1;
    }
    let code = CODE_MARKS.iter().any(|m| text.contains(m));
    let ln = |n: u32| (1.0 + n as f32).ln();
    [
        ln(chars),
        ln(numbers),
        ln(sentences),
        ln(questions),
        ln(lines),
        f32::from(u8::from(code)),
    ]
}

/// Text that marks a prompt as holding code.
const CODE_MARKS: &[&str] = &[
    "```",
    "def ",
    "return ",
    "#include",
    "function ",
    "=>",
    "};",
];

fn preview(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Reads outcome files and embeds their prompts, reusing cached embeddings where the file's
/// bytes and the embedder are unchanged. Errors name the file (and line, for a bad row).
pub async fn load(
    files: &[PathBuf],
    embedder: &Embedder,
    embedder_id: &str,
    cache_dir: Option<&Path>,
) -> Result<Dataset, String> {
    let mut rows = Vec::new();
    let mut vectors: Vec<f32> = Vec::new();
    let mut dims: Option<usize> = None;
    for path in files {
        let bytes =
            std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
        let file_rows = outcomes::parse(path, &text).map_err(|e| e.to_string())?;
        let key = cache::key(text.as_bytes(), embedder_id);
        let cached = cache_dir.and_then(|d| cache::read_flat(d, key, file_rows.len()));
        let (file_vectors, file_dims) = match cached {
            Some(v) => v,
            None => {
                let prompts: Vec<String> = file_rows.iter().map(Outcome::prompt).collect();
                let v = embed_all(embedder, &prompts).await.map_err(|e| {
                    format!("{}: embedding the prompts failed: {e}", path.display())
                })?;
                if let Some(d) = cache_dir {
                    if let Err(e) = cache::write(d, key, &v) {
                        tracing::warn!(
                            "learned layer: cannot cache embeddings in {}: {e}",
                            d.display()
                        );
                    }
                }
                let width = v.first().map_or(0, Vec::len);
                let mut flat = Vec::with_capacity(v.len() * width);
                for x in &v {
                    if x.len() == width {
                        flat.extend_from_slice(x);
                    } else {
                        flat.extend(std::iter::repeat_n(0.0, width));
                    }
                }
                (flat, width)
            }
        };
        match dims {
            Some(d) if d != file_dims && !file_rows.is_empty() => {
                return Err(format!(
                    "{}: its prompts embed to {file_dims} numbers, the other files' to {d}",
                    path.display()
                ));
            }
            None if !file_rows.is_empty() => dims = Some(file_dims),
            _ => {}
        }
        rows.extend(file_rows);
        vectors.extend(file_vectors);
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = rows.iter().find(|r| !seen.insert(r.id.as_str())) {
        return Err(format!(
            "outcome id {:?} appears in more than one file; ids must be unique across routing.learned.outcomes",
            dup.id
        ));
    }
    Ok(Dataset::from_flat(&rows, vectors, dims.unwrap_or(0)))
}

/// Embeds many prompts. The in-process embedders are pure CPU work, so they run on every core;
/// a remote one is called in batches.
pub async fn embed_all(embedder: &Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
    match embedder {
        Embedder::Hashed(h) => Ok(parallel(texts, |t| Ok(h.embed(t)))?),
        Embedder::Static(s) => parallel(texts, |t| s.embed(t).map_err(|e| e.to_string())),
        _ => {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(64) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                out.extend(
                    embedder
                        .embed_batch(&refs)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            Ok(out)
        }
    }
}

fn parallel(
    texts: &[String],
    f: impl Fn(&str) -> Result<Vec<f32>, String> + Sync,
) -> Result<Vec<Vec<f32>>, String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 16);
    let per = texts.len().div_ceil(threads).max(1);
    let f = &f;
    let parts: Vec<Result<Vec<Vec<f32>>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(|t| f(t)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an embedding thread panicked".into()))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(texts.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_features_count_what_makes_a_prompt_hard() {
        let ln = |n: f32| (1.0 + n).ln();
        let f = prompt_features("Tom has 3.5 apples and buys 1,000 more. How many now? Why?");
        assert_eq!(f[0], ln(58.0), "characters");
        assert_eq!(f[1], ln(2.0), "numbers: 3.5 and 1,000");
        assert_eq!(f[2], ln(3.0), "sentences");
        assert_eq!(f[3], ln(2.0), "question marks");
        assert_eq!(f[4], ln(1.0), "lines");
        assert_eq!(f[5], 0.0, "no code");
        let code = prompt_features("Fix this:\n```\ndef f(x):\n    return x\n```");
        assert_eq!(code[4], ln(5.0));
        assert_eq!(code[5], 1.0);
        assert_eq!(prompt_features(""), [0.0, 0.0, 0.0, 0.0, ln(1.0), 0.0]);
    }
}
