//! `switchyard distill`, through the real binary. With `--features bert` it runs end to end on
//! the real encoder (`SWITCHYARD_BERT_MODEL`, which CI installs) with the options the built-in
//! model was made with, and checks that the `static` embedder reading the result gives the
//! built-in model's vectors. Without the feature, the command says which feature it needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[cfg(not(feature = "bert"))]
#[test]
fn distill_without_the_bert_feature_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["distill", "--from", "nowhere", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`bert` feature") && err.contains("--features bert"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}

#[cfg(feature = "bert")]
mod with_bert {
    use super::bin;
    use std::path::Path;
    use switchyard::embed::{StaticModel, builtin_model, cosine};

    fn encoder() -> String {
        std::env::var("SWITCHYARD_BERT_MODEL")
            .expect("--features bert needs SWITCHYARD_BERT_MODEL (the all-MiniLM-L6-v2 folder)")
    }

    #[test]
    fn bad_options_and_folders_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let out = bin()
            .args(["distill", "--from", &encoder(), "--dims", "1000", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--dims 1000") && err.contains("384 dimensions"),
            "{err}"
        );

        let out = bin()
            .args(["distill", "--from"])
            .arg(dir.path().join("missing"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("missing") && err.contains("does not exist"),
            "{err}"
        );
        assert!(!dir.path().join("out").exists());
    }

    /// The full vocabulary: about a minute on two cores (the forward passes dominate).
    #[test]
    fn distill_on_the_real_encoder_reproduces_the_builtin_model() {
        let shipped = Path::new("src/embed/builtin");
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(shipped.join("config.json")).unwrap()).unwrap();
        let dims = cfg["pca_dims"].as_u64().unwrap().to_string();
        let quantize = cfg["quantize"].as_str().unwrap();
        let weighting = cfg["weighting"].as_str().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("distilled");
        let out = bin()
            .args(["distill", "--from", &encoder(), "--out"])
            .arg(&out_dir)
            .args([
                "--dims",
                &dims,
                "--quantize",
                quantize,
                "--weighting",
                weighting,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{stdout}");
        assert!(stdout.contains("distilled 30522 tokens"), "{stdout}");

        // The same tokenizer and settings as the shipped folder.
        assert_eq!(
            std::fs::read(out_dir.join("tokenizer.json")).unwrap(),
            std::fs::read(shipped.join("tokenizer.json")).unwrap()
        );
        let new_cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("config.json")).unwrap()).unwrap();
        for key in ["pca_dims", "quantize", "weighting", "hidden_dim", "pooling"] {
            assert_eq!(new_cfg[key], cfg[key], "config.json {key}");
        }

        // The static embedder reads it, and it gives the built-in model's vectors. Equal to
        // rounding rather than bit for bit: another CPU's SIMD may sum the encoder's products in
        // another order, which can move an int8 value by one step.
        let distilled = StaticModel::load(out_dir.to_str().unwrap(), Path::new(".")).unwrap();
        let builtin = builtin_model().unwrap();
        assert_eq!(distilled.dims(), builtin.dims());
        assert_eq!(distilled.is_int8(), builtin.is_int8());
        for text in [
            "summarize",
            "theorem",
            "kubernetes",
            "the",
            "give me the gist of this email thread",
            "Prove that the square root of 2 is irrational.",
            "Plan the migration of our database to PostgreSQL with no downtime.",
        ] {
            let (a, b) = (distilled.embed(text).unwrap(), builtin.embed(text).unwrap());
            let c = cosine(&a, &b);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(
                c > 0.999 && worst < 0.01,
                "{text:?}: cosine {c}, largest difference {worst}"
            );
        }
        let same = std::fs::read(out_dir.join("model.safetensors")).unwrap()
            == std::fs::read(shipped.join("model.safetensors")).unwrap();
        println!("model.safetensors identical to the shipped file: {same}");
    }
}
