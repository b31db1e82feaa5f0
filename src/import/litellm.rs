//! Reading a LiteLLM proxy config (`model_list`, `router_settings`, `litellm_settings`,
//! `general_settings`) into typed values that remember their YAML path and line. Input that is
//! not a LiteLLM config, or that LiteLLM itself would reject, is an error naming the file, line
//! and key; keys this reader does not know are left unread, for the report.

use super::providers::{self, Prefix, Spec};
use super::table::Text;
use super::yaml::{self, Entry, Node, Value};
use crate::config::ConfigError;

/// A value and where it was written.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub path: String,
    pub line: u32,
}

/// Which wire format a deployment needs.
#[derive(Debug, Clone, Copy)]
pub enum Provider {
    Supported(&'static Spec),
    /// A LiteLLM provider switchyard has no adapter for (Bedrock, Vertex AI, …).
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub id: Option<At<String>>,
    pub mode: Option<At<String>>,
    pub base_model: Option<At<String>>,
    pub max_input_tokens: Option<At<u64>>,
    pub max_output_tokens: Option<At<u64>>,
}

/// LiteLLM's per-token costs (USD per token), wherever the deployment gave them.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    pub input: Option<At<f64>>,
    pub output: Option<At<f64>>,
    pub cache_read: Option<At<f64>>,
}

impl Costs {
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none() && self.cache_read.is_none()
    }
}

/// One `model_list` entry.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `model_list[3]`.
    pub path: String,
    pub line: u32,
    pub group: At<String>,
    pub provider: At<Provider>,
    /// The provider's model id: `litellm_params.model` without its prefix.
    pub model: At<String>,
    /// `model_name` or `litellm_params.model` is a wildcard (`*`, `openai/*`).
    pub wildcard: bool,
    pub api_base: Option<At<Text>>,
    pub api_version: Option<At<Text>>,
    pub api_key: Option<At<Text>>,
    pub headers: Vec<(String, At<Text>)>,
    pub rpm: Option<At<u64>>,
    pub tpm: Option<At<u64>>,
    pub weight: Option<At<f64>>,
    pub order: Option<At<i64>>,
    pub timeout: Option<At<f64>>,
    pub stream_timeout: Option<At<f64>>,
    pub max_tokens: Option<At<u64>>,
    pub costs: Costs,
    pub info: ModelInfo,
}

/// `fallbacks: [{gpt-4o: [gpt-4o-mini, claude]}]`: one entry of a fallback list.
#[derive(Debug, Clone)]
pub struct Chain {
    pub from: String,
    pub to: Vec<String>,
    pub path: String,
    pub line: u32,
}

/// `model_group_alias`: a name clients may send, standing for a model group.
#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub group: String,
    pub hidden: bool,
    pub path: String,
    pub line: u32,
}

/// The router's settings, from `router_settings` or else `litellm_settings` (LiteLLM's router
/// takes its own settings first).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub routing_strategy: Option<At<String>>,
    pub num_retries: Option<At<u64>>,
    pub timeout: Option<At<f64>>,
    pub stream_timeout: Option<At<f64>>,
    pub allowed_fails: Option<At<u64>>,
    pub cooldown_time: Option<At<f64>>,
    pub disable_cooldowns: Option<At<bool>>,
    pub retry_after: Option<At<f64>>,
    pub max_fallbacks: Option<At<u64>>,
    pub enable_pre_call_checks: Option<At<bool>>,
    pub fallbacks: Vec<Chain>,
    pub context_window_fallbacks: Vec<Chain>,
    pub content_policy_fallbacks: Vec<Chain>,
    pub default_fallbacks: Option<At<Vec<String>>>,
    /// `XErrorRetries` → retries, as written.
    pub retry_policy: Vec<At<(String, u64)>>,
    /// `XErrorAllowedFails` → failures, as written.
    pub allowed_fails_policy: Vec<At<(String, u64)>>,
    pub aliases: Vec<Alias>,
    /// A `litellm_settings` key also given in `router_settings` with another value: (its path,
    /// line, the path that wins).
    pub shadowed: Vec<(String, u32, String)>,
}

/// A LiteLLM proxy config, read.
#[derive(Debug, Clone)]
pub struct LiteLlm {
    pub deployments: Vec<Deployment>,
    pub settings: Settings,
    pub master_key: Option<At<Text>>,
    /// Keys nobody read, as (path, line): each one is reported.
    pub unread: Vec<(String, u32)>,
}

/// Errors point into the file being imported.
struct Reader<'a> {
    file: &'a str,
    text: &'a str,
}

type Result<T> = std::result::Result<T, ConfigError>;

impl Reader<'_> {
    fn error(&self, line: u32, column: u32, path: &str, message: String) -> ConfigError {
        ConfigError::at(
            self.file,
            self.text,
            Some(line).filter(|&l| l > 0),
            Some(column).filter(|&c| c > 0),
            path,
            message,
        )
    }

    fn at_node(&self, n: &Node, path: &str, message: String) -> ConfigError {
        self.error(n.line, n.column, path, message)
    }

    fn at_entry(&self, e: &Entry, path: &str, message: String) -> ConfigError {
        if matches!(e.node.value, Value::Map(_) | Value::Seq(_) | Value::Null) {
            self.error(e.line, 0, path, message)
        } else {
            self.at_node(&e.node, path, message)
        }
    }

    fn at<T>(&self, e: &Entry, path: &str, value: T) -> At<T> {
        At {
            value,
            path: path.to_string(),
            line: e.line,
        }
    }

    /// A scalar as text: names and versions may be written unquoted as numbers.
    fn string(&self, e: &Entry, path: &str) -> Result<At<String>> {
        let s = match &e.node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(self.at_entry(
                    e,
                    path,
                    format!("expected a string, found {}", e.node.kind()),
                ));
            }
        };
        Ok(self.at(e, path, s))
    }

    /// A string that may be `os.environ/VAR`, LiteLLM's way of reading the environment.
    fn text(&self, e: &Entry, path: &str) -> Result<At<Text>> {
        let s = self.string(e, path)?;
        let text = match s.value.strip_prefix("os.environ/") {
            Some(var) => {
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.at_entry(e, path, format!(
                        "{:?}: switchyard reads variables written ${{NAME}} with letters, digits and _ only; rename the variable",
                        s.value
                    )));
                }
                Text::var(var)
            }
            None => Text::lit(s.value),
        };
        Ok(self.at(e, path, text))
    }

    fn number(&self, e: &Entry, path: &str) -> Result<At<f64>> {
        let v = match &e.node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match v {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(self.at(e, path, v)),
            _ => Err(self.at_entry(
                e,
                path,
                format!(
                    "expected a non-negative number, found {}{}",
                    e.node.found(),
                    env_hint(&e.node)
                ),
            )),
        }
    }

    fn whole(&self, e: &Entry, path: &str) -> Result<At<u64>> {
        let v = match &e.node.value {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e18 => Some(*f as u64),
            Value::Str(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        v.map(|v| self.at(e, path, v)).ok_or_else(|| {
            self.at_entry(
                e,
                path,
                format!(
                    "expected a non-negative whole number, found {}{}",
                    e.node.found(),
                    env_hint(&e.node)
                ),
            )
        })
    }

    fn int(&self, e: &Entry, path: &str) -> Result<At<i64>> {
        let v = match &e.node.value {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => Some(*f as i64),
            Value::Str(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        v.map(|v| self.at(e, path, v)).ok_or_else(|| {
            self.at_entry(
                e,
                path,
                format!("expected a whole number, found {}", e.node.found()),
            )
        })
    }

    fn boolean(&self, e: &Entry, path: &str) -> Result<At<bool>> {
        let v = match &e.node.value {
            Value::Bool(b) => Some(*b),
            // LiteLLM reads its YAML with Python, where people write `True`.
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        v.map(|v| self.at(e, path, v)).ok_or_else(|| {
            self.at_entry(
                e,
                path,
                format!("expected true or false, found {}", e.node.found()),
            )
        })
    }

    fn map<'n>(&self, e: &'n Entry, path: &str) -> Result<&'n Node> {
        match &e.node.value {
            Value::Map(_) => Ok(&e.node),
            _ => Err(self.at_entry(
                e,
                path,
                format!("expected a mapping, found {}", e.node.kind()),
            )),
        }
    }

    /// A list of model group names (a single name is taken as a list of one).
    fn names(&self, e: &Entry, path: &str) -> Result<Vec<String>> {
        match &e.node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    n.touch();
                    match &n.value {
                        Value::Str(s) => Ok(s.clone()),
                        _ => Err(self.at_node(
                            n,
                            &format!("{path}[{i}]"),
                            format!("expected a model group name, found {}", n.found()),
                        )),
                    }
                })
                .collect(),
            Value::Str(s) => Ok(vec![s.clone()]),
            _ => Err(self.at_entry(
                e,
                path,
                format!(
                    "expected a list of model group names, found {}",
                    e.node.kind()
                ),
            )),
        }
    }

    /// `[{a: [b, c]}, {d: [e]}]`, or the same as one mapping `{a: [b, c], d: [e]}`.
    fn chains(&self, e: &Entry, path: &str) -> Result<Vec<Chain>> {
        let mut out = Vec::new();
        let mut add = |node: &Node, at: &str| -> Result<()> {
            node.touch();
            for entry in node.entries() {
                entry.node.touch();
                let p = yaml::join(at, &entry.key);
                out.push(Chain {
                    from: entry.key.clone(),
                    to: self.names(entry, &p)?,
                    path: p,
                    line: entry.line,
                });
            }
            Ok(())
        };
        match &e.node.value {
            Value::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    if !matches!(n.value, Value::Map(_)) {
                        return Err(self.at_node(
                            n,
                            &p,
                            format!(
                                "expected a mapping of model group to fallback groups, as in [{{\"gpt-4o\": [\"gpt-4o-mini\"]}}], found {}",
                                n.kind()
                            ),
                        ));
                    }
                    add(n, &p)?;
                }
            }
            Value::Map(_) => add(&e.node, path)?,
            Value::Null => {}
            _ => {
                return Err(self.at_entry(
                    e,
                    path,
                    format!(
                        "expected a list like [{{\"gpt-4o\": [\"gpt-4o-mini\"]}}], found {}",
                        e.node.kind()
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// `{RateLimitErrorRetries: 3, …}`.
    fn counts(&self, e: &Entry, path: &str) -> Result<Vec<At<(String, u64)>>> {
        let m = self.map(e, path)?;
        m.entries()
            .iter()
            .map(|x| {
                x.node.touch();
                let p = yaml::join(path, &x.key);
                let n = self.whole(x, &p)?;
                Ok(At {
                    value: (x.key.clone(), n.value),
                    path: p,
                    line: x.line,
                })
            })
            .collect()
    }
}

fn env_hint(n: &Node) -> &'static str {
    match &n.value {
        Value::Str(s) if s.starts_with("os.environ/") => {
            " (switchyard reads numbers from the table itself: write the number)"
        }
        _ => "",
    }
}

/// Reads `text` (the file `file`) as a LiteLLM proxy config.
pub fn read(text: &str, file: &str) -> Result<LiteLlm> {
    let r = Reader { file, text };
    let root = yaml::parse(text, file)?;
    root.touch();
    let top_keys: Vec<&str> = root.entries().iter().map(|e| e.key.as_str()).collect();
    match &root.value {
        Value::Map(_) => {}
        Value::Null => {
            return Err(ConfigError::whole_file(
                file,
                "the file is empty: not a LiteLLM config (expected model_list)",
            ));
        }
        _ => {
            return Err(r.at_node(
                &root,
                "",
                format!(
                    "not a LiteLLM config: expected a mapping with model_list, found {}",
                    root.kind()
                ),
            ));
        }
    }
    let Some(list) = root.get("model_list") else {
        let message = if top_keys.contains(&"providers") && top_keys.contains(&"tiers") {
            "this is a switchyard routing table already (it has providers and tiers), not a LiteLLM config".to_string()
        } else {
            format!(
                "not a LiteLLM proxy config: it has no model_list (top-level keys: {})",
                if top_keys.is_empty() {
                    "none".to_string()
                } else {
                    top_keys.join(", ")
                }
            )
        };
        return Err(ConfigError::whole_file(file, message));
    };
    let items = match &list.node.value {
        Value::Seq(items) if !items.is_empty() => items,
        Value::Seq(_) | Value::Null => {
            return Err(r.at_entry(
                list,
                "model_list",
                "model_list is empty: there is nothing to import".into(),
            ));
        }
        _ => {
            return Err(r.at_entry(
                list,
                "model_list",
                format!("expected a list of deployments, found {}", list.node.kind()),
            ));
        }
    };
    let mut deployments = Vec::new();
    for (i, n) in items.iter().enumerate() {
        deployments.push(deployment(&r, n, &format!("model_list[{i}]"))?);
    }

    let router = section(&r, &root, "router_settings")?;
    let lsettings = section(&r, &root, "litellm_settings")?;
    let general = section(&r, &root, "general_settings")?;
    let settings = settings(&r, router, lsettings)?;
    let master_key = match general.and_then(|g| g.get("master_key")) {
        Some(e) if !e.node.is_null() => Some(r.text(e, "general_settings.master_key")?),
        _ => None,
    };
    Ok(LiteLlm {
        deployments,
        settings,
        master_key,
        unread: root.unread(""),
    })
}

fn section<'n>(r: &Reader<'_>, root: &'n Node, name: &str) -> Result<Option<&'n Node>> {
    match root.get(name) {
        None => Ok(None),
        Some(e) if e.node.is_null() => Ok(None),
        Some(e) => r.map(e, name).map(Some),
    }
}

fn deployment(r: &Reader<'_>, n: &Node, path: &str) -> Result<Deployment> {
    n.touch();
    if !matches!(n.value, Value::Map(_)) {
        return Err(r.at_node(
            n,
            path,
            format!(
                "expected a deployment (a mapping with model_name and litellm_params), found {}",
                n.kind()
            ),
        ));
    }
    let Some(name) = n.get("model_name") else {
        return Err(r.at_node(
            n,
            &format!("{path}.model_name"),
            "a deployment needs model_name (the name clients send as `model`)".into(),
        ));
    };
    let group = r.string(name, &format!("{path}.model_name"))?;
    if group.value.trim().is_empty() {
        return Err(r.at_entry(name, &group.path, "model_name must not be empty".into()));
    }
    let params_path = format!("{path}.litellm_params");
    let Some(params) = n.get("litellm_params") else {
        return Err(r.at_node(
            n,
            &params_path,
            format!(
                "deployment `{}` has no litellm_params (it needs at least litellm_params.model)",
                group.value
            ),
        ));
    };
    let params = r.map(params, &params_path)?;
    let p = |key: &str| format!("{params_path}.{key}");
    let Some(model_entry) = params.get("model") else {
        return Err(r.at_node(
            params,
            &p("model"),
            format!(
                "deployment `{}` has no litellm_params.model (e.g. openai/gpt-4o)",
                group.value
            ),
        ));
    };
    let raw = r.string(model_entry, &p("model"))?;
    let custom = match params.get("custom_llm_provider") {
        Some(e) => Some(r.string(e, &p("custom_llm_provider"))?),
        None => None,
    };
    let wildcard = group.value.contains('*') || raw.value.contains('*');
    let (prefix, id) = split_model(&raw.value, custom.as_ref().map(|c| c.value.as_str()));
    let Some(prefix) = prefix else {
        return Err(r.at_entry(
            model_entry,
            &raw.path,
            format!(
                "cannot tell the provider of `{}`: write it as provider/model (e.g. openai/{0}, anthropic/…, azure/DEPLOYMENT)",
                raw.value
            ),
        ));
    };
    let provider = match providers::lookup(&prefix) {
        Some(Prefix::Supported(s)) => Provider::Supported(s),
        Some(Prefix::Unsupported(u)) => Provider::Unsupported(u),
        None => {
            let (at, what) = match (&custom, params.get("custom_llm_provider")) {
                (Some(c), Some(e)) => (e, c.path.clone()),
                _ => (model_entry, raw.path.clone()),
            };
            return Err(r.at_entry(
                at,
                &what,
                format!(
                    "unknown provider `{prefix}` in `{}`: switchyard imports {} (any other OpenAI-compatible server: openai/MODEL with api_base)",
                    raw.value,
                    providers::supported_list()
                ),
            ));
        }
    };
    if id.is_empty() && !wildcard {
        return Err(r.at_entry(
            model_entry,
            &raw.path,
            format!("`{}` names no model after the provider", raw.value),
        ));
    }

    let opt_text = |key: &str| -> Result<Option<At<Text>>> {
        match params.get(key) {
            Some(e) if !e.node.is_null() => r.text(e, &p(key)).map(Some),
            _ => Ok(None),
        }
    };
    let api_base = match opt_text("api_base")? {
        Some(b) => Some(b),
        None => opt_text("base_url")?,
    };
    if let Some(b) = &api_base {
        let url = b.value.as_literal();
        let ok = url.as_deref().is_none_or(|u| {
            reqwest::Url::parse(u.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        });
        if !ok {
            return Err(r.error(
                b.line,
                0,
                &b.path,
                format!("{:?} is not an http(s) URL", url.unwrap_or_default()),
            ));
        }
    }
    let api_version = opt_text("api_version")?;
    let api_key = opt_text("api_key")?;
    let mut headers = Vec::new();
    if let Some(org) = opt_text("organization")? {
        headers.push(("OpenAI-Organization".to_string(), org));
    }
    for key in ["extra_headers", "headers"] {
        if let Some(e) = params.get(key) {
            let m = r.map(e, &p(key))?;
            for h in m.entries() {
                h.node.touch();
                let hp = yaml::join(&p(key), &h.key);
                if reqwest::header::HeaderName::from_bytes(h.key.as_bytes()).is_err() {
                    return Err(r.error(
                        h.line,
                        0,
                        &hp,
                        format!("{:?} is not a valid HTTP header name", h.key),
                    ));
                }
                headers.push((h.key.clone(), r.text(h, &hp)?));
            }
        }
    }
    let num = |node: &Node, base: &str, key: &str| -> Result<Option<At<f64>>> {
        match node.get(key) {
            Some(e) if !e.node.is_null() => r.number(e, &format!("{base}.{key}")).map(Some),
            _ => Ok(None),
        }
    };
    let whole = |node: &Node, base: &str, key: &str| -> Result<Option<At<u64>>> {
        match node.get(key) {
            Some(e) if !e.node.is_null() => r.whole(e, &format!("{base}.{key}")).map(Some),
            _ => Ok(None),
        }
    };
    // rpm/tpm belong in litellm_params; older configs put them next to it.
    let rpm = match whole(params, &params_path, "rpm")? {
        Some(v) => Some(v),
        None => whole(n, path, "rpm")?,
    };
    let tpm = match whole(params, &params_path, "tpm")? {
        Some(v) => Some(v),
        None => whole(n, path, "tpm")?,
    };
    let order = match params.get("order") {
        Some(e) if !e.node.is_null() => Some(r.int(e, &p("order"))?),
        _ => None,
    };

    let info_path = format!("{path}.model_info");
    let info_node = match n.get("model_info") {
        Some(e) if !e.node.is_null() => Some(r.map(e, &info_path)?),
        _ => None,
    };
    let mut info = ModelInfo::default();
    let mut costs = Costs::default();
    for (node, base) in [(Some(params), &params_path), (info_node, &info_path)] {
        let Some(node) = node else { continue };
        costs.input = costs.input.or(num(node, base, "input_cost_per_token")?);
        costs.output = costs.output.or(num(node, base, "output_cost_per_token")?);
        costs.cache_read = costs
            .cache_read
            .or(num(node, base, "cache_read_input_token_cost")?);
    }
    if let Some(node) = info_node {
        let s = |key: &str| -> Result<Option<At<String>>> {
            match node.get(key) {
                Some(e) if !e.node.is_null() => {
                    r.string(e, &format!("{info_path}.{key}")).map(Some)
                }
                _ => Ok(None),
            }
        };
        info.id = s("id")?;
        info.mode = s("mode")?;
        info.base_model = s("base_model")?;
        info.max_input_tokens = whole(node, &info_path, "max_input_tokens")?;
        info.max_output_tokens = whole(node, &info_path, "max_output_tokens")?;
    }

    Ok(Deployment {
        path: path.to_string(),
        line: n.line,
        provider: At {
            value: provider,
            path: raw.path.clone(),
            line: raw.line,
        },
        model: At {
            value: id,
            path: raw.path.clone(),
            line: raw.line,
        },
        group,
        wildcard,
        api_base,
        api_version,
        api_key,
        headers,
        rpm,
        tpm,
        weight: num(params, &params_path, "weight")?,
        order,
        timeout: num(params, &params_path, "timeout")?,
        stream_timeout: num(params, &params_path, "stream_timeout")?,
        max_tokens: whole(params, &params_path, "max_tokens")?,
        costs,
        info,
    })
}

/// `provider/model-id`, LiteLLM's way: the prefix is everything before the first `/`, unless
/// `custom_llm_provider` names it; a bare model name is attributed as LiteLLM would.
fn split_model(model: &str, custom: Option<&str>) -> (Option<String>, String) {
    if let Some(c) = custom {
        let id = model
            .strip_prefix(c)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(model);
        return (Some(c.to_string()), id.to_string());
    }
    match model.split_once('/') {
        Some((prefix, id)) => (Some(prefix.to_string()), id.to_string()),
        None => (
            providers::infer(model).map(str::to_string),
            model.to_string(),
        ),
    }
}

/// Where one setting is read from: `router_settings.<key>` first, then `litellm_settings.<key>`.
struct Sources<'n> {
    router: Option<&'n Node>,
    litellm: Option<&'n Node>,
}

impl<'n> Sources<'n> {
    /// The entry that counts and its path; a different value for the same setting in
    /// `litellm_settings` is remembered as shadowed.
    fn pick(
        &self,
        router_key: &str,
        litellm_key: &str,
        shadowed: &mut Vec<(String, u32, String)>,
    ) -> Option<(&'n Entry, String)> {
        let a = self
            .router
            .and_then(|n| n.get(router_key))
            .filter(|e| !e.node.is_null());
        let b = self
            .litellm
            .and_then(|n| n.get(litellm_key))
            .filter(|e| !e.node.is_null());
        match (a, b) {
            (Some(a), Some(b)) => {
                let winner = format!("router_settings.{router_key}");
                if !same(&a.node, &b.node) {
                    shadowed.push((
                        format!("litellm_settings.{litellm_key}"),
                        b.line,
                        winner.clone(),
                    ));
                }
                b.node.touch_all();
                Some((a, winner))
            }
            (Some(a), None) => Some((a, format!("router_settings.{router_key}"))),
            (None, Some(b)) => Some((b, format!("litellm_settings.{litellm_key}"))),
            (None, None) => None,
        }
    }
}

/// Structural equality of two YAML values.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => *x as f64 == *y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| a.key == b.key && same(&a.node, &b.node))
        }
        _ => false,
    }
}

fn settings(r: &Reader<'_>, router: Option<&Node>, litellm: Option<&Node>) -> Result<Settings> {
    let src = Sources { router, litellm };
    let mut s = Settings::default();
    let mut shadowed = Vec::new();
    macro_rules! read {
        ($field:ident, $how:ident, $rk:expr, $lk:expr) => {
            if let Some((e, path)) = src.pick($rk, $lk, &mut shadowed) {
                s.$field = Some(r.$how(e, &path)?);
            }
        };
    }
    read!(
        routing_strategy,
        string,
        "routing_strategy",
        "routing_strategy"
    );
    read!(num_retries, whole, "num_retries", "num_retries");
    read!(timeout, number, "timeout", "request_timeout");
    read!(stream_timeout, number, "stream_timeout", "stream_timeout");
    read!(allowed_fails, whole, "allowed_fails", "allowed_fails");
    read!(cooldown_time, number, "cooldown_time", "cooldown_time");
    read!(
        disable_cooldowns,
        boolean,
        "disable_cooldowns",
        "disable_cooldowns"
    );
    read!(retry_after, number, "retry_after", "retry_after");
    read!(max_fallbacks, whole, "max_fallbacks", "max_fallbacks");
    read!(
        enable_pre_call_checks,
        boolean,
        "enable_pre_call_checks",
        "enable_pre_call_checks"
    );
    for (field, key) in [
        (&mut s.fallbacks, "fallbacks"),
        (&mut s.context_window_fallbacks, "context_window_fallbacks"),
        (&mut s.content_policy_fallbacks, "content_policy_fallbacks"),
    ] {
        if let Some((e, path)) = src.pick(key, key, &mut shadowed) {
            *field = r.chains(e, &path)?;
        }
    }
    if let Some((e, path)) = src.pick("default_fallbacks", "default_fallbacks", &mut shadowed) {
        let names = r.names(e, &path)?;
        s.default_fallbacks = Some(r.at(e, &path, names));
    }
    if let Some((e, path)) = src.pick("retry_policy", "retry_policy", &mut shadowed) {
        s.retry_policy = r.counts(e, &path)?;
    }
    if let Some((e, path)) = src.pick(
        "allowed_fails_policy",
        "allowed_fails_policy",
        &mut shadowed,
    ) {
        s.allowed_fails_policy = r.counts(e, &path)?;
    }
    if let Some((e, path)) = src.pick("model_group_alias", "model_group_alias", &mut shadowed) {
        let m = r.map(e, &path)?;
        for a in m.entries() {
            a.node.touch();
            let p = yaml::join(&path, &a.key);
            let (group, hidden) = match &a.node.value {
                Value::Str(g) => (g.clone(), false),
                Value::Map(_) => {
                    let Some(model) = a.node.get("model") else {
                        return Err(r.at_entry(
                            a,
                            &p,
                            "expected the model group as a string or {model: NAME, hidden: true}"
                                .into(),
                        ));
                    };
                    let hidden = match a.node.get("hidden") {
                        Some(h) => r.boolean(h, &format!("{p}.hidden"))?.value,
                        None => false,
                    };
                    (r.string(model, &format!("{p}.model"))?.value, hidden)
                }
                _ => {
                    return Err(r.at_entry(
                        a,
                        &p,
                        format!("expected a model group name, found {}", a.node.kind()),
                    ));
                }
            };
            s.aliases.push(Alias {
                name: a.key.clone(),
                group,
                hidden,
                path: p,
                line: a.line,
            });
        }
    }
    s.shadowed = shadowed;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        read(text, "litellm.yaml").unwrap_err()
    }

    #[test]
    fn reads_deployments_with_their_paths() {
        let text = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: azure/gpt-4o-eu\n      api_key: os.environ/AZURE_KEY_EU\n      rpm: 60\n      temperature: 0.2\n    model_info:\n      input_cost_per_token: 0.0000025\nrouter_settings:\n  num_retries: 2\nlitellm_settings:\n  num_retries: 5\n  drop_params: true\n";
        let l = read(text, "litellm.yaml").unwrap();
        let d = &l.deployments[0];
        assert_eq!(
            (d.group.value.as_str(), d.model.value.as_str()),
            ("gpt-4o", "gpt-4o-eu")
        );
        assert!(matches!(d.provider.value, Provider::Supported(s) if s.prefix == "azure"));
        assert_eq!(d.api_key.as_ref().unwrap().value, Text::var("AZURE_KEY_EU"));
        assert_eq!(d.rpm.as_ref().map(|r| (r.value, r.line)), Some((60, 6)));
        assert_eq!(d.costs.input.as_ref().unwrap().value, 0.0000025);
        assert_eq!(l.settings.num_retries.as_ref().unwrap().value, 2);
        assert_eq!(
            l.settings.shadowed,
            vec![(
                "litellm_settings.num_retries".to_string(),
                13,
                "router_settings.num_retries".to_string()
            )]
        );
        assert_eq!(
            l.unread,
            vec![
                ("model_list[0].litellm_params.temperature".to_string(), 7),
                ("litellm_settings.drop_params".to_string(), 14),
            ]
        );
    }

    #[test]
    fn bad_input_names_file_line_and_key() {
        let e = err(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: opneai/gpt-4o\n",
        );
        assert_eq!(
            (e.line, e.path.as_str()),
            (Some(4), "model_list[0].litellm_params.model")
        );
        assert!(e.message.contains("unknown provider `opneai`"), "{e}");
        let e = err("model_list:\n  - litellm_params: {model: openai/gpt-4o}\n");
        assert_eq!(
            (e.line, e.path.as_str()),
            (Some(2), "model_list[0].model_name")
        );
        let e = err("model_list:\n  - model_name: a\n    litellm_params: {api_key: x}\n");
        assert_eq!(e.path, "model_list[0].litellm_params.model");
        assert_eq!(e.line, Some(3));
        let e =
            err("model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o, rpm: lots}\n");
        assert_eq!(e.path, "model_list[0].litellm_params.rpm");
        assert!(e.message.contains("whole number"), "{e}");
        let e = err("providers: {}\ntiers: {}\n");
        assert!(
            e.message.contains("switchyard routing table already"),
            "{e}"
        );
        let e = err("general_settings: {}\n");
        assert!(e.message.contains("no model_list"), "{e}");
        let e = err("- just\n- a list\n");
        assert!(e.message.contains("not a LiteLLM config"), "{e}");
        let e = err("");
        assert!(e.message.contains("empty"), "{e}");
        let e = err("model_list:\n  - model_name: a\n    litellm_params: {model: mystery-model}\n");
        assert!(e.message.contains("cannot tell the provider"), "{e}");
        let e = err("model_list: []\n");
        assert!(e.message.contains("nothing to import"), "{e}");
        let e = err(
            "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o}\nrouter_settings:\n  fallbacks: [gpt-4o]\n",
        );
        assert_eq!(
            (e.line, e.path.as_str()),
            (Some(5), "router_settings.fallbacks[0]")
        );
        let e = err(
            "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o, api_key: os.environ/MY-KEY}\n",
        );
        assert!(e.message.contains("rename the variable"), "{e}");
        let e =
            err("model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o, rpm: -5}\n");
        assert!(e.message.ends_with("found -5"), "{e}");
        let e = err(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: gpt-4o\n      api_base: localhost:8000\n",
        );
        assert_eq!(
            (e.line, e.path.as_str()),
            (Some(5), "model_list[0].litellm_params.api_base")
        );
        assert!(e.message.contains("not an http(s) URL"), "{e}");
        let e = err(
            "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o, extra_headers: {\"x y\": z}}\n",
        );
        assert!(e.message.contains("not a valid HTTP header name"), "{e}");
    }

    #[test]
    fn provider_prefixes_split_like_litellm() {
        assert_eq!(
            split_model("openrouter/anthropic/claude-3.5-sonnet", None),
            (
                Some("openrouter".into()),
                "anthropic/claude-3.5-sonnet".into()
            )
        );
        assert_eq!(
            split_model("gpt-4o", None),
            (Some("openai".into()), "gpt-4o".into())
        );
        assert_eq!(
            split_model("my-model", Some("openai")),
            (Some("openai".into()), "my-model".into())
        );
        assert_eq!(
            split_model("openai/my-model", Some("openai")),
            (Some("openai".into()), "my-model".into())
        );
    }
}
