//! Cross-reference checks that serde cannot express.

use super::error::ConfigError;
use super::reliability::{CONTEXT_WINDOW_KEY, Strategy};
use super::schema::{Condition, Config, EmbedderKind, EscalateOn, ProviderKind};
use serde_saphyr::{Location, Spanned};
use std::collections::HashSet;

/// Names a client may send as `model` that mean "let the router decide".
pub const AUTO_MODEL: &str = "auto";

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn at(&self, loc: Location, path: String, message: String) -> ConfigError {
        let line = u32::try_from(loc.line()).ok().filter(|&l| l > 0);
        let col = u32::try_from(loc.column()).ok().filter(|&c| c > 0);
        ConfigError::at(self.file, self.text, line, col, &path, message)
    }

    fn spanned<T>(&self, s: &Spanned<T>, path: String, message: String) -> ConfigError {
        self.at(s.referenced, path, message)
    }

    /// For map keys, which carry no span: the first line that defines `key:` under a section.
    fn key(&self, section: &str, key: &str, path: String, message: String) -> ConfigError {
        let line = find_key_line(self.text, section, key);
        ConfigError::at(
            self.file,
            self.text,
            line.map(|(l, _)| l),
            line.map(|(_, c)| c),
            &path,
            message,
        )
    }
}

fn find_key_line(text: &str, section: &str, key: &str) -> Option<(u32, u32)> {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_section = trimmed.starts_with(&format!("{section}:"));
            if in_section && key.is_empty() {
                return Some((u32::try_from(i + 1).ok()?, 1));
            }
            if in_section {
                // Flow style on the section line itself: `fallbacks: { budget: [mid] }`.
                if let Some(pos) = line.find(&format!("{key}:")) {
                    return Some((u32::try_from(i + 1).ok()?, u32::try_from(pos + 1).ok()?));
                }
            }
            continue;
        }
        let bare = trimmed.trim_start_matches(['"', '\'']);
        if in_section
            && bare.starts_with(key)
            && bare[key.len()..]
                .trim_start_matches(['"', '\''])
                .starts_with(':')
        {
            return Some((u32::try_from(i + 1).ok()?, u32::try_from(indent + 1).ok()?));
        }
    }
    None
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(super) fn validate(c: &Config, file: &str, text: &str) -> Result<(), ConfigError> {
    let ck = Checker { file, text };

    if c.server
        .listen
        .as_str()
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        return Err(ck.key(
            "server",
            "listen",
            "server.listen".into(),
            format!(
                "{:?} is not a socket address (write e.g. 127.0.0.1:4000)",
                c.server.listen.as_str()
            ),
        ));
    }
    if c.server.max_body_bytes == 0 {
        return Err(ck.key(
            "server",
            "max_body_bytes",
            "server.max_body_bytes".into(),
            "must be greater than 0".into(),
        ));
    }

    for (name, p) in &c.providers {
        let path = format!("providers.{name}");
        if let Some(url) = &p.base_url {
            match reqwest::Url::parse(url.as_str()) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return Err(ck.key(
                        "providers",
                        name,
                        format!("{path}.base_url"),
                        format!("{:?} is not an http(s) URL", url.as_str()),
                    ));
                }
            }
        }
        if p.kind == ProviderKind::Azure && p.base_url.is_none() {
            return Err(ck.key("providers", name, format!("{path}.base_url"),
                "an azure provider needs base_url (https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT)".into()));
        }
        if p.kind == ProviderKind::Azure && p.api_version.is_none() {
            return Err(ck.key(
                "providers",
                name,
                format!("{path}.api_version"),
                "an azure provider needs api_version (e.g. 2024-10-21)".into(),
            ));
        }
        let rate = p.simulate.failure_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(ck.key(
                "providers",
                name,
                format!("{path}.simulate.failure_rate"),
                format!("{rate} is outside 0.0–1.0"),
            ));
        }
        for h in p.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ck.key(
                    "providers",
                    name,
                    format!("{path}.headers"),
                    format!("{h:?} is not a valid header name"),
                ));
            }
        }
    }

    let tier_names: HashSet<&String> = c.tiers.keys().collect();
    let mut model_names = HashSet::new();
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        let loc = m.provider.referenced;
        if m.name.is_empty() {
            return Err(ck.at(
                loc,
                format!("{path}.name"),
                "a model needs a non-empty name".into(),
            ));
        }
        if !model_names.insert(m.name.as_str()) {
            return Err(ck.at(
                loc,
                format!("{path}.name"),
                format!("model `{}` is defined twice", m.name),
            ));
        }
        if m.name == AUTO_MODEL || tier_names.contains(&m.name) {
            return Err(ck.at(loc, format!("{path}.name"),
                format!("model name `{}` is also a tier name or `auto`; a request's `model` must mean one thing", m.name)));
        }
        if !c.providers.contains_key(&m.provider.value) {
            return Err(ck.spanned(
                &m.provider,
                format!("{path}.provider"),
                format!(
                    "unknown provider `{}` (defined: {})",
                    m.provider.value,
                    list(c.providers.keys())
                ),
            ));
        }
        for (what, v) in [
            ("input", m.price.input),
            ("output", m.price.output),
            ("cached_input", m.price.cached_input.unwrap_or(0.0)),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ck.at(
                    loc,
                    format!("{path}.price.{what}"),
                    format!("price {v} must be a non-negative number"),
                ));
            }
        }
    }

    if c.tiers.contains_key(AUTO_MODEL) {
        return Err(ck.key(
            "tiers",
            AUTO_MODEL,
            "tiers.auto".into(),
            "`auto` is reserved for the router".into(),
        ));
    }
    for (name, t) in &c.tiers {
        if t.models.is_empty() {
            return Err(ck.key(
                "tiers",
                name,
                format!("tiers.{name}.models"),
                "a tier needs at least one model".into(),
            ));
        }
        for (i, m) in t.models.iter().enumerate() {
            if !model_names.contains(m.value.as_str()) {
                return Err(ck.spanned(
                    m,
                    format!("tiers.{name}.models[{i}]"),
                    format!(
                        "unknown model `{}` (defined: {})",
                        m.value,
                        list(c.models.iter().map(|m| &m.name))
                    ),
                ));
            }
        }
    }
    if c.tiers.is_empty() {
        return Err(ck.key(
            "tiers",
            "",
            "tiers".into(),
            "define at least one tier".into(),
        ));
    }

    let tier_check = |s: &Spanned<String>, path: String| -> Result<(), ConfigError> {
        if c.tiers.contains_key(&s.value) {
            Ok(())
        } else {
            Err(ck.spanned(
                s,
                path,
                format!(
                    "unknown tier `{}` (defined: {})",
                    s.value,
                    list(c.tiers.keys())
                ),
            ))
        }
    };
    tier_check(&c.routing.default, "routing.default".into())?;
    if let Some(cf) = &c.routing.counterfactual {
        if !model_names.contains(cf.value.as_str()) {
            tier_check(cf, "routing.counterfactual".into()).map_err(|mut e| {
                e.message = format!(
                    "`{}` is neither a tier ({}) nor a model",
                    cf.value,
                    list(c.tiers.keys())
                );
                e
            })?;
        }
    }
    if let Some(s) = &c.spend_log {
        crate::cost::spend::check_config(s).map_err(|(key, m)| {
            let path = format!("spend_log.{key}");
            match key {
                "url" => ck.spanned(&s.url, path, m),
                "table" => ck.spanned(&s.table, path, m),
                _ => ck.key("spend_log", key, path, m),
            }
        })?;
    }

    for (i, a) in c.routing.aliases.iter().enumerate() {
        if a == AUTO_MODEL || c.tiers.contains_key(a) || model_names.contains(a.as_str()) {
            return Err(ck.key(
                "routing",
                "aliases",
                format!("routing.aliases[{i}]"),
                format!("alias `{a}` is already `auto`, a tier or a model name"),
            ));
        }
    }
    let routed_names: Vec<&str> = std::iter::once(AUTO_MODEL)
        .chain(c.routing.aliases.iter().map(String::as_str))
        .collect();

    let mut rule_names = HashSet::new();
    for (i, r) in c.routing.rules.iter().enumerate() {
        let path = format!("routing.rules[{i}]");
        if !rule_names.insert(r.name.as_str()) {
            return Err(ck.spanned(
                &r.when,
                format!("{path}.name"),
                format!("rule `{}` is defined twice", r.name),
            ));
        }
        tier_check(&r.tier, format!("{path}.tier"))?;
        check_condition(&r.when.value, &format!("{path}.when"), &routed_names)
            .map_err(|(p, m)| ck.spanned(&r.when, p, m))?;
    }

    if let Some(sem) = &c.routing.semantic {
        let loc = |p: &str| format!("routing.semantic.{p}");
        if sem.utterances.is_empty() {
            return Err(ck.key(
                "routing",
                "semantic",
                loc("utterances"),
                "give at least one tier's utterances".into(),
            ));
        }
        for (tier, list) in &sem.utterances {
            if !c.tiers.contains_key(tier) {
                return Err(ck.key(
                    "routing",
                    "semantic",
                    loc(&format!("utterances.{tier}")),
                    format!(
                        "unknown tier `{tier}` (defined: {})",
                        list_names(c.tiers.keys())
                    ),
                ));
            }
            if list.is_empty() || list.iter().any(|u| u.trim().is_empty()) {
                return Err(ck.key(
                    "routing",
                    "semantic",
                    loc(&format!("utterances.{tier}")),
                    "utterances must be non-empty strings".into(),
                ));
            }
        }
        for (tier, t) in &sem.thresholds {
            if !sem.utterances.contains_key(tier) {
                return Err(ck.key(
                    "routing",
                    "semantic",
                    loc(&format!("thresholds.{tier}")),
                    format!("tier `{tier}` has no utterances"),
                ));
            }
            if !(-1.0..=1.0).contains(t) {
                return Err(ck.key(
                    "routing",
                    "semantic",
                    loc(&format!("thresholds.{tier}")),
                    format!("{t} is outside -1.0–1.0"),
                ));
            }
        }
        if !(-1.0..=1.0).contains(&sem.threshold) || !(0.0..=2.0).contains(&sem.margin) {
            return Err(ck.key(
                "routing",
                "semantic",
                loc("threshold"),
                "threshold must be within -1.0–1.0 and margin within 0.0–2.0".into(),
            ));
        }
        let e = &sem.embedder;
        match e.kind {
            EmbedderKind::Static | EmbedderKind::Bert => {
                let Some(p) = &e.path else {
                    return Err(ck.key(
                        "routing",
                        "semantic",
                        loc("embedder.path"),
                        "this embedder loads a model folder: set `path`".into(),
                    ));
                };
                let full = base_dir(file).join(&p.value);
                if !full.is_dir() {
                    return Err(ck.spanned(
                        p,
                        loc("embedder.path"),
                        format!("model folder {} does not exist", full.display()),
                    ));
                }
                if e.kind == EmbedderKind::Bert && !cfg!(feature = "bert") {
                    return Err(ck.key("routing", "semantic", loc("embedder.kind"),
                        "this switchyard was built without the `bert` feature (cargo build --features bert)".into()));
                }
            }
            EmbedderKind::Openai => {
                let Some(p) = &e.provider else {
                    return Err(ck.key(
                        "routing",
                        "semantic",
                        loc("embedder.provider"),
                        "the openai embedder needs `provider` (a key of providers)".into(),
                    ));
                };
                match c.providers.get(&p.value) {
                    Some(pc) if matches!(pc.kind, ProviderKind::Openai | ProviderKind::Azure) => {}
                    Some(_) => {
                        return Err(ck.spanned(
                            p,
                            loc("embedder.provider"),
                            format!(
                                "provider `{}` does not speak the OpenAI embeddings API",
                                p.value
                            ),
                        ));
                    }
                    None => {
                        return Err(ck.spanned(
                            p,
                            loc("embedder.provider"),
                            format!(
                                "unknown provider `{}` (defined: {})",
                                p.value,
                                list_names(c.providers.keys())
                            ),
                        ));
                    }
                }
                if e.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                    return Err(ck.key(
                        "routing",
                        "semantic",
                        loc("embedder.model"),
                        "the openai embedder needs `model` (e.g. text-embedding-3-small)".into(),
                    ));
                }
            }
            EmbedderKind::Builtin => {
                if let Some(p) = &e.path {
                    return Err(ck.spanned(
                        p,
                        loc("embedder.path"),
                        "the builtin embedder is compiled in and takes no `path`; for a model folder use `kind: static`".into(),
                    ));
                }
            }
            EmbedderKind::HashedNgrams => {
                if e.dims.is_some_and(|d| !(16..=65536).contains(&d)) {
                    return Err(ck.key(
                        "routing",
                        "semantic",
                        loc("embedder.dims"),
                        "dims must be within 16–65536".into(),
                    ));
                }
            }
        }
    }

    if let Some(cc) = &c.routing.cascade {
        tier_check(&cc.from, "routing.cascade.from".into())?;
        tier_check(&cc.to, "routing.cascade.to".into())?;
        if cc.from.value == cc.to.value {
            return Err(ck.spanned(
                &cc.to,
                "routing.cascade.to".into(),
                "a cascade must escalate to a different tier".into(),
            ));
        }
        for (i, r) in cc.rules.iter().enumerate() {
            if !rule_names.contains(r.as_str()) {
                return Err(ck.spanned(
                    &cc.from,
                    format!("routing.cascade.rules[{i}]"),
                    format!("unknown rule `{r}`"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&cc.max_escalation_rate) {
            return Err(ck.spanned(
                &cc.from,
                "routing.cascade.max_escalation_rate".into(),
                "must be within 0.0–1.0".into(),
            ));
        }
        if cc.escalate_on.contains(&EscalateOn::LowConfidence) && cc.min_mean_logprob.is_none() {
            return Err(ck.spanned(
                &cc.from,
                "routing.cascade.min_mean_logprob".into(),
                "escalate_on has low_confidence: set min_mean_logprob (e.g. -1.0)".into(),
            ));
        }
        match (&cc.judge, cc.escalate_on.contains(&EscalateOn::Judge)) {
            (None, true) => {
                return Err(ck.spanned(
                    &cc.from,
                    "routing.cascade.judge".into(),
                    "escalate_on has judge: set judge.model".into(),
                ));
            }
            (Some(j), _) if !model_names.contains(j.model.value.as_str()) => {
                return Err(ck.spanned(
                    &j.model,
                    "routing.cascade.judge.model".into(),
                    format!("unknown model `{}`", j.model.value),
                ));
            }
            _ => {}
        }
    }

    let check_chains = |section: &str,
                        chains: &std::collections::BTreeMap<String, Vec<Spanned<String>>>|
     -> Result<(), ConfigError> {
        for (from, chain) in chains {
            if !c.tiers.contains_key(from) {
                return Err(ck.key(
                    "fallbacks",
                    from,
                    format!("{section}.{from}"),
                    format!("unknown tier `{from}` (defined: {})", list(c.tiers.keys())),
                ));
            }
            for (i, to) in chain.iter().enumerate() {
                tier_check(to, format!("{section}.{from}[{i}]"))?;
                if &to.value == from {
                    return Err(ck.spanned(
                        to,
                        format!("{section}.{from}[{i}]"),
                        format!("tier `{from}` cannot fall back to itself"),
                    ));
                }
            }
        }
        Ok(())
    };
    check_chains("fallbacks", &c.fallbacks.chains)?;
    check_chains("fallbacks.context_window", &c.fallbacks.context_window)?;
    if c.tiers.contains_key(CONTEXT_WINDOW_KEY) && !c.fallbacks.context_window.is_empty() {
        return Err(ck.key(
            "tiers",
            CONTEXT_WINDOW_KEY,
            format!("tiers.{CONTEXT_WINDOW_KEY}"),
            "`context_window` under `fallbacks:` names the context-window chains, so a tier of that name is ambiguous; rename the tier".into(),
        ));
    }
    check_deployments(c, &ck)?;
    check_reliability(c, &ck)?;
    Ok(())
}

/// Balancing inputs: a weight of 0 everywhere would leave a tier nothing to pick.
fn check_deployments(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if !m.weight.is_finite() || m.weight < 0.0 {
            return Err(ck.at(
                m.provider.referenced,
                format!("{path}.weight"),
                format!("weight {} must be a non-negative number", m.weight),
            ));
        }
        for (what, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
            if v == Some(0) {
                return Err(ck.at(
                    m.provider.referenced,
                    format!("{path}.{what}"),
                    format!("{what} must be at least 1 (leave it out for no limit)"),
                ));
            }
        }
    }
    for (name, t) in &c.tiers {
        let weights: f64 = t
            .models
            .iter()
            .filter_map(|m| c.model(&m.value))
            .map(|m| m.weight)
            .sum();
        if t.strategy == Strategy::Weighted && weights <= 0.0 {
            return Err(ck.key(
                "tiers",
                name,
                format!("tiers.{name}.strategy"),
                "every deployment of this tier has weight 0, so the weighted strategy could pick none".into(),
            ));
        }
    }
    Ok(())
}

fn check_reliability(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let r = &c.reliability;
    let bad = |key: &str, message: &str| {
        ck.key(
            "reliability",
            key,
            format!("reliability.{key}"),
            message.into(),
        )
    };
    if r.max_attempts == 0 {
        return Err(bad("max_attempts", "must be at least 1"));
    }
    if r.backoff.initial.0 > r.backoff.max.0 {
        return Err(bad(
            "backoff",
            "backoff.initial must not exceed backoff.max",
        ));
    }
    let cd = &r.cooldown;
    if cd.window.0.is_zero() {
        return Err(bad("cooldown", "cooldown.window must be longer than 0"));
    }
    if let Some(ratio) = cd.failure_ratio {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(bad(
                "cooldown",
                &format!("cooldown.failure_ratio {ratio} must be within (0, 1]"),
            ));
        }
    }
    if let Some(a) = &c.alerts.fallback_rate {
        if !(a.max.is_finite() && (0.0..=1.0).contains(&a.max)) {
            return Err(ck.key(
                "alerts",
                "fallback_rate",
                "alerts.fallback_rate.max".into(),
                format!("{} must be a share between 0 and 1 (0.03 for 3 %)", a.max),
            ));
        }
        if a.window.0.is_zero() {
            return Err(ck.key(
                "alerts",
                "fallback_rate",
                "alerts.fallback_rate.window".into(),
                "must be longer than 0".into(),
            ));
        }
    }
    Ok(())
}

fn base_dir(file: &str) -> std::path::PathBuf {
    std::path::Path::new(file)
        .parent()
        .map_or_else(|| ".".into(), std::path::Path::to_path_buf)
}

fn list_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    list(names)
}

/// Checks one condition and everything nested in it; errors carry the condition's YAML path.
fn check_condition(
    w: &Condition,
    path: &str,
    routed_names: &[&str],
) -> Result<(), (String, String)> {
    if w.is_empty() {
        return Err((path.to_string(), "a condition needs at least one test (keywords, regex, header, task_type, metadata, tags, prompt_tokens, has_tools, has_images, json_response, model, all, any, not)".into()));
    }
    for (field, list) in [("keywords", &w.keywords), ("keywords_all", &w.keywords_all)] {
        if list
            .iter()
            .any(|k| k.trim().trim_end_matches('*').is_empty())
        {
            return Err((
                format!("{path}.{field}"),
                "keywords must not be empty strings".into(),
            ));
        }
    }
    for (i, re) in w.regex.0.iter().enumerate() {
        if let Err(e) = regex::Regex::new(re) {
            return Err((format!("{path}.regex[{i}]"), format!("invalid regex: {e}")));
        }
    }
    if let Some(h) = &w.header {
        if reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err((
                format!("{path}.header.name"),
                format!("{:?} is not a valid header name", h.name),
            ));
        }
        if let Some(re) = &h.regex {
            if let Err(e) = regex::Regex::new(re) {
                return Err((
                    format!("{path}.header.regex"),
                    format!("invalid regex: {e}"),
                ));
            }
        }
    }
    if let Some(t) = w.prompt_tokens {
        if t.min.is_none() && t.max.is_none() {
            return Err((
                format!("{path}.prompt_tokens"),
                "give min, max or both".into(),
            ));
        }
        if let (Some(a), Some(b)) = (t.min, t.max) {
            if a > b {
                return Err((
                    format!("{path}.prompt_tokens"),
                    format!("min {a} is greater than max {b}"),
                ));
            }
        }
    }
    for m in &w.model {
        if !routed_names.contains(&m.as_str()) {
            return Err((
                format!("{path}.model"),
                format!(
                    "`{m}` is not `auto` or one of routing.aliases, so no routed request can carry it"
                ),
            ));
        }
    }
    for (i, sub) in w.all.iter().enumerate() {
        check_condition(sub, &format!("{path}.all[{i}]"), routed_names)?;
    }
    for (i, sub) in w.any.iter().enumerate() {
        check_condition(sub, &format!("{path}.any[{i}]"), routed_names)?;
    }
    if let Some(n) = &w.not {
        check_condition(n, &format!("{path}.not"), routed_names)?;
    }
    Ok(())
}
