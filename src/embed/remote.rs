//! Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Azure OpenAI, vLLM,
//! Ollama, TEI…), through a provider already configured for chat.
//!
//! This is a network call on the request path, so two things keep it cheap: an LRU cache, because
//! clients resend the same prompts (retries, agents looping over a fixed system prompt), and a
//! short time limit, after which the semantic layer abstains rather than delaying the request.

use super::EmbedError;
use crate::config::{EmbedderConfig, ProviderConfig, ProviderKind};
use crate::providers::{ErrorKind, ProviderError, read_json, send};
use crate::redact::Redactor;
use lru::LruCache;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const DEFAULT_CACHE_SIZE: usize = 10_000;
/// Routing must not cost noticeable latency; a slow embedding service costs an abstention instead.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Inputs per request. OpenAI takes 2,048, but self-hosted servers often cap lower, and utterance
/// lists are rarely larger than this anyway.
const MAX_BATCH: usize = 128;

pub struct RemoteEmbedder {
    /// Provider and model, for error messages.
    label: String,
    model: String,
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    /// Vector size: configured, or learned from the first answer (0 until then). Every later answer
    /// must match, or vectors from two answers would be compared across different spaces.
    dims: AtomicUsize,
    /// `None` when `cache_size` is 0.
    cache: Option<Mutex<LruCache<String, Vec<f32>>>>,
    /// Upstream error bodies sometimes echo the key they were sent.
    redactor: Redactor,
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEmbedder")
            .field("label", &self.label)
            .field("url", &self.url.path())
            .finish_non_exhaustive()
    }
}

impl RemoteEmbedder {
    pub fn new(
        cfg: &EmbedderConfig,
        providers: &BTreeMap<String, ProviderConfig>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let Some(name) = &cfg.provider else {
            return Err(
                "semantic.embedder: kind openai needs `provider`, a name from `providers`".into(),
            );
        };
        let name = &name.value;
        let Some(pcfg) = providers.get(name) else {
            return Err(format!(
                "semantic.embedder.provider: there is no provider named {name:?}"
            ));
        };
        if !matches!(pcfg.kind, ProviderKind::Openai | ProviderKind::Azure) {
            return Err(format!(
                "semantic.embedder.provider: provider {name:?} is of kind {:?}, which has no OpenAI-compatible embeddings endpoint (use an openai or azure provider)",
                pcfg.kind
            ));
        }
        let model = match cfg.model.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => {
                return Err(
                    "semantic.embedder: kind openai needs `model`, the embedding model id".into(),
                );
            }
        };
        if cfg.dims == Some(0) {
            return Err("semantic.embedder.dims must be at least 1".into());
        }

        let (url, headers) = crate::providers::openai::endpoint(name, pcfg, "embeddings")?;
        // Kept to scrub from error messages: an endpoint may echo what it was sent.
        let mut secrets: Vec<String> = pcfg
            .api_key
            .iter()
            .map(|k| k.0.clone())
            .filter(|k| !k.is_empty())
            .collect();
        secrets.extend(
            pcfg.headers
                .values()
                .map(|v| v.0.clone())
                .filter(|v| !v.is_empty()),
        );

        let cache = NonZeroUsize::new(cfg.cache_size.unwrap_or(DEFAULT_CACHE_SIZE))
            .map(|n| Mutex::new(LruCache::new(n)));
        Ok(RemoteEmbedder {
            label: format!("embedding provider {name} (model {model})"),
            model,
            http,
            url,
            headers,
            timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            dims: AtomicUsize::new(cfg.dims.unwrap_or(0)),
            cache,
            redactor: Redactor::new(&secrets),
        })
    }

    /// The vector size, once known: configured, or after the first answer.
    pub fn dims(&self) -> Option<usize> {
        Some(self.dims.load(Ordering::Relaxed)).filter(|&d| d > 0)
    }

    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed_batch(&[text]).await?;
        out.pop()
            .ok_or_else(|| EmbedError(format!("{}: returned no vector", self.label)))
    }

    /// Cached texts are answered locally; the rest (each distinct text once) go out in batches.
    pub async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| self.cached(t)).collect();
        let mut missing: Vec<&str> = Vec::new();
        let mut position: HashMap<&str, usize> = HashMap::new();
        for (t, v) in texts.iter().zip(&out) {
            if v.is_none() && !t.trim().is_empty() && !position.contains_key(t) {
                position.insert(t, missing.len());
                missing.push(t);
            }
        }
        let mut fetched: Vec<Vec<f32>> = Vec::with_capacity(missing.len());
        for chunk in missing.chunks(MAX_BATCH) {
            fetched.extend(self.fetch(chunk).await?);
        }
        if let Some(cache) = &self.cache {
            let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
            for (t, v) in missing.iter().zip(&fetched) {
                c.put((*t).to_string(), v.clone());
            }
        }
        for (t, slot) in texts.iter().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            if let Some(&i) = position.get(t) {
                *slot = fetched.get(i).cloned();
            } else {
                // Blank text: the endpoints reject empty input, and it has no meaning to match.
                *slot = Some(vec![
                    0.0;
                    self.dims().ok_or_else(|| {
                        EmbedError(format!(
                            "{}: cannot embed an empty text before the vector size is known",
                            self.label
                        ))
                    })?
                ]);
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| EmbedError(format!("{}: a vector is missing", self.label))))
            .collect()
    }

    fn cached(&self, text: &str) -> Option<Vec<f32>> {
        let cache = self.cache.as_ref()?;
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(text).cloned()
    }

    async fn fetch(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::json!({
            "model": self.model,
            "input": inputs,
            // Asked for explicitly: some SDK-facing servers default to base64.
            "encoding_format": "float",
        });
        let req = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .json(&body);
        let call = async { read_json(send(req).await?).await };
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(self.error(&ProviderError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    ),
                )));
            }
            Ok(Err(e)) => return Err(self.error(&e)),
            Ok(Ok(v)) => v,
        };
        self.parse(&answer, inputs.len())
    }

    /// Checks the answer against what was asked: one finite vector per input, each index once, all
    /// of the same (expected) size.
    fn parse(&self, answer: &Value, n: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let bad =
            |what: String| EmbedError(self.redactor.redact(&format!("{}: {what}", self.label)));
        let Some(data) = answer.get("data").and_then(Value::as_array) else {
            return Err(bad("the answer has no `data` array".into()));
        };
        if data.len() != n {
            return Err(bad(format!(
                "asked for {n} vectors, the answer has {}",
                data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for (pos, item) in data.iter().enumerate() {
            let index = match item.get("index") {
                None => pos,
                Some(i) => match i.as_u64().and_then(|i| usize::try_from(i).ok()) {
                    Some(i) if i < n => i,
                    _ => return Err(bad(format!("item {pos} has an invalid `index` {i}"))),
                },
            };
            let Some(values) = item.get("embedding").and_then(Value::as_array) else {
                return Err(bad(format!(
                    "item {pos} has no `embedding` array of numbers"
                )));
            };
            let mut v = Vec::with_capacity(values.len());
            for x in values {
                match x.as_f64() {
                    Some(f) if f.is_finite() => v.push(f as f32),
                    _ => {
                        return Err(bad(format!(
                            "item {pos}'s embedding holds {x}, not a finite number"
                        )));
                    }
                }
            }
            if v.is_empty() {
                return Err(bad(format!("item {pos}'s embedding is empty")));
            }
            self.check_dims(v.len()).map_err(bad)?;
            super::normalize(&mut v);
            if out[index].replace(v).is_some() {
                return Err(bad(format!("index {index} appears twice")));
            }
        }
        out.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("the answer skips some indexes".into()))
    }

    fn check_dims(&self, got: usize) -> Result<(), String> {
        match self
            .dims
            .compare_exchange(0, got, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(want) if want == got => Ok(()),
            Err(want) => Err(format!(
                "returned {got}-dimensional vectors, expected {want}"
            )),
        }
    }

    fn error(&self, e: &ProviderError) -> EmbedError {
        EmbedError(self.redactor.redact(&format!("{}: {e}", self.label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use axum::Json;
    use axum::extract::State;
    use axum::http::{HeaderMap as AxHeaders, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use std::sync::Arc;

    const KEY: &str = "sk-embed-secret-0123456789";

    /// One request as the mock saw it.
    #[derive(Clone, Debug)]
    struct Seen {
        uri: String,
        headers: AxHeaders,
        body: Value,
    }

    #[derive(Clone, Copy)]
    enum Mode {
        /// Vectors derived from the text: [len, vowels, 1], in reverse order of `index`.
        Ok,
        Status(u16),
        Garbage,
        Slow,
        WrongDims,
        EchoKey,
        Missing,
    }

    struct Mock {
        seen: Mutex<Vec<Seen>>,
        mode: Mutex<Mode>,
    }

    fn vector_for(text: &str) -> Vec<f32> {
        let vowels = text.chars().filter(|c| "aeiou".contains(*c)).count();
        vec![text.len() as f32, vowels as f32, 1.0]
    }

    async fn handle(
        State(m): State<Arc<Mock>>,
        uri: Uri,
        headers: AxHeaders,
        Json(body): Json<Value>,
    ) -> Response {
        m.seen.lock().unwrap().push(Seen {
            uri: uri.to_string(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let mode = *m.mode.lock().unwrap();
        let inputs: Vec<String> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| {
                let mut v = vector_for(t);
                if matches!(mode, Mode::WrongDims) {
                    v.push(0.0);
                }
                serde_json::json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        match mode {
            Mode::Ok | Mode::WrongDims => {
                Json(serde_json::json!({"object": "list", "model": body["model"], "data": data}))
                    .into_response()
            }
            Mode::Status(s) => (
                StatusCode::from_u16(s).unwrap(),
                Json(serde_json::json!({"error": {"message": "upstream says no", "type": "server_error"}})),
            )
                .into_response(),
            Mode::Garbage => "this is not json".into_response(),
            Mode::Slow => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Json(serde_json::json!({"data": data})).into_response()
            }
            Mode::EchoKey => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}})),
            )
                .into_response(),
            Mode::Missing => Json(serde_json::json!({"data": data[..data.len() - 1]})).into_response(),
        }
    }

    async fn start_mock() -> (Arc<Mock>, String) {
        let m = Arc::new(Mock {
            seen: Mutex::new(Vec::new()),
            mode: Mutex::new(Mode::Ok),
        });
        let app = axum::Router::new()
            .fallback(axum::routing::post(handle))
            .with_state(m.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (m, format!("http://{addr}/v1"))
    }

    fn provider_yaml(kind: &str, base: &str) -> ProviderConfig {
        let yaml = format!(
            "kind: {kind}\nbase_url: {base}\napi_key: {KEY}\napi_version: 2024-10-21\nheaders:\n  X-Team: routing\n"
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn embedder_cfg(extra: &str) -> EmbedderConfig {
        let yaml = format!("kind: openai\nprovider: up\nmodel: text-embedding-3-small\n{extra}");
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn build(kind: &str, base: &str, extra: &str) -> RemoteEmbedder {
        let providers = BTreeMap::from([("up".to_string(), provider_yaml(kind, base))]);
        RemoteEmbedder::new(&embedder_cfg(extra), &providers, reqwest::Client::new()).unwrap()
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::embed::normalize(&mut v);
        v
    }

    #[tokio::test]
    async fn sends_the_openai_request_shape_and_bearer_key() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "");
        assert_eq!(e.dims(), None);
        let v = e.embed("hello").await.unwrap();
        assert_eq!(v, unit(&vector_for("hello")));
        assert_eq!(e.dims(), Some(3));

        let seen = mock.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].uri, "/v1/embeddings");
        assert_eq!(
            seen[0].headers["authorization"],
            format!("Bearer {KEY}").as_str()
        );
        assert_eq!(seen[0].headers["x-team"], "routing");
        assert_eq!(
            seen[0].body,
            serde_json::json!({"model": "text-embedding-3-small", "input": ["hello"], "encoding_format": "float"})
        );
    }

    #[tokio::test]
    async fn azure_uses_api_key_header_and_api_version() {
        let (mock, base) = start_mock().await;
        let e = build("azure", &format!("{base}/openai/deployments/emb"), "");
        e.embed("hi").await.unwrap();
        let seen = mock.seen.lock().unwrap().clone();
        assert_eq!(
            seen[0].uri,
            "/v1/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        assert_eq!(seen[0].headers["api-key"], KEY);
        assert!(seen[0].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn batches_in_order_deduplicated_and_chunked() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "");
        let texts = ["one", "two", "one", "three"];
        let out = e.embed_batch(&texts).await.unwrap();
        // The mock answers in reverse order; `index` puts them back.
        for (t, v) in texts.iter().zip(&out) {
            assert_eq!(v, &unit(&vector_for(t)));
        }
        {
            let seen = mock.seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(
                seen[0].body["input"],
                serde_json::json!(["one", "two", "three"])
            );
        }

        let many: Vec<String> = (0..300).map(|i| format!("utterance {i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let out = e.embed_batch(&refs).await.unwrap();
        assert_eq!(out.len(), 300);
        assert_eq!(out[299], unit(&vector_for("utterance 299")));
        let sizes: Vec<usize> = mock.seen.lock().unwrap()[1..]
            .iter()
            .map(|s| s.body["input"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![128, 128, 44]);
    }

    #[tokio::test]
    async fn repeated_prompts_are_served_from_the_cache() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "cache_size: 2\n");
        let calls = || mock.seen.lock().unwrap().len();
        e.embed("alpha").await.unwrap();
        e.embed("alpha").await.unwrap();
        assert_eq!(calls(), 1);
        // A batch with one cached and one new text asks only for the new one.
        e.embed_batch(&["alpha", "beta"]).await.unwrap();
        assert_eq!(calls(), 2);
        assert_eq!(
            mock.seen.lock().unwrap()[1].body["input"],
            serde_json::json!(["beta"])
        );
        // Capacity 2: "gamma" evicts the least recently used ("alpha").
        e.embed("gamma").await.unwrap();
        e.embed("beta").await.unwrap();
        assert_eq!(calls(), 3);
        e.embed("alpha").await.unwrap();
        assert_eq!(calls(), 4);

        let off = build("openai", &base, "cache_size: 0\n");
        off.embed("alpha").await.unwrap();
        off.embed("alpha").await.unwrap();
        assert_eq!(calls(), 6);
    }

    #[tokio::test]
    async fn errors_are_classified_and_never_show_the_key() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "timeout: 200ms\n");
        let set = |m: Mode| *mock.mode.lock().unwrap() = m;
        let cases = [
            (Mode::Status(503), "server_error (503): upstream says no"),
            (Mode::Status(429), "rate_limit (429)"),
            (Mode::Garbage, "not valid JSON"),
            (Mode::Slow, "timeout: no answer within 200ms"),
            (Mode::EchoKey, "Incorrect API key provided: [redacted]"),
            (Mode::Missing, "asked for 1 vectors, the answer has 0"),
        ];
        for (mode, want) in cases {
            set(mode);
            let err = e.embed("hello").await.unwrap_err().0;
            assert!(err.contains(want), "want {want:?}: {err}");
            assert!(
                err.contains("embedding provider up (model text-embedding-3-small)"),
                "{err}"
            );
            assert!(!err.contains(KEY), "{err}");
        }
        // Nothing failed was cached.
        set(Mode::Ok);
        assert!(e.embed("hello").await.is_ok());
    }

    #[tokio::test]
    async fn vector_size_must_stay_the_same() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "dims: 4\n");
        let err = e.embed("x").await.unwrap_err().0;
        assert!(
            err.contains("returned 3-dimensional vectors, expected 4"),
            "{err}"
        );

        let e = build("openai", &base, "");
        e.embed("x").await.unwrap();
        *mock.mode.lock().unwrap() = Mode::WrongDims;
        let err = e.embed("y").await.unwrap_err().0;
        assert!(
            err.contains("returned 4-dimensional vectors, expected 3"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn blank_texts_are_not_sent() {
        let (mock, base) = start_mock().await;
        let e = build("openai", &base, "");
        assert!(e.embed("  ").await.unwrap_err().0.contains("empty text"));
        let out = e.embed_batch(&["a", ""]).await.unwrap();
        assert_eq!(out[1], vec![0.0; 3]);
        assert_eq!(mock.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn malformed_items_are_rejected() {
        let e = build("openai", "http://127.0.0.1:9", "");
        let p = |v: Value| e.parse(&v, 2).unwrap_err().0;
        assert!(p(serde_json::json!({})).contains("no `data` array"));
        assert!(
            p(serde_json::json!({"data": [{"embedding": [1]}, {"embedding": "AAAA"}]}))
                .contains("item 1 has no `embedding`")
        );
        assert!(
            p(serde_json::json!({"data": [{"embedding": [1]}, {"embedding": [null]}]}))
                .contains("not a finite number")
        );
        assert!(p(serde_json::json!({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [1]}]})).contains("appears twice"));
        assert!(p(serde_json::json!({"data": [{"index": 0, "embedding": [1]}, {"index": 7, "embedding": [1]}]})).contains("invalid `index` 7"));
        assert!(
            p(serde_json::json!({"data": [{"embedding": []}, {"embedding": []}]}))
                .contains("is empty")
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_a_connection_error() {
        // Bind then drop a listener: the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = build("openai", &format!("http://127.0.0.1:{port}/v1"), "");
        let err = e.embed("x").await.unwrap_err().0;
        assert!(err.contains("could not connect"), "{err}");
    }

    #[test]
    fn config_mistakes_are_explained() {
        let providers = BTreeMap::from([
            (
                "up".to_string(),
                provider_yaml("openai", "http://127.0.0.1:1/v1"),
            ),
            (
                "claude".to_string(),
                serde_saphyr::from_str("kind: anthropic\n").unwrap(),
            ),
        ]);
        let err = |extra: &str, base: &str| {
            let cfg: EmbedderConfig =
                serde_saphyr::from_str(&format!("kind: openai\n{base}{extra}")).unwrap();
            RemoteEmbedder::new(&cfg, &providers, reqwest::Client::new()).unwrap_err()
        };
        assert!(err("", "model: m\n").contains("needs `provider`"));
        assert!(err("", "provider: nope\nmodel: m\n").contains("no provider named \"nope\""));
        assert!(
            err("", "provider: claude\nmodel: m\n")
                .contains("no OpenAI-compatible embeddings endpoint")
        );
        assert!(err("", "provider: up\n").contains("needs `model`"));
        assert!(err("dims: 0\n", "provider: up\nmodel: m\n").contains("dims must be at least 1"));
        let cfg = embedder_cfg("timeout: 150ms\n");
        assert_eq!(cfg.timeout, Some(Dur::from_millis(150)));
    }
}
