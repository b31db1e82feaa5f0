//! Key secrets: made from the operating system's randomness, shown once, and stored only as their
//! SHA-256. A key with 186 random bits needs no salt or slow hash: nobody can guess one, and the
//! hash only has to make a leaked table useless for calling the gateway.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "sk-sy-";

/// A new secret: `sk-sy-` and 48 hex digits from two v4 UUIDs (the OS generator behind them).
pub fn generate() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{PREFIX}{a}{}", &b[..16])
}

/// What the store keeps and looks keys up by.
pub fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out
}

/// `sk-sy-…1a2b`: enough to recognise a key in a list, too little to use it.
pub fn hint(secret: &str) -> String {
    format!("{PREFIX}{}", crate::redact::tail(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 48);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hint("sk-sy-00001234"), "sk-sy-…1234");
    }
}
