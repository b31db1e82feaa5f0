//! Prompt embeddings of an outcome file, kept on disk between starts and reloads. Embedding
//! 50,000 prompts is most of the learned layer's start-up (and, with a model embedder, far more
//! than the two seconds allowed), while the file rarely changes: one cache file per outcome file
//! and embedder, named by a hash of the file's bytes and of the embedder's identity, so any
//! change to either simply misses.
//!
//! Format: `SWYDEMB1`, rows (u64 LE), dims (u64 LE), then rows × dims f32 LE.

use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SWYDEMB1";

pub fn key(file_bytes: &[u8], embedder_id: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(embedder_id.as_bytes());
    h.update(&[0]);
    h.update(file_bytes);
    h.digest()
}

fn path(dir: &Path, key: u64) -> PathBuf {
    dir.join(format!("learned-{key:016x}.emb"))
}

/// The default folder: `$XDG_CACHE_HOME/switchyard`, else `$HOME/.cache/switchyard`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("switchyard"))
}

/// The cached vectors, when a cache file exists for this key and holds `rows` rows. A missing,
/// short or foreign file is a miss, never an error.
pub fn read(dir: &Path, key: u64, rows: usize) -> Option<Vec<Vec<f32>>> {
    let (flat, dims) = read_flat(dir, key, rows)?;
    Some(flat.chunks_exact(dims).map(<[f32]>::to_vec).collect())
}

/// [`read`] as one row-major block and its width: what the learned layer keeps in memory, so a
/// warm start copies the vectors once instead of once per row.
pub fn read_flat(dir: &Path, key: u64, rows: usize) -> Option<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path(dir, key)).ok()?;
    let header = bytes.get(..24)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(header[8..16].try_into().ok()?)).ok()?;
    let dims = usize::try_from(u64::from_le_bytes(header[16..24].try_into().ok()?)).ok()?;
    let body = bytes.get(24..)?;
    if n != rows || dims == 0 || body.len() != n.checked_mul(dims)?.checked_mul(4)? {
        return None;
    }
    let floats: Vec<f32> = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((floats, dims))
}

/// A cached blob of another kind (`ext`: the trained `linear` weights), or `None`.
pub fn read_blob(dir: &Path, key: u64, ext: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(format!("learned-{key:016x}.{ext}"))).ok()
}

/// Writes a blob atomically, like [`write`].
pub fn write_blob(dir: &Path, key: u64, ext: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(format!("learned-{key:016x}.{ext}"));
    let tmp = dir.join(format!(
        "learned-{key:016x}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &final_path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes the vectors atomically (a temporary file renamed into place), so a reader never sees
/// half a file and two gateways starting at once cannot corrupt it.
pub fn write(dir: &Path, key: u64, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let final_path = path(dir, key);
    let tmp = dir.join(format!(
        "learned-{key:016x}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    out.write_all(MAGIC)?;
    out.write_all(&(vectors.len() as u64).to_le_bytes())?;
    out.write_all(&(dims as u64).to_le_bytes())?;
    for v in vectors {
        for x in v {
            out.write_all(&x.to_le_bytes())?;
        }
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &final_path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_misses_on_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(b"{\"id\":1}\n", "hashed-ngrams/512");
        assert_ne!(k, key(b"{\"id\":2}\n", "hashed-ngrams/512"));
        assert_ne!(k, key(b"{\"id\":1}\n", "hashed-ngrams/256"));
        let v = vec![vec![0.5f32, -1.0], vec![2.0, 0.25]];
        assert_eq!(read(dir.path(), k, 2), None);
        write(dir.path(), k, &v).unwrap();
        assert_eq!(read(dir.path(), k, 2), Some(v));
        assert_eq!(
            read(dir.path(), k, 3),
            None,
            "a row count that differs misses"
        );
        std::fs::write(path(dir.path(), k), b"SWYDEMB1garbage").unwrap();
        assert_eq!(read(dir.path(), k, 2), None, "a damaged file misses");
    }
}
