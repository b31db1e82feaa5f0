//! `switchyard import litellm`: LiteLLM proxy configs in the shapes its documentation shows
//! (tests/data/litellm/), each imported, loaded by the real config loader and checked for the
//! mappings a user relies on; the real binary end to end (import --check, check, serve); and the
//! errors bad input gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard::config::{Config, CoolingMode, ProviderKind, Strategy};
use switchyard::import::{self, Imported, Kind};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/litellm")
        .join(name)
}

/// Imports a fixture and loads the result with the real loader (unset `${VAR}`s as placeholders).
fn import(name: &str) -> (Imported, Config) {
    let file = format!("tests/data/litellm/{name}");
    let text = std::fs::read_to_string(data(name)).unwrap();
    let imported = import::litellm(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::from_yaml(&imported.checkable, "imported.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.checkable));
    (imported, config)
}

fn tier_models(c: &Config, tier: &str) -> Vec<String> {
    c.tiers[tier]
        .models
        .iter()
        .map(|m| m.value.clone())
        .collect()
}

fn chain(
    chains: &std::collections::BTreeMap<String, Vec<serde_saphyr::Spanned<String>>>,
    tier: &str,
) -> Vec<String> {
    chains
        .get(tier)
        .map(|v| v.iter().map(|t| t.value.clone()).collect())
        .unwrap_or_default()
}

/// The report item about `path`, of `kind`.
fn reported<'a>(i: &'a Imported, kind: Kind, path: &str) -> &'a import::Item {
    i.report
        .items
        .iter()
        .find(|x| x.kind == kind && x.path == path)
        .unwrap_or_else(|| panic!("no {kind:?} item for {path}: {:#?}", i.report.items))
}

fn price(c: &Config, model: &str) -> (f64, f64, Option<f64>) {
    let p = c
        .model(model)
        .unwrap_or_else(|| panic!("no model {model}"))
        .price;
    (p.input, p.output, p.cached_input)
}

#[tokio::test]
async fn every_fixture_imports_and_passes_check() {
    let mut names: Vec<String> = std::fs::read_dir(data(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let (imported, _) = import(&name);
        import::check(&imported, &name, Path::new("."))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The report is at the end of the table, as comments, with file and line.
        let tail = imported.table.split("# ---- Report:").nth(1).unwrap();
        assert!(tail.lines().skip(1).all(|l| l.starts_with('#')), "{name}");
        for item in &imported.report.items {
            assert!(
                tail.contains(&item.path),
                "{name}: {} missing from the comments",
                item.path
            );
        }
        // Nothing of LiteLLM's syntax survives into the table.
        assert!(
            !imported
                .table
                .split("# ----")
                .next()
                .unwrap()
                .contains("os.environ/"),
            "{name}"
        );
    }
}

#[test]
fn basic_openai_azure_anthropic() {
    let (i, c) = import("basic.yaml");
    let kinds: Vec<(&str, ProviderKind)> = c
        .providers
        .iter()
        .map(|(n, p)| (n.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("anthropic", ProviderKind::Anthropic),
            ("azure-gpt-4o-prod", ProviderKind::Azure),
            ("openai", ProviderKind::Openai)
        ]
    );
    let azure = &c.providers["azure-gpt-4o-prod"];
    assert_eq!(
        azure.base_url.as_ref().unwrap().as_str(),
        "https://contoso-eastus.openai.azure.com/openai/deployments/gpt-4o-prod"
    );
    assert_eq!(azure.api_version.as_ref().unwrap().as_str(), "2024-10-21");
    // os.environ/VAR is ${VAR} in the table.
    assert!(
        i.table.contains("api_key: \"${AZURE_API_KEY}\""),
        "{}",
        i.table
    );
    assert!(
        i.table.contains("api_keys: [\"${LITELLM_MASTER_KEY}\"]"),
        "{}",
        i.table
    );
    assert_eq!(c.server.api_keys.len(), 1);
    // One tier per model group, named as clients call it.
    let tiers: Vec<&str> = c.tiers.keys().map(String::as_str).collect();
    assert_eq!(
        tiers,
        ["claude-sonnet", "gpt-4o", "gpt-4o-azure", "gpt-4o-mini"]
    );
    assert_eq!(
        tier_models(&c, "claude-sonnet"),
        ["claude-sonnet@anthropic"]
    );
    let claude = c.model("claude-sonnet@anthropic").unwrap();
    assert_eq!(
        claude.model.as_ref().unwrap().as_str(),
        "claude-3-5-sonnet-20241022"
    );
    assert_eq!(claude.max_output_tokens, Some(8192));
    // A bare `gpt-4o-mini` is OpenAI's, with LiteLLM's default key variable.
    assert_eq!(
        c.model("gpt-4o-mini@openai").unwrap().provider.value,
        "openai"
    );
    reported(&i, Kind::Chosen, "model_list[3].litellm_params.api_key");
    // Prices: bundled table by model name, by base_model for the Azure deployment.
    assert_eq!(price(&c, "gpt-4o@openai"), (2.5, 10.0, Some(1.25)));
    assert_eq!(
        price(&c, "gpt-4o-azure@azure-gpt-4o-prod"),
        (2.5, 10.0, Some(1.25))
    );
    assert_eq!(price(&c, "claude-sonnet@anthropic"), (3.0, 15.0, Some(0.3)));
    // What did not carry over, with the LiteLLM key and line.
    let emb = reported(&i, Kind::NotCarried, "model_list[4]");
    assert_eq!(emb.line, 25);
    assert!(emb.why.contains("mode `embedding`"), "{}", emb.why);
    assert!(c.model("text-embedding-3-small@openai").is_none());
    let t = reported(
        &i,
        Kind::NotCarried,
        "model_list[2].litellm_params.temperature",
    );
    assert_eq!(t.line, 21);
    for path in [
        "litellm_settings.drop_params",
        "litellm_settings.success_callback",
        "general_settings.database_url",
    ] {
        reported(&i, Kind::NotCarried, path);
    }
    assert_eq!(c.routing.default.value, "gpt-4o");
    assert_eq!(
        c.routing.counterfactual.as_ref().unwrap().value,
        "claude-sonnet@anthropic"
    );
}

#[test]
fn load_balancing_with_rpm_tpm_and_usage_based_routing() {
    let (i, c) = import("load_balancing.yaml");
    assert_eq!(
        tier_models(&c, "gpt-4o"),
        [
            "gpt-4o@azure-gpt-4o-eu",
            "gpt-4o@azure-gpt-4o-us",
            "gpt-4o@openai"
        ]
    );
    assert_eq!(c.tiers["gpt-4o"].strategy, Strategy::Usage);
    assert_eq!(c.tiers["gpt-4o-mini"].strategy, Strategy::Usage);
    let eu = c.model("gpt-4o@azure-gpt-4o-eu").unwrap();
    assert_eq!((eu.rpm, eu.tpm), (Some(900), Some(150000)));
    let us = c.model("gpt-4o@azure-gpt-4o-us").unwrap();
    assert_eq!((us.rpm, us.tpm), (Some(1800), Some(300000)));
    // Two keys on one provider are two providers.
    let minis: Vec<(String, f64)> = tier_models(&c, "gpt-4o-mini")
        .iter()
        .map(|m| {
            let m = c.model(m).unwrap();
            (m.provider.value.clone(), m.weight)
        })
        .collect();
    assert_eq!(
        minis,
        [
            ("openai".to_string(), 3.0),
            ("openai-gpt-4o-mini".to_string(), 1.0)
        ]
    );
    assert!(i.table.contains("api_key: \"${OPENAI_API_KEY_BATCH}\""));
    // Router-wide timeouts land on every provider.
    for (name, p) in &c.providers {
        assert_eq!(p.timeout.map(|d| d.0.as_secs()), Some(30), "{name}");
        assert_eq!(
            p.stream_idle_timeout.map(|d| d.0.as_secs()),
            Some(60),
            "{name}"
        );
    }
    assert_eq!(c.reliability.retries, 3);
    // Azure deployment names say nothing about the model: priced by the group's name, and said so.
    assert_eq!(price(&c, "gpt-4o@azure-gpt-4o-eu").0, 2.5);
    reported(&i, Kind::Chosen, "model_list[0].model_info.base_model");
    for path in [
        "router_settings.redis_host",
        "router_settings.redis_password",
    ] {
        reported(&i, Kind::NotCarried, path);
    }
    reported(&i, Kind::Changed, "router_settings.enable_pre_call_checks");
    reported(&i, Kind::Changed, "router_settings.stream_timeout");
}

#[test]
fn fallbacks_context_window_and_content_policy() {
    let (i, c) = import("fallbacks.yaml");
    assert_eq!(
        chain(&c.fallbacks.chains, "gpt-3.5-turbo"),
        ["gpt-4", "claude-opus"]
    );
    // The Bedrock group is not imported, so it is not a fallback target either; both reported.
    assert_eq!(chain(&c.fallbacks.chains, "gpt-4"), ["claude-opus"]);
    assert!(
        reported(&i, Kind::NotCarried, "model_list[4]")
            .why
            .contains("bedrock")
    );
    let dropped = reported(
        &i,
        Kind::NotCarried,
        "litellm_settings.fallbacks[1].gpt-4[1]",
    );
    assert!(dropped.why.contains("bedrock-claude"), "{}", dropped.why);
    assert!(c.model("bedrock-claude@bedrock").is_none());
    assert_eq!(
        chain(&c.fallbacks.context_window, "gpt-3.5-turbo"),
        ["gpt-3.5-turbo-16k"]
    );
    assert_eq!(
        chain(&c.fallbacks.context_window, "gpt-4"),
        ["gpt-3.5-turbo-16k"]
    );
    assert_eq!(
        c.model("gpt-3.5-turbo-16k@openai").unwrap().context_window,
        Some(16385)
    );
    // switchyard has no separate content-policy chain, and these differ from the ordinary ones.
    let cp = reported(
        &i,
        Kind::NotCarried,
        "litellm_settings.content_policy_fallbacks[0].\"gpt-3.5-turbo\"",
    );
    assert_eq!(cp.line, 37);
    assert!(c.reliability.policies.content_policy.is_none());
    // Retries, cooldowns, timeouts and backoff from litellm_settings and router_settings.
    let r = &c.reliability;
    assert_eq!((r.retries, r.max_fallbacks), (3, 3));
    // Three retries, then at most two hops: gpt-3.5-turbo → gpt-4 → claude-opus.
    assert_eq!(r.max_attempts, 1 + 3 + 2);
    assert_eq!(
        (r.cooldown.allowed_fails, r.cooldown.duration.0.as_secs()),
        (3, 30)
    );
    assert_eq!(r.cooldown.window.0.as_secs(), 60);
    assert_eq!(r.backoff.initial.0.as_secs(), 5);
    assert!(r.backoff.max.0 >= r.backoff.initial.0);
    assert_eq!(c.providers["openai"].timeout.unwrap().0.as_secs(), 10);
    // An api_base from the environment keeps the deployment path after it.
    assert!(
        i.table
            .contains("base_url: \"${AZURE_API_BASE}/openai/deployments/chatgpt-v-2\""),
        "{}",
        i.table
    );
    // Models the bundled table does not know are priced at 0, and that is said.
    assert_eq!(price(&c, "gpt-4@azure-gpt-4-ca"), (0.0, 0.0, None));
    assert!(
        reported(&i, Kind::Chosen, "model_list[1].litellm_params.model")
            .why
            .contains("priced at 0")
    );
}

#[test]
fn content_policy_fallbacks_equal_to_the_ordinary_ones_carry_over() {
    let text = "model_list:\n  - {model_name: a, litellm_params: {model: gpt-4o-mini}}\n  - {model_name: b, litellm_params: {model: gpt-4o}}\nrouter_settings:\n  fallbacks: [{a: [b]}]\n  content_policy_fallbacks: [{a: [b]}]\n";
    let i = import::litellm(text, "cp.yaml").unwrap();
    let c = Config::from_yaml(&i.checkable, "t.yaml").unwrap();
    let p = c.reliability.policies.content_policy.as_ref().unwrap();
    assert_eq!(p.fallback, Some(true));
    reported(
        &i,
        Kind::Changed,
        "router_settings.content_policy_fallbacks[0].a",
    );
}

#[test]
fn base_urls_are_written_the_way_switchyard_calls_them() {
    let text = "x-azure: &azure\n  api_version: \"2024-10-21\"\n  api_key: os.environ/AZURE_API_KEY\nmodel_list:\n  - model_name: a\n    litellm_params: {<<: *azure, model: azure/dep-a, api_base: \"https://res.openai.azure.com/openai/\"}\n  - model_name: b\n    litellm_params: {model: openai/gpt-4o, api_base: \"https://api.openai.com/v1\"}\n  - model_name: c\n    litellm_params: {model: anthropic/claude-3-5-haiku-latest, api_base: \"https://api.anthropic.com/v1/messages\"}\n  - model_name: d\n    litellm_params: {model: ollama/llama3, api_base: \"http://ollama.lan:11434/\"}\n";
    let i = import::litellm(text, "urls.yaml").unwrap();
    let c = Config::from_yaml(&i.checkable, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let base = |p: &str| {
        c.providers[p]
            .base_url
            .as_ref()
            .map(|u| u.as_str().to_string())
    };
    // YAML merge keys work; Azure's URL names the deployment once.
    assert_eq!(
        base("azure-dep-a").as_deref(),
        Some("https://res.openai.azure.com/openai/deployments/dep-a")
    );
    assert_eq!(
        c.providers["azure-dep-a"]
            .api_version
            .as_ref()
            .unwrap()
            .as_str(),
        "2024-10-21"
    );
    // OpenAI's own URL is OpenAI: its key variable, its name.
    assert_eq!(base("openai").as_deref(), Some("https://api.openai.com/v1"));
    assert!(
        i.table.contains("api_key: \"${OPENAI_API_KEY}\""),
        "{}",
        i.table
    );
    // Anthropic's base is the host; switchyard adds /v1/messages.
    assert_eq!(
        base("anthropic").as_deref(),
        Some("https://api.anthropic.com")
    );
    assert_eq!(price(&c, "c@anthropic").0, 0.8);
    assert_eq!(
        base("ollama").as_deref(),
        Some("http://ollama.lan:11434/v1")
    );
    // The top-level anchor holder is reported, not silently dropped.
    reported(&i, Kind::NotCarried, "x-azure");
}

#[test]
fn weights_of_zero_everywhere_are_left_out_and_said_so() {
    let text = "model_list:\n  - {model_name: a, litellm_params: {model: gpt-4o, weight: 0}}\n  - {model_name: a, litellm_params: {model: gpt-4o-mini, weight: 0}}\n";
    let i = import::litellm(text, "w.yaml").unwrap();
    let c = Config::from_yaml(&i.checkable, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.models.iter().all(|m| m.weight == 1.0));
    reported(&i, Kind::NotCarried, "model_list[0].litellm_params.weight");
}

#[tokio::test]
async fn order_cost_based_routing_generic_fallbacks_and_aliases() {
    let text = r#"
model_list:
  - {model_name: cheap, litellm_params: {model: gpt-4o-mini}}
  - {model_name: mid, litellm_params: {model: gpt-4o, order: 2}}
  - {model_name: mid, litellm_params: {model: azure/gpt-4o, api_base: "https://r.openai.azure.com", api_version: "2024-10-21", order: 1}}
  - {model_name: big, litellm_params: {model: anthropic/claude-opus-4-1}}
  - {model_name: big, litellm_params: {model: anthropic/claude-sonnet-4-5}}
router_settings:
  routing_strategy: cost-based-routing
  fallbacks: [{"*": ["big"]}]
  disable_cooldowns: true
  model_group_alias: {gpt-4: {model: mid, hidden: true}}
"#;
    let i = import::litellm(text, "mixed.yaml").unwrap();
    let c = Config::from_yaml(&i.checkable, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    // `order` first: the Azure deployment (order 1) is the primary.
    assert_eq!(c.tiers["mid"].strategy, Strategy::Ordered);
    assert_eq!(tier_models(&c, "mid"), ["mid@azure-gpt-4o", "mid@openai"]);
    // cost-based-routing: ordered, cheapest first.
    assert_eq!(c.tiers["big"].strategy, Strategy::Ordered);
    assert_eq!(tier_models(&c, "big"), ["big@anthropic-2", "big@anthropic"]);
    assert_eq!(
        c.model("big@anthropic-2")
            .unwrap()
            .model
            .as_ref()
            .unwrap()
            .as_str(),
        "claude-sonnet-4-5"
    );
    reported(&i, Kind::Changed, "router_settings.routing_strategy");
    // `*` applies to every other group; a group never falls back to itself.
    assert_eq!(chain(&c.fallbacks.chains, "cheap"), ["big"]);
    assert_eq!(chain(&c.fallbacks.chains, "mid"), ["big"]);
    assert!(chain(&c.fallbacks.chains, "big").is_empty());
    assert!(!c.reliability.cooldown.enabled);
    reported(
        &i,
        Kind::Changed,
        "router_settings.model_group_alias.gpt-4.hidden",
    );
    let gw = switchyard::gateway::Gateway::build(c, &reqwest::Client::new(), Path::new("."))
        .await
        .unwrap();
    let req = serde_json::from_value(
        json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    let d = gw
        .router
        .decide(&req, &http::HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(&*d.tier, "mid");
}

#[test]
fn retry_policy_and_allowed_fails_policy() {
    let (i, c) = import("retry_policy.yaml");
    assert_eq!(c.tiers["gpt-4o"].strategy, Strategy::Latency);
    assert_eq!(
        tier_models(&c, "gpt-4o"),
        ["gpt-4o@openai", "gpt-4o@azure-gpt-4o"]
    );
    // An api_base that already names the deployment is kept as it is.
    assert_eq!(
        c.providers["azure-gpt-4o"]
            .base_url
            .as_ref()
            .unwrap()
            .as_str(),
        "https://contoso.openai.azure.com/openai/deployments/gpt-4o"
    );
    let p = &c.reliability.policies;
    let get = |x: &Option<switchyard::config::PolicyConfig>| {
        let x = x.as_ref().unwrap();
        (x.retries, x.cooldown)
    };
    assert_eq!(
        get(&p.authentication),
        (Some(0), Some(CoolingMode::Immediate))
    );
    assert_eq!(get(&p.timeout), (Some(2), Some(CoolingMode::Count)));
    assert_eq!(get(&p.rate_limit), (Some(4), Some(CoolingMode::Never)));
    assert_eq!(get(&p.content_policy), (Some(0), Some(CoolingMode::Count)));
    assert_eq!(get(&p.server_error), (Some(3), Some(CoolingMode::Count)));
    assert_eq!(get(&p.bad_request), (Some(0), Some(CoolingMode::Never)));
    assert_eq!(c.reliability.cooldown.allowed_fails, 5);
    assert_eq!(c.reliability.cooldown.duration.0.as_secs(), 60);
    // Four rate-limit retries, then the fallback: the attempt budget makes room for both.
    assert_eq!(c.reliability.max_attempts, 1 + 4 + 1);
    // A per-class allowance switchyard cannot express is carried as "counts", and said so.
    let t = reported(
        &i,
        Kind::Changed,
        "router_settings.allowed_fails_policy.TimeoutErrorAllowedFails",
    );
    assert!(t.why.contains("one allowed_fails (5)"), "{}", t.why);
    reported(
        &i,
        Kind::NotCarried,
        "router_settings.routing_strategy_args",
    );
    reported(
        &i,
        Kind::NotCarried,
        "router_settings.model_group_retry_policy",
    );
}

#[test]
fn model_info_costs_become_prices_per_million() {
    let (i, c) = import("costs.yaml");
    // model_info.id names the deployment.
    assert_eq!(tier_models(&c, "support-bot"), ["ft-support-v3"]);
    let ft = c.model("ft-support-v3").unwrap();
    assert_eq!(
        ft.model.as_ref().unwrap().as_str(),
        "ft:gpt-4o-mini-2024-07-18:acme::9xYz"
    );
    assert_eq!(price(&c, "ft-support-v3"), (0.3, 1.2, Some(0.15)));
    assert_eq!(
        (ft.context_window, ft.max_output_tokens),
        (Some(128000), Some(16384))
    );
    // Costs in litellm_params; the cache-read price the config leaves out comes from the table.
    assert_eq!(price(&c, "sonnet@anthropic"), (2.7, 13.5, Some(0.3)));
    assert_eq!(
        c.model("sonnet@anthropic").unwrap().context_window,
        Some(200000)
    );
    assert_eq!(price(&c, "llama-70b@groq"), (0.59, 0.79, None));
    assert_eq!(price(&c, "mistral-large@mistral"), (2.0, 6.0, None));
    assert_eq!(
        c.providers["groq"].base_url.as_ref().unwrap().as_str(),
        "https://api.groq.com/openai/v1"
    );
    reported(
        &i,
        Kind::NotCarried,
        "model_list[1].model_info.cache_creation_input_token_cost",
    );
    reported(
        &i,
        Kind::NotCarried,
        "model_list[3].model_info.input_cost_per_second",
    );
    reported(
        &i,
        Kind::NotCarried,
        "model_list[0].model_info.supports_function_calling",
    );
}

#[test]
fn ollama_vllm_and_openai_compatible_servers() {
    let (i, c) = import("local.yaml");
    let base = |p: &str| {
        c.providers[p]
            .base_url
            .as_ref()
            .unwrap()
            .as_str()
            .to_string()
    };
    // Ollama through its OpenAI-compatible endpoint, with or without an api_base.
    assert_eq!(base("ollama"), "http://localhost:11434/v1");
    assert_eq!(
        c.model("qwen-coder@ollama").unwrap().provider.value,
        "ollama"
    );
    reported(&i, Kind::Changed, "model_list[0].litellm_params.model");
    // Two vLLM servers behind one group.
    assert_eq!(
        tier_models(&c, "mixtral"),
        ["mixtral@vllm", "mixtral@vllm-gpu-box-2-internal"]
    );
    assert_eq!(base("vllm"), "http://gpu-box.internal:8000/v1");
    assert_eq!(
        base("vllm-gpu-box-2-internal"),
        "http://gpu-box-2.internal:8000/v1"
    );
    assert_eq!(c.tiers["mixtral"].strategy, Strategy::LeastInFlight);
    assert_eq!(c.providers["vllm"].timeout.unwrap().0.as_secs(), 120);
    assert_eq!(
        c.model("mixtral@vllm")
            .unwrap()
            .model
            .as_ref()
            .unwrap()
            .as_str(),
        "mistralai/Mixtral-8x7B-Instruct-v0.1"
    );
    // A server of the user's own gets no OpenAI key it never asked for.
    let local = &c.providers["local"];
    assert_eq!(base("local"), "http://127.0.0.1:8080/v1");
    assert!(local.api_key.is_none());
    reported(&i, Kind::Changed, "model_list[4].litellm_params.api_key");
    assert_eq!(base("lm-studio"), "http://localhost:1234/v1");
    assert_eq!(
        base("gemini"),
        "https://generativelanguage.googleapis.com/v1beta/openai"
    );
    for p in ["ollama", "vllm", "lm-studio"] {
        assert!(c.providers[p].api_key.is_none(), "{p}");
    }
    assert!(
        reported(&i, Kind::NotCarried, "model_list[8]")
            .why
            .contains("wildcard")
    );
    assert_eq!(c.tiers.len(), 7);
}

#[tokio::test]
async fn budget_mid_premium_cost_router() {
    let (i, c) = import("budget_mid_premium.yaml");
    for (tier, n) in [
        ("budget", 2),
        ("mid", 2),
        ("premium", 1),
        ("long-context", 1),
    ] {
        assert_eq!(c.tiers[tier].models.len(), n, "{tier}");
    }
    assert_eq!(c.tiers["budget"].strategy, Strategy::Usage);
    assert_eq!(c.tiers["mid"].strategy, Strategy::Usage);
    assert_eq!(chain(&c.fallbacks.chains, "budget"), ["mid"]);
    assert_eq!(chain(&c.fallbacks.chains, "mid"), ["premium"]);
    assert_eq!(
        chain(&c.fallbacks.context_window, "budget"),
        ["mid", "long-context"]
    );
    assert_eq!(
        chain(&c.fallbacks.context_window, "premium"),
        ["long-context"]
    );
    assert_eq!(price(&c, "budget@openai"), (0.15, 0.6, Some(0.075)));
    assert_eq!(price(&c, "budget@anthropic"), (0.8, 4.0, Some(0.08)));
    assert_eq!(
        price(&c, "premium@anthropic-premium"),
        (15.0, 75.0, Some(1.5))
    );
    // The premium deployment's own timeout gives it a provider of its own.
    assert_eq!(
        c.providers["anthropic-premium"]
            .timeout
            .unwrap()
            .0
            .as_secs(),
        300
    );
    assert_eq!(c.providers["anthropic"].timeout.unwrap().0.as_secs(), 60);
    assert_eq!(
        c.model("mid@anthropic").unwrap().max_output_tokens,
        Some(8192)
    );
    let r = &c.reliability;
    assert_eq!(
        (
            r.retries,
            r.cooldown.allowed_fails,
            r.cooldown.duration.0.as_secs()
        ),
        (2, 2, 45)
    );
    assert_eq!(c.server.api_keys[0].as_str(), "sk-litellm-master-1234");
    assert_eq!(c.routing.default.value, "budget");
    assert_eq!(
        c.routing.counterfactual.as_ref().unwrap().value,
        "premium@anthropic-premium"
    );
    reported(&i, Kind::Chosen, "routing.default");

    // model_group_alias: the alias names reach their tier through the router.
    let gw = switchyard::gateway::Gateway::build(c, &reqwest::Client::new(), Path::new("."))
        .await
        .unwrap();
    for (model, tier) in [
        ("gpt-4o", "mid"),
        ("gpt-4o-mini", "budget"),
        ("auto", "budget"),
        ("premium", "premium"),
    ] {
        let req = serde_json::from_value(
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        let d = gw
            .router
            .decide(&req, &http::HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(&*d.tier, tier, "{model}");
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

const VARS: [&str; 3] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"];

#[test]
fn binary_imports_checks_and_the_result_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("switchyard.yaml");
    let mut cmd = bin();
    cmd.args(["import", "litellm"])
        .arg(data("budget_mid_premium.yaml"))
        .arg("--out")
        .arg(&out)
        .arg("--check");
    for v in VARS {
        cmd.env_remove(v);
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(run.stdout.is_empty(), "the table goes to --out");
    assert!(
        stderr.contains("check: OK")
            && stderr.contains("treated as set: ANTHROPIC_API_KEY, GEMINI_API_KEY, OPENAI_API_KEY"),
        "{stderr}"
    );
    // The report is on stderr too, with file, line and key.
    assert!(
        stderr.contains("budget_mid_premium.yaml:76: general_settings.master_key"),
        "{stderr}"
    );
    let table = std::fs::read_to_string(&out).unwrap();

    // `check` on the written table, where the variables are set.
    let mut check = bin();
    check.arg("check").arg("--config").arg(&out);
    for v in VARS {
        check.env(v, "sk-test-0123456789");
    }
    let ok = check.output().unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}\n{table}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(
        stdout.contains("budget@openai, budget@anthropic [usage]   (falls back to mid)"),
        "{stdout}"
    );

    // Where a variable is unset, `check` names it, as for any table.
    let mut unset = bin();
    unset.arg("check").arg("--config").arg(&out);
    for v in VARS {
        unset.env_remove(v);
    }
    let bad = unset.output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not set"));

    // Without --out the table is on stdout, the report on stderr.
    let piped = bin()
        .args(["import", "litellm"])
        .arg(data("basic.yaml"))
        .output()
        .unwrap();
    assert!(piped.status.success());
    let table = String::from_utf8_lossy(&piped.stdout);
    assert!(table.starts_with("# switchyard routing table"), "{table}");
    assert!(table.contains("# Not carried over"), "{table}");
    assert!(String::from_utf8_lossy(&piped.stderr).contains("model_list[4]: not carried over"));
}

#[tokio::test]
async fn an_imported_table_serves_with_litellm_fallbacks_and_keys() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let litellm = dir.path().join("litellm.yaml");
    std::fs::write(
        &litellm,
        format!(
            "model_list:\n  - model_name: fast\n    litellm_params:\n      model: openai/fast-up\n      api_base: {url}\n      api_key: {PROVIDER_KEY}\n  - model_name: strong\n    litellm_params:\n      model: openai/strong-up\n      api_base: {url}\n      api_key: {PROVIDER_KEY}\nrouter_settings:\n  num_retries: 0\n  fallbacks: [{{fast: [strong]}}]\ngeneral_settings:\n  master_key: sk-import-master-key\n",
            url = mock.url()
        ),
    )
    .unwrap();
    let out = dir.path().join("switchyard.yaml");
    let run = bin()
        .args(["import", "litellm"])
        .arg(&litellm)
        .arg("-o")
        .arg(&out)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    mock.on(
        "fast-up",
        Reply::Json {
            status: 500,
            body: json!({"error": {"message": "boom"}}),
            headers: vec![],
        },
    );
    let gw = Binary::serve(&out, &[]);
    let client = reqwest::Client::new();
    let body = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let denied = client
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401, "the master key guards the gateway");
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-import-master-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-fallbacks"], "fast->strong");
    assert_eq!(resp.headers()["x-switchyard-tier"], "strong");
    // num_retries: 0 — one call to the failing group, then its fallback.
    assert_eq!(mock.calls_for("fast-up"), 1);
    assert_eq!(mock.calls_for("strong-up"), 1);
    let last = mock.requests().pop().unwrap();
    assert_eq!(
        last.headers["authorization"],
        format!("Bearer {PROVIDER_KEY}")
    );
    assert_eq!(last.path, "/v1/chat/completions");
}

fn import_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("litellm.yaml");
    std::fs::write(&p, text).unwrap();
    let run = bin().args(["import", "litellm"]).arg(&p).output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(run.stdout.is_empty());
    let e = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(e.starts_with("error: "), "{e}");
    assert!(e.contains("litellm.yaml"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn bad_input_gets_a_clear_error_naming_file_line_and_key() {
    let e =
        import_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o\n");
    assert!(e.contains("litellm.yaml:"), "not YAML: {e}");
    let e = import_error("server:\n  port: 4000\n");
    assert!(e.contains("no model_list"), "{e}");
    let e = import_error("model_list:\n  - litellm_params:\n      model: openai/gpt-4o\n");
    assert!(
        e.contains("litellm.yaml:2") && e.contains("model_list[0].model_name"),
        "{e}"
    );
    let e = import_error(
        "model_list:\n  - model_name: a\n    litellm_params:\n      api_base: http://x\n",
    );
    assert!(e.contains("model_list[0].litellm_params.model"), "{e}");
    let e = import_error(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: gpt-4o\n  - model_name: b\n    litellm_params:\n      model: opneai/gpt-4o\n",
    );
    assert!(
        e.contains("litellm.yaml:7") && e.contains("unknown provider `opneai`"),
        "{e}"
    );
    let e = import_error(
        "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o}\nrouter_settings:\n  routing_strategy: round-robin\n",
    );
    assert!(
        e.contains("litellm.yaml:5") && e.contains("unknown routing_strategy `round-robin`"),
        "{e}"
    );
    let e = import_error(
        "model_list:\n  - model_name: a\n    litellm_params: {model: bedrock/anthropic.claude-v2}\n",
    );
    assert!(
        e.contains("nothing to import") && e.contains("bedrock"),
        "{e}"
    );
    let e = import_error(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai_like/llama}\n",
    );
    assert!(
        e.contains("litellm.yaml:3") && e.contains("needs api_base"),
        "{e}"
    );
    let missing = bin()
        .args(["import", "litellm", "/nonexistent/litellm.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// The README's example is what the import writes: its LiteLLM config, imported, gives its table.
#[test]
fn readme_example_is_what_the_import_writes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Coming from LiteLLM").nth(1).unwrap();
    let block = |after: &str| {
        let rest = section.split(after).nth(1).unwrap();
        let rest = &rest[rest.find("```").unwrap()..];
        let body = &rest[rest.find('\n').unwrap() + 1..];
        body[..body.find("```").unwrap()].to_string()
    };
    let input = block("For this LiteLLM config:");
    let written = block("the import writes");
    let i = import::litellm(&input, "litellm.yaml").unwrap();
    let body = &i.table[i.table.find("server:").unwrap()..i.table.find("# ---- Report").unwrap()];
    assert_eq!(body.trim_end(), written.trim_end());
    let reported = block("and reports on stderr:");
    for line in i.report.lines().iter().take(5) {
        assert!(reported.contains(line.as_str()), "README lacks: {line}");
    }
}
