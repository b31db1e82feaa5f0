//! A deployment's price in the table: LiteLLM's per-token costs turned into switchyard's USD per
//! million tokens, or else the bundled price table's entry for the model, found by name.

use super::table::Price;
use std::collections::BTreeMap;

/// USD per token → USD per million tokens, rounded to a billionth of a dollar so that
/// `0.0000025` becomes `2.5`, not `2.4999999999999996`.
pub fn per_million(per_token: f64) -> f64 {
    (per_token * 1e6 * 1e9).round() / 1e9
}

/// The bundled table's entry for `model`, trying the names a model id is commonly written under:
/// as is, without a vendor path (`openai/gpt-4o` on OpenRouter), and without a date or version
/// suffix (`claude-3-5-haiku-20241022`, `gpt-4o-2024-08-06`, `…-latest`).
pub fn bundled<'t>(
    table: &'t BTreeMap<String, crate::config::Price>,
    model: &str,
) -> Option<(&'t str, Price)> {
    let mut names = vec![model.to_string()];
    if let Some((_, tail)) = model.rsplit_once('/') {
        names.push(tail.to_string());
    }
    for n in names.clone() {
        let stripped = strip_version(&n);
        if stripped != n {
            names.push(stripped);
        }
    }
    names.iter().find_map(|n| {
        table.get_key_value(n.as_str()).map(|(k, p)| {
            (
                k.as_str(),
                Price {
                    input: p.input,
                    output: p.output,
                    cached_input: p.cached_input,
                },
            )
        })
    })
}

/// `name` without a trailing date (`-20241022`, `-2024-08-06`), `-latest`, or a three-digit
/// version (`-002`).
fn strip_version(name: &str) -> String {
    let parts: Vec<&str> = name.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let n = parts.len();
    let keep =
        if n > 3 && digits(parts[n - 3], 4) && digits(parts[n - 2], 2) && digits(parts[n - 1], 2) {
            n - 3
        } else if n > 1
            && (digits(parts[n - 1], 8) || digits(parts[n - 1], 3) || parts[n - 1] == "latest")
        {
            n - 1
        } else {
            n
        };
    parts[..keep].join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_costs_become_clean_per_million_prices() {
        assert_eq!(per_million(0.0000025), 2.5);
        assert_eq!(per_million(1.5e-7), 0.15);
        assert_eq!(per_million(0.000015), 15.0);
        assert_eq!(per_million(3e-8), 0.03);
        assert_eq!(per_million(0.0), 0.0);
    }

    #[test]
    fn bundled_prices_are_found_under_dated_and_vendored_names() {
        let t = crate::config::prices::bundled().unwrap();
        let name = |m: &str| bundled(t, m).map(|(n, _)| n.to_string());
        assert_eq!(name("gpt-4o-mini").as_deref(), Some("gpt-4o-mini"));
        assert_eq!(name("gpt-4o-2024-08-06").as_deref(), Some("gpt-4o"));
        assert_eq!(
            name("claude-3-5-haiku-20241022").as_deref(),
            Some("claude-3-5-haiku")
        );
        assert_eq!(
            name("claude-3-5-sonnet-latest").as_deref(),
            Some("claude-3-5-sonnet")
        );
        assert_eq!(name("openai/gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(
            name("gemini-1.5-pro-002").as_deref(),
            Some("gemini-1.5-pro")
        );
        assert_eq!(
            name("mistral-large-latest").as_deref(),
            Some("mistral-large-latest")
        );
        assert_eq!(name("llama3.1:8b"), None);
        let p = bundled(t, "claude-3-5-haiku-20241022").unwrap().1;
        assert_eq!((p.input, p.output), (0.8, 4.0));
    }
}
