//! Layer 3: learned routing. Outcome files record how every model scored on real prompts (Step 0,
//! or a public set). For a request, the layer predicts each tier's score from the recorded
//! outcomes of similar prompts and picks the **cheapest tier whose prediction clears the bar**.
//! When no recorded prompt is similar enough to say anything, it abstains and the default decides.
//!
//! - `data`: outcome files → columns of scores and costs, prompts embedded once (`cache`).
//! - `knn`: the nearest recorded prompts and their similarity-weighted scores.
//! - `linear`: a logistic model per model on the embedding and the prompt's difficulty features.
//! - `ensemble`: the mean of the two.
//! - here: the trained predictor, the tier table, and the choice against the bar.
//!
//! Prediction and choice are pure functions of vectors, so `switchyard eval` trains the same
//! predictor on cross-validation folds and replays the same choice without an embedder call.
//!
//! Must not import `dispatch`, `providers` or anything above `routing`.

pub mod cache;
pub mod data;
pub mod knn;
pub mod linear;

pub use data::Dataset;
pub use knn::Neighbour;

use crate::config::{BarKind, CacheSetting, Config, LearnedConfig, LearnedMethod};
use crate::embed::{EmbedError, Embedder};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A trained predictor: per-model expected scores for an embedded prompt.
#[derive(Debug, Clone)]
pub struct Predictor {
    data: Dataset,
    prior: Vec<f32>,
    /// Per category (task type) of the recorded prompts: mean score per model, shrunk towards
    /// `prior`. A request that names its task type (`metadata.task_type`) gets its category's.
    categories: BTreeMap<String, Vec<f32>>,
    linear: Option<linear::Linear>,
    /// How far `knn` trusts the neighbours over the prior, estimated on the data.
    shrink: Option<knn::Shrinkage>,
    method: LearnedMethod,
    k: usize,
    category_weight: f32,
}

/// Pseudo-count of the overall mean in each category's mean: a category with five prompts says
/// half of what it would with many.
const CATEGORY_SHRINK: f32 = 5.0;
/// Default weight of the category's mean against the prompt's own prediction, when the request
/// names a category the data has: a task type's record is the steadier signal, the prompt's
/// neighbours tell it apart within the type. `routing.learned.category_weight` sets it, and
/// `switchyard eval --method auto` chooses it on the training folds.
pub const CATEGORY_WEIGHT: f32 = crate::config::DEFAULT_CATEGORY_WEIGHT;

/// What the predictor says about one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScores {
    /// Per model column of the training data.
    pub scores: Vec<f32>,
    /// Similarity of the most similar recorded prompt (for abstaining); `NaN` when the
    /// neighbours were not looked up.
    pub nearest: f32,
    pub neighbours: Vec<Neighbour>,
}

impl Predictor {
    pub fn train(data: Dataset, method: LearnedMethod, k: usize) -> Predictor {
        Predictor::train_cached(data, method, k, None)
    }

    /// [`train`](Self::train), reusing `linear` weights trained on the same inputs before (kept in
    /// `cache_dir`): training is most of a warm start on large data.
    pub fn train_cached(
        data: Dataset,
        method: LearnedMethod,
        k: usize,
        cache_dir: Option<&Path>,
    ) -> Predictor {
        let prior = knn::model_means(&data);
        let categories = category_means(&data, &prior);
        let linear = match method.uses_weights() {
            false => None,
            true => {
                let params = linear::Params::default();
                let key = cache_dir.map(|d| (d, linear::Linear::key(&data, params)));
                let cached = key
                    .and_then(|(d, k)| cache::read_blob(d, k, "lin"))
                    .and_then(|b| linear::Linear::from_bytes(&b));
                Some(cached.unwrap_or_else(|| {
                    let l = linear::Linear::train(&data, params);
                    if let Some((d, k)) = key {
                        if let Err(e) = cache::write_blob(d, k, "lin", &l.to_bytes()) {
                            tracing::warn!(
                                "learned layer: cannot cache the trained weights in {}: {e}",
                                d.display()
                            );
                        }
                    }
                    l
                }))
            }
        };
        let shrink = method
            .uses_neighbours()
            .then(|| knn::shrinkage(&data, k.max(1), &prior));
        Predictor {
            data,
            prior,
            categories,
            linear,
            shrink,
            method,
            k: k.max(1),
            category_weight: CATEGORY_WEIGHT,
        }
    }

    /// The same predictor with another weight of the category's record (clamped to [0, 1]).
    #[must_use]
    pub fn with_category_weight(mut self, w: f32) -> Predictor {
        self.category_weight = if w.is_finite() {
            w.clamp(0.0, 1.0)
        } else {
            CATEGORY_WEIGHT
        };
        self
    }

    /// Whether any recorded prompt has a category (only then does the category weight matter).
    pub fn has_categories(&self) -> bool {
        !self.categories.is_empty()
    }

    /// `scores` with the category's record blended in at `weight`; unchanged when the category
    /// is not in the data.
    pub fn blend(&self, scores: &[f32], category: Option<&str>, weight: f32) -> Vec<f32> {
        match category.and_then(|c| self.categories.get(c)) {
            Some(cat) => scores
                .iter()
                .zip(cat)
                .map(|(s, c)| weight * c + (1.0 - weight) * s)
                .collect(),
            None => scores.to_vec(),
        }
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    pub fn method(&self) -> LearnedMethod {
        self.method
    }

    /// Predicted scores for an embedded prompt with these `features` (`data::prompt_features`),
    /// of `category` when the request names one.
    ///
    /// `neighbours`: how many of the most similar recorded prompts to return (and, for `knn`, to
    /// predict from). Finding them reads every recorded vector, so the `linear` method asks for
    /// none on the request path unless the layer abstains by similarity.
    pub fn predict_with(
        &self,
        v: &[f32],
        features: &[f32],
        category: Option<&str>,
        neighbours: usize,
    ) -> ModelScores {
        let (mut all, nearest, found) = self.predict_methods(
            v,
            features,
            category,
            neighbours,
            &[self.method],
            Some(self.category_weight),
        );
        ModelScores {
            scores: all.pop().unwrap_or_default(),
            nearest,
            neighbours: found,
        }
    }

    /// The predictions of several methods at once, each one that this predictor was trained
    /// for (an `ensemble` predictor serves all three); the neighbours are looked up once. Used
    /// to compare methods on the same folds. A method it was not trained for predicts the prior.
    /// `weight`: the category's record blended in at this weight, or (`None`) not at all, for
    /// the caller to [`blend`](Self::blend) at several.
    pub fn predict_methods(
        &self,
        v: &[f32],
        features: &[f32],
        category: Option<&str>,
        neighbours: usize,
        methods: &[LearnedMethod],
        weight: Option<f32>,
    ) -> (Vec<Vec<f32>>, f32, Vec<Neighbour>) {
        let need_knn = methods.iter().any(|m| m.uses_neighbours()) && self.shrink.is_some();
        let want = if need_knn {
            self.k.max(neighbours)
        } else {
            neighbours
        };
        let found = if want > 0 {
            knn::nearest(&self.data, v, want)
        } else {
            Vec::new()
        };
        let nearest = found.first().map_or(f32::NAN, |n| n.similarity);
        let by_knn = need_knn.then(|| {
            let k = self.k.min(found.len());
            knn::predict(&self.data, &found[..k], &self.prior, self.shrink.as_ref())
        });
        let by_linear = self
            .linear
            .as_ref()
            .filter(|_| methods.iter().any(|m| m.uses_weights()))
            .map(|l| l.predict(v, features));
        let all = methods
            .iter()
            .map(|m| {
                let scores = match (m, &by_knn, &by_linear) {
                    (LearnedMethod::Knn, Some(k), _) => k.clone(),
                    (LearnedMethod::Linear, _, Some(l)) => l.clone(),
                    (LearnedMethod::Ensemble, Some(k), Some(l)) => {
                        k.iter().zip(l).map(|(a, b)| (a + b) / 2.0).collect()
                    }
                    _ => self.prior.clone(),
                };
                match weight {
                    Some(w) => self.blend(&scores, category, w),
                    None => scores,
                }
            })
            .collect();
        (all, nearest, found)
    }

    /// Predicted scores, with the nearest recorded prompts only where the method needs them.
    pub fn predict(&self, v: &[f32], features: &[f32], category: Option<&str>) -> ModelScores {
        self.predict_with(v, features, category, 0)
    }
}

fn category_means(data: &Dataset, prior: &[f32]) -> BTreeMap<String, Vec<f32>> {
    let m = data.models.len();
    let mut acc: BTreeMap<&str, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for i in 0..data.len() {
        let Some(c) = data.categories[i].as_deref() else {
            continue;
        };
        let (sum, n) = acc.entry(c).or_insert_with(|| (vec![0.0; m], vec![0.0; m]));
        for col in 0..m {
            let s = data.score(i, col);
            if s.is_finite() {
                sum[col] += s;
                n[col] += 1.0;
            }
        }
    }
    acc.into_iter()
        .map(|(c, (sum, n))| {
            let means = (0..m)
                .map(|col| {
                    let p = prior.get(col).copied().unwrap_or(0.0);
                    (sum[col] + CATEGORY_SHRINK * p) / (n[col] + CATEGORY_SHRINK)
                })
                .collect();
            (c.to_string(), means)
        })
        .collect()
}

/// How a tier's prediction is compared with the bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub value: f64,
    pub kind: BarKind,
}

/// The tier (index into `predicted`, which is ordered cheapest first) the bar picks: the
/// cheapest whose prediction clears it, or with `Value` the best prediction less its price
/// (`costs`: what a call to each tier costs, same order). With `Score`, when none clears, the
/// best-predicted tier: the bar is out of reach for this prompt, so the best chance of a good
/// answer is the one worth paying for.
pub fn choose(predicted: &[f32], costs: &[f64], bar: Bar) -> Option<usize> {
    let best = predicted
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))?;
    let need = match bar.kind {
        BarKind::ShareOfBest => bar.value * f64::from(*best.1),
        BarKind::Score => bar.value,
        BarKind::Value => return Some(by_value(predicted, costs, bar.value)),
    };
    // A tiny tolerance, so that a bar of 1.0 with share-of-best still picks the cheapest of
    // tiers predicted equally well.
    predicted
        .iter()
        .position(|p| p.is_finite() && f64::from(*p) >= need - 1e-9)
        .or(Some(best.0))
}

/// Each cost as a share of the dearest (all zero when none is known to cost anything).
pub fn relative_costs(costs: &[f64]) -> Vec<f64> {
    let max = costs
        .iter()
        .copied()
        .filter(|c| c.is_finite())
        .fold(0.0, f64::max);
    costs
        .iter()
        .map(|&c| {
            if max > 0.0 && c.is_finite() {
                c / max
            } else {
                0.0
            }
        })
        .collect()
}

/// The price of quality a `Value` bar stands for: `λ = (1 − bar) / bar`, infinite at 0.
pub fn value_lambda(bar: f64) -> f64 {
    if bar <= 0.0 {
        f64::INFINITY
    } else {
        ((1.0 - bar) / bar).max(0.0)
    }
}

/// The tier with the best `predicted − λ · relative cost` (the cheaper on a tie); `costs`
/// missing for a tier counts as free.
fn by_value(predicted: &[f32], costs: &[f64], bar: f64) -> usize {
    let rel = relative_costs(costs);
    let rc = |t: usize| rel.get(t).copied().unwrap_or(0.0);
    let lambda = value_lambda(bar);
    let mut order: Vec<usize> = (0..predicted.len())
        .filter(|&t| predicted[t].is_finite())
        .collect();
    order.sort_by(|&a, &b| rc(a).total_cmp(&rc(b)).then(a.cmp(&b)));
    // Cheapest first, so a later tier must do strictly better to win a tie.
    let score = |t: usize| f64::from(predicted[t]);
    let mut best: Option<usize> = None;
    for t in order {
        let better = match best {
            None => true,
            // Only the cost counts: the cheapest, the better predicted among equally cheap.
            Some(b) if lambda.is_infinite() => rc(t) <= rc(b) && score(t) > score(b),
            Some(b) => score(t) - lambda * rc(t) > score(b) - lambda * rc(b) + 1e-12,
        };
        if better {
            best = Some(t);
        }
    }
    best.unwrap_or(0)
}

/// One tier as the layer sees it: the outcome columns standing for it and its cost rank.
#[derive(Debug, Clone)]
pub struct LearnedTier {
    pub name: Arc<str>,
    pub columns: Vec<usize>,
    /// What a call is expected to cost (USD), for ordering tiers cheapest first.
    pub cost: f64,
}

/// The layer's verdict on one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Predicted score per tier, cheapest tier first.
    pub tiers: Vec<(Arc<str>, f32)>,
    /// The tier chosen and its prediction; `None` when the layer abstained.
    pub chosen: Option<(Arc<str>, f32)>,
    /// The most similar recorded prompt's similarity.
    pub nearest: f32,
    pub neighbours: Vec<Neighbour>,
}

pub struct Learned {
    embedder: Embedder,
    predictor: Predictor,
    /// Cheapest first.
    tiers: Vec<LearnedTier>,
    bar: Bar,
    /// What a call to each tier costs, in `tiers`' order (for the `value` bar).
    costs: Vec<f64>,
    min_similarity: Option<f32>,
    files: Vec<String>,
}

impl Learned {
    /// Reads the outcome files (relative to `base_dir`), maps their models to the table's
    /// tiers, embeds the prompts (cached) and trains the predictor.
    pub async fn compile(
        cfg: &LearnedConfig,
        config: &Config,
        embedder: Embedder,
        base_dir: &Path,
    ) -> Result<Learned, String> {
        let files: Vec<std::path::PathBuf> = cfg
            .outcomes
            .iter()
            .map(|f| base_dir.join(&f.value))
            .collect();
        let cache_dir = match &cfg.cache {
            CacheSetting::Off => None,
            CacheSetting::Default => cache::default_dir(),
            CacheSetting::Dir(d) => Some(base_dir.join(d)),
        };
        let id = embedder_id(&embedder, &cfg.embedder, base_dir);
        let mut data = data::load(&files, &embedder, &id, cache_dir.as_deref())
            .await
            .map_err(|e| format!("routing.learned.outcomes: {e}"))?;
        let mapping = map_tiers(cfg, config, &data.models)?;
        let keep: Vec<usize> = {
            let mut k: Vec<usize> = mapping.values().flatten().copied().collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        let renumber: BTreeMap<usize, usize> = keep
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();
        data.select_models(&keep);
        let mean_costs = data.mean_costs();
        let mut tiers: Vec<LearnedTier> = mapping
            .iter()
            .map(|(tier, cols)| {
                let columns: Vec<usize> = cols
                    .iter()
                    .filter_map(|c| renumber.get(c).copied())
                    .collect();
                let recorded: Vec<f64> = columns.iter().filter_map(|&c| mean_costs[c]).collect();
                let cost = if recorded.len() == columns.len() && !recorded.is_empty() {
                    recorded.iter().sum::<f64>() / recorded.len() as f64
                } else {
                    table_price(config, tier)
                };
                LearnedTier {
                    name: Arc::from(tier.as_str()),
                    columns,
                    cost,
                }
            })
            .collect();
        // Recorded costs and table prices are different units; only mix them when they must.
        if tiers
            .iter()
            .any(|t| t.columns.iter().any(|&c| mean_costs[c].is_none()))
        {
            for t in &mut tiers {
                t.cost = table_price(config, &t.name);
            }
        }
        tiers.sort_by(|a, b| a.cost.total_cmp(&b.cost).then_with(|| a.name.cmp(&b.name)));
        let predictor = Predictor::train_cached(data, cfg.method, cfg.k, cache_dir.as_deref())
            .with_category_weight(cfg.category_weight);
        Ok(Learned {
            embedder,
            predictor,
            costs: tiers.iter().map(|t| t.cost).collect(),
            tiers,
            bar: Bar {
                value: cfg.bar.value,
                kind: cfg.bar_kind,
            },
            min_similarity: cfg.min_similarity,
            files: cfg.outcomes.iter().map(|f| f.value.clone()).collect(),
        })
    }

    pub fn embedder_name(&self) -> &'static str {
        self.embedder.name()
    }

    pub fn rows(&self) -> usize {
        self.predictor.data.len()
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    pub fn method(&self) -> LearnedMethod {
        self.predictor.method
    }

    pub fn bar(&self) -> Bar {
        self.bar
    }

    pub fn tiers(&self) -> &[LearnedTier] {
        &self.tiers
    }

    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// The recorded prompt (id and preview) of a training row.
    pub fn row(&self, i: usize) -> Option<(&str, &str)> {
        let d = &self.predictor.data;
        Some((d.ids.get(i)?.as_str(), d.previews.get(i)?.as_str()))
    }

    pub async fn decide(&self, text: &str, category: Option<&str>) -> Result<Verdict, EmbedError> {
        self.explain(text, category, 0).await
    }

    /// The verdict with the `neighbours` most similar recorded prompts (`switchyard route`).
    pub async fn explain(
        &self,
        text: &str,
        category: Option<&str>,
        neighbours: usize,
    ) -> Result<Verdict, EmbedError> {
        let v = self.embedder.embed(text).await?;
        let features = data::prompt_features(text);
        Ok(self.decide_vector(&v, &features, category, neighbours))
    }

    /// The verdict on an already embedded prompt (what the benchmark measures, and eval replays).
    pub fn decide_vector(
        &self,
        v: &[f32],
        features: &[f32],
        category: Option<&str>,
        neighbours: usize,
    ) -> Verdict {
        let look = if self.min_similarity.is_some() {
            neighbours.max(1)
        } else {
            neighbours
        };
        let p = self.predictor.predict_with(v, features, category, look);
        let tiers: Vec<(Arc<str>, f32)> = self
            .tiers
            .iter()
            .map(|t| (t.name.clone(), tier_score(&p.scores, &t.columns)))
            .collect();
        let chosen = if self.min_similarity.is_some_and(|m| p.nearest < m) {
            None
        } else {
            let scores: Vec<f32> = tiers.iter().map(|t| t.1).collect();
            choose(&scores, &self.costs, self.bar).and_then(|i| tiers.get(i).cloned())
        };
        Verdict {
            tiers,
            chosen,
            nearest: p.nearest,
            neighbours: p.neighbours,
        }
    }
}

/// A tier's prediction: the mean of the models standing for it.
pub fn tier_score(scores: &[f32], columns: &[usize]) -> f32 {
    let vals: Vec<f32> = columns
        .iter()
        .filter_map(|&c| scores.get(c).copied())
        .collect();
    if vals.is_empty() {
        return f32::NAN;
    }
    vals.iter().sum::<f32>() / vals.len() as f32
}

/// What identifies an embedder's vectors, for the cache key.
fn embedder_id(e: &Embedder, cfg: &crate::config::EmbedderConfig, base_dir: &Path) -> String {
    let path = cfg
        .path
        .as_ref()
        .map(|p| {
            let full = base_dir.join(&p.value);
            let stamp = std::fs::read_dir(&full)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|f| {
                    let m = f.metadata().ok()?;
                    let t = m
                        .modified()
                        .ok()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?;
                    Some(format!(
                        "{}:{}:{}",
                        f.file_name().to_string_lossy(),
                        m.len(),
                        t.as_secs()
                    ))
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(",");
            format!("{}[{stamp}]", full.display())
        })
        .unwrap_or_default();
    format!(
        "v1/{}/{}/{}/{}",
        e.name(),
        e.dims().unwrap_or(0),
        path,
        cfg.model.as_deref().unwrap_or("")
    )
}

/// USD per million input plus output tokens of the tier's first model: a stand-in for "what a
/// call costs" where the outcome files recorded no costs.
fn table_price(config: &Config, tier: &str) -> f64 {
    config
        .tiers
        .get(tier)
        .and_then(|t| t.models.first())
        .and_then(|m| config.model(&m.value))
        .map_or(0.0, |m| m.price.input + m.price.output)
}

/// Tier → outcome columns. A tier stands for the models `routing.learned.tiers` names, else for
/// its own models found in the outcome files (by name or provider model id). Tiers with no data
/// take no part. Any outcome model that no tier stands for and that is not in `ignore_models`
/// is an error naming it.
pub fn map_tiers(
    cfg: &LearnedConfig,
    config: &Config,
    models: &[String],
) -> Result<BTreeMap<String, Vec<usize>>, String> {
    let col = |name: &str| models.iter().position(|m| m == name);
    let mut out = BTreeMap::new();
    for (tier, t) in &config.tiers {
        let cols: Vec<usize> = match cfg.tiers.get(tier) {
            Some(names) => {
                let mut v = Vec::new();
                for n in &names.0 {
                    match col(n) {
                        Some(c) => v.push(c),
                        None => {
                            return Err(format!(
                                "routing.learned.tiers.{tier}: no outcome file has scores for `{n}` (models in them: {})",
                                models.join(", ")
                            ));
                        }
                    }
                }
                v
            }
            None => t
                .models
                .iter()
                .filter_map(|m| {
                    col(&m.value).or_else(|| {
                        config
                            .model(&m.value)
                            .and_then(|mc| mc.model.as_ref())
                            .and_then(|up| col(up.as_str()))
                    })
                })
                .collect(),
        };
        if !cols.is_empty() {
            out.insert(tier.clone(), cols);
        }
    }
    let used: std::collections::BTreeSet<usize> = out.values().flatten().copied().collect();
    let unknown: Vec<&str> = models
        .iter()
        .enumerate()
        .filter(|(i, m)| !used.contains(i) && !cfg.ignore_models.contains(m))
        .map(|(_, m)| m.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "routing.learned: the outcome files have scores for models no tier stands for: {} (map them with routing.learned.tiers.<tier>, or list them in routing.learned.ignore_models)",
            unknown.join(", ")
        ));
    }
    if out.len() < 2 {
        return Err(format!(
            "routing.learned: the outcome files have data for {} tier(s) of this table ({}); the layer needs at least two to choose between (map them with routing.learned.tiers)",
            out.len(),
            out.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(value: f64, kind: BarKind) -> Bar {
        Bar { value, kind }
    }

    #[test]
    fn the_cheapest_tier_that_clears_the_bar_wins() {
        // cheapest first: budget, mid, premium
        let p = [0.6, 0.85, 0.9];
        assert_eq!(choose(&p, &[], bar(0.8, BarKind::Score)), Some(1));
        assert_eq!(choose(&p, &[], bar(0.5, BarKind::Score)), Some(0));
        assert_eq!(
            choose(&p, &[], bar(0.95, BarKind::Score)),
            Some(2),
            "none clears: the best"
        );
        assert_eq!(
            choose(&p, &[], bar(0.9, BarKind::ShareOfBest)),
            Some(1),
            "0.85 >= 0.81"
        );
        assert_eq!(choose(&p, &[], bar(0.6, BarKind::ShareOfBest)), Some(0));
        assert_eq!(choose(&p, &[], bar(1.0, BarKind::ShareOfBest)), Some(2));
        assert_eq!(
            choose(&[0.9, 0.9], &[], bar(1.0, BarKind::ShareOfBest)),
            Some(0)
        );
        assert_eq!(choose(&[], &[], bar(0.5, BarKind::Score)), None);
    }

    #[test]
    fn the_value_bar_pays_for_quality_at_its_price() {
        // cheapest first: costs 1, 2, 100 (0.01, 0.02 and 1 of the dearest).
        let (p, c) = ([0.5, 0.7, 0.9], [1.0, 2.0, 100.0]);
        let v = |b| choose(&p, &c, bar(b, BarKind::Value));
        // λ = 0: the best prediction, whatever it costs.
        assert_eq!(v(1.0), Some(2));
        // λ = 1/9: the premium tier's 0.2 more is worth its 0.98 · λ ≈ 0.11.
        assert_eq!(v(0.9), Some(2));
        // λ = 1: not any more, but the middle tier's 0.2 more for 0.01 is.
        assert_eq!(v(0.5), Some(1));
        // λ = ∞: the cheapest.
        assert_eq!(v(0.0), Some(0));
        // Share-of-best at 0.5 takes the cheapest, giving up 0.2 to save 0.01.
        assert_eq!(choose(&p, &c, bar(0.5, BarKind::ShareOfBest)), Some(0));
        // Equal value (λ = 0.25: 0.5 against 0.75 − 0.25): the cheaper.
        assert_eq!(
            choose(&[0.5, 0.75], &[0.0, 1.0], bar(0.8, BarKind::Value)),
            Some(0)
        );
    }

    fn two_kinds() -> Dataset {
        // Four prompts of one kind that the cheap model fails, four of another it gets right.
        let rows: Vec<crate::outcomes::Outcome> = (0..8)
            .map(|i| {
                let hard = i < 4;
                serde_json::from_value(serde_json::json!({
                    "id": format!("r{i}"),
                    "messages": [{"role": "user", "content": if hard { "prove 1 + 1 = 2?" } else { "say hi" }}],
                    "scores": {"cheap": if hard { 0.0 } else { 1.0 }, "strong": 1.0},
                }))
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let vectors = (0..8)
            .map(|i| {
                if i < 4 {
                    vec![1.0, 0.0]
                } else {
                    vec![0.0, 1.0]
                }
            })
            .collect();
        Dataset::from_rows(&rows, vectors)
    }

    #[test]
    fn the_ensemble_predicts_the_mean_of_knn_and_linear() {
        let data = two_kinds();
        let (v, f) = ([1.0, 0.0], data::prompt_features("prove 2 + 2 = 4?"));
        let knn = Predictor::train(data.clone(), LearnedMethod::Knn, 3).predict(&v, &f, None);
        let lin = Predictor::train(data.clone(), LearnedMethod::Linear, 3).predict(&v, &f, None);
        let both = Predictor::train(data, LearnedMethod::Ensemble, 3);
        let ens = both.predict(&v, &f, None);
        for c in 0..2 {
            assert!((ens.scores[c] - (knn.scores[c] + lin.scores[c]) / 2.0).abs() < 1e-6);
        }
        assert!(ens.scores[0] < 0.5 && ens.scores[1] > 0.5, "{ens:?}");
        // One ensemble predictor answers for each method, as `eval --method auto` compares them.
        let (all, _, _) = both.predict_methods(
            &v,
            &f,
            None,
            0,
            &[
                LearnedMethod::Knn,
                LearnedMethod::Linear,
                LearnedMethod::Ensemble,
            ],
            Some(CATEGORY_WEIGHT),
        );
        assert_eq!(all, vec![knn.scores, lin.scores, ens.scores]);
    }
}
