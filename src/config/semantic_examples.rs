//! `routing.semantic.examples`: a YAML file of labelled prompts (`- { prompt: ..., tier: ... }`),
//! the table's own traffic given as extra examples of each tier beside its utterances. Read when
//! the config is validated (so a mistake in it is reported with its file and line) and again
//! when the semantic layer is compiled.

use super::error::ConfigError;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticExample {
    pub prompt: String,
    pub tier: Spanned<String>,
}

/// The examples in `path` and the file's text (to locate later errors in); `shown` is how the
/// file is named in errors.
pub fn read_examples(
    path: &Path,
    shown: &str,
) -> Result<(Vec<SemanticExample>, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(shown, format!("cannot read the examples file: {e}"))
    })?;
    let mut err_path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str(&text, |de| {
        serde_path_to_error::deserialize::<_, Vec<SemanticExample>>(de).map_err(|e| {
            err_path = e.path().to_string();
            e.into_inner()
        })
    });
    let examples = parsed.map_err(|e| ConfigError::from_yaml(&e, &err_path, shown, &text))?;
    for (i, ex) in examples.iter().enumerate() {
        if ex.prompt.trim().is_empty() {
            return Err(ConfigError::at(
                shown,
                &text,
                u32::try_from(ex.tier.referenced.line()).ok(),
                None,
                &format!("[{i}].prompt"),
                "the prompt must be a non-empty string".into(),
            ));
        }
    }
    Ok((examples, text))
}

/// An error about one example's tier, located in the examples file.
pub fn tier_error(
    shown: &str,
    text: &str,
    i: usize,
    ex: &SemanticExample,
    m: String,
) -> ConfigError {
    let loc = ex.tier.referenced;
    ConfigError::at(
        shown,
        text,
        u32::try_from(loc.line()).ok().filter(|&l| l > 0),
        u32::try_from(loc.column()).ok().filter(|&c| c > 0),
        &format!("[{i}].tier"),
        m,
    )
}
