//! The built-in embedder: a static model distilled from all-MiniLM-L6-v2 with `switchyard
//! distill`, compiled into the binary (`builtin/`, with its licence and how it was made), so the
//! semantic layer understands paraphrase with no download, no model folder and no extra step, in
//! the binary alone, which is all a container image carries.
//!
//! The int8 matrix is used in place, from the binary's read-only data: the process maps those
//! pages once and never copies them, and they are shared with every other process running the
//! same binary. The model is parsed once per process and shared by every config reload.

use super::StaticModel;
use std::sync::{Arc, OnceLock};

/// How the embedder is named in `route` output, logs and errors.
pub const NAME: &str = "builtin";

static TOKENIZER: &[u8] = include_bytes!("builtin/tokenizer.json");
static MODEL: &[u8] = include_bytes!("builtin/model.safetensors");
static CONFIG: &[u8] = include_bytes!("builtin/config.json");

/// The shared built-in model (parsed on first use; a few tens of milliseconds).
pub fn model() -> Result<Arc<StaticModel>, String> {
    static MODEL_CELL: OnceLock<Result<Arc<StaticModel>, String>> = OnceLock::new();
    MODEL_CELL.get_or_init(|| parse().map(Arc::new)).clone()
}

/// Parses the compiled-in files afresh (what the first `model()` call costs; for the benchmark).
#[doc(hidden)]
pub fn parse() -> Result<StaticModel, String> {
    StaticModel::from_static(TOKENIZER, MODEL, Some(CONFIG), "builtin model")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    #[test]
    fn loads_once_and_knows_paraphrase_from_unrelated_text() {
        let m = model().unwrap();
        assert!(Arc::ptr_eq(&m, &model().unwrap()), "parsed once, shared");
        assert!(m.is_int8(), "the matrix stays int8 in memory");
        let s = |a: &str, b: &str| cosine(&m.embed(a).unwrap(), &m.embed(b).unwrap());
        for (a, para, unrelated) in [
            (
                "give me the gist of this email",
                "summarize this message",
                "prove the theorem by induction",
            ),
            (
                "put this text into French",
                "translate this sentence to French",
                "debug my python code",
            ),
        ] {
            let (p, u) = (s(a, para), s(a, unrelated));
            assert!(p > u + 0.1, "{a:?}: paraphrase {p:.3} vs unrelated {u:.3}");
        }
    }
}
