//! `switchyard eval` on the command line: flags → [`Options`](super::Options), outputs written.

use super::{MethodChoice, Options};
use crate::config::{BarKind, EmbedderConfig, EmbedderKind, LearnedMethod};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The routing table to replay (rules, semantic, learned, its cascade). Without it, the candidates are the
    /// models of the outcome files, routed by the learned layer with its defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The outcome file whose prompts are replayed and scored (repeatable: one test set).
    #[arg(long, required = true)]
    pub test: Vec<PathBuf>,
    /// Outcome files the learned layer learns from (repeatable); default: the table's
    /// routing.learned.outcomes, or the test file itself by cross-validation.
    #[arg(long)]
    pub train: Vec<PathBuf>,
    /// Folds of the cross-validation when the test prompts are in the training data.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How the learned layer predicts (default: the table's method; without a table, `auto`:
    /// each fold's training prompts choose among knn, linear and ensemble).
    #[arg(long, value_enum)]
    pub method: Option<MethodArg>,
    #[arg(long, value_enum)]
    pub bar_kind: Option<BarKindArg>,
    /// Neighbours per prediction.
    #[arg(long)]
    pub k: Option<usize>,
    /// The embedder (default: the table's learned embedder, else builtin).
    #[arg(long, value_enum)]
    pub embedder: Option<EmbedderArg>,
    /// Model folder for `static` / `bert`.
    #[arg(long)]
    pub embedder_path: Option<String>,
    /// Vector size for hashed-ngrams.
    #[arg(long)]
    pub dims: Option<usize>,
    /// Output tokens assumed per call where an outcome has neither a cost nor a response.
    #[arg(long, default_value_t = 200)]
    pub output_tokens: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    /// Write the cost–quality plot here (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write one line per operating point and test prompt: {"point","id","model","asked"}.
    #[arg(long)]
    pub choices: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Replay no cascade: neither the agreement cascades offered to the learned layer (without a
    /// table) nor the table's own routing.cascade (with one). Both are replayed where the
    /// outcome files record the answers (and costs) they need.
    #[arg(long)]
    pub no_cascade: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MethodArg {
    Knn,
    Linear,
    Ensemble,
    Auto,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BarKindArg {
    ShareOfBest,
    Score,
    Value,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EmbedderArg {
    Builtin,
    HashedNgrams,
    Static,
    Bert,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    Table,
    Json,
}

impl EvalArgs {
    pub fn options(&self) -> Options {
        let embedder = self.embedder.map(|kind| EmbedderConfig {
            kind: match kind {
                EmbedderArg::Builtin => EmbedderKind::Builtin,
                EmbedderArg::HashedNgrams => EmbedderKind::HashedNgrams,
                EmbedderArg::Static => EmbedderKind::Static,
                EmbedderArg::Bert => EmbedderKind::Bert,
            },
            dims: self.dims,
            path: self.embedder_path.as_ref().map(|p| {
                serde_saphyr::Spanned::new(
                    p.clone(),
                    serde_saphyr::Location::UNKNOWN,
                    serde_saphyr::Location::UNKNOWN,
                )
            }),
            ..EmbedderConfig::default()
        });
        Options {
            config: self.config.clone(),
            test: self.test.clone(),
            train: self.train.clone(),
            folds: self.folds,
            seed: self.seed,
            method: self.method.map(|m| match m {
                MethodArg::Knn => MethodChoice::Fixed(LearnedMethod::Knn),
                MethodArg::Linear => MethodChoice::Fixed(LearnedMethod::Linear),
                MethodArg::Ensemble => MethodChoice::Fixed(LearnedMethod::Ensemble),
                MethodArg::Auto => MethodChoice::Auto,
            }),
            bar_kind: self.bar_kind.map(|b| match b {
                BarKindArg::ShareOfBest => BarKind::ShareOfBest,
                BarKindArg::Score => BarKind::Score,
                BarKindArg::Value => BarKind::Value,
            }),
            k: self.k,
            embedder,
            output_tokens: self.output_tokens,
            cache: !self.no_cache,
            cascade: !self.no_cascade,
        }
    }
}

pub async fn run(args: EvalArgs) -> ExitCode {
    let e = match super::evaluate(&args.options()).await {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    match args.format {
        FormatArg::Table => print!("{}", super::report::table(&e)),
        FormatArg::Json => println!("{}", super::report::json(&e)),
    }
    if let Some(p) = &args.plot {
        if let Err(err) = std::fs::write(p, super::report::svg(&e)) {
            eprintln!("error: {}: {err}", p.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(p) = &args.choices {
        if let Err(err) = super::report::write_choices(&e, p) {
            eprintln!("error: {}: {err}", p.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
