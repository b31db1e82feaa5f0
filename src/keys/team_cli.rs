//! `switchyard teams set|list|show|remove`: team budgets in the config's key store, for an
//! operator at a shell. A running gateway sees a change within `keys.refresh` (at once with
//! shared state, which is told).

use super::cli::table;
use super::{Keys, OpError, Team, TeamChange};
use crate::config::{Config, Uses};
use crate::console::{error, print_to_stdout};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TeamsArgs {
    /// The config whose key store to use (teams live beside its keys).
    #[arg(
        long,
        short,
        env = "SWITCHYARD_CONFIG",
        default_value = "config/demo.yaml",
        global = true
    )]
    config: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    op: Op,
}

#[derive(clap::Subcommand)]
enum Op {
    /// Give a team a budget its keys share, or change it; settings not given stay as they are.
    Set {
        /// As the keys' `--team` names it.
        name: String,
        /// Dollars per period (required for a new team).
        #[arg(long)]
        budget_usd: Option<String>,
        /// day, week, month (the default) or a duration such as 6h.
        #[arg(long)]
        budget_period: Option<String>,
    },
    /// Every team with a budget.
    List,
    /// One team's budget.
    Show { name: String },
    /// Remove a team's budget; its keys keep their team and their own budgets.
    Remove { name: String },
}

pub async fn run(args: TeamsArgs) -> ExitCode {
    let config = match Config::load_for(&args.config, Uses::SpendLog) {
        Ok(c) => c,
        Err(e) => {
            error(format_args!("{e}"));
            return ExitCode::FAILURE;
        }
    };
    let base = args.config.parent().unwrap_or_else(|| Path::new("."));
    let keys = match crate::config::keys::target(&config, base)
        .and_then(|t| Keys::open(&t, table(&config), false))
    {
        Ok(k) => k,
        Err(e) => {
            error(format_args!("{e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Some(link) = crate::state::StateStore::from_config(&config.state)
        .ok()
        .and_then(|s| s.link())
    {
        keys.share_changes(link);
    }
    let result = op(&keys, args.op, args.json).await;
    keys.close().await;
    match result {
        Ok(text) => print_to_stdout(|o| o.write_all(text.as_bytes())),
        Err(e) => {
            error(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

/// A flag as the admin API's JSON: numbers stay numbers, so a mistyped one is named by its field.
fn number(s: &str) -> Value {
    serde_json::from_str::<serde_json::Number>(s)
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(s.to_string()))
}

async fn op(keys: &Keys, op: Op, as_json: bool) -> Result<String, OpError> {
    let show = |t: &Team| -> String {
        if as_json {
            format!("{:#}\n", t.to_json())
        } else {
            describe(t)
        }
    };
    match op {
        Op::Set {
            name,
            budget_usd,
            budget_period,
        } => {
            let mut m = Map::new();
            if let Some(b) = budget_usd {
                m.insert("budget_usd".into(), number(&b));
            }
            if let Some(p) = budget_period {
                m.insert("budget_period".into(), json!(p));
            }
            let c = TeamChange::parse(&Value::Object(m)).map_err(OpError::Invalid)?;
            let (t, _) = keys.set_team(&name, &c).await?;
            Ok(show(&t))
        }
        Op::List => {
            let all = keys.list_teams().await?;
            if as_json {
                let v: Vec<Value> = all.iter().map(Team::to_json).collect();
                return Ok(format!("{:#}\n", Value::Array(v)));
            }
            let mut out = format!("{:<24} {:<14} {}\n", "name", "budget", "updated");
            for t in &all {
                out.push_str(&format!(
                    "{:<24} {:<14} {}\n",
                    t.name,
                    format!("${}/{}", t.budget.usd, t.budget.period.label()),
                    super::rfc3339(t.updated_ms)
                ));
            }
            Ok(out)
        }
        Op::Show { name } => Ok(show(&keys.show_team(&name).await?)),
        Op::Remove { name } => {
            let t = keys.remove_team(&name).await?;
            Ok(if as_json {
                show(&t)
            } else {
                format!("removed the budget of team {}\n", t.name)
            })
        }
    }
}

fn describe(t: &Team) -> String {
    let mut out = String::new();
    if let Some(m) = t.to_json().as_object() {
        for (field, value) in m {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{field:<14} {shown}\n"));
        }
    }
    out
}
