//! Scrubs configured secrets (provider keys, gateway keys) from any text that leaves the process:
//! error bodies, log lines. Providers sometimes echo the key they were sent in their error messages.
//! Where a key must be named (spend rows, key lists), only its `tail` is shown.
//!
//! Must not import anything of switchyard's.

use aho_corasick::AhoCorasick;

pub const MASK: &str = "[redacted]";

#[derive(Default)]
pub struct Redactor {
    secrets: Option<AhoCorasick>,
}

impl Redactor {
    pub fn new(secrets: &[String]) -> Self {
        let secrets = if secrets.is_empty() {
            None
        } else {
            AhoCorasick::new(secrets).ok()
        };
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        match &self.secrets {
            Some(ac) if ac.is_match(text) => {
                let masks = vec![MASK; ac.patterns_len()];
                ac.replace_all(text, &masks)
            }
            _ => text.to_string(),
        }
    }
}

/// `…abcd`: a secret's last four characters, enough to tell keys apart in a list or a report
/// and too little to use one.
pub fn tail(secret: &str) -> String {
    let start = secret.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    format!("…{}", &secret[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_the_last_four_characters() {
        assert_eq!(tail("sk-gateway-1234"), "…1234");
        assert_eq!(tail("ab"), "…ab");
        assert_eq!(tail("kéy-ñ234"), "…ñ234");
    }

    #[test]
    fn masks_every_configured_secret() {
        let r = Redactor::new(&["sk-live-123456".into(), "other-secret".into()]);
        assert_eq!(
            r.redact("Incorrect API key provided: sk-live-123456 (other-secret)"),
            "Incorrect API key provided: [redacted] ([redacted])"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(
            Redactor::new(&[]).redact("sk-live-123456"),
            "sk-live-123456"
        );
    }
}
