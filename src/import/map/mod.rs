//! LiteLLM's concepts in switchyard's terms. Each `model_name` group becomes a tier (LiteLLM
//! retries, falls back and cools down per group, and tiers are where switchyard does those),
//! each deployment a `models` entry on a provider; the router's settings become `fallbacks` and
//! `reliability`. Whatever has no equivalent, or carries over with a difference, goes to the report.
//!
//! Must not import the request path: it maps parsed LiteLLM settings onto a table.

mod deployments;
mod fallbacks;
mod reliability;

use super::litellm::LiteLlm;
use super::report::{Report, why_unread};
use super::table::{Model, Sourced, Table, Text};
use crate::config::ConfigError;
use std::collections::{BTreeMap, HashMap, HashSet};

/// `routing_strategy` → a tier's `strategy`; `cost-based-routing` becomes `ordered` over the
/// deployments sorted cheapest first.
fn strategy(name: &str) -> Option<&'static str> {
    Some(match name {
        "simple-shuffle" => "weighted",
        "least-busy" => "least_in_flight",
        "usage-based-routing" | "usage-based-routing-v2" => "usage",
        "latency-based-routing" => "latency",
        "cost-based-routing" => "ordered",
        _ => return None,
    })
}

const STRATEGIES: &str = "simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, cost-based-routing";

/// `s` as lowercase letters, digits and `-`: for names made from a host, a group or a deployment.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A short name for the host of a literal URL (`gpu-box.internal` → `gpu-box-internal`); `local`
/// for loopback addresses and IPs, which say nothing about the server.
fn host_slug(url: &Text) -> Option<String> {
    let literal = url.as_literal()?;
    let parsed = reqwest::Url::parse(&literal).ok()?;
    let host = parsed.host_str()?;
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Some("local".into());
    }
    let host = host.strip_prefix("api.").unwrap_or(host);
    Some(slug(host)).filter(|s| !s.is_empty())
}

/// The first of `base`, `base-2`, `base-3`… not in `taken`.
fn unique(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| base.to_string())
}

struct Mapper<'a> {
    l: &'a LiteLlm,
    file: &'a str,
    text: &'a str,
    report: &'a mut Report,
    table: Table,
    /// LiteLLM group → tier name.
    tiers: BTreeMap<String, String>,
    /// Groups that were in `model_list` but not imported, and why.
    dropped: HashMap<String, String>,
    /// Every tier, model and alias name given out so far: a request's `model` must mean one thing.
    names: HashSet<String>,
    /// Reports that should appear once, not per deployment.
    once: HashSet<&'static str>,
    /// Deployments priced by a bundled table entry, and self-hosted ones left free: (path, line).
    priced_by_name: Vec<(String, u32)>,
    free: Vec<(String, u32)>,
}

/// Maps a read LiteLLM config to a table; `file` (whose content is `text`) names it in errors
/// and the report.
pub fn map(l: &LiteLlm, file: &str, text: &str, report: &mut Report) -> Result<Table, ConfigError> {
    if let Some(rs) = &l.settings.routing_strategy {
        if strategy(&rs.value).is_none() {
            return Err(ConfigError::at(
                file,
                text,
                Some(rs.line).filter(|&l| l > 0),
                None,
                &rs.path,
                format!(
                    "unknown routing_strategy `{}` (LiteLLM's: {STRATEGIES})",
                    rs.value
                ),
            ));
        }
    }
    let mut m = Mapper {
        l,
        file,
        text,
        report,
        table: Table {
            source: file.to_string(),
            listen: "127.0.0.1:4000".into(),
            ..Table::default()
        },
        tiers: BTreeMap::new(),
        dropped: HashMap::new(),
        names: HashSet::new(),
        once: HashSet::new(),
        priced_by_name: Vec::new(),
        free: Vec::new(),
    };
    for (path, line, winner) in &l.settings.shadowed {
        m.report.not_carried(
            path.clone(),
            *line,
            format!("{winner} is also set and wins, as in LiteLLM's router"),
        );
    }
    let skipped = m.deployments()?;
    // A deployment that was not imported is reported once, not with each of its keys.
    for (path, line) in &l.unread {
        if !skipped.iter().any(|d| path.starts_with(&format!("{d}."))) {
            m.report.not_carried(path.clone(), *line, why_unread(path));
        }
    }
    m.fallbacks();
    m.aliases();
    m.reliability();
    m.server();
    m.routing();
    Ok(m.table)
}

impl Mapper<'_> {
    fn once(&mut self, key: &'static str) -> bool {
        self.once.insert(key)
    }

    fn server(&mut self) {
        let l = self.l;
        if let Some(k) = &l.master_key {
            self.table
                .api_keys
                .push(Sourced::new(k.value.clone(), k.path.clone()));
            self.report.changed(
                k.path.clone(),
                k.line,
                "clients keep using the master key (server.api_keys); LiteLLM's virtual keys, kept in its database, are not imported",
            );
        }
        self.report.chosen(
            "server.listen",
            0,
            "127.0.0.1:4000: LiteLLM takes its host and port on the command line; write 0.0.0.0:4000 to listen on every interface as LiteLLM does by default",
        );
    }

    fn routing(&mut self) {
        let Some(first) = self.table.tiers.first() else {
            return;
        };
        self.table.default = Sourced::new(first.name.clone(), "the first model group");
        self.report.chosen(
            "routing.default",
            0,
            format!(
                "`{}`, the first model group: LiteLLM has no `model: auto`; with switchyard, requests for `auto` go to this tier (and rules added later decide)",
                first.name
            ),
        );
        if self.table.tiers.len() < 2 {
            return;
        }
        // A model rather than a tier: a tier is priced at its first deployment, which may be one
        // whose price is unknown.
        let priciest = self
            .table
            .models
            .iter()
            .filter(|m| total(m) > 0.0)
            .max_by(|a, b| total(a).total_cmp(&total(b)));
        if let Some(m) = priciest {
            let name = m.name.clone();
            self.table.counterfactual = Some(Sourced::new(name.clone(), "the priciest model"));
            self.report.chosen(
                "routing.counterfactual",
                0,
                format!("`{name}`, the priciest model: savings are counted against what every request would have cost there"),
            );
        }
    }
}

/// Input plus output price: the order of "cheaper".
fn total(m: &Model) -> f64 {
    m.price.as_ref().map_or(0.0, |p| {
        let p = p.price();
        p.input + p.output
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_slugged_and_unique() {
        assert_eq!(slug("GPT-4o EU (prod)"), "gpt-4o-eu-prod");
        let taken: HashSet<String> = ["a".to_string(), "a-2".to_string()].into();
        assert_eq!(unique("a", &taken), "a-3");
        assert_eq!(unique("b", &taken), "b");
        assert_eq!(strategy("usage-based-routing-v2"), Some("usage"));
        assert_eq!(strategy("round-robin"), None);
    }
}
