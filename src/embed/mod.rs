//! Text embeddings for the semantic routing layer. Every embedder returns L2-normalised vectors,
//! so cosine similarity is a dot product.
//!
//! The embedders are an enum, like the providers: a small closed set, and async calls without boxing.
//!
//! Must not import `routing` (routing imports embed).

#[cfg(feature = "bert")]
mod bert;
mod builtin;
#[cfg(feature = "bert")]
pub mod distill;
mod hashed;
mod remote;
mod static_model;
mod wordpiece;

#[cfg(feature = "bert")]
pub use bert::BertEmbedder;
pub use builtin::{model as builtin_model, parse as parse_builtin_model};
pub use hashed::HashedNgrams;
pub use remote::RemoteEmbedder;
pub use static_model::{StaticModel, testing as static_testing};

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

#[derive(Debug)]
pub enum Embedder {
    Hashed(HashedNgrams),
    /// Shared: the built-in model is parsed once per process and outlives config reloads.
    Builtin(std::sync::Arc<StaticModel>),
    Static(std::sync::Arc<StaticModel>),
    Remote(Box<RemoteEmbedder>),
    /// Shared so the CPU-heavy forward pass can run on the blocking pool.
    #[cfg(feature = "bert")]
    Bert(std::sync::Arc<BertEmbedder>),
    /// A model's vector with hashed character n-grams appended at a weight (`ngrams:`): the
    /// model's averaged token vectors say what a text is about, the n-grams which words and word
    /// forms it shares with an utterance; on the routing labels the two together beat either.
    WithNgrams(Box<Embedder>, HashedNgrams, f32),
}

impl Embedder {
    /// `base_dir` is the config file's folder, against which relative model paths resolve.
    pub fn build(
        cfg: &EmbedderConfig,
        providers: &BTreeMap<String, ProviderConfig>,
        http: &reqwest::Client,
        base_dir: &Path,
    ) -> Result<Embedder, String> {
        let base = Self::build_model(cfg, providers, http, base_dir)?;
        match cfg.ngrams {
            None => Ok(base),
            Some(0.0) => Ok(base),
            Some(w) if !(w.is_finite() && w > 0.0 && w <= 10.0) => Err(format!(
                "semantic.embedder.ngrams is {w}: a weight between 0 and 10"
            )),
            Some(_) if cfg.kind == EmbedderKind::HashedNgrams => Err(
                "semantic.embedder.ngrams: kind hashed-ngrams is n-grams already; `ngrams` adds them to a model".into(),
            ),
            Some(w) => Ok(Embedder::WithNgrams(
                Box::new(base),
                HashedNgrams::new(HashedNgrams::DEFAULT_DIMS),
                w,
            )),
        }
    }

    fn build_model(
        cfg: &EmbedderConfig,
        providers: &BTreeMap<String, ProviderConfig>,
        http: &reqwest::Client,
        base_dir: &Path,
    ) -> Result<Embedder, String> {
        match cfg.kind {
            EmbedderKind::Builtin => {
                if cfg.path.is_some() {
                    return Err(
                        "semantic.embedder: kind builtin is compiled in and takes no `path` (for a model folder, use kind static)"
                            .into(),
                    );
                }
                let model = builtin::model()?;
                if let Some(d) = cfg.dims.filter(|&d| d != model.dims()) {
                    return Err(format!(
                        "semantic.embedder.dims is {d}, but the built-in model has {} dimensions",
                        model.dims()
                    ));
                }
                Ok(Embedder::Builtin(model))
            }
            EmbedderKind::HashedNgrams => {
                if cfg.dims == Some(0) {
                    return Err("semantic.embedder.dims must be at least 1".into());
                }
                Ok(Embedder::Hashed(HashedNgrams::new(
                    cfg.dims.unwrap_or(HashedNgrams::DEFAULT_DIMS),
                )))
            }
            EmbedderKind::Static => {
                let Some(path) = &cfg.path else {
                    return Err(
                        "semantic.embedder: kind static needs `path`, the model2vec model folder"
                            .into(),
                    );
                };
                let model = StaticModel::load(&path.value, base_dir)?;
                if let Some(d) = cfg.dims.filter(|&d| d != model.dims()) {
                    return Err(format!(
                        "semantic.embedder.dims is {d}, but the model at {} has {} dimensions",
                        path.value,
                        model.dims()
                    ));
                }
                Ok(Embedder::Static(std::sync::Arc::new(model)))
            }
            EmbedderKind::Openai => Ok(Embedder::Remote(Box::new(RemoteEmbedder::new(
                cfg,
                providers,
                http.clone(),
            )?))),
            #[cfg(feature = "bert")]
            EmbedderKind::Bert => {
                let Some(path) = &cfg.path else {
                    return Err(
                        "semantic.embedder: kind bert needs `path`, the model folder".into(),
                    );
                };
                Ok(Embedder::Bert(std::sync::Arc::new(BertEmbedder::load(
                    &base_dir.join(&path.value),
                )?)))
            }
            #[cfg(not(feature = "bert"))]
            EmbedderKind::Bert => Err(
                "embedder kind bert is not available in this build (cargo feature `bert`)".into(),
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Embedder::Builtin(_) => builtin::NAME,
            Embedder::Hashed(_) => "hashed-ngrams",
            Embedder::Static(_) => "static",
            Embedder::Remote(_) => "openai",
            #[cfg(feature = "bert")]
            Embedder::Bert(_) => "bert",
            Embedder::WithNgrams(inner, _, _) => inner.name(),
        }
    }

    /// The vector size. `None` only for a remote embedder with no configured `dims` that has not
    /// answered yet: after the start-up `embed_batch` of the utterances it is known.
    pub fn dims(&self) -> Option<usize> {
        match self {
            Embedder::Hashed(h) => Some(h.dims()),
            Embedder::Builtin(s) | Embedder::Static(s) => Some(s.dims()),
            Embedder::Remote(r) => r.dims(),
            #[cfg(feature = "bert")]
            Embedder::Bert(b) => Some(b.dims()),
            Embedder::WithNgrams(inner, h, _) => inner.dims().map(|d| d + h.dims()),
        }
    }

    /// Embeds several texts (utterances at start-up: batched where the backend allows).
    pub async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Embedder::Hashed(h) => Ok(texts.iter().map(|t| h.embed(t)).collect()),
            Embedder::Builtin(s) | Embedder::Static(s) => {
                texts.iter().map(|t| s.embed(t)).collect()
            }
            Embedder::Remote(r) => r.embed_batch(texts).await,
            #[cfg(feature = "bert")]
            Embedder::Bert(b) => {
                let b = b.clone();
                let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
                blocking(move || {
                    b.embed_batch(&owned.iter().map(String::as_str).collect::<Vec<_>>())
                })
                .await
            }
            Embedder::WithNgrams(inner, h, w) => {
                let vs = Box::pin(inner.embed_batch(texts)).await?;
                Ok(vs
                    .into_iter()
                    .zip(texts)
                    .map(|(v, t)| with_ngrams(v, h, *w, t))
                    .collect())
            }
        }
    }

    /// Embeds one prompt, on the request path.
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        match self {
            Embedder::Hashed(h) => Ok(h.embed(text)),
            Embedder::Builtin(s) | Embedder::Static(s) => s.embed(text),
            Embedder::Remote(r) => r.embed(text).await,
            // Tens of milliseconds of CPU: off the async workers, so other requests keep flowing.
            #[cfg(feature = "bert")]
            Embedder::Bert(b) => {
                let b = b.clone();
                let text = text.to_string();
                blocking(move || b.embed(&text)).await
            }
            Embedder::WithNgrams(inner, h, w) => {
                let v = Box::pin(inner.embed(text)).await?;
                Ok(with_ngrams(v, h, *w, text))
            }
        }
    }
}

/// `v` (unit length) followed by the text's n-gram vector (unit length) times `w`, renormalised:
/// a dot product of two such vectors is `(model cosine + w² · n-gram cosine) / (1 + w²)`.
fn with_ngrams(mut v: Vec<f32>, h: &HashedNgrams, w: f32, text: &str) -> Vec<f32> {
    v.extend(h.embed(text).into_iter().map(|x| x * w));
    normalize(&mut v);
    v
}

#[cfg(feature = "bert")]
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, EmbedError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmbedError(format!("bert embedder task failed: {e}")))?
        .map_err(EmbedError)
}

/// Dot product of two normalised vectors (over the shorter length, should they differ).
///
/// Eight independent partial sums let the compiler vectorise the loop: a single running sum is a
/// serial chain of float additions it may not reorder, several times slower at the 100+ scores a
/// routing decision takes.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> EmbedderConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn build(yaml: &str, base: &Path) -> Result<Embedder, String> {
        Embedder::build(&cfg(yaml), &BTreeMap::new(), &reqwest::Client::new(), base)
    }

    #[test]
    fn cosine_matches_the_plain_dot_product() {
        for n in [0, 1, 7, 8, 9, 64, 513] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((cosine(&a, &b) - plain).abs() < 1e-4, "n={n}");
        }
        // Different lengths: the common prefix.
        assert_eq!(cosine(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
    }

    #[test]
    fn normalize_scales_to_unit_length_and_leaves_zero_alone() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0; 3];
        normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }

    #[tokio::test]
    async fn builtin_is_the_default_and_hashed_is_there_when_named() {
        let e = build("{}", Path::new("/")).unwrap();
        assert_eq!(e.name(), "builtin");
        let dims = builtin::model().unwrap().dims();
        assert_eq!(e.dims(), Some(dims));
        assert!(build("kind: builtin\n", Path::new("/")).is_ok());
        let err = build("kind: builtin\npath: m\n", Path::new("/")).unwrap_err();
        assert!(err.contains("takes no `path`"), "{err}");
        let err = build("kind: builtin\ndims: 3\n", Path::new("/")).unwrap_err();
        assert!(err.contains(&format!("built-in model has {dims}")), "{err}");

        let e = build("kind: hashed-ngrams\n", Path::new("/")).unwrap();
        assert_eq!(e.name(), "hashed-ngrams");
        assert_eq!(e.dims(), Some(HashedNgrams::DEFAULT_DIMS));
        let e = build("kind: hashed-ngrams\ndims: 64\n", Path::new("/")).unwrap();
        assert_eq!(e.dims(), Some(64));
        let one = e.embed("summarize this").await.unwrap();
        let batch = e.embed_batch(&["summarize this", "x"]).await.unwrap();
        assert_eq!(batch[0], one);
        assert!(build("kind: hashed-ngrams\ndims: 0\n", Path::new("/")).is_err());
    }

    #[tokio::test]
    async fn static_builds_from_a_folder_relative_to_the_config() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("m")).unwrap();
        static_testing::write_model(&base.path().join("m")).unwrap();
        let e = build("kind: static\npath: m\n", base.path()).unwrap();
        assert_eq!(e.name(), "static");
        assert_eq!(e.dims(), Some(static_testing::DIMS));
        let v = e.embed_batch(&["cat", "theorem"]).await.unwrap();
        assert_eq!(v[0], e.embed("cat").await.unwrap());
        assert!(cosine(&v[0], &v[1]) < 0.1);

        let err = build("kind: static\n", base.path()).unwrap_err();
        assert!(err.contains("needs `path`"), "{err}");
        let err = build("kind: static\npath: m\ndims: 8\n", base.path()).unwrap_err();
        assert!(err.contains("dims is 8, but the model at m has 4"), "{err}");
        let err = build("kind: static\npath: nowhere\n", base.path()).unwrap_err();
        assert!(
            err.contains("nowhere") && err.contains("cannot open"),
            "{err}"
        );
    }

    #[test]
    fn openai_needs_a_provider_and_bert_needs_its_feature() {
        let err = build("kind: openai\nmodel: m\n", Path::new("/"))
            .err()
            .unwrap();
        assert!(err.contains("needs `provider`"), "{err}");
        let err = build("kind: bert\npath: x\n", Path::new("/"))
            .err()
            .unwrap();
        assert!(err.contains("feature `bert`"), "{err}");
    }

    #[tokio::test]
    async fn ngrams_append_spelling_to_a_model_and_are_checked() {
        let base = Path::new(".");
        let plain = build("kind: builtin", base).unwrap();
        let both = build("{ kind: builtin, ngrams: 0.4 }", base).unwrap();
        assert_eq!(
            both.dims(),
            Some(plain.dims().unwrap() + HashedNgrams::DEFAULT_DIMS)
        );
        let v = both.embed("summarise this").await.unwrap();
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(
            build("{ kind: builtin, ngrams: 0 }", base).unwrap().dims(),
            plain.dims()
        );
        for bad in ["-1", "11", ".nan"] {
            let e = build(&format!("{{ kind: builtin, ngrams: {bad} }}"), base).unwrap_err();
            assert!(e.contains("ngrams"), "{e}");
        }
        let e = build("{ kind: hashed-ngrams, ngrams: 0.4 }", base).unwrap_err();
        assert!(e.contains("n-grams already"), "{e}");
    }
}
