//! Text embeddings for the semantic routing layer. Every embedder returns L2-normalised vectors,
//! so cosine similarity is a dot product.
//!
//! The embedders are an enum, like the providers: a small closed set, and async calls without boxing.

#[cfg(feature = "bert")]
mod bert;
mod hashed;

#[cfg(feature = "bert")]
pub use bert::BertEmbedder;
pub use hashed::HashedNgrams;

use crate::config::{EmbedderConfig, EmbedderKind, ProviderConfig};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedError(pub String);

impl std::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EmbedError {}

pub enum Embedder {
    Hashed(HashedNgrams),
}

impl Embedder {
    /// `base_dir` is the config file's folder, against which relative model paths resolve.
    pub fn build(
        cfg: &EmbedderConfig,
        _providers: &BTreeMap<String, ProviderConfig>,
        _http: &reqwest::Client,
        _base_dir: &Path,
    ) -> Result<Embedder, String> {
        match cfg.kind {
            EmbedderKind::HashedNgrams => Ok(Embedder::Hashed(HashedNgrams::new(
                cfg.dims.unwrap_or(HashedNgrams::DEFAULT_DIMS),
            ))),
            other => Err(format!("embedder kind {other:?} is not available yet")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Embedder::Hashed(_) => "hashed-ngrams",
        }
    }

    /// Embeds several texts (utterances at start-up: batched where the backend allows).
    pub async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Embedder::Hashed(h) => Ok(texts.iter().map(|t| h.embed(t)).collect()),
        }
    }

    /// Embeds one prompt, on the request path.
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        match self {
            Embedder::Hashed(h) => Ok(h.embed(text)),
        }
    }
}

/// Dot product of two normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
