//! Step 0, `switchyard bench`: run a task file's prompts on every model of the routing table,
//! grade the answers, write one outcomes file (the format the learned layer and `eval` read), and
//! print the quality matrix and the routing map it implies. The calls go through the gateway's
//! own providers and dispatch layer, so a benchmark on real keys measures what production traffic
//! would get, and one on the demo's simulated models needs no key at all.
//!
//! One module per concern: `tasks` (the task file), `score` and `judge` (grading), `runner`
//! (calls, with `pace` for rpm/tpm, `budget` for `--max-cost` and `store` for the outcomes file),
//! `stats` and `matrix` (intervals, the matrix and the map), `report` (the HTML page).
//!
//! Must not import `api`: the benchmark is a client of dispatch, not of the HTTP server.

pub mod budget;
pub mod judge;
pub mod matrix;
pub mod pace;
pub mod report;
pub mod runner;
pub mod score;
pub mod stats;
pub mod store;
pub mod tasks;

use crate::config::ConfigError;
use crate::dispatch::Deployment;
use crate::gateway::Gateway;
use crate::outcomes::Outcome;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub struct Options {
    pub config: PathBuf,
    pub tasks: PathBuf,
    pub out: PathBuf,
    pub models: Vec<String>,
    pub tiers: Vec<String>,
    pub bar: f64,
    pub confidence: f64,
    pub concurrency: usize,
    pub max_cost: Option<f64>,
    pub retries: u32,
    pub max_tokens: u64,
    pub max_wait: std::time::Duration,
    pub write_rules: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub dry_run: bool,
    pub progress: bool,
}

/// Exit statuses beyond 0 (every call scored), 1 (an I/O error) and 2 (a bad config, task file or
/// argument): some calls failed and were recorded as failed; the run stopped at `--max-cost`.
pub const EXIT_FAILED_CALLS: u8 = 3;
pub const EXIT_BUDGET: u8 = 4;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Prints a line to stdout; a closed pipe (`bench … | head`) ends the output, not the run.
macro_rules! say {
    () => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout());
    }};
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

pub async fn run(o: Options) -> ExitCode {
    if !(0.0..=1.0).contains(&o.bar) {
        return usage_error(format!("--bar {} is not a score between 0 and 1", o.bar));
    }
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return usage_error(format!(
            "--confidence {} is not a level between 0 and 1 (e.g. 0.95)",
            o.confidence
        ));
    }
    if o.max_cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
        return usage_error("--max-cost is a non-negative amount of USD");
    }
    if o.concurrency == 0 || o.max_tokens == 0 {
        return usage_error("--concurrency and --max-tokens must be at least 1");
    }
    let gw = match Gateway::load(&o.config, &crate::providers::http::client()).await {
        Ok(g) => g,
        Err(e) => return usage_error(e),
    };
    let set = match tasks::load(&o.tasks) {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = check_judges(&set, &gw) {
        return usage_error(e);
    }
    let models = match select(&gw, &o.models, &o.tiers) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let mut store = match store::Store::open(&o.out) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    if store.repaired {
        eprintln!(
            "note: {} ended in a line cut short (a run killed while writing it); it was dropped and that prompt runs again",
            o.out.display()
        );
    }
    let budget = Arc::new(budget::Budget::new(o.max_cost));
    let source = format!(
        "bench:{}",
        o.tasks.file_name().map_or_else(
            || o.tasks.display().to_string(),
            |f| f.to_string_lossy().into_owned()
        )
    );
    let names: Vec<String> = models.iter().map(|m| m.name.to_string()).collect();
    let prompts: usize = set.tasks.iter().map(|t| t.prompts.len()).sum();
    say!(
        "switchyard bench: {} task type{}, {prompts} prompts, {} model{} ({})",
        set.tasks.len(),
        plural(set.tasks.len()),
        models.len(),
        plural(models.len()),
        names.join(", ")
    );
    let gw = Arc::new(gw);
    let set = Arc::new(set);
    let runner = Arc::new(runner::Runner::new(
        gw.clone(),
        set.clone(),
        models,
        budget,
        runner::Settings {
            concurrency: o.concurrency,
            retries: o.retries,
            max_tokens: o.max_tokens,
            max_wait: o.max_wait,
            progress: o.progress,
        },
        source,
    ));
    if o.dry_run {
        let (calls, worst) = runner.preview(&store);
        say!(
            "dry run: {calls} call{} to make, at most {} (worst case: every answer as long as its max_tokens; judge calls not included)",
            plural(calls),
            matrix::usd(worst)
        );
        return ExitCode::SUCCESS;
    }
    let summary = match runner.run(&mut store).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_summary(&summary, &o, store.rows().len());

    let rows = rows_of(&set, &store);
    let refs: Vec<&Outcome> = rows.iter().collect();
    let task_names: Vec<String> = set.tasks.iter().map(|t| t.name.clone()).collect();
    let tiers = tiers_of(&gw);
    let m = matrix::Matrix::build(&refs, &task_names, &names, tiers, o.confidence);
    say!();
    say!("{}", m.render().trim_end());
    say!();
    say!("{}", m.render_map(o.bar).trim_end());
    let out_name = o.out.display().to_string();
    if let Some(path) = &o.write_rules {
        match std::fs::write(path, m.rules_yaml(o.bar, &out_name)) {
            Ok(()) => say!("\nrules written to {}", path.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(path) = &o.report {
        let title = format!("switchyard bench: {}", o.tasks.display());
        match std::fs::write(path, report::html(&m, o.bar, &title)) {
            Ok(()) => say!("report written to {}", path.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    match summary.stopped {
        Some(runner::Stop::Budget) => ExitCode::from(EXIT_BUDGET),
        Some(runner::Stop::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        None if !summary.failed.is_empty() => ExitCode::from(EXIT_FAILED_CALLS),
        None => ExitCode::SUCCESS,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn print_summary(s: &runner::Summary, o: &Options, rows: usize) {
    if s.resumed > 0 {
        say!(
            "resumed: {} prompt{} already scored on every model in {}",
            s.resumed,
            plural(s.resumed),
            o.out.display()
        );
    }
    if s.stale > 0 {
        say!(
            "{} prompt{} changed since {} was written: run again",
            s.stale,
            plural(s.stale),
            o.out.display()
        );
    }
    if s.planned == 0 {
        say!("nothing to run: every prompt has a score from every model");
    } else {
        say!(
            "ran {} of {} call{} in {:.1} s: {} scored, {} failed; spent {}{}",
            s.scored + s.failed.len(),
            s.planned,
            plural(s.planned),
            s.elapsed.as_secs_f64(),
            s.scored,
            s.failed.len(),
            matrix::usd(s.spent_usd),
            if s.judge_usd > 0.0 {
                format!(" (judge {})", matrix::usd(s.judge_usd))
            } else {
                String::new()
            }
        );
    }
    if !s.failed.is_empty() {
        say!(
            "failed calls (recorded as failed in the outcomes file, never scored; a re-run tries them again):"
        );
        for (id, model, e) in s.failed.iter().take(20) {
            say!("  {id} on {model}: {e}");
        }
        if s.failed.len() > 20 {
            say!("  … and {} more", s.failed.len() - 20);
        }
    }
    match s.stopped {
        Some(runner::Stop::Budget) => say!(
            "stopped by --max-cost {}: {} call{} not made, so as not to overspend; re-run with a higher --max-cost to resume",
            o.max_cost.map_or_else(|| "-".into(), matrix::usd),
            s.skipped,
            plural(s.skipped)
        ),
        Some(runner::Stop::Interrupted) => say!(
            "interrupted: {} call{} not made; re-run to resume",
            s.skipped,
            plural(s.skipped)
        ),
        None => {}
    }
    say!("outcomes: {} ({rows} rows)", o.out.display());
}

/// The rows of this task file's prompts, as recorded for the current text of each prompt.
fn rows_of(set: &tasks::TaskSet, store: &store::Store) -> Vec<Outcome> {
    let mut out = Vec::new();
    for t in &set.tasks {
        for p in &t.prompts {
            if let Some(r) = store.get(&p.id).filter(|r| r.messages == p.messages) {
                let mut r = r.clone();
                r.category = Some(t.name.clone());
                out.push(r);
            }
        }
    }
    out
}

/// Each tier's deployments, as the table lists them.
fn tiers_of(gw: &Gateway) -> BTreeMap<String, Vec<String>> {
    gw.tables
        .tiers
        .iter()
        .map(|(tier, models)| {
            (
                tier.to_string(),
                models.iter().map(|m| m.name.to_string()).collect(),
            )
        })
        .collect()
}

/// The models to benchmark: those named, those of the tiers named, or every model of the table,
/// in the table's order.
fn select(
    gw: &Gateway,
    models: &[String],
    tiers: &[String],
) -> Result<Vec<Arc<Deployment>>, String> {
    let all: Vec<&str> = gw.config.models.iter().map(|m| m.name.as_str()).collect();
    let mut wanted: Vec<&str> = Vec::new();
    for name in models {
        if !all.contains(&name.as_str()) {
            return Err(format!(
                "--models: unknown model `{name}` (the table has: {})",
                all.join(", ")
            ));
        }
        wanted.push(name);
    }
    for tier in tiers {
        let Some(list) = gw.tables.tiers.get(tier.as_str()) else {
            let known: Vec<&str> = gw.tables.tiers.keys().map(|t| &**t).collect();
            return Err(format!(
                "--tiers: unknown tier `{tier}` (the table has: {})",
                known.join(", ")
            ));
        };
        wanted.extend(list.iter().map(|m| &*m.name));
    }
    let pick_all = models.is_empty() && tiers.is_empty();
    // Benchmarks are chat prompts: embedding models have no answer to score.
    Ok(all
        .iter()
        .filter(|n| pick_all || wanted.contains(n))
        .filter(|n| !gw.config.is_embedding(n))
        .filter_map(|n| gw.tables.models.get(*n).cloned())
        .collect())
}

/// A judge scorer must name a model of the routing table.
fn check_judges(set: &tasks::TaskSet, gw: &Gateway) -> Result<(), ConfigError> {
    let file = set.file.display().to_string();
    for (i, t) in set.tasks.iter().enumerate() {
        if let tasks::Scorer::Judge { model, .. } = &t.scorer {
            if !gw.tables.models.contains_key(model.as_str()) {
                let text = std::fs::read_to_string(&set.file).unwrap_or_default();
                let known: Vec<&str> = gw.config.models.iter().map(|m| m.name.as_str()).collect();
                return Err(ConfigError::at(
                    &file,
                    &text,
                    t.scorer_at.line,
                    t.scorer_at.column,
                    &format!("tasks[{i}].scorer.model"),
                    format!(
                        "judge model `{model}` is not a model of the routing table (it has: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}
