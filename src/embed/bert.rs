//! A BERT-family sentence encoder run in-process on the CPU, in the sentence-transformers
//! recipe: token embeddings mean-pooled over the attention mask, then L2-normalised.
//!
//! The model is read from a local folder (config.json, tokenizer.json, model.safetensors) and
//! never fetched: the gateway must start the same way offline as online, and a routing layer
//! that silently downloads hundreds of megabytes at start-up would surprise an operator.
//!
//! The forward pass is CPU-bound (tens of milliseconds for a long prompt on a small machine), so
//! callers on an async runtime should run it on a blocking thread.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Texts per forward pass in `embed_batch`: attention memory grows with batch × length², and
/// a bounded batch keeps start-up with hundreds of utterances from spiking memory.
const BATCH: usize = 32;

/// Bytes of input kept per token of the model's window. Tokenising costs time linear in the
/// text, yet only the first few hundred tokens reach the model; English runs at 4–6 bytes a
/// token and whitespace-heavy code at 10–20, so this cut never changes what the model sees for
/// real prompts while bounding the work a megabyte-sized prompt costs on the request path.
const BYTES_PER_TOKEN: usize = 128;

/// Below this the window cannot hold the special tokens plus any text, which means the config
/// is wrong rather than merely small.
const MIN_WINDOW: usize = 8;

/// Only the shape is shown: the weights are tens of megabytes.
impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("dims", &self.dims())
            .finish_non_exhaustive()
    }
}

pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
    /// Token window, special tokens included.
    max_tokens: usize,
    pad_id: u32,
    /// Kept for error messages, which are read far from where the model was configured.
    dir: PathBuf,
}

/// The optional sentence-transformers file: its `max_seq_length` is the window the model was
/// trained and evaluated with, often shorter than the position table.
#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl BertEmbedder {
    pub fn load(dir: &Path) -> Result<BertEmbedder, String> {
        let shown = dir.display();
        if !dir.exists() {
            return Err(format!("BERT model folder {shown} does not exist"));
        }
        if !dir.is_dir() {
            return Err(format!("BERT model folder {shown} is not a folder"));
        }

        let config_path = required_file(dir, "config.json")?;
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| format!("BERT model folder {shown}: cannot read config.json: {e}"))?;
        let config = parse_config(&config_text)
            .map_err(|e| format!("BERT model folder {shown}: config.json is malformed: {e}"))?;

        let max_tokens = window(dir, &config)?;

        let tokenizer_path = required_file(dir, "tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| format!("BERT model folder {shown}: tokenizer.json is malformed: {e}"))?;
        // tokenizer.json often carries the exporter's own padding and truncation (all-MiniLM
        // ships fixed padding to 128): padding is done here per batch instead, and truncation
        // follows the model's window.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| {
                format!("BERT model folder {shown}: cannot truncate to {max_tokens} tokens: {e}")
            })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > config.vocab_size {
            // Ids past the embedding table would fail on every request; a mismatched pair of
            // files is better reported once, at load.
            return Err(format!(
                "BERT model folder {shown}: tokenizer.json has {tokenizer_vocab} tokens but \
                 config.json says vocab_size {}; the files belong to different models",
                config.vocab_size
            ));
        }
        let pad_id = u32::try_from(config.pad_token_id)
            .ok()
            .filter(|&id| (id as usize) < config.vocab_size)
            .ok_or_else(|| {
                format!(
                    "BERT model folder {shown}: config.json is malformed: pad_token_id {} is \
                     outside the vocabulary of {}",
                    config.pad_token_id, config.vocab_size
                )
            })?;

        let weights_path = weights_file(dir)?;
        // Read into memory rather than mapped: candle's mapping constructor is `unsafe`, which
        // this crate forbids, and the copy is transient (the tensors own their data).
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|e| {
            format!("BERT model folder {shown}: model.safetensors cannot be read: {e}")
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = BertModel::load(vb, &config).map_err(|e| {
            format!(
                "BERT model folder {shown}: model.safetensors does not fit config.json \
                 (a BERT model with hidden_size {}, {} layers): {e}",
                config.hidden_size, config.num_hidden_layers
            )
        })?;

        Ok(BertEmbedder {
            model,
            tokenizer,
            dims: config.hidden_size,
            max_tokens,
            pad_id,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The token window inputs are truncated to, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        let mut out = self.embed_chunk(&[text])?;
        out.pop()
            .ok_or_else(|| self.error("the model returned no embedding"))
    }

    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        // Texts of similar length share a batch, so little of each forward pass goes to padding;
        // the results are put back in the caller's order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let rows = self.embed_chunk(&batch)?;
            if rows.len() != chunk.len() {
                return Err(self.error(&format!(
                    "the model returned {} embeddings for {} texts",
                    rows.len(),
                    chunk.len()
                )));
            }
            for (&i, v) in chunk.iter().zip(rows) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Mean-pooled, unnormalised outputs for `n` sequences of `len` token ids each (special
    /// tokens included, no padding): what distillation feeds the model, one vocabulary token
    /// between `[CLS]` and `[SEP]` at a time, and a caller that builds its own ids needs.
    pub fn pooled_ids(&self, ids: Vec<u32>, n: usize, len: usize) -> Result<Vec<Vec<f32>>, String> {
        if ids.len() != n * len || len == 0 || len > self.max_tokens {
            return Err(self.error(&format!(
                "{} token ids are not {n} sequences of 1–{} tokens",
                ids.len(),
                self.max_tokens
            )));
        }
        self.forward(ids, vec![0; n * len], vec![1; n * len], n, len, false)
            .map_err(|e| self.error(&format!("forward pass failed: {e}")))
    }

    /// The tokenizer's id for a token of its vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The vocabulary, id → token, special tokens included.
    pub fn vocabulary(&self) -> Vec<String> {
        let mut v = vec![String::new(); self.tokenizer.get_vocab_size(true)];
        for (tok, id) in self.tokenizer.get_vocab(true) {
            if let Some(slot) = v.get_mut(id as usize) {
                *slot = tok;
            }
        }
        v
    }

    fn embed_chunk(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let budget = self.max_tokens.saturating_mul(BYTES_PER_TOKEN);
        let mut encodings = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding = self
                .tokenizer
                .encode(cut(text, budget), true)
                .map_err(|e| self.error(&format!("cannot tokenise the text: {e}")))?;
            encodings.push(encoding);
        }

        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .clamp(1, self.max_tokens);
        let n = encodings.len();
        let mut ids = vec![self.pad_id; n * len];
        let mut type_ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * len;
            for (j, ((&id, &ty), &m)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_type_ids())
                .zip(encoding.get_attention_mask())
                .take(len)
                .enumerate()
            {
                ids[start + j] = id;
                type_ids[start + j] = ty;
                mask[start + j] = m;
            }
        }

        self.forward(ids, type_ids, mask, n, len, true)
            .map_err(|e| self.error(&format!("forward pass failed: {e}")))
    }

    fn forward(
        &self,
        ids: Vec<u32>,
        type_ids: Vec<u32>,
        mask: Vec<u32>,
        n: usize,
        len: usize,
        normalize: bool,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), device)?;
        let type_ids = Tensor::from_vec(type_ids, (n, len), device)?;
        let mask = Tensor::from_vec(mask, (n, len), device)?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;

        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        // A row is never all padding (the special tokens are always there), but a zero count
        // must not turn into NaNs if a tokenizer ever adds none.
        let counts = weights.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mut rows: Vec<Vec<f32>> = summed.broadcast_div(&counts)?.to_vec2()?;
        if normalize {
            for row in &mut rows {
                super::normalize(row);
            }
        }
        Ok(rows)
    }

    fn error(&self, what: &str) -> String {
        format!("BERT model {}: {what}", self.dir.display())
    }
}

fn required_file(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("BERT model folder {} has no {name}", dir.display()))
    }
}

/// Names the one weights format that is read, and says so when only PyTorch pickles are there:
/// reading those would mean unpickling arbitrary files.
fn weights_file(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("model.safetensors");
    if path.is_file() {
        return Ok(path);
    }
    let shown = dir.display();
    if dir.join("pytorch_model.bin").is_file() {
        Err(format!(
            "BERT model folder {shown} has no model.safetensors, only pytorch_model.bin, which is \
             not read; convert it to safetensors (e.g. with the Python safetensors package)"
        ))
    } else {
        Err(format!(
            "BERT model folder {shown} has no model.safetensors"
        ))
    }
}

/// Parses and checks config.json: the checks turn what would otherwise be shape errors deep in
/// tensor loading, or a failure on the first request, into a message about the file.
fn parse_config(text: &str) -> Result<Config, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    match config.model_type.as_deref() {
        None | Some("bert") => {}
        Some(kind) => {
            return Err(format!(
                "model_type is {kind:?}; only \"bert\" models are supported"
            ));
        }
    }
    let positive = [
        ("hidden_size", config.hidden_size),
        ("num_hidden_layers", config.num_hidden_layers),
        ("num_attention_heads", config.num_attention_heads),
        ("intermediate_size", config.intermediate_size),
        ("vocab_size", config.vocab_size),
        ("max_position_embeddings", config.max_position_embeddings),
        ("type_vocab_size", config.type_vocab_size),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{name} is 0"));
    }
    if config.hidden_size % config.num_attention_heads != 0 {
        return Err(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        ));
    }
    Ok(config)
}

/// The token window: the position table's size, narrowed by sentence-transformers'
/// `max_seq_length` where that file is present, as sentence-transformers itself does.
fn window(dir: &Path, config: &Config) -> Result<usize, String> {
    let shown = dir.display();
    let mut max_tokens = config.max_position_embeddings;
    let st_path = dir.join("sentence_bert_config.json");
    if st_path.is_file() {
        let text = std::fs::read_to_string(&st_path).map_err(|e| {
            format!("BERT model folder {shown}: cannot read sentence_bert_config.json: {e}")
        })?;
        let st: SentenceBertConfig = serde_json::from_str(&text).map_err(|e| {
            format!("BERT model folder {shown}: sentence_bert_config.json is malformed: {e}")
        })?;
        if let Some(n) = st.max_seq_length {
            max_tokens = max_tokens.min(n);
        }
    }
    if max_tokens < MIN_WINDOW {
        return Err(format!(
            "BERT model folder {shown}: a window of {max_tokens} tokens (max_position_embeddings \
             or max_seq_length) is too small; at least {MIN_WINDOW} are needed"
        ));
    }
    Ok(max_tokens)
}

/// The longest prefix of `text` within `budget` bytes, ending on a char boundary and, where one
/// is near, on whitespace, so that the last word is not split into different word pieces.
fn cut(text: &str, budget: usize) -> &str {
    if text.len() <= budget {
        return text;
    }
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &text[..end];
    match prefix.rfind(char::is_whitespace) {
        Some(i) if i >= end / 2 => &prefix[..i],
        _ => prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_char_boundaries() {
        assert_eq!(cut("hello world", 100), "hello world");
        assert_eq!(cut("hello world", 8), "hello");
        assert_eq!(cut("ééééé", 5), "éé");
        assert_eq!(cut("abcdefgh", 4), "abcd");
        assert_eq!(cut("", 0), "");
        assert_eq!(cut("é", 0), "");
    }

    fn config_json(key: &str, value: serde_json::Value) -> String {
        let mut config = serde_json::json!({
            "vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "model_type": "bert"
        });
        config[key] = value;
        config.to_string()
    }

    #[test]
    fn config_checks() {
        use serde_json::json;
        assert!(parse_config(&config_json("hidden_act", json!("gelu"))).is_ok());
        let err = parse_config(&config_json("hidden_act", json!("swish"))).unwrap_err();
        assert!(err.contains("hidden_act"), "{err}");
        let err = parse_config(&config_json("model_type", json!("roberta"))).unwrap_err();
        assert!(err.contains("roberta"), "{err}");
        let err = parse_config(&config_json("num_attention_heads", json!(3))).unwrap_err();
        assert!(err.contains("multiple"), "{err}");
        let err = parse_config(&config_json("hidden_size", json!(0))).unwrap_err();
        assert!(err.contains("hidden_size is 0"), "{err}");
        let err = parse_config(&config_json("vocab_size", json!("many"))).unwrap_err();
        assert!(err.contains("vocab_size"), "{err}");
        let err = parse_config(r#"{"hidden_size": 8}"#).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
    }
}
