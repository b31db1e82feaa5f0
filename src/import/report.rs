//! What an import could not carry over, what it carried with a difference, and what it had to
//! choose itself, each with the LiteLLM key and the reason. Printed at the end of the table as
//! comments and on stderr, so nothing is dropped silently.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// No switchyard equivalent: the setting is not in the table.
    NotCarried,
    /// In the table, but switchyard's behaviour differs in a way the user should know.
    Changed,
    /// LiteLLM says nothing here and switchyard needs something: the import picked it.
    Chosen,
}

impl Kind {
    fn heading(self) -> &'static str {
        match self {
            Kind::NotCarried => "Not carried over (no switchyard equivalent)",
            Kind::Changed => "Carried over with a difference",
            Kind::Chosen => "Chosen by the import (LiteLLM has no such setting)",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::NotCarried => "not carried over",
            Kind::Changed => "carried with a difference",
            Kind::Chosen => "chosen by the import",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    /// The LiteLLM key path (`model_list[2].litellm_params.temperature`), or the table's key for
    /// choices that have no LiteLLM key.
    pub path: String,
    /// 0 when there is no line to point at.
    pub line: u32,
    pub why: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub file: String,
    pub items: Vec<Item>,
}

impl Report {
    pub fn new(file: &str) -> Report {
        Report {
            file: file.to_string(),
            items: Vec::new(),
        }
    }

    pub fn add(&mut self, kind: Kind, path: impl Into<String>, line: u32, why: impl Into<String>) {
        let item = Item {
            kind,
            path: path.into(),
            line,
            why: why.into(),
        };
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    pub fn not_carried(&mut self, path: impl Into<String>, line: u32, why: impl Into<String>) {
        self.add(Kind::NotCarried, path, line, why);
    }

    pub fn changed(&mut self, path: impl Into<String>, line: u32, why: impl Into<String>) {
        self.add(Kind::Changed, path, line, why);
    }

    pub fn chosen(&mut self, path: impl Into<String>, line: u32, why: impl Into<String>) {
        self.add(Kind::Chosen, path, line, why);
    }

    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.kind == kind)
    }

    fn sorted(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.items.iter().collect();
        // By kind, then in the order of the file; items without a line (choices about the table
        // as a whole) last, in the order they were made.
        v.sort_by_key(|i| (i.kind, i.line == 0, i.line));
        v
    }

    fn place(&self, i: &Item) -> String {
        if i.line > 0 {
            format!("{}:{}", self.file, i.line)
        } else {
            self.file.clone()
        }
    }

    /// The report as YAML comments, grouped by kind, for the end of the table.
    pub fn comments(&self) -> String {
        let mut out = String::new();
        if self.items.is_empty() {
            let _ = writeln!(out, "# Everything in {} carried over.", self.file);
            return out;
        }
        let mut current = None;
        for i in self.sorted() {
            if current != Some(i.kind) {
                current = Some(i.kind);
                let n = self.of(i.kind).count();
                let _ = writeln!(out, "#\n# {} ({n}):", i.kind.heading());
            }
            let _ = writeln!(out, "#   {}  {}", self.place(i), i.path);
            for line in wrap(&i.why, 92) {
                let _ = writeln!(out, "#       {line}");
            }
        }
        out
    }

    /// One line per item, `file:line: path: kind: why`, the way config errors read.
    pub fn lines(&self) -> Vec<String> {
        self.sorted()
            .into_iter()
            .map(|i| {
                format!(
                    "{}: {}: {}: {}",
                    self.place(i),
                    i.path,
                    i.kind.label(),
                    i.why
                )
            })
            .collect()
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Why a LiteLLM key the importer never read has no place in a switchyard table. `path` is the
/// key's full path; the reason depends on the section and the last key.
pub fn why_unread(path: &str) -> String {
    let last = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .trim_matches('"')
        .split('[')
        .next()
        .unwrap_or("");
    let section = path.split(['.', '[']).next().unwrap_or("");
    let in_params = path.contains(".litellm_params.");
    let in_info = path.contains(".model_info.");
    let reason: Option<&str> = if in_params {
        match last {
            "temperature"
            | "top_p"
            | "top_k"
            | "seed"
            | "stop"
            | "presence_penalty"
            | "frequency_penalty"
            | "n"
            | "logit_bias"
            | "response_format"
            | "tool_choice"
            | "reasoning_effort"
            | "thinking"
            | "max_completion_tokens"
            | "user" => Some(
                "a default request parameter: switchyard forwards each client's parameters as sent and adds none of its own",
            ),
            "drop_params" | "additional_drop_params" => Some(
                "switchyard forwards the client's fields as sent; a provider that rejects a field answers 400",
            ),
            "max_retries" => Some(
                "the provider SDK's own retries: switchyard retries in reliability.retries / policies",
            ),
            "stream" | "mock_response" | "mock_testing_fallbacks" => {
                Some("a testing or per-request switch with no table equivalent")
            }
            "tags" => {
                Some("tag-based routing: write a routing rule (`when: {tags: [...]}`) instead")
            }
            "region_name"
            | "aws_region_name"
            | "aws_access_key_id"
            | "aws_secret_access_key"
            | "vertex_project"
            | "vertex_location"
            | "vertex_credentials" => {
                Some("credentials of a provider switchyard has no adapter for")
            }
            "azure_ad_token"
            | "azure_ad_token_provider"
            | "tenant_id"
            | "client_id"
            | "client_secret"
            | "azure_username"
            | "azure_password" => Some(
                "Microsoft Entra ID sign-in: switchyard authenticates to Azure OpenAI with an api-key only",
            ),
            "max_parallel_requests" => Some(
                "no per-deployment concurrency cap: rpm/tpm limits and the least_in_flight strategy are the nearest",
            ),
            "cache_creation_input_token_cost" => Some(
                "switchyard bills prompt-cache writes at the input price (cache reads at cached_input)",
            ),
            "input_cost_per_second" | "output_cost_per_second" => {
                Some("switchyard prices tokens only, not seconds")
            }
            k if k.starts_with("input_cost_per_token_")
                || k.starts_with("output_cost_per_token_") =>
            {
                Some(
                    "tiered or batch prices: switchyard has one input and one output price per model",
                )
            }
            _ => None,
        }
    } else if in_info {
        match last {
            k if k.starts_with("supports_") => Some(
                "a capability flag: switchyard routes on what a request contains (rules `has_tools`, `has_images`, `json_response`), not on model flags",
            ),
            "max_tokens" => Some(
                "ambiguous (LiteLLM's legacy field for either the context window or the output limit): set models[].context_window or max_output_tokens yourself",
            ),
            "access_groups" | "team_id" => {
                Some("model access groups: switchyard has no per-team model lists")
            }
            "description" | "metadata" | "litellm_provider" | "db_model" | "updated_at"
            | "updated_by" | "created_at" | "created_by" => Some("descriptive metadata only"),
            "cache_creation_input_token_cost" => Some(
                "switchyard bills prompt-cache writes at the input price (cache reads at cached_input)",
            ),
            "input_cost_per_second" | "output_cost_per_second" => {
                Some("switchyard prices tokens only, not seconds")
            }
            k if k.starts_with("input_cost_per_") || k.starts_with("output_cost_per_") => Some(
                "tiered, batch or media prices: switchyard has one input and one output price per model",
            ),
            _ => None,
        }
    } else {
        match (section, last) {
            ("router_settings", "redis_host" | "redis_port" | "redis_password" | "redis_url") => {
                Some(
                    "shared router state in Redis: switchyard keeps cooldowns and usage per replica for now",
                )
            }
            ("router_settings", "routing_strategy_args") => Some(
                "switchyard's strategies take no tuning arguments (latency uses an EWMA of each deployment's latency)",
            ),
            ("router_settings", "model_group_retry_policy") => {
                Some("retry policies per model group: switchyard's policies apply to every tier")
            }
            ("router_settings", "provider_budget_config") => {
                Some("provider budgets: switchyard has no spend caps per provider")
            }
            ("router_settings", "cache_responses" | "caching_groups") => {
                Some("switchyard has no response cache")
            }
            ("router_settings", "enable_tag_filtering") => {
                Some("tag filtering: write routing rules on tags instead")
            }
            ("router_settings", "default_litellm_params") => Some(
                "default request parameters: switchyard forwards each client's parameters as sent",
            ),
            ("litellm_settings", "drop_params" | "modify_params") => Some(
                "switchyard forwards the client's fields as sent; a provider that rejects a field answers 400",
            ),
            (
                "litellm_settings",
                "success_callback"
                | "failure_callback"
                | "callbacks"
                | "service_callback"
                | "service_callbacks"
                | "langfuse_default_tags",
            ) => Some(
                "logging callbacks: switchyard reports through Prometheus metrics, its spend log and OTLP spans (telemetry.otlp)",
            ),
            ("litellm_settings", "cache" | "cache_params") => {
                Some("switchyard has no response cache")
            }
            ("litellm_settings", "set_verbose" | "json_logs") => {
                Some("logging options: use RUST_LOG and --log-format json")
            }
            ("litellm_settings", "max_budget" | "budget_duration" | "max_end_user_budget") => {
                Some("budgets: switchyard has no spend caps yet")
            }
            ("litellm_settings", "turn_off_message_logging" | "redact_user_api_key_info") => Some(
                "switchyard never logs message content, and logs only the last four characters of a key",
            ),
            ("general_settings", "database_url" | "store_model_in_db") => Some(
                "LiteLLM's database (virtual keys, spend): switchyard keeps no key database; its spend log can write to PostgreSQL (spend_log.url)",
            ),
            ("general_settings", "alerting" | "alerting_threshold" | "alert_types") => Some(
                "alerting: switchyard exposes Prometheus metrics and ships alert rules (config/prometheus/alerts.yml)",
            ),
            ("include", _) => Some(
                "LiteLLM's include of other config files: switchyard imports one file; merge the included model lists into it first",
            ),
            ("general_settings", "master_key") => None,
            ("general_settings", _) => {
                Some("a LiteLLM proxy server setting with no switchyard equivalent")
            }
            ("environment_variables", _) => Some(
                "LiteLLM sets these variables from its config; switchyard reads ${VAR}s from its own environment: set them there (values are not copied, they may be secrets)",
            ),
            ("model_list", _) => Some("a deployment setting with no switchyard equivalent"),
            ("router_settings", _) => Some("a router setting with no switchyard equivalent"),
            ("litellm_settings", _) => {
                Some("a LiteLLM library setting with no switchyard equivalent")
            }
            _ => None,
        }
    };
    match reason {
        Some(r) => r.to_string(),
        None if in_params => "a deployment parameter with no switchyard equivalent".into(),
        None if in_info => "model metadata with no switchyard equivalent".into(),
        None => "not a LiteLLM section switchyard reads (it reads model_list, router_settings, litellm_settings and general_settings; YAML anchors defined here still apply where they are merged)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_groups_by_kind_and_keeps_file_order() {
        let mut r = Report::new("litellm.yaml");
        r.chosen("routing.default", 0, "the first model group");
        r.not_carried("litellm_settings.cache", 30, "no response cache");
        r.not_carried("model_list[0].litellm_params.temperature", 5, "defaults");
        r.not_carried("model_list[0].litellm_params.temperature", 5, "defaults");
        assert_eq!(r.items.len(), 3);
        let lines = r.lines();
        // By kind, then by line.
        assert_eq!(
            lines[0],
            "litellm.yaml:5: model_list[0].litellm_params.temperature: not carried over: defaults"
        );
        assert_eq!(
            lines[1],
            "litellm.yaml:30: litellm_settings.cache: not carried over: no response cache"
        );
        assert!(lines[2].starts_with("litellm.yaml: routing.default: chosen by the import"));
        let c = r.comments();
        assert!(
            c.contains("# Not carried over (no switchyard equivalent) (2):"),
            "{c}"
        );
        assert!(c.lines().all(|l| l.starts_with('#')), "{c}");
    }

    #[test]
    fn unread_keys_get_a_reason() {
        assert!(
            why_unread("model_list[1].litellm_params.temperature")
                .contains("default request parameter")
        );
        assert!(why_unread("model_list[1].model_info.supports_vision").contains("capability flag"));
        assert!(why_unread("litellm_settings.success_callback").contains("Prometheus"));
        assert!(why_unread("router_settings.redis_host").contains("Redis"));
        assert!(why_unread("environment_variables.REDIS_HOST").contains("environment"));
        assert!(why_unread("something_else").starts_with("not a LiteLLM section"));
    }
}
