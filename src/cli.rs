//! Command line: `serve`, `check`, `route`.

use crate::config::{Config, ConfigError, EnvString};
use crate::gateway::Gateway;
use crate::openai::ChatRequest;
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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
            watch,
        } => serve(config.config, listen, log_format, watch),
        Command::Check { config } => check(&config.config),
        Command::Route {
            config,
            messages,
            model,
            headers,
            prompt,
        } => route(&config.config, messages, model, headers, prompt),
    }
}

fn serve(path: PathBuf, listen: Option<String>, log_format: LogFormat, watch: bool) -> ExitCode {
    telemetry::init_logging(log_format);
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
        let http = server::http_client();
        let mut config = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => return refuse(&e),
        };
        if let Some(l) = listen {
            config.server.listen = EnvString(l);
        }
        let watch = watch || config.server.watch_config;
        let gateway = match Gateway::build(config, &http) {
            Ok(g) => g,
            Err(message) => {
                return refuse(&ConfigError::whole_file(&path.display().to_string(), message));
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
    })
}

fn refuse(e: &ConfigError) -> ExitCode {
    tracing::error!("invalid config, not starting: {e}");
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn check(path: &Path) -> ExitCode {
    let http = reqwest::Client::new();
    let gw = match Gateway::load(path, &http) {
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
        let fb = c.fallbacks.get(name).map(|f| {
            f.iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        });
        println!(
            "    {:<12} {}{}",
            name,
            models.join(", "),
            fb.map(|f| format!("   (falls back to {f})"))
                .unwrap_or_default()
        );
    }
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
    println!(
        "  auth       {}",
        if gw.auth_required() {
            "api keys required"
        } else {
            "none (no server.api_keys)"
        }
    );
    ExitCode::SUCCESS
}

fn route(
    path: &Path,
    messages: Option<PathBuf>,
    model: String,
    headers: Vec<String>,
    prompt: Option<String>,
) -> ExitCode {
    let gw = match Gateway::load(path, &reqwest::Client::new()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match (messages, prompt) {
        (Some(file), _) => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
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
                    eprintln!(
                        "error: {}: expected a JSON array of messages or a chat request object",
                        file.display()
                    );
                    return ExitCode::from(2);
                }
            }
        }
        (None, Some(p)) => {
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": p}]})
        }
        (None, None) => {
            eprintln!("error: give a PROMPT or --messages FILE");
            return ExitCode::from(2);
        }
    };
    let req: ChatRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: not a chat request: {e}");
            return ExitCode::from(2);
        }
    };
    let mut hm = http::HeaderMap::new();
    for h in headers {
        let Some((k, v)) = h.split_once(':') else {
            eprintln!("error: --header wants `name: value`, got {h:?}");
            return ExitCode::from(2);
        };
        match (
            http::HeaderName::from_bytes(k.trim().as_bytes()),
            http::HeaderValue::from_str(v.trim()),
        ) {
            (Ok(k), Ok(v)) => {
                hm.append(k, v);
            }
            _ => {
                eprintln!("error: invalid header {h:?}");
                return ExitCode::from(2);
            }
        }
    }
    let t = std::time::Instant::now();
    let decision = gw.router.decide(&req, &hm);
    let took = t.elapsed();
    match decision {
        Some(d) => {
            println!("tier   {}", d.tier);
            println!("route  {d}");
            if let Some(m) = &d.model {
                println!("model  {m}");
            } else if let Some(models) = gw.tiers.get(&d.tier) {
                println!(
                    "models {}",
                    models
                        .iter()
                        .map(|m| &*m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            println!("took   {:.1} µs", took.as_secs_f64() * 1e6);
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: model `{}` is not `auto`, a tier or a model of this config",
                req.model
            );
            ExitCode::from(2)
        }
    }
}
