//! Command line: `serve`, `check`, `route`, `report`, `eval`, `calibrate`.

use crate::config::{Config, ConfigError, EnvString};
use crate::gateway::Gateway;
use crate::openai::ChatRequest;
use crate::routing::{Layer, tokens};
use crate::server::{self, Server};
use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
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
    /// Replay outcome files through the routing table offline: cost–quality curve, APGR, CPT.
    Eval(crate::eval::cli::EvalArgs),
    /// Find the learned layer's bar that hits a premium share or a quality share, and write it
    /// into the table.
    Calibrate(crate::eval::calibrate::CalibrateArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
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
                prompt,
            } => route(&config.config, messages, model, headers, prompt).await,
            Command::Report {
                since,
                config,
                database,
                table,
                format,
            } => crate::cost::report::run(&since, &config, database, table, format).await,
            Command::Eval(args) => crate::eval::cli::run(args).await,
            Command::Calibrate(args) => crate::eval::calibrate::run(args).await,
        }
    })
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
    let gateway = match Gateway::build(config, &http, base_dir).await {
        Ok(g) => g,
        Err(message) => {
            return refuse(&ConfigError::whole_file(
                &path.display().to_string(),
                message,
            ));
        }
    };
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

fn refuse(e: &ConfigError) -> ExitCode {
    tracing::error!("invalid config, not starting: {e}");
    eprintln!("error: {e}");
    ExitCode::from(2)
}

async fn check(path: &Path) -> ExitCode {
    let http = reqwest::Client::new();
    let gw = match Gateway::load(path, &http).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let c = &gw.config;
    println!("{}: OK", path.display());
    println!("  listen     {}", c.server.listen);
    println!(
        "  providers  {}",
        c.providers
            .iter()
            .map(|(n, p)| format!("{n} ({:?})", p.kind).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  models     {}", c.models.len());
    for m in &c.models {
        let target = format!(
            "{}/{}",
            m.provider.value,
            m.model.as_ref().map_or(m.name.as_str(), |x| x.as_str())
        );
        println!(
            "    {:<20} {:<40} ${}/M in, ${}/M out",
            m.name, target, m.price.input, m.price.output
        );
    }
    println!("  tiers");
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
        println!(
            "    {:<12} {}{}{}{}",
            name,
            models.join(", "),
            strategy,
            fb.map(|f| format!("   (falls back to {f})"))
                .unwrap_or_default(),
            cw.map(|f| format!("   (too long: {f})"))
                .unwrap_or_default()
        );
    }
    let r = &c.reliability;
    println!(
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
    );
    println!(
        "  routing    default {}, {} rule(s){}",
        c.routing.default.value,
        c.routing.rules.len(),
        c.routing
            .counterfactual
            .as_ref()
            .map(|t| format!(", counterfactual {}", t.value))
            .unwrap_or_default()
    );
    for r in &c.routing.rules {
        println!("    {:<20} → {}", r.name, r.tier.value);
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
        println!("  spend log  {}, table {}", s.target.describe(), s.table);
    }
    println!(
        "  auth       {}",
        if gw.auth_required() {
            "api keys required"
        } else {
            "none (no server.api_keys)"
        }
    );
    if let Some(o) = &c.telemetry.otlp {
        println!(
            "  spans      OTLP/HTTP to {} as {}",
            o.value.endpoint.value, o.value.service_name
        );
    }
    ExitCode::SUCCESS
}

async fn route(
    path: &Path,
    messages: Option<PathBuf>,
    model: String,
    headers: Vec<String>,
    prompt: Option<String>,
) -> ExitCode {
    let gw = match Gateway::load(path, &reqwest::Client::new()).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let req = match route_request(messages, model, prompt) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
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
                eprintln!("error: --header wants `name: value`, got {h:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(d) = gw.router.decide(&req, &hm).await else {
        eprintln!(
            "error: model `{}` is not `auto`, an alias, a tier or a model of this config",
            req.model
        );
        return ExitCode::from(2);
    };
    println!("tier      {}", d.tier);
    println!("layer     {}", d.layer.as_str());
    println!("route     {d}");
    match &d.model {
        Some(m) => println!("model     {m}"),
        None => {
            if let Some(models) = gw.tiers.get(&d.tier) {
                println!(
                    "models    {}",
                    models
                        .iter()
                        .map(|m| &*m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    if let Some(to) = &d.cascade_to {
        println!(
            "cascade   answer on {}, escalate to {to} if the answer falls short",
            d.tier
        );
    }
    if let Some(sem) = gw.router.semantic() {
        println!(
            "semantic  {} embedder, {} utterances",
            sem.embedder_name(),
            sem.utterances()
        );
        if d.scores.is_empty() {
            println!("          (not consulted: an earlier layer decided)");
        }
        for (tier, score) in &d.scores {
            let mark = if d.layer == Layer::Semantic && *tier == d.tier {
                "  <- chosen"
            } else {
                ""
            };
            println!("          {tier:<12} {score:.3}{mark}");
        }
    }
    if let Some(l) = gw.router.learned() {
        print_learned(l, &d, &req).await;
    }
    println!(
        "tokens    {} (o200k estimate of the prompt)",
        tokens::estimate_prompt(&req)
    );
    println!("took      {:.1} µs", d.elapsed.as_secs_f64() * 1e6);
    ExitCode::SUCCESS
}

/// The learned layer's side of `switchyard route`: each tier's prediction and the recorded
/// prompts it came from.
async fn print_learned(
    l: &crate::routing::Learned,
    d: &crate::routing::Decision,
    req: &ChatRequest,
) {
    println!(
        "learned   {} on {} embeddings, {} recorded prompts, bar {} ({})",
        l.method().as_str(),
        l.embedder_name(),
        l.rows(),
        l.bar().value,
        match l.bar().kind {
            crate::config::BarKind::ShareOfBest => "share of the best tier's prediction",
            crate::config::BarKind::Score => "predicted score",
        }
    );
    let text = req
        .last_user_message()
        .map(|m| m.text())
        .unwrap_or_default();
    if d.predictions.is_empty() {
        println!("          (not consulted: an earlier layer decided)");
        return;
    }
    for (tier, score) in &d.predictions {
        let mark = if d.layer == Layer::Learned && *tier == d.tier {
            "  <- chosen"
        } else {
            ""
        };
        println!("          {tier:<12} {score:.3}{mark}");
    }
    if d.layer != Layer::Learned {
        println!("          abstained: no recorded prompt is similar enough");
    }
    if let Ok(v) = l.explain(&text, req.metadata_str("task_type"), 5).await {
        println!("nearest   similarity  scores (cheapest tier first)  prompt");
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
            println!(
                "          {:>6.3}      {:<29} {id}: {preview}",
                n.similarity,
                scores.join(" ")
            );
        }
    }
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
