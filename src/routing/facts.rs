//! What rules ask about a request, computed on first use and then remembered, so a table of fifty
//! rules reads each text, runs each automaton and counts tokens at most once per request.

use crate::config::MatchScope;
use crate::openai::ChatRequest;
use crate::tokens;
use http::HeaderMap;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::OnceCell;

pub struct Facts<'a> {
    pub req: &'a ChatRequest,
    pub headers: &'a HeaderMap,
    pub caller: Caller<'a>,
    texts: [OnceCell<Cow<'a, str>>; 3],
    tags: OnceCell<Vec<String>>,
}

/// Who sent the request, as `key:` conditions see it: the virtual key's team, name and
/// metadata. Empty for a static key or an unauthenticated gateway.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub name: Option<&'a str>,
    pub team: Option<&'a str>,
    pub metadata: Option<&'a Value>,
}

impl Caller<'_> {
    /// `metadata.<field>` as text, for a string, number or boolean value.
    pub fn metadata(&self, field: &str) -> Option<String> {
        scalar_text(self.metadata?.get(field)?)
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub const SCOPES: [MatchScope; 3] = [
    MatchScope::LastUser,
    MatchScope::Conversation,
    MatchScope::System,
];

pub fn scope_index(s: MatchScope) -> usize {
    match s {
        MatchScope::LastUser => 0,
        MatchScope::Conversation => 1,
        MatchScope::System => 2,
    }
}

impl<'a> Facts<'a> {
    pub fn new(req: &'a ChatRequest, headers: &'a HeaderMap, caller: Caller<'a>) -> Self {
        Facts {
            req,
            headers,
            caller,
            texts: Default::default(),
            tags: OnceCell::new(),
        }
    }

    pub fn text(&self, scope: MatchScope) -> &str {
        let cell = &self.texts[scope_index(scope)];
        cell.get_or_init(|| match scope {
            MatchScope::LastUser => self
                .req
                .last_user_message()
                .map(|m| m.text_ref())
                .unwrap_or_default(),
            MatchScope::Conversation => {
                Cow::Owned(join(self.req.messages.iter().map(|m| m.text())))
            }
            MatchScope::System => Cow::Owned(join(
                self.req
                    .messages
                    .iter()
                    .filter(|m| m.role == "system" || m.role == "developer")
                    .map(|m| m.text()),
            )),
        })
    }

    pub fn prompt_tokens(&self) -> u64 {
        tokens::estimate_prompt(self.req)
    }

    pub fn tags(&self) -> &[String] {
        self.tags.get_or_init(|| {
            let mut out = Vec::new();
            match self.req.extra.get("metadata").and_then(|m| m.get("tags")) {
                Some(Value::Array(a)) => {
                    out.extend(a.iter().filter_map(Value::as_str).map(str::to_lowercase))
                }
                Some(Value::String(s)) => out.extend(split_tags(s)),
                _ => {}
            }
            for v in self.headers.get_all("x-switchyard-tags") {
                if let Ok(s) = v.to_str() {
                    out.extend(split_tags(s));
                }
            }
            out
        })
    }

    pub fn metadata(&self, key: &str) -> Option<String> {
        scalar_text(self.req.extra.get("metadata")?.get(key)?)
    }

    pub fn has_tools(&self) -> bool {
        ["tools", "functions"].iter().any(|k| {
            self.req
                .extra
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
    }

    pub fn has_images(&self) -> bool {
        tokens::image_parts(self.req) > 0
    }

    pub fn json_response(&self) -> bool {
        matches!(
            self.req
                .extra
                .get("response_format")
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str),
            Some("json_object" | "json_schema")
        )
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_tags(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',')
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
}
