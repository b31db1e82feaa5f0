//! `providers:`: base URLs, what an Azure provider needs, simulated rates and skills, header names.
//! A provider whose variables the loading command left unset is skipped.

use super::Checker;
use crate::config::error::ConfigError;
use crate::config::schema::{Config, ProviderKind};

pub(super) fn check(c: &Config, ck: &Checker<'_>) -> Result<(), ConfigError> {
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

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{BASE, fails, passes};
    use super::check;

    #[test]
    fn urls_azure_and_simulation() {
        let two = |p: &str| {
            BASE.replace(
                "providers: {p: {kind: simulated}}",
                &format!("providers:\n  p: {p}"),
            )
        };
        passes(
            check,
            &two("{kind: openai, base_url: \"https://api.example.com/v1\", headers: {X-Team: a}}"),
        );
        fails(
            check,
            &two("{kind: openai, base_url: \"ftp://example.com\"}"),
            "providers.p.base_url",
            2,
            "\"ftp://example.com\" is not an http(s) URL",
        );
        fails(
            check,
            &two("{kind: azure, base_url: \"https://r.openai.azure.com/openai/deployments/d\"}"),
            "providers.p.api_version",
            2,
            "an azure provider needs api_version (e.g. 2024-10-21)",
        );
        fails(
            check,
            &two("{kind: simulated, simulate: {failure_rate: 1.5}}"),
            "providers.p.simulate.failure_rate",
            2,
            "1.5 is outside 0.0–1.0",
        );
    }
}
