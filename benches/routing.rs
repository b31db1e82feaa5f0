//! The rules layer's cost per request: a 50-rule table against a ~200-token prompt.
//! Run: cargo bench --bench routing
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use std::hint::black_box;
use switchyard::config::RuleConfig;
use switchyard::openai::ChatRequest;
use switchyard::routing::{Caller, Facts, Rules};

/// Fifty rules of the kinds a real table has: keyword lists, regexes, headers, metadata, tags,
/// nested any/all/not, and a few scoped to the system prompt or the whole conversation.
fn table() -> String {
    let topics = [
        "invoice",
        "refund",
        "shipping",
        "password",
        "translate",
        "summarize",
        "poem",
        "haiku",
        "sql",
        "regex",
        "kubernetes",
        "terraform",
        "pandas",
        "excel",
        "resume",
        "cover letter",
        "contract",
        "diagnosis",
        "tax",
        "recipe",
    ];
    let mut y = String::new();
    for (i, t) in topics.iter().enumerate() {
        y += &format!(
            "- {{ name: kw{i}, when: {{ keywords: [\"{t}\", \"{t}s\", \"{t} help\"] }}, tier: budget }}\n"
        );
    }
    for i in 0..15 {
        y += &format!(
            "- {{ name: re{i}, when: {{ regex: '(?i)\\b(step{i}|phase{i}|stage[- ]{i})\\b' }}, tier: premium }}\n"
        );
    }
    for i in 0..5 {
        y += &format!(
            "- {{ name: hdr{i}, when: {{ header: {{ name: x-team-{i}, value: ml }} }}, tier: mid }}\n"
        );
        y += &format!(
            "- {{ name: md{i}, when: {{ metadata: {{ tenant: [t{i}, u{i}] }} }}, tier: mid }}\n"
        );
    }
    y += "- { name: nested, when: { all: [{ keywords: [deploy] }, { any: [{ regex: '(?i)prod' }, { tags: [urgent] }] }], not: { keywords: [test] } }, tier: premium }\n";
    y += "- { name: sys, match_on: system, when: { keywords: [pirate, shakespeare] }, tier: budget }\n";
    y += "- { name: conv, match_on: conversation, when: { keywords_all: [earlier, mentioned] }, tier: mid }\n";
    y += "- { name: tools, when: { all: [{ has_tools: true }, { keywords: [weather] }] }, tier: mid }\n";
    y += "- { name: json, when: { all: [{ json_response: true }, { keywords: [extract] }] }, tier: budget }\n";
    y
}

/// About 200 o200k tokens of ordinary prose that matches none of the rules, so every rule is
/// evaluated: the worst case for a first-match table.
fn prompt() -> ChatRequest {
    let text = "I am preparing a quarterly planning document for our engineering organisation and would \
like your thoughts on how to structure the discussion around hiring, onboarding and the balance between \
new feature work and reliability improvements. Our team has grown from twelve to twenty people over the \
last year, and the older members feel that knowledge is spread thinly while newer members say they lack \
context on why past decisions were made. Please suggest an outline with sections, the questions each \
section should answer, and which metrics we could bring to make the conversation concrete rather than \
anecdotal. Keep in mind that the audience includes both managers and senior individual contributors, and \
that the meeting is limited to ninety minutes, so the outline should be realistic about what can be \
covered in that time. If it helps, we can also share last quarter's retrospective notes and the \
current team charter.";
    serde_json::from_value(serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for engineering managers."},
            {"role": "user", "content": text}
        ]
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let cfg: Vec<RuleConfig> = serde_saphyr::from_str(&table()).unwrap();
    assert_eq!(cfg.len(), 50);
    let rules = Rules::compile(&cfg).unwrap();
    let req = prompt();
    let tokens = switchyard::tokens::estimate_prompt(&req);
    eprintln!(
        "prompt: {tokens} tokens (o200k); table: {} rules",
        rules.len()
    );
    let headers = HeaderMap::new();
    c.bench_function("rules/50 rules, 200-token prompt, no match", |b| {
        b.iter(|| {
            let facts = Facts::new(black_box(&req), &headers, Caller::default());
            black_box(rules.first_match(&facts).is_some())
        })
    });
    let mut hit = req.clone();
    hit.messages[1].content = Some(serde_json::Value::String(format!(
        "{} Also, what is the next step3 for the migration?",
        hit.messages[1].text()
    )));
    c.bench_function(
        "rules/50 rules, 200-token prompt, regex rule 23 matches",
        |b| {
            b.iter(|| {
                let facts = Facts::new(black_box(&hit), &headers, Caller::default());
                black_box(rules.first_match(&facts).map(|r| r.name.len()))
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
