//! Placeholder: replaced by the real hashed character n-gram embedder.

pub struct HashedNgrams {
    dims: usize,
}

impl HashedNgrams {
    pub const DEFAULT_DIMS: usize = 512;

    pub fn new(dims: usize) -> Self {
        HashedNgrams { dims: dims.max(1) }
    }

    pub fn embed(&self, _text: &str) -> Vec<f32> {
        vec![0.0; self.dims]
    }
}
