//! From outcome rows to decisions: the quality matrix (task type × model: mean score with a
//! confidence interval, cost per 1,000 requests, median latency) and the routing map (per task
//! type, the cheapest model whose interval's lower bound clears the bar), printed, and written as
//! routing rules a table can use.

use super::stats;
use crate::outcomes::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One task type on one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Prompts scored.
    pub n: usize,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Mean cost of a request, times 1,000.
    pub cost_per_1k: Option<f64>,
    pub p50_ms: Option<f64>,
    /// Answers the scorer could not read (scored 0).
    pub unreadable: usize,
    /// Calls that failed and were not scored.
    pub failed: usize,
}

#[derive(Debug, Clone)]
pub struct Matrix {
    pub tasks: Vec<String>,
    /// Cheapest first.
    pub models: Vec<String>,
    /// Model → its tier in the routing table (the first that lists it), when it has one.
    pub tiers: BTreeMap<String, String>,
    /// Tier → its deployments, as the table lists them.
    pub tier_members: BTreeMap<String, Vec<String>>,
    /// (task, model) → cell; absent when the model has no score on the task.
    pub cells: BTreeMap<(String, String), Cell>,
    /// Prompts per task.
    pub prompts: BTreeMap<String, usize>,
    pub confidence: f64,
}

/// A task type's line of the routing map.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub task: String,
    /// The cheapest model whose lower bound clears the bar.
    pub pick: Option<String>,
    /// The model with the best mean, for a task no model clears.
    pub best: Option<String>,
    /// Where a rule sends the task type.
    pub tier: Option<TierChoice>,
}

/// A tier for a task type. A rule routes to a tier, and the tier balances its traffic over all
/// its deployments, so a tier clears the bar only when every deployment of it that was
/// benchmarked does.
#[derive(Debug, Clone, PartialEq)]
pub struct TierChoice {
    pub tier: String,
    /// False for the fallback: no tier clears, this one has the best mean.
    pub clears: bool,
    /// Its deployments with a score on the task.
    pub measured: Vec<String>,
    /// Its deployments without one (not benchmarked, or every call failed).
    pub unmeasured: Vec<String>,
}

impl Matrix {
    /// `rows` are the outcome rows of the benchmark's prompts; `models` the models benchmarked.
    pub fn build(
        rows: &[&Outcome],
        tasks: &[String],
        models: &[String],
        tier_members: BTreeMap<String, Vec<String>>,
        confidence: f64,
    ) -> Matrix {
        let mut tiers = BTreeMap::new();
        for (tier, members) in &tier_members {
            for m in members {
                tiers.entry(m.clone()).or_insert_with(|| tier.clone());
            }
        }
        let mut cells = BTreeMap::new();
        let mut prompts = BTreeMap::new();
        for task in tasks {
            let of_task: Vec<&&Outcome> = rows
                .iter()
                .filter(|r| r.category.as_deref() == Some(task.as_str()))
                .collect();
            prompts.insert(task.clone(), of_task.len());
            for m in models {
                let mut scores = Vec::new();
                let mut costs = Vec::new();
                let mut latencies = Vec::new();
                let (mut unreadable, mut failed) = (0, 0);
                for r in &of_task {
                    if let Some(s) = r.scores.get(m) {
                        scores.push(*s);
                        if let Some(c) = r.cost(m) {
                            costs.push(c);
                        }
                        if let Some(l) = r.latency_ms.as_ref().and_then(|l| l.get(m)) {
                            latencies.push(*l);
                        }
                        if r.extra.get("unreadable").and_then(|u| u.get(m)).is_some() {
                            unreadable += 1;
                        }
                    } else if r.extra.get("failed").and_then(|u| u.get(m)).is_some() {
                        failed += 1;
                    }
                }
                let Some(mean) = stats::mean(&scores) else {
                    if failed > 0 {
                        cells.insert(
                            (task.clone(), m.clone()),
                            Cell {
                                n: 0,
                                mean: 0.0,
                                lo: 0.0,
                                hi: 0.0,
                                cost_per_1k: None,
                                p50_ms: None,
                                unreadable: 0,
                                failed,
                            },
                        );
                    }
                    continue;
                };
                let (lo, hi) = stats::interval(&scores, confidence);
                cells.insert(
                    (task.clone(), m.clone()),
                    Cell {
                        n: scores.len(),
                        mean,
                        lo,
                        hi,
                        cost_per_1k: stats::mean(&costs).map(|c| c * 1000.0),
                        p50_ms: stats::median(&latencies),
                        unreadable,
                        failed,
                    },
                );
            }
        }
        // Cheapest first: the mean cost of a request over everything the model answered.
        let mut order: Vec<(f64, String)> = models
            .iter()
            .map(|m| {
                let costs: Vec<f64> = rows.iter().filter_map(|r| r.cost(m)).collect();
                (stats::mean(&costs).unwrap_or(f64::INFINITY), m.clone())
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        Matrix {
            tasks: tasks.to_vec(),
            models: order.into_iter().map(|(_, m)| m).collect(),
            tiers,
            tier_members,
            cells,
            prompts,
            confidence,
        }
    }

    pub fn cell(&self, task: &str, model: &str) -> Option<&Cell> {
        self.cells.get(&(task.to_string(), model.to_string()))
    }

    /// Per task type, the cheapest model whose lower bound is at least `bar`.
    pub fn routing_map(&self, bar: f64) -> Vec<Route> {
        self.tasks
            .iter()
            .map(|task| {
                let scored: Vec<(&String, &Cell)> = self
                    .models
                    .iter()
                    .filter_map(|m| self.cell(task, m).filter(|c| c.n > 0).map(|c| (m, c)))
                    .collect();
                let mut clearing: Vec<(&String, &Cell)> = scored
                    .iter()
                    .filter(|(_, c)| c.lo >= bar)
                    .copied()
                    .collect();
                // Costs within a rounding of each other (two deployments of one model) tie, and
                // the better-evidenced model wins the tie.
                clearing.sort_by(|a, b| {
                    let cost = |c: &Cell| c.cost_per_1k.map_or(f64::INFINITY, three_digits);
                    cost(a.1)
                        .total_cmp(&cost(b.1))
                        .then_with(|| b.1.lo.total_cmp(&a.1.lo))
                        .then_with(|| b.1.n.cmp(&a.1.n))
                });
                let best = scored
                    .iter()
                    .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean).then_with(|| b.0.cmp(a.0)))
                    .map(|(m, _)| (*m).clone());
                Route {
                    task: task.clone(),
                    pick: clearing.first().map(|(m, _)| (*m).clone()),
                    tier: self.tier_choice(task, bar),
                    best,
                }
            })
            .collect()
    }

    /// The cheapest tier all of whose measured deployments clear `bar` on `task`; else the tier
    /// with the best mean over its measured deployments.
    fn tier_choice(&self, task: &str, bar: f64) -> Option<TierChoice> {
        let mut options: Vec<(TierChoice, f64, f64)> = Vec::new();
        for (tier, members) in &self.tier_members {
            let (measured, unmeasured): (Vec<String>, Vec<String>) = members
                .iter()
                .cloned()
                .partition(|m| self.cell(task, m).is_some_and(|c| c.n > 0));
            let cells: Vec<&Cell> = measured.iter().filter_map(|m| self.cell(task, m)).collect();
            if cells.is_empty() {
                continue;
            }
            let clears = cells.iter().all(|c| c.lo >= bar);
            let cost = cells
                .iter()
                .map(|c| c.cost_per_1k.unwrap_or(f64::INFINITY))
                .sum::<f64>()
                / cells.len() as f64;
            let mean = cells.iter().map(|c| c.mean).sum::<f64>() / cells.len() as f64;
            options.push((
                TierChoice {
                    tier: tier.clone(),
                    clears,
                    measured,
                    unmeasured,
                },
                three_digits(cost),
                mean,
            ));
        }
        let cheapest_clearing = options
            .iter()
            .filter(|o| o.0.clears)
            .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.2.total_cmp(&a.2)));
        let best = options.iter().max_by(|a, b| a.2.total_cmp(&b.2));
        cheapest_clearing.or(best).map(|o| o.0.clone())
    }

    /// Quality and cost of a mix that sends each task type's prompts to one model, weighted by
    /// the prompts per task: `(mean score, cost per 1,000 requests)`.
    fn mix(&self, pick: impl Fn(&str) -> Option<String>) -> Option<(f64, f64)> {
        let (mut q, mut c, mut n) = (0.0, 0.0, 0.0);
        for task in &self.tasks {
            let cell = self.cell(task, &pick(task)?)?;
            let w = *self.prompts.get(task)? as f64;
            q += cell.mean * w;
            c += cell.cost_per_1k? * w;
            n += w;
        }
        (n > 0.0).then(|| (q / n, c / n))
    }

    /// The quality matrix as text, one block per task type.
    pub fn render(&self) -> String {
        let pct = (self.confidence * 100.0).round();
        let mut out = String::new();
        let width = column(self.models.iter(), 5);
        let tier_w = column(self.tiers.values(), 4);
        for task in &self.tasks {
            let _ = writeln!(
                out,
                "{task} ({} prompts)",
                self.prompts.get(task).copied().unwrap_or(0)
            );
            let _ = writeln!(
                out,
                "  {:<width$}  {:<tier_w$}  {:>4}  {:>5}  {:<16}  {:>10}  {:>7}",
                "model",
                "tier",
                "n",
                "score",
                format!("{pct}% interval"),
                "$/1k req",
                "p50 ms",
            );
            for m in &self.models {
                let tier = self.tiers.get(m).map_or("-", String::as_str);
                let Some(c) = self.cell(task, m) else {
                    let _ = writeln!(out, "  {m:<width$}  {tier:<tier_w$}  {:>4}  not run", 0);
                    continue;
                };
                let mut notes = Vec::new();
                if c.unreadable > 0 {
                    notes.push(format!("{} unreadable", c.unreadable));
                }
                if c.failed > 0 {
                    notes.push(format!("{} failed, not scored", c.failed));
                }
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", notes.join(", "))
                };
                if c.n == 0 {
                    let _ = writeln!(out, "  {m:<width$}  {tier:<tier_w$}  {:>4}  -{notes}", 0);
                    continue;
                }
                let _ = writeln!(
                    out,
                    "  {m:<width$}  {tier:<tier_w$}  {:>4}  {:>5.3}  {:<16}  {:>10}  {:>7}{notes}",
                    c.n,
                    c.mean,
                    format!("[{:.3}, {:.3}]", c.lo, c.hi),
                    c.cost_per_1k.map_or_else(|| "-".into(), usd),
                    c.p50_ms.map_or_else(|| "-".into(), |l| format!("{l:.0}")),
                );
            }
            out.push('\n');
        }
        out
    }

    /// The routing map as text, with what the map would cost against one model for everything.
    pub fn render_map(&self, bar: f64) -> String {
        let pct = (self.confidence * 100.0).round();
        let map = self.routing_map(bar);
        let mut out = format!(
            "routing map: per task type, the cheapest model whose {pct}% interval's lower bound clears {bar}\n"
        );
        let tw = column(self.tasks.iter(), 9);
        let mw = column(self.models.iter(), 5);
        let _ = writeln!(
            out,
            "  {:<tw$}  {:<mw$}  {:<8}  {:>5}  {:>5}  {:>10}",
            "task type", "model", "tier", "lower", "score", "$/1k req"
        );
        for r in &map {
            match r
                .pick
                .as_ref()
                .and_then(|m| self.cell(&r.task, m).map(|c| (m, c)))
            {
                Some((m, c)) => {
                    let tier = self.tiers.get(m).map_or("-", String::as_str);
                    let _ = writeln!(
                        out,
                        "  {:<tw$}  {m:<mw$}  {tier:<8}  {:>5.3}  {:>5.3}  {:>10}",
                        r.task,
                        c.lo,
                        c.mean,
                        c.cost_per_1k.map_or_else(|| "-".into(), usd)
                    );
                    if let Some(t) = r.tier.as_ref().filter(|t| t.tier != tier) {
                        let why = if t.clears {
                            format!("every measured deployment of {} clears", t.tier)
                        } else {
                            format!(
                                "no tier has every deployment clear; {} has the best mean",
                                t.tier
                            )
                        };
                        let _ = writeln!(out, "  {:<tw$}  (rule: tier {}, {why})", "", t.tier);
                    }
                }
                None => {
                    let best = r
                        .best
                        .as_ref()
                        .and_then(|m| self.cell(&r.task, m).map(|c| (m, c)));
                    let said = match best {
                        Some((m, c)) => format!(
                            "no model clears {bar}; best is {m} at {:.3} [{:.3}, {:.3}]",
                            c.mean, c.lo, c.hi
                        ),
                        None => "no model has a score".into(),
                    };
                    let _ = writeln!(out, "  {:<tw$}  {said}", r.task);
                }
            }
        }
        let by_map = self.mix(|t| {
            map.iter()
                .find(|r| r.task == t)
                .and_then(|r| r.pick.clone().or_else(|| r.best.clone()))
        });
        // Against the model with the best mean over all prompts: "everything on the strongest".
        let strongest = self
            .models
            .iter()
            .filter_map(|m| self.mix(|_| Some(m.clone())).map(|x| (m, x)))
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0));
        if let (Some((q, c)), Some((sm, (sq, sc)))) = (by_map, strongest) {
            let _ = writeln!(
                out,
                "\nthis map on these prompts: mean score {q:.3} at {} per 1k requests; everything on {sm}: {sq:.3} at {}{}",
                usd(c),
                usd(sc),
                if sc > 0.0 {
                    format!(" ({:+.0}% cost)", (c / sc - 1.0) * 100.0)
                } else {
                    String::new()
                }
            );
        }
        out
    }

    /// The routing map as `routing.rules` entries on `metadata.task_type`.
    pub fn rules_yaml(&self, bar: f64, source: &str) -> String {
        let pct = (self.confidence * 100.0).round();
        let mut out = format!(
            "# Routing rules written by `switchyard bench` from {source}:\n\
             # per task type, the cheapest tier whose every benchmarked deployment has a {pct}%\n\
             # interval lower bound of at least {bar}.\n\
             # Requests carry their task type in metadata.task_type. Include this file from the\n\
             # routing table with `routing.rules_files: [<this file>]`, or paste the entries under\n\
             # routing.rules.\n"
        );
        let mut any = false;
        for r in self.routing_map(bar) {
            let Some(t) = &r.tier else {
                let _ = writeln!(
                    out,
                    "# {}: no deployment of a tier has a score; no rule",
                    r.task
                );
                continue;
            };
            any = true;
            let _ = writeln!(
                out,
                "- name: {}\n  when: {{ task_type: [{}] }}\n  tier: {}",
                yaml_str(&format!("bench-{}", r.task)),
                yaml_str(&r.task),
                yaml_str(&t.tier),
            );
            for m in &t.measured {
                if let Some(c) = self.cell(&r.task, m) {
                    let _ = writeln!(
                        out,
                        "  # {m}: {:.3} [{:.3}, {:.3}] over {} prompts, {} per 1k requests",
                        c.mean,
                        c.lo,
                        c.hi,
                        c.n,
                        c.cost_per_1k.map_or_else(|| "-".into(), usd),
                    );
                }
            }
            if !t.unmeasured.is_empty() {
                let _ = writeln!(
                    out,
                    "  # not measured on this task: {}",
                    t.unmeasured.join(", ")
                );
            }
            if !t.clears {
                let _ = writeln!(
                    out,
                    "  # no tier clears {bar} on every deployment: this is the tier with the best mean"
                );
            }
        }
        if !any {
            out.push_str("[]\n");
        }
        out
    }
}

/// `v` rounded to three significant digits.
fn three_digits(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Dollars with four significant digits, so both $0.0135 and $12.40 read well.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        return "$0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(2, 10) as usize;
    format!("${v:.digits$}")
}

/// A YAML scalar: plain when safe, else double-quoted JSON (valid YAML).
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !s.starts_with(['-', '.'])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// A column as wide as its longest entry, and at least as wide as its heading.
fn column<'a>(entries: impl Iterator<Item = &'a String>, heading: usize) -> usize {
    entries.map(String::len).max().unwrap_or(0).max(heading)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn row(id: &str, task: &str, scores: &[(&str, f64, f64)]) -> Outcome {
        let s: BTreeMap<String, f64> = scores.iter().map(|(m, s, _)| (m.to_string(), *s)).collect();
        let c: BTreeMap<String, f64> = scores.iter().map(|(m, _, c)| (m.to_string(), *c)).collect();
        serde_json::from_value(
            json!({"id": id, "category": task, "messages": [], "scores": s, "costs_usd": c}),
        )
        .unwrap()
    }

    #[test]
    fn the_map_picks_the_cheapest_model_whose_lower_bound_clears_the_bar() {
        // 20 prompts: cheap is right on 20 of "easy" and 15 of "hard"; big is right on all.
        let mut rows = Vec::new();
        for i in 0..20 {
            rows.push(row(
                &format!("e{i}"),
                "easy",
                &[("cheap", 1.0, 0.001), ("big", 1.0, 0.01)],
            ));
            let hard = if i < 15 { 1.0 } else { 0.0 };
            rows.push(row(
                &format!("h{i}"),
                "hard",
                &[("cheap", hard, 0.001), ("big", 1.0, 0.01)],
            ));
        }
        let refs: Vec<&Outcome> = rows.iter().collect();
        let tiers = BTreeMap::from([
            ("budget".to_string(), vec!["cheap".to_string()]),
            ("premium".to_string(), vec!["big".to_string()]),
        ]);
        let m = Matrix::build(
            &refs,
            &["easy".into(), "hard".into()],
            &["big".into(), "cheap".into()],
            tiers,
            0.95,
        );
        assert_eq!(m.models, ["cheap", "big"], "cheapest first");
        let c = m.cell("hard", "cheap").unwrap();
        assert_eq!((c.n, c.mean), (20, 0.75));
        assert!((c.cost_per_1k.unwrap() - 1.0).abs() < 1e-12);
        let map = m.routing_map(0.8);
        // 20/20 has a Wilson lower bound of 0.839: cheap clears 0.8 on easy; 15/20 (0.531) does not.
        assert_eq!(map[0].pick.as_deref(), Some("cheap"));
        assert_eq!(map[1].pick.as_deref(), Some("big"));
        assert_eq!(
            map[1].tier.as_ref().map(|t| t.tier.as_str()),
            Some("premium")
        );
        // A bar above 0.839 is cleared by nobody: 20 prompts cannot show more.
        let map = m.routing_map(0.9);
        assert_eq!(map[0].pick, None);
        assert_eq!(map[0].best.as_deref(), Some("big"));
        let rules = m.rules_yaml(0.8, "o.jsonl");
        let parsed: Vec<serde_json::Value> = serde_saphyr::from_str(&rules).unwrap();
        assert_eq!(
            parsed[0],
            json!({"name": "bench-easy", "when": {"task_type": ["easy"]}, "tier": "budget"})
        );
        assert_eq!(parsed[1]["tier"], "premium");
        let text = m.render_map(0.8);
        assert!(
            text.contains("everything on big: 1.000 at $10.00"),
            "{text}"
        );
        assert!(text.contains("mean score 1.000 at $5.500"), "{text}");
    }

    #[test]
    fn a_tier_clears_only_when_every_deployment_of_it_does() {
        // budget balances over `cheap` (right on all 20) and `shaky` (15 of 20): a rule to
        // budget would send half the traffic to shaky, so the rule goes to premium.
        let rows: Vec<Outcome> = (0..20)
            .map(|i| {
                let shaky = if i < 15 { 1.0 } else { 0.0 };
                row(
                    &format!("r{i}"),
                    "t",
                    &[
                        ("cheap", 1.0, 0.001),
                        ("shaky", shaky, 0.001),
                        ("big", 1.0, 0.01),
                    ],
                )
            })
            .collect();
        let refs: Vec<&Outcome> = rows.iter().collect();
        let tiers = BTreeMap::from([
            (
                "budget".to_string(),
                vec!["cheap".to_string(), "shaky".to_string()],
            ),
            ("premium".to_string(), vec!["big".to_string()]),
        ]);
        let models = ["cheap".to_string(), "shaky".to_string(), "big".to_string()];
        let m = Matrix::build(&refs, &["t".into()], &models, tiers.clone(), 0.95);
        let r = &m.routing_map(0.8)[0];
        assert_eq!(
            r.pick.as_deref(),
            Some("cheap"),
            "the cheapest model clears"
        );
        let t = r.tier.as_ref().unwrap();
        assert_eq!((t.tier.as_str(), t.clears), ("premium", true));
        assert!(
            m.render_map(0.8)
                .contains("(rule: tier premium, every measured deployment of premium clears)")
        );
        let rules: Vec<serde_json::Value> =
            serde_saphyr::from_str(&m.rules_yaml(0.8, "o")).unwrap();
        assert_eq!(rules[0]["tier"], "premium");
        // Benchmarked without shaky, budget clears, and the rules say what was not measured.
        let m = Matrix::build(
            &refs,
            &["t".into()],
            &models[..1]
                .iter()
                .chain(&models[2..])
                .cloned()
                .collect::<Vec<_>>(),
            tiers,
            0.95,
        );
        let t = m.routing_map(0.8)[0].tier.clone().unwrap();
        assert_eq!(
            (t.tier.as_str(), t.unmeasured.as_slice()),
            ("budget", &["shaky".to_string()][..])
        );
        assert!(
            m.rules_yaml(0.8, "o")
                .contains("# not measured on this task: shaky")
        );
    }

    #[test]
    fn formats_dollars_and_yaml_scalars() {
        assert_eq!(usd(0.013456), "$0.01346");
        assert_eq!(usd(12.4), "$12.40");
        assert_eq!(usd(1234.5), "$1234.50");
        assert_eq!(yaml_str("budget"), "budget");
        assert_eq!(yaml_str("yes"), "\"yes\"");
        assert_eq!(yaml_str("a: b"), "\"a: b\"");
    }
}
