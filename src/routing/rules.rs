//! Layer 1: ordered rules; the first whose conditions all hold decides.
//!
//! All keywords of all rules live in one Aho-Corasick automaton and all regexes in one RegexSet, so
//! a request is scanned once per kind of condition however many rules the table has.

use crate::config::RuleConfig;
use crate::openai::ChatRequest;
use aho_corasick::{AhoCorasick, MatchKind};
use http::{HeaderMap, HeaderName};
use regex::RegexSet;
use std::sync::Arc;

pub struct Rule {
    pub name: Arc<str>,
    pub tier: Arc<str>,
    has_keywords: bool,
    regex: Option<usize>,
    header: Option<(HeaderName, Option<String>)>,
    task_types: Vec<String>,
}

pub struct Rules {
    rules: Vec<Rule>,
    keywords: Option<AhoCorasick>,
    /// Keyword pattern id → index of the rule it belongs to.
    keyword_rule: Vec<usize>,
    regexes: RegexSet,
}

impl Rules {
    pub fn compile(cfg: &[RuleConfig]) -> Result<Rules, String> {
        let mut rules = Vec::with_capacity(cfg.len());
        let mut patterns = Vec::new();
        let mut keyword_rule = Vec::new();
        let mut regexes = Vec::new();
        for (i, r) in cfg.iter().enumerate() {
            let w = &r.when.value;
            for k in &w.keywords {
                patterns.push(k.to_lowercase());
                keyword_rule.push(i);
            }
            let regex = w.regex.0.first().map(|re| {
                regexes.push(re.clone());
                regexes.len() - 1
            });
            let header = match &w.header {
                Some(h) => Some((
                    HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                        format!("rule {}: invalid header name {:?}", r.name, h.name)
                    })?,
                    h.value.clone(),
                )),
                None => None,
            };
            rules.push(Rule {
                name: r.name.as_str().into(),
                tier: r.tier.value.as_str().into(),
                has_keywords: !w.keywords.is_empty(),
                regex,
                header,
                task_types: w.task_type.clone(),
            });
        }
        let keywords = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .map_err(|e| format!("keywords: {e}"))?,
            )
        };
        let regexes = RegexSet::new(&regexes).map_err(|e| format!("regex: {e}"))?;
        Ok(Rules {
            rules,
            keywords,
            keyword_rule,
            regexes,
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn first_match(&self, req: &ChatRequest, headers: &HeaderMap) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        let text = req
            .last_user_message()
            .map(|m| m.text())
            .unwrap_or_default();
        let mut keyword_hit = vec![false; self.rules.len()];
        if let Some(ac) = &self.keywords {
            // Patterns are lowercased; ASCII text is matched case-insensitively by the automaton, other
            // text is lowercased first so that "RÉSUMÉ" finds "résumé".
            let lowered;
            let hay = if text.is_ascii() {
                text.as_str()
            } else {
                lowered = text.to_lowercase();
                lowered.as_str()
            };
            for m in ac.find_overlapping_iter(hay) {
                if let Some(&r) = self.keyword_rule.get(m.pattern().as_usize()) {
                    if let Some(hit) = keyword_hit.get_mut(r) {
                        *hit = true;
                    }
                }
            }
        }
        let regex_hits = if self.regexes.is_empty() {
            None
        } else {
            Some(self.regexes.matches(&text))
        };
        let task_type = req.metadata_str("task_type");
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            let ok = (!rule.has_keywords || keyword_hit.get(i).copied().unwrap_or(false))
                && rule
                    .regex
                    .is_none_or(|ri| regex_hits.as_ref().is_some_and(|h| h.matched(ri)))
                && rule.header.as_ref().is_none_or(|(name, want)| {
                    headers.get(name).is_some_and(|v| match want {
                        None => true,
                        Some(w) => v.to_str().is_ok_and(|s| s.trim().eq_ignore_ascii_case(w)),
                    })
                })
                && (rule.task_types.is_empty()
                    || task_type.is_some_and(|t| {
                        rule.task_types.iter().any(|x| x.eq_ignore_ascii_case(t))
                    }));
            ok.then_some(rule)
        })
    }
}
