//! `switchyard eval` and `switchyard calibrate`, run as the real binary: small fixtures whose
//! answers are known by hand (random, oracle, a perfectly separable router's APGR), the per-prompt
//! choices checked against the reported curve, a routing table replayed with rules before the
//! learned layer, and one public set end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn switchyard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("switchyard-test-cache"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["eval", "--format", "json", "--no-cache"];
    all.extend_from_slice(args);
    let (ok, out, err) = switchyard(&all);
    assert!(ok, "eval failed: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Ten prompts in two kinds: four hard ones (the strong model right, the weak one wrong) and six
/// easy ones (both right). Each kind shares its vocabulary, so neighbours are always of the
/// same kind.
fn fixture(dir: &Path) -> PathBuf {
    let hard = [
        "prove the theorem about prime gaps in number theory",
        "prove the lemma on prime ideals in ring theory",
        "prove this theorem on prime factorisation rigorously",
        "prove the prime number theorem sketch carefully",
    ];
    let easy = [
        "translate hello into spanish please",
        "translate goodbye into spanish please",
        "translate thank you into spanish please",
        "translate good night into spanish please",
        "translate see you soon into spanish please",
        "translate welcome into spanish please",
    ];
    let mut text = String::new();
    for (i, p) in hard.iter().enumerate() {
        let row = json!({"id": format!("hard/{i}"), "messages": [{"role": "user", "content": p}],
            "scores": {"big": 1.0, "small": 0.0}, "costs_usd": {"big": 0.01, "small": 0.001}});
        text.push_str(&format!("{row}\n"));
    }
    for (i, p) in easy.iter().enumerate() {
        let row = json!({"id": format!("easy/{i}"), "messages": [{"role": "user", "content": p}],
            "scores": {"big": 1.0, "small": 1.0}, "costs_usd": {"big": 0.01, "small": 0.001}});
        text.push_str(&format!("{row}\n"));
    }
    let path = dir.join("fixture.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn known_answers_on_a_small_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path());
    let choices = dir.path().join("choices.jsonl");
    let plot = dir.path().join("curve.svg");
    let e = eval_json(&[
        "--test",
        file.to_str().unwrap(),
        "--method",
        "knn",
        "--k",
        "3",
        "--choices",
        choices.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(e["prompts"], 10);
    assert!(
        e["setting"]
            .as_str()
            .unwrap()
            .starts_with("in-domain (5-fold"),
        "{e}"
    );
    let two = &e["two_model"];
    assert_eq!(two["strong"], "big");
    assert_eq!(two["weak"], "small");
    // Oracle: the four hard prompts first. PGR climbs to 1 at c = 0.4 and stays:
    // 0.4 · 1/2 + 0.6 · 1 = 0.8.
    assert!(
        close(two["oracle_apgr"].as_f64().unwrap(), 0.8, 1e-9),
        "{two}"
    );
    assert!(
        close(two["random_apgr"].as_f64().unwrap(), 0.5, 0.05),
        "{two}"
    );
    // The kinds are separable, so the learned layer ranks like the oracle.
    assert!(close(two["apgr"].as_f64().unwrap(), 0.8, 1e-9), "{two}");
    assert!(close(two["cpt50"].as_f64().unwrap(), 0.2, 1e-9), "{two}");
    assert!(close(two["cpt80"].as_f64().unwrap(), 0.32, 1e-9), "{two}");
    // Oracle row: every prompt right, the strong model only on the hard ones.
    assert!(close(e["oracle"]["quality"].as_f64().unwrap(), 1.0, 1e-12));
    // Costs are held as f32: equal to about 1e-9 USD.
    assert!(close(
        e["oracle"]["cost_usd"].as_f64().unwrap(),
        4.0 * 0.01 + 6.0 * 0.001,
        1e-6
    ));
    assert!(close(e["random"]["quality"].as_f64().unwrap(), 0.8, 1e-12));
    // Chosen on the training folds: the strong model's quality at the small model's price on
    // easy prompts.
    let sel = &e["selected"];
    assert!(sel["point"].is_number(), "{e}");
    assert_eq!(sel["best_single"], "big");
    assert_eq!(sel["matches_best"], true, "{sel}");
    assert!(
        close(sel["cost_share"].as_f64().unwrap(), 0.46, 1e-6),
        "{sel}"
    );
    assert_eq!(e["above_single_models"], true);

    // The choices file: one line per reported point and prompt, and the curve re-computed
    // from it alone.
    let text = std::fs::read_to_string(&choices).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let curve = e["curve"].as_array().unwrap();
    assert_eq!(lines.len(), curve.len() * 10);
    let rows: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for p in curve {
        let at: Vec<&Value> = lines.iter().filter(|l| l["point"] == p["point"]).collect();
        assert_eq!(at.len(), 10);
        let (mut q, mut c) = (0.0, 0.0);
        for l in at {
            let row = rows.iter().find(|r| r["id"] == l["id"]).unwrap();
            let model = l["model"].as_str().unwrap();
            assert_eq!(l["asked"], json!([model]));
            q += row["scores"][model].as_f64().unwrap();
            c += row["costs_usd"][model].as_f64().unwrap();
        }
        assert!(close(q / 10.0, p["quality"].as_f64().unwrap(), 1e-9), "{p}");
        assert!(close(c, p["cost_usd"].as_f64().unwrap(), 1e-6), "{p}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("oracle") && svg.contains("polyline"));
}

#[test]
fn a_table_is_replayed_rules_first_and_unknown_models_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path());
    let table = dir.path().join("table.yaml");
    std::fs::write(
        &table,
        format!(
            r#"
providers: {{ sim: {{ kind: simulated }} }}
models:
  - {{ name: small, provider: sim, price: {{ input: 0.1, output: 0.4 }} }}
  - {{ name: big, provider: sim, price: {{ input: 5, output: 15 }} }}
tiers:
  budget: {{ models: [small] }}
  premium: {{ models: [big] }}
routing:
  default: budget
  rules:
    - {{ name: lemma, when: {{ keywords: [lemma] }}, tier: budget }}
  learned: {{ outcomes: ["{}"], method: knn, k: 3, cache: false }}
"#,
            file.display()
        ),
    )
    .unwrap();
    let e = eval_json(&[
        "--config",
        table.to_str().unwrap(),
        "--test",
        file.to_str().unwrap(),
    ]);
    assert_eq!(e["layers"]["rules"], 1, "{e}");
    assert_eq!(e["layers"]["learned"], 9, "{e}");
    // The rule sends one hard prompt to the budget tier whatever the bar: it is never right.
    let last = e["curve"].as_array().unwrap().last().unwrap();
    assert!(
        close(last["quality"].as_f64().unwrap(), 0.9, 1e-9),
        "{last}"
    );
    assert_eq!(e["candidates"][0]["name"], "budget");

    // A model in the outcomes that no tier stands for is an error, not a silent drop.
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("\"small\":0.0", "\"small\":0.0,\"mystery\":1.0"),
    )
    .unwrap();
    let t2 = dir.path().join("table2.yaml");
    std::fs::write(
        &t2,
        std::fs::read_to_string(&table)
            .unwrap()
            .replace("fixture.jsonl", "extra.jsonl"),
    )
    .unwrap();
    let (ok, _, err) = switchyard(&[
        "eval",
        "--config",
        t2.to_str().unwrap(),
        "--test",
        extra.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("mystery") && err.contains("no tier stands for"),
        "{err}"
    );
}

#[test]
fn a_malformed_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path());
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"id\": \"bad\", \"messages\": [], \"scores\": {\"big\": \"yes\"}}\n");
    std::fs::write(&file, text).unwrap();
    let (ok, _, err) = switchyard(&["eval", "--no-cache", "--test", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{}:11: scores.big", file.display())),
        "{err}"
    );
}

#[test]
fn calibrate_writes_the_bar_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path());
    let table = dir.path().join("table.yaml");
    let original = format!(
        r#"# my routing table
providers: {{ sim: {{ kind: simulated }} }}
models:
  - {{ name: small, provider: sim }}
  - {{ name: big, provider: sim }}
tiers:
  budget: {{ models: [small] }}
  premium: {{ models: [big] }}
routing:
  default: budget
  learned:
    outcomes: ["{}"]   # Step 0
    method: knn
    k: 3
    bar: 0.123
    cache: false
"#,
        file.display()
    );
    std::fs::write(&table, &original).unwrap();
    let (ok, out, err) = switchyard(&[
        "calibrate",
        "--config",
        table.to_str().unwrap(),
        "--premium-share",
        "0.4",
    ]);
    assert!(ok, "{err}{out}");
    assert!(
        out.contains("40.0% of requests on the dearest tier"),
        "{out}"
    );
    let edited = std::fs::read_to_string(&table).unwrap();
    let bar_line = edited
        .lines()
        .find(|l| l.trim_start().starts_with("bar:"))
        .unwrap();
    let bar: f64 = bar_line
        .trim()
        .trim_start_matches("bar:")
        .trim()
        .parse()
        .unwrap();
    assert!(bar > 0.0 && bar <= 1.0 && bar != 0.123, "{bar_line}");
    // Nothing else changed.
    assert_eq!(edited.replace(bar_line, "    bar: 0.123"), original);
    switchyard::config::Config::from_yaml(&edited, "t.yaml").unwrap();
}

/// Without `--method` (and without a table) each fold's training prompts choose the method, and
/// the report says which; a method named is used in every fold.
#[test]
fn the_method_is_chosen_on_the_training_folds_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Twenty prompts of the fixture's two kinds (eight hard, twelve easy), enough for the
    // cross-validation inside each fold's training prompts.
    let rows: Vec<String> = std::fs::read_to_string(fixture(dir.path()))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut text = String::new();
    for copy in 0..2 {
        for line in &rows {
            let mut row: Value = serde_json::from_str(line).unwrap();
            row["id"] = json!(format!("{}/{copy}", row["id"].as_str().unwrap()));
            text.push_str(&format!("{row}\n"));
        }
    }
    let file = dir.path().join("twenty.jsonl");
    std::fs::write(&file, text).unwrap();
    // Three folds keep the inner cross-validations few in a debug build.
    let e = eval_json(&["--test", file.to_str().unwrap(), "--k", "3", "--folds", "3"]);
    let per_fold: Vec<&str> = e["method_per_fold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(per_fold.len(), 3, "{e}");
    assert!(
        per_fold
            .iter()
            .all(|m| ["knn", "linear", "ensemble"].contains(m)),
        "{per_fold:?}"
    );
    let method = e["method"].as_str().unwrap();
    assert!(method.starts_with("auto: "), "{method}");
    assert!(per_fold.iter().all(|m| method.contains(m)), "{method}");
    // The kinds are separable: whichever method the folds chose ranks near the oracle (0.8),
    // far from random (0.5).
    let two = &e["two_model"];
    assert!(two["apgr"].as_f64().unwrap() > 0.7, "{two}");

    let e = eval_json(&[
        "--test",
        file.to_str().unwrap(),
        "--k",
        "3",
        "--folds",
        "3",
        "--method",
        "ensemble",
    ]);
    assert_eq!(e["method"], "ensemble");
    assert_eq!(e["method_per_fold"], json!(vec!["ensemble"; 3]));
}

#[test]
fn a_public_set_end_to_end() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval/routellm-mt-bench.jsonl");
    // knn: the linear method's training is slow in an unoptimised test build.
    let e = eval_json(&["--test", file.to_str().unwrap(), "--method", "knn"]);
    assert_eq!(e["prompts"], 72);
    let two = &e["two_model"];
    assert_eq!(two["strong"], "gpt-4-1106-preview");
    assert_eq!(two["weak"], "mixtral-8x7b-instruct-v0.1");
    // The data's own oracle, computed by hand from the file: 0.9639.
    assert!(
        close(two["oracle_apgr"].as_f64().unwrap(), 0.9639, 1e-4),
        "{two}"
    );
    assert!(
        close(two["random_apgr"].as_f64().unwrap(), 0.5, 0.03),
        "{two}"
    );
    let apgr = two["apgr"].as_f64().unwrap();
    assert!(apgr > 0.55 && apgr < 0.9639, "{apgr}");
    assert!(e["selected"]["point"].is_number());
    assert_eq!(e["singles"].as_array().unwrap().len(), 2);
}

/// Twenty multiple-choice prompts (the right option is always A) on four models. `one` is wrong
/// on five, answering B; `two` is wrong on those five (answering C) and on one more; `three`
/// always answers D, wrongly; `premium` is always right and costs twenty times a cheap call.
/// Answers are recorded as RouterBench records them, Python lists in a string, except premium's
/// plain text; one of `one`'s answers is a list that never closes.
fn cascade_fixture(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..20 {
        let one_wrong = i < 5;
        let two_wrong = i < 6;
        let one = if i == 10 {
            "['unterminated".to_string()
        } else if one_wrong {
            "['B\\n']".to_string()
        } else {
            "['A\\n']".to_string()
        };
        let two = if two_wrong {
            "[\"C) it's C\"]"
        } else {
            "['A']"
        };
        let row = json!({
            "id": format!("q/{i}"),
            "messages": [{"role": "user", "content": format!("question {i}: pick the right option")}],
            "scores": {"one": if one_wrong { 0.0 } else { 1.0 }, "two": if two_wrong { 0.0 } else { 1.0 },
                       "three": 0.0, "premium": 1.0},
            "costs_usd": {"one": 0.001, "two": 0.001, "three": 0.001, "premium": 0.02},
            "responses": {"one": one, "two": two, "three": "['D']", "premium": "A"},
        });
        text.push_str(&format!("{row}\n"));
    }
    let path = dir.join("cascade.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_cascade_is_replayed_from_recorded_answers() {
    let dir = tempfile::tempdir().unwrap();
    let file = cascade_fixture(dir.path());
    let choices = dir.path().join("choices.jsonl");
    let e = eval_json(&[
        "--test",
        file.to_str().unwrap(),
        "--method",
        "knn",
        "--choices",
        choices.to_str().unwrap(),
    ]);
    // Built on every fold's training prompts alike: ask `one`, check with `two`; `three` never
    // agrees, so adding it buys nothing `two` did not.
    let cascades = e["cascades"].as_array().unwrap();
    assert_eq!(cascades.len(), 1, "{e}");
    let c = &cascades[0];
    assert_eq!(c["chains"], json!(["one + two agree, else premium"]), "{c}");
    // By hand: `two` disagrees on its six wrong prompts and on the unreadable answer (seven
    // escalations at 0.001 + 0.001 + 0.02), agrees on thirteen (0.001 + 0.001), and every answer
    // returned is right.
    assert!(close(c["quality"].as_f64().unwrap(), 1.0, 1e-12), "{c}");
    assert!(
        close(
            c["cost_usd"].as_f64().unwrap(),
            13.0 * 0.002 + 7.0 * 0.022,
            1e-6
        ),
        "{c}"
    );
    assert!(close(c["escalated"].as_f64().unwrap(), 0.35, 1e-12), "{c}");
    // The single models are reported apart from the cascade.
    assert_eq!(e["singles"].as_array().unwrap().len(), 4);

    // Every choice line lists every model asked, in order, and the curve adds up from them.
    let rows: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<Value> = std::fs::read_to_string(&choices)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut cascaded = 0;
    for p in e["curve"].as_array().unwrap() {
        let at: Vec<&Value> = lines.iter().filter(|l| l["point"] == p["point"]).collect();
        assert_eq!(at.len(), 20);
        let (mut q, mut cost) = (0.0, 0.0);
        for l in at {
            let row = rows.iter().find(|r| r["id"] == l["id"]).unwrap();
            let model = l["model"].as_str().unwrap();
            let asked: Vec<&str> = l["asked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            if asked.len() > 1 {
                cascaded += 1;
                let i: usize = row["id"].as_str().unwrap()[2..].parse().unwrap();
                let escalates = i < 6 || i == 10;
                let expected: &[&str] = if escalates {
                    &["one", "two", "premium"]
                } else {
                    &["one", "two"]
                };
                assert_eq!(asked, expected, "{l}");
                assert_eq!(model, if escalates { "premium" } else { "one" }, "{l}");
            } else {
                assert_eq!(asked, [model]);
            }
            q += row["scores"][model].as_f64().unwrap();
            cost += asked
                .iter()
                .map(|a| row["costs_usd"][a].as_f64().unwrap())
                .sum::<f64>();
        }
        assert!(close(q / 20.0, p["quality"].as_f64().unwrap(), 1e-9), "{p}");
        assert!(close(cost, p["cost_usd"].as_f64().unwrap(), 1e-6), "{p}");
    }
    assert!(cascaded > 0, "some operating point uses the cascade");

    // Without the replay, only the single models are candidates.
    let plain = eval_json(&[
        "--test",
        file.to_str().unwrap(),
        "--method",
        "knn",
        "--no-cascade",
    ]);
    assert_eq!(plain["cascades"], json!([]));
    assert_eq!(plain["candidates"].as_array().unwrap().len(), 4);
}

/// A table whose cheap tier is `one`, with the cascade `one` + `two` agree, else `premium`.
fn cascade_table(dir: &Path, rules: &str, cascade_rules: &str) -> PathBuf {
    let table = dir.join("cascade-table.yaml");
    std::fs::write(
        &table,
        format!(
            r#"
providers: {{ sim: {{ kind: simulated }} }}
models:
  - {{ name: one, provider: sim }}
  - {{ name: two, provider: sim }}
  - {{ name: three, provider: sim }}
  - {{ name: premium, provider: sim }}
tiers:
  budget: {{ models: [one] }}
  strong: {{ models: [premium] }}
routing:
  default: budget
  rules: [{rules}]
  cascade:
    from: budget
    to: strong
    rules: [{cascade_rules}]
    escalate_on: [empty, agree]
    agreement: {{ model: two, compare: choice }}
"#
        ),
    )
    .unwrap();
    table
}

#[test]
fn a_tables_own_cascade_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let file = cascade_fixture(dir.path());
    let table = cascade_table(dir.path(), "", "");
    let choices = dir.path().join("choices.jsonl");
    let e = eval_json(&[
        "--config",
        table.to_str().unwrap(),
        "--test",
        file.to_str().unwrap(),
        "--choices",
        choices.to_str().unwrap(),
    ]);
    // Every prompt goes to the default tier, budget, so every one is cascaded. By hand: `two`
    // disagrees on its six wrong prompts and on `one`'s unreadable answer: seven escalations at
    // 0.001 + 0.001 + 0.02, thirteen agreements at 0.001 + 0.001, every answer returned right.
    let c = &e["cascades"][0];
    assert_eq!(c["name"], "routing.cascade", "{e}");
    assert_eq!(c["chains"], json!(["one + two agree, else premium"]), "{c}");
    assert!(close(c["escalated"].as_f64().unwrap(), 0.35, 1e-12), "{c}");
    let cost = 13.0 * 0.002 + 7.0 * 0.022;
    for p in e["curve"].as_array().unwrap() {
        assert!(close(p["quality"].as_f64().unwrap(), 1.0, 1e-12), "{p}");
        assert!(close(p["cost_usd"].as_f64().unwrap(), cost, 1e-6), "{p}");
    }
    assert!(close(
        e["selected"]["quality"].as_f64().unwrap(),
        1.0,
        1e-12
    ));
    assert!(close(
        e["selected"]["cost_usd"].as_f64().unwrap(),
        cost,
        1e-6
    ));
    // The single tiers are reported as recorded: `one` is wrong on five prompts.
    let budget = e["singles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "budget")
        .unwrap();
    assert!(
        close(budget["quality"].as_f64().unwrap(), 0.75, 1e-12),
        "{budget}"
    );
    let notes = e["notes"].to_string();
    assert!(notes.contains("routing.cascade is replayed"), "{notes}");
    // The choices list the agreement model among the models asked.
    let lines: Vec<Value> = std::fs::read_to_string(&choices)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20 * e["curve"].as_array().unwrap().len());
    for l in &lines {
        let i: usize = l["id"].as_str().unwrap()[2..].parse().unwrap();
        let escalates = i < 6 || i == 10;
        if escalates {
            assert_eq!(l["asked"], json!(["one", "two", "premium"]), "{l}");
            assert_eq!(l["model"], "premium", "{l}");
        } else {
            assert_eq!(l["asked"], json!(["one", "two"]), "{l}");
            assert_eq!(l["model"], "one", "{l}");
        }
    }

    // A cascade limited to one rule: only the prompts that rule routes are cascaded.
    let text = std::fs::read_to_string(&file).unwrap();
    let marked: String = text
        .lines()
        .map(|l| {
            let mut row: Value = serde_json::from_str(l).unwrap();
            let i: usize = row["id"].as_str().unwrap()[2..].parse().unwrap();
            if i % 2 == 0 {
                row["messages"][0]["content"] = json!(format!("urgent question {i}"));
            }
            format!("{row}\n")
        })
        .collect();
    std::fs::write(&file, marked).unwrap();
    let table = cascade_table(
        dir.path(),
        "{ name: urgent, when: { keywords: [urgent] }, tier: budget }",
        "urgent",
    );
    let e = eval_json(&[
        "--config",
        table.to_str().unwrap(),
        "--test",
        file.to_str().unwrap(),
    ]);
    assert_eq!(e["layers"]["rules"], 10, "{e}");
    // Even prompts cascade: 0, 2, 4 and 10 escalate (0.022 each), six agree (0.002). Odd ones are
    // `one`'s alone (0.001), wrong on 1 and 3.
    let p = e["curve"].as_array().unwrap().last().unwrap().clone();
    assert!(close(p["quality"].as_f64().unwrap(), 0.9, 1e-12), "{p}");
    assert!(
        close(
            p["cost_usd"].as_f64().unwrap(),
            4.0 * 0.022 + 6.0 * 0.002 + 10.0 * 0.001,
            1e-6
        ),
        "{p}"
    );

    // --no-cascade: the routing decision's figures alone, and a note saying so.
    let plain = eval_json(&[
        "--config",
        table.to_str().unwrap(),
        "--test",
        file.to_str().unwrap(),
        "--no-cascade",
    ]);
    let p = plain["curve"].as_array().unwrap().last().unwrap().clone();
    assert!(close(p["quality"].as_f64().unwrap(), 0.75, 1e-12), "{p}");
    assert!(plain["notes"].to_string().contains("not replayed"));
}
