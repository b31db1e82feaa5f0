//! Cost of embedding one routing prompt with the in-process BERT encoder: this is paid on the
//! request path before any provider is called. Needs `SWITCHYARD_BERT_MODEL` (see
//! tests/bert_embedder.rs); run with `cargo bench --features bert --bench bert`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use switchyard::embed::BertEmbedder;

const PARAGRAPH: &str = "You are a careful assistant for an operations team. Read the incident \
    report below, list the services that were affected, say which change most likely caused the \
    outage, and suggest two follow-up actions with owners. The report: at 09:14 the checkout \
    service began returning errors for about a third of requests; the payments gateway latency \
    rose from 120 ms to 2.3 s; a configuration change to the connection pool of the orders \
    database had been rolled out at 09:05 to half of the fleet; rolling it back at 09:41 ended \
    the errors within four minutes. ";

/// The prompt cut to exactly `tokens` tokens (special tokens included), so that the number
/// measured is for a known length rather than whatever the text happens to tokenise to.
fn prompt(dir: &std::path::Path, tokens: usize) -> String {
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    // The file's own settings pad and truncate to 128, which would hide the real count.
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).unwrap();
    let count = |s: &str| tokenizer.encode(s, true).unwrap().get_ids().len();
    let long = PARAGRAPH.repeat(4);
    let words: Vec<&str> = long.split_whitespace().collect();
    (1..=words.len())
        .map(|n| words[..n].join(" "))
        .find(|s| count(s) == tokens)
        .expect("no prefix of the prompt has exactly that many tokens")
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(
        std::env::var_os("SWITCHYARD_BERT_MODEL")
            .expect("SWITCHYARD_BERT_MODEL must name an all-MiniLM-L6-v2 folder"),
    );
    let embedder = BertEmbedder::load(&dir).unwrap();
    let text = prompt(&dir, 200);
    c.bench_function("bert_embed_200_tokens", |b| {
        b.iter(|| embedder.embed(black_box(&text)).unwrap())
    });
    let short = "summarize this article";
    c.bench_function("bert_embed_short", |b| {
        b.iter(|| embedder.embed(black_box(short)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
