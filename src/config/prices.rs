//! The price tables a model's `price` may name: the config's own `prices:` section first, then the
//! table bundled into the binary (`config/prices.yaml`), so a config works without that file next
//! to it and a user can still correct a price the bundle has wrong.

use super::{Config, ConfigError, Price, PriceSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

const BUNDLED: &str = include_str!("../../config/prices.yaml");

/// The bundled table, parsed once. A parse failure is reported as a config error rather than a
/// panic; a unit test keeps it from ever happening in a release.
pub fn bundled() -> Result<&'static BTreeMap<String, Price>, String> {
    static TABLE: OnceLock<Result<BTreeMap<String, Price>, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_saphyr::from_str(BUNDLED)
                .map_err(|e| format!("the bundled price table is invalid: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn check(p: &Price) -> Result<(), String> {
    for (what, v) in [
        ("input", p.input),
        ("output", p.output),
        ("cached_input", p.cached_input.unwrap_or(0.0)),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{what} price {v} must be a non-negative number"));
        }
    }
    Ok(())
}

/// Fills every `models[].price` from its `price_spec`. Errors name the file, line and YAML path of
/// the offending entry and, for an unknown name, the nearest names that do exist.
pub fn resolve(c: &mut Config, file: &str, text: &str) -> Result<(), ConfigError> {
    let bundled = bundled().map_err(|m| ConfigError::whole_file(file, m))?;
    for (name, p) in &c.prices {
        check(p).map_err(|m| {
            let line = key_line(text, "prices", name);
            ConfigError::at(file, text, line, None, &format!("prices.{name}"), m)
        })?;
    }
    for (i, m) in c.models.iter_mut().enumerate() {
        let Some(spec) = &m.price_spec else {
            m.price = Price::default();
            continue;
        };
        let at = |message: String| {
            let loc = spec.referenced;
            ConfigError::at(
                file,
                text,
                u32::try_from(loc.line()).ok().filter(|&l| l > 0),
                u32::try_from(loc.column()).ok().filter(|&c| c > 0),
                &format!("models[{i}].price"),
                message,
            )
        };
        let price = match &spec.value {
            PriceSpec::Inline(p) => *p,
            PriceSpec::Named(name) => match c.prices.get(name).or_else(|| bundled.get(name)) {
                Some(p) => *p,
                None => {
                    return Err(at(format!(
                        "unknown price `{name}`: not in this file's `prices:` nor in the bundled table{}",
                        suggest(name, c.prices.keys().chain(bundled.keys()))
                    )));
                }
            },
        };
        check(&price).map_err(at)?;
        m.price = price;
    }
    Ok(())
}

/// ` (did you mean …?)` with up to three names sharing the longest prefix with `name`.
fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a String>) -> String {
    let common = |a: &str| {
        a.chars()
            .zip(name.chars())
            .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
            .count()
    };
    let mut scored: Vec<(usize, &str)> = names.map(|n| (common(n), n.as_str())).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    let best: Vec<&str> = scored
        .iter()
        .take_while(|(n, _)| *n >= 3)
        .take(3)
        .map(|(_, s)| *s)
        .collect();
    if best.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", best.join(", "))
    }
}

/// The line of `key:` inside a top-level `section:`, for map keys (which carry no span).
fn key_line(text: &str, section: &str, key: &str) -> Option<u32> {
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if line.len() == trimmed.len() && !trimmed.is_empty() && !trimmed.starts_with('#') {
            inside = trimmed.starts_with(&format!("{section}:"));
        }
        if inside && trimmed.trim_start_matches(['"', '\'']).starts_with(key) {
            return u32::try_from(i + 1).ok();
        }
    }
    None
}

/// `routing.counterfactual`, compiled: the price every request is compared against.
#[derive(Debug, Clone)]
pub struct Counterfactual {
    /// Set when the counterfactual is a tier: requests that tier served are their own counterfactual.
    pub tier: Option<Arc<str>>,
    /// Set when it is a model.
    pub model: Option<Arc<str>>,
    /// The model's price, or the tier's first model's price.
    pub price: Price,
}

impl Counterfactual {
    /// `None` when the config names no counterfactual (then every request is its own baseline and
    /// savings are zero). Validation guarantees the name exists.
    pub fn from_config(c: &Config) -> Option<Counterfactual> {
        let name = &c.routing.counterfactual.as_ref()?.value;
        if let Some(t) = c.tiers.get(name) {
            let first = t.models.first()?;
            return Some(Counterfactual {
                tier: Some(name.as_str().into()),
                model: None,
                price: c.model(&first.value)?.price,
            });
        }
        Some(Counterfactual {
            tier: None,
            model: Some(name.as_str().into()),
            price: c.model(name)?.price,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_parses_and_is_sane() {
        let t = bundled().unwrap();
        assert!(t.len() >= 30, "{}", t.len());
        for (name, p) in t {
            check(p).unwrap();
            // Embedding models bill input tokens only.
            let embedding = name.contains("embedding") && p.output == 0.0;
            assert!(
                p.input > 0.0 && (p.output >= p.input || embedding),
                "{name}"
            );
            if let Some(c) = p.cached_input {
                assert!(c < p.input, "{name}: cached input should be cheaper");
            }
        }
        for name in [
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "gemini-2.5-flash",
            "mistral-large-latest",
            "text-embedding-3-small",
        ] {
            assert!(t.contains_key(name), "{name}");
        }
        let p = t["gpt-4o-mini"];
        assert_eq!(
            (p.input, p.output, p.cached_input),
            (0.15, 0.6, Some(0.075))
        );
    }

    #[test]
    fn suggestions_share_a_prefix() {
        let names: Vec<String> = ["gpt-4o", "gpt-4o-mini", "o3", "claude-3-haiku"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            suggest("gpt-4o-mimi", names.iter()),
            " (did you mean gpt-4o-mini, gpt-4o?)"
        );
        assert_eq!(suggest("zzz", names.iter()), "");
    }

    fn config(models: &str, extra: &str) -> Result<Config, ConfigError> {
        let yaml = format!(
            "providers:\n  p: {{ kind: simulated }}\nmodels:\n{models}tiers:\n  t: {{ models: [a] }}\nrouting:\n  default: t\n{extra}"
        );
        Config::from_yaml(&yaml, "cfg.yaml")
    }

    #[test]
    fn models_refer_to_prices_by_name() {
        let c = config(
            "  - { name: a, provider: p, price: gpt-4o-mini }\n  - { name: b, provider: p, price: mine }\n  - { name: c, provider: p, price: { input: 1, output: 2 } }\n  - { name: d, provider: p }\n",
            "prices:\n  mine: { input: 7, output: 9, cached_input: 1 }\n  gpt-4o-mini: { input: 0.2, output: 0.7 }\n",
        )
        .unwrap();
        let p: Vec<(f64, f64, Option<f64>)> = c
            .models
            .iter()
            .map(|m| (m.price.input, m.price.output, m.price.cached_input))
            .collect();
        // The config's own table overrides the bundled entry of the same name.
        assert_eq!(
            p,
            [
                (0.2, 0.7, None),
                (7.0, 9.0, Some(1.0)),
                (1.0, 2.0, None),
                (0.0, 0.0, None)
            ]
        );
    }

    #[test]
    fn unknown_or_bad_prices_name_file_line_and_key() {
        let e = config(
            "  - { name: a, provider: p }\n  - name: b\n    provider: p\n    price: gpt-4o-mimi\n",
            "",
        )
        .unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.path.as_str()),
            ("cfg.yaml", Some(7), "models[1].price")
        );
        assert!(e.message.contains("unknown price `gpt-4o-mimi`"), "{e}");
        assert!(e.message.contains("did you mean gpt-4o-mini"), "{e}");

        let e = config("  - { name: a, provider: p, price: { input: -1 } }\n", "").unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (Some(4), "models[0].price"));
        assert!(e.message.contains("non-negative"), "{e}");

        let e = config(
            "  - { name: a, provider: p, price: { input: 1, ouput: 2 } }\n",
            "",
        )
        .unwrap_err();
        assert!(e.message.contains("ouput"), "{e}");

        let e = config(
            "  - { name: a, provider: p }\n",
            "prices:\n  x: { input: 1, output: -2 }\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (Some(10), "prices.x"));
    }

    #[test]
    fn counterfactual_may_be_a_model_or_a_tier() {
        let models = "  - { name: a, provider: p, price: { input: 1, output: 1 } }\n  - { name: z, provider: p, price: o3 }\n";
        let c = config(models, "  counterfactual: z\n").unwrap();
        let cf = Counterfactual::from_config(&c).unwrap();
        assert_eq!((cf.model.as_deref(), cf.price.input), (Some("z"), 2.0));
        let c = config(models, "  counterfactual: t\n").unwrap();
        let cf = Counterfactual::from_config(&c).unwrap();
        assert_eq!((cf.tier.as_deref(), cf.price.input), (Some("t"), 1.0));
        let e = config(models, "  counterfactual: nope\n").unwrap_err();
        assert_eq!(e.path, "routing.counterfactual");
        assert!(e.message.contains("neither a tier"), "{e}");
    }

    #[test]
    fn spend_log_settings_are_checked() {
        let m = "  - { name: a, provider: p }\n";
        let ok = config(m, "spend_log:\n  url: sqlite://s.db\n").unwrap();
        let s = ok.spend_log.unwrap();
        assert_eq!(
            (s.table.value.as_str(), s.batch_size),
            ("switchyard_spend", 200)
        );
        for (extra, path) in [
            ("spend_log:\n  url: mysql://x\n", "spend_log.url"),
            (
                "spend_log:\n  url: sqlite://s.db\n  table: \"a;b\"\n",
                "spend_log.table",
            ),
            (
                "spend_log:\n  url: sqlite://s.db\n  batch_size: 0\n",
                "spend_log.batch_size",
            ),
            (
                "spend_log:\n  url: sqlite://s.db\n  queue_size: 0\n",
                "spend_log.queue_size",
            ),
            (
                "spend_log:\n  url: sqlite://s.db\n  flush_interval: 0s\n",
                "spend_log.flush_interval",
            ),
        ] {
            let e = config(m, extra).unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert!(e.line.is_some(), "{e}");
        }
    }
}
