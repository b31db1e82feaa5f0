//! `switchyard distill`: a static embedding model (the model2vec format `static_model` reads)
//! made from a BERT-family sentence encoder, by the model2vec method:
//!
//! 1. every vocabulary token goes through the encoder on its own, as `[CLS] token [SEP]`, and the
//!    mean of the outputs is that token's vector (how the encoder pools a sentence);
//! 2. PCA: the vectors are centred and projected on their `dims` principal axes, which keeps most
//!    of the variance in fewer dimensions and removes the direction every token shares;
//! 3. each token is weighted by its rank in the vocabulary, a stand-in for its frequency (WordPiece
//!    vocabularies are built roughly most-frequent first): SIF weights shrink the very common
//!    tokens ("the", "a", ".") that would otherwise pull every mean towards the same point;
//! 4. the matrix is stored as f32, f16, or int8 with one scale per row (folded into `weights`).
//!
//! The result is a pure function of the encoder's files and the options: the same input gives the
//! same bytes (no randomness; the eigenvectors' signs are fixed by a rule).

use super::BertEmbedder;
use candle_core::{DType, Device, Tensor};
use half::f16;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::path::Path;

/// Tokens per forward pass: sequences of three ids, so a batch is small in memory however large.
const BATCH: usize = 512;

/// model2vec's SIF coefficient: the weight of a token of probability `p` is `a / (a + p)`.
const SIF: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    /// One byte per value, one f32 scale per row.
    Int8,
    F16,
    F32,
}

/// How much each token counts in a prompt's mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// `a / (a + p(rank))`, with `p` a Zipf distribution over the vocabulary order (model2vec's).
    Sif,
    /// `ln(2 + rank)`: rare tokens count more, without SIF's flattening of the common ones.
    Zipf,
    /// Every token counts the same.
    None,
}

impl Weighting {
    fn name(self) -> &'static str {
        match self {
            Weighting::Sif => "sif",
            Weighting::Zipf => "zipf",
            Weighting::None => "none",
        }
    }

    /// The weight of every token id of a vocabulary of `n`.
    pub fn weights(self, n: usize) -> Vec<f32> {
        match self {
            Weighting::None => vec![1.0; n],
            Weighting::Zipf => (0..n).map(|r| (2.0 + r as f64).ln() as f32).collect(),
            Weighting::Sif => {
                let total: f64 = (0..n).map(|r| 1.0 / (r as f64 + 2.0)).sum();
                (0..n)
                    .map(|r| {
                        let p = 1.0 / (r as f64 + 2.0) / total;
                        (SIF / (SIF + p)) as f32
                    })
                    .collect()
            }
        }
    }
}

impl Quantize {
    fn name(self) -> &'static str {
        match self {
            Quantize::Int8 => "int8",
            Quantize::F16 => "f16",
            Quantize::F32 => "f32",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dims: usize,
    pub quantize: Quantize,
    pub weighting: Weighting,
}

/// What a run produced, for the command's closing lines.
#[derive(Debug)]
pub struct Summary {
    pub tokens: usize,
    pub source_dims: usize,
    pub dims: usize,
    /// Share of the token vectors' variance the kept axes hold.
    pub explained: f64,
    pub bytes: u64,
}

/// Distils the encoder in `from` into `out` (created when missing; its model files are replaced).
/// `progress` is called with (tokens done, tokens in all) after each batch.
pub fn distill(
    from: &Path,
    out: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary, String> {
    let bert = BertEmbedder::load(from)?;
    let tokenizer_json = std::fs::read(from.join("tokenizer.json"))
        .map_err(|e| format!("cannot read {}: {e}", from.join("tokenizer.json").display()))?;
    let h = bert.dims();
    if opts.dims == 0 || opts.dims > h {
        return Err(format!(
            "--dims {} is out of range: the encoder has {h} dimensions, so 1–{h}",
            opts.dims
        ));
    }
    let (cls, sep) = special_ids(&bert)?;
    let n = bert.vocabulary().len();

    let raw = token_vectors(&bert, n, cls, sep, progress)?;
    let (projected, explained) = pca(&raw, n, h, opts.dims)?;
    let weights = opts.weighting.weights(n);

    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let st = safetensors_bytes(&projected, &weights, n, opts.dims, opts.quantize)?;
    let config = serde_json::json!({
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "hidden_dim": opts.dims,
        "normalize": true,
        "distilled_with": format!("switchyard {} distill", env!("CARGO_PKG_VERSION")),
        "pooling": "mean of [CLS] token [SEP]",
        "pca_dims": opts.dims,
        "explained_variance": (explained * 10_000.0).round() / 10_000.0,
        "weighting": opts.weighting.name(),
        "sif_coefficient": SIF,
        "quantize": opts.quantize.name(),
    });
    let config = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
    for (name, bytes) in [
        ("model.safetensors", &st),
        ("tokenizer.json", &tokenizer_json),
        ("config.json", &config),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(Summary {
        tokens: n,
        source_dims: h,
        dims: opts.dims,
        explained,
        bytes: (st.len() + tokenizer_json.len() + config.len()) as u64,
    })
}

/// The ids that open and close a sequence: BERT's own names, or the `[CLS]`-like tokens of the
/// vocabulary (`<s>`, `</s>` in RoBERTa-style vocabularies).
fn special_ids(bert: &BertEmbedder) -> Result<(u32, u32), String> {
    for (open, close) in [("[CLS]", "[SEP]"), ("<s>", "</s>")] {
        if let (Some(a), Some(b)) = (bert.token_id(open), bert.token_id(close)) {
            return Ok((a, b));
        }
    }
    Err("the tokenizer has neither [CLS]/[SEP] nor <s>/</s>: cannot frame single tokens".into())
}

/// Row `i` (of `n × dims`) is token `i` in context `[CLS] i [SEP]`, mean-pooled.
fn token_vectors(
    bert: &BertEmbedder,
    n: usize,
    cls: u32,
    sep: u32,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>, String> {
    let h = bert.dims();
    let mut out = Vec::with_capacity(n * h);
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let mut ids = Vec::with_capacity((end - start) * 3);
        for id in start..end {
            let id = u32::try_from(id).map_err(|_| "vocabulary too large".to_string())?;
            ids.extend_from_slice(&[cls, id, sep]);
        }
        for row in bert.pooled_ids(ids, end - start, 3)? {
            if row.len() != h || row.iter().any(|x| !x.is_finite()) {
                return Err("the encoder returned a malformed vector".into());
            }
            out.extend_from_slice(&row);
        }
        start = end;
        progress(start, n);
    }
    Ok(out)
}

/// Centres `x` (`n × h`) and projects it on its `k` principal axes; returns the `n × k` result and
/// the share of variance kept.
fn pca(x: &[f32], n: usize, h: usize, k: usize) -> Result<(Vec<f32>, f64), String> {
    let err = |e: candle_core::Error| format!("PCA failed: {e}");
    let mut mean = vec![0f64; h];
    for row in x.chunks_exact(h) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f64> = x
        .chunks_exact(h)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| f64::from(*v) - m))
        .collect();
    let xc = Tensor::from_vec(centred, (n, h), &Device::Cpu).map_err(err)?;
    // The covariance's scale does not change its axes; divided anyway so the variances printed
    // in a debugger mean something.
    let cov = (xc.t().map_err(err)?.matmul(&xc).map_err(err)? / n as f64).map_err(err)?;
    let mut cov: Vec<f64> = cov.flatten_all().map_err(err)?.to_vec1().map_err(err)?;
    let (values, vectors) = symmetric_eigen(&mut cov, h);

    let mut order: Vec<usize> = (0..h).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let kept: f64 = order[..k].iter().map(|&i| values[i].max(0.0)).sum();
    // Columns of the projection, each with its largest component made positive.
    let mut basis = vec![0f64; h * k];
    for (j, &i) in order[..k].iter().enumerate() {
        let col: Vec<f64> = (0..h).map(|r| vectors[r * h + i]).collect();
        let big = col
            .iter()
            .copied()
            .fold(0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for (r, v) in col.iter().enumerate() {
            basis[r * k + j] = sign * v;
        }
    }
    let basis = Tensor::from_vec(basis, (h, k), &Device::Cpu).map_err(err)?;
    let y = xc
        .matmul(&basis)
        .map_err(err)?
        .to_dtype(DType::F32)
        .map_err(err)?
        .flatten_all()
        .map_err(err)?
        .to_vec1::<f32>()
        .map_err(err)?;
    Ok((y, if total > 0.0 { kept / total } else { 1.0 }))
}

/// Eigenvalues and eigenvectors (as the columns of a row-major `n × n` matrix) of the symmetric
/// row-major matrix `a`, which is destroyed: cyclic Jacobi rotations, exact to rounding, and
/// fast enough for an encoder's few hundred dimensions.
pub fn symmetric_eigen(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q] * a[p * n + q])
            .sum();
        if off <= scale * 1e-26 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if theta >= 0.0 {
                    1.0 / (theta + (theta * theta + 1.0).sqrt())
                } else {
                    -1.0 / (-theta + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The model file: `embeddings` (`n × dims`), and for int8 the per-token `weights` that carry each
/// row's scale times the token's weight; for float types the weight is folded into the rows.
fn safetensors_bytes(
    m: &[f32],
    weights: &[f32],
    n: usize,
    dims: usize,
    q: Quantize,
) -> Result<Vec<u8>, String> {
    let weighted = || {
        m.chunks_exact(dims)
            .zip(weights)
            .flat_map(|(row, w)| row.iter().map(move |x| x * w))
    };
    let (matrix, dtype, scales): (Vec<u8>, Dtype, Option<Vec<f32>>) = match q {
        Quantize::F32 => (
            weighted().flat_map(f32::to_le_bytes).collect(),
            Dtype::F32,
            None,
        ),
        Quantize::F16 => (
            weighted()
                .flat_map(|x| f16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F16,
            None,
        ),
        Quantize::Int8 => {
            let mut bytes = Vec::with_capacity(n * dims);
            let mut scales = Vec::with_capacity(n);
            for (row, w) in m.chunks_exact(dims).zip(weights) {
                let max = row.iter().fold(0f32, |a, x| a.max(x.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                bytes.extend(
                    row.iter()
                        .map(|x| ((x / scale).round().clamp(-127.0, 127.0) as i8) as u8),
                );
                scales.push(scale * w);
            }
            (bytes, Dtype::I8, Some(scales))
        }
    };
    let scale_bytes: Option<Vec<u8>> =
        scales.map(|s| s.iter().flat_map(|x| x.to_le_bytes()).collect());
    let mut views = vec![(
        "embeddings".to_string(),
        TensorView::new(dtype, vec![n, dims], &matrix).map_err(|e| e.to_string())?,
    )];
    if let Some(b) = &scale_bytes {
        views.push((
            "weights".to_string(),
            TensorView::new(Dtype::F32, vec![n], b).map_err(|e| e.to_string())?,
        ));
    }
    safetensors::serialize(views, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_eigenpairs() {
        let n = 6;
        // A symmetric matrix with a known structure: B Bᵀ plus a diagonal.
        let b: Vec<f64> = (0..n * n)
            .map(|i| ((i * 7 + 3) % 11) as f64 - 5.0)
            .collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>()
                    + if i == j { i as f64 } else { 0.0 };
            }
        }
        let orig = a.clone();
        let (values, vectors) = symmetric_eigen(&mut a, n);
        for (e, &lambda) in values.iter().enumerate() {
            let col: Vec<f64> = (0..n).map(|r| vectors[r * n + e]).collect();
            let norm: f64 = col.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-9);
            for r in 0..n {
                let av: f64 = (0..n).map(|k| orig[r * n + k] * col[k]).sum();
                assert!((av - lambda * col[r]).abs() < 1e-7, "A v != λ v");
            }
        }
        let trace: f64 = (0..n).map(|i| orig[i * n + i]).sum();
        assert!((values.iter().sum::<f64>() - trace).abs() < 1e-7);
    }

    #[test]
    fn pca_keeps_the_main_axis_with_a_fixed_sign() {
        // Points along (1, 2, 0) with a little noise on the other axes.
        let n = 50;
        let mut x = Vec::new();
        for i in 0..n {
            let t = i as f32 - 25.0;
            x.extend_from_slice(&[t, 2.0 * t + 0.01 * (i % 3) as f32, 0.02 * (i % 5) as f32]);
        }
        let (y, explained) = pca(&x, n, 3, 1).unwrap();
        assert!(explained > 0.999, "{explained}");
        // Projections are the centred coordinate along the unit axis, increasing with t.
        assert!(y.windows(2).all(|w| w[1] > w[0]), "{y:?}");
        let expect = (0.0 - 24.5) * 5f32.sqrt();
        assert!((y[0] - expect).abs() < 0.05, "{} vs {expect}", y[0]);
    }

    #[test]
    fn sif_weights_rise_with_rank_and_int8_keeps_rows_close() {
        let w = Weighting::Sif.weights(30_000);
        assert!(w[0] < 0.1 && w[29_999] > 0.99);
        assert!(w.windows(2).all(|p| p[1] >= p[0]));
        assert_eq!(Weighting::None.weights(3), vec![1.0; 3]);

        let m = vec![0.5, -1.0, 0.25, 0.0, 0.0, 0.0];
        let bytes = safetensors_bytes(&m, &[2.0, 1.0], 2, 3, Quantize::Int8).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let e = st.tensor("embeddings").unwrap();
        assert_eq!(e.dtype(), Dtype::I8);
        let q: Vec<i8> = e.data().iter().map(|&b| b as i8).collect();
        assert_eq!(q, vec![64, -127, 32, 0, 0, 0]);
        let s = st.tensor("weights").unwrap();
        let s: Vec<f32> = s
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!((s[0] - 2.0 / 127.0).abs() < 1e-7 && s[1] == 1.0);
    }
}
