//! model2vec-format static embeddings (e.g. the potion models): a vocabulary-sized matrix whose
//! rows are mean-pooled over a prompt's tokens. Real semantics (synonyms, not just shared letters)
//! at a cost of one table look-up per token, from a local folder only.
//!
//! Written against `safetensors` and `tokenizers` rather than the `model2vec-rs` crate: that crate
//! needs a newer compiler than this project's minimum, panics when tokenization fails (this runs on
//! the request path), requires `config.json`, and pulls in a hub download client by default. The
//! format itself is small: a `model.safetensors` with an `embeddings` matrix (plus optional per-token
//! `weights` and a token → row `mapping`, written by vocabulary-quantised models), a
//! `tokenizer.json`, and an optional `config.json`.

use super::EmbedError;
use super::wordpiece::FastWordPiece;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokenizers::Tokenizer;

/// model2vec's default: longer prompts are cut, as model2vec itself does. The start of a prompt says
/// what it asks for, and it bounds the work per request.
const MAX_TOKENS: usize = 512;

/// Tensor names model2vec has used for the matrix over its versions, newest first.
const MATRIX_NAMES: [&str; 3] = ["embeddings", "0", "embedding.weight"];

pub struct StaticModel {
    /// The general `tokenizers` pipeline: for texts the fast path declines, and for models whose
    /// pipeline it does not cover.
    tokenizer: General,
    /// The BERT-WordPiece pipeline without `tokenizers`' bookkeeping, when the model uses it.
    fast: Option<FastWordPiece>,
    /// `rows × dims`, row-major.
    matrix: Matrix,
    rows: usize,
    dims: usize,
    /// Per-token scale, indexed by token id.
    weights: Option<Vec<f32>>,
    /// Token id → matrix row (vocabulary-quantised models share rows between tokens).
    mapping: Option<Vec<usize>>,
    /// Unknown-token hits carry no meaning and are skipped, as model2vec does.
    unk_id: Option<u32>,
    /// The widest vector instructions this CPU has, found once: summing int8 rows is two to three
    /// times faster with AVX2 than with the SSE2 that every x86-64 binary may assume.
    arch: pulp::Arch,
    /// Characters kept before tokenizing: enough for `MAX_TOKENS` tokens of typical length, so a
    /// huge prompt is not tokenized in full only to be cut.
    max_chars: usize,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("rows", &self.rows)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl StaticModel {
    /// Loads `folder` (relative paths resolve against `base_dir`, the config file's folder). Every
    /// error names the file and what is wrong with it: `switchyard check` shows it as is.
    pub fn load(folder: &str, base_dir: &Path) -> Result<StaticModel, String> {
        let dir = resolve(folder, base_dir);
        let shown = dir.display();
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("static embedder: {shown} is not a folder")),
            Err(e) => {
                return Err(format!(
                    "static embedder: cannot open model folder {shown}: {e}"
                ));
            }
        }
        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read(&tok_path)?;
        let st_path = dir.join("model.safetensors");
        let st_bytes = read(&st_path)?;
        let cfg_path = dir.join("config.json");
        let cfg_bytes = if cfg_path.exists() {
            Some(read(&cfg_path)?)
        } else {
            None
        };
        let tensors = parse_tensors(&st_bytes, &st_path.display().to_string())?;
        let matrix = match tensors.matrix {
            MatrixRef::F32(v) => Matrix::F32(v),
            // Copied out of the file's bytes, which are dropped: only the matrix stays in memory.
            MatrixRef::I8(b) => Matrix::I8(Cow::Owned(b.to_vec())),
        };
        Self::assemble(
            Files {
                tokenizer: (&tok_bytes, &tok_path.display().to_string()),
                lazy: None,
                safetensors: st_path.display().to_string(),
                config: cfg_bytes
                    .as_deref()
                    .map(|b| (b, cfg_path.display().to_string())),
            },
            tensors.rows,
            tensors.dims,
            matrix,
            tensors.weights,
            tensors.mapping,
        )
    }

    /// Builds a model from files held in memory for the life of the process (the built-in model,
    /// compiled into the binary): an int8 matrix is used where it lies, not copied.
    pub fn from_static(
        tokenizer: &'static [u8],
        safetensors: &'static [u8],
        config: Option<&'static [u8]>,
        name: &str,
    ) -> Result<StaticModel, String> {
        let st_name = format!("{name}/model.safetensors");
        let tensors = parse_tensors(safetensors, &st_name)?;
        let matrix = match tensors.matrix {
            MatrixRef::F32(v) => Matrix::F32(v),
            MatrixRef::I8(b) => Matrix::I8(Cow::Borrowed(b)),
        };
        Self::assemble(
            Files {
                tokenizer: (tokenizer, &format!("{name}/tokenizer.json")),
                lazy: Some(tokenizer),
                safetensors: st_name,
                config: config.map(|b| (b, format!("{name}/config.json"))),
            },
            tensors.rows,
            tensors.dims,
            matrix,
            tensors.weights,
            tensors.mapping,
        )
    }

    fn assemble(
        files: Files<'_>,
        rows: usize,
        dims: usize,
        matrix: Matrix,
        weights: Option<Vec<f32>>,
        mapping: Option<Vec<usize>>,
    ) -> Result<StaticModel, String> {
        let (tok_bytes, tok_name) = files.tokenizer;
        let json: Value =
            serde_json::from_slice(tok_bytes).map_err(|e| bad_tokenizer(tok_name, e))?;
        let fast = FastWordPiece::from_tokenizer_json(&json);
        // The built-in model's tokenizer is known to parse (its tests build it) and the fast path
        // covers all its texts but those holding a special token: the general pipeline, most of
        // the start-up cost, is built the first time such a text comes, not at every start.
        let (tokenizer, unk_id, vocab, median_chars) = match (&fast, files.lazy) {
            (Some(f), Some(bytes)) => (
                General::Lazy(bytes, OnceLock::new()),
                Some(f.unk()),
                f.vocab_size(),
                f.median_token_chars(),
            ),
            _ => {
                let (tokenizer, unk_id) = load_tokenizer(tok_bytes, &json, tok_name)?;
                let vocab = tokenizer.get_vocab_size(false);
                let median = median_token_chars(&tokenizer);
                (General::Ready(tokenizer), unk_id, vocab, median)
            }
        };
        drop(json);

        // Ids the matrix (or mapping) cannot cover mean the two files are from different models.
        let covered = mapping.as_ref().map_or(rows, Vec::len);
        if vocab > covered {
            return Err(format!(
                "static embedder: {tok_name} has {vocab} tokens but {} covers only {covered}: the tokenizer and the matrix are not from the same model",
                files.safetensors
            ));
        }

        if let Some((bytes, cfg_name)) = files.config {
            // Only checked: model2vec's `normalize` decides whether *it* scales the mean to unit
            // length, and switchyard always does, since its similarity is a dot product.
            let cfg: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("static embedder: {cfg_name} is not valid JSON: {e}"))?;
            if let Some(v) = cfg.get("normalize").filter(|v| !v.is_boolean()) {
                return Err(format!(
                    "static embedder: {cfg_name}: `normalize` must be true or false, not {v}"
                ));
            }
        }

        let max_chars = MAX_TOKENS * median_chars;
        Ok(StaticModel {
            tokenizer,
            fast,
            matrix,
            rows,
            dims,
            weights,
            mapping,
            unk_id,
            max_chars,
            arch: pulp::Arch::new(),
        })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Whether the matrix is held as int8 (a quarter of f32's memory).
    pub fn is_int8(&self) -> bool {
        matches!(self.matrix, Matrix::I8(_))
    }

    /// Bytes the matrix holds: most of the model's memory.
    pub fn matrix_bytes(&self) -> usize {
        self.matrix.bytes()
    }

    /// The prompt's token ids, by the fast path when it applies.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 4);
        if let Some(f) = &self.fast {
            if f.ids(text, &mut ids) {
                return Ok(ids);
            }
        }
        self.general_ids(text)
    }

    /// The ids from the general `tokenizers` pipeline (texts the fast path declines, and the
    /// reference the fast path is tested against).
    fn general_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .get()
            .map_err(|e| EmbedError(e.clone()))?
            .encode_fast(text, false)
            .map_err(|e| EmbedError(format!("static embedder: tokenization failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Mean of the token rows, L2-normalised; all zeros when no token is known to the model.
    ///
    /// On the fast path each id is added to the sum as the tokenizer finds it: no id list is
    /// built, and nothing is allocated but the output and, for text with capitals or control
    /// characters, one normalised copy.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let text = self.cut(text);
        let mut pool = Pool {
            sum: vec![0.0f32; self.dims],
            seen: 0,
            pooled: 0,
        };
        let fast = self
            .fast
            .as_ref()
            .is_some_and(|f| f.for_each_id(text, |id| self.add(id, &mut pool)));
        if !fast {
            for id in self.general_ids(text)? {
                self.add(id, &mut pool);
            }
        }
        Ok(pool.finish())
    }

    /// The text up to `max_chars` characters. A text of no more bytes than that is not scanned:
    /// it cannot hold more characters than bytes.
    fn cut<'t>(&self, text: &'t str) -> &'t str {
        if text.len() <= self.max_chars {
            return text;
        }
        match text.char_indices().nth(self.max_chars) {
            Some((i, _)) => &text[..i],
            None => text,
        }
    }

    /// Adds token `id`'s row to the pool, if it is among the first `MAX_TOKENS` and has one.
    #[inline]
    fn add(&self, id: u32, pool: &mut Pool) {
        if pool.seen >= MAX_TOKENS {
            return;
        }
        pool.seen += 1;
        if Some(id) == self.unk_id {
            return;
        }
        let tok = id as usize;
        let row = match &self.mapping {
            Some(m) => m.get(tok).copied(),
            None => Some(tok),
        };
        // Added tokens past the matrix (special tokens) have no row: skipped, not a crash.
        let Some(row) = row.filter(|&r| r < self.rows) else {
            return;
        };
        let scale = self
            .weights
            .as_ref()
            .map_or(1.0, |w| w.get(tok).copied().unwrap_or(1.0));
        self.matrix
            .add_row(self.arch, row, self.dims, scale, &mut pool.sum);
        pool.pooled += 1;
    }

    /// The embedding as computed from a list of token ids (the reference the fused path is
    /// checked against).
    #[cfg(test)]
    fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let mut pool = Pool {
            sum: vec![0.0f32; self.dims],
            seen: 0,
            pooled: 0,
        };
        for &id in ids {
            self.add(id, &mut pool);
        }
        pool.finish()
    }
}

/// The running sum of one text's token rows.
struct Pool {
    sum: Vec<f32>,
    /// Tokens seen, pooled or not: the cap counts every token, as model2vec's truncation does.
    seen: usize,
    /// Rows added to `sum`.
    pooled: usize,
}

impl Pool {
    /// The mean, L2-normalised (zeros when nothing was pooled).
    fn finish(mut self) -> Vec<f32> {
        if self.pooled > 0 {
            let n = self.pooled as f32;
            self.sum.iter_mut().for_each(|x| *x /= n);
            super::normalize(&mut self.sum);
        }
        self.sum
    }
}

/// The embedding matrix as held in memory. int8 stays int8 (a quarter of f32: the built-in model's
/// matrix is a few megabytes instead of tens), its per-row scales folded into `weights`, as
/// model2vec's own quantised models do; other types are widened once to f32.
enum Matrix {
    F32(Vec<f32>),
    /// `i8` values stored as their bytes; borrowed when the file is compiled into the binary.
    I8(Cow<'static, [u8]>),
}

impl Matrix {
    /// `out += scale × row`, compiled for the widest vector instructions `arch` found. Each
    /// element is one multiply and one add whatever the width (no fused multiply-add: Rust does
    /// not contract them), so every CPU gives the same vector.
    #[inline]
    fn add_row(&self, arch: pulp::Arch, row: usize, dims: usize, scale: f32, out: &mut [f32]) {
        match self {
            Matrix::F32(m) => {
                let row = &m[row * dims..(row + 1) * dims];
                arch.dispatch(|| {
                    for (o, x) in out.iter_mut().zip(row) {
                        *o += scale * x;
                    }
                });
            }
            Matrix::I8(m) => {
                let row = &m[row * dims..(row + 1) * dims];
                arch.dispatch(|| {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o += scale * f32::from(x as i8);
                    }
                });
            }
        }
    }

    /// Bytes the matrix occupies.
    fn bytes(&self) -> usize {
        match self {
            Matrix::F32(m) => m.len() * 4,
            Matrix::I8(m) => m.len(),
        }
    }
}

enum MatrixRef<'a> {
    F32(Vec<f32>),
    I8(&'a [u8]),
}

struct Tensors<'a> {
    matrix: MatrixRef<'a>,
    rows: usize,
    dims: usize,
    weights: Option<Vec<f32>>,
    mapping: Option<Vec<usize>>,
}

/// The model's files, with the names errors show for them.
struct Files<'a> {
    tokenizer: (&'a [u8], &'a str),
    /// The tokenizer's bytes when they live for the whole process and the general pipeline may
    /// be built on first use.
    lazy: Option<&'static [u8]>,
    safetensors: String,
    config: Option<(&'a [u8], String)>,
}

/// Reads and checks the tensors of a model2vec `model.safetensors` (`shown` names it in errors).
fn parse_tensors<'a>(bytes: &'a [u8], shown: &str) -> Result<Tensors<'a>, String> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("static embedder: {shown} is not a valid safetensors file: {e}"))?;
    let bad = |what: String| format!("static embedder: {shown}: {what}");

    let Some((name, matrix)) = MATRIX_NAMES
        .iter()
        .find_map(|n| tensors.tensor(n).ok().map(|t| (*n, t)))
    else {
        let mut names = tensors.names();
        names.sort_unstable();
        return Err(bad(format!(
            "no embedding matrix (expected a tensor named `embeddings`; found {})",
            if names.is_empty() {
                "no tensors".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let (rows, dims) = match *matrix.shape() {
        [r, d] if r > 0 && d > 0 => (r, d),
        ref s => {
            return Err(bad(format!(
                "tensor `{name}` has shape {s:?}; expected a non-empty 2-D matrix (vocabulary × dimensions)"
            )));
        }
    };
    let values = if matrix.dtype() == Dtype::I8 {
        MatrixRef::I8(matrix.data())
    } else {
        let v = to_f32(matrix.dtype(), matrix.data())
            .ok_or_else(|| bad(unsupported(name, matrix.dtype())))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!(
                "tensor `{name}` contains NaN or infinite values"
            )));
        }
        MatrixRef::F32(v)
    };
    let len = match &values {
        MatrixRef::F32(v) => v.len(),
        MatrixRef::I8(b) => b.len(),
    };
    if len != rows * dims {
        return Err(bad(format!(
            "tensor `{name}` holds {len} values, not {rows} × {dims}"
        )));
    }

    let weights = match tensors.tensor("weights") {
        Err(_) => None,
        Ok(t) => {
            let w = to_f32(t.dtype(), t.data())
                .ok_or_else(|| bad(unsupported("weights", t.dtype())))?;
            if t.shape().len() != 1 || w.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "tensor `weights` must be a 1-D vector of finite numbers (shape {:?})",
                    t.shape()
                )));
            }
            Some(w)
        }
    };

    let mapping = match tensors.tensor("mapping") {
        Err(_) => None,
        Ok(t) => {
            let m = to_indices(t.dtype(), t.data())
                .ok_or_else(|| bad(unsupported("mapping", t.dtype())))?;
            if t.shape().len() != 1 {
                return Err(bad(format!(
                    "tensor `mapping` must be 1-D (shape {:?})",
                    t.shape()
                )));
            }
            let mut rows_of = Vec::with_capacity(m.len());
            for (tok, r) in m.into_iter().enumerate() {
                match usize::try_from(r) {
                    Ok(r) if r < rows => rows_of.push(r),
                    _ => {
                        return Err(bad(format!(
                            "tensor `mapping` sends token {tok} to row {r}, outside the {rows}-row matrix"
                        )));
                    }
                }
            }
            Some(rows_of)
        }
    };
    Ok(Tensors {
        matrix: values,
        rows,
        dims,
        weights,
        mapping,
    })
}

fn resolve(folder: &str, base_dir: &Path) -> PathBuf {
    let p = Path::new(folder);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("static embedder: cannot read {}: {e}", path.display()))
}

fn unsupported(name: &str, dtype: Dtype) -> String {
    format!(
        "tensor `{name}` has data type {dtype:?}; supported: F32, F16, BF16, F64 (and I8 for the matrix)"
    )
}

/// Parses the tokenizer, and finds its unknown token, which the `tokenizers` API does not expose
/// uniformly: WordPiece, WordLevel and BPE name it (`unk_token`), Unigram numbers it (`unk_id`).
fn load_tokenizer(
    bytes: &[u8],
    json: &Value,
    shown: &str,
) -> Result<(Tokenizer, Option<u32>), String> {
    let tokenizer = general_tokenizer(bytes, shown)?;
    if tokenizer.get_vocab_size(false) == 0 {
        return Err(bad_tokenizer(shown, "its vocabulary is empty"));
    }
    let model = json.get("model");
    let unk_id = match model
        .and_then(|m| m.get("unk_token"))
        .and_then(Value::as_str)
    {
        Some(t) => tokenizer.token_to_id(t),
        None => model
            .and_then(|m| m.get("unk_id"))
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok()),
    };
    Ok((tokenizer, unk_id))
}

/// The `tokenizers` pipeline, with padding and truncation off.
fn general_tokenizer(bytes: &[u8], shown: &str) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| bad_tokenizer(shown, e))?;
    // Padding would pool [PAD] rows into the mean; our own cap replaces truncation.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| bad_tokenizer(shown, e))?;
    Ok(tokenizer)
}

fn bad_tokenizer(shown: &str, e: impl std::fmt::Display) -> String {
    format!("static embedder: {shown} is not a valid tokenizer: {e}")
}

/// The general pipeline, built when the model is loaded or, for the built-in model, on first use.
enum General {
    Ready(Tokenizer),
    Lazy(&'static [u8], OnceLock<Result<Tokenizer, String>>),
}

impl General {
    fn get(&self) -> Result<&Tokenizer, &String> {
        match self {
            General::Ready(t) => Ok(t),
            General::Lazy(bytes, cell) => cell
                .get_or_init(|| general_tokenizer(bytes, "built-in tokenizer.json"))
                .as_ref(),
        }
    }
}

/// Median vocabulary entry length in characters (WordPiece's `##` continuation marker excluded),
/// at least 1: model2vec's own estimate of characters per token.
fn median_token_chars(tokenizer: &Tokenizer) -> usize {
    let mut lens: Vec<usize> = tokenizer
        .get_vocab(false)
        .keys()
        .map(|t| t.trim_start_matches("##").chars().count())
        .collect();
    lens.sort_unstable();
    lens.get(lens.len() / 2).copied().unwrap_or(1).max(1)
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

fn to_indices(dtype: Dtype, data: &[u8]) -> Option<Vec<i64>> {
    Some(match dtype {
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        _ => return None,
    })
}

/// Builds tiny but real model2vec folders for tests and the benchmark.
#[doc(hidden)]
pub mod testing {
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// Words of the test vocabulary with a hand-made 4-dimensional vector each. Axes: writing about
    /// text, mathematics, programming, animals.
    pub const WORDS: &[(&str, [f32; 4])] = &[
        ("summarize", [1.0, 0.0, 0.1, 0.0]),
        ("summary", [0.95, 0.05, 0.1, 0.0]),
        ("article", [0.9, 0.0, 0.0, 0.1]),
        ("text", [0.85, 0.1, 0.2, 0.0]),
        ("prove", [0.0, 1.0, 0.1, 0.0]),
        ("theorem", [0.05, 0.95, 0.0, 0.0]),
        ("lemma", [0.0, 0.9, 0.1, 0.0]),
        ("code", [0.1, 0.1, 1.0, 0.0]),
        ("python", [0.0, 0.1, 0.9, 0.2]),
        ("cat", [0.0, 0.0, 0.0, 1.0]),
        ("kitten", [0.05, 0.0, 0.0, 0.95]),
        // Function words: small vectors, so they barely move the mean.
        ("this", [0.02, 0.02, 0.02, 0.02]),
        ("the", [0.02, 0.02, 0.02, 0.02]),
        ("a", [0.02, 0.02, 0.02, 0.02]),
        ("of", [0.02, 0.02, 0.02, 0.02]),
    ];

    pub const DIMS: usize = 4;

    /// A WordLevel tokenizer: lowercase, split on whitespace and punctuation, `[UNK]` as id 0.
    pub fn tokenizer_json() -> String {
        let mut vocab = BTreeMap::new();
        vocab.insert("[UNK]".to_string(), 0u32);
        for (i, (w, _)) in WORDS.iter().enumerate() {
            vocab.insert((*w).to_string(), i as u32 + 1);
        }
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}],
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordPiece", "vocab": vocab, "unk_token": "[UNK]",
                      "continuing_subword_prefix": "##", "max_input_chars_per_word": 100}
        })
        .to_string()
    }

    /// The matrix, row 0 (`[UNK]`) set to a large vector so a test notices if unknowns are pooled.
    pub fn matrix() -> Vec<f32> {
        let mut m = vec![5.0; DIMS];
        for (_, v) in WORDS {
            m.extend_from_slice(v);
        }
        m
    }

    /// Name, data type, shape and little-endian bytes of one tensor.
    pub type TensorSpec<'a> = (&'a str, Dtype, Vec<usize>, Vec<u8>);

    pub fn safetensors_bytes(tensors: &[TensorSpec<'_>]) -> Result<Vec<u8>, String> {
        let mut views = Vec::with_capacity(tensors.len());
        for (n, d, s, b) in tensors {
            let view = TensorView::new(*d, s.clone(), b).map_err(|e| format!("{n}: {e}"))?;
            views.push(((*n).to_string(), view));
        }
        safetensors::serialize(views, None).map_err(|e| e.to_string())
    }

    pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Writes the test model into `dir` with the matrix as f32.
    pub fn write_model(dir: &Path) -> Result<(), String> {
        let m = matrix();
        let bytes = safetensors_bytes(&[(
            "embeddings",
            Dtype::F32,
            vec![m.len() / DIMS, DIMS],
            f32_bytes(&m),
        )])?;
        write(dir, "model.safetensors", &bytes)?;
        write(dir, "tokenizer.json", tokenizer_json().as_bytes())?;
        write(
            dir,
            "config.json",
            br#"{"model_type": "model2vec", "normalize": true, "hidden_dim": 4}"#,
        )
    }

    pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("write {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::embed::cosine;

    fn model_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path()).unwrap();
        dir
    }

    fn load_err(dir: &Path) -> String {
        StaticModel::load(dir.to_str().unwrap(), Path::new("/nonexistent-base")).unwrap_err()
    }

    #[test]
    fn loads_and_mean_pools_known_tokens() {
        let dir = model_dir();
        let m = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        assert_eq!(m.dims(), DIMS);
        let v = m.embed("Cat").unwrap();
        assert!((v[3] - 1.0).abs() < 1e-6 && v[..3].iter().all(|x| x.abs() < 1e-6));
        // Mean of "cat" and "kitten", normalised.
        let v = m.embed("cat kitten").unwrap();
        let mut want = [0.025f32, 0.0, 0.0, 0.975];
        crate::embed::normalize(&mut want);
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        // Unknown words are skipped, not pooled as [UNK]'s row.
        assert_eq!(
            m.embed("zebra cat, quux!").unwrap(),
            m.embed("cat").unwrap()
        );
        // Nothing known: the zero vector.
        assert_eq!(m.embed("zebra quux").unwrap(), vec![0.0; DIMS]);
        assert_eq!(m.embed("").unwrap(), vec![0.0; DIMS]);
    }

    #[test]
    fn similar_prompts_score_higher_than_unrelated_ones() {
        let dir = model_dir();
        let m = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let s = |a: &str, b: &str| cosine(&m.embed(a).unwrap(), &m.embed(b).unwrap());
        let q = "summarize this article";
        assert!(s(q, "a summary of the text") > 0.95);
        assert!(s(q, "a summary of the text") > s(q, "prove this theorem") + 0.5);
        assert!(s("prove the lemma", "prove this theorem") > s("prove the lemma", "python code"));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let base = tempfile::tempdir().unwrap();
        let sub = base.path().join("models").join("tiny");
        std::fs::create_dir_all(&sub).unwrap();
        write_model(&sub).unwrap();
        let m = StaticModel::load("models/tiny", base.path()).unwrap();
        assert_eq!(m.dims(), DIMS);
        let e = StaticModel::load("models/tiny", Path::new("/elsewhere")).unwrap_err();
        assert!(e.contains("/elsewhere/models/tiny"), "{e}");
    }

    #[test]
    fn f16_bf16_weights_and_mapping_are_understood() {
        let dir = model_dir();
        let m = matrix();
        let f16s: Vec<u8> = m
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        write(
            dir.path(),
            "model.safetensors",
            &safetensors_bytes(&[("embeddings", Dtype::F16, vec![m.len() / DIMS, DIMS], f16s)])
                .unwrap(),
        )
        .unwrap();
        let h = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let v = h.embed("cat").unwrap();
        assert!((v[3] - 1.0).abs() < 1e-3, "{v:?}");

        let bf16s: Vec<u8> = m
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        // Token 10 ("cat") and 11 ("kitten") both use row 11, and "kitten" counts triple.
        let rows = m.len() / DIMS;
        let mut mapping: Vec<i64> = (0..rows as i64).collect();
        mapping[10] = 11;
        let mut weights = vec![1.0f32; rows];
        weights[11] = 3.0;
        write(
            dir.path(),
            "model.safetensors",
            &safetensors_bytes(&[
                ("embeddings", Dtype::BF16, vec![rows, DIMS], bf16s),
                (
                    "mapping",
                    Dtype::I64,
                    vec![rows],
                    mapping.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                ("weights", Dtype::F32, vec![rows], f32_bytes(&weights)),
            ])
            .unwrap(),
        )
        .unwrap();
        let q = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let cat = q.embed("cat").unwrap();
        let kitten = q.embed("kitten").unwrap();
        assert!(cosine(&cat, &kitten) > 0.9999);
        // Weights matter when mixing: "kitten" (×3) outweighs "code".
        let mix = q.embed("kitten code").unwrap();
        assert!(mix[3] > mix[2], "{mix:?}");
    }

    #[test]
    fn missing_folder_or_files_are_named() {
        let e = load_err(Path::new("/definitely/not/here"));
        assert!(
            e.contains("/definitely/not/here") && e.contains("cannot open model folder"),
            "{e}"
        );

        let dir = model_dir();
        let file = dir.path().join("config.json");
        let e = load_err(&file);
        assert!(e.contains("is not a folder"), "{e}");

        for name in ["tokenizer.json", "model.safetensors"] {
            let dir = model_dir();
            std::fs::remove_file(dir.path().join(name)).unwrap();
            let e = load_err(dir.path());
            assert!(e.contains(name) && e.contains("cannot read"), "{e}");
        }

        // config.json is optional.
        let dir = model_dir();
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        assert!(StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).is_ok());
    }

    #[test]
    fn malformed_files_are_named_with_the_problem() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "tokenizer.json",
                b"{not json".to_vec(),
                "not a valid tokenizer",
            ),
            (
                "tokenizer.json",
                br#"{"model": {"type": "Nonsense"}}"#.to_vec(),
                "not a valid tokenizer",
            ),
            (
                "model.safetensors",
                b"definitely not safetensors".to_vec(),
                "not a valid safetensors file",
            ),
            (
                "config.json",
                b"{oops".to_vec(),
                "config.json is not valid JSON",
            ),
            (
                "config.json",
                br#"{"normalize": "yes"}"#.to_vec(),
                "`normalize` must be true or false",
            ),
        ];
        for (name, bytes, want) in cases {
            let dir = model_dir();
            write(dir.path(), name, &bytes).unwrap();
            let e = load_err(dir.path());
            assert!(e.contains(name) && e.contains(want), "{name}: {e}");
            assert!(e.contains(dir.path().to_str().unwrap()), "{e}");
        }
    }

    #[test]
    fn wrong_tensors_are_named_with_the_problem() {
        let rows = WORDS.len() + 1;
        let m = f32_bytes(&matrix());
        let cases: Vec<(Vec<TensorSpec<'_>>, &str)> = vec![
            (
                vec![("other", Dtype::F32, vec![rows, DIMS], m.clone())],
                "no embedding matrix (expected a tensor named `embeddings`; found other)",
            ),
            (
                vec![("embeddings", Dtype::F32, vec![rows * DIMS], m.clone())],
                "expected a non-empty 2-D matrix",
            ),
            (
                vec![("embeddings", Dtype::I32, vec![rows, DIMS], m.clone())],
                "data type I32",
            ),
            (
                // Fewer rows than the tokenizer has tokens: files from two different models.
                vec![(
                    "embeddings",
                    Dtype::F32,
                    vec![rows - 1, DIMS],
                    m[..(rows - 1) * DIMS * 4].to_vec(),
                )],
                "not from the same model",
            ),
            (
                vec![(
                    "embeddings",
                    Dtype::F32,
                    vec![rows, DIMS],
                    f32_bytes(&vec![f32::NAN; rows * DIMS]),
                )],
                "NaN",
            ),
            (
                vec![
                    ("embeddings", Dtype::F32, vec![rows, DIMS], m.clone()),
                    (
                        "mapping",
                        Dtype::I32,
                        vec![2],
                        [0i32, 99].iter().flat_map(|x| x.to_le_bytes()).collect(),
                    ),
                ],
                "sends token 1 to row 99",
            ),
            (
                vec![
                    ("embeddings", Dtype::F32, vec![rows, DIMS], m.clone()),
                    (
                        "weights",
                        Dtype::F32,
                        vec![rows, 1],
                        f32_bytes(&vec![1.0; rows]),
                    ),
                ],
                "`weights` must be a 1-D vector",
            ),
        ];
        for (tensors, want) in cases {
            let dir = model_dir();
            write(
                dir.path(),
                "model.safetensors",
                &safetensors_bytes(&tensors).unwrap(),
            )
            .unwrap();
            let e = load_err(dir.path());
            assert!(
                e.contains("model.safetensors") && e.contains(want),
                "want {want:?}: {e}"
            );
        }
    }

    #[test]
    fn wordpiece_tokenizers_work_too() {
        let dir = model_dir();
        let vocab = serde_json::json!({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "sum": 3, "##mary": 4, "cat": 5});
        let tok = serde_json::json!({
            "version": "1.0", "truncation": {"direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0},
            "padding": null, "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                                   "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": vocab}
        });
        write(dir.path(), "tokenizer.json", tok.to_string().as_bytes()).unwrap();
        let mut rows = vec![9.0f32; 3 * DIMS]; // [UNK], [CLS], [SEP]: must never be pooled
        rows.extend_from_slice(&[1.0, 0.0, 0.0, 0.0]);
        rows.extend_from_slice(&[0.0, 1.0, 0.0, 0.0]);
        rows.extend_from_slice(&[0.0, 0.0, 0.0, 1.0]);
        write(
            dir.path(),
            "model.safetensors",
            &safetensors_bytes(&[("embeddings", Dtype::F32, vec![6, DIMS], f32_bytes(&rows))])
                .unwrap(),
        )
        .unwrap();
        let m = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        // "Summary" → sum + ##mary; no [CLS]/[SEP]; the file's truncation to 2 tokens is ignored.
        let v = m.embed("Summary CAT xyz").unwrap();
        let third = 1.0 / 3.0f32.sqrt();
        for (a, b) in v.iter().zip([third, third, 0.0, third]) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }

    /// The fused path (ids folded into the sum as they are found) against the reference: the
    /// general `tokenizers` pipeline's ids, pooled one by one. Same ids, bit-identical vectors,
    /// on the built-in model's real vocabulary and on ASCII, Unicode and mixed text.
    #[test]
    fn the_fused_fast_path_matches_the_reference_pipeline() {
        let m = crate::embed::builtin_model().unwrap();
        let long = crate::embed::wordpiece::CORPUS.concat();
        let cut = long.repeat(20);
        let texts = crate::embed::wordpiece::CORPUS
            .iter()
            .copied()
            .chain([long.as_str(), cut.as_str()]);
        for text in texts {
            let reference = m.general_ids(m.cut(text)).unwrap();
            assert_eq!(
                m.token_ids(m.cut(text)).unwrap(),
                reference,
                "ids of {text:.60?}"
            );
            assert_eq!(
                m.embed(text).unwrap(),
                m.embed_ids(&reference),
                "vector of {text:.60?}"
            );
        }
        // A text the fast path declines (it holds an added token) takes the general pipeline.
        let special = "summarize [SEP] this";
        assert_eq!(
            m.embed(special).unwrap(),
            m.embed_ids(&m.general_ids(special).unwrap())
        );
    }

    #[test]
    fn long_prompts_are_cut_not_refused() {
        let dir = model_dir();
        let m = StaticModel::load(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let long = format!("cat {}", "theorem ".repeat(100_000));
        let v = m.embed(&long).unwrap();
        assert!(cosine(&v, &m.embed("theorem").unwrap()) > 0.99);
    }

    /// A real model2vec model, when one is at hand (no installable package ships one, and tests
    /// download nothing): `SWITCHYARD_STATIC_MODEL=/path/to/potion-base-8M cargo test real_model`.
    #[test]
    fn real_model_from_env() {
        let Ok(path) = std::env::var("SWITCHYARD_STATIC_MODEL") else {
            eprintln!("SWITCHYARD_STATIC_MODEL not set: skipped");
            return;
        };
        let m = StaticModel::load(&path, Path::new(".")).unwrap();
        let s = |a: &str, b: &str| cosine(&m.embed(a).unwrap(), &m.embed(b).unwrap());
        let q = "summarize this article";
        let para = s(q, "give me a summary of the text");
        let other = s(q, "prove this theorem");
        eprintln!(
            "dims {} paraphrase {para:.3} unrelated {other:.3}",
            m.dims()
        );
        assert!(para > other + 0.1);
    }
}
