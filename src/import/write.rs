//! Writing an imported table as YAML in the style of `config/example.yaml`: one line per model,
//! each setting followed by the LiteLLM key it came from, and the report at the end as comments.
//!
//! Written by hand rather than through a serializer because the comments are half the point and
//! the shape is fixed. Every string that switchyard interpolates is double-quoted with JSON's
//! escapes (valid YAML), and a literal `${` in it is written `$${`.

use super::report::Report;
use super::table::{Cooling, Piece, PriceRef, Provider, Reliability, Sourced, Table, Text};
use std::fmt::Write as _;

/// How `${VAR}`s are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vars {
    /// As `${VAR}`: the table to keep.
    AsIs,
    /// As `${VAR:-placeholder}`, so a table can be validated where its variables are not set:
    /// a set variable is still used, an unset one validates as a plausible value.
    Placeholder,
}

/// What an unset URL variable stands for while checking.
pub const URL_PLACEHOLDER: &str = "https://unset.invalid";
/// What any other unset variable stands for while checking.
pub const PLACEHOLDER: &str = "unset";

/// A name written bare when YAML would read it back as the same string, else double-quoted.
fn name(s: &str) -> String {
    let mut chars = s.chars();
    let bare = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if bare { s.to_string() } else { quote(s) }
}

/// A double-quoted YAML scalar (JSON's escapes are YAML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// An interpolated value, quoted.
fn text(t: &Text, url: bool, vars: Vars) -> String {
    let mut raw = String::new();
    for p in &t.pieces {
        match p {
            Piece::Lit(s) => raw.push_str(&s.replace("${", "$${")),
            Piece::Var(v) => match vars {
                Vars::AsIs => {
                    let _ = write!(raw, "${{{v}}}");
                }
                Vars::Placeholder => {
                    let ph = if url && raw.is_empty() {
                        URL_PLACEHOLDER
                    } else {
                        PLACEHOLDER
                    };
                    let _ = write!(raw, "${{{v}:-{ph}}}");
                }
            },
        }
    }
    quote(&raw)
}

/// The provider's model id: bare when it reads back as itself and holds no `$`.
fn upstream(id: &str) -> String {
    let bare = name(id);
    if bare == id && !id.contains('$') {
        bare
    } else {
        text(&Text::lit(id), false, Vars::AsIs)
    }
}

fn number(v: f64) -> String {
    format!("{v}")
}

/// `30s`, `1500ms`: what the config's durations accept.
fn duration(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{}s", secs as u64)
    } else {
        let ms = (secs * 1000.0).round().max(1.0);
        format!("{}ms", ms as u64)
    }
}

/// `  # from`, padded so the comments of a section line up.
fn comment(line: &str, from: &str, width: usize) -> String {
    if from.is_empty() {
        return line.to_string();
    }
    let pad = width.saturating_sub(line.chars().count()).max(1);
    format!("{line}{}# {from}", " ".repeat(pad))
}

/// Lines with their source comments aligned in one column after the longest line.
fn commented<S: AsRef<str>>(w: &mut String, lines: &[(String, S)]) {
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    for (l, from) in lines {
        let _ = writeln!(w, "{}", comment(l, from.as_ref(), width));
    }
}

fn flow<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().collect();
    format!("[{}]", v.join(", "))
}

/// The table as YAML, with `report` appended as comments.
pub fn table(t: &Table, report: &Report, vars: Vars) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# switchyard routing table, imported from {} by `switchyard import litellm`.",
        t.source
    );
    let _ = writeln!(
        w,
        "# Each setting names the LiteLLM key it came from; what did not carry over, what carried over"
    );
    let _ = writeln!(
        w,
        "# with a difference and what the import chose is listed at the end. Validate it with"
    );
    let _ = writeln!(w, "# `switchyard check --config FILE`.\n");

    let _ = writeln!(w, "server:");
    let _ = writeln!(w, "  listen: {}", quote(&t.listen));
    if !t.api_keys.is_empty() {
        let keys = flow(t.api_keys.iter().map(|k| text(&k.value, false, vars)));
        let from: Vec<&str> = t.api_keys.iter().map(|k| k.from.as_str()).collect();
        let _ = writeln!(
            w,
            "{}",
            comment(&format!("  api_keys: {keys}"), &from.join(", "), 40)
        );
    }

    let _ = writeln!(w, "\nproviders:");
    for p in &t.providers {
        provider(w, p, vars);
    }

    let _ = writeln!(w, "\nmodels:");
    let lines: Vec<(String, &str)> = t
        .models
        .iter()
        .map(|m| {
            let mut f = vec![
                format!("name: {}", name(&m.name)),
                format!("provider: {}", name(&m.provider)),
                format!("model: {}", upstream(&m.model)),
            ];
            match &m.price {
                Some(PriceRef::Named(n, _)) => f.push(format!("price: {}", name(n))),
                Some(PriceRef::Inline(p)) => {
                    let mut parts = vec![
                        format!("input: {}", number(p.input)),
                        format!("output: {}", number(p.output)),
                    ];
                    if let Some(c) = p.cached_input {
                        parts.push(format!("cached_input: {}", number(c)));
                    }
                    f.push(format!("price: {{ {} }}", parts.join(", ")));
                }
                None => {}
            }
            if let Some(c) = m.context_window {
                f.push(format!("context_window: {c}"));
            }
            if let Some(x) = m.max_output_tokens {
                f.push(format!("max_output_tokens: {x}"));
            }
            if let Some(x) = m.weight {
                f.push(format!("weight: {}", number(x)));
            }
            if let Some(x) = m.rpm {
                f.push(format!("rpm: {x}"));
            }
            if let Some(x) = m.tpm {
                f.push(format!("tpm: {x}"));
            }
            (format!("  - {{ {} }}", f.join(", ")), m.from.as_str())
        })
        .collect();
    commented(w, &lines);

    let _ = writeln!(w, "\ntiers:");
    let lines: Vec<(String, String)> = t
        .tiers
        .iter()
        .map(|tier| {
            let mut f = vec![format!(
                "models: {}",
                flow(tier.models.iter().map(|m| name(m)))
            )];
            let mut from = String::new();
            if let Some(s) = &tier.strategy {
                f.push(format!("strategy: {}", s.value));
                from = s.from.clone();
            }
            (
                format!("  {}: {{ {} }}", name(&tier.name), f.join(", ")),
                from,
            )
        })
        .collect();
    commented(w, &lines);

    let _ = writeln!(w, "\nrouting:");
    let _ = writeln!(
        w,
        "{}",
        comment(
            &format!("  default: {}", name(&t.default.value)),
            &t.default.from,
            36
        )
    );
    if let Some(c) = &t.counterfactual {
        let _ = writeln!(
            w,
            "{}",
            comment(
                &format!("  counterfactual: {}", name(&c.value)),
                &c.from,
                36
            )
        );
    }
    if !t.aliases.is_empty() {
        let _ = writeln!(
            w,
            "  # model_group_alias: each alias runs the router, and its rule sends it to its tier."
        );
        let _ = writeln!(
            w,
            "  aliases: {}",
            flow(t.aliases.iter().map(|a| name(&a.name)))
        );
        let _ = writeln!(w, "  rules:");
        let lines: Vec<(String, &str)> = t
            .aliases
            .iter()
            .map(|a| {
                (
                    format!(
                        "    - {{ name: {}, when: {{ model: [{}] }}, tier: {}, priority: 100 }}",
                        quote(&format!("alias:{}", a.name)),
                        name(&a.name),
                        name(&a.tier)
                    ),
                    a.source.as_str(),
                )
            })
            .collect();
        commented(w, &lines);
    }

    if !t.fallbacks.is_empty() || !t.context_window.is_empty() {
        let _ = writeln!(w, "\nfallbacks:");
        let chain = |indent: &str, c: &super::table::Chain| {
            comment(
                &format!(
                    "{indent}{}: {}",
                    name(&c.from),
                    flow(c.to.iter().map(|x| name(x)))
                ),
                &c.source,
                44,
            )
        };
        for c in &t.fallbacks {
            let _ = writeln!(w, "{}", chain("  ", c));
        }
        if !t.context_window.is_empty() {
            let _ = writeln!(
                w,
                "  # Prompts too long for a tier go to a tier with a bigger window."
            );
            let _ = writeln!(w, "  context_window:");
            for c in &t.context_window {
                let _ = writeln!(w, "{}", chain("    ", c));
            }
        }
    }

    if !t.reliability.is_empty() {
        let _ = writeln!(w, "\nreliability:");
        reliability(w, &t.reliability);
    }

    let _ = writeln!(
        w,
        "\n# ---- Report: what did not carry over, what carried over with a difference, what the import chose ----"
    );
    out.push_str(&report.comments());
    out
}

fn provider(w: &mut String, p: &Provider, vars: Vars) {
    let _ = writeln!(w, "  {}:", name(&p.name));
    let _ = writeln!(w, "    kind: {}", p.kind.as_str());
    if let Some(b) = &p.base_url {
        let _ = writeln!(w, "    base_url: {}", text(b, true, vars));
    }
    if let Some(v) = &p.api_version {
        let _ = writeln!(w, "    api_version: {}", text(v, false, vars));
    }
    if let Some(k) = &p.api_key {
        let _ = writeln!(w, "    api_key: {}", text(k, false, vars));
    }
    if !p.headers.is_empty() {
        let _ = writeln!(w, "    headers:");
        for (k, v) in &p.headers {
            let _ = writeln!(w, "      {}: {}", quote(k), text(v, false, vars));
        }
    }
    if let Some(t) = p.timeout {
        let _ = writeln!(w, "    timeout: {}", duration(t));
    }
    if let Some(t) = p.stream_idle_timeout {
        let _ = writeln!(w, "    stream_idle_timeout: {}", duration(t));
    }
}

fn setting<T>(
    w: &mut String,
    indent: &str,
    key: &str,
    s: &Option<Sourced<T>>,
    show: impl Fn(&T) -> String,
) {
    if let Some(s) = s {
        let _ = writeln!(
            w,
            "{}",
            comment(&format!("{indent}{key}: {}", show(&s.value)), &s.from, 36)
        );
    }
}

fn reliability(w: &mut String, r: &Reliability) {
    setting(w, "  ", "max_attempts", &r.max_attempts, u64::to_string);
    setting(w, "  ", "max_fallbacks", &r.max_fallbacks, u64::to_string);
    setting(w, "  ", "retries", &r.retries, u64::to_string);
    if r.backoff_initial.is_some() || r.backoff_max.is_some() {
        let _ = writeln!(w, "  backoff:");
        setting(w, "    ", "initial", &r.backoff_initial, |s| duration(*s));
        setting(w, "    ", "max", &r.backoff_max, |s| duration(*s));
    }
    if r.cooldown_enabled.is_some()
        || r.allowed_fails.is_some()
        || r.window.is_some()
        || r.duration.is_some()
    {
        let _ = writeln!(w, "  cooldown:");
        setting(w, "    ", "enabled", &r.cooldown_enabled, bool::to_string);
        setting(w, "    ", "allowed_fails", &r.allowed_fails, u64::to_string);
        setting(w, "    ", "window", &r.window, |s| duration(*s));
        setting(w, "    ", "duration", &r.duration, |s| duration(*s));
    }
    if !r.policies.is_empty() {
        let _ = writeln!(w, "  policies:");
        for (class, p) in &r.policies {
            let mut f = Vec::new();
            if let Some(n) = p.retries {
                f.push(format!("retries: {n}"));
            }
            if let Some(b) = p.fallback {
                f.push(format!("fallback: {b}"));
            }
            if let Some(c) = p.cooldown {
                f.push(format!(
                    "cooldown: {}",
                    match c {
                        Cooling::Never => "false",
                        Cooling::Count => "true",
                        Cooling::Immediate => "immediate",
                    }
                ));
            }
            let line = format!("    {class}: {{ {} }}", f.join(", "));
            let _ = writeln!(w, "{}", comment(&line, &p.from.join(", "), 52));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_written() {
        assert_eq!(name("gpt-4o"), "gpt-4o");
        assert_eq!(name("gpt-4o@azure-eu"), "gpt-4o@azure-eu");
        assert_eq!(name("yes"), "\"yes\"");
        assert_eq!(name("4o"), "\"4o\"");
        assert_eq!(name("my model: v2"), "\"my model: v2\"");
        let t = Text::var("AZURE_API_BASE").then("/openai/deployments/x");
        assert_eq!(
            text(&t, true, Vars::AsIs),
            "\"${AZURE_API_BASE}/openai/deployments/x\""
        );
        assert_eq!(
            text(&t, true, Vars::Placeholder),
            "\"${AZURE_API_BASE:-https://unset.invalid}/openai/deployments/x\""
        );
        assert_eq!(
            text(&Text::lit("sk-${x}"), false, Vars::AsIs),
            "\"sk-$${x}\""
        );
        assert_eq!(duration(30.0), "30s");
        assert_eq!(duration(0.5), "500ms");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1e-7), "0.0000001");
    }
}
