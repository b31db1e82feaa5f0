//! Reading other gateways' configs into a switchyard routing table: `switchyard import litellm
//! CONFIG.yaml` turns a LiteLLM proxy config into a table that passes `switchyard check`, and lists
//! everything that did not carry over, with the LiteLLM key and why.
//!
//! The path is one way: `yaml` (a tree that remembers lines and what was read) → `litellm` (the
//! config's shape, and its errors) → `map` (LiteLLM's concepts in switchyard's terms, with
//! `providers` and `prices`) → `table` → `write`; `report` collects what the mapping could not say.
//!
//! Must not import the request path (`api`, `dispatch`, `providers`, `cost`): it reads and writes tables, and compiles one (`gateway`) only to check it.

mod litellm;
mod map;
mod prices;
mod providers;
mod report;
mod table;
mod write;
mod yaml;

pub use report::{Item, Kind, Report};

use crate::config::{Config, ConfigError};
use crate::gateway::Gateway;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// An imported table.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The table to keep, with the report at its end as comments.
    pub table: String,
    /// The same table with every `${VAR}` written `${VAR:-placeholder}`, so it can be validated
    /// where the variables are not set (see [`check`]).
    pub checkable: String,
    pub report: Report,
    /// Every environment variable the table reads, sorted.
    pub vars: Vec<String>,
}

/// Imports the LiteLLM proxy config `text`; `file` names it in errors and in the report.
pub fn litellm(text: &str, file: &str) -> Result<Imported, ConfigError> {
    let config = litellm::read(text, file)?;
    let mut report = Report::new(file);
    let table = map::map(&config, file, text, &mut report)?;
    let mut vars: Vec<String> = table
        .providers
        .iter()
        .flat_map(|p| {
            p.base_url
                .iter()
                .chain(&p.api_key)
                .chain(&p.api_version)
                .chain(p.headers.iter().map(|(_, v)| v))
        })
        .chain(table.api_keys.iter().map(|k| &k.value))
        .flat_map(|t| t.vars().map(str::to_string).collect::<Vec<_>>())
        .collect();
    vars.sort();
    vars.dedup();
    Ok(Imported {
        table: write::table(&table, &report, write::Vars::AsIs),
        checkable: write::table(&table, &report, write::Vars::Placeholder),
        report,
        vars,
    })
}

/// Validates an imported table exactly as `switchyard check` does (the config loader, then
/// compiling the gateway), with unset variables treated as set: their placeholders are
/// plausible values (an `https://` URL for a base URL), so the check covers everything the
/// table says while the real values are only known where it will run. Set variables are used.
pub async fn check(imported: &Imported, name: &str, base_dir: &Path) -> Result<(), ConfigError> {
    let config = Config::from_yaml(&imported.checkable, name)?;
    Gateway::build(config, &reqwest::Client::new(), base_dir)
        .await
        .map(|_| ())
        .map_err(|m| ConfigError::whole_file(name, m))
}

/// `switchyard import <SOURCE>`.
#[derive(clap::Subcommand)]
pub enum Source {
    /// Convert a LiteLLM proxy config (its config.yaml) into a switchyard routing table.
    Litellm {
        /// The LiteLLM config file.
        config: PathBuf,
        /// Write the table here instead of to stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Validate the result as `switchyard check` would (unset ${VAR}s count as set) and exit
        /// non-zero when it fails.
        #[arg(long)]
        check: bool,
    },
}

/// Runs `switchyard import`: the table to `--out` or stdout, the report to stderr. Exit status 2
/// when the input cannot be imported, 1 when `--check` rejects the result.
pub async fn run(source: Source) -> ExitCode {
    let Source::Litellm { config, out, check } = source;
    let file = config.display().to_string();
    let text = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {file}: cannot read the LiteLLM config: {e}");
            return ExitCode::from(2);
        }
    };
    let imported = match litellm(&text, &file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match &out {
        Some(path) => {
            if same_file(path, &config) {
                eprintln!(
                    "error: --out {} is the LiteLLM config itself; write the table elsewhere",
                    path.display()
                );
                return ExitCode::from(2);
            }
            if let Err(e) = std::fs::write(path, &imported.table) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => {
            // Written and flushed before the report, so a terminal shows the table first.
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(imported.table.as_bytes())
                .and_then(|()| stdout.flush())
            {
                eprintln!("error: cannot write the table: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let r = &imported.report;
    eprintln!(
        "imported {file}: {} not carried over, {} carried with a difference, {} chosen by the import{}",
        r.of(Kind::NotCarried).count(),
        r.of(Kind::Changed).count(),
        r.of(Kind::Chosen).count(),
        match &out {
            Some(p) => format!(" (also listed at the end of {})", p.display()),
            None => " (also listed at the end of the table)".into(),
        }
    );
    for line in r.lines() {
        eprintln!("  {line}");
    }
    if !check {
        return ExitCode::SUCCESS;
    }
    let name = out.as_ref().map_or_else(
        || "<imported table>".to_string(),
        |p| p.display().to_string(),
    );
    let base_dir = out
        .as_ref()
        .and_then(|p| p.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match self::check(&imported, &name, &base_dir).await {
        Ok(()) => {
            let unset: Vec<&str> = imported
                .vars
                .iter()
                .map(String::as_str)
                .filter(|v| std::env::var_os(v).is_none())
                .collect();
            if unset.is_empty() {
                eprintln!("check: OK, the table passes `switchyard check`");
            } else {
                eprintln!(
                    "check: OK, the table passes `switchyard check` with these unset variables treated as set: {} (set them where switchyard runs)",
                    unset.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the imported table does not pass `switchyard check`: {e}");
            ExitCode::from(1)
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
