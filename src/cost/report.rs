//! Actual vs counterfactual spend over a period, by tier, model, task type, key and team: what
//! `switchyard report` prints and `GET /admin/spend` returns. Both call [`Report::load`], so the
//! numbers are the same whichever way they are asked for.

pub use super::spend::Line;
use super::spend::{Settings, SpendLog, Store, Target};
use crate::config::Config;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The start of a report's period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    pub unix_ms: i64,
    /// As the user wrote it (`7d`, `2025-06-01`).
    pub text: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Since {
    /// A span back from now (`7d`, `24h`, `90m`, `2w`, `1d 12h`) or a UTC time (`2025-06-01`,
    /// `2025-06-01T12:00:00Z`).
    pub fn parse(text: &str) -> Result<Since, String> {
        Self::parse_at(text, now_ms())
    }

    pub fn parse_at(text: &str, now_ms: i64) -> Result<Since, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "`since` must be a span back from now such as 7d, 24h or 30m, or a UTC date or time such as 2025-06-01 or 2025-06-01T12:00:00Z; got {text:?}"
            )
        };
        if t.is_empty() {
            return Err(bad());
        }
        let unix_ms = if let Ok(d) = humantime::parse_duration(t) {
            now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        } else {
            let full = if t.len() == 10 {
                format!("{t}T00:00:00Z")
            } else {
                t.to_string()
            };
            let at = humantime::parse_rfc3339_weak(&full).map_err(|_| bad())?;
            let d = at.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
            i64::try_from(d.as_millis()).map_err(|_| bad())?
        };
        Ok(Since {
            unix_ms: unix_ms.max(0),
            text: t.to_string(),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// RFC 3339, UTC.
    pub since: String,
    pub until: String,
    pub total: Line,
    pub by_tier: Vec<Line>,
    pub by_model: Vec<Line>,
    pub by_task_type: Vec<Line>,
    /// By virtual key name; requests without one (static keys, no auth) are `(none)`.
    pub by_key: Vec<Line>,
    pub by_team: Vec<Line>,
}

impl Report {
    /// The report over a running gateway's log. The table is created first if the writer has not
    /// yet, so a gateway that has served nothing reports zeros rather than an error.
    pub async fn of_log(log: &SpendLog, since: &Since) -> Result<Report, sqlx::Error> {
        let table = &log.settings().table;
        log.store().ensure_schema(table).await?;
        Report::load(log.store(), table, since).await
    }

    pub async fn load(store: &Store, table: &str, since: &Since) -> Result<Report, sqlx::Error> {
        let until = now_ms();
        let s = since.unix_ms;
        let total = store
            .totals(table, None, s)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(Report {
            since: rfc3339(s),
            until: rfc3339(until),
            total: Line {
                name: "total".into(),
                ..total
            },
            by_tier: store.totals(table, Some("tier"), s).await?,
            by_model: store.totals(table, Some("model"), s).await?,
            by_task_type: store.totals(table, Some("task_type"), s).await?,
            by_key: store.totals(table, Some("key_name"), s).await?,
            by_team: store.totals(table, Some("team"), s).await?,
        })
    }

    fn sections(&self) -> [(&'static str, &[Line]); 6] {
        [
            ("total", std::slice::from_ref(&self.total)),
            ("tier", &self.by_tier),
            ("model", &self.by_model),
            ("task_type", &self.by_task_type),
            ("key", &self.by_key),
            ("team", &self.by_team),
        ]
    }

    /// A fixed-width table for terminals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "spend from {} to {}", self.since, self.until);
        let width = self
            .sections()
            .iter()
            .flat_map(|(_, l)| l.iter().map(|x| x.name.chars().count()))
            .max()
            .unwrap_or(5)
            .max(10);
        for (title, lines) in self.sections() {
            let _ = writeln!(
                out,
                "\n{:<width$}  {:>9}  {:>6}  {:>12}  {:>12}  {:>13}  {:>15}  {:>13}  {:>8}",
                if title == "total" { "" } else { title },
                "requests",
                "errors",
                "input tok",
                "output tok",
                "cost $",
                "counterfactual $",
                "savings $",
                "savings",
            );
            if lines.is_empty() {
                let _ = writeln!(out, "{:<width$}  (no requests)", "");
            }
            for l in lines {
                let pct = l
                    .savings_pct
                    .map_or_else(|| "-".to_string(), |p| format!("{p:.1}%"));
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>9}  {:>6}  {:>12}  {:>12}  {:>13.6}  {:>15.6}  {:>13.6}  {:>8}",
                    l.name,
                    l.requests,
                    l.errors,
                    l.input_tokens,
                    l.output_tokens,
                    l.cost_usd,
                    l.counterfactual_usd,
                    l.savings_usd,
                    pct
                );
            }
        }
        if self.total.estimated > 0 {
            let _ = writeln!(
                out,
                "\n{} request(s) had no usage from the provider; their tokens were estimated.",
                self.total.estimated
            );
        }
        out
    }

    /// One row per line, a `group` column saying which breakdown it belongs to.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "group,name,requests,errors,estimated,input_tokens,output_tokens,cached_tokens,cost_usd,counterfactual_usd,savings_usd,savings_pct\n",
        );
        for (group, lines) in self.sections() {
            for l in lines {
                let _ = writeln!(
                    out,
                    "{group},{},{},{},{},{},{},{},{:.10},{:.10},{:.10},{}",
                    csv_field(&l.name),
                    l.requests,
                    l.errors,
                    l.estimated,
                    l.input_tokens,
                    l.output_tokens,
                    l.cached_tokens,
                    l.cost_usd,
                    l.counterfactual_usd,
                    l.savings_usd,
                    l.savings_pct.map(|p| p.to_string()).unwrap_or_default()
                );
            }
        }
        out
    }
}

/// RFC 4180 quoting; task types come from clients, so they may hold anything.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// `switchyard report`: reads the spend log named by the config (or `--database`) and prints the
/// report. Exit status 2 for a usage or config problem, 1 when the database cannot be read.
pub async fn run(
    since: &str,
    config: &Path,
    database: Option<String>,
    table: String,
    format: Format,
) -> ExitCode {
    use crate::console::{error, print_to_stdout};
    let since = match Since::parse(since) {
        Ok(s) => s,
        Err(m) => {
            error(format_args!("--since: {m}"));
            return ExitCode::from(2);
        }
    };
    let (target, table) = match database {
        Some(url) => match Target::parse(&url, Path::new(".")) {
            Ok(t) => (t, table),
            Err(m) => {
                error(format_args!("--database: {m}"));
                return ExitCode::from(2);
            }
        },
        None => {
            // The report reads the spend log and calls no provider: only `spend_log`'s
            // variables must be set.
            let c = match Config::load_for(config, crate::config::Uses::SpendLog) {
                Ok(c) => c,
                Err(e) => {
                    error(format_args!("{e}"));
                    return ExitCode::from(2);
                }
            };
            let Some(s) = &c.spend_log else {
                error(format_args!(
                    "{} has no spend_log section, so there is nothing to report (or pass --database)",
                    config.display()
                ));
                return ExitCode::from(2);
            };
            let base = config.parent().unwrap_or_else(|| Path::new("."));
            match Settings::from_config(s, base) {
                Ok(s) => (s.target, s.table),
                Err(m) => {
                    error(format_args!("{}: spend_log.url: {m}", config.display()));
                    return ExitCode::from(2);
                }
            }
        }
    };
    if let Err(m) = super::spend::check_table(&table) {
        error(format_args!("--table: {m}"));
        return ExitCode::from(2);
    }
    let store = match Store::connect_lazy(&target, false) {
        Ok(s) => s,
        Err(m) => {
            error(format_args!("{m}"));
            return ExitCode::FAILURE;
        }
    };
    let report = Report::load(&store, &table, &since).await;
    store.close().await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            error(format_args!(
                "cannot read table {table} from {}: {e}",
                target.describe()
            ));
            return ExitCode::FAILURE;
        }
    };
    let text = match format {
        Format::Table => report.table(),
        Format::Csv => report.csv(),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(j) => j + "\n",
            Err(e) => {
                error(format_args!("{e}"));
                return ExitCode::FAILURE;
            }
        },
    };
    print_to_stdout(|out| out.write_all(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_spans_and_dates() {
        let now = 1_750_000_000_000;
        assert_eq!(
            Since::parse_at("7d", now).unwrap().unix_ms,
            now - 7 * 86_400_000
        );
        assert_eq!(
            Since::parse_at("90m", now).unwrap().unix_ms,
            now - 5_400_000
        );
        assert_eq!(
            Since::parse_at("1d 12h", now).unwrap().unix_ms,
            now - 129_600_000
        );
        assert_eq!(
            Since::parse_at("2025-06-01", now).unwrap().unix_ms,
            1_748_736_000_000
        );
        assert_eq!(
            Since::parse_at("2025-06-01T12:00:00Z", now)
                .unwrap()
                .unix_ms,
            1_748_779_200_000
        );
        for bad in ["", "yesterday", "7", "-3d", "2025-13-01"] {
            assert!(Since::parse_at(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
