//! Deployments: each `model_list` entry that switchyard can serve becomes a provider (shared by
//! deployments with the same endpoint and key) and a `models` entry in its group's tier, priced
//! from LiteLLM's costs or the bundled table.

use super::{Mapper, host_slug, slug, strategy, total, unique};
use crate::config::ConfigError;
use crate::import::litellm::{At, Deployment, Provider as Source};
use crate::import::prices;
use crate::import::providers::{Kind, Spec};
use crate::import::report::Report;
use crate::import::table::{Model, Price, PriceRef, Provider, Sourced, Text, Tier};
use std::collections::HashSet;

/// A deployment's model entry, with the deployment it came from (for its `order`).
struct Placed<'d> {
    model: Model,
    from: &'d Deployment,
}

impl Placed<'_> {
    fn order(&self) -> Option<i64> {
        self.from.order.as_ref().map(|o| o.value)
    }
}

impl Mapper<'_> {
    /// Every deployment that can be served becomes a model in its group's tier; the paths of
    /// those that cannot are returned.
    pub(super) fn deployments(&mut self) -> Result<Vec<String>, ConfigError> {
        let l = self.l;
        let mut groups: Vec<(String, Vec<&Deployment>)> = Vec::new();
        let mut skipped = Vec::new();
        for d in &l.deployments {
            if let Some((short, why)) = self.skip_reason(d) {
                self.report.not_carried(d.path.clone(), d.line, why);
                self.dropped.entry(d.group.value.clone()).or_insert(short);
                skipped.push(d.path.clone());
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == d.group.value) {
                Some((_, v)) => v.push(d),
                None => groups.push((d.group.value.clone(), vec![d])),
            }
        }
        for (g, _) in &groups {
            self.dropped.remove(g);
        }
        if groups.is_empty() {
            let mut reasons: Vec<String> = self
                .report
                .items
                .iter()
                .filter(|i| i.path.starts_with("model_list[") && !i.path.contains('.'))
                .map(|i| format!("{}: {}", i.path, i.why))
                .collect();
            reasons.dedup();
            return Err(ConfigError::whole_file(
                self.file,
                format!(
                    "nothing to import: no deployment can be served by switchyard ({})",
                    reasons.join("; ")
                ),
            ));
        }
        // Tier names first, so deployment names can avoid them.
        let group_names: HashSet<String> = groups.iter().map(|(g, _)| g.clone()).collect();
        for (g, ds) in &groups {
            let tier = match g.as_str() {
                "auto" | "context_window" => {
                    let t = unique(&format!("{g}-group"), &group_names);
                    self.report.chosen(
                        ds[0].group.path.clone(),
                        ds[0].group.line,
                        format!(
                            "`{g}` is reserved in a switchyard table (`auto` asks the router to choose; `context_window` names the context-window fallback chains): the tier is named `{t}`"
                        ),
                    );
                    t
                }
                _ => g.clone(),
            };
            self.names.insert(tier.clone());
            self.tiers.insert(g.clone(), tier);
        }
        for (g, ds) in &groups {
            self.group(g, ds)?;
        }
        self.summarize_prices();
        Ok(skipped)
    }

    /// Why a deployment cannot be imported: a few words (for references to its group) and the
    /// whole reason.
    fn skip_reason(&self, d: &Deployment) -> Option<(String, String)> {
        if d.wildcard {
            return Some((
                "a wildcard".into(),
                format!(
                    "wildcard routing (`{}` → `{}`): switchyard routes the names in its table only; list each model you serve as its own model_list entry",
                    d.group.value, d.model.value
                ),
            ));
        }
        if let Source::Unsupported(p) = d.provider.value {
            return Some((
                format!("provider `{p}` has no switchyard adapter"),
                format!(
                    "provider `{p}`: switchyard has no adapter for its API (it speaks OpenAI's, Azure OpenAI's and Anthropic's); the deployment is not imported"
                ),
            ));
        }
        let mode = d.info.mode.as_ref().map(|m| m.value.as_str());
        match mode {
            None | Some("chat") => {}
            Some("embedding") => {
                return Some((
                    "mode `embedding`".into(),
                    "model_info.mode `embedding`: the import carries chat deployments only; the deployment is not imported (add it by hand as a model with `kind: embedding`, which POST /v1/embeddings serves)".into(),
                ));
            }
            Some(m) => {
                return Some((
                    format!("mode `{m}`"),
                    format!(
                        "model_info.mode `{m}`: switchyard serves chat completions and embeddings only; the deployment is not imported"
                    ),
                ));
            }
        }
        let id = d.model.value.to_ascii_lowercase();
        if mode.is_none() && (id.contains("embedding") || id.contains("embed-")) {
            return Some((
                "an embedding model".into(),
                format!(
                    "`{}` looks like an embedding model (no model_info.mode says otherwise): the import carries chat deployments only; the deployment is not imported (add it by hand as a model with `kind: embedding`)",
                    d.model.value
                ),
            ));
        }
        None
    }

    fn group(&mut self, group: &str, ds: &[&Deployment]) -> Result<(), ConfigError> {
        let s = &self.l.settings;
        let tier_name = self
            .tiers
            .get(group)
            .cloned()
            .unwrap_or_else(|| group.to_string());
        let mut models: Vec<Placed<'_>> = Vec::new();
        for d in ds {
            let Source::Supported(spec) = d.provider.value else {
                continue;
            };
            let provider = self.provider(d, spec)?;
            let model = self.model(d, spec, &provider);
            models.push(Placed { model, from: d });
        }
        if models.len() > 1 {
            self.weights_from_limits(&mut models);
        }
        if models.iter().all(|p| p.model.weight == Some(0.0)) {
            if let Some(w) = models.iter().find_map(|p| p.from.weight.as_ref()) {
                self.report.not_carried(
                    w.path.clone(),
                    w.line,
                    format!(
                        "every deployment of `{group}` has weight 0, which leaves nothing to pick: the weights are left out, so the tier's deployments share its traffic evenly"
                    ),
                );
            }
            for p in &mut models {
                p.model.weight = None;
            }
        }
        let mut chosen: Option<Sourced<&'static str>> = None;
        if models.len() > 1 {
            if let Some(rs) = &s.routing_strategy {
                let st = strategy(&rs.value).unwrap_or("weighted");
                if rs.value == "cost-based-routing" {
                    models.sort_by(|a, b| total(&a.model).total_cmp(&total(&b.model)));
                    if self.once("cost-based") {
                        self.report.changed(
                            rs.path.clone(),
                            rs.line,
                            "cost-based-routing: each tier is `ordered` with its deployments cheapest first, so the cheapest healthy one takes the call",
                        );
                    }
                }
                chosen = Some(Sourced::new(st, rs.path.clone()));
            }
            if models.iter().any(|p| p.order().is_some()) {
                models.sort_by_key(|p| p.order().unwrap_or(i64::MAX));
                let first = models.iter().find_map(|p| p.from.order.clone());
                let (path, line) = first.map_or((String::new(), 0), |o| (o.path, o.line));
                if let Some(rs) = &s.routing_strategy {
                    if rs.value != "simple-shuffle" && rs.value != "cost-based-routing" {
                        self.report.changed(
                            path.clone(),
                            line,
                            format!(
                                "tier `{tier_name}` is `ordered` by litellm_params.order, so {} does not balance within it",
                                rs.value
                            ),
                        );
                    }
                }
                let mut orders: Vec<i64> = models.iter().filter_map(Placed::order).collect();
                let n = orders.len();
                orders.dedup();
                if orders.len() < n || models.iter().any(|p| p.order().is_none()) {
                    self.report.changed(
                        path.clone(),
                        line,
                        format!(
                            "tier `{tier_name}`: deployments of equal (or no) order are tried one after another in the order listed, not balanced among themselves"
                        ),
                    );
                }
                chosen = Some(Sourced::new("ordered", path));
            }
        }
        let names: Vec<String> = models.iter().map(|p| p.model.name.clone()).collect();
        self.table
            .models
            .extend(models.into_iter().map(|p| p.model));
        self.table.tiers.push(Tier {
            name: tier_name,
            models: names,
            strategy: chosen,
        });
        Ok(())
    }

    /// LiteLLM's simple-shuffle weighs deployments without `weight` by their rpm (else tpm).
    fn weights_from_limits(&mut self, models: &mut [Placed<'_>]) {
        let shuffle = self
            .l
            .settings
            .routing_strategy
            .as_ref()
            .is_none_or(|r| r.value == "simple-shuffle");
        if !shuffle || models.iter().any(|p| p.model.weight.is_some()) {
            return;
        }
        for key in ["rpm", "tpm"] {
            let get = |m: &Model| if key == "rpm" { m.rpm } else { m.tpm };
            if models.iter().all(|p| get(&p.model).is_some()) {
                for p in models.iter_mut() {
                    p.model.weight = get(&p.model).map(|v| v as f64);
                }
                let d = models[0].from;
                self.report.changed(
                    format!("{}.litellm_params.{key}", d.path),
                    d.line,
                    format!(
                        "tier `{}`: LiteLLM's simple-shuffle shares traffic by {key} when deployments have no weight; written as each deployment's weight (and still enforced as a limit)",
                        d.group.value
                    ),
                );
                return;
            }
        }
    }

    fn provider(&mut self, d: &Deployment, spec: &'static Spec) -> Result<String, ConfigError> {
        let s = &self.l.settings;
        let p = |k: &str| format!("{}.litellm_params.{k}", d.path);
        // OpenAI's own URL written out is still OpenAI, not a server of the user's own.
        let openai_itself = |b: &At<Text>| {
            b.value
                .as_literal()
                .and_then(|u| reqwest::Url::parse(&u).ok())
                .is_some_and(|u| u.host_str() == Some("api.openai.com"))
        };
        let custom_base = d.api_base.as_ref().is_some_and(|b| !openai_itself(b));
        let base_url = match spec.kind {
            Kind::Azure => {
                let base = match &d.api_base {
                    Some(b) => b.value.clone(),
                    None => {
                        let var = spec.base_env.unwrap_or("AZURE_API_BASE");
                        self.report.chosen(
                            p("api_base"),
                            d.line,
                            format!("no api_base: LiteLLM reads it from {var}; the table says ${{{var}}}"),
                        );
                        Text::var(var)
                    }
                }
                .trim_end_slash()
                .strip_suffix("/openai");
                let has_path = base
                    .as_literal()
                    .is_some_and(|b| b.contains("/openai/deployments/"));
                Some(if has_path {
                    base
                } else {
                    base.then(&format!("/openai/deployments/{}", d.model.value))
                })
            }
            Kind::Anthropic => d.api_base.as_ref().map(|b| {
                b.value
                    .clone()
                    .trim_end_slash()
                    .strip_suffix("/v1/messages")
                    .strip_suffix("/v1")
            }),
            Kind::Openai => {
                let base = match (&d.api_base, spec.base_url, spec.base_env) {
                    (Some(b), _, _) => Some(b.value.clone().trim_end_slash()),
                    (None, Some(def), _) => Some(Text::lit(def)),
                    (None, None, Some(var)) => {
                        self.report.chosen(
                            p("api_base"),
                            d.line,
                            format!(
                                "no api_base: LiteLLM reads it from {var}; the table says ${{{var}}}"
                            ),
                        );
                        Some(Text::var(var))
                    }
                    (None, None, None) if spec.prefix == "openai" => None,
                    (None, None, None) => {
                        return Err(ConfigError::at(
                            self.file,
                            self.text,
                            Some(d.provider.line).filter(|&l| l > 0),
                            None,
                            &p("api_base"),
                            format!(
                                "`{}/…` needs api_base (the server's URL, e.g. http://127.0.0.1:8000/v1)",
                                spec.prefix
                            ),
                        ));
                    }
                };
                base.map(|b| {
                    if spec.openai_path && !b.ends_with("/v1") {
                        b.then("/v1")
                    } else {
                        b
                    }
                })
            }
        };
        if let Some(note) = spec.note {
            self.report
                .changed(d.provider.path.clone(), d.provider.line, note);
        }
        let api_key = match (&d.api_key, spec.key_env) {
            (Some(k), _) => Some(k.value.clone()),
            (None, Some(_)) if spec.prefix == "openai" && custom_base => {
                self.report.changed(
                    p("api_key"),
                    d.line,
                    "no api_key for a server of your own: LiteLLM would send OPENAI_API_KEY from its environment there; switchyard sends no key (add api_key if the server needs one)",
                );
                None
            }
            (None, Some(var)) => {
                self.report.chosen(
                    p("api_key"),
                    d.line,
                    format!("no api_key: LiteLLM reads it from {var}; the table says ${{{var}}}"),
                );
                Some(Text::var(var))
            }
            (None, None) => None,
        };
        let api_version = match (spec.kind, &d.api_version) {
            (Kind::Azure, Some(v)) => Some(v.value.clone()),
            (Kind::Azure, None) => {
                self.report.chosen(
                    p("api_version"),
                    d.line,
                    "no api_version: LiteLLM reads it from AZURE_API_VERSION (or uses its own default); switchyard needs one, so the table says ${AZURE_API_VERSION}",
                );
                Some(Text::var("AZURE_API_VERSION"))
            }
            (_, Some(v)) => {
                self.report.not_carried(
                    v.path.clone(),
                    v.line,
                    "only Azure OpenAI takes an api-version",
                );
                None
            }
            (_, None) => None,
        };
        let timeout = d.timeout.as_ref().or(s.timeout.as_ref()).map(|t| t.value);
        let stream = d.stream_timeout.as_ref().or(s.stream_timeout.as_ref());
        if let Some(st) = stream {
            if self.once("stream_timeout") {
                self.report.changed(
                    st.path.clone(),
                    st.line,
                    "stream_timeout becomes stream_idle_timeout: the longest silence between two chunks; the first chunk must come within timeout",
                );
            }
        }
        let candidate = Provider {
            name: String::new(),
            kind: spec.kind,
            base_url,
            api_key,
            api_version,
            headers: d
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            timeout,
            stream_idle_timeout: stream.map(|t| t.value),
        };
        if let Some(existing) = self
            .table
            .providers
            .iter()
            .find(|x| x.same_endpoint(&candidate))
        {
            return Ok(existing.name.clone());
        }
        let taken: HashSet<String> = self
            .table
            .providers
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let host = d
            .api_base
            .as_ref()
            .filter(|_| custom_base)
            .and_then(|b| host_slug(&b.value));
        let base = match (spec.kind, &host) {
            (Kind::Azure, _) => format!("azure-{}", slug(&d.model.value)),
            // `openai/…` with an api_base is a server of the user's own, not OpenAI.
            (Kind::Openai, Some(h)) if spec.prefix == "openai" => h.clone(),
            (Kind::Openai, None) if spec.prefix == "openai" && custom_base => {
                "openai-compatible".to_string()
            }
            _ => spec.name.to_string(),
        };
        let name = match &host {
            _ if !taken.contains(&base) => base,
            Some(h) if !base.ends_with(h.as_str()) && !taken.contains(&format!("{base}-{h}")) => {
                format!("{base}-{h}")
            }
            _ => unique(&format!("{base}-{}", slug(&d.group.value)), &taken),
        };
        self.table.providers.push(Provider {
            name: name.clone(),
            ..candidate
        });
        Ok(name)
    }

    fn model(&mut self, d: &Deployment, spec: &'static Spec, provider: &str) -> Model {
        let group = &d.group.value;
        let name = match &d.info.id {
            Some(id)
                if !id.value.trim().is_empty()
                    && !self.names.contains(&id.value)
                    && id.value != "auto" =>
            {
                id.value.clone()
            }
            _ => unique(&format!("{group}@{provider}"), &self.names),
        };
        self.names.insert(name.clone());
        let price = self.price(d, spec);
        let max_output_tokens = match (&d.max_tokens, &d.info.max_output_tokens) {
            (Some(m), _) => {
                if spec.kind != Kind::Anthropic && self.once("max_tokens") {
                    self.report.changed(
                        m.path.clone(),
                        m.line,
                        "LiteLLM sends max_tokens on every call the client leaves it out of; switchyard sends max_output_tokens only where the API requires one (Anthropic)",
                    );
                }
                Some(m.value)
            }
            (None, Some(m)) => Some(m.value),
            (None, None) => None,
        }
        .filter(|&v| {
            let fits = u32::try_from(v).is_ok();
            if !fits {
                self.report.not_carried(
                    format!("{}.litellm_params.max_tokens", d.path),
                    d.line,
                    format!("{v} is larger than any output limit"),
                );
            }
            fits
        });
        if let Some(r) = d.rpm.as_ref().or(d.tpm.as_ref()) {
            if self.once("rpm") {
                self.report.changed(
                    r.path.clone(),
                    r.line,
                    "rpm and tpm are hard limits in switchyard on every strategy: a deployment that used them up is skipped until the minute ends",
                );
            }
        }
        let mut positive = |v: Option<&At<u64>>| -> Option<u64> {
            let v = v?;
            if v.value == 0 {
                self.report.not_carried(
                    v.path.clone(),
                    v.line,
                    "0 would let no request through: left out (no limit)",
                );
                None
            } else {
                Some(v.value)
            }
        };
        let rpm = positive(d.rpm.as_ref());
        let tpm = positive(d.tpm.as_ref());
        Model {
            name,
            provider: provider.to_string(),
            model: d.model.value.clone(),
            price,
            context_window: d.info.max_input_tokens.as_ref().map(|m| m.value),
            max_output_tokens,
            weight: d.weight.as_ref().map(|w| w.value),
            rpm,
            tpm,
            from: d.path.clone(),
        }
    }

    /// LiteLLM's costs when the deployment gives them, else the bundled table's price.
    fn price(&mut self, d: &Deployment, spec: &'static Spec) -> Option<PriceRef> {
        let bundled = crate::config::prices::bundled().ok();
        let mut candidates = Vec::new();
        if let Some(b) = &d.info.base_model {
            candidates.push(
                b.value
                    .split_once('/')
                    .map_or(b.value.clone(), |(_, m)| m.to_string()),
            );
        }
        candidates.push(d.model.value.clone());
        let mut from_table =
            bundled.and_then(|t| candidates.iter().find_map(|c| prices::bundled(t, c)));
        // An Azure deployment's name is the user's choice; the group's name is the best guess
        // at the model behind it when model_info.base_model does not say.
        if from_table.is_none() && spec.kind == Kind::Azure && d.info.base_model.is_none() {
            from_table = bundled.and_then(|t| prices::bundled(t, &d.group.value));
            if let Some((name, _)) = from_table {
                self.report.chosen(
                    format!("{}.model_info.base_model", d.path),
                    d.line,
                    format!(
                        "Azure deployment `{}` has no base_model: priced as `{name}`, after its model group's name (set model_info.base_model, or models[].price, if that is not the model)",
                        d.model.value
                    ),
                );
            }
        }
        let c = &d.costs;
        if !c.is_empty() {
            let fill = |v: &Option<At<f64>>,
                        what: &str,
                        fallback: Option<f64>,
                        report: &mut Report| {
                match (v, fallback) {
                    (Some(v), _) => prices::per_million(v.value),
                    (None, Some(f)) => {
                        report.changed(
                            format!("{}.model_info.{what}_cost_per_token", d.path),
                            d.line,
                            format!(
                                "not given: the bundled table's {f} USD per million tokens is used"
                            ),
                        );
                        f
                    }
                    (None, None) => {
                        report.changed(
                            format!("{}.model_info.{what}_cost_per_token", d.path),
                            d.line,
                            format!("not given and not in the bundled table: {what} tokens are priced at 0"),
                        );
                        0.0
                    }
                }
            };
            let t = from_table.map(|(_, p)| p);
            let input = fill(&c.input, "input", t.map(|p| p.input), self.report);
            let output = fill(&c.output, "output", t.map(|p| p.output), self.report);
            let cached_input = match (&c.cache_read, t.and_then(|p| p.cached_input)) {
                (Some(v), _) => Some(prices::per_million(v.value)),
                (None, Some(f)) => {
                    self.report.changed(
                        format!("{}.model_info.cache_read_input_token_cost", d.path),
                        d.line,
                        format!("not given: prompt-cache reads are priced at the bundled table's {f} USD per million tokens"),
                    );
                    Some(f)
                }
                (None, None) => None,
            };
            return Some(PriceRef::Inline(Price {
                input,
                output,
                cached_input,
            }));
        }
        match from_table {
            Some((name, p)) => {
                self.priced_by_name.push((d.path.clone(), d.provider.line));
                Some(PriceRef::Named(name.to_string(), p))
            }
            None if spec.self_hosted => {
                self.free.push((d.path.clone(), d.provider.line));
                None
            }
            None => {
                self.report.chosen(
                    format!("{}.litellm_params.model", d.path),
                    d.provider.line,
                    format!(
                        "no costs given and `{}` is not in the bundled price table: priced at 0, so its spend is not counted (set models[].price)",
                        d.model.value
                    ),
                );
                None
            }
        }
    }

    /// One report line for all deployments priced the same way, rather than one each.
    fn summarize_prices(&mut self) {
        let list = |v: &[(String, u32)]| {
            v.iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some((path, line)) = self.priced_by_name.first().cloned() {
            let why = format!(
                "no costs given for {} deployment(s) ({}): each is priced by the bundled price table entry its `price:` names (LiteLLM used its own cost map; check the numbers against your contract)",
                self.priced_by_name.len(),
                list(&self.priced_by_name)
            );
            self.report
                .chosen(format!("{path}.litellm_params.model"), line, why);
        }
        if let Some((path, line)) = self.free.first().cloned() {
            let why = format!(
                "self-hosted, no costs given ({}): priced at 0; set models[].price to count what they cost",
                list(&self.free)
            );
            self.report
                .chosen(format!("{path}.litellm_params.model"), line, why);
        }
    }
}
