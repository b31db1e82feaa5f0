//! Command line: `serve`, `check`, `route`, `report`, `bench`, `eval`, `calibrate`, `distill`,
//! `import`, `keys`, `teams`.
//!
//! Nothing imports it but `main`; it may import any module.

use crate::config::{Config, ConfigError, EnvString, Uses};
use crate::console::{error, print_to_stdout};
use crate::gateway::Gateway;
use crate::openai::ChatRequest;
use crate::routing::Layer;
use crate::server::{self, Server};
use crate::telemetry::{self, LogFormat};
use crate::tokens;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible gateway that routes each request to the cheapest model tier that will do."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The routing table (YAML).
    #[arg(
        long,
        short,
        env = "SWITCHYARD_CONFIG",
        default_value = "config/demo.yaml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Listen here instead of the config's server.listen (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
        #[arg(
            long,
            value_enum,
            default_value = "text",
            env = "SWITCHYARD_LOG_FORMAT"
        )]
        log_format: LogFormat,
        /// Reload the config when the file changes (SIGHUP always reloads).
        #[arg(long)]
        watch: bool,
    },
    /// Validate a config file and print what it defines.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the routing decision for a prompt without calling any provider.
    Route {
        #[command(flatten)]
        config: ConfigArg,
        /// A JSON file with a chat request body or a `messages` array, instead of PROMPT.
        #[arg(long)]
        messages: Option<PathBuf>,
        /// The `model` to route (default `auto`).
        #[arg(long, default_value = "auto")]
        model: String,
        /// A request header as `name: value` (repeatable), for header rules.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// The team of the virtual key the request would come with, for `key: { team }` rules.
        #[arg(long)]
        team: Option<String>,
        prompt: Option<String>,
    },
    /// Actual vs counterfactual spend and savings, by tier, model and task type, from the spend log.
    Report {
        /// Start of the period: a span back from now (7d, 24h, 30m) or a UTC date or time.
        #[arg(long, default_value = "7d")]
        since: String,
        /// The config whose `spend_log` to read.
        #[arg(
            long,
            short,
            env = "SWITCHYARD_CONFIG",
            default_value = "config/demo.yaml",
            conflicts_with = "database"
        )]
        config: PathBuf,
        /// Read this database instead (sqlite://path or postgres://…; relative paths from here).
        #[arg(long)]
        database: Option<String>,
        /// The spend log's table, with --database.
        #[arg(long, default_value = "switchyard_spend", requires = "database")]
        table: String,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::cost::report::Format,
    },
    /// Virtual keys: create, list, show, update, revoke.
    Keys(crate::keys::cli::KeysArgs),
    /// Team budgets above the keys' own: set, list, show, remove.
    Teams(crate::keys::team_cli::TeamsArgs),
    /// Write a switchyard routing table from another gateway's config, and list what did not carry over.
    Import {
        #[command(subcommand)]
        source: crate::import::Source,
    },
    /// Step 0: run a task file's prompts on the table's models, grade the answers, write an
    /// outcomes file, and print the quality matrix and the routing map.
    Bench(BenchArgs),
    /// Replay outcome files through the routing table offline: cost–quality curve, APGR, CPT.
    Eval(crate::eval::cli::EvalArgs),
    /// Find the learned layer's bar that hits a premium share or a quality share, and write it
    /// into the table.
    Calibrate(crate::eval::calibrate::CalibrateArgs),
    /// Distil a static embedding model (model2vec format, for `embedder: { kind: static }`) from a
    /// local BERT-family sentence encoder folder. Needs a build with `--features bert`.
    Distill {
        /// The encoder's folder: config.json, tokenizer.json, model.safetensors.
        #[arg(long = "from", value_name = "BERT_FOLDER")]
        from: PathBuf,
        /// Where to write model.safetensors, tokenizer.json and config.json (created if missing).
        #[arg(long, value_name = "FOLDER")]
        out: PathBuf,
        /// Dimensions kept by PCA (at most the encoder's).
        #[arg(long, default_value_t = 256)]
        dims: usize,
        /// How the matrix is stored.
        #[arg(long, value_enum, default_value = "int8")]
        quantize: DistillQuantize,
        /// Token weighting by vocabulary rank.
        #[arg(long, value_enum, default_value = "sif")]
        weighting: DistillWeighting,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DistillQuantize {
    /// One byte per value and one scale per row: a quarter of f32's size and memory.
    Int8,
    F16,
    F32,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DistillWeighting {
    /// SIF weights from a Zipf law over the vocabulary order (model2vec's default).
    Sif,
    /// ln(2 + rank).
    Zipf,
    /// All tokens alike.
    None,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The task file: YAML, or JSONL with one prompt per line.
    #[arg(long, short, default_value = "config/bench-tasks.yaml")]
    tasks: PathBuf,
    /// The outcomes file (JSONL); a re-run skips the prompts it already has.
    #[arg(long, short, default_value = "bench-outcomes.jsonl")]
    out: PathBuf,
    /// Only these models (comma-separated).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Only the models of these tiers (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tiers: Vec<String>,
    /// The quality a model must clear on a task type, judged by its interval's lower bound.
    #[arg(long, default_value_t = 0.85)]
    bar: f64,
    /// The confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Calls in flight at most (each model's rpm and tpm are kept as well).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop before spending more than this many USD (each call reserves its worst case first).
    #[arg(long)]
    max_cost: Option<f64>,
    /// Times a failed call is tried again (after the table's own retries) when its error passes.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// `max_tokens` for tasks that set none.
    #[arg(long, default_value_t = 512)]
    max_tokens: u64,
    /// How long calls wait for a model that is cooling down after failures, since its last
    /// answer, before they are recorded as failed.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    max_wait: std::time::Duration,
    /// Write the routing map as routing rules (YAML) to this file.
    #[arg(long)]
    write_rules: Option<PathBuf>,
    /// Write the matrix as an HTML page (heat map, cost-quality scatter) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the calls to make and their worst-case cost, and make none.
    #[arg(long)]
    dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                listen,
                log_format,
                watch,
            } => serve(config.config, listen, log_format, watch).await,
            Command::Check { config } => check(&config.config).await,
            Command::Route {
                config,
                messages,
                model,
                headers,
                team,
                prompt,
            } => route(&config.config, messages, model, headers, team, prompt).await,
            Command::Report {
                since,
                config,
                database,
                table,
                format,
            } => crate::cost::report::run(&since, &config, database, table, format).await,
            Command::Import { source } => crate::import::run(source).await,
            Command::Keys(args) => crate::keys::cli::run(args).await,
            Command::Teams(args) => crate::keys::team_cli::run(args).await,
            Command::Bench(b) => bench(b).await,
            Command::Eval(args) => crate::eval::cli::run(args).await,
            Command::Calibrate(args) => crate::eval::calibrate::run(args).await,
            Command::Distill {
                from,
                out,
                dims,
                quantize,
                weighting,
            } => tokio::task::block_in_place(|| distill(&from, &out, dims, quantize, weighting)),
        }
    })
}

#[cfg(feature = "bert")]
fn distill(
    from: &Path,
    out: &Path,
    dims: usize,
    quantize: DistillQuantize,
    weighting: DistillWeighting,
) -> ExitCode {
    use crate::embed::distill::{self, Options, Quantize, Weighting};
    let opts = Options {
        dims,
        quantize: match quantize {
            DistillQuantize::Int8 => Quantize::Int8,
            DistillQuantize::F16 => Quantize::F16,
            DistillQuantize::F32 => Quantize::F32,
        },
        weighting: match weighting {
            DistillWeighting::Sif => Weighting::Sif,
            DistillWeighting::Zipf => Weighting::Zipf,
            DistillWeighting::None => Weighting::None,
        },
    };
    let started = std::time::Instant::now();
    // Drawn only on a terminal; a log (CI) gets the closing lines alone.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "embedding the vocabulary {bar:40} {pos}/{len} tokens, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = distill::distill(from, out, &opts, &mut |done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    match result {
        Ok(s) => {
            println!(
                "distilled {} tokens from {} ({} dims) into {} ({} dims, {:.1}% of the variance, {}, {} weighting)",
                s.tokens,
                from.display(),
                s.source_dims,
                out.display(),
                s.dims,
                100.0 * s.explained,
                format!("{quantize:?}").to_lowercase(),
                format!("{weighting:?}").to_lowercase(),
            );
            println!(
                "{:.1} MB written in {:.1} s; use it with  embedder: {{ kind: static, path: {} }}",
                s.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "bert"))]
fn distill(
    _from: &Path,
    _out: &Path,
    _dims: usize,
    _quantize: DistillQuantize,
    _weighting: DistillWeighting,
) -> ExitCode {
    eprintln!(
        "error: `switchyard distill` runs the BERT encoder, which this build does not include: \
         rebuild with the `bert` feature (cargo build --release --features bert)"
    );
    ExitCode::from(2)
}

async fn serve(
    path: PathBuf,
    listen: Option<String>,
    log_format: LogFormat,
    watch: bool,
) -> ExitCode {
    let _log_guard = telemetry::init_logging(log_format);
    let http = server::http_client();
    let mut config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    if let Some(l) = listen {
        config.server.listen = EnvString(l);
    }
    let watch = watch || config.server.watch_config;
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    // Token counts are needed by rules, the context-window check and answers sent without usage;
    // the tables are built beside the config rather than on the first request that needs them.
    let tokens = tokio::task::spawn_blocking(crate::tokens::prewarm);
    let gateway = match Gateway::build(config, &http, base_dir).await {
        Ok(g) => g,
        Err(message) => return refuse(&ConfigError::after_build(&path, message)),
    };
    let _ = tokens.await;
    let server = match Server::bind(gateway).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %server.local_addr(), config = %path.display(), "switchyard listening on {}", server.local_addr());
    server::spawn_reloader(server.state(), path, http, watch);
    match server.run(server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(b: BenchArgs) -> ExitCode {
    // Warnings of the dispatch layer (cooldowns, retries) go to stderr; the report goes to stdout.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    crate::bench::run(crate::bench::Options {
        config: b.config.config,
        tasks: b.tasks,
        out: b.out,
        models: b.models,
        tiers: b.tiers,
        bar: b.bar,
        confidence: b.confidence,
        concurrency: b.concurrency,
        max_cost: b.max_cost,
        retries: b.retries,
        max_tokens: b.max_tokens,
        max_wait: b.max_wait,
        write_rules: b.write_rules,
        report: b.report,
        dry_run: b.dry_run,
        progress: !b.no_progress,
    })
    .await
}

fn refuse(e: &ConfigError) -> ExitCode {
    tracing::error!("invalid config, not starting: {e}");
    error(format_args!("{e}"));
    ExitCode::from(2)
}

async fn check(path: &Path) -> ExitCode {
    let http = reqwest::Client::new();
    let gw = match Gateway::load(path, &http).await {
        Ok(g) => g,
        Err(e) => {
            error(format_args!("{e}"));
            return ExitCode::from(2);
        }
    };
    print_to_stdout(|out| summary(out, path, &gw))
}

fn summary(out: &mut dyn Write, path: &Path, gw: &Gateway) -> std::io::Result<()> {
    let c = &gw.config;
    writeln!(out, "{}: OK", path.display())?;
    writeln!(out, "  listen     {}", c.server.listen)?;
    writeln!(
        out,
        "  providers  {}",
        c.providers
            .iter()
            .map(|(n, p)| format!("{n} ({:?})", p.kind).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out, "  models     {}", c.models.len())?;
    for m in &c.models {
        let target = format!(
            "{}/{}",
            m.provider.value,
            m.model.as_ref().map_or(m.name.as_str(), |x| x.as_str())
        );
        if m.kind == crate::config::ModelKind::Embedding {
            writeln!(
                out,
                "    {:<20} {:<40} ${}/M in, embeddings",
                m.name, target, m.price.input
            )?;
        } else {
            writeln!(
                out,
                "    {:<20} {:<40} ${}/M in, ${}/M out",
                m.name, target, m.price.input, m.price.output
            )?;
        }
    }
    writeln!(out, "  tiers")?;
    for (name, t) in &c.tiers {
        let models: Vec<&str> = t.models.iter().map(|m| m.value.as_str()).collect();
        let fb = c.fallbacks.chains.get(name).map(|f| {
            f.iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        });
        let strategy = if models.len() > 1 {
            format!(" [{}]", t.strategy.as_str())
        } else {
            String::new()
        };
        let cw = c.fallbacks.context_window.get(name).map(|f| {
            f.iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        });
        writeln!(
            out,
            "    {:<12} {}{}{}{}",
            name,
            models.join(", "),
            strategy,
            fb.map(|f| format!("   (falls back to {f})"))
                .unwrap_or_default(),
            cw.map(|f| format!("   (too long: {f})"))
                .unwrap_or_default()
        )?;
    }
    let r = &c.reliability;
    writeln!(
        out,
        "  reliability {} attempt(s) per request, {} retr{} per tier, {} fallback hop(s), cooldown {}",
        r.max_attempts,
        r.retries,
        if r.retries == 1 { "y" } else { "ies" },
        r.max_fallbacks,
        if r.cooldown.enabled {
            format!(
                "after {} failure(s) in {:?} for {:?}",
                r.cooldown.allowed_fails + 1,
                r.cooldown.window.0,
                r.cooldown.duration.0
            )
        } else {
            "off".into()
        }
    )?;
    writeln!(
        out,
        "  routing    default {}, {} rule(s){}",
        c.routing.default.value,
        c.routing.rules.len(),
        c.routing
            .counterfactual
            .as_ref()
            .map(|t| format!(", counterfactual {}", t.value))
            .unwrap_or_default()
    )?;
    for r in &c.routing.rules {
        writeln!(out, "    {:<20} → {}", r.name, r.tier.value)?;
    }
    if let Some(l) = gw.router.learned() {
        println!(
            "  learned    {} on {} embeddings, {} recorded prompts from {}, bar {}",
            l.method().as_str(),
            l.embedder_name(),
            l.rows(),
            l.files().join(", "),
            l.bar().value
        );
        for t in l.tiers() {
            let models: Vec<&str> = t
                .columns
                .iter()
                .filter_map(|&c| l.predictor().data().models.get(c).map(String::as_str))
                .collect();
            println!("    {:<12} ← {}", t.name, models.join(", "));
        }
    }
    if let Some(s) = &gw.spend_log {
        writeln!(
            out,
            "  spend log  {}, table {}",
            s.target.describe(),
            s.table
        )?;
    }
    writeln!(
        out,
        "  keys       virtual keys in {}",
        gw.keys_db.describe()
    )?;
    writeln!(
        out,
        "  auth       {}",
        if gw.auth_required() {
            "api keys required"
        } else {
            "none (no server.api_keys)"
        }
    )?;
    writeln!(
        out,
        "  admin      {}",
        if gw.admin_keys_set() {
            "/admin/* with server.admin_keys"
        } else {
            "/admin/* from this host only (no server.admin_keys)"
        }
    )?;
    if let Some(o) = &c.telemetry.otlp {
        writeln!(
            out,
            "  spans      OTLP/HTTP to {} as {}",
            o.value.endpoint.value, o.value.service_name
        )?;
    }
    Ok(())
}

async fn route(
    path: &Path,
    messages: Option<PathBuf>,
    model: String,
    headers: Vec<String>,
    team: Option<String>,
    prompt: Option<String>,
) -> ExitCode {
    // Routing calls no provider and writes no spend log: their variables may be unset here.
    let gw = match Gateway::load_for(path, &reqwest::Client::new(), Uses::Routing).await {
        Ok(g) => g,
        Err(e) => {
            error(format_args!("{e}"));
            return ExitCode::from(2);
        }
    };
    let req = match route_request(messages, model, prompt) {
        Ok(r) => r,
        Err(e) => {
            error(format_args!("{e}"));
            return ExitCode::from(2);
        }
    };
    let mut hm = http::HeaderMap::new();
    for h in headers {
        let parsed = h.split_once(':').and_then(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ))
        });
        match parsed {
            Some((k, v)) => {
                hm.append(k, v);
            }
            None => {
                error(format_args!("--header wants `name: value`, got {h:?}"));
                return ExitCode::from(2);
            }
        }
    }
    let caller = crate::routing::Caller {
        team: team.as_deref(),
        ..Default::default()
    };
    let Some(d) = gw.router.decide_for(&req, &hm, caller).await else {
        error(format_args!(
            "model `{}` is not `auto`, an alias, a tier or a model of this config",
            req.model
        ));
        return ExitCode::from(2);
    };
    note_unresolved(&gw.config);
    // The learned layer's neighbours are found by embedding the prompt, which may be async
    // (a remote embedder): done before any output, so the output itself is plain writes.
    let learned = match gw.router.learned() {
        Some(l) => Some(learned_lines(l, &d, &req).await),
        None => None,
    };
    print_to_stdout(|out| explain(out, &gw, &req, &d, learned.as_deref()))
}

/// Says which variables were left unset because routing does not need them.
fn note_unresolved(c: &Config) {
    if c.unresolved.is_empty() {
        return;
    }
    let list: Vec<String> = c
        .unresolved
        .iter()
        .map(|(part, vars)| format!("{} ({part})", vars.join(", ")))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "note: not set, and not needed to route: {}",
        list.join("; ")
    );
}

fn explain(
    out: &mut dyn Write,
    gw: &Gateway,
    req: &ChatRequest,
    d: &crate::routing::Decision,
    learned: Option<&str>,
) -> std::io::Result<()> {
    writeln!(out, "tier      {}", d.tier)?;
    writeln!(out, "layer     {}", d.layer.as_str())?;
    writeln!(out, "route     {d}")?;
    match &d.model {
        Some(m) => writeln!(out, "model     {m}")?,
        None => {
            if let Some(models) = gw.tables.tiers.get(&d.tier) {
                writeln!(
                    out,
                    "models    {}",
                    models
                        .iter()
                        .map(|m| &*m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
        }
    }
    if let Some(c) = &d.cascade {
        writeln!(
            out,
            "cascade   answer on {}, escalate to {} if the answer falls short",
            c.from, c.to
        )?;
    }
    if let Some(sem) = gw.router.semantic() {
        writeln!(
            out,
            "semantic  {} embedder, {} utterances",
            sem.embedder_name(),
            sem.utterances()
        )?;
        if d.scores.is_empty() {
            writeln!(out, "          (not consulted: an earlier layer decided)")?;
        }
        for (tier, score) in &d.scores {
            let mark = if d.layer == Layer::Semantic && *tier == d.tier {
                "  <- chosen"
            } else {
                ""
            };
            writeln!(out, "          {tier:<12} {score:.3}{mark}")?;
        }
    }
    if let Some(lines) = learned {
        out.write_all(lines.as_bytes())?;
    }
    writeln!(
        out,
        "tokens    {} (o200k estimate of the prompt)",
        tokens::estimate_prompt(req)
    )?;
    writeln!(out, "took      {:.1} µs", d.elapsed.as_secs_f64() * 1e6)?;
    Ok(())
}

/// The learned layer's side of `switchyard route`: each tier's prediction and the recorded
/// prompts it came from.
/// What `route` shows of the learned layer: its predictions per tier and the nearest recorded
/// prompts.
async fn learned_lines(
    l: &crate::routing::Learned,
    d: &crate::routing::Decision,
    req: &ChatRequest,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "learned   {} on {} embeddings, {} recorded prompts, bar {} ({})",
        l.method().as_str(),
        l.embedder_name(),
        l.rows(),
        l.bar().value,
        match l.bar().kind {
            crate::config::BarKind::ShareOfBest => "share of the best tier's prediction",
            crate::config::BarKind::Score => "predicted score",
            crate::config::BarKind::Value => "predicted score less the tier's price",
        }
    );
    let text = req
        .last_user_message()
        .map(|m| m.text())
        .unwrap_or_default();
    if d.predictions.is_empty() {
        let _ = writeln!(s, "          (not consulted: an earlier layer decided)");
        return s;
    }
    for (tier, score) in &d.predictions {
        let mark = if d.layer == Layer::Learned && *tier == d.tier {
            "  <- chosen"
        } else {
            ""
        };
        let _ = writeln!(s, "          {tier:<12} {score:.3}{mark}");
    }
    if d.layer != Layer::Learned {
        let _ = writeln!(
            s,
            "          abstained: no recorded prompt is similar enough"
        );
    }
    if let Ok(v) = l.explain(&text, req.metadata_str("task_type"), 5).await {
        let _ = writeln!(
            s,
            "nearest   similarity  scores (cheapest tier first)  prompt"
        );
        for n in v.neighbours.iter().take(5) {
            let Some((id, preview)) = l.row(n.row) else {
                continue;
            };
            let scores: Vec<String> = l
                .tiers()
                .iter()
                .map(|t| {
                    let s = crate::routing::learned::tier_score(
                        &(0..l.predictor().data().models.len())
                            .map(|c| l.predictor().data().score(n.row, c))
                            .collect::<Vec<_>>(),
                        &t.columns,
                    );
                    format!("{s:.2}")
                })
                .collect();
            let _ = writeln!(
                s,
                "          {:>6.3}      {:<29} {id}: {preview}",
                n.similarity,
                scores.join(" ")
            );
        }
    }
    s
}

fn route_request(
    messages: Option<PathBuf>,
    model: String,
    prompt: Option<String>,
) -> Result<ChatRequest, String> {
    let body = match (messages, prompt) {
        (Some(file), _) => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Array(msgs)) => {
                    serde_json::json!({"model": model, "messages": msgs})
                }
                Ok(mut v @ serde_json::Value::Object(_)) => {
                    if v.get("model").is_none() {
                        v["model"] = serde_json::Value::String(model);
                    }
                    v
                }
                _ => {
                    return Err(format!(
                        "{}: expected a JSON array of messages or a chat request object",
                        file.display()
                    ));
                }
            }
        }
        (None, Some(p)) => {
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": p}]})
        }
        (None, None) => return Err("give a PROMPT or --messages FILE".into()),
    };
    serde_json::from_value(body).map_err(|e| format!("not a chat request: {e}"))
}
