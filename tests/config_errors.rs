//! Config errors point at the key they are about: file, line, column and YAML path, for errors
//! serde finds and for every cross-reference check after it. Also: which `${VAR}`s a command may
//! leave unset, and empty keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard::config::{Config, ConfigError, Uses};

const BASE: &str = r#"providers:
  sim: { kind: simulated }
models:
  - { name: small, provider: sim }
  - name: big
    provider: sim
tiers:
  budget: { models: [small] }
  premium:
    models: [big]
routing:
  default: budget
"#;

fn err(extra: &str) -> ConfigError {
    let text = format!("{BASE}{extra}");
    match Config::from_yaml(&text, "t.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// (line, column, path) of the error, and its text shows the caret under that column.
fn at(e: &ConfigError) -> (u32, u32, &str) {
    let line = e.line.unwrap_or_else(|| panic!("no line: {e}"));
    let col = e.column.unwrap_or_else(|| panic!("no column: {e}"));
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("t.yaml:{line}:{col}: {}: ", e.path)),
        "{shown}"
    );
    let caret = shown.lines().last().unwrap();
    assert_eq!(
        caret.find('^'),
        Some("      | ".len() + col as usize - 1),
        "{shown}"
    );
    (line, col, e.path.as_str())
}

const BASE_LINES: u32 = 12;

#[test]
fn cascade_errors_point_at_their_keys() {
    let cascade = "  rules:\n    - { name: summ, when: { keywords: [tldr] }, tier: budget }\n  cascade:\n    from: budget\n    to: premium\n";
    let e = err(&format!("{cascade}    rules: [summ, nosuch]\n"));
    assert_eq!(at(&e), (BASE_LINES + 6, 19, "routing.cascade.rules[1]"));
    assert!(
        e.message.contains("unknown rule `nosuch` (defined: summ)"),
        "{e}"
    );

    let e = err(&format!("{cascade}    max_escalation_rate: 1.5\n"));
    assert_eq!(
        at(&e),
        (BASE_LINES + 6, 5, "routing.cascade.max_escalation_rate")
    );

    let e = err(&format!(
        "{cascade}    escalate_on: [error, low_confidence]\n"
    ));
    assert_eq!(
        at(&e),
        (BASE_LINES + 6, 26, "routing.cascade.escalate_on[1]")
    );
    assert!(e.message.contains("min_mean_logprob"), "{e}");

    let e = err(&format!("{cascade}    escalate_on: [judge]\n"));
    assert_eq!(
        at(&e),
        (BASE_LINES + 6, 19, "routing.cascade.escalate_on[0]")
    );
}

#[test]
fn semantic_errors_point_at_their_keys() {
    let sem = "  semantic:\n    utterances:\n      budget: [\"summarize this\"]\n";
    let e = err(&format!("{sem}      nosuch: [\"x\"]\n"));
    assert_eq!(
        at(&e),
        (BASE_LINES + 4, 7, "routing.semantic.utterances.nosuch")
    );

    let e = err("  semantic:\n    utterances:\n      budget: [\"a\", \"  \"]\n");
    assert_eq!(
        at(&e),
        (BASE_LINES + 3, 21, "routing.semantic.utterances.budget[1]")
    );

    let e = err(&format!("{sem}    threshold: 3\n"));
    assert_eq!(at(&e), (BASE_LINES + 4, 5, "routing.semantic.threshold"));

    let e = err(&format!("{sem}    margin: -1\n"));
    assert_eq!(at(&e), (BASE_LINES + 4, 5, "routing.semantic.margin"));

    let e = err(&format!("{sem}    thresholds: {{ premium: 0.5 }}\n"));
    assert_eq!(
        at(&e),
        (BASE_LINES + 4, 19, "routing.semantic.thresholds.premium")
    );

    let e = err(&format!("{sem}    scoring: {{ top: 0 }}\n"));
    assert_eq!(at(&e), (BASE_LINES + 4, 16, "routing.semantic.scoring.top"));
    assert!(e.to_string().contains("at least 1"), "{e}");

    let e = err(&format!("{sem}    embedder: {{ kind: static }}\n"));
    assert_eq!(
        at(&e),
        (BASE_LINES + 4, 5, "routing.semantic.embedder.path")
    );
}

#[test]
fn rule_errors_point_into_the_condition() {
    let e = err(
        "  rules:\n    - name: r\n      when:\n        any:\n          - { keywords: [a] }\n          - { regex: ['ok', '(' ] }\n      tier: budget\n",
    );
    assert_eq!(
        at(&e),
        (BASE_LINES + 6, 29, "routing.rules[0].when.any[1].regex[1]")
    );
    assert!(e.message.contains("invalid regex"), "{e}");

    let e = err("  rules:\n    - { name: r, when: { keywords: [a, \"\"] }, tier: budget }\n");
    assert_eq!(
        at(&e),
        (BASE_LINES + 2, 40, "routing.rules[0].when.keywords[1]")
    );

    let e = err(
        "  rules:\n    - { name: r, when: { keywords: [a] }, tier: budget }\n    - name: r\n      when: { keywords: [b] }\n      tier: budget\n",
    );
    assert_eq!(at(&e), (BASE_LINES + 3, 7, "routing.rules[1].name"));

    let e = err("  rules:\n    - { name: r, when: { not: { model: [gpt-4o] } }, tier: budget }\n");
    assert_eq!(
        at(&e),
        (BASE_LINES + 2, 41, "routing.rules[0].when.not.model[0]")
    );

    let e = err("  rules:\n    - { name: r, when: {}, tier: budget }\n");
    assert_eq!(at(&e), (BASE_LINES + 2, 18, "routing.rules[0].when"));
}

#[test]
fn serde_errors_inside_spanned_values_read_as_the_document() {
    // `when` carries its position; serde reports the path through it as `when.value.…`.
    let e = err("  rules:\n    - { name: r, when: { keywordz: [a] }, tier: budget }\n");
    assert_eq!(e.path, "routing.rules[0].when.keywordz");
    assert!(!e.to_string().contains(".value."), "{e}");
    assert_eq!(e.line, Some(BASE_LINES + 2));
}

#[test]
fn model_tier_and_provider_errors_point_at_their_keys() {
    let text = BASE.replace("    provider: sim\n", "    provider: sim\n    weight: -1\n");
    let e = Config::from_yaml(&text, "t.yaml").unwrap_err();
    assert_eq!(at(&e), (7, 5, "models[1].weight"));

    let text = BASE.replace("  - name: big\n", "  - name: small\n");
    let e = Config::from_yaml(&text, "t.yaml").unwrap_err();
    assert_eq!(at(&e), (5, 5, "models[1].name"));
    assert!(e.message.contains("defined twice"), "{e}");

    let text = BASE.replace(
        "{ kind: simulated }",
        "{ kind: openai, base_url: \"ftp://x\" }",
    );
    let e = Config::from_yaml(&text, "t.yaml").unwrap_err();
    assert_eq!(at(&e), (2, 24, "providers.sim.base_url"));

    let text = BASE.replace("{ kind: simulated }", "{ kind: azure, api_version: \"1\" }");
    let e = Config::from_yaml(&text, "t.yaml").unwrap_err();
    assert_eq!(
        at(&e),
        (2, 3, "providers.sim.base_url"),
        "a missing key: its parent"
    );

    let e = err("fallbacks:\n  budget: [premium]\n  nosuch: [budget]\n");
    assert_eq!(at(&e), (BASE_LINES + 3, 3, "fallbacks.nosuch"));

    let e = err("reliability:\n  retries: 1\n  cooldown: { window: 1s, failure_ratio: 2 }\n");
    assert_eq!(
        at(&e),
        (BASE_LINES + 3, 27, "reliability.cooldown.failure_ratio")
    );
}

#[test]
fn server_settings_are_checked_where_they_are_written() {
    let server = |lines: &str| format!("server:\n{lines}{BASE}");
    let check = |text: String| Config::from_yaml(&text, "t.yaml").unwrap_err();

    // `${VAR:-}` with the variable unset is an empty key: every client would be refused.
    let e = check(server(
        "  api_keys:\n    - \"k-123456\"\n    - \"${SWITCHYARD_TEST_SURELY_UNSET_KEY:-}\"\n",
    ));
    assert_eq!(at(&e), (4, 7, "server.api_keys[1]"));
    assert!(e.message.contains("must not be empty"), "{e}");

    let e = check(server("  api_keys: [a-key-1]\n  admin_keys: [a-key-1]\n"));
    assert_eq!(at(&e), (3, 16, "server.admin_keys[0]"));
    assert!(e.message.contains("separate from client keys"), "{e}");

    let e = check(server("  metrics: { keys: [\"\"] }\n"));
    assert_eq!(at(&e), (2, 21, "server.metrics.keys[0]"));

    let e = check(server("  header_read_timeout: 0s\n"));
    assert_eq!(at(&e), (2, 3, "server.header_read_timeout"));

    let e = check(server("  max_in_flight_requests: 0\n"));
    assert_eq!(at(&e), (2, 3, "server.max_in_flight_requests"));

    let e = check(server("  metrics: { listen: \"not an address\" }\n"));
    assert_eq!(at(&e), (2, 14, "server.metrics.listen"));

    let e = check(server(
        "  cors:\n    allowed_origins: [\"https://app.example.com\", \"https://x.example.com/\"]\n",
    ));
    assert_eq!(at(&e), (3, 50, "server.cors.allowed_origins[1]"));
    assert!(e.message.contains("\"https://x.example.com\""), "{e}");
    let e = check(server("  cors: { allowed_origins: [\"*\"] }\n"));
    assert_eq!(at(&e), (2, 29, "server.cors.allowed_origins[0]"));

    let ok = server(
        "  admin_keys: [\"adm-123456\"]\n  metrics: { listen: \"127.0.0.1:0\", keys: [\"prom-123456\"] }\n  cors: { allowed_origins: [\"http://localhost:3000\"], max_age: 1m }\n  max_connections: 5\n  max_in_flight_requests: 3\n  header_read_timeout: 2s\n  body_read_timeout: 3s\n",
    );
    let c = Config::from_yaml(&ok, "t.yaml").unwrap();
    assert_eq!(c.server.max_connections, 5);
    assert_eq!(c.server.max_in_flight_requests, Some(3));
    assert_eq!(c.server.body_read_timeout.0.as_secs(), 3);
    assert!(c.secrets().contains(&"adm-123456".to_string()));
    assert!(c.secrets().contains(&"prom-123456".to_string()));
}

/// `route` and `report` leave the variables of the parts they do not use unset; `serve` and
/// `check` (`Uses::Everything`) refuse them.
#[test]
fn only_the_parts_a_command_uses_need_their_variables() {
    let text = r#"server:
  api_keys: ["${SWITCHYARD_TEST_UNSET_A}"]
providers:
  up: { kind: openai, base_url: "${SWITCHYARD_TEST_UNSET_B}", api_key: "${SWITCHYARD_TEST_UNSET_C}" }
  az: { kind: azure, base_url: "https://${SWITCHYARD_TEST_UNSET_D}/openai", api_version: "1" }
models:
  - { name: m, provider: up }
  - { name: n, provider: az, model: "${SWITCHYARD_TEST_MODEL:-gpt-4o}" }
tiers: { t: { models: [m, n] } }
routing: { default: t }
spend_log: { url: "${SWITCHYARD_TEST_UNSET_E}" }
"#;
    let e = Config::from_yaml(text, "t.yaml").unwrap_err();
    assert_eq!(e.path, "server.api_keys[0]");
    assert!(
        e.message.contains("SWITCHYARD_TEST_UNSET_A is not set"),
        "{e}"
    );

    let c = Config::from_yaml_for(text, "t.yaml", Uses::Routing).unwrap();
    assert_eq!(
        c.unresolved.get("providers.up").unwrap(),
        &vec![
            "SWITCHYARD_TEST_UNSET_B".to_string(),
            "SWITCHYARD_TEST_UNSET_C".to_string()
        ]
    );
    assert!(c.is_unresolved("providers.az"));
    assert!(c.is_unresolved("server"));
    assert!(c.is_unresolved("spend_log"));
    assert_eq!(c.models[1].model.as_ref().unwrap().as_str(), "gpt-4o");

    // The report needs the spend log's URL, and nothing else.
    let e = Config::from_yaml_for(text, "t.yaml", Uses::SpendLog).unwrap_err();
    assert_eq!(e.path, "spend_log.url");
    assert!(
        e.message.contains("SWITCHYARD_TEST_UNSET_E is not set"),
        "{e}"
    );
    let with_url = text.replace("${SWITCHYARD_TEST_UNSET_E}", "sqlite://spend.db");
    let c = Config::from_yaml_for(&with_url, "t.yaml", Uses::SpendLog).unwrap();
    assert!(!c.is_unresolved("spend_log"));
    assert!(c.is_unresolved("providers.up"));

    // A model's own variables are routing's: they must be set even for `route`.
    let model_var = text.replace(
        "${SWITCHYARD_TEST_MODEL:-gpt-4o}",
        "${SWITCHYARD_TEST_UNSET_F}",
    );
    let e = Config::from_yaml_for(&model_var, "t.yaml", Uses::Routing).unwrap_err();
    assert_eq!(e.path, "models[1].model");

    // Strict again on the same thread afterwards.
    assert!(Config::from_yaml(text, "t.yaml").is_err());
}

#[test]
fn nesting_is_bounded_with_a_clear_message() {
    let when = format!(
        "{}{{ keywords: [x] }}{}",
        "{ not: ".repeat(40),
        " }".repeat(40)
    );
    let e = err(&format!(
        "  rules:\n    - {{ name: r, tier: budget, when: {when} }}\n"
    ));
    assert_eq!(e.line, Some(BASE_LINES + 2), "{e}");
    assert!(e.message.contains("nests deeper than 24 levels"), "{e}");
    // A dozen levels, more than any real table uses, still load.
    let when = format!(
        "{}{{ keywords: [x] }}{}",
        "{ any: [".repeat(6),
        "] }".repeat(6)
    );
    let text = format!("{BASE}  rules:\n    - {{ name: r, tier: budget, when: {when} }}\n");
    Config::from_yaml(&text, "t.yaml").unwrap();
}
