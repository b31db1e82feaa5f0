//! Fallback chains (general, context-window, content-policy, `*` and `default_fallbacks`) and
//! `model_group_alias`, between the tiers the model groups became.

use super::Mapper;
use crate::import::litellm;
use crate::import::table::{Alias, Chain};

impl Mapper<'_> {
    /// A LiteLLM chain's groups as tiers; unknown, dropped and self references are reported.
    fn translate(&mut self, c: &litellm::Chain) -> Option<Chain> {
        let Some(from) = self.tiers.get(&c.from).cloned() else {
            let why = self.missing(&c.from);
            self.report.not_carried(c.path.clone(), c.line, why);
            return None;
        };
        let mut to = Vec::new();
        for (i, g) in c.to.iter().enumerate() {
            match self.tiers.get(g).cloned() {
                Some(t) if t == from => self.report.not_carried(
                    format!("{}[{i}]", c.path),
                    c.line,
                    format!("`{g}` falls back to itself; a tier's own deployments are retried before any fallback"),
                ),
                Some(t) if to.contains(&t) => {}
                Some(t) => to.push(t),
                None => {
                    let why = self.missing(g);
                    self.report
                        .not_carried(format!("{}[{i}]", c.path), c.line, why);
                }
            }
        }
        if to.is_empty() {
            return None;
        }
        Some(Chain {
            from,
            to,
            source: c.path.clone(),
        })
    }

    fn missing(&self, group: &str) -> String {
        match self.dropped.get(group) {
            Some(why) => format!("model group `{group}` was not imported: {why}"),
            None => format!("no model group `{group}` in model_list"),
        }
    }

    /// Translates a list of chains; a group's second chain is reported (LiteLLM uses the first).
    /// The `*` entry (every group), if any, is returned apart.
    fn chain_list<'c>(
        &mut self,
        list: &'c [litellm::Chain],
        what: &str,
    ) -> (Vec<Chain>, Option<&'c litellm::Chain>) {
        let mut out: Vec<Chain> = Vec::new();
        let mut wildcard = None;
        for c in list {
            if c.from == "*" {
                wildcard = wildcard.or(Some(c));
                continue;
            }
            if out.iter().any(|x| self.tiers.get(&c.from) == Some(&x.from)) {
                self.report.not_carried(
                    c.path.clone(),
                    c.line,
                    format!(
                        "a second {what} entry for `{}`: LiteLLM uses the first",
                        c.from
                    ),
                );
                continue;
            }
            if let Some(t) = self.translate(c) {
                out.push(t);
            }
        }
        (out, wildcard)
    }

    pub(super) fn fallbacks(&mut self) {
        let l = self.l;
        let s = &l.settings;
        let (mut chains, star) = self.chain_list(&s.fallbacks, "fallbacks");
        // `{"*": [...]}` and `default_fallbacks` apply to every group without its own chain.
        let generic: Option<(Vec<String>, String, u32)> = star
            .map(|c| (c.to.clone(), c.path.clone(), c.line))
            .or_else(|| {
                s.default_fallbacks
                    .as_ref()
                    .map(|d| (d.value.clone(), d.path.clone(), d.line))
            });
        if let (Some(_), Some(d)) = (star, &s.default_fallbacks) {
            self.report.not_carried(
                d.path.clone(),
                d.line,
                "fallbacks has a `*` entry, which LiteLLM applies first",
            );
        }
        if let Some((groups, path, line)) = generic {
            let tiers: Vec<String> = self.table.tiers.iter().map(|t| t.name.clone()).collect();
            let mut written = 0;
            for tier in tiers {
                if chains.iter().any(|c| c.from == tier) {
                    continue;
                }
                let group = self
                    .tiers
                    .iter()
                    .find(|(_, t)| **t == tier)
                    .map(|(g, _)| g.clone())
                    .unwrap_or_default();
                let c = litellm::Chain {
                    from: group,
                    to: groups
                        .iter()
                        .filter(|g| self.tiers.get(*g) != Some(&tier))
                        .cloned()
                        .collect(),
                    path: path.clone(),
                    line,
                };
                if c.to.is_empty() {
                    continue;
                }
                if let Some(t) = self.translate(&c) {
                    chains.push(t);
                    written += 1;
                }
            }
            if written > 0 {
                self.report.changed(
                    path,
                    line,
                    format!("a fallback for every model group: written out as the chain of each tier without its own ({written})"),
                );
            }
        }
        let (cw, cw_star) =
            self.chain_list(&s.context_window_fallbacks, "context_window_fallbacks");
        if let Some(c) = cw_star {
            self.report.not_carried(
                c.path.clone(),
                c.line,
                "a `*` context-window fallback: write one chain per tier (which tiers have bigger windows differs per tier)",
            );
        }
        let (cp, cp_star) =
            self.chain_list(&s.content_policy_fallbacks, "content_policy_fallbacks");
        self.content_policy(&chains, &cp, cp_star);
        if !cw.is_empty() {
            let windowless: Vec<&str> = self
                .table
                .models
                .iter()
                .filter(|m| m.context_window.is_none())
                .map(|m| m.name.as_str())
                .collect();
            if !windowless.is_empty() {
                let first = &cw[0];
                let line = s
                    .context_window_fallbacks
                    .iter()
                    .find(|c| c.path == first.source)
                    .map_or(0, |c| c.line);
                self.report.chosen(
                    first.source.clone(),
                    line,
                    format!(
                        "{} deployment(s) have no context window (model_info.max_input_tokens): for those, a too-long prompt moves to the context-window chain when the provider rejects it, not before the call; set models[].context_window to check first",
                        windowless.len()
                    ),
                );
            }
        }
        self.table.fallbacks = chains;
        self.table.context_window = cw;
    }

    /// switchyard has no separate content-policy chain: a refusal either follows the tier's
    /// ordinary chain (`policies.content_policy.fallback: true`) or stops (the default).
    fn content_policy(&mut self, chains: &[Chain], cp: &[Chain], star: Option<&litellm::Chain>) {
        let s = &self.l.settings;
        if let Some(c) = star {
            self.report.not_carried(
                c.path.clone(),
                c.line,
                "a `*` content-policy fallback: switchyard has no separate content-policy chain",
            );
        }
        if cp.is_empty() {
            return;
        }
        let same = cp.len() == chains.len()
            && cp
                .iter()
                .all(|c| chains.iter().any(|x| x.from == c.from && x.to == c.to));
        let line_of = |path: &str| {
            s.content_policy_fallbacks
                .iter()
                .find(|c| c.path == path)
                .map_or(0, |c| c.line)
        };
        if same {
            let p = self.table.reliability.policy("content_policy");
            p.fallback = Some(true);
            p.from.push("content_policy_fallbacks".into());
            let first = &cp[0].source;
            self.report.changed(
                first.clone(),
                line_of(first),
                "the content-policy chains equal the ordinary fallbacks, so a refusal follows them (reliability.policies.content_policy.fallback: true)",
            );
        } else {
            for c in cp {
                self.report.not_carried(
                    c.source.clone(),
                    line_of(&c.source),
                    format!(
                        "switchyard has no separate content-policy chain: a refusal on `{}` is returned to the client (or, with reliability.policies.content_policy.fallback: true, follows the tier's ordinary fallbacks, which differ here)",
                        c.from
                    ),
                );
            }
        }
    }

    pub(super) fn aliases(&mut self) {
        let l = self.l;
        for a in &l.settings.aliases {
            let Some(tier) = self.tiers.get(&a.group).cloned() else {
                let why = self.missing(&a.group);
                self.report.not_carried(a.path.clone(), a.line, why);
                continue;
            };
            if self.names.contains(&a.name) || a.name == "auto" {
                self.report.not_carried(
                    a.path.clone(),
                    a.line,
                    format!("`{}` is already a tier or model name of the table", a.name),
                );
                continue;
            }
            if a.hidden {
                self.report.changed(
                    format!("{}.hidden", a.path),
                    a.line,
                    "switchyard lists every alias in GET /v1/models",
                );
            }
            self.names.insert(a.name.clone());
            self.table.aliases.push(Alias {
                name: a.name.clone(),
                tier,
                source: a.path.clone(),
            });
        }
    }
}
