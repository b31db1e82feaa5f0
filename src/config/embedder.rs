//! `embedder:` as the semantic and learned layers name one. Kept apart from the schema so that
//! both layers' sections can import it without importing each other.

use super::Dur;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderKind {
    /// The static model compiled into switchyard (distilled from all-MiniLM-L6-v2).
    #[default]
    Builtin,
    /// Character n-grams hashed into a fixed-size vector: no weights, no download.
    HashedNgrams,
    /// A model2vec-format static embedding model from a local folder.
    Static,
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
    /// A BERT-family sentence encoder run in-process (cargo feature `bert`).
    Bert,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    #[serde(default)]
    pub kind: EmbedderKind,
    /// hashed-ngrams: vector size; builtin, static: checked against the model's.
    #[serde(default)]
    pub dims: Option<usize>,
    /// static / bert: the model folder (relative paths are relative to the config file).
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// openai: a provider from `providers` whose base_url and key to use.
    #[serde(default)]
    pub provider: Option<Spanned<String>>,
    /// openai: the embedding model id.
    #[serde(default)]
    pub model: Option<String>,
    /// openai: how many prompt embeddings to keep in memory.
    #[serde(default)]
    pub cache_size: Option<usize>,
    /// openai: limit per embedding call; on timeout the semantic layer abstains.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Any kind but hashed-ngrams: the weight of hashed character n-grams appended to the model's
    /// vector (0 or absent: none).
    #[serde(default)]
    pub ngrams: Option<f32>,
}
