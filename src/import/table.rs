//! The switchyard table an import produces, as plain data: what `write` turns into YAML. Kept apart
//! from `config`'s schema (which is for reading, with spans and defaults) so the importer can say
//! only what it means to say and leave everything else to switchyard's defaults.

use super::providers::Kind;

/// A string value of the table: literal text and `${VAR}` references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Text {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    Lit(String),
    Var(String),
}

impl Text {
    pub fn lit(s: impl Into<String>) -> Text {
        Text {
            pieces: vec![Piece::Lit(s.into())],
        }
    }

    pub fn var(name: impl Into<String>) -> Text {
        Text {
            pieces: vec![Piece::Var(name.into())],
        }
    }

    /// This text followed by literal `s`.
    pub fn then(mut self, s: &str) -> Text {
        match self.pieces.last_mut() {
            Some(Piece::Lit(l)) => l.push_str(s),
            _ => self.pieces.push(Piece::Lit(s.to_string())),
        }
        self
    }

    /// The literal text, when the value has no variable in it.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(_) => return None,
            }
        }
        Some(out)
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// Trailing `/` removed from the literal end (a base URL).
    pub fn trim_end_slash(mut self) -> Text {
        if let Some(Piece::Lit(l)) = self.pieces.last_mut() {
            while l.ends_with('/') {
                l.pop();
            }
        }
        self.pieces
            .retain(|p| !matches!(p, Piece::Lit(l) if l.is_empty()));
        self
    }

    /// Whether the literal end of the value ends with `suffix`.
    pub fn ends_with(&self, suffix: &str) -> bool {
        matches!(self.pieces.last(), Some(Piece::Lit(l)) if l.ends_with(suffix))
    }

    /// The value with `suffix` removed from its literal end, when it ends with it.
    pub fn strip_suffix(mut self, suffix: &str) -> Text {
        if let Some(Piece::Lit(l)) = self.pieces.last_mut() {
            if let Some(s) = l.strip_suffix(suffix) {
                *l = s.to_string();
            }
        }
        self.pieces
            .retain(|p| !matches!(p, Piece::Lit(l) if l.is_empty()));
        self
    }
}

/// A setting and the LiteLLM key it came from (written as a trailing comment).
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, from: impl Into<String>) -> Self {
        Sourced {
            value,
            from: from.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The LiteLLM file, for the header.
    pub source: String,
    pub listen: String,
    pub api_keys: Vec<Sourced<Text>>,
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    pub tiers: Vec<Tier>,
    pub default: Sourced<String>,
    pub counterfactual: Option<Sourced<String>>,
    pub aliases: Vec<Alias>,
    pub fallbacks: Vec<Chain>,
    pub context_window: Vec<Chain>,
    pub reliability: Reliability,
}

impl Default for Sourced<String> {
    fn default() -> Self {
        Sourced::new(String::new(), "")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub kind: Kind,
    pub base_url: Option<Text>,
    pub api_key: Option<Text>,
    pub api_version: Option<Text>,
    pub headers: Vec<(String, Text)>,
    /// Seconds.
    pub timeout: Option<f64>,
    pub stream_idle_timeout: Option<f64>,
}

impl Provider {
    /// Two deployments share a provider when everything but the name is the same.
    pub fn same_endpoint(&self, other: &Provider) -> bool {
        Provider {
            name: String::new(),
            ..self.clone()
        } == Provider {
            name: String::new(),
            ..other.clone()
        }
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PriceRef {
    /// An entry of the bundled table.
    Named(String, Price),
    Inline(Price),
}

impl PriceRef {
    pub fn price(&self) -> Price {
        match self {
            PriceRef::Named(_, p) | PriceRef::Inline(p) => *p,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub price: Option<PriceRef>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub weight: Option<f64>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `model_list[3]`.
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub models: Vec<String>,
    pub strategy: Option<Sourced<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct Chain {
    pub from: String,
    pub to: Vec<String>,
    pub source: String,
}

/// `model_group_alias`: a name clients send that means one tier.
#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub tier: String,
    pub source: String,
}

#[derive(Debug, Clone, Default)]
pub struct Reliability {
    pub max_attempts: Option<Sourced<u64>>,
    pub max_fallbacks: Option<Sourced<u64>>,
    pub retries: Option<Sourced<u64>>,
    /// Seconds.
    pub backoff_initial: Option<Sourced<f64>>,
    pub backoff_max: Option<Sourced<f64>>,
    pub cooldown_enabled: Option<Sourced<bool>>,
    pub allowed_fails: Option<Sourced<u64>>,
    pub window: Option<Sourced<f64>>,
    pub duration: Option<Sourced<f64>>,
    /// Failure class (`rate_limit`, …) → its policy, in the order written.
    pub policies: Vec<(&'static str, Policy)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cooling {
    Never,
    Count,
    Immediate,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub retries: Option<u64>,
    pub fallback: Option<bool>,
    pub cooldown: Option<Cooling>,
    pub from: Vec<String>,
}

impl Reliability {
    pub fn policy(&mut self, class: &'static str) -> &mut Policy {
        let i = match self.policies.iter().position(|(c, _)| *c == class) {
            Some(i) => i,
            None => {
                self.policies.push((class, Policy::default()));
                self.policies.len() - 1
            }
        };
        &mut self.policies[i].1
    }

    pub fn is_empty(&self) -> bool {
        self.max_attempts.is_none()
            && self.max_fallbacks.is_none()
            && self.retries.is_none()
            && self.backoff_initial.is_none()
            && self.backoff_max.is_none()
            && self.cooldown_enabled.is_none()
            && self.allowed_fails.is_none()
            && self.window.is_none()
            && self.duration.is_none()
            && self.policies.is_empty()
    }
}
