//! The embedders as the semantic layer builds them: from a routing table on disk, with relative
//! model paths, and against a loopback OpenAI-compatible upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Mock, PROVIDER_KEY, Reply};
use serde_json::{Value, json};
use std::path::Path;
use switchyard::config::Config;
use switchyard::embed::{Embedder, cosine, static_testing};

fn table(upstream: &str, embedder: &str) -> String {
    format!(
        r#"
providers:
  up:
    kind: openai
    base_url: "{upstream}"
    api_key: "{PROVIDER_KEY}"
models:
  - {{ name: cheap, provider: up, model: cheap-up, price: {{ input: 0.15, output: 0.6 }} }}
  - {{ name: strong, provider: up, model: strong-up, price: {{ input: 5, output: 15 }} }}
tiers:
  budget: {{ models: [cheap] }}
  premium: {{ models: [strong] }}
routing:
  default: budget
  semantic:
{embedder}
    utterances:
      budget: [summarize this article, translate this email to French]
      premium: [prove this theorem, design a distributed database]
"#
    )
}

fn build(cfg: &Config, base: &Path) -> Result<Embedder, String> {
    let semantic = cfg.routing.semantic.as_ref().unwrap();
    Embedder::build(
        &semantic.embedder,
        &cfg.providers,
        &reqwest::Client::new(),
        base,
    )
}

fn embeddings(vectors: &[&[f32]]) -> Reply {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    Reply::Json {
        status: 200,
        body: json!({"object": "list", "data": data}),
        headers: vec![],
    }
}

#[tokio::test]
async fn a_table_that_names_no_embedder_gets_the_builtin_model() {
    let cfg = Config::from_yaml(&table("http://127.0.0.1:9/v1", ""), "t.yaml").unwrap();
    let e = build(&cfg, Path::new(".")).unwrap();
    assert_eq!(e.name(), "builtin");
    let v = e
        .embed_batch(&["summarize this article", "prove this theorem"])
        .await
        .unwrap();
    // Raw cosines of a static model sit in a narrow band (the semantic layer centres them); the
    // order is what must hold.
    let p = e
        .embed("give me a brief summary of the text")
        .await
        .unwrap();
    assert!(cosine(&p, &v[0]) > cosine(&p, &v[1]));
    let q = e.embed("prove that this lemma is true").await.unwrap();
    assert!(cosine(&q, &v[1]) > cosine(&q, &v[0]));
}

#[tokio::test]
async fn hashed_ngrams_is_there_when_named() {
    let cfg = Config::from_yaml(
        &table(
            "http://127.0.0.1:9/v1",
            "    embedder: { kind: hashed-ngrams }",
        ),
        "t.yaml",
    )
    .unwrap();
    let e = build(&cfg, Path::new(".")).unwrap();
    assert_eq!(e.name(), "hashed-ngrams");
    let v = e
        .embed_batch(&["summarize this article", "prove this theorem"])
        .await
        .unwrap();
    let p = e.embed("give me a summary of the text").await.unwrap();
    assert!(cosine(&p, &v[0]) > cosine(&p, &v[1]) + 0.1);
}

#[tokio::test]
async fn static_model_path_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/tiny");
    std::fs::create_dir_all(&model).unwrap();
    static_testing::write_model(&model).unwrap();
    let file = dir.path().join("switchyard.yaml");
    std::fs::write(
        &file,
        table(
            "http://127.0.0.1:9/v1",
            "    embedder: { kind: static, path: models/tiny }",
        ),
    )
    .unwrap();
    let cfg = Config::load(&file).unwrap();
    let e = build(&cfg, file.parent().unwrap()).unwrap();
    assert_eq!(e.name(), "static");
    assert_eq!(e.dims(), Some(static_testing::DIMS));
    let v = e
        .embed_batch(&["summarize this article", "prove this theorem"])
        .await
        .unwrap();
    let p = e.embed("a summary of the text").await.unwrap();
    assert!(cosine(&p, &v[0]) > cosine(&p, &v[1]) + 0.5);

    // Started from elsewhere, the same table still finds nothing there: the message says where
    // it looked.
    let err = build(&cfg, Path::new("/somewhere/else")).unwrap_err();
    assert!(err.contains("/somewhere/else/models/tiny"), "{err}");
}

#[tokio::test]
async fn openai_embedder_calls_the_provider_once_per_distinct_prompt() {
    let mock = Mock::start().await;
    let model = "text-embedding-3-small";
    let cfg = Config::from_yaml(
        &table(
            &mock.url(),
            &format!("    embedder: {{ kind: openai, provider: up, model: {model}, timeout: 1s }}"),
        ),
        "t.yaml",
    )
    .unwrap();
    let e = build(&cfg, Path::new(".")).unwrap();
    assert_eq!((e.name(), e.dims()), ("openai", None));

    mock.on(model, embeddings(&[&[3.0, 4.0], &[0.0, 2.0]]));
    let v = e.embed_batch(&["first", "second", "first"]).await.unwrap();
    assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0], vec![0.6, 0.8]]);
    assert_eq!(e.dims(), Some(2));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/embeddings");
    assert_eq!(
        reqs[0].headers["authorization"],
        format!("Bearer {PROVIDER_KEY}").as_str()
    );
    assert_eq!(reqs[0].body["input"], json!(["first", "second"]));
    assert_eq!(reqs[0].body["model"], model);

    // Cached: no new call.
    assert_eq!(e.embed("second").await.unwrap(), vec![0.0, 1.0]);
    assert_eq!(mock.calls_for(model), 1);

    // An upstream error that echoes the key: reported, key masked, nothing cached.
    mock.on(
        model,
        Reply::Json {
            status: 401,
            body: json!({"error": {"message": format!("Incorrect API key provided: {PROVIDER_KEY}")}}),
            headers: vec![],
        },
    );
    let err = e.embed("third").await.unwrap_err().to_string();
    assert!(err.contains("authentication (401)"), "{err}");
    assert!(!err.contains(PROVIDER_KEY), "{err}");
    mock.on(model, embeddings(&[&[1.0, 0.0]]));
    assert_eq!(e.embed("third").await.unwrap(), vec![1.0, 0.0]);
    assert_eq!(mock.calls_for(model), 3);

    // A chat completion where an embedding list belongs: a malformed answer, not a crash.
    let err = e.embed("fourth").await.unwrap_err().to_string();
    assert!(err.contains("no `data` array"), "{err}");
}
