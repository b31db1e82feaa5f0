//! Command line: `serve`, `check`, `route`, `report`, `distill`.

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
    println!(
        "tokens    {} (o200k estimate of the prompt)",
        tokens::estimate_prompt(&req)
    );
    println!("took      {:.1} µs", d.elapsed.as_secs_f64() * 1e6);
    ExitCode::SUCCESS
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
