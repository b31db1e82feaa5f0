//! Running every prompt on every model: through the dispatch layer (the gateway's providers,
//! timeouts, retry policy and breakers), at most `concurrency` calls at once, inside each model's
//! rpm/tpm, and never past `--max-cost`. A prompt's row is written when all its models are done;
//! rows already finished are skipped. A call that still fails after its retries is recorded as
//! failed with its error and reported: it is never scored.

use super::budget::Budget;
use super::judge;
use super::pace::Pacer;
use super::score::{self, Score};
use super::store::Store;
use super::tasks::{Prompt, Scorer, Task, TaskSet};
use crate::config::ProviderKind;
use crate::dispatch::Deployment;
use crate::dispatch::{self, Plan};
use crate::gateway::Gateway;
use crate::openai::ChatRequest;
use crate::outcomes::Outcome;
use crate::providers::ErrorKind;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

pub struct Settings {
    /// Calls in flight at most.
    pub concurrency: usize,
    /// Rounds a failed call is tried again after the dispatch layer's own retries gave up, for
    /// errors that pass (rate limits, timeouts, 5xx, a deployment cooling down).
    pub retries: u32,
    /// `max_tokens` for tasks that set no limit: a call's worst-case cost must be known.
    pub max_tokens: u64,
    /// How long calls wait for a deployment that answers nothing (cooling down after failures)
    /// since its last answer, before they are recorded as failed.
    pub max_wait: Duration,
    pub progress: bool,
}

/// Why a run ended before every call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Budget,
    Interrupted,
}

#[derive(Debug, Default)]
pub struct Summary {
    /// Calls this run had to make (model answers; judge calls come on top).
    pub planned: usize,
    pub scored: usize,
    /// (prompt id, model, error) of every call that failed for good.
    pub failed: Vec<(String, String, String)>,
    /// Calls not made because the run stopped.
    pub skipped: usize,
    /// Prompts whose rows were already complete.
    pub resumed: usize,
    /// Rows recorded for an earlier version of the prompt, run again.
    pub stale: usize,
    pub spent_usd: f64,
    pub judge_usd: f64,
    pub stopped: Option<Stop>,
    pub elapsed: Duration,
}

/// What one model did with one prompt.
enum Done {
    Scored(Scored),
    Failed(String),
    Skipped,
}

/// One model's scored answer to one prompt, on its way into the outcomes row.
struct Scored {
    score: Score,
    usd: f64,
    judge_usd: Option<f64>,
    latency_ms: f64,
    text: String,
}

enum Asked {
    Answer {
        text: String,
        usd: f64,
        latency_ms: f64,
    },
    Failed(String),
    Stopped,
}

pub struct Runner {
    pub gw: Arc<Gateway>,
    pub tasks: Arc<TaskSet>,
    pub models: Vec<Arc<Deployment>>,
    pub budget: Arc<Budget>,
    pub settings: Settings,
    /// `source` of the rows written.
    pub source: String,
    pacer: Pacer,
    /// One per call in flight. Held only while a call is out, not while it waits for a cooling
    /// deployment or for rpm room, so one slow model does not hold up the others.
    permits: Arc<tokio::sync::Semaphore>,
    /// 0 running, 1 stopped by the budget, 2 interrupted.
    stop: Arc<AtomicU8>,
    /// Deployment → when it last answered (or when the run started).
    answered: std::sync::Mutex<std::collections::HashMap<Arc<str>, Instant>>,
}

/// A prompt's row in the making.
struct Pending {
    task: usize,
    prompt: usize,
    /// The row already in the file, when it is for this same prompt.
    base: Option<Outcome>,
    left: usize,
    done: Vec<(Arc<str>, Done)>,
}

impl Runner {
    pub fn new(
        gw: Arc<Gateway>,
        tasks: Arc<TaskSet>,
        models: Vec<Arc<Deployment>>,
        budget: Arc<Budget>,
        settings: Settings,
        source: String,
    ) -> Runner {
        Runner {
            gw,
            tasks,
            models,
            budget,
            permits: Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1))),
            settings,
            source,
            pacer: Pacer::default(),
            stop: Arc::new(AtomicU8::new(0)),
            answered: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) != 0
    }

    fn halt(&self, why: Stop) {
        let code = match why {
            Stop::Budget => 1,
            Stop::Interrupted => 2,
        };
        let _ = self
            .stop
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Time since `model` last answered, or since the run started.
    fn silent_for(&self, model: &Arc<str>) -> Duration {
        self.answered.lock().map_or(Duration::ZERO, |mut a| {
            a.entry(model.clone())
                .or_insert_with(Instant::now)
                .elapsed()
        })
    }

    /// The calls still to make: (task, prompt, model), prompt by prompt.
    fn plan(&self, store: &Store, summary: &mut Summary) -> Vec<Pending> {
        let mut out = Vec::new();
        for (ti, task) in self.tasks.tasks.iter().enumerate() {
            for (pi, prompt) in task.prompts.iter().enumerate() {
                let existing = store.get(&prompt.id);
                let base = match existing {
                    Some(r) if r.messages == prompt.messages => Some(r.clone()),
                    Some(_) => {
                        summary.stale += 1;
                        None
                    }
                    None => None,
                };
                let left = self
                    .models
                    .iter()
                    .filter(|m| {
                        base.as_ref()
                            .is_none_or(|b| !b.scores.contains_key(&*m.name))
                    })
                    .count();
                if left == 0 {
                    summary.resumed += 1;
                    continue;
                }
                out.push(Pending {
                    task: ti,
                    prompt: pi,
                    base,
                    left,
                    done: Vec::new(),
                });
            }
        }
        out
    }

    /// Each call runs as its own task, so one call's work (grading, parsing) never delays
    /// another's clock: latencies are the providers', not the benchmark's.
    pub async fn run(self: &Arc<Self>, store: &mut Store) -> Result<Summary, String> {
        crate::tokens::prewarm();
        let start = Instant::now();
        if let Ok(mut a) = self.answered.lock() {
            for m in &self.models {
                a.insert(m.name.clone(), start);
            }
        }
        let mut summary = Summary::default();
        let mut pending = self.plan(store, &mut summary);
        summary.planned = pending.iter().map(|p| p.left).sum();
        let bar = progress_bar(summary.planned as u64, self.settings.progress);

        // The feeder starts calls in prompt order, each with a permit; their results come back
        // on the channel as they finish.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Arc<str>, Done)>();
        let units: Vec<(usize, Arc<Deployment>, usize, usize)> = pending
            .iter()
            .enumerate()
            .flat_map(|(row, p)| {
                self.models
                    .iter()
                    .filter(|m| {
                        !p.base
                            .as_ref()
                            .is_some_and(|b| b.scores.contains_key(&*m.name))
                    })
                    .map(move |m| (row, m.clone(), p.task, p.prompt))
            })
            .collect();
        let feeder = {
            let me = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for (row, m, ti, pi) in units {
                    let permit = if me.stopped() {
                        None
                    } else {
                        me.permits.clone().acquire_owned().await.ok()
                    };
                    let Some(permit) = permit.filter(|_| !me.stopped()) else {
                        let _ = tx.send((row, m.name.clone(), Done::Skipped));
                        continue;
                    };
                    let (me, tx) = (me.clone(), tx.clone());
                    tokio::spawn(async move {
                        let task = &me.tasks.tasks[ti];
                        let done = me.one(task, &task.prompts[pi], &m, Some(permit)).await;
                        let _ = tx.send((row, m.name.clone(), done));
                    });
                }
            })
        };
        drop(tx);

        // Ctrl-C stops new calls and lets those in flight finish, so their rows are written; a
        // second one quits at once (every row on disk is whole either way).
        let stop = self.stop.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop.compare_exchange(0, 2, Ordering::Relaxed, Ordering::Relaxed);
                eprintln!(
                    "\ninterrupted: finishing the calls in flight, then writing what is done (Ctrl-C again to quit at once)"
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        // Ends when every call reported, or when every sender is gone (a call's task panicked).
        while let Some((row, model, done)) = rx.recv().await {
            match &done {
                Done::Scored(s) => {
                    let judge_usd = s.judge_usd.unwrap_or(0.0);
                    summary.scored += 1;
                    summary.spent_usd += s.usd + judge_usd;
                    summary.judge_usd += judge_usd;
                }
                Done::Failed(e) => {
                    let p = &pending[row];
                    let id = self.tasks.tasks[p.task].prompts[p.prompt].id.clone();
                    summary.failed.push((id, model.to_string(), e.clone()));
                }
                Done::Skipped => summary.skipped += 1,
            }
            if !matches!(done, Done::Skipped) {
                bar.inc(1);
            }
            bar.set_message(format!(
                "{} spent{}",
                super::matrix::usd(self.budget.spent()),
                if summary.failed.is_empty() {
                    String::new()
                } else {
                    format!(" · {} failed", summary.failed.len())
                }
            ));
            let p = &mut pending[row];
            p.done.push((model, done));
            p.left -= 1;
            if p.left == 0 {
                let task = &self.tasks.tasks[p.task];
                let prompt = &task.prompts[p.prompt];
                if let Some(r) = self.row(task, prompt, p.base.take(), std::mem::take(&mut p.done))
                {
                    store
                        .put(r)
                        .map_err(|e| format!("cannot write the outcomes file: {e}"))?;
                }
            }
        }
        feeder.abort();
        watcher.abort();
        // Prompts left incomplete by a stop: what they did finish is kept.
        for p in pending
            .iter_mut()
            .filter(|p| p.left > 0 && !p.done.is_empty())
        {
            let task = &self.tasks.tasks[p.task];
            let prompt = &task.prompts[p.prompt];
            if let Some(r) = self.row(task, prompt, p.base.take(), std::mem::take(&mut p.done)) {
                store
                    .put(r)
                    .map_err(|e| format!("cannot write the outcomes file: {e}"))?;
            }
        }
        store
            .finish()
            .map_err(|e| format!("cannot write the outcomes file: {e}"))?;
        bar.finish_and_clear();
        summary.skipped += summary
            .planned
            .saturating_sub(summary.scored + summary.failed.len() + summary.skipped);
        summary.stopped = match self.stop.load(Ordering::Relaxed) {
            1 => Some(Stop::Budget),
            2 => Some(Stop::Interrupted),
            _ => None,
        };
        summary.elapsed = start.elapsed();
        Ok(summary)
    }

    /// One model's answer to one prompt, graded. `permit` is the call's slot, taken in order.
    async fn one(
        &self,
        task: &Task,
        prompt: &Prompt,
        model: &Arc<Deployment>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Done {
        let req = match self.request(task, prompt, model) {
            Ok(r) => r,
            Err(e) => return Done::Failed(e),
        };
        let (text, usd, latency_ms) = match self.ask(model, &req, permit).await {
            Asked::Answer {
                text,
                usd,
                latency_ms,
            } => (text, usd, latency_ms),
            Asked::Failed(e) => return Done::Failed(e),
            Asked::Stopped => return Done::Skipped,
        };
        let (score, judge_usd) = match &task.scorer {
            Scorer::Judge {
                model: name,
                rubric,
            } => {
                let Some(jm) = self.gw.tables.models.get(name.as_str()).cloned() else {
                    return Done::Failed(format!("judge model `{name}` is not in the table"));
                };
                let jreq = match judge::request(&jm.name, rubric.as_deref(), prompt, &text) {
                    Ok(r) => r,
                    Err(e) => return Done::Failed(e),
                };
                match self.ask(&jm, &jreq, None).await {
                    Asked::Answer {
                        text: reply, usd, ..
                    } => match judge::read(&reply) {
                        Ok(s) => (s, Some(usd)),
                        Err(e) => return Done::Failed(e),
                    },
                    Asked::Failed(e) => return Done::Failed(format!("judge {}: {e}", jm.name)),
                    Asked::Stopped => return Done::Skipped,
                }
            }
            s => (score::grade(s, &text, prompt.reference.as_deref()), None),
        };
        Done::Scored(Scored {
            score,
            usd,
            judge_usd,
            latency_ms,
            text,
        })
    }

    /// The request for `prompt` on `model`: the task's parameters, an output cap, and the task
    /// type in `metadata` (simulated models are also told the reference, to play their skill).
    fn request(
        &self,
        task: &Task,
        prompt: &Prompt,
        model: &Deployment,
    ) -> Result<ChatRequest, String> {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(model.name.to_string()));
        body.insert("messages".into(), Value::Array(prompt.messages.clone()));
        for (k, v) in &task.params {
            body.insert(k.clone(), v.clone());
        }
        if !body.contains_key("max_tokens") && !body.contains_key("max_completion_tokens") {
            body.insert("max_tokens".into(), json!(self.settings.max_tokens));
        }
        let mut meta = match body.remove("metadata") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        meta.insert("task_type".into(), Value::String(task.name.clone()));
        let simulated = self
            .gw
            .config
            .providers
            .get(&model.provider_name)
            .is_some_and(|p| p.kind == ProviderKind::Simulated);
        if let (true, Some(r)) = (simulated, &prompt.reference) {
            meta.insert("simulate_reference".into(), Value::String(r.clone()));
        }
        body.insert("metadata".into(), Value::Object(meta));
        serde_json::from_value(Value::Object(body))
            .map_err(|e| format!("prompt {}: not a chat request: {e}", prompt.id))
    }

    /// The most a call may use: (prompt tokens, output tokens, USD). The prompt is counted with
    /// the o200k tokenizer plus a quarter (other tokenizers count differently) and some framing;
    /// the output is the request's cap.
    fn worst(&self, model: &Deployment, req: &ChatRequest) -> (u64, u64, f64) {
        let prompt_tokens = crate::tokens::estimate_prompt(req);
        let prompt_worst = prompt_tokens + prompt_tokens / 4 + 16;
        let output_worst = max_output(req).unwrap_or(self.settings.max_tokens);
        let usd = (prompt_worst as f64 * model.price.input
            + output_worst as f64 * model.price.output)
            / 1_000_000.0;
        (prompt_worst, output_worst, usd)
    }

    /// What a run would do without making a call: (calls to make, their worst-case cost). Judge
    /// calls are not included.
    pub fn preview(&self, store: &Store) -> (usize, f64) {
        let mut summary = Summary::default();
        let mut calls = 0;
        let mut usd = 0.0;
        for p in self.plan(store, &mut summary) {
            let task = &self.tasks.tasks[p.task];
            let prompt = &task.prompts[p.prompt];
            for m in &self.models {
                if p.base
                    .as_ref()
                    .is_some_and(|b| b.scores.contains_key(&*m.name))
                {
                    continue;
                }
                calls += 1;
                if let Ok(req) = self.request(task, prompt, m) {
                    usd += self.worst(m, &req).2;
                }
            }
        }
        (calls, usd)
    }

    /// One call through the dispatch layer, paced, paid for out of the budget, and tried again
    /// when its error passes.
    async fn ask(
        &self,
        model: &Arc<Deployment>,
        req: &ChatRequest,
        mut permit: Option<OwnedSemaphorePermit>,
    ) -> Asked {
        let (prompt_worst, output_worst, worst) = self.worst(model, req);
        let plan = Plan {
            pinned: Some(model.clone()),
            ..Plan::tier(&self.gw.tables, tier_of(&self.gw, model), false)
        };
        let mut round = 0;
        loop {
            if self.stopped() {
                return Asked::Stopped;
            }
            // Waiting for rpm/tpm room, a call gives its slot to calls to other models.
            while let Some(wait) = self.pacer.try_admit(
                &model.name,
                model.rpm,
                model.tpm,
                prompt_worst + output_worst,
            ) {
                permit = None;
                tokio::time::sleep(wait).await;
            }
            let permit = match permit.take() {
                Some(p) => p,
                None => match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return Asked::Stopped,
                },
            };
            if self.stopped() {
                return Asked::Stopped;
            }
            let Some(reserved) = self.budget.reserve(worst).await else {
                self.halt(Stop::Budget);
                return Asked::Stopped;
            };
            if self.stopped() {
                self.budget.settle(reserved, 0.0);
                return Asked::Stopped;
            }
            let progress = dispatch::Progress::default();
            let (result, out) = dispatch::chat(&self.gw.tables, req, &plan, &progress).await;
            // The slot is given up only once the call is settled, so the next call reserves
            // against what this one really cost.
            match result {
                Ok(resp) => {
                    if let Ok(mut a) = self.answered.lock() {
                        a.insert(model.name.clone(), Instant::now());
                    }
                    let text = answer(&resp.body);
                    let usage = resp
                        .usage
                        .unwrap_or_else(|| crate::cost::estimate::usage(req, &text));
                    let usd = crate::cost::usd(&model.price, &usage);
                    self.budget.settle(reserved, usd);
                    drop(permit);
                    return Asked::Answer {
                        text,
                        usd,
                        latency_ms: progress.upstream().as_secs_f64() * 1000.0,
                    };
                }
                Err(e) => {
                    self.budget.settle(reserved, 0.0);
                    drop(permit);
                    // No call was made: the deployment is cooling down or at its rpm/tpm limit.
                    // That is no failure of this prompt; wait for it (spread out, so the calls
                    // waiting on it do not all come back at once) and go again.
                    // A deployment that has not answered for `max_wait` is down: its calls fail.
                    if out.attempts == 0 && self.silent_for(&model.name) < self.settings.max_wait {
                        let wait = e.retry_after.unwrap_or(Duration::from_secs(1))
                            + Duration::from_millis(fastrand::u64(50..500));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    if passes(e.kind) && round < self.settings.retries {
                        round += 1;
                        let backoff = Duration::from_millis(500 << round.min(6));
                        let wait = e
                            .retry_after
                            .unwrap_or(backoff)
                            .min(Duration::from_secs(60));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Asked::Failed(format!(
                        "{}: {} ({} call{})",
                        e.kind.as_str(),
                        e.message,
                        out.attempts,
                        if out.attempts == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }

    /// The outcome row of a prompt: what was there (for the same prompt) plus this run's results.
    fn row(
        &self,
        task: &Task,
        prompt: &Prompt,
        base: Option<Outcome>,
        done: Vec<(Arc<str>, Done)>,
    ) -> Option<Outcome> {
        let mut row = base.unwrap_or_else(|| Outcome {
            id: prompt.id.clone(),
            source: Some(self.source.clone()),
            category: Some(task.name.clone()),
            messages: prompt.messages.clone(),
            scores: BTreeMap::new(),
            costs_usd: None,
            responses: None,
            latency_ms: None,
            extra: Map::new(),
        });
        if let Some(r) = &prompt.reference {
            row.extra
                .insert("reference".into(), Value::String(r.clone()));
        }
        let mut notes = |key: &str, model: &str, value: Option<Value>| {
            let entry = row
                .extra
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = entry.as_object_mut() {
                match value {
                    Some(v) => {
                        m.insert(model.to_string(), v);
                    }
                    None => {
                        m.remove(model);
                    }
                }
            }
        };
        let mut scored = Vec::new();
        for (model, d) in done {
            match d {
                Done::Scored(s) => {
                    notes("failed", &model, None);
                    notes(
                        "unreadable",
                        &model,
                        s.score.unreadable.clone().map(Value::String),
                    );
                    notes("judge_costs_usd", &model, s.judge_usd.map(|u| json!(u)));
                    scored.push((model, s));
                }
                Done::Failed(e) => notes("failed", &model, Some(Value::String(e))),
                Done::Skipped => {}
            }
        }
        for (model, s) in scored {
            row.scores.insert(model.to_string(), s.score.value);
            row.costs_usd
                .get_or_insert_with(BTreeMap::new)
                .insert(model.to_string(), s.usd);
            row.latency_ms
                .get_or_insert_with(BTreeMap::new)
                .insert(model.to_string(), (s.latency_ms * 1000.0).round() / 1000.0);
            row.responses
                .get_or_insert_with(BTreeMap::new)
                .insert(model.to_string(), s.text);
        }
        row.extra
            .retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
        // The format needs a score per row: a prompt every model failed on has no row yet (its
        // failures are reported, and the next run tries it again).
        (!row.scores.is_empty()).then_some(row)
    }
}

/// Errors that may pass if the call is tried again a little later.
fn passes(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::RateLimit
            | ErrorKind::Timeout
            | ErrorKind::Server
            | ErrorKind::Connect
            | ErrorKind::InvalidResponse
    )
}

fn max_output(req: &ChatRequest) -> Option<u64> {
    req.extra
        .get("max_completion_tokens")
        .or_else(|| req.extra.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// What the answer says: its text, or, for an answer that only calls tools, the calls' arguments.
fn answer(body: &Value) -> String {
    let m = &body["choices"][0]["message"];
    match m["content"].as_str() {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        _ => m["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .filter_map(|c| c["function"]["arguments"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
    }
}

/// The tier a model serves in, for its breaker and balancing labels; its own name otherwise.
fn tier_of(gw: &Gateway, model: &Deployment) -> Arc<str> {
    gw.tables
        .tiers
        .iter()
        .find(|(_, ms)| ms.iter().any(|m| m.name == model.name))
        .map_or_else(|| model.name.clone(), |(t, _)| t.clone())
}

fn progress_bar(len: u64, visible: bool) -> indicatif::ProgressBar {
    let target = if visible {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:24}] {pos}/{len} calls · ETA {eta} · {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
