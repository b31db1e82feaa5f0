//! `switchyard keys create|list|show|update|revoke`: the admin operations on the config's key
//! store, for an operator at a shell. A running gateway sees the changes within `keys.refresh`.

use super::{Change, Keys, Known, OpError, VirtualKey, now_ms};
use crate::config::{Config, Uses};
use crate::console::{error, print_to_stdout};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeysArgs {
    /// The config whose key store to use (`keys.database`, else the spend log's database, else
    /// keys.db beside the config).
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
    /// Issue a key. Its secret is printed once and stored nowhere.
    Create {
        name: String,
        #[command(flatten)]
        s: Settings,
    },
    /// Every key (revoked ones included), without secrets.
    List,
    /// One key's settings.
    Show { name: String },
    /// Change a key's settings; settings not given stay as they are.
    Update {
        name: String,
        #[command(flatten)]
        s: Settings,
    },
    /// Revoke a key for good (its spend rows keep its name).
    Revoke { name: String },
}

#[derive(clap::Args, Default)]
struct Settings {
    #[arg(long)]
    team: Option<String>,
    /// A JSON object attached to the key.
    #[arg(long)]
    metadata: Option<String>,
    /// Tiers the key may be served by (comma-separated; empty string: any).
    #[arg(long)]
    tiers: Option<String>,
    /// Models (deployment names) the key may be served by (comma-separated; empty string: any).
    #[arg(long)]
    models: Option<String>,
    /// Dollars per period; `none` removes the budget.
    #[arg(long)]
    budget_usd: Option<String>,
    /// day, week, month (the default) or a duration such as 6h.
    #[arg(long)]
    budget_period: Option<String>,
    /// Requests per minute; `none` removes the limit.
    #[arg(long)]
    rpm: Option<String>,
    /// Tokens per minute; `none` removes the limit.
    #[arg(long)]
    tpm: Option<String>,
    /// Requests in flight at once; `none` removes the limit.
    #[arg(long)]
    max_parallel: Option<String>,
    /// When the key stops working: a UTC time, or `none`.
    #[arg(long, conflicts_with = "expires_in")]
    expires_at: Option<String>,
    /// When the key stops working, from now (30d, 12h).
    #[arg(long)]
    expires_in: Option<String>,
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    #[arg(long)]
    enable: bool,
}

/// A flag value as the admin API's JSON: `none` is null, numbers stay numbers.
fn value(s: &str) -> Value {
    if s == "none" {
        return Value::Null;
    }
    serde_json::from_str::<serde_json::Number>(s)
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(s.to_string()))
}

fn list(s: &str) -> Value {
    Value::Array(
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.into()))
            .collect(),
    )
}

impl Settings {
    fn body(&self, name: Option<&str>) -> Result<Value, String> {
        let mut m = Map::new();
        if let Some(n) = name {
            m.insert("name".into(), json!(n));
        }
        if let Some(t) = &self.team {
            m.insert("team".into(), value(t));
        }
        if let Some(md) = &self.metadata {
            let v: Value =
                serde_json::from_str(md).map_err(|e| format!("--metadata is not JSON: {e}"))?;
            m.insert("metadata".into(), v);
        }
        if let Some(t) = &self.tiers {
            m.insert("tiers".into(), list(t));
        }
        if let Some(t) = &self.models {
            m.insert("models".into(), list(t));
        }
        for (k, v) in [
            ("budget_usd", &self.budget_usd),
            ("rpm", &self.rpm),
            ("tpm", &self.tpm),
            ("max_parallel", &self.max_parallel),
            ("expires_at", &self.expires_at),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), value(v));
            }
        }
        for (k, v) in [
            ("budget_period", &self.budget_period),
            ("expires_in", &self.expires_in),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        if self.disable || self.enable {
            m.insert("disabled".into(), json!(self.disable));
        }
        Ok(Value::Object(m))
    }
}

/// The key table the config names.
pub fn table(c: &Config) -> &str {
    c.keys.table.as_deref().unwrap_or(super::DEFAULT_TABLE)
}

/// The config's tiers and models, which a key's lists must name.
pub fn known(c: &Config) -> Known<'_> {
    Known {
        tiers: c.tiers.keys().map(String::as_str).collect(),
        models: c.models.iter().map(|m| m.name.as_str()).collect(),
    }
}

pub async fn run(args: KeysArgs) -> ExitCode {
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
    // A change made here is announced to running replicas that share state in Redis.
    if let Some(link) = crate::state::StateStore::from_config(&config.state)
        .ok()
        .and_then(|s| s.link())
    {
        keys.share_changes(link);
    }
    let result = op(&keys, &config, args.op, args.json).await;
    keys.close().await;
    match result {
        Ok(text) => print_to_stdout(|o| o.write_all(text.as_bytes())),
        Err(e) => {
            error(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

async fn op(keys: &Keys, config: &Config, op: Op, as_json: bool) -> Result<String, OpError> {
    let change = |body: Result<Value, String>| -> Result<Change, OpError> {
        let body = body.map_err(|m| {
            OpError::Invalid(super::Invalid {
                field: "metadata".into(),
                message: m,
            })
        })?;
        Change::parse(&body, &known(config), now_ms()).map_err(OpError::Invalid)
    };
    let show = |k: &VirtualKey| -> String {
        if as_json {
            format!("{:#}\n", k.to_json())
        } else {
            describe(k)
        }
    };
    match op {
        Op::Create { name, s } => {
            let c = change(s.body(Some(&name)))?;
            let (k, secret) = keys.create(&c).await?;
            if as_json {
                let mut v = k.to_json();
                v["key"] = json!(secret);
                return Ok(format!("{v:#}\n"));
            }
            Ok(format!(
                "{}\nkey: {secret}\n(shown once; switchyard stores only its hash)\n",
                describe(&k).trim_end()
            ))
        }
        Op::List => {
            let all = keys.list().await?;
            if as_json {
                let v: Vec<Value> = all.iter().map(VirtualKey::to_json).collect();
                return Ok(format!("{:#}\n", Value::Array(v)));
            }
            let mut out = format!(
                "{:<24} {:<16} {:<14} {:<10} {:<12} {}\n",
                "name", "team", "key", "state", "budget", "tiers"
            );
            for k in &all {
                let state = k.unusable(now_ms()).map_or("active", |u| u.as_str());
                let budget = k.budget.map_or_else(
                    || "-".into(),
                    |b| format!("${}/{}", b.usd, b.period.label()),
                );
                out.push_str(&format!(
                    "{:<24} {:<16} {:<14} {:<10} {:<12} {}\n",
                    k.name,
                    k.team.as_deref().unwrap_or("-"),
                    k.hint,
                    state,
                    budget,
                    if k.tiers.is_empty() {
                        "any".into()
                    } else {
                        k.tiers.join(",")
                    }
                ));
            }
            Ok(out)
        }
        Op::Show { name } => Ok(show(&keys.show(&name).await?)),
        Op::Update { name, s } => {
            let c = change(s.body(None))?;
            Ok(show(&keys.update(&name, &c).await?))
        }
        Op::Revoke { name } => {
            let k = keys.revoke(&name).await?;
            Ok(if as_json {
                show(&k)
            } else {
                format!("revoked {} ({})\n", k.name, k.hint)
            })
        }
    }
}

fn describe(k: &VirtualKey) -> String {
    let v = k.to_json();
    let mut out = String::new();
    if let Some(m) = v.as_object() {
        for (field, value) in m {
            if value.is_null() {
                continue;
            }
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{field:<14} {shown}\n"));
        }
    }
    out
}
