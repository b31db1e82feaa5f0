//! `switchyard eval`: proves a routing table offline. Every test prompt of an outcome file is
//! replayed through the table (rules, semantic, the learned layer, and its cascade where the
//! answers are recorded) without calling any provider, and quality and cost are added up from
//! the recorded outcomes of the models the table would have called. The learned layer's bar is
//! swept, giving a cost–quality curve (and, for two models, RouteLLM's PGR/APGR/CPT); the
//! operating point to deploy is chosen on the training data only, by cross-validation inside it.
//!
//! - `curve`: the metrics. `sweep`: the exact curve over the bar. `replay`: cascades on recorded
//!   answers; `table_cascade`: the table's own. `report`: table, JSON, SVG,
//!   choices.
//! - here: reading the data, the folds, training per fold, and the replay of each prompt.
//!
//! When the learned layer's own data is the test set, each prompt is predicted by a layer trained
//! on the other folds (k-fold cross-validation), and the report says the result is in-domain.
//!
//! Must not import `api`, `server`, `dispatch` or `providers`: an offline replay calls no provider.

pub mod calibrate;
pub mod cli;
pub mod curve;
pub mod replay;
pub mod report;
pub mod sweep;
pub mod table_cascade;

use crate::config::{BarKind, Config, EmbedderConfig, LearnedMethod};
use crate::embed::Embedder;
use crate::routing::learned::{self, Dataset, Predictor, cache, data};
use crate::routing::{Layer, Router};
use curve::Point;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use sweep::{Plan, Served};

/// What `switchyard eval` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Option<PathBuf>,
    /// Outcome files whose prompts are replayed (one test set).
    pub test: Vec<PathBuf>,
    pub train: Vec<PathBuf>,
    pub folds: usize,
    pub seed: u64,
    /// Overrides of the learned layer's settings (or its defaults, without a table). No method:
    /// the table's, or without a table `auto`.
    pub method: Option<MethodChoice>,
    pub bar_kind: Option<BarKind>,
    pub k: Option<usize>,
    pub embedder: Option<EmbedderConfig>,
    /// Output tokens assumed per call where an outcome has neither a cost nor a response.
    pub output_tokens: u64,
    pub cache: bool,
    /// Replay cascades from the recorded answers, where the outcome files have them
    /// (`responses`): without a table, agreement cascades offered to the learned layer; with
    /// one, the table's own `routing.cascade`.
    pub cascade: bool,
}

/// The learned layer's method in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Fixed(LearnedMethod),
    /// Each fold's training prompts choose among [`AUTO_METHODS`] by the cross-validation that
    /// also chooses the operating point: the method whose curve is best there (see
    /// [`method_merit`]) is trained on the fold and replayed on its test prompts.
    Auto,
}

/// The methods `auto` chooses among.
pub const AUTO_METHODS: [LearnedMethod; 3] = [
    LearnedMethod::Knn,
    LearnedMethod::Linear,
    LearnedMethod::Ensemble,
];

/// `knn`, or with `auto` what the folds chose: `auto: linear` (every fold the same) or
/// `auto: knn ×2, linear ×3`; `weighted`: with the category weight, where it was chosen too.
fn describe_methods(auto: bool, weighted: bool, per_fold: &[Variant]) -> String {
    let name = |v: &Variant| {
        if weighted {
            format!(
                "{} (category weight {})",
                v.method.as_str(),
                v.category_weight
            )
        } else {
            v.method.as_str().to_string()
        }
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in per_fold {
        *counts.entry(name(v)).or_default() += 1;
    }
    if !auto {
        return counts.into_keys().next().unwrap_or_default();
    }
    let parts: Vec<String> = if counts.len() == 1 {
        counts.into_keys().collect()
    } else {
        counts.iter().map(|(m, n)| format!("{m} ×{n}")).collect()
    };
    format!("auto: {}", parts.join(", "))
}

/// One candidate: a tier of the table (or, without a table, a model of the outcome files), and
/// the outcome columns that stand for it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    /// The model whose recorded outcome is used when this candidate serves a prompt.
    pub model: String,
    #[serde(skip)]
    pub column: usize,
    #[serde(skip)]
    pub columns: Vec<usize>,
}

/// Everything `eval` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub test: String,
    pub train: Vec<String>,
    pub prompts: usize,
    /// `in-domain (k-fold cross-validation)` or `held-out`.
    pub setting: String,
    pub folds: Option<usize>,
    /// The method used; with `auto`, the one chosen and how (`auto: linear`), or per fold.
    pub method: String,
    /// The method each fold's training prompts chose (all the same unless `auto`).
    pub method_per_fold: Vec<&'static str>,
    /// The weight of the category's record each fold used (chosen under `auto` where the prompts
    /// have categories).
    pub category_weight_per_fold: Vec<f64>,
    pub embedder: String,
    pub bar_kind: String,
    /// Candidates, cheapest first.
    pub candidates: Vec<Candidate>,
    /// How many prompts each layer decided.
    pub layers: BTreeMap<String, usize>,
    pub curve: Vec<Point>,
    /// Every distinct operating point (the reported `curve` is a thinned copy).
    #[serde(skip)]
    pub points: Vec<Point>,
    pub singles: Vec<Single>,
    /// The replayed agreement cascades offered to the learned layer, each on its own.
    pub cascades: Vec<CascadeReport>,
    pub random: Point,
    pub oracle: Point,
    pub two_model: Option<TwoModel>,
    pub selected: Option<Selected>,
    /// Whether every single model's point lies on or under the router's curve, and which do not.
    pub above_single_models: bool,
    pub below: Vec<String>,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub choices: Vec<ChoiceRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Single {
    pub name: String,
    pub quality: f64,
    pub standard_error: f64,
    pub cost_usd: f64,
}

/// One cascade candidate: its models per fold (chosen on that fold's training prompts) and what
/// it comes to on the test prompts when it answers every one of them.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeReport {
    pub name: String,
    /// `first + checker + … → premium`, one per fold (deduplicated).
    pub chains: Vec<String>,
    pub quality: f64,
    pub standard_error: f64,
    pub cost_usd: f64,
    /// Share of test prompts on which it called the premium model.
    pub escalated: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TwoModel {
    pub strong: String,
    pub weak: String,
    pub apgr: f64,
    pub cpt50: Option<f64>,
    pub cpt80: Option<f64>,
    /// The same metrics for an oracle (strong only where it beats weak) and a random router.
    pub oracle_apgr: f64,
    pub random_apgr: f64,
    pub pgr_curve: Vec<(f64, f64)>,
}

/// The operating point chosen on training data only: the cheapest point whose training quality
/// matched the best single model's within one standard error, then applied to the test prompts.
#[derive(Debug, Clone, Serialize)]
pub struct Selected {
    /// The bar deployed (the median over folds under cross-validation).
    pub point: f64,
    /// Per fold, under cross-validation.
    pub per_fold: Vec<f64>,
    pub quality: f64,
    pub cost_usd: f64,
    /// The best single model on the test prompts, for comparison.
    pub best_single: String,
    pub best_quality: f64,
    pub best_standard_error: f64,
    /// Router cost as a share of the best single model's.
    pub cost_share: f64,
    /// Test quality within one standard error of the best single model's.
    pub matches_best: bool,
}

/// One line of `--choices`.
#[derive(Debug, Clone, Serialize)]
pub struct ChoiceRow {
    pub point: f64,
    pub id: String,
    pub model: String,
    pub asked: Vec<String>,
}

/// At most this many points in the reported curve (and so in `--choices`); the metrics use
/// every point.
const REPORTED_POINTS: usize = 41;

/// Runs the evaluation.
pub async fn evaluate(o: &Options) -> Result<Evaluation, String> {
    let http = reqwest::Client::new();
    let (config, router, table_learned) = match &o.config {
        Some(path) => {
            let gw = crate::gateway::Gateway::load(path, &http)
                .await
                .map_err(|e| e.to_string())?;
            let lc = gw.config.routing.learned.clone();
            let mut router = gw.router;
            router.set_learned(None);
            (Some(gw.config), Some(router), lc)
        }
        None => (None, None, None),
    };
    let base_dir = o
        .config
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let embedder_cfg = o
        .embedder
        .clone()
        .or_else(|| table_learned.as_ref().map(|l| l.embedder.clone()))
        .unwrap_or_default();
    // Without a method named, a table's own; without a table, the one the training folds prefer.
    let table_weight = table_learned
        .as_ref()
        .map_or(learned::CATEGORY_WEIGHT, |l| l.category_weight);
    let fixed_variant = |method| {
        vec![Variant {
            method,
            category_weight: table_weight,
        }]
    };
    let auto = match o.method {
        Some(MethodChoice::Fixed(_)) => false,
        Some(MethodChoice::Auto) => true,
        None => table_learned.is_none(),
    };
    let mut variants: Vec<Variant> = match o.method {
        Some(MethodChoice::Fixed(m)) => fixed_variant(m),
        _ if !auto => fixed_variant(table_learned.as_ref().map(|l| l.method).unwrap_or_default()),
        _ => AUTO_METHODS
            .iter()
            .map(|&method| Variant {
                method,
                category_weight: table_weight,
            })
            .collect(),
    };
    let bar_kind = o
        .bar_kind
        .or(table_learned.as_ref().map(|l| l.bar_kind))
        .unwrap_or_default();
    let k =
        o.k.or(table_learned.as_ref().map(|l| l.k))
            .unwrap_or(crate::config::DEFAULT_K);
    let min_similarity = table_learned
        .as_ref()
        .and_then(|l| l.min_similarity)
        .unwrap_or(f32::NEG_INFINITY);
    let providers = config
        .as_ref()
        .map(|c| c.providers.clone())
        .unwrap_or_default();
    let embedder = Embedder::build(&embedder_cfg, &providers, &http, &base_dir)?;
    let embedder_id = format!(
        "v1/{}/{}/{:?}",
        embedder.name(),
        embedder.dims().unwrap_or(0),
        embedder_cfg.path.as_ref().map(|p| p.value.clone())
    );
    let cache_dir = if o.cache { cache::default_dir() } else { None };

    let test_name = o
        .test
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let test = data::load(&o.test, &embedder, &embedder_id, cache_dir.as_deref()).await?;
    if test.is_empty() {
        return Err(format!("{test_name}: no outcome rows"));
    }
    let train_files: Vec<PathBuf> = if !o.train.is_empty() {
        o.train.clone()
    } else if let Some(l) = &table_learned {
        l.outcomes.iter().map(|f| base_dir.join(&f.value)).collect()
    } else {
        Vec::new()
    };
    let train = if train_files.is_empty() {
        test.clone()
    } else {
        let mut rows = Dataset::default();
        for f in &train_files {
            if let Some(pos) = o.test.iter().position(|t| same_file(f, t)) {
                let d = data::load(
                    std::slice::from_ref(&o.test[pos]),
                    &embedder,
                    &embedder_id,
                    cache_dir.as_deref(),
                )
                .await?;
                rows = concat(rows, d);
            } else {
                let d = data::load(
                    std::slice::from_ref(f),
                    &embedder,
                    &embedder_id,
                    cache_dir.as_deref(),
                )
                .await?;
                rows = concat(rows, d);
            }
        }
        rows
    };
    // One column layout for both.
    let mut models: Vec<String> = test.models.clone();
    for m in &train.models {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    let test = align(&test, &models);
    let train = align(&train, &models);
    // Where the prompts fall in several categories, `auto` also chooses how much a category's
    // record counts (with one, it would only shrink every prediction by the same amount).
    let distinct: HashSet<&str> = train
        .categories
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let weighted = auto && distinct.len() > 1;
    if weighted {
        variants = variants
            .iter()
            .flat_map(|v| {
                AUTO_CATEGORY_WEIGHTS.iter().map(move |&w| Variant {
                    method: v.method,
                    category_weight: w,
                })
            })
            .collect();
    }
    let mut notes = Vec::new();

    // Candidates: the table's tiers mapped to outcome models, or every model.
    let mut candidates = match (&config, &table_learned) {
        (Some(c), Some(l)) => {
            let mapping = learned::map_tiers(l, c, &models)?;
            tiers_to_candidates(&mapping, &models)
        }
        (Some(c), None) => {
            let l = no_learned_config();
            let mapping = learned::map_tiers(&l, c, &models).or_else(|e| {
                // Without a learned layer, models the table does not serve are only reported.
                notes.push(e);
                let mut lenient = l.clone();
                lenient.ignore_models = models.clone();
                learned::map_tiers(&lenient, c, &models)
            })?;
            tiers_to_candidates(&mapping, &models)
        }
        _ => models
            .iter()
            .enumerate()
            .map(|(i, m)| Candidate {
                name: m.clone(),
                model: m.clone(),
                column: i,
                columns: vec![i],
            })
            .collect(),
    };
    if candidates.len() < 2 {
        return Err(
            "eval needs at least two candidates (tiers with outcome data, or models)".into(),
        );
    }
    for c in &candidates {
        if let Some(missing) = (0..test.len()).find(|&i| !test.score(i, c.column).is_finite()) {
            return Err(format!(
                "{test_name}: prompt {:?} has no score for `{}`, which {} stands for; every test prompt needs a score for every candidate",
                test.ids[missing], c.model, c.name
            ));
        }
    }
    let test_rows = read_all(&o.test)?;
    let costs = cost_table(
        &test,
        &candidates,
        &test_rows,
        &test_name,
        o.output_tokens,
        config.as_ref(),
    )?;
    let mean_cost: Vec<f64> = (0..candidates.len())
        .map(|t| costs.iter().map(|r| r[t]).sum::<f64>() / test.len() as f64)
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        mean_cost[a]
            .total_cmp(&mean_cost[b])
            .then(candidates[a].name.cmp(&candidates[b].name))
    });
    candidates = order.iter().map(|&i| candidates[i].clone()).collect();
    let costs: Vec<Vec<f64>> = costs
        .iter()
        .map(|r| order.iter().map(|&i| r[i]).collect())
        .collect();
    let singles_n = candidates.len();
    let strong = singles_n - 1;

    // What each prompt on each candidate comes to.
    let mut served: Vec<Vec<Served>> = (0..test.len())
        .map(|i| {
            candidates
                .iter()
                .enumerate()
                .map(|(t, c)| Served {
                    model: t,
                    asked: vec![t],
                    quality: f64::from(test.score(i, c.column)),
                    cost: costs[i][t],
                })
                .collect()
        })
        .collect();

    // Which layer decides each prompt (the learned layer's part is predicted per fold below).
    let default_tier = config.as_ref().map(|c| c.routing.default.value.clone());
    let default_idx = default_tier
        .as_ref()
        .and_then(|d| candidates.iter().position(|c| &c.name == d));
    let mut fixed: Vec<Option<usize>> = vec![None; test.len()];
    // The rule that decided each prompt, for a cascade limited to some rules.
    let mut fixed_rule: Vec<Option<String>> = vec![None; test.len()];
    let mut layers: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(r) = router.as_ref() {
        for (i, row) in test_rows.iter().enumerate() {
            let (tier, name, rule) =
                fixed_decision(r, row, &candidates, default_idx, table_learned.is_some()).await?;
            fixed_rule[i] = rule;
            if let Some(t) = tier {
                fixed[i] = Some(t);
                *layers.entry(name).or_default() += 1;
            }
        }
    }

    // Folds: in-domain when test prompts are in the training data.
    let train_index: HashMap<&str, usize> = train
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let overlap: Vec<usize> = (0..test.len())
        .filter(|&i| train_index.contains_key(test.ids[i].as_str()))
        .collect();
    let in_domain = !overlap.is_empty();
    if in_domain && overlap.len() < test.len() {
        notes.push(format!(
            "{} of {} test prompts are in the training data; those are cross-validated, the rest are predicted by a layer trained on all of it",
            overlap.len(),
            test.len()
        ));
    }
    let folds = o.folds.max(2);
    let fold_of = fold_assignment(&test.ids, folds, o.seed);
    let needs_learned = fixed.iter().any(Option::is_none);

    let mut plans: Vec<Plan> = fixed.iter().map(|f| Plan::Fixed(f.unwrap_or(0))).collect();
    let mut per_fold_bars = Vec::new();
    let mut per_fold_variants: Vec<Variant> = Vec::new();
    let mut selected_tier: Vec<usize> = vec![0; test.len()];
    let mut top: Vec<Option<usize>> = vec![None; test.len()];
    let groups: Vec<Vec<usize>> = if in_domain {
        (0..folds)
            .map(|f| (0..test.len()).filter(|&i| fold_of[i] == f).collect())
            .collect()
    } else {
        vec![(0..test.len()).collect()]
    };
    let train_rows_of = |group: &[usize]| -> Vec<usize> {
        let held: HashSet<&str> = group.iter().map(|&i| test.ids[i].as_str()).collect();
        (0..train.len())
            .filter(|&j| !held.contains(train.ids[j].as_str()))
            .collect()
    };

    // The single models as recorded, before the table's cascade (if any) answers for its tier.
    let raw_served = served.clone();
    // A table's candidates are its tiers, and its own cascade is what runs on the prompts routed
    // to its cheap tier.
    let table_replay = match &config {
        Some(c) if o.cascade => table_cascade::setup(
            c,
            &candidates,
            &models,
            &test_rows,
            agreement_compare(Some(c)),
            &mut notes,
        ),
        Some(c) if c.routing.cascade.is_some() => {
            notes.push("the table's routing.cascade is not replayed (--no-cascade): these figures are the routing decision's alone".into());
            None
        }
        _ => None,
    };
    let mut table_report = None;
    if let Some(tr) = &table_replay {
        let (f, t) = (tr.cascade.from, tr.cascade.to);
        let mut all = Vec::new();
        for (i, row) in test_rows.iter().enumerate().take(test.len()) {
            let (a, b) = (&raw_served[i][f], &raw_served[i][t]);
            if let Some(s) = tr.replay(
                row,
                (a.quality, a.cost),
                (b.quality, b.cost),
                o.output_tokens,
            ) {
                if tr.applies(fixed_rule[i].as_deref()) {
                    served[i][f] = s.clone();
                }
                all.push(s);
            }
        }
        let q: Vec<f64> = all.iter().map(|s| s.quality).collect();
        table_report = Some(CascadeReport {
            name: "routing.cascade".into(),
            chains: vec![tr.describe.clone()],
            quality: q.iter().sum::<f64>() / q.len().max(1) as f64,
            standard_error: curve::standard_error(&q),
            cost_usd: all.iter().map(|s| s.cost).sum(),
            escalated: all.iter().filter(|s| s.model != f).count() as f64 / all.len().max(1) as f64,
        });
    }
    // Training rows by id, for replaying the table's cascade where the operating point is chosen.
    let train_outcomes: Vec<crate::outcomes::Outcome> = match &table_replay {
        Some(tr) if tr.rules.is_empty() && !train_files.is_empty() => read_all(&train_files)?,
        _ => Vec::new(),
    };
    let train_by_id: HashMap<&str, &crate::outcomes::Outcome> = if train_files.is_empty() {
        test_rows.iter().map(|r| (r.id.as_str(), r)).collect()
    } else {
        train_outcomes.iter().map(|r| (r.id.as_str(), r)).collect()
    };
    // Learned decisions carry no rule: the cascade applies to them only when it names none.
    let train_cascade = table_replay
        .as_ref()
        .filter(|tr| tr.applies(None))
        .map(|tr| (tr, &train_by_id));
    // Agreement cascades, built per fold on its training prompts and offered as candidates.
    let cascades = if o.cascade && needs_learned && config.is_none() {
        cascade_setup(
            &test,
            &test_rows,
            &train,
            &train_files,
            &candidates,
            &served,
            &groups,
            &train_rows_of,
            agreement_compare(config.as_ref()),
            &mut notes,
        )?
    } else {
        None
    };
    if let Some(cs) = &cascades {
        for s in 0..cs.slots {
            let column = models.len() + s;
            let mut names: Vec<String> = cs.chains.iter().map(|c| cs.describe(&c[s])).collect();
            names.dedup();
            candidates.push(Candidate {
                name: format!("cascade-{}", s + 1),
                model: if names.len() == 1 {
                    names[0].clone()
                } else {
                    "chosen per fold".into()
                },
                column,
                columns: vec![column],
            });
        }
        for row in &mut served {
            let filler = row[strong].clone();
            row.extend(std::iter::repeat_n(filler, cs.slots));
        }
    }
    let is_single: Vec<bool> = (0..candidates.len()).map(|t| t < singles_n).collect();

    for (g, group) in groups.iter().enumerate() {
        let train_rows = train_rows_of(group);
        let mut fold_train = train.subset(&train_rows);
        // The candidates in this fold's order, cheapest first by its training costs when
        // cascades (whose cost is only known there) are among them.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        if let Some(cs) = &cascades {
            fold_train = cs.augment(&fold_train, &cs.chains[g], models.len());
            for &i in group {
                for (s, chain) in cs.chains[g].iter().enumerate() {
                    served[i][singles_n + s] = replay::replay(chain, &cs.test[i]);
                }
            }
            let mean = |t: usize| -> f64 {
                let col = candidates[t].column;
                let (sum, n) = (0..fold_train.len())
                    .map(|j| fold_train.cost(j, col))
                    .filter(|c| c.is_finite())
                    .fold((0.0, 0usize), |(s, n), c| (s + f64::from(c), n + 1));
                if n == 0 {
                    f64::INFINITY
                } else {
                    sum / n as f64
                }
            };
            let means: Vec<f64> = (0..candidates.len()).map(mean).collect();
            order.sort_by(|&a, &b| means[a].total_cmp(&means[b]).then(a.cmp(&b)));
        }
        let fold_candidates: Vec<Candidate> =
            order.iter().map(|&t| candidates[t].clone()).collect();
        // What a call to each costs (fold order), for the `value` bar: the training prompts'
        // recorded costs, else the mean over the priced test calls (prices, not outcomes).
        let fold_costs: Vec<f64> = order
            .iter()
            .map(|&t| {
                let col = candidates[t].column;
                let (sum, n) = (0..fold_train.len())
                    .map(|j| fold_train.cost(j, col))
                    .filter(|c| c.is_finite())
                    .fold((0.0, 0usize), |(s, n), c| (s + f64::from(c), n + 1));
                if n > 0 {
                    sum / n as f64
                } else {
                    costs
                        .iter()
                        .map(|r| r.get(t).copied().unwrap_or(0.0))
                        .sum::<f64>()
                        / costs.len().max(1) as f64
                }
            })
            .collect();
        let fold_single: Vec<bool> = order.iter().map(|&t| is_single[t]).collect();
        let fold_default = default_idx.and_then(|d| order.iter().position(|&t| t == d));
        let tier_cols: Vec<Vec<usize>> =
            fold_candidates.iter().map(|c| c.columns.clone()).collect();
        // The operating point (and, with `auto`, the method), chosen on this fold's training rows
        // by cross-validation inside them.
        let (bar, fold_variant) = choose_on_train(
            &fold_train,
            &fold_candidates,
            &fold_single,
            &variants,
            k,
            bar_kind,
            folds,
            o.seed,
            min_similarity,
            fold_default,
            o.output_tokens,
            config.as_ref(),
            train_cascade,
        )?;
        per_fold_bars.push(bar);
        per_fold_variants.push(fold_variant);
        if needs_learned {
            let predictor = Predictor::train(fold_train.clone(), fold_variant.method, k);
            for &i in group {
                if fixed[i].is_some() {
                    continue;
                }
                let plan = plans_for(
                    &predictor,
                    &[fold_variant],
                    test.vector(i),
                    test.features(i),
                    test.categories[i].as_deref(),
                    &tier_cols,
                    min_similarity,
                    default_idx,
                )
                .pop()
                .unwrap_or(Plan::Fixed(0));
                plans[i] = match plan {
                    Plan::Learned(p) if bar_kind == BarKind::Value => {
                        Plan::Priced(p, order.clone(), fold_costs.clone())
                    }
                    Plan::Learned(p) if cascades.is_some() => Plan::Ranked(p, order.clone()),
                    p => p,
                };
            }
        }
        // The top end of the curve: the single candidate with the best record on this fold's
        // training prompts.
        let best = best_on(&fold_train, &candidates[..singles_n]);
        for &i in group {
            if fixed[i].is_none() {
                top[i] = best;
            }
            selected_tier[i] = sweep::tier_at_point(&plans[i], top[i], bar, bar_kind).unwrap_or(0);
        }
    }
    for (i, p) in plans.iter().enumerate() {
        if fixed[i].is_none() {
            let name = match p {
                Plan::Learned(_) | Plan::Ranked(..) | Plan::Priced(..) => "learned",
                Plan::Fixed(_) => "default (learned abstained)",
            };
            *layers.entry(name.to_string()).or_default() += 1;
        }
    }

    let mut all_points = sweep::sweep(&plans, &served, bar_kind, strong);
    if top.iter().any(Option::is_some) {
        all_points.push(sweep::top_point(&plans, &served, &top, bar_kind, strong));
    }
    if per_fold_bars.iter().any(|&b| b >= sweep::TOP) {
        notes.push(format!(
            "operating point {}: on the training folds no cheaper point matched the best single model, so the learned layer's prompts go to it",
            sweep::TOP
        ));
    }
    let curve_points = sweep::thin(&all_points, REPORTED_POINTS);
    let n = test.len() as f64;
    let singles: Vec<Single> = candidates[..singles_n]
        .iter()
        .enumerate()
        .map(|(t, c)| {
            let scores: Vec<f64> = (0..test.len()).map(|i| raw_served[i][t].quality).collect();
            Single {
                name: c.name.clone(),
                quality: scores.iter().sum::<f64>() / n,
                standard_error: curve::standard_error(&scores),
                cost_usd: (0..test.len()).map(|i| raw_served[i][t].cost).sum(),
            }
        })
        .collect();
    let random = Point {
        point: f64::NAN,
        quality: singles.iter().map(|s| s.quality).sum::<f64>() / singles.len() as f64,
        cost_usd: singles.iter().map(|s| s.cost_usd).sum::<f64>() / singles.len() as f64,
        strong_share: 1.0 / singles.len() as f64,
    };
    let oracle = {
        let mut q = 0.0;
        let mut c = 0.0;
        let mut s = 0usize;
        for row in &raw_served {
            let row = &row[..singles_n];
            let best = row
                .iter()
                .map(|x| x.quality)
                .fold(f64::NEG_INFINITY, f64::max);
            let pick = row
                .iter()
                .filter(|x| x.quality >= best - 1e-12)
                .min_by(|a, b| a.cost.total_cmp(&b.cost))
                .unwrap_or(&row[0]);
            q += pick.quality;
            c += pick.cost;
            s += usize::from(pick.model == strong);
        }
        Point {
            point: f64::NAN,
            quality: q / n,
            cost_usd: c,
            strong_share: s as f64 / n,
        }
    };
    let cascade_reports: Vec<CascadeReport> = match &cascades {
        Some(cs) => (0..cs.slots)
            .map(|s| {
                let t = singles_n + s;
                let q: Vec<f64> = served.iter().map(|r| r[t].quality).collect();
                let mut chains: Vec<String> =
                    cs.chains.iter().map(|c| cs.describe(&c[s])).collect();
                chains.sort();
                chains.dedup();
                CascadeReport {
                    name: candidates[t].name.clone(),
                    chains,
                    quality: q.iter().sum::<f64>() / n,
                    standard_error: curve::standard_error(&q),
                    cost_usd: served.iter().map(|r| r[t].cost).sum(),
                    escalated: served
                        .iter()
                        .filter(|r| r[t].asked.first() != Some(&r[t].model))
                        .count() as f64
                        / n,
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let two_model = (candidates.len() == 2).then(|| {
        let (qw, qs) = (singles[0].quality, singles[1].quality);
        let pgr = curve::pgr_curve(&all_points, qw, qs);
        let gains: Vec<f64> = raw_served
            .iter()
            .map(|r| r[1].quality - r[0].quality)
            .collect();
        TwoModel {
            strong: candidates[1].name.clone(),
            weak: candidates[0].name.clone(),
            apgr: curve::apgr(&pgr),
            cpt50: curve::cpt(&pgr, 0.5),
            cpt80: curve::cpt(&pgr, 0.8),
            oracle_apgr: ranked_apgr(&gains, &raw_served, qw, qs, |i| gains[i]),
            // The mean over many random orders: one order of 72 prompts can land anywhere
            // between 0.4 and 0.6.
            random_apgr: {
                let mut rng = fastrand::Rng::with_seed(o.seed ^ 0x7261_6e64);
                let runs = 100;
                (0..runs)
                    .map(|_| {
                        let r: Vec<f64> = (0..gains.len()).map(|_| rng.f64()).collect();
                        ranked_apgr(&gains, &raw_served, qw, qs, |i| r[i])
                    })
                    .sum::<f64>()
                    / f64::from(runs)
            },
            pgr_curve: thin_pairs(&pgr, 201),
        }
    });
    let front = curve::frontier(&all_points);
    let below: Vec<String> = singles
        .iter()
        .filter(|s| {
            curve::quality_at(&front, s.cost_usd + 1e-12).is_none_or(|q| q < s.quality - 1e-9)
        })
        .map(|s| s.name.clone())
        .collect();
    let selected = {
        let (mut q, mut c) = (0.0, 0.0);
        for (i, &t) in selected_tier.iter().enumerate() {
            q += served[i][t].quality;
            c += served[i][t].cost;
        }
        let best = singles
            .iter()
            .max_by(|a, b| {
                a.quality
                    .total_cmp(&b.quality)
                    .then(b.cost_usd.total_cmp(&a.cost_usd))
            })
            .cloned();
        best.map(|b| {
            let mut bars = per_fold_bars.clone();
            bars.sort_by(f64::total_cmp);
            Selected {
                point: bars[bars.len() / 2],
                per_fold: per_fold_bars.clone(),
                quality: q / n,
                cost_usd: c,
                cost_share: if b.cost_usd > 0.0 {
                    c / b.cost_usd
                } else {
                    f64::NAN
                },
                matches_best: q / n >= b.quality - b.standard_error - 1e-12,
                best_single: b.name,
                best_quality: b.quality,
                best_standard_error: b.standard_error,
            }
        })
    };
    let cascade_reports: Vec<CascadeReport> =
        table_report.into_iter().chain(cascade_reports).collect();
    // Names of everything a prompt may ask: the candidates, then the table cascade's `agree`
    // model (which no tier need stand for).
    let asked_names: Vec<String> = candidates
        .iter()
        .map(|c| c.model.clone())
        .chain(
            table_replay
                .as_ref()
                .and_then(|t| t.second_model())
                .map(str::to_string),
        )
        .collect();
    let mut choices = Vec::new();
    for p in &curve_points {
        for (i, plan) in plans.iter().enumerate() {
            let t = sweep::tier_at_point(plan, top[i], p.point, bar_kind).unwrap_or(0);
            let s = &served[i][t];
            choices.push(ChoiceRow {
                point: p.point,
                id: test.ids[i].clone(),
                model: candidates[s.model].model.clone(),
                asked: s
                    .asked
                    .iter()
                    .map(|&a| asked_names.get(a).cloned().unwrap_or_default())
                    .collect(),
            });
        }
    }
    Ok(Evaluation {
        test: test_name,
        train: train_files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        prompts: test.len(),
        setting: if in_domain {
            format!("in-domain ({folds}-fold cross-validation)")
        } else {
            "held-out (trained on --train, tested on --test)".into()
        },
        folds: in_domain.then_some(folds),
        method: describe_methods(auto, weighted, &per_fold_variants),
        method_per_fold: per_fold_variants
            .iter()
            .map(|v| v.method.as_str())
            .collect(),
        category_weight_per_fold: per_fold_variants
            .iter()
            .map(|v| f64::from(v.category_weight))
            .collect(),
        embedder: embedder.name().into(),
        bar_kind: match bar_kind {
            BarKind::ShareOfBest => "share-of-best".into(),
            BarKind::Score => "score".into(),
            BarKind::Value => "value".into(),
        },
        candidates,
        layers,
        curve: curve_points,
        points: all_points,
        singles,
        cascades: cascade_reports,
        random,
        oracle,
        two_model,
        selected,
        above_single_models: below.is_empty(),
        below,
        notes,
        choices,
    })
}

/// The cascades of an evaluation: per fold (group of test prompts) the chains built on its
/// training prompts, padded to `slots` each, and every prompt's recorded answers.
struct Cascades {
    slots: usize,
    chains: Vec<Vec<replay::Chain>>,
    /// Per test prompt.
    test: Vec<replay::Recorded>,
    /// Per training prompt id.
    train: HashMap<String, replay::Recorded>,
    names: Vec<String>,
}

impl Cascades {
    fn describe(&self, c: &replay::Chain) -> String {
        let short = |t: usize| {
            let m = &self.names[t];
            m.rsplit('/').next().unwrap_or(m).to_string()
        };
        let mut parts = vec![short(c.first)];
        parts.extend(c.checkers.iter().map(|&t| short(t)));
        format!("{} agree, else {}", parts.join(" + "), short(c.premium))
    }

    /// The fold's training data with one more column per cascade: its replayed score and cost
    /// (`NaN` where a prompt's record is incomplete).
    fn augment(&self, d: &Dataset, chains: &[replay::Chain], width: usize) -> Dataset {
        let m = d.models.len();
        let extra = chains.len();
        let mut out = d.clone();
        out.models.truncate(width.min(m));
        out.models
            .extend((0..extra).map(|s| format!("cascade-{}", s + 1)));
        let w = out.models.len();
        out.scores = vec![f32::NAN; d.len() * w];
        out.costs = vec![f32::NAN; d.len() * w];
        for i in 0..d.len() {
            let keep = width.min(m);
            out.scores[i * w..i * w + keep].copy_from_slice(&d.scores[i * m..i * m + keep]);
            out.costs[i * w..i * w + keep].copy_from_slice(&d.costs[i * m..i * m + keep]);
            let Some(r) = self.train.get(&d.ids[i]).filter(|r| r.complete()) else {
                continue;
            };
            for (s, chain) in chains.iter().enumerate() {
                let served = replay::replay(chain, r);
                out.scores[i * w + keep + s] = served.quality as f32;
                out.costs[i * w + keep + s] = served.cost as f32;
            }
        }
        out
    }
}

/// What two recorded answers are compared on: the table's cascade agreement settings, else
/// `auto` at its default similarity.
fn agreement_compare(config: Option<&Config>) -> crate::answers::Compare {
    use crate::answers::Compare;
    use crate::config::AgreementCompare;
    let Some(a) = config
        .and_then(|c| c.routing.cascade.as_ref())
        .and_then(|c| c.agreement.as_ref())
    else {
        return Compare::Auto(80);
    };
    let pct = (a.min_similarity * 100.0).round().clamp(0.0, 100.0) as u8;
    match a.compare {
        AgreementCompare::Auto => Compare::Auto(pct),
        AgreementCompare::Exact => Compare::Exact,
        AgreementCompare::Choice => Compare::Choice,
        AgreementCompare::Numeric => Compare::Numeric,
        AgreementCompare::Similar => Compare::Similar(pct),
    }
}

fn recorded_answers(
    row: &crate::outcomes::Outcome,
    candidates: &[Candidate],
) -> Vec<Option<String>> {
    candidates
        .iter()
        .map(|c| row.response(&c.model).map(replay::answer_text))
        .collect()
}

/// Reads the recorded answers and builds each fold's cascades; `None` (with a note saying why)
/// where the outcome files cannot replay one.
#[allow(clippy::too_many_arguments)]
fn cascade_setup(
    test: &Dataset,
    test_rows: &[crate::outcomes::Outcome],
    train: &Dataset,
    train_files: &[PathBuf],
    candidates: &[Candidate],
    served: &[Vec<Served>],
    groups: &[Vec<usize>],
    train_rows_of: &dyn Fn(&[usize]) -> Vec<usize>,
    how: crate::answers::Compare,
    notes: &mut Vec<String>,
) -> Result<Option<Cascades>, String> {
    let has_answers = |r: &crate::outcomes::Outcome| {
        candidates
            .iter()
            .filter(|c| r.response(&c.model).is_some())
            .count()
            >= 2
    };
    if candidates.len() < 3 || !test_rows.iter().any(has_answers) {
        return Ok(None);
    }
    let test_rec: Vec<replay::Recorded> = (0..test.len())
        .map(|i| {
            let answers = test_rows
                .get(i)
                .map(|r| recorded_answers(r, candidates))
                .unwrap_or_else(|| vec![None; candidates.len()]);
            replay::Recorded::new(
                served[i].iter().map(|s| s.quality).collect(),
                served[i].iter().map(|s| s.cost).collect(),
                &answers,
                how,
            )
        })
        .collect();
    let mut train_rec: HashMap<String, replay::Recorded> = HashMap::new();
    if train_files.is_empty() {
        for (i, r) in test_rec.iter().enumerate() {
            train_rec.insert(test.ids[i].clone(), r.clone());
        }
    } else {
        let rows = read_all(train_files)?;
        let wanted: HashSet<&str> = train.ids.iter().map(String::as_str).collect();
        for row in rows.iter().filter(|r| wanted.contains(r.id.as_str())) {
            let quality = candidates
                .iter()
                .map(|c| row.scores.get(&c.model).copied().unwrap_or(f64::NAN))
                .collect();
            let cost = candidates
                .iter()
                .map(|c| row.cost(&c.model).unwrap_or(f64::NAN))
                .collect();
            let answers = recorded_answers(row, candidates);
            train_rec.insert(
                row.id.clone(),
                replay::Recorded::new(quality, cost, &answers, how),
            );
        }
    }
    let mut chains = Vec::new();
    for group in groups {
        let rows: Vec<&replay::Recorded> = train_rows_of(group)
            .iter()
            .filter_map(|&j| train_rec.get(&train.ids[j]))
            .filter(|r| r.complete())
            .collect();
        chains.push(replay::build(&rows, candidates.len()));
    }
    let slots = chains.iter().map(Vec::len).max().unwrap_or(0);
    if slots == 0 || chains.iter().any(Vec::is_empty) {
        notes.push(
            "no agreement cascade was replayed: on the training prompts no chain of cheap models adds quality for less than the best model costs alone (or their answers or costs are not recorded)".into(),
        );
        return Ok(None);
    }
    for c in &mut chains {
        while c.len() < slots {
            let last = c[c.len() - 1].clone();
            c.push(last);
        }
    }
    notes.push(format!(
        "agreement cascades replayed from the recorded answers ({slots} chains per fold, built on its training prompts) are candidates of the learned layer"
    ));
    Ok(Some(Cascades {
        slots,
        chains,
        test: test_rec,
        train: train_rec,
        names: candidates.iter().map(|c| c.model.clone()).collect(),
    }))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn concat(mut a: Dataset, b: Dataset) -> Dataset {
    if a.is_empty() {
        return b;
    }
    let models: Vec<String> = {
        let mut m = a.models.clone();
        for x in &b.models {
            if !m.contains(x) {
                m.push(x.clone());
            }
        }
        m
    };
    a = align(&a, &models);
    let b = align(&b, &models);
    a.ids.extend(b.ids);
    a.previews.extend(b.previews);
    a.categories.extend(b.categories);
    a.features.extend(b.features);
    a.scores.extend(b.scores);
    a.costs.extend(b.costs);
    a.vectors.extend(b.vectors);
    a
}

/// The data with its columns laid out as `models` (missing ones all `NaN`).
fn align(d: &Dataset, models: &[String]) -> Dataset {
    let map: Vec<Option<usize>> = models.iter().map(|m| d.column(m)).collect();
    let mut out = d.clone();
    out.models = models.to_vec();
    out.scores = (0..d.len())
        .flat_map(|i| {
            map.iter()
                .map(move |c| c.map_or(f32::NAN, |c| d.score(i, c)))
        })
        .collect();
    out.costs = (0..d.len())
        .flat_map(|i| {
            map.iter()
                .map(move |c| c.map_or(f32::NAN, |c| d.cost(i, c)))
        })
        .collect();
    out
}

fn no_learned_config() -> crate::config::LearnedConfig {
    crate::config::LearnedConfig {
        outcomes: Vec::new(),
        embedder: EmbedderConfig::default(),
        method: LearnedMethod::default(),
        bar: serde_saphyr::Spanned::new(
            crate::config::DEFAULT_BAR,
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        ),
        bar_kind: BarKind::default(),
        tiers: BTreeMap::new(),
        ignore_models: Vec::new(),
        k: crate::config::DEFAULT_K,
        category_weight: crate::config::DEFAULT_CATEGORY_WEIGHT,
        min_similarity: None,
        cache: crate::config::CacheSetting::Off,
    }
}

fn tiers_to_candidates(
    mapping: &BTreeMap<String, Vec<usize>>,
    models: &[String],
) -> Vec<Candidate> {
    mapping
        .iter()
        .filter_map(|(tier, cols)| {
            let first = *cols.first()?;
            Some(Candidate {
                name: tier.clone(),
                model: models[first].clone(),
                column: first,
                columns: cols.clone(),
            })
        })
        .collect()
}

/// USD per (prompt, candidate): the recorded cost, else the prompt's tokens (and the response's,
/// or `output_tokens`) at the model's price in the table or the bundled price table.
fn cost_table(
    test: &Dataset,
    candidates: &[Candidate],
    rows: &[crate::outcomes::Outcome],
    file: &str,
    output_tokens: u64,
    config: Option<&Config>,
) -> Result<Vec<Vec<f64>>, String> {
    let mut prices: Vec<Option<crate::config::Price>> = Vec::new();
    for c in candidates {
        prices.push(price_of(c, config));
    }
    let mut out = vec![vec![0.0; candidates.len()]; test.len()];
    for (i, row_out) in out.iter_mut().enumerate() {
        for (t, c) in candidates.iter().enumerate() {
            let recorded = test.cost(i, c.column);
            row_out[t] = if recorded.is_finite() {
                f64::from(recorded)
            } else {
                let Some(p) = prices[t] else {
                    return Err(format!(
                        "{file}: no recorded cost for `{}` and no price for it (give the table's model a price, or add costs_usd to the outcomes)",
                        c.model
                    ));
                };
                let row = rows.get(i);
                let input = row.map_or(0, |r| crate::tokens::count(&r.prompt()));
                let output = row
                    .and_then(|r| r.response(&c.model))
                    .map_or(output_tokens, crate::tokens::count);
                (input as f64 * p.input + output as f64 * p.output) / 1e6
            };
        }
    }
    Ok(out)
}

fn price_of(c: &Candidate, config: Option<&Config>) -> Option<crate::config::Price> {
    if let Some(cfg) = config {
        if let Some(m) = cfg
            .tiers
            .get(&c.name)
            .and_then(|t| t.models.first())
            .and_then(|m| cfg.model(&m.value))
        {
            return Some(m.price);
        }
    }
    let table = crate::config::prices::bundled().ok()?;
    let short = c.model.rsplit('/').next().unwrap_or(&c.model);
    table.get(&c.model).or_else(|| table.get(short)).copied()
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<crate::outcomes::Outcome>, String> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(crate::outcomes::read(p).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The tier rules or the semantic layer give a prompt, or `None` where the learned layer (or,
/// without one, the default) decides; the layer's name, and the rule's when a rule decided.
async fn fixed_decision(
    router: &Router,
    row: &crate::outcomes::Outcome,
    candidates: &[Candidate],
    default_idx: Option<usize>,
    has_learned: bool,
) -> Result<(Option<usize>, String, Option<String>), String> {
    // The recorded category travels as the task type, as a client that knows it would send it.
    let body = match &row.category {
        Some(c) => {
            serde_json::json!({"model": crate::openai::AUTO_MODEL, "messages": row.messages, "metadata": {"task_type": c}})
        }
        None => serde_json::json!({"model": crate::openai::AUTO_MODEL, "messages": row.messages}),
    };
    let req: crate::openai::ChatRequest = serde_json::from_value(body)
        .map_err(|e| format!("prompt {:?}: not a chat request: {e}", row.id))?;
    let d = router
        .decide(&req, &http::HeaderMap::new())
        .await
        .ok_or_else(|| "the table routes no `auto` request".to_string())?;
    let idx = |tier: &str| {
        candidates.iter().position(|c| c.name == tier).ok_or_else(|| {
            format!(
                "prompt {:?} is routed to tier `{tier}`, which has no model in the outcome files",
                row.id
            )
        })
    };
    let rule = d.rule.as_deref().map(str::to_string);
    match d.layer {
        Layer::Default if has_learned => Ok((None, String::new(), rule)),
        Layer::Default => Ok((default_idx.or(Some(idx(&d.tier)?)), "default".into(), rule)),
        l => Ok((Some(idx(&d.tier)?), l.as_str().into(), rule)),
    }
}

/// A way of predicting that `auto` compares: a method and the weight of the category's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    pub method: LearnedMethod,
    pub category_weight: f32,
}

/// Category weights `auto` tries where the prompts have categories.
const AUTO_CATEGORY_WEIGHTS: [f32; 4] = [0.0, 0.3, 0.6, 0.9];

/// One plan per variant (see [`Predictor::predict_methods`]).
#[allow(clippy::too_many_arguments)]
fn plans_for(
    predictor: &Predictor,
    variants: &[Variant],
    v: &[f32],
    features: &[f32],
    category: Option<&str>,
    tier_cols: &[Vec<usize>],
    min_similarity: f32,
    default_idx: Option<usize>,
) -> Vec<Plan> {
    let look = usize::from(min_similarity.is_finite());
    let mut methods: Vec<LearnedMethod> = Vec::new();
    for x in variants {
        if !methods.contains(&x.method) {
            methods.push(x.method);
        }
    }
    let (all, nearest, _) = predictor.predict_methods(v, features, category, look, &methods, None);
    variants
        .iter()
        .map(|x| {
            if nearest < min_similarity {
                if let Some(d) = default_idx {
                    return Plan::Fixed(d);
                }
            }
            let m = methods.iter().position(|&m| m == x.method).unwrap_or(0);
            let scores = predictor.blend(&all[m], category, x.category_weight);
            Plan::Learned(
                tier_cols
                    .iter()
                    .map(|c| learned::tier_score(&scores, c))
                    .collect(),
            )
        })
        .collect()
}

/// What the predictor is trained as to serve every variant at once.
fn training_method(variants: &[Variant]) -> LearnedMethod {
    match variants.first() {
        Some(first) if variants.iter().all(|v| v.method == first.method) => first.method,
        _ => LearnedMethod::Ensemble,
    }
}

/// Fold of each prompt: a hash of its id and the seed, so folds do not depend on file order.
fn fold_assignment(ids: &[String], folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed), i))
        .collect();
    order.sort_unstable();
    let mut out = vec![0; ids.len()];
    for (rank, (_, i)) in order.into_iter().enumerate() {
        out[i] = rank % folds;
    }
    out
}

/// The bar to deploy, and the method, chosen on `train` alone: its prompts are predicted by
/// cross-validation ([`INNER_REPEATS`] times, with other folds each time) by every method in
/// `methods`, the one whose curve over those predictions is best ([`method_merit`]) kept, its bar
/// swept, and the cheapest point whose quality is within one standard error of the best single
/// candidate (on these prompts) taken.
#[allow(clippy::too_many_arguments)]
fn choose_on_train(
    train: &Dataset,
    candidates: &[Candidate],
    is_single: &[bool],
    variants: &[Variant],
    k: usize,
    kind: BarKind,
    folds: usize,
    seed: u64,
    min_similarity: f32,
    default_idx: Option<usize>,
    output_tokens: u64,
    config: Option<&Config>,
    table_cascade: Option<(
        &table_cascade::Replay,
        &HashMap<&str, &crate::outcomes::Outcome>,
    )>,
) -> Result<(f64, Variant), String> {
    let first = variants.first().copied().unwrap_or(Variant {
        method: LearnedMethod::default(),
        category_weight: learned::CATEGORY_WEIGHT,
    });
    let usable: Vec<usize> = (0..train.len())
        .filter(|&i| {
            candidates
                .iter()
                .all(|c| train.score(i, c.column).is_finite())
        })
        .collect();
    if usable.len() < folds * 2 {
        return Ok((crate::config::DEFAULT_BAR, first));
    }
    let data = train.subset(&usable);
    let tier_cols: Vec<Vec<usize>> = candidates.iter().map(|c| c.columns.clone()).collect();
    // Every training prompt predicted once per repeat of the inner cross-validation, each repeat
    // with other folds; the curve swept over all of them is the mean of the repeats' curves.
    let repeats = INNER_REPEATS;
    let n = data.len();
    let mut plans = vec![vec![Plan::Fixed(0); n * repeats]; variants.len()];
    for r in 0..repeats {
        let fold_of = fold_assignment(&data.ids, folds, seed.wrapping_add(1 + r as u64));
        for f in 0..folds {
            let inner: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
            let predictor = Predictor::train(data.subset(&inner), training_method(variants), k);
            for i in (0..n).filter(|&i| fold_of[i] == f) {
                let per_method = plans_for(
                    &predictor,
                    variants,
                    data.vector(i),
                    data.features(i),
                    data.categories[i].as_deref(),
                    &tier_cols,
                    min_similarity,
                    default_idx,
                );
                for (m, p) in per_method.into_iter().enumerate() {
                    plans[m][r * n + i] = p;
                }
            }
        }
    }
    // Costs of training prompts: recorded, else estimated like the test's (without responses).
    let costs: Vec<Vec<f64>> = (0..data.len())
        .map(|i| {
            candidates
                .iter()
                .map(|c| {
                    let r = data.cost(i, c.column);
                    if r.is_finite() {
                        f64::from(r)
                    } else {
                        price_of(c, config).map_or(0.0, |p| {
                            (data.previews[i].len() as f64 / 4.0 * p.input
                                + output_tokens as f64 * p.output)
                                / 1e6
                        })
                    }
                })
                .collect()
        })
        .collect();
    if kind == BarKind::Value {
        let per_call: Vec<f64> = (0..candidates.len())
            .map(|t| costs.iter().map(|r| r[t]).sum::<f64>() / costs.len().max(1) as f64)
            .collect();
        let identity: Vec<usize> = (0..candidates.len()).collect();
        for p in plans.iter_mut().flatten() {
            if let Plan::Learned(pred) = p {
                *p = Plan::Priced(std::mem::take(pred), identity.clone(), per_call.clone());
            }
        }
    }
    let mut served: Vec<Vec<Served>> = (0..data.len())
        .map(|i| {
            (0..candidates.len())
                .map(|t| Served {
                    model: t,
                    asked: vec![t],
                    quality: f64::from(data.score(i, candidates[t].column)),
                    cost: costs[i][t],
                })
                .collect()
        })
        .collect();
    let best_single = best_single_bound(&served, candidates.len(), is_single);
    // The table's cascade answers for its cheap tier, as it would on the test prompts.
    if let Some((tr, rows)) = table_cascade {
        let (f, t) = (tr.cascade.from, tr.cascade.to);
        for (i, row) in served.iter_mut().enumerate() {
            let Some(outcome) = rows.get(data.ids[i].as_str()) else {
                continue;
            };
            let (a, b) = (&row[f], &row[t]);
            if let Some(s) = tr.replay(
                outcome,
                (a.quality, a.cost),
                (b.quality, b.cost),
                output_tokens,
            ) {
                row[f] = s;
            }
        }
    }
    let served: Vec<Vec<Served>> = (0..repeats).flat_map(|_| served.iter().cloned()).collect();
    let singles: Vec<Candidate> = candidates
        .iter()
        .zip(is_single)
        .filter(|(_, s)| **s)
        .map(|(c, _)| c.clone())
        .collect();
    let strong = candidates.len() - 1;
    let curve_of = |plans: &[Plan]| {
        let mut points = sweep::sweep(plans, &served, kind, strong);
        // The top end, as on the test prompts: the best single candidate of these prompts.
        if let Some(best) = best_on(&data, &singles) {
            let at = candidates
                .iter()
                .position(|c| c.name == singles[best].name)
                .unwrap_or(best);
            let top: Vec<Option<usize>> = plans
                .iter()
                .map(|p| (!matches!(p, Plan::Fixed(_))).then_some(at))
                .collect();
            points.push(sweep::top_point(plans, &served, &top, kind, strong));
        }
        points
    };
    let curves: Vec<Vec<Point>> = plans.iter().map(|p| curve_of(p)).collect();
    let single_points: Vec<(f64, f64)> = (0..candidates.len())
        .filter(|&t| is_single.get(t).copied().unwrap_or(true))
        .map(|t| {
            let q = served.iter().map(|r| r[t].quality).sum::<f64>() / served.len().max(1) as f64;
            let c = served.iter().map(|r| r[t].cost).sum::<f64>();
            (c, q)
        })
        .collect();
    let chosen = (0..variants.len())
        .max_by(|&a, &b| {
            method_merit(&curves[a], &single_points, best_single, candidates.len())
                .partial_cmp(&method_merit(
                    &curves[b],
                    &single_points,
                    best_single,
                    candidates.len(),
                ))
                .unwrap_or(std::cmp::Ordering::Equal)
                // The earlier variant of equal merit (max_by keeps the last of equals).
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let bar =
        curve::cheapest_reaching(&curves[chosen], best_single).map_or(sweep::TOP, |p| p.point);
    Ok((bar, variants.get(chosen).copied().unwrap_or(first)))
}

/// How good a method's cross-validated curve is, for `auto` (higher is better). With two
/// candidates, the APGR of the curve, the measure the two-model report leads with. With more,
/// what the operating point is chosen for: the cost of the cheapest point within one standard
/// error of the best single candidate (`bound`), lower better; curves that reach it beat those
/// that do not, and between equals (or those that never reach it) the mean quality over the
/// cost range of the single candidates (`singles`: their (cost, quality)) decides.
fn method_merit(
    points: &[Point],
    singles: &[(f64, f64)],
    bound: f64,
    candidates: usize,
) -> (f64, f64) {
    let (lo, hi) = singles
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.0), hi.max(s.0))
        });
    let floor = singles
        .iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0.0, |s| s.1);
    if let ([a, b], 2) = (singles, candidates) {
        let (weak, strong) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        return (
            curve::apgr(&curve::pgr_curve(points, weak.1, strong.1)),
            0.0,
        );
    }
    let front = curve::frontier(points);
    let steps = 100;
    let area = if hi > lo {
        (0..=steps)
            .map(|j| {
                let c = lo + (hi - lo) * f64::from(j) / f64::from(steps);
                curve::quality_at(&front, c).unwrap_or(floor).max(floor)
            })
            .sum::<f64>()
            / f64::from(steps + 1)
    } else {
        0.0
    };
    let reach = curve::cheapest_reaching(points, bound).map_or(f64::NEG_INFINITY, |p| -p.cost_usd);
    (reach, area)
}

/// Repeats of the cross-validation inside the training data that chooses the operating point:
/// which prompts share a fold moves each prediction, and the point chosen with them.
const INNER_REPEATS: usize = 3;

/// The index (into `singles`) of the candidate with the best mean score on `data`, the cheaper
/// (earlier) one on a tie.
fn best_on(data: &Dataset, singles: &[Candidate]) -> Option<usize> {
    let mean = |c: &Candidate| {
        let (s, n) = (0..data.len())
            .map(|j| data.score(j, c.column))
            .filter(|x| x.is_finite())
            .fold((0.0f64, 0usize), |(s, n), x| (s + f64::from(x), n + 1));
        if n == 0 {
            f64::NEG_INFINITY
        } else {
            s / n as f64
        }
    };
    let means: Vec<f64> = singles.iter().map(mean).collect();
    (0..singles.len()).fold(None, |best: Option<usize>, t| match best {
        Some(b) if means[b] >= means[t] => Some(b),
        _ if means[t].is_finite() => Some(t),
        _ => best,
    })
}

/// The best single candidate's mean quality less one standard error: the quality an operating
/// point must reach to count as matching it.
fn best_single_bound(served: &[Vec<Served>], candidates: usize, is_single: &[bool]) -> f64 {
    let best = (0..candidates)
        .filter(|&t| is_single.get(t).copied().unwrap_or(true))
        .map(|t| {
            let s: Vec<f64> = served.iter().map(|r| r[t].quality).collect();
            (
                s.iter().sum::<f64>() / s.len() as f64,
                curve::standard_error(&s),
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((1.0, 0.0));
    best.0 - best.1
}

/// APGR of a router that ranks prompts by `key` (highest to the strong model first).
fn ranked_apgr(
    gains: &[f64],
    served: &[Vec<Served>],
    qw: f64,
    qs: f64,
    key: impl Fn(usize) -> f64,
) -> f64 {
    let n = gains.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    let mut q = served.iter().map(|r| r[0].quality).sum::<f64>();
    let mut pts = vec![Point {
        point: 0.0,
        quality: q / n as f64,
        cost_usd: 0.0,
        strong_share: 0.0,
    }];
    let mut k = 0;
    while k < n {
        let v = key(idx[k]);
        while k < n && key(idx[k]) == v {
            q += gains[idx[k]];
            k += 1;
        }
        pts.push(Point {
            point: v,
            quality: q / n as f64,
            cost_usd: 0.0,
            strong_share: k as f64 / n as f64,
        });
    }
    curve::apgr(&curve::pgr_curve(&pts, qw, qs))
}

fn thin_pairs(v: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if v.len() <= max {
        return v.to_vec();
    }
    (0..max).map(|j| v[j * (v.len() - 1) / (max - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(cost: f64, quality: f64, strong_share: f64) -> Point {
        Point {
            point: 0.0,
            quality,
            cost_usd: cost,
            strong_share,
        }
    }

    #[test]
    fn auto_prefers_the_method_whose_training_curve_is_better() {
        // Two models (weak 0.5 at cost 1, strong 1.0 at cost 10): a curve that recovers the gap
        // early beats one that climbs like random routing.
        let singles = [(1.0, 0.5), (10.0, 1.0)];
        let early = [pt(1.0, 0.5, 0.0), pt(3.0, 0.9, 0.2), pt(10.0, 1.0, 1.0)];
        let random = [pt(1.0, 0.5, 0.0), pt(10.0, 1.0, 1.0)];
        let m = |p: &[Point]| method_merit(p, &singles, 0.95, 2);
        assert!(m(&early) > m(&random), "{:?} {:?}", m(&early), m(&random));
        assert!((m(&random).0 - 0.5).abs() < 1e-9);
        // More models: the cheaper point within reach of the best wins; one that never reaches
        // it loses whatever its area.
        let (s3, bound) = ([(1.0, 0.5), (5.0, 0.7), (10.0, 1.0)], 0.95);
        let m3 = |p: &[Point]| method_merit(p, &s3, bound, 3);
        let cheap = [pt(1.0, 0.5, 0.0), pt(4.0, 0.96, 0.3)];
        let dear = [pt(1.0, 0.5, 0.0), pt(2.0, 0.94, 0.1), pt(8.0, 0.96, 0.7)];
        let never = [pt(1.0, 0.9, 0.0), pt(2.0, 0.94, 0.1)];
        assert!(m3(&cheap) > m3(&dear));
        assert!(m3(&dear) > m3(&never));
    }

    #[test]
    fn the_report_names_the_method_auto_chose() {
        use LearnedMethod::{Ensemble, Knn, Linear};
        let v = |method, category_weight| Variant {
            method,
            category_weight,
        };
        assert_eq!(describe_methods(false, false, &[v(Knn, 0.6); 2]), "knn");
        assert_eq!(
            describe_methods(true, false, &[v(Linear, 0.6); 2]),
            "auto: linear"
        );
        assert_eq!(
            describe_methods(
                true,
                true,
                &[v(Ensemble, 0.3), v(Knn, 0.6), v(Ensemble, 0.3)]
            ),
            "auto: ensemble (category weight 0.3) ×2, knn (category weight 0.6) ×1"
        );
    }
}
