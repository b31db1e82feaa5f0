//! What counting tokens costs a request: the o200k count of a ~1 KB prompt, of a 100 KB document,
//! and of 100 KB with no spaces (one long piece for the byte-pair merge, the worst case).
//! The reference tokenizer's time for the same prompt is measured beside it.
//! Run: cargo bench --bench tokens
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use switchyard::tokens;

const PROMPT: &str = "Our checkout service started returning 502s for about 4% of requests after \
yesterday's deploy. The load balancer logs show upstream resets, the pods restart every few hours \
with OOMKilled, and the heap profile points at the new product-recommendation cache, which holds \
up to 50,000 entries of ~8 KB each. Can you explain what is most likely going on, what I should \
check first, and how to fix it without losing the cache's hit rate? Please give concrete commands \
for kubectl and a short plan for a safe rollout, with the metrics to watch during it (p99 \
latency, error rate, memory per pod) and the thresholds at which to roll back. We run Go 1.22 \
on GKE with 2 GiB limits per pod, 12 replicas, and a Redis cluster beside it.";

fn bench(c: &mut Criterion) {
    let t = Instant::now();
    tokens::prewarm();
    eprintln!(
        "tables built in {:.1} ms, {:.2} MiB of heap; the prompt is {} bytes, {} tokens",
        t.elapsed().as_secs_f64() * 1e3,
        tokens::table_bytes() as f64 / (1 << 20) as f64,
        PROMPT.len(),
        tokens::count(PROMPT)
    );
    let document = PROMPT.repeat(100_000 / PROMPT.len() + 1);
    let blob: String = (0..100_000u32)
        .map(|i| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(i * 7919 % 62) as usize],
            )
        })
        .collect();
    let mut g = c.benchmark_group("tokens");
    g.throughput(Throughput::Bytes(PROMPT.len() as u64));
    g.bench_function("count ~1 KB prompt", |b| {
        b.iter(|| tokens::count(black_box(PROMPT)))
    });
    let reference = tiktoken_rs::o200k_base_singleton();
    g.bench_function("reference tokenizer (tiktoken-rs), ~1 KB prompt", |b| {
        b.iter(|| reference.encode_ordinary(black_box(PROMPT)).len())
    });
    g.throughput(Throughput::Bytes(document.len() as u64));
    g.bench_function("count 100 KB document", |b| {
        b.iter(|| tokens::count(black_box(&document)))
    });
    g.throughput(Throughput::Bytes(blob.len() as u64));
    g.bench_function("count 100 KB without spaces", |b| {
        b.iter(|| tokens::count(black_box(&blob)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
