//! Cross-reference checks that serde cannot express.

use super::EmbedderKind;
use super::env::EnvString;
use super::error::ConfigError;
use super::reliability::{CONTEXT_WINDOW_KEY, Strategy};
use super::schema::{Condition, Config, EscalateOn, ProviderKind};
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

    /// The key or item at a YAML path (`routing.cascade.rules[0]`), found in the file's text;
    /// when the path leads past the document (a key that is missing), its deepest existing part.
    fn path(&self, path: String, message: String) -> ConfigError {
        let pos = super::locate::locate(self.text, &path);
        ConfigError::at(
            self.file,
            self.text,
            pos.map(|p| p.line),
            pos.map(|p| p.column),
            &path,
            message,
        )
    }
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

    if !c.is_unresolved("server") {
        check_server(c, &ck)?;
    }

    for (name, p) in &c.providers {
        let path = format!("providers.{name}");
        if c.is_unresolved(&path) {
            // Not used by the command that loaded the file, and missing what it would need.
            continue;
        }
        if let Some(url) = &p.base_url {
            match reqwest::Url::parse(url.as_str()) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return Err(ck.path(
                        format!("{path}.base_url"),
                        format!("{:?} is not an http(s) URL", url.as_str()),
                    ));
                }
            }
        }
        if p.kind == ProviderKind::Azure && p.base_url.is_none() {
            return Err(ck.path(format!("{path}.base_url"),
                "an azure provider needs base_url (https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT)".into()));
        }
        if p.kind == ProviderKind::Azure && p.api_version.is_none() {
            return Err(ck.path(
                format!("{path}.api_version"),
                "an azure provider needs api_version (e.g. 2024-10-21)".into(),
            ));
        }
        let rate = p.simulate.failure_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(ck.path(
                format!("{path}.simulate.failure_rate"),
                format!("{rate} is outside 0.0–1.0"),
            ));
        }
        for (task, skill) in &p.simulate.skill {
            if !(0.0..=1.0).contains(skill) {
                return Err(ck.path(
                    format!("{path}.simulate.skill.{task}"),
                    format!("{skill} is outside 0.0–1.0 (the chance of answering right)"),
                ));
            }
        }
        for h in p.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ck.path(
                    format!("{path}.headers.{h}"),
                    format!("{h:?} is not a valid header name"),
                ));
            }
        }
    }

    let tier_names: HashSet<&String> = c.tiers.keys().collect();
    let mut model_names = HashSet::new();
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if m.name.is_empty() {
            return Err(ck.path(
                format!("{path}.name"),
                "a model needs a non-empty name".into(),
            ));
        }
        if !model_names.insert(m.name.as_str()) {
            return Err(ck.path(
                format!("{path}.name"),
                format!("model `{}` is defined twice", m.name),
            ));
        }
        if m.name == AUTO_MODEL || tier_names.contains(&m.name) {
            return Err(ck.path(format!("{path}.name"),
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
                return Err(ck.path(
                    format!("{path}.price.{what}"),
                    format!("price {v} must be a non-negative number"),
                ));
            }
        }
    }

    if c.tiers.contains_key(AUTO_MODEL) {
        return Err(ck.path(
            "tiers.auto".into(),
            "`auto` is reserved for the router".into(),
        ));
    }
    for (name, t) in &c.tiers {
        if t.models.is_empty() {
            return Err(ck.path(
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
        return Err(ck.path("tiers".into(), "define at least one tier".into()));
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
    if let Some(s) = c
        .spend_log
        .as_ref()
        .filter(|_| !c.is_unresolved("spend_log"))
    {
        super::spend_log::check_config(s).map_err(|(key, m)| {
            let path = format!("spend_log.{key}");
            match key {
                "url" => ck.spanned(&s.url, path, m),
                "table" => ck.spanned(&s.table, path, m),
                _ => ck.path(path, m),
            }
        })?;
    }

    for (i, a) in c.routing.aliases.iter().enumerate() {
        if a == AUTO_MODEL || c.tiers.contains_key(a) || model_names.contains(a.as_str()) {
            return Err(ck.path(
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
            return Err(ck.path(
                format!("{path}.name"),
                format!("rule `{}` is defined twice", r.name),
            ));
        }
        tier_check(&r.tier, format!("{path}.tier"))?;
        check_condition(&r.when.value, &format!("{path}.when"), &routed_names)
            .map_err(|(p, m)| ck.path(p, m))?;
    }

    if let Some(sem) = &c.routing.semantic {
        let loc = |p: &str| format!("routing.semantic.{p}");
        if sem.scoring == super::SemanticScoring::Top(0) {
            return Err(ck.path(
                loc("scoring.top"),
                "must be at least 1 (the number of a tier's closest utterances averaged)".into(),
            ));
        }
        if sem.utterances.is_empty() {
            return Err(ck.path(
                loc("utterances"),
                "give at least one tier's utterances".into(),
            ));
        }
        for (tier, list) in &sem.utterances {
            if !c.tiers.contains_key(tier) {
                return Err(ck.path(
                    loc(&format!("utterances.{tier}")),
                    format!(
                        "unknown tier `{tier}` (defined: {})",
                        list_names(c.tiers.keys())
                    ),
                ));
            }
            if let Some(j) = list.iter().position(|u| u.trim().is_empty()) {
                return Err(ck.path(
                    loc(&format!("utterances.{tier}[{j}]")),
                    "utterances must be non-empty strings".into(),
                ));
            }
            if list.is_empty() {
                return Err(ck.path(
                    loc(&format!("utterances.{tier}")),
                    "utterances must be non-empty strings".into(),
                ));
            }
        }
        for (tier, t) in &sem.thresholds {
            if !sem.utterances.contains_key(tier) {
                return Err(ck.path(
                    loc(&format!("thresholds.{tier}")),
                    format!("tier `{tier}` has no utterances"),
                ));
            }
            if !(-1.0..=1.0).contains(t) {
                return Err(ck.path(
                    loc(&format!("thresholds.{tier}")),
                    format!("{t} is outside -1.0–1.0"),
                ));
            }
        }
        if !(-1.0..=1.0).contains(&sem.threshold) {
            return Err(ck.path(
                loc("threshold"),
                format!("{} is outside -1.0–1.0", sem.threshold),
            ));
        }
        if !(0.0..=2.0).contains(&sem.margin) {
            return Err(ck.path(loc("margin"), format!("{} is outside 0.0–2.0", sem.margin)));
        }
        check_embedder(c, &ck, &sem.embedder, "semantic")?;
    }

    if let Some(l) = &c.routing.learned {
        check_learned(c, &ck, l)?;
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
                return Err(ck.path(
                    format!("routing.cascade.rules[{i}]"),
                    format!("unknown rule `{r}` (defined: {})", {
                        let mut names: Vec<&str> = rule_names.iter().copied().collect();
                        names.sort_unstable();
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    }),
                ));
            }
        }
        if !(0.0..=1.0).contains(&cc.max_escalation_rate) {
            return Err(ck.path(
                "routing.cascade.max_escalation_rate".into(),
                format!("{} is outside 0.0–1.0", cc.max_escalation_rate),
            ));
        }
        // A signal that needs a setting points at the signal when it is written out, else (the
        // default list) at the cascade.
        let signal = |s: EscalateOn| {
            cc.escalate_on.iter().position(|x| *x == s).map_or_else(
                || "routing.cascade.escalate_on".to_string(),
                |i| format!("routing.cascade.escalate_on[{i}]"),
            )
        };
        if cc.escalate_on.contains(&EscalateOn::LowConfidence) && cc.min_mean_logprob.is_none() {
            return Err(ck.path(
                signal(EscalateOn::LowConfidence),
                "escalate_on has low_confidence: set min_mean_logprob (e.g. -1.0)".into(),
            ));
        }
        match (&cc.judge, cc.escalate_on.contains(&EscalateOn::Judge)) {
            (None, true) => {
                return Err(ck.path(
                    signal(EscalateOn::Judge),
                    "escalate_on has judge: set judge.model".into(),
                ));
            }
            (Some(j), _) if !model_names.contains(j.model.value.as_str()) => {
                return Err(ck.spanned(
                    &j.model,
                    "routing.cascade.judge.model".into(),
                    format!(
                        "unknown model `{}` (defined: {})",
                        j.model.value,
                        list(c.models.iter().map(|m| &m.name))
                    ),
                ));
            }
            _ => {}
        }
        match (&cc.agreement, cc.escalate_on.contains(&EscalateOn::Agree)) {
            (None, true) => {
                return Err(ck.spanned(
                    &cc.from,
                    "routing.cascade.agreement".into(),
                    "escalate_on has agree: set agreement.model (the second cheap model to ask)"
                        .into(),
                ));
            }
            (Some(a), _) if !model_names.contains(a.model.value.as_str()) => {
                return Err(ck.spanned(
                    &a.model,
                    "routing.cascade.agreement.model".into(),
                    format!(
                        "unknown model `{}` (defined: {})",
                        a.model.value,
                        list(c.models.iter().map(|m| &m.name))
                    ),
                ));
            }
            (Some(a), _) if !(0.0..=1.0).contains(&a.min_similarity) => {
                return Err(ck.spanned(
                    &a.model,
                    "routing.cascade.agreement.min_similarity".into(),
                    format!("{} is outside 0.0–1.0", a.min_similarity),
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
                return Err(ck.path(
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
        return Err(ck.path(format!("tiers.{CONTEXT_WINDOW_KEY}"),
            "`context_window` under `fallbacks:` names the context-window chains, so a tier of that name is ambiguous; rename the tier".into(),
        ));
    }
    check_deployments(c, &ck)?;
    check_reliability(c, &ck)?;
    Ok(())
}

fn check_server(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let s = &c.server;
    let socket = |v: &EnvString, path: &str| -> Result<std::net::SocketAddr, ConfigError> {
        v.as_str().parse().map_err(|_| {
            ck.path(
                path.into(),
                format!(
                    "{:?} is not a socket address (write e.g. 127.0.0.1:4000)",
                    v.as_str()
                ),
            )
        })
    };
    let listen = socket(&s.listen, "server.listen")?;
    if s.max_body_bytes == 0 {
        return Err(ck.path(
            "server.max_body_bytes".into(),
            "must be greater than 0".into(),
        ));
    }
    for (key, d) in [
        ("header_read_timeout", s.header_read_timeout),
        ("body_read_timeout", s.body_read_timeout),
    ] {
        if d.0.is_zero() {
            return Err(ck.path(format!("server.{key}"), "must be longer than 0".into()));
        }
    }
    if s.max_connections == 0 {
        return Err(ck.path("server.max_connections".into(), "must be at least 1".into()));
    }
    if s.max_in_flight_requests == Some(0) {
        return Err(ck.path(
            "server.max_in_flight_requests".into(),
            "must be at least 1 (leave it out for no limit)".into(),
        ));
    }
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (list, keys) in [
        ("api_keys", &s.api_keys),
        ("admin_keys", &s.admin_keys),
        ("metrics.keys", &s.metrics.keys),
    ] {
        for (i, k) in keys.iter().enumerate() {
            let path = format!("server.{list}[{i}]");
            if k.as_str().trim().is_empty() {
                return Err(ck.path(
                    path,
                    "a key must not be empty (an unset variable with an empty default, `${KEY:-}`, gives one); remove the entry or set the variable".into(),
                ));
            }
            if k.as_str().trim() != k.as_str() {
                return Err(ck.path(
                    path,
                    "a key must not start or end with whitespace (clients' keys are trimmed)"
                        .into(),
                ));
            }
            match seen.insert(k.as_str(), list) {
                Some(other) if other != list && (other == "admin_keys" || list == "admin_keys") => {
                    return Err(ck.path(
                        path,
                        format!("this key is also in server.{other}: admin keys must be separate from client keys"),
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(m) = &s.metrics.listen {
        if socket(m, "server.metrics.listen")? == listen && listen.port() != 0 {
            return Err(ck.path(
                "server.metrics.listen".into(),
                "is the same address as server.listen; leave it out to serve /metrics there".into(),
            ));
        }
    }
    if let Some(cors) = &s.cors {
        if cors.allowed_origins.is_empty() {
            return Err(ck.path(
                "server.cors.allowed_origins".into(),
                "list at least one origin (e.g. https://app.example.com), or remove server.cors"
                    .into(),
            ));
        }
        for (i, o) in cors.allowed_origins.iter().enumerate() {
            if let Err(m) = check_origin(o) {
                return Err(ck.path(format!("server.cors.allowed_origins[{i}]"), m));
            }
        }
    }
    Ok(())
}

/// A browser's `Origin`: `scheme://host[:port]`, nothing more, compared exactly.
fn check_origin(o: &str) -> Result<(), String> {
    if o == "*" {
        return Err(
            "`*` would let any web page call the gateway with a user's key; list the origins"
                .into(),
        );
    }
    let bad = || {
        format!("{o:?} is not an origin: write scheme://host[:port], e.g. https://app.example.com")
    };
    let u = reqwest::Url::parse(o).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad());
    }
    if u.origin().ascii_serialization() != o {
        return Err(format!(
            "{o:?} is not written as browsers send it: {:?} (no path, no trailing slash, lowercase host)",
            u.origin().ascii_serialization()
        ));
    }
    Ok(())
}

/// `routing.learned`: the files exist, the mapping names real tiers, the numbers are in range.
/// Whether the files' models map to tiers is checked when they are read (`Gateway::build`).
fn check_learned(
    c: &Config,
    ck: &Checker<'_>,
    l: &super::learned::LearnedConfig,
) -> Result<(), ConfigError> {
    let key = |p: &str, m: String| ck.path(format!("routing.learned.{p}"), m);
    if l.outcomes.is_empty() {
        return Err(key(
            "outcomes",
            "give at least one outcome file (JSONL, as `switchyard bench` writes)".into(),
        ));
    }
    for (i, f) in l.outcomes.iter().enumerate() {
        let full = base_dir(ck.file).join(&f.value);
        if !full.is_file() {
            return Err(ck.spanned(
                f,
                format!("routing.learned.outcomes[{i}]"),
                format!("outcome file {} does not exist", full.display()),
            ));
        }
    }
    for tier in l.tiers.keys() {
        if !c.tiers.contains_key(tier) {
            return Err(key(
                &format!("tiers.{tier}"),
                format!("unknown tier `{tier}` (defined: {})", list(c.tiers.keys())),
            ));
        }
    }
    for (tier, names) in &l.tiers {
        if names.0.is_empty() {
            return Err(key(
                &format!("tiers.{tier}"),
                "name at least one model of the outcome files".into(),
            ));
        }
    }
    let b = l.bar.value;
    if !(b.is_finite() && (0.0..=1.0).contains(&b)) {
        return Err(ck.spanned(
            &l.bar,
            "routing.learned.bar".into(),
            format!("{b} is outside 0.0–1.0 (scores and shares of the best score are in [0, 1])"),
        ));
    }
    if l.k == 0 {
        return Err(key("k", "must be at least 1".into()));
    }
    if let Some(m) = l.min_similarity.filter(|m| !(-1.0..=1.0).contains(m)) {
        return Err(key("min_similarity", format!("{m} is outside -1.0–1.0")));
    }
    check_embedder(c, ck, &l.embedder, "learned")
}

/// The embedder of a layer (`section`: `semantic` or `learned`).
fn check_embedder(
    c: &Config,
    ck: &Checker<'_>,
    e: &super::EmbedderConfig,
    section: &str,
) -> Result<(), ConfigError> {
    let loc = |p: &str| format!("routing.{section}.{p}");
    match e.kind {
        EmbedderKind::Static | EmbedderKind::Bert => {
            let Some(p) = &e.path else {
                return Err(ck.path(
                    loc("embedder.path"),
                    "this embedder loads a model folder: set `path`".into(),
                ));
            };
            let full = base_dir(ck.file).join(&p.value);
            if !full.is_dir() {
                return Err(ck.spanned(
                    p,
                    loc("embedder.path"),
                    format!("model folder {} does not exist", full.display()),
                ));
            }
            if e.kind == EmbedderKind::Bert && !cfg!(feature = "bert") {
                return Err(ck.path(loc("embedder.kind"),
                    "this switchyard was built without the `bert` feature (cargo build --features bert)".into()));
            }
        }
        EmbedderKind::Openai => {
            let Some(p) = &e.provider else {
                return Err(ck.path(
                    loc("embedder.provider"),
                    "the openai embedder needs `provider` (a key of providers)".into(),
                ));
            };
            if let Some(vars) = c.unresolved.get(&format!("providers.{}", p.value)) {
                return Err(ck.spanned(
                    p,
                    loc("embedder.provider"),
                    format!(
                        "the {section} layer embeds prompts through provider `{}`, which needs {} (not set)",
                        p.value,
                        vars.join(", ")
                    ),
                ));
            }
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
                return Err(ck.path(
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
                return Err(ck.path(loc("embedder.dims"), "dims must be within 16–65536".into()));
            }
        }
    }
    Ok(())
}

/// Balancing inputs: a weight of 0 everywhere would leave a tier nothing to pick.
fn check_deployments(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, m) in c.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if !m.weight.is_finite() || m.weight < 0.0 {
            return Err(ck.path(
                format!("{path}.weight"),
                format!("weight {} must be a non-negative number", m.weight),
            ));
        }
        for (what, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
            if v == Some(0) {
                return Err(ck.path(
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
            return Err(ck.path(format!("tiers.{name}.strategy"),
                "every deployment of this tier has weight 0, so the weighted strategy could pick none".into(),
            ));
        }
    }
    Ok(())
}

fn check_reliability(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
    let r = &c.reliability;
    let bad = |key: &str, message: &str| ck.path(format!("reliability.{key}"), message.into());
    if r.max_attempts == 0 {
        return Err(bad("max_attempts", "must be at least 1"));
    }
    if r.backoff.initial.0 > r.backoff.max.0 {
        return Err(bad(
            "backoff.initial",
            "backoff.initial must not exceed backoff.max",
        ));
    }
    let cd = &r.cooldown;
    if cd.window.0.is_zero() {
        return Err(bad("cooldown.window", "must be longer than 0"));
    }
    if let Some(ratio) = cd.failure_ratio {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(bad(
                "cooldown.failure_ratio",
                &format!("{ratio} must be within (0, 1]"),
            ));
        }
    }
    if let Some(a) = &c.alerts.fallback_rate {
        if !(a.max.is_finite() && (0.0..=1.0).contains(&a.max)) {
            return Err(ck.path(
                "alerts.fallback_rate.max".into(),
                format!("{} must be a share between 0 and 1 (0.03 for 3 %)", a.max),
            ));
        }
        if a.window.0.is_zero() {
            return Err(ck.path(
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

/// The rules of one `routing.rules_files` file, checked against the table (its tiers, its aliases,
/// the names of the rules before them) with errors located in that file.
pub(super) fn included_rules(
    c: &Config,
    rules: &[super::schema::RuleConfig],
    file: &str,
    text: &str,
) -> Result<(), ConfigError> {
    let ck = Checker { file, text };
    let routed_names: Vec<&str> = std::iter::once(AUTO_MODEL)
        .chain(c.routing.aliases.iter().map(String::as_str))
        .collect();
    let mut names: HashSet<&str> = c.routing.rules.iter().map(|r| r.name.as_str()).collect();
    for (i, r) in rules.iter().enumerate() {
        let path = format!("[{i}]");
        if !names.insert(r.name.as_str()) {
            return Err(ck.spanned(
                &r.when,
                format!("{path}.name"),
                format!("rule `{}` is defined twice", r.name),
            ));
        }
        if !c.tiers.contains_key(&r.tier.value) {
            return Err(ck.spanned(
                &r.tier,
                format!("{path}.tier"),
                format!(
                    "unknown tier `{}` (defined: {})",
                    r.tier.value,
                    list(c.tiers.keys())
                ),
            ));
        }
        check_condition(&r.when.value, &format!("{path}.when"), &routed_names)
            .map_err(|(p, m)| ck.spanned(&r.when, p, m))?;
    }
    Ok(())
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
        if let Some(j) = list
            .iter()
            .position(|k| k.trim().trim_end_matches('*').is_empty())
        {
            return Err((
                format!("{path}.{field}[{j}]"),
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
    for (j, m) in w.model.iter().enumerate() {
        if !routed_names.contains(&m.as_str()) {
            return Err((
                format!("{path}.model[{j}]"),
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
