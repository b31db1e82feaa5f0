//! Layer 1: rules. The first rule (by priority, then by order) whose condition holds decides.
//!
//! Conditions compile to a small tree. All keywords of all rules that read the same text live in one
//! Aho-Corasick automaton and all their regexes in one RegexSet, and each is run at most once per
//! request, on first need, however many rules ask.

#[cfg(test)]
use super::facts::Caller;
use super::facts::{Facts, SCOPES, scope_index};
use crate::config::{Condition, RuleConfig};
use aho_corasick::{AhoCorasick, MatchKind};
use http::HeaderName;
use regex::{Regex, RegexSet};
use std::cell::OnceCell;
use std::sync::Arc;

pub struct Rule {
    pub name: Arc<str>,
    pub tier: Arc<str>,
    node: Node,
}

enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    KeywordsAny {
        scope: usize,
        ids: Vec<usize>,
    },
    KeywordsAll {
        scope: usize,
        ids: Vec<usize>,
    },
    Regex {
        scope: usize,
        ids: Vec<usize>,
    },
    Header {
        name: HeaderName,
        value: Option<String>,
        regex: Option<Regex>,
    },
    Metadata {
        key: String,
        values: Vec<String>,
    },
    Tags(Vec<String>),
    Tokens {
        min: Option<u64>,
        max: Option<u64>,
    },
    HasTools(bool),
    HasImages(bool),
    JsonResponse(bool),
    Model(Vec<String>),
    KeyTeam(Vec<String>),
    KeyName(Vec<String>),
    KeyMetadata {
        field: String,
        values: Vec<String>,
    },
}

/// A keyword as matched: whole words unless it ends in `*` (then any word starting with it).
struct Keyword {
    /// Checked against neighbouring characters only for keywords that start / end with a
    /// letter or digit, so punctuation keywords and scripts without spaces still match inside text.
    word_start: bool,
    word_end: bool,
}

#[derive(Default)]
struct ScopeIndex {
    patterns: Vec<String>,
    keywords: Vec<Keyword>,
    automaton: Option<AhoCorasick>,
    /// "Does any keyword occur at all?" Most prompts hold none, and a leftmost search can use the
    /// crate's SIMD prefilter where the overlapping search that finds every keyword cannot.
    quick: Option<AhoCorasick>,
    regex_src: Vec<String>,
    regexes: Option<RegexSet>,
    /// All of the scope's regexes as one alternation: most prompts match none of them, and one
    /// `is_match` answers that faster than the set, which must track every pattern.
    any_regex: Option<Regex>,
}

pub struct Rules {
    rules: Vec<Rule>,
    scopes: [ScopeIndex; 3],
}

impl ScopeIndex {
    fn add_keyword(&mut self, k: &str) -> usize {
        let lower = k.trim().to_lowercase();
        let (text, wildcard) = match lower.strip_suffix('*') {
            Some(t) => (t.to_string(), true),
            None => (lower, false),
        };
        let word_start = text.chars().next().is_some_and(char::is_alphanumeric);
        let word_end = !wildcard && text.chars().last().is_some_and(char::is_alphanumeric);
        self.patterns.push(text);
        self.keywords.push(Keyword {
            word_start,
            word_end,
        });
        self.patterns.len() - 1
    }

    fn add_regex(&mut self, re: &str) -> usize {
        self.regex_src.push(re.to_string());
        self.regex_src.len() - 1
    }

    fn build(&mut self) -> Result<(), String> {
        if !self.patterns.is_empty() {
            // Patterns and text are both lowercased, so the automata can stay case-sensitive.
            self.automaton = Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&self.patterns)
                    .map_err(|e| format!("keywords: {e}"))?,
            );
            self.quick = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.patterns)
                .ok();
        }
        if !self.regex_src.is_empty() {
            self.regexes = Some(RegexSet::new(&self.regex_src).map_err(|e| format!("regex: {e}"))?);
            let alternation: Vec<String> =
                self.regex_src.iter().map(|r| format!("(?:{r})")).collect();
            // Only a shortcut: if the combined pattern is too large to compile, the set alone is used.
            self.any_regex = Regex::new(&alternation.join("|")).ok();
        }
        Ok(())
    }

    /// Which keywords occur in `text` as words.
    fn keyword_hits(&self, text: &str) -> Vec<bool> {
        let mut hits = vec![false; self.patterns.len()];
        let Some(ac) = &self.automaton else {
            return hits;
        };
        let hay: std::borrow::Cow<'_, str> = if !text.is_ascii() {
            std::borrow::Cow::Owned(text.to_lowercase())
        } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(text.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        let hay = hay.as_ref();
        if self.quick.as_ref().is_some_and(|q| !q.is_match(hay)) {
            return hits;
        }
        for m in ac.find_overlapping_iter(hay) {
            let id = m.pattern().as_usize();
            let Some(k) = self.keywords.get(id) else {
                continue;
            };
            let before_ok = !k.word_start
                || !hay[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric);
            let after_ok = !k.word_end
                || !hay[m.end()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric);
            if before_ok && after_ok {
                if let Some(h) = hits.get_mut(id) {
                    *h = true;
                }
            }
        }
        hits
    }

    fn regex_hits(&self, text: &str) -> Vec<bool> {
        match &self.regexes {
            Some(set) if self.any_regex.as_ref().is_some_and(|r| !r.is_match(text)) => {
                vec![false; set.len()]
            }
            Some(set) => {
                let m = set.matches(text);
                (0..set.len()).map(|i| m.matched(i)).collect()
            }
            None => Vec::new(),
        }
    }
}

/// Per-request memo of automaton and RegexSet results, one slot per text scope.
#[derive(Default)]
struct Hits {
    keywords: [OnceCell<Vec<bool>>; 3],
    regexes: [OnceCell<Vec<bool>>; 3],
}

impl Rules {
    pub fn compile(cfg: &[RuleConfig]) -> Result<Rules, String> {
        let mut scopes: [ScopeIndex; 3] = Default::default();
        let mut order: Vec<(i32, usize)> = cfg
            .iter()
            .enumerate()
            .map(|(i, r)| (-r.priority, i))
            .collect();
        order.sort();
        let mut rules = Vec::with_capacity(cfg.len());
        let mut uses_tokens = false;
        for (_, i) in order {
            let Some(r) = cfg.get(i) else { continue };
            let scope = scope_index(r.match_on);
            let node =
                compile_condition(&r.when.value, &mut scopes[scope], scope, &mut uses_tokens)
                    .map_err(|e| format!("rule {}: {e}", r.name))?;
            rules.push(Rule {
                name: r.name.as_str().into(),
                tier: r.tier.value.as_str().into(),
                node,
            });
        }
        for s in &mut scopes {
            s.build()?;
        }
        if uses_tokens {
            crate::tokens::prewarm();
        }
        Ok(Rules { rules, scopes })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn first_match(&self, facts: &Facts<'_>) -> Option<&Rule> {
        let hits = Hits::default();
        self.rules.iter().find(|r| self.eval(&r.node, facts, &hits))
    }

    fn eval(&self, node: &Node, f: &Facts<'_>, hits: &Hits) -> bool {
        let kw = |scope: usize| -> &Vec<bool> {
            hits.keywords[scope]
                .get_or_init(|| self.scopes[scope].keyword_hits(f.text(SCOPES[scope])))
        };
        let re = |scope: usize| -> &Vec<bool> {
            hits.regexes[scope].get_or_init(|| self.scopes[scope].regex_hits(f.text(SCOPES[scope])))
        };
        match node {
            Node::All(ns) => ns.iter().all(|n| self.eval(n, f, hits)),
            Node::Any(ns) => ns.iter().any(|n| self.eval(n, f, hits)),
            Node::Not(n) => !self.eval(n, f, hits),
            Node::KeywordsAny { scope, ids } => ids
                .iter()
                .any(|&i| kw(*scope).get(i).copied().unwrap_or(false)),
            Node::KeywordsAll { scope, ids } => ids
                .iter()
                .all(|&i| kw(*scope).get(i).copied().unwrap_or(false)),
            Node::Regex { scope, ids } => ids
                .iter()
                .any(|&i| re(*scope).get(i).copied().unwrap_or(false)),
            Node::Header { name, value, regex } => f.headers.get_all(name).iter().any(|v| {
                let Ok(s) = v.to_str() else { return false };
                let s = s.trim();
                value
                    .as_ref()
                    .is_none_or(|want| s.eq_ignore_ascii_case(want))
                    && regex.as_ref().is_none_or(|r| r.is_match(s))
            }),
            Node::Metadata { key, values } => one_of(f.metadata(key).as_deref(), values),
            Node::Tags(want) => f.tags().iter().any(|t| want.iter().any(|w| w == t)),
            Node::Tokens { min, max } => {
                let n = f.prompt_tokens();
                min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
            }
            Node::HasTools(b) => f.has_tools() == *b,
            Node::HasImages(b) => f.has_images() == *b,
            Node::JsonResponse(b) => f.json_response() == *b,
            Node::Model(names) => names.iter().any(|n| n == &f.req.model),
            Node::KeyTeam(want) => one_of(f.caller.team, want),
            Node::KeyName(want) => one_of(f.caller.name, want),
            Node::KeyMetadata { field, values } => {
                one_of(f.caller.metadata(field).as_deref(), values)
            }
        }
    }
}

/// Team, key and metadata values compare case-insensitively, as request metadata does.
fn one_of(have: Option<&str>, want: &[String]) -> bool {
    have.is_some_and(|h| want.iter().any(|w| w.eq_ignore_ascii_case(h)))
}

fn compile_condition(
    c: &Condition,
    idx: &mut ScopeIndex,
    scope: usize,
    uses_tokens: &mut bool,
) -> Result<Node, String> {
    let mut all = Vec::new();
    if !c.keywords.is_empty() {
        all.push(Node::KeywordsAny {
            scope,
            ids: c.keywords.iter().map(|k| idx.add_keyword(k)).collect(),
        });
    }
    if !c.keywords_all.is_empty() {
        all.push(Node::KeywordsAll {
            scope,
            ids: c.keywords_all.iter().map(|k| idx.add_keyword(k)).collect(),
        });
    }
    if !c.regex.0.is_empty() {
        all.push(Node::Regex {
            scope,
            ids: c.regex.0.iter().map(|r| idx.add_regex(r)).collect(),
        });
    }
    if let Some(h) = &c.header {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", h.name))?;
        let regex = h
            .regex
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| format!("header regex: {e}"))?;
        all.push(Node::Header {
            name,
            value: h.value.clone(),
            regex,
        });
    }
    if !c.task_type.is_empty() {
        all.push(Node::Metadata {
            key: "task_type".into(),
            values: c.task_type.clone(),
        });
    }
    for (key, values) in &c.metadata {
        all.push(Node::Metadata {
            key: key.clone(),
            values: values.0.clone(),
        });
    }
    if !c.tags.is_empty() {
        all.push(Node::Tags(
            c.tags.iter().map(|t| t.trim().to_lowercase()).collect(),
        ));
    }
    if let Some(t) = c.prompt_tokens {
        *uses_tokens = true;
        all.push(Node::Tokens {
            min: t.min,
            max: t.max,
        });
    }
    if let Some(b) = c.has_tools {
        all.push(Node::HasTools(b));
    }
    if let Some(b) = c.has_images {
        all.push(Node::HasImages(b));
    }
    if let Some(b) = c.json_response {
        all.push(Node::JsonResponse(b));
    }
    if !c.model.is_empty() {
        all.push(Node::Model(c.model.clone()));
    }
    if let Some(k) = &c.key {
        if !k.team.is_empty() {
            all.push(Node::KeyTeam(k.team.clone()));
        }
        if !k.name.is_empty() {
            all.push(Node::KeyName(k.name.clone()));
        }
        for (field, values) in &k.metadata {
            all.push(Node::KeyMetadata {
                field: field.clone(),
                values: values.0.clone(),
            });
        }
    }
    for sub in &c.all {
        all.push(compile_condition(sub, idx, scope, uses_tokens)?);
    }
    if !c.any.is_empty() {
        let any = c
            .any
            .iter()
            .map(|sub| compile_condition(sub, idx, scope, uses_tokens))
            .collect::<Result<_, _>>()?;
        all.push(Node::Any(any));
    }
    if let Some(n) = &c.not {
        all.push(Node::Not(Box::new(compile_condition(
            n,
            idx,
            scope,
            uses_tokens,
        )?)));
    }
    match all.len() {
        0 => Err("a condition needs at least one test".into()),
        1 => Ok(all.remove(0)),
        _ => Ok(Node::All(all)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatRequest;
    use http::HeaderMap;
    use serde_json::json;

    fn rules(yaml: &str) -> Rules {
        let cfg: Vec<RuleConfig> = serde_saphyr::from_str(yaml).unwrap();
        Rules::compile(&cfg).unwrap()
    }

    fn decide(r: &Rules, body: serde_json::Value, headers: &[(&str, &str)]) -> Option<String> {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let f = Facts::new(&req, &h, Caller::default());
        r.first_match(&f).map(|x| x.name.to_string())
    }

    fn user(text: &str) -> serde_json::Value {
        json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
    }

    #[test]
    fn key_conditions_read_the_callers_virtual_key() {
        let r = rules(
            "- { name: research, when: { key: { team: [Research] } }, tier: p }\n\
             - { name: batch, when: { key: { name: [nightly], metadata: { env: prod } } }, tier: b }\n\
             - { name: guest, when: { not: { key: { team: [research, ops] } } }, tier: b }\n",
        );
        let req: ChatRequest = serde_json::from_value(user("hello")).unwrap();
        let h = HeaderMap::new();
        let first = |c: Caller<'_>| {
            r.first_match(&Facts::new(&req, &h, c))
                .map(|x| x.name.to_string())
        };
        let meta = json!({"env": "prod"});
        let staging = json!({"env": "staging"});
        let research = Caller {
            team: Some("research"),
            ..Caller::default()
        };
        assert_eq!(first(research).as_deref(), Some("research"));
        let nightly = |m| Caller {
            name: Some("nightly"),
            team: Some("ops"),
            metadata: Some(m),
        };
        assert_eq!(first(nightly(&meta)).as_deref(), Some("batch"));
        assert_eq!(first(nightly(&staging)), None, "every key field must hold");
        assert_eq!(
            first(Caller::default()).as_deref(),
            Some("guest"),
            "a request without a virtual key matches no key test"
        );
    }

    #[test]
    fn keywords_match_whole_words_case_insensitively_with_prefix_wildcards() {
        let r = rules(
            "- { name: sum, when: { keywords: [summariz*, tldr] }, tier: b }\n\
             - { name: code, when: { keywords: [code] }, tier: m }\n\
             - { name: fr, when: { keywords: [résumé] }, tier: b }\n",
        );
        assert_eq!(
            decide(&r, user("Please SUMMARIZE this"), &[]).as_deref(),
            Some("sum")
        );
        assert_eq!(
            decide(&r, user("a summarized view"), &[]).as_deref(),
            Some("sum")
        );
        assert_eq!(
            decide(&r, user("tl;dr: TLDR."), &[]).as_deref(),
            Some("sum")
        );
        assert_eq!(
            decide(&r, user("review my code"), &[]).as_deref(),
            Some("code")
        );
        assert_eq!(
            decide(&r, user("decode this barcode"), &[]),
            None,
            "no match inside other words"
        );
        assert_eq!(
            decide(&r, user("Mon RÉSUMÉ, s'il vous plaît"), &[]).as_deref(),
            Some("fr")
        );
    }

    #[test]
    fn overlapping_keywords_are_all_found() {
        // "tax" lies inside the longer keyword "tax help": both occur, so the first rule decides.
        let r = rules(
            "- { name: plain, when: { keywords: [tax] }, tier: b }\n\
             - { name: phrase, when: { keywords: [\"tax help\"] }, tier: m }\n\
             - { name: both, when: { keywords_all: [\"tax help\", help] }, tier: p }\n",
        );
        assert_eq!(
            decide(&r, user("I need TAX HELP now"), &[]).as_deref(),
            Some("plain")
        );
        let r2 = rules(
            "- { name: phrase, when: { keywords: [\"tax help\"] }, tier: m }\n\
             - { name: plain, when: { keywords: [tax] }, tier: b }\n",
        );
        assert_eq!(
            decide(&r2, user("Tax season"), &[]).as_deref(),
            Some("plain")
        );
        assert_eq!(
            decide(&r2, user("syntax help"), &[]),
            None,
            "no whole-word match"
        );
    }

    #[test]
    fn all_any_not_and_keywords_all_combine() {
        let r = rules(
            "- name: translate-es\n  when: { keywords_all: [translate, spanish] }\n  tier: b\n\
             - name: long-code\n  when:\n    all:\n      - { regex: '(?i)\\bfunction\\b' }\n      - any: [{ keywords: [rust] }, { keywords: [go] }]\n    not: { keywords: [simple] }\n  tier: p\n",
        );
        assert_eq!(
            decide(&r, user("translate to Spanish please"), &[]).as_deref(),
            Some("translate-es")
        );
        assert_eq!(decide(&r, user("translate to French"), &[]), None);
        assert_eq!(
            decide(&r, user("write a rust function"), &[]).as_deref(),
            Some("long-code")
        );
        assert_eq!(decide(&r, user("write a simple rust function"), &[]), None);
        assert_eq!(decide(&r, user("write a python function"), &[]), None);
    }

    #[test]
    fn request_shape_conditions() {
        let r = rules(
            "- { name: tools, when: { has_tools: true }, tier: m }\n\
             - { name: images, when: { has_images: true }, tier: p }\n\
             - { name: json, when: { json_response: true }, tier: b }\n\
             - { name: long, when: { prompt_tokens: { min: 50 } }, tier: p }\n\
             - { name: alias, when: { model: [gpt-4] }, tier: p }\n",
        );
        let mut b = user("hi");
        b["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        assert_eq!(decide(&r, b, &[]).as_deref(), Some("tools"));
        let img = json!({"model": "auto", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]});
        assert_eq!(decide(&r, img, &[]).as_deref(), Some("images"));
        let mut j = user("list three colours");
        j["response_format"] = json!({"type": "json_object"});
        assert_eq!(decide(&r, j, &[]).as_deref(), Some("json"));
        assert_eq!(
            decide(&r, user(&"word ".repeat(60)), &[]).as_deref(),
            Some("long")
        );
        assert_eq!(decide(&r, user("short"), &[]), None);
        let mut a = user("hi");
        a["model"] = json!("gpt-4");
        assert_eq!(decide(&r, a, &[]).as_deref(), Some("alias"));
    }

    #[test]
    fn metadata_tags_and_headers() {
        let r = rules(
            "- { name: tenant, when: { metadata: { tenant: [acme, globex] } }, tier: p }\n\
             - { name: tagged, when: { tags: [batch] }, tier: b }\n\
             - { name: hdr, when: { header: { name: x-team, regex: '^ml-' } }, tier: m }\n",
        );
        let mut m = user("hi");
        m["metadata"] = json!({"tenant": "ACME"});
        assert_eq!(decide(&r, m, &[]).as_deref(), Some("tenant"));
        let mut t = user("hi");
        t["metadata"] = json!({"tags": ["nightly", "Batch"]});
        assert_eq!(decide(&r, t, &[]).as_deref(), Some("tagged"));
        assert_eq!(
            decide(&r, user("hi"), &[("x-switchyard-tags", "x, batch")]).as_deref(),
            Some("tagged")
        );
        assert_eq!(
            decide(&r, user("hi"), &[("x-team", "ml-infra")]).as_deref(),
            Some("hdr")
        );
        assert_eq!(decide(&r, user("hi"), &[("x-team", "web")]), None);
    }

    #[test]
    fn priority_and_match_scope() {
        let r = rules(
            "- { name: late-but-urgent, priority: 10, when: { keywords: [urgent] }, tier: p }\n\
             - { name: first, when: { keywords: [urgent] }, tier: b }\n\
             - { name: sys, match_on: system, when: { keywords: [pirate] }, tier: b }\n\
             - { name: conv, match_on: conversation, when: { keywords: [earlier] }, tier: m }\n",
        );
        assert_eq!(
            decide(&r, user("urgent: fix"), &[]).as_deref(),
            Some("late-but-urgent")
        );
        let sys = json!({"model": "auto", "messages": [{"role": "system", "content": "Talk like a pirate"}, {"role": "user", "content": "hello"}]});
        assert_eq!(decide(&r, sys, &[]).as_deref(), Some("sys"));
        let conv = json!({"model": "auto", "messages": [{"role": "user", "content": "as I said earlier"},
            {"role": "assistant", "content": "yes"}, {"role": "user", "content": "go on"}]});
        assert_eq!(decide(&r, conv, &[]).as_deref(), Some("conv"));
        assert_eq!(
            decide(&r, user("pirate"), &[]),
            None,
            "system-scoped rules ignore the user's text"
        );
    }
}
